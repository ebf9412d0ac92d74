"""A throwaway PostgreSQL 15 cluster from the machine's own binaries, for
what needs server settings a shared server cannot take (pg_cron must be
preloaded). On a free port, trust auth on 127.0.0.1, deleted afterwards.
initdb refuses to run as root, so as root it runs as the `postgres` user."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.tools.conftest import PG_BIN, missing


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def run(command: list[str]) -> None:
    result = subprocess.run(as_postgres(command), capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{' '.join(command)}: {result.stdout}{result.stderr}"


@contextmanager
def throwaway_cluster(settings: dict[str, str]) -> Iterator[str]:
    """Start a cluster with these postgresql.conf settings; yields its superuser URL."""
    if not (PG_BIN / "initdb").exists():
        missing(f"no PostgreSQL 15 binaries in {PG_BIN} (Debian: postgresql-15)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        missing("running as root without runuser, initdb cannot run")
    tmp = Path(tempfile.mkdtemp(prefix="recsys-cluster-"))
    data = tmp / "data"
    try:
        if os.geteuid() == 0:
            shutil.chown(tmp, "postgres", "postgres")
        run([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
             "--locale=C", "--no-sync"])  # fmt: skip
        port = free_port()
        conf = {
            "port": str(port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{tmp}'",
            "fsync": "off",
            "timezone": "'UTC'",
            **settings,
        }
        with (data / "postgresql.conf").open("a") as f:
            f.writelines(f"{k} = {v}\n" for k, v in conf.items())
        run([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(tmp / "log"), "-w", "-t", "60", "start"])
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            run([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
