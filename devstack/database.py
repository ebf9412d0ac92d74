"""Which Postgres: the one place that decides it for every entry point.

- Commands (`recsys-exp dev`, `migrate`, and anything else that needs the
  database) use `open_database`: the server `--database-url` names, else the
  embedded Postgres whose data lives in `<data-dir>/postgres`.
- Tests and benchmarks use `throwaway_server`: the server `$DATABASE_URL`
  names, else an embedded Postgres in a temporary directory that is deleted
  afterwards. Either way they work in databases of their own
  (`postgres.fresh_database`).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devstack import pg_owner, postgres


def open_database(database_url: str | None, data_dir: Path) -> postgres.Server:
    """The command's Postgres; call `.stop()` when done (stops only an embedded one)."""
    if database_url:
        return postgres.connect_server(database_url)
    pgdata = data_dir / "postgres"
    owner = pg_owner.claim(pgdata)  # a Postgres left running by a killed run: say so, own it
    if owner.note:
        print(f"recsys-exp: {owner.note}", file=sys.stderr, flush=True)
    return postgres.start_embedded(pgdata)


@contextmanager
def opened(database_url: str | None, data_dir: Path) -> Iterator[postgres.Server]:
    server = open_database(database_url, data_dir)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def throwaway_server(prefix: str = "recsys-exp-") -> Iterator[tuple[postgres.Server, str]]:
    """$DATABASE_URL's server, else a temporary embedded one. Yields the
    server and a description of it for messages."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield postgres.connect_server(url), f"DATABASE_URL ({postgres.redact(url)})"
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        server = postgres.start_embedded(Path(tmp) / "pgdata", delete_on_stop=True)
        try:
            yield server, f"embedded Postgres in {tmp}"
        finally:
            server.stop()
