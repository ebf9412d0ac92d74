"""`recsys-exp metrics list|create`: the metric catalogue from a terminal,
through the audited RPCs over a direct database connection (the audit
row's actor is --admin-id, default the all-zero id: "a terminal")."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import psycopg

from devstack import cli_args
from devstack.database import open_database


def _run(args: argparse.Namespace, action: Callable[[psycopg.Connection], str]) -> int:
    server = open_database(args.database_url, args.data_dir)
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            try:
                print(action(conn))
            except psycopg.Error as exc:
                return cli_args.fail(exc.diag.message_primary or cli_args.one_line(exc))
    finally:
        server.stop()
    return 0


def run_list(args: argparse.Namespace) -> int:
    def listing(conn: psycopg.Connection) -> str:
        rows = conn.execute(
            "select key, kind, coalesce(outcome, '(any)'), direction, capping, builtin"
            " from rec_list_metrics()"
        ).fetchall()
        lines = [f"{'metric':<24} {'kind':<21} {'outcome':<16} {'direction':<9} {'capping':>8}"]
        for key, kind, outcome, direction, capping, builtin in rows:
            cap = "-" if capping is None else f"{capping:g}"
            note = "  (built in)" if builtin else ""
            lines.append(f"{key:<24} {kind:<21} {outcome:<16} {direction:<9} {cap:>8}{note}")
        return "\n".join(lines)

    return _run(args, listing)


def run_create(args: argparse.Namespace) -> int:
    def create(conn: psycopg.Connection) -> str:
        conn.execute(
            "select rec_create_metric(%s, %s, %s, name => %s, description => %s, outcome => %s,"
            " direction => %s, capping => %s)",
            [
                args.key,
                args.kind,
                str(args.admin_id),
                args.name,
                args.description,
                args.outcome,
                args.direction,
                args.capping,
            ],
        )
        return f"metric {args.key} created"

    return _run(args, create)
