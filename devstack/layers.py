"""`recsys-exp layers ...`: layers (mutually exclusive experiments) from a terminal.

    recsys-exp layers list                       every layer, its ranges and what is free
    recsys-exp layers create KEY [--name N] [--description D]

Both call the RPCs (rec_list_layers, rec_create_layer, audited) over a
direct database connection; the audit row's actor is --admin-id (default:
the all-zero id, "a terminal with database access").
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from devstack.database import open_database


def run_list(args: argparse.Namespace) -> int:
    def listing(conn: psycopg.Connection) -> str:
        rows = conn.execute(
            "select key, name, description, salt, experiments, free from rec_list_layers()"
        ).fetchall()
        if not rows:
            return "no layers yet: recsys-exp layers create KEY"
        return "\n\n".join(describe(*row) for row in rows)

    return _run(args, listing)


def run_create(args: argparse.Namespace) -> int:
    def create(conn: psycopg.Connection) -> str:
        row = conn.execute(
            "select rec_create_layer(%s, %s, name => %s, description => %s)",
            [args.key, str(args.admin_id), args.name, args.description],
        ).fetchone()
        assert row is not None
        layer: dict[str, Any] = row[0]
        return f"created layer {layer['key']} (salt {layer['salt']}); its 10000 buckets are free"

    return _run(args, create)


def describe(
    key: str,
    name: str | None,
    description: str | None,
    salt: str,
    experiments: Sequence[dict[str, Any]],
    free: Sequence[Sequence[int]],
) -> str:
    """One layer as a few lines: ranges in bucket order, then the free ones."""
    lines = [key + (f"  {name}" if name else "")]
    if description:
        lines.append(f"  {description}")
    lines.append(f"  salt {salt}")
    for e in experiments:
        low, high = e["layer_range"]
        lines.append(f"  [{low}, {high})".ljust(18) + f"{e['key']} ({e['status']})")
    lines.append("  free " + (", ".join(f"[{low}, {high})" for low, high in free) or "none"))
    return "\n".join(lines)


def _run(args: argparse.Namespace, work: Callable[[psycopg.Connection], str]) -> int:
    server = open_database(args.database_url, args.data_dir)
    try:
        with psycopg.connect(server.url) as conn:
            message = work(conn)
            conn.commit()
    except psycopg.Error as exc:
        print(f"recsys-exp: {(str(exc).splitlines() or [type(exc).__name__])[0]}", file=sys.stderr)
        return 1
    finally:
        server.stop()
    print(message)
    return 0
