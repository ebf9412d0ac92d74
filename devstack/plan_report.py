"""`recsys-exp plan KEY`: the smallest effect runs of 7, 14 or 28 days (or
the given lengths) would detect, per goal metric, from recent traffic. The
maths is shared.results.plan, the same as admin-experiment-plan's."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from devstack import cli_args
from devstack.database import open_database
from shared.results.plan import DEFAULT_DAYS, plan


def fetch(conn: psycopg.Connection, key: str, days: Sequence[int] = DEFAULT_DAYS) -> dict[str, Any]:
    """The answer of admin-experiment-plan, read straight from the database."""
    row = conn.execute("select public.rec_experiment_plan_stats(%s, %s)", [key, list(days)]).fetchone()
    if row is None or row[0] is None:
        raise LookupError(key)
    return plan(row[0])


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def format_answer(answer: Mapping[str, Any]) -> str:
    lines = [
        f"Plan for {answer['key']} (eligible share {answer['eligible_share']:.0%}; "
        "80% power, two-sided 5%, no CUPED): smallest detectable relative change"
    ]
    for m in answer["metrics"]:
        sd = "-" if m["std_dev"] is None else f"{m['std_dev']:.4g}"
        base = "-" if m["baseline"] is None else f"{m['baseline']:.4g}"
        lines.append(f"  {m['metric']} (now {base}, per-user sd {sd}):")
        for row in m["mde"]:
            users, mde = row["users"], _pct(row["mde_relative"])
            lines.append(f"    {row['days']:>2} days  {users:>10.0f} users  {mde}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if any(not 1 <= d <= 28 for d in args.days):
        return cli_args.fail(f"--days must be from 1 to 28, got {json.dumps(args.days)}")
    server = open_database(args.database_url, args.data_dir)
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            try:
                answer = fetch(conn, args.key, args.days)
            except psycopg.Error as exc:
                return cli_args.fail(exc.diag.message_primary or cli_args.one_line(exc))
        print(format_answer(answer))
    finally:
        server.stop()
    return 0
