"""Results with five catalogue metrics (one per kind, two of them on one
outcome name, two capped) for 30 days of one experiment, the last day
dirty (not rolled up), against the one-pass per-user group-by of the same
window in the same run. Target: <= 2x.

Size: BENCH_METRICS_IMPRESSIONS (default 1,000,000) impressions over
10,000 x BENCH_SCALE users."""

from __future__ import annotations

import json
import os

import psycopg

from bench import rollups
from bench.harness import BenchError, Result, alternate, progress

METRICS = [
    ("b_likes_rate", "impression_rate", "like", None),
    ("b_value_per_imp", "value_per_impression", None, 0.999),
    ("b_likes", "per_user_count", "like", None),
    ("b_value", "per_user_value", None, 0.999),
    ("b_engaged", "user_rate", None, None),
]
RESULTS = "select public.rec_experiment_results_stats(%(key)s, %(from)s, %(to)s)"


def bench_metric_catalogue(url: str, rounds: int, warmup: int) -> list[Result]:
    raw = os.environ.get("BENCH_METRICS_IMPRESSIONS", "1000000")
    if not raw.isdigit() or int(raw) < 1:
        raise BenchError(f"BENCH_METRICS_IMPRESSIONS must be a positive integer, not {raw!r}")
    count, users = int(raw), int(10_000 * rollups.scale())
    progress(f"== metric catalogue: {users:,} users, {count:,} impressions over {rollups.DAYS} days")
    with psycopg.connect(url, autocommit=True) as conn:
        rollups.setup(conn, users)
        rollups.load(conn, count, users, 0)
        admin = "00000000-0000-0000-0000-000000000000"
        for key, kind, outcome, capping in METRICS:
            conn.execute(
                "select rec_create_metric(%s, %s, %s, outcome => %s, capping => %s)",
                [key, kind, admin, outcome, capping],
            )
        conn.execute(
            "select rec_set_experiment_metrics(%s, %s::jsonb, %s)",
            [rollups.KEY, json.dumps([{"metric": m[0], "role": "goal"} for m in METRICS]), admin],
        )
        # every day but the last rolled up: "today" is still being written
        conn.execute(
            "select public.rec_refresh_daily_rollups(%s)", [rollups.LAST_DAY - rollups.dt.timedelta(1)]
        )
        conn.execute("vacuum (analyze)")
        base, cand = rollups.runner(conn, rollups.RESULTS_LIVE), rollups.runner(conn, RESULTS)
        for _ in range(warmup):
            base()
            cand()

        def show(r: int, a: float, b: float) -> None:
            progress(f"   round {r}/{rounds}: per-user group-by {a:,.0f} ms, results (5 metrics) {b:,.0f} ms")

        a, b = alternate(base, cand, rounds, show)
    return [
        Result(
            "metric_catalogue",
            f"results with 5 metrics, 30 days, {count:,} impressions, last day dirty",
            "one-pass per-user group-by",
            "rec_experiment_results_stats",
            "ms",
            a,
            b,
            "results / group-by",
            2.0,
            False,
        )
    ]
