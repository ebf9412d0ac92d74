"""Daily rollups at two sizes: the 30-day metrics chart and the 30-day
per-user results of one experiment, rolled up, must cost about the same at
10x the impressions, far less than the live computation, and the write path
must stay close to a bare copy of the impressions table.

Sizes come from BENCH_SCALE (default 1): 10,000 x scale users, and
100,000 x scale then 1,000,000 x scale impressions over 30 UTC days, each
tagged with 5 active experiments, ~10 % with an outcome. BENCH_SCALE=10 is
100k users, 1M and 10M impressions."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from bench import fixtures
from bench.harness import BenchError, Result, alternate, progress, timed_ms

KEYS = [f"bench-r{i}" for i in range(5)]
KEY = KEYS[0]
FIRST_DAY = dt.date(2026, 6, 1)
DAYS = 30
LAST_DAY = FIRST_DAY + dt.timedelta(days=DAYS - 1)
INSERT_ROWS = 100_000

METRICS_ROLLED = "select * from public.rec_experiment_daily_metrics(%(key)s, %(from)s, %(to)s)"
# The live computation over raw impressions: the metrics view's definition
# before rollups, for one experiment and window.
METRICS_LIVE = """
select day, experiment_key, variant, sum(impressions)::bigint, sum(users)::bigint, sum(outcomes)::bigint,
       sum(engaged_impressions)::bigint, sum(outcome_value)::double precision
  from (
    select (i.created_at at time zone 'UTC')::date as day, t.key as experiment_key, t.value as variant,
           count(*) as impressions, count(distinct i.user_id) as users, 0::bigint as outcomes,
           0::bigint as engaged_impressions, 0::double precision as outcome_value
      from public.rec_impressions i cross join lateral jsonb_each_text(i.request_context->'experiments') t
     where t.value is not null and (i.created_at at time zone 'UTC')::date between %(from)s and %(to)s
     group by 1, 2, 3
    union all
    select (i.created_at at time zone 'UTC')::date, t.key, t.value, 0, 0, count(*),
           count(distinct o.impression_id), sum(o.value)
      from public.rec_outcomes o join public.rec_impressions i on i.id = o.impression_id
     cross join lateral jsonb_each_text(i.request_context->'experiments') t
     where t.value is not null and (i.created_at at time zone 'UTC')::date between %(from)s and %(to)s
     group by 1, 2, 3
  ) parts
 where experiment_key = %(key)s
 group by 1, 2, 3 order by 1, 3"""
RESULTS_ROLLED = """
select count(*), sum(impressions), sum(engaged_impressions), sum(outcomes)
  from rec_internal.results_user_variant_counts(%(key)s, %(from)s, %(to)s)"""
RESULTS_LIVE = """
select count(*), sum(impressions), sum(engaged_impressions), sum(outcomes)
  from (select i.user_id, i.request_context->'experiments'->>%(key)s as variant, count(*) as impressions,
               count(o.impression_id) as engaged_impressions, coalesce(sum(o.n), 0) as outcomes
          from public.rec_impressions i
          left join (select impression_id, count(*) as n from public.rec_outcomes group by 1) o
            on o.impression_id = i.id
         where (i.created_at at time zone 'UTC')::date between %(from)s and %(to)s
           and i.request_context->'experiments'->>%(key)s is not null
         group by 1, 2) per_user"""


def scale() -> int:
    raw = os.environ.get("BENCH_SCALE", "1")
    if not raw.isdigit() or int(raw) < 1:
        raise BenchError(f"BENCH_SCALE must be a positive integer, not {raw!r}")
    return int(raw)


@dataclass
class Timings:
    metrics: list[float]
    results: list[float]


def setup(conn: psycopg.Connection, users: int) -> None:
    fixtures.create_active_experiments(conn, KEYS)
    fixtures.assign_population(conn, KEYS, users)
    # Each user's tag map, so loading joins one small table.
    conn.execute(
        f"""
        create table public.bench_user_tags as
        select u.n, u.id as user_id,
               jsonb_build_object('experiments', jsonb_object_agg(e.key, a.variant)) as tags
          from (select n, {fixtures.user_sql("n")} as id from generate_series(1, %s) n) u
          join public.rec_user_experiment_assignments a on a.user_id = u.id
          join public.rec_experiments e on e.id = a.experiment_id and e.key = any(%s)
         group by u.n, u.id""",
        [users, KEYS],
    )
    conn.execute("create unique index on public.bench_user_tags (n)")
    conn.execute("analyze public.bench_user_tags")


def load(conn: psycopg.Connection, count: int, users: int, batch: int) -> None:
    """`count` impressions evenly over the 30 days (users drawn by a hash),
    ~10 % with an outcome (an eighth of those a second), in one statement."""
    start = time.perf_counter()
    first = dt.datetime.combine(FIRST_DAY, dt.time(), tzinfo=dt.UTC)
    conn.execute(
        """
        with imp as (
          insert into public.rec_impressions (user_id, item_id, request_context, created_at)
          select t.user_id, 'item-' || (g %% 5000), t.tags,
                 %(first)s::timestamptz + (g - 1) * (%(days)s * interval '1 day' / %(n)s)
            from generate_series(1, %(n)s) g
            join public.bench_user_tags t on t.n = 1 + (hashint4(g + %(batch)s) & 2147483647) %% %(users)s
          returning id, user_id, created_at)
        insert into public.rec_outcomes (impression_id, user_id, outcome, value, created_at)
        select imp.id, imp.user_id, case when k = 1 then 'click' else 'like' end, k,
               imp.created_at + k * interval '1 minute'
          from imp
         cross join generate_series(1, case when hashtext(imp.id::text) & 7 = 0 then 2 else 1 end) k
         where (hashtext(imp.id::text) & 2147483647) %% 10 = 0""",
        {"first": first, "days": DAYS, "n": count, "users": users, "batch": batch * 1_000_003},
    )
    loaded = time.perf_counter()
    conn.execute("vacuum (analyze)")
    progress(
        f"   loaded {count:,} impressions in {loaded - start:.0f} s, "
        f"vacuum analyze {time.perf_counter() - loaded:.0f} s"
    )


def refresh(conn: psycopg.Connection) -> None:
    start = time.perf_counter()
    row = conn.execute("select public.rec_refresh_daily_rollups(%s)", [LAST_DAY]).fetchone()
    conn.execute("vacuum (analyze)")
    progress(
        f"   refreshed {row[0] if row else 0} days (+ vacuum analyze) in {time.perf_counter() - start:.0f} s"
    )


def runner(conn: psycopg.Connection, query: str) -> Callable[[], float]:
    params = {"key": KEY, "from": FIRST_DAY, "to": LAST_DAY}
    return lambda: timed_ms(lambda: conn.execute(query, params, prepare=True).fetchall())


def fetch(conn: psycopg.Connection, query: str) -> list[tuple[Any, ...]]:
    return conn.execute(query, {"key": KEY, "from": FIRST_DAY, "to": LAST_DAY}).fetchall()


def check_same(conn: psycopg.Connection, impressions: int) -> None:
    """The rolled-up answers equal the live ones (the point of it all)."""
    metrics, live = fetch(conn, METRICS_ROLLED), fetch(conn, METRICS_LIVE)
    if metrics != live or sum(r[3] for r in metrics) != impressions:
        raise BenchError(f"rollups: the rolled-up metrics differ from the live ones ({len(metrics)} rows)")
    if fetch(conn, RESULTS_ROLLED) != fetch(conn, RESULTS_LIVE):
        raise BenchError("rollups: the rolled-up per-user results differ from the live ones")


def measure_rolled(conn: psycopg.Connection, rounds: int, warmup: int, size: str) -> Timings:
    metrics, results = runner(conn, METRICS_ROLLED), runner(conn, RESULTS_ROLLED)
    for _ in range(warmup):
        metrics()
        results()

    def show(r: int, a: float, b: float) -> None:
        progress(f"   {size} round {r}/{rounds}: metrics {a:,.1f} ms, results {b:,.1f} ms")

    m, r = alternate(metrics, results, rounds, show)
    return Timings(m, r)


def vs_live(
    conn: psycopg.Connection, live: str, rolled: str, rounds: int, name: str
) -> tuple[list[float], list[float]]:
    base, cand = runner(conn, live), runner(conn, rolled)
    base()
    cand()

    def show(r: int, a: float, b: float) -> None:
        progress(f"   {name} round {r}/{rounds}: live {a:,.0f} ms, rolled up {b:,.1f} ms")

    return alternate(base, cand, rounds, show)


def measure_insert(conn: psycopg.Connection, users: int, rounds: int) -> tuple[list[float], list[float]]:
    """100k tagged impressions into rec_impressions (its indexes, triggers and
    constraints) vs into a bare copy of it (same rows, no index, trigger or
    constraint); each insert rolled back so both tables keep their size."""
    start = time.perf_counter()
    conn.execute("create table public.bench_bare as table public.rec_impressions")
    conn.execute(
        "alter table public.bench_bare alter id set default rec_internal.uuid_v7(), "
        "alter created_at set default now(), alter request_context set default '{}'"
    )
    conn.execute("vacuum (analyze) public.bench_bare")
    progress(f"   bare copy of rec_impressions made in {time.perf_counter() - start:.0f} s")

    def insert(table: str) -> Callable[[], float]:
        query = f"""
            insert into public.{table} (user_id, item_id, request_context)
            select t.user_id, 'item-' || (g % 5000), t.tags
              from generate_series(1, {INSERT_ROWS}) g
              join public.bench_user_tags t on t.n = 1 + (hashint4(g) & 2147483647) % {users}"""

        def run() -> float:
            conn.execute("begin")
            try:
                return timed_ms(lambda: conn.execute(query))
            finally:
                conn.execute("rollback")

        return run

    def show(r: int, a: float, b: float) -> None:
        progress(f"   insert round {r}/{rounds}: bare copy {a:,.0f} ms, rec_impressions {b:,.0f} ms")

    base, cand = insert("bench_bare"), insert("rec_impressions")
    base()
    cand()
    return alternate(base, cand, rounds, show)


def bench_rollups(url: str, query_rounds: int, warmup: int) -> list[Result]:
    k = scale()
    users, small, large = 10_000 * k, 100_000 * k, 1_000_000 * k
    progress(
        f"== rollups: {users:,} users, {small:,} then {large:,} impressions over {DAYS} days "
        f"(BENCH_SCALE={k})"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("set jit = off")  # as the RPCs run
        setup(conn, users)
        load(conn, small, users, batch=1)
        refresh(conn)
        check_same(conn, small)
        at_small = measure_rolled(conn, query_rounds, warmup, f"{small:,}")
        load(conn, large - small, users, batch=2)
        refresh(conn)
        check_same(conn, large)
        at_large = measure_rolled(conn, query_rounds, warmup, f"{large:,}")
        live_rounds = max(3, query_rounds // 2)
        conn.execute("reset jit")  # the live computation as it ran before rollups
        metrics_live = vs_live(conn, METRICS_LIVE, METRICS_ROLLED, live_rounds, "metrics")
        results_live = vs_live(conn, RESULTS_LIVE, RESULTS_ROLLED, live_rounds, "results")
        inserts = measure_insert(conn, users, query_rounds)
    sizes = f"{small:,} vs {large:,} impressions ({users:,} users, {len(KEYS)} experiments, {DAYS} days)"
    common = {"unit": "ms", "higher_is_better": False}
    return [
        Result(
            name="rollups_metrics_scale",
            title=f"30-day rec_experiment_daily_metrics, rolled up, at {large:,} vs {small:,} impressions",
            baseline_label=f"at {small:,}",
            candidate_label=f"at {large:,}",
            baseline=at_small.metrics,
            candidate=at_large.metrics,
            ratio_label="large/small time",
            target=1.5,
            notes=[sizes, "sizes measured one after the other (the data grows), not alternated"],
            **common,  # type: ignore[arg-type]
        ),
        Result(
            name="rollups_results_scale",
            title=f"30-day per-user results of one experiment, rolled up, at {large:,} vs {small:,}",
            baseline_label=f"at {small:,}",
            candidate_label=f"at {large:,}",
            baseline=at_small.results,
            candidate=at_large.results,
            ratio_label="large/small time",
            target=1.5,
            notes=[sizes, "rec_internal.results_user_variant_counts over the experiment's 30 days"],
            **common,  # type: ignore[arg-type]
        ),
        Result(
            name="rollups_metrics_vs_live",
            title=f"30-day metrics at {large:,}: rolled up vs the live computation over raw impressions",
            baseline_label="live view definition (JIT as configured)",
            candidate_label="rec_experiment_daily_metrics",
            baseline=metrics_live[0],
            candidate=metrics_live[1],
            ratio_label="rolled/live time",
            target=0.1,
            **common,  # type: ignore[arg-type]
        ),
        Result(
            name="rollups_results_vs_live",
            title=f"30-day per-user results at {large:,}: rolled up vs live",
            baseline_label="per-user aggregate over raw impressions",
            candidate_label="results_user_variant_counts",
            baseline=results_live[0],
            candidate=results_live[1],
            ratio_label="rolled/live time",
            target=0.1,
            **common,  # type: ignore[arg-type]
        ),
        Result(
            name="rollups_insert",
            title=f"insert {INSERT_ROWS:,} tagged impressions at {large:,} stored vs a bare copy of it",
            baseline_label="bare copy (no index, trigger, constraint)",
            candidate_label="rec_impressions",
            baseline=inserts[0],
            candidate=inserts[1],
            ratio_label="table/bare time (<= 2 is >= 0.5x the speed)",
            target=2.0,
            **common,  # type: ignore[arg-type]
        ),
    ]
