"""CUPED and the results series, against the one-pass per-user group-by and
one results call of the same run.

- results of five catalogue metrics (two capped) with 14 days of CUPED:
  the experiment starts on day 15, so the window is days 15..30 and the
  pre-period days 1..14; the baseline is the per-user group-by of the same
  window. Target: <= 2.5x.
- the 30-day series of the three uncapped metrics (one pass) against one
  results call over the same 30 days. Target: <= 4x. The series of the two
  capped metrics (one results call per prefix) is timed once and reported.

Size: BENCH_METRICS_IMPRESSIONS (default 1,000,000) impressions over
10,000 x BENCH_SCALE users and 30 days."""

from __future__ import annotations

import datetime as dt
import json
import os

import psycopg

from bench import rollups
from bench.harness import BenchError, Result, alternate, progress, timed_ms
from bench.metric_catalogue import METRICS

ADMIN = "00000000-0000-0000-0000-000000000000"
RESULTS = "select public.rec_experiment_results_stats(%(key)s, %(from)s, %(to)s)"
SERIES = "select public.rec_experiment_results_series_stats(%(key)s, %(from)s, %(to)s)"
START = rollups.FIRST_DAY + dt.timedelta(days=14)


def _load(conn: psycopg.Connection) -> int:
    raw = os.environ.get("BENCH_METRICS_IMPRESSIONS", "1000000")
    if not raw.isdigit() or int(raw) < 1:
        raise BenchError(f"BENCH_METRICS_IMPRESSIONS must be a positive integer, not {raw!r}")
    count, users = int(raw), int(10_000 * rollups.scale())
    progress(f"== cuped: {users:,} users, {count:,} impressions over {rollups.DAYS} days")
    rollups.setup(conn, users)
    rollups.load(conn, count, users, 0)
    for key, kind, outcome, capping in METRICS:
        conn.execute(
            "select rec_create_metric(%s, %s, %s, outcome => %s, capping => %s)",
            [key, kind, ADMIN, outcome, capping],
        )
    conn.execute("select public.rec_refresh_daily_rollups(%s)", [rollups.LAST_DAY])
    conn.execute("vacuum (analyze)")
    return count


def _set(conn: psycopg.Connection, metrics: list[str], started: dt.date, cuped_days: int) -> None:
    conn.execute(
        "select rec_set_experiment_metrics(%s, %s::jsonb, %s)",
        [rollups.KEY, json.dumps([{"metric": m, "role": "goal"} for m in metrics]), ADMIN],
    )
    # the owner's own SQL: when it started and how many CUPED days
    conn.execute(
        "update public.rec_experiments set started_at = %s, cuped_days = %s where key = %s",
        [dt.datetime.combine(started, dt.time(), tzinfo=dt.UTC), cuped_days, rollups.KEY],
    )
    # moving the start marks the rolled-up days dirty: roll them up again,
    # production's shape (only today is live)
    conn.execute("select public.rec_refresh_daily_rollups(%s)", [rollups.LAST_DAY])


def _pair(
    conn: psycopg.Connection,
    base: str,
    cand: str,
    window: dict[str, object],
    rounds: int,
    warmup: int,
    what: tuple[str, str],
) -> tuple[list[float], list[float]]:
    def run(query: str) -> float:
        return timed_ms(lambda: conn.execute(query, window, prepare=True).fetchall())

    for _ in range(warmup):
        run(base)
        run(cand)

    def show(r: int, a: float, b: float) -> None:
        progress(f"   round {r}/{rounds}: {what[0]} {a:,.0f} ms, {what[1]} {b:,.0f} ms")

    return alternate(lambda: run(base), lambda: run(cand), rounds, show)


def bench_cuped(url: str, rounds: int, warmup: int) -> list[Result]:
    with psycopg.connect(url, autocommit=True) as conn:
        count = _load(conn)
        _set(conn, [m[0] for m in METRICS], START, 14)
        window = {"key": rollups.KEY, "from": START, "to": rollups.LAST_DAY}
        a, b = _pair(
            conn, rollups.RESULTS_LIVE, RESULTS, window, rounds, warmup, ("group-by", "results+CUPED")
        )
        uncapped = [m[0] for m in METRICS if m[3] is None]
        _set(conn, uncapped, rollups.FIRST_DAY, 14)
        month = {"key": rollups.KEY, "from": rollups.FIRST_DAY, "to": rollups.LAST_DAY}
        c, d = _pair(conn, RESULTS, SERIES, month, rounds, warmup, ("results", "series"))
        _set(conn, [m[0] for m in METRICS if m[3] is not None], rollups.FIRST_DAY, 14)
        one = timed_ms(lambda: conn.execute(RESULTS, month).fetchall())
        prefixes = timed_ms(
            lambda: [
                conn.execute(RESULTS, {**month, "to": rollups.FIRST_DAY + dt.timedelta(days=i)}).fetchall()
                for i in range(rollups.DAYS)
            ]
        )
    capped_note = (
        f"capped metrics' series (one results call per prefix, 30 calls): {prefixes:,.0f} ms, "
        f"{prefixes / one:.1f}x one results call ({one:,.0f} ms)"
    )
    return [
        Result(
            "cuped",
            f"results with 5 metrics and 14 days of CUPED, 16-day window, {count:,} impressions over 30 days",
            "one-pass per-user group-by",
            "rec_experiment_results_stats",
            "ms",
            a,
            b,
            "results / group-by",
            2.5,
            False,
        ),
        Result(
            "series",
            f"30-day series of 3 uncapped metrics, {count:,} impressions",
            "one results call (30 days)",
            "rec_experiment_results_series_stats",
            "ms",
            c,
            d,
            "series / results",
            4.0,
            False,
            notes=[capped_note],
        ),
    ]
