"""`recsys-exp dev` owns the Postgres it runs on, even one a killed run left
behind: `kill -9` leaves the embedded Postgres running (pg_ctl starts it
detached); the next `dev` on that --data-dir says so, takes it over and
stops it on Ctrl-C. A Postgres another live `recsys-exp` uses is shared
and left running for it. Real subprocesses, real signals."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil

from devstack import pg_owner
from tests.stack.test_dev_command import Dev, dev_dir, dev_env, free_port

__all__ = ["dev_dir"]  # the fixture that stops any Postgres a failed test leaves


def test_a_postgres_left_by_a_killed_dev_is_taken_over_and_stopped(dev_dir: Path) -> None:
    port, data = free_port(), dev_dir / "data"
    pgdata = data / "postgres"
    first = Dev(port, data, dev_dir / "first.log")
    first.wait_healthy()
    assert "found Postgres" not in first.log.read_text()  # a fresh start has nothing to say

    shared = subprocess.run(
        [sys.executable, "-m", "devstack.cli", "migrate", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        env=dev_env(),
        timeout=60,
    )
    assert shared.returncode == 0, shared.stderr
    assert f"that process {first.proc.pid} also uses" in shared.stderr
    assert httpx.get(f"{first.url}/health", timeout=5).status_code == 200  # left running for dev

    first.proc.kill()  # kill -9: no chance to stop anything
    first.proc.wait(timeout=30)
    orphan = pg_owner.running_postmaster(pgdata)
    assert orphan is not None, "kill -9 left no Postgres behind: nothing to test"

    second = Dev(port, data, dev_dir / "second.log")
    second.wait_healthy()
    said = second.log.read_text()
    assert f"found Postgres (pid {orphan})" in said
    assert f"by process {first.proc.pid}, which did not exit cleanly" in said
    assert "stopping it when this command exits" in said
    assert second.rpc("rec_list_experiments", {}).status_code == 200

    assert second.stop(signal.SIGINT) == 0  # Ctrl-C
    assert pg_owner.running_postmaster(pgdata) is None
    assert not alive(orphan)
    assert not (pgdata / "postmaster.pid").exists()


def alive(pid: int) -> bool:
    """Running (a stopped Postgres may linger as a zombie until init reaps it)."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def test_no_postgres_means_nothing_to_claim(tmp_path: Path) -> None:
    assert pg_owner.claim(tmp_path / "postgres") == pg_owner.Claim()
    (tmp_path / "stale").mkdir()
    (tmp_path / "stale" / "postmaster.pid").write_text("999999999\n")  # no such process
    assert pg_owner.claim(tmp_path / "stale") == pg_owner.Claim()
