"""`recsys-exp results KEY`: an experiment's per-user statistics as a table
in the terminal, with the warnings. The maths is shared.results, the same
module behind admin-experiment-results; `recsys-exp demo` reports here too."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Mapping
from typing import Any

import psycopg

from devstack import cli_args
from devstack.database import open_database
from shared import results
from shared.results import series


def fetch(
    conn: psycopg.Connection, key: str, from_day: dt.date | None = None, to_day: dt.date | None = None
) -> dict[str, Any]:
    """The answer of admin-experiment-results, read straight from the database."""
    row = conn.execute(
        "select public.rec_experiment_results_stats(%s, %s, %s)", [key, from_day, to_day]
    ).fetchone()
    if row is None or row[0] is None:
        raise LookupError(key)
    return results.analyse(row[0])


def fetch_series(
    conn: psycopg.Connection, key: str, from_day: dt.date | None = None, to_day: dt.date | None = None
) -> list[dict[str, Any]]:
    """The ``series`` of admin-experiment-results, read straight from the database."""
    raw = conn.execute(
        "select public.rec_experiment_results_stats(%s, %s, %s)", [key, from_day, to_day]
    ).fetchone()
    if raw is None or raw[0] is None:
        raise LookupError(key)
    window = [key, raw[0]["from_day"], raw[0]["to_day"]]
    per_day = conn.execute("select public.rec_experiment_results_series_stats(%s, %s, %s)", window).fetchone()
    assert per_day is not None
    prefixes = {}
    if series.capped_metrics(raw[0]):
        for day in series.window_days(raw[0]):
            row = conn.execute(
                "select public.rec_experiment_results_stats(%s, %s, %s)", [key, window[1], day]
            ).fetchone()
            assert row is not None
            prefixes[day] = row[0]
    return series.series(raw[0], per_day[0], prefixes)


ROLES = [
    ("goal", "goals (decide the verdict; p adjusted by Holm over goals)"),
    ("guardrail", "guardrails (must not get worse)"),
    ("secondary", "secondary"),
]


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


def _comparison_line(c: Mapping[str, Any]) -> str:
    interval = "-" if c["lift_ci_low"] is None else f"{_pct(c['lift_ci_low'])} .. {_pct(c['lift_ci_high'])}"
    better = "up" if c["direction"] == "increase" else "down"
    return (
        f"{c['metric']:<22} {better:<4} {c['variant']:<14} {_num(c['difference'], '+.4f'):>10} "
        f"{_num(c['p_value'], '.3g'):>8} {_num(c['adjusted_p_value'], '.3g'):>8} "
        f"{_num(c['chance_to_win'], '.0%'):>6} {_pct(c['lift']):>8}  {interval}"
    )


def format_answer(answer: Mapping[str, Any]) -> str:
    """The verdict sentence first, then counts, metrics (value ± standard
    error), comparisons grouped by role, health and the warnings."""
    health = answer["health"]
    lines = [
        answer["summary"],
        "",
        f"experiment {answer['key']}: {answer['from_day']} .. {answer['to_day']} (UTC days), "
        f"baseline {answer['baseline']}",
        "",
        f"{'variant':<16} {'weight':>7} {'users':>9} {'impressions':>12} {'engaged':>9} {'outcomes':>9}",
    ]
    lines += [
        f"{v['variant']:<16} {v['weight']:>7} {v['users']:>9} {v['impressions']:>12} "
        f"{v['engaged_impressions']:>9} {v['outcomes']:>9}"
        for v in answer["variants"]
    ]
    lines += ["", f"{'metric':<22} {'role':<10} {'variant':<14} {'value':>10} {'std error':>10}"]
    for m in answer["metrics"]:
        value, se = _num(m["value"], ".4f"), _num(m["std_error"], ".4f")
        lines.append(f"{m['metric']:<22} {m['role']:<10} {m['variant']:<14} {value:>10} {se:>10}")
    for role, title in ROLES:
        rows = [c for c in answer["comparisons"] if c["role"] == role]
        if not rows:
            continue
        lines += [
            "",
            f"{title}:",
            f"{'metric':<22} {'good':<4} {'variant':<14} {'difference':>10} {'p':>8} {'adj. p':>8} "
            f"{'win':>6} {'lift':>8}  95% interval of lift (not adjusted)",
        ]
        lines += [_comparison_line(c) for c in rows]
    lines += [
        "",
        f"users: {health['assigned_users']} assigned, {health['exposed_users']} exposed, "
        f"{health['analysed_users']} analysed ({health['overridden_users']} overridden, "
        f"{health['crossover_users']} crossover left out); untagged impressions "
        f"{health['untagged_impressions']}; sample ratio p = {_num(health['srm_p_value'], '.3g')}"
        f"{' MISMATCH' if health['srm'] else ''}",
    ]
    if answer["warnings"]:
        lines += ["", "warnings:"] + [f"- {w}" for w in answer["warnings"]]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    server = open_database(args.database_url, args.data_dir)
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            try:
                answer = fetch(conn, args.key, args.from_day, args.to_day)
            except psycopg.Error as exc:
                return cli_args.fail(exc.diag.message_primary or cli_args.one_line(exc))
        print(format_answer(answer))
    finally:
        server.stop()
    return 0
