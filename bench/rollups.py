"""Daily rollups as production sees them: 29 finished days rolled up and
today dirty. Every rolled-up read must cost about the same at 10x the
impressions with the same 2,000 impressions today, the results RPC must
beat a one-pass per-user group by, a full day's share today must cost no
more than that day read live, and the refresh must keep up with a day.

Sizes come from BENCH_SCALE (default 1): 10,000 x scale users, and
100,000 x scale then 1,000,000 x scale impressions over the 29 past days,
each tagged with 5 active experiments, ~10 % with an outcome.
BENCH_SCALE=3 is the issue's 300k / 3M (30k users)."""

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
TODAY = FIRST_DAY + dt.timedelta(days=DAYS - 1)  # the window's last day, never refreshed
YESTERDAY = TODAY - dt.timedelta(days=1)
LAST_DAY = TODAY  # the window's last day (bench/metric_catalogue.py)
TODAY_ROWS = 2_000
INSERT_ROWS = 100_000
WINDOW = {"key": KEY, "from": FIRST_DAY, "to": TODAY}

# Every rolled-up read, over the 30-day window (today included).
READS: dict[str, str] = {
    "chart": "select * from public.rec_experiment_daily_metrics(%(key)s, %(from)s, %(to)s)",
    "metrics_view": """select * from public.rec_variant_daily_metrics_v1
                        where experiment_key = %(key)s and day between %(from)s and %(to)s""",
    "outcomes_view": """select * from public.rec_variant_daily_outcomes_v1
                         where experiment_key = %(key)s and day between %(from)s and %(to)s""",
    "user_counts": """select count(*), sum(impressions), sum(engaged_impressions), sum(outcomes)
                        from rec_internal.results_user_variant_counts(%(key)s, %(from)s, %(to)s)""",
    "user_outcomes": """select count(*), sum(engaged_impressions), sum(outcomes), sum(outcome_value)
                          from rec_internal.results_user_outcome_counts(%(key)s, %(from)s, %(to)s)""",
    "untagged": "select rec_internal.results_untagged_impressions(%(key)s, %(from)s, %(to)s)",
    "results_rpc": "select public.rec_experiment_results_stats(%(key)s, %(from)s, %(to)s)",
}
# The live computations the reads must equal.
LIVE: dict[str, str] = {
    "chart": """
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
 group by 1, 2, 3 order by 1, 3""",
    "user_counts": """
select count(*), sum(impressions), sum(engaged_impressions), sum(outcomes)
  from (select i.user_id, i.request_context->'experiments'->>%(key)s as variant, count(*) as impressions,
               count(o.impression_id) as engaged_impressions, coalesce(sum(o.n), 0) as outcomes
          from public.rec_impressions i
          left join (select impression_id, count(*) as n from public.rec_outcomes group by 1) o
            on o.impression_id = i.id
         where (i.created_at at time zone 'UTC')::date between %(from)s and %(to)s
           and i.request_context->'experiments'->>%(key)s is not null
         group by 1, 2) per_user""",
    "user_outcomes": """
select count(*), sum(engaged), sum(outcomes), sum(value)
  from (select i.user_id, o.outcome, count(distinct i.id) as engaged, count(*) as outcomes,
               sum(o.value::numeric) as value
          from public.rec_impressions i join public.rec_outcomes o on o.impression_id = i.id
         where (i.created_at at time zone 'UTC')::date between %(from)s and %(to)s
           and i.request_context->'experiments'->>%(key)s is not null
         group by i.user_id, i.request_context->'experiments'->>%(key)s, o.outcome) per_user""",
}
# Per-user results of one experiment from raw rows (bench/metric_catalogue.py's baseline).
RESULTS_LIVE = LIVE["user_counts"]
# The one-pass per-user group by the results RPC is judged against.
PER_USER_GROUP_BY = """
select i.user_id, count(*) as impressions
  from public.rec_impressions i
 where (i.created_at at time zone 'UTC')::date between %(from)s and %(to)s
 group by 1"""
# Today's share read live (the chart's live half written plainly).
TODAY_LIVE = LIVE["chart"]
# One day's rows over all its tags, as a plain table: what a refresh of a
# day is judged against.
CTAS_DAY = """
create table public.bench_ctas as
select t.key, t.value, i.user_id, count(*) as impressions
  from public.rec_impressions i cross join lateral jsonb_each_text(i.request_context->'experiments') t
 where (i.created_at at time zone 'UTC')::date between %(from)s and %(to)s
 group by 1, 2, 3"""
ROLLUP_TABLES = [
    "rollup_arms",
    "rollup_days",
    "rollup_variant_day",
    "rollup_variant_day_outcome",
    "rollup_user_day",
    "rollup_user_day_outcome",
    "rollup_user_totals",
    "rollup_untagged_day",
    "rollup_dirty_days",
]


def scale() -> float:
    raw = os.environ.get("BENCH_SCALE", "1")
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0.01 <= value <= 1000:
        raise BenchError(f"BENCH_SCALE must be a number from 0.01 to 1000, not {raw!r}")
    return value


def setup(conn: psycopg.Connection, users: int) -> None:
    fixtures.create_active_experiments(conn, KEYS)
    # assigned before the traffic: untagged counts start at assigned_at
    fixtures.assign_population(conn, KEYS, users)
    conn.execute("update public.rec_user_experiment_assignments set assigned_at = '2026-05-01'")
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
    conn.execute("update public.rec_experiments set started_at = '2026-05-01' where key = any(%s)", [KEYS])


def load(
    conn: psycopg.Connection, count: int, users: int, batch: int, first: dt.date = FIRST_DAY, days: int = DAYS
) -> None:
    """`count` impressions evenly over `days` UTC days from `first` (users
    drawn by a hash), ~10 % with an outcome (an eighth of those a second),
    in one statement."""
    start = time.perf_counter()
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
        select imp.id, imp.user_id, case when k = 1 then 'click' else 'like' end, k * 0.5,
               imp.created_at + k * interval '1 minute'
          from imp
         cross join generate_series(1, case when hashtext(imp.id::text) & 7 = 0 then 2 else 1 end) k
         where (hashtext(imp.id::text) & 2147483647) %% 10 = 0""",
        {
            "first": dt.datetime.combine(first, dt.time(), tzinfo=dt.UTC),
            "days": days,
            "n": count,
            "users": users,
            "batch": batch * 1_000_003,
        },
    )
    loaded = time.perf_counter()
    conn.execute("vacuum (analyze)")
    progress(
        f"   loaded {count:,} impressions on {days} day(s) from {first} in {loaded - start:.0f} s, "
        f"vacuum analyze {time.perf_counter() - loaded:.0f} s"
    )


def refresh(conn: psycopg.Connection, through: dt.date) -> float:
    start = time.perf_counter()
    row = conn.execute("call public.rec_refresh_daily_rollups_by_day(%s, null)", [through]).fetchone()
    took = time.perf_counter() - start
    conn.execute("vacuum (analyze)")
    progress(f"   refreshed {row[0] if row else 0} days in {took:.1f} s (then vacuum analyze)")
    return took


def fetch(conn: psycopg.Connection, query: str, params: dict[str, Any] = WINDOW) -> list[tuple[Any, ...]]:
    return conn.execute(query, params).fetchall()


def runner(conn: psycopg.Connection, query: str, params: dict[str, Any] = WINDOW) -> Callable[[], float]:
    return lambda: timed_ms(lambda: conn.execute(query, params, prepare=True).fetchall())


def check_same(conn: psycopg.Connection) -> None:
    """The rolled-up answers (today dirty) equal the live ones."""
    for name, live in LIVE.items():
        if fetch(conn, READS[name]) != fetch(conn, live):
            raise BenchError(f"rollups: {name} differs from the live computation")
    view = sorted(fetch(conn, READS["metrics_view"]))
    if view != sorted(fetch(conn, READS["chart"])):
        raise BenchError("rollups: the metrics view differs from the chart")


def measure_reads(conn: psycopg.Connection, rounds: int, warmup: int, size: str) -> dict[str, list[float]]:
    runs = {name: runner(conn, query) for name, query in READS.items()}
    for _ in range(warmup):
        for run in runs.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(rounds):
        for name, run in runs.items():
            times[name].append(run())
        done = ", ".join(f"{n} {t[-1]:,.1f}" for n, t in times.items())
        progress(f"   {size} round {r + 1}/{rounds}: {done} ms")
    return times


def in_rollback(conn: psycopg.Connection, prepare: str | None, query: str, params: Any) -> float:
    """Time `query` in a transaction that is rolled back (so every round
    starts from the same state); `prepare` runs first, untimed."""
    conn.execute("begin")
    try:
        if prepare:
            conn.execute(prepare)
        return timed_ms(lambda: conn.execute(query, params))
    finally:
        conn.execute("rollback")


SCRATCH = (
    "truncate " + ", ".join(f"rec_internal.{t}" for t in ROLLUP_TABLES) + "; "
    "insert into rec_internal.rollup_dirty_days (day)"
    " select distinct (created_at at time zone 'UTC')::date from public.rec_impressions"
)


def measure_refresh(conn: psycopg.Connection, rounds: int) -> dict[str, tuple[list[float], list[float]]]:
    """One new day (today, a full day's share) and from scratch, each vs a
    `create table as` group by of the same rows over all their tags."""
    day = {"from": TODAY, "to": TODAY}
    all_days = {"from": FIRST_DAY, "to": TODAY}
    refresh_sql = "select public.rec_refresh_daily_rollups(%s)"

    def show(what: str) -> Callable[[int, float, float], None]:
        return lambda r, a, b: progress(f"   refresh {what} {r}: group by {a:,.0f}, refresh {b:,.0f} ms")

    one = alternate(
        lambda: in_rollback(conn, None, CTAS_DAY, day),
        lambda: in_rollback(conn, None, refresh_sql, [TODAY]),
        rounds,
        show("one new day"),
    )
    scratch = alternate(
        lambda: in_rollback(conn, None, CTAS_DAY, all_days),
        lambda: in_rollback(conn, SCRATCH, refresh_sql, [TODAY]),
        max(1, rounds // 2),
        show("from scratch"),
    )
    return {"one": one, "scratch": scratch}


def relation_bytes(conn: psycopg.Connection, name: str) -> int:
    row = conn.execute("select pg_total_relation_size(%s::regclass)", [name]).fetchone()
    return int(row[0]) if row else 0


def sizes(conn: psycopg.Connection) -> tuple[int, int, str]:
    each = {t: relation_bytes(conn, f"rec_internal.{t}") for t in ROLLUP_TABLES}
    raw = relation_bytes(conn, "public.rec_impressions")
    detail = ", ".join(f"{t} {b / 2**20:.1f}" for t, b in each.items())
    return sum(each.values()), raw, f"MiB with indexes: rec_impressions {raw / 2**20:.1f}; {detail}"


def add_today(conn: psycopg.Connection, count: int, users: int, batch: int) -> None:
    load(conn, count, users, batch, TODAY, 1)


@dataclass
class Sizes:
    users: int
    small: int
    large: int


def bench_rollups(url: str, query_rounds: int, warmup: int) -> list[Result]:
    k = scale()
    n = Sizes(users=int(10_000 * k), small=int(100_000 * k), large=int(1_000_000 * k))
    past = DAYS - 1
    progress(
        f"== rollups: {n.users:,} users, {n.small:,} then {n.large:,} impressions over {past} rolled-up "
        f"days, {TODAY_ROWS:,} today (BENCH_SCALE={k})"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("set jit = off")  # as the RPCs run
        setup(conn, n.users)
        load(conn, n.small, n.users, 1, FIRST_DAY, past)
        refresh(conn, YESTERDAY)
        add_today(conn, TODAY_ROWS, n.users, 2)
        check_same(conn)
        at_small = measure_reads(conn, query_rounds, warmup, f"{n.small:,}")
        load(conn, n.large - n.small, n.users, 3, FIRST_DAY, past)
        refresh(conn, YESTERDAY)
        check_same(conn)
        at_large = measure_reads(conn, query_rounds, warmup, f"{n.large:,}")
        results = alternate(
            runner(conn, PER_USER_GROUP_BY),
            runner(conn, READS["results_rpc"]),
            query_rounds,
            lambda r, a, b: progress(f"   results round {r}: group by {a:,.0f} ms, RPC {b:,.0f} ms"),
        )
        # Today with a full day's share of the traffic.
        add_today(conn, n.large // past - TODAY_ROWS, n.users, 4)
        check_same(conn)
        full_day = measure_full_day(conn, query_rounds, warmup)
        refreshes = measure_refresh(conn, max(2, query_rounds // 2))
        for r in range(5):  # incremental rounds: more traffic today, refreshed
            add_today(conn, TODAY_ROWS, n.users, 10 + r)
            refresh(conn, TODAY)
        check_same(conn)
        rollup_bytes, raw_bytes, size_note = sizes(conn)
        inserts = measure_insert(conn, n.users, query_rounds)
    size = (rollup_bytes, raw_bytes, size_note)
    return reports(n, at_small, at_large, results, full_day, refreshes, size, inserts)


def measure_full_day(conn: psycopg.Connection, rounds: int, warmup: int) -> tuple[list[float], list[float]]:
    """The chart with today holding 1/30 of the data vs the same chart with
    no dirty day (the 29 rolled days) plus today's rows grouped live."""
    chart = runner(conn, READS["chart"])
    clean = runner(conn, READS["chart"], {"key": KEY, "from": FIRST_DAY, "to": YESTERDAY})
    today = runner(conn, TODAY_LIVE, {"key": KEY, "from": TODAY, "to": TODAY})
    for _ in range(warmup):
        chart()
        clean()
        today()
    return alternate(
        lambda: clean() + today(),
        chart,
        rounds,
        lambda r, a, b: progress(f"   full day today {r}: clean + live day {a:,.0f}, chart {b:,.0f} ms"),
    )


def measure_insert(conn: psycopg.Connection, users: int, rounds: int) -> tuple[list[float], list[float]]:
    """100k tagged impressions into rec_impressions (its indexes, triggers and
    constraints) vs into a bare copy of it (same rows, no index, trigger or
    constraint); each insert rolled back so both tables keep their size."""
    conn.execute("create table public.bench_bare as table public.rec_impressions with no data")
    conn.execute(
        "alter table public.bench_bare alter id set default rec_internal.uuid_v7(), "
        "alter created_at set default now(), alter request_context set default '{}'"
    )

    def insert(table: str) -> Callable[[], float]:
        query = f"""
            insert into public.{table} (user_id, item_id, request_context)
            select t.user_id, 'item-' || (g % 5000), t.tags
              from generate_series(1, {INSERT_ROWS}) g
              join public.bench_user_tags t on t.n = 1 + (hashint4(g) & 2147483647) % {users}"""
        return lambda: in_rollback(conn, None, query, None)

    base, cand = insert("bench_bare"), insert("rec_impressions")
    base()
    cand()
    return alternate(
        base,
        cand,
        rounds,
        lambda r, a, b: progress(f"   insert round {r}: bare copy {a:,.0f} ms, rec_impressions {b:,.0f} ms"),
    )


def reports(
    n: Sizes,
    at_small: dict[str, list[float]],
    at_large: dict[str, list[float]],
    results: tuple[list[float], list[float]],
    full_day: tuple[list[float], list[float]],
    refreshes: dict[str, tuple[list[float], list[float]]],
    size: tuple[int, int, str],
    inserts: tuple[list[float], list[float]],
) -> list[Result]:
    common: dict[str, Any] = {"unit": "ms", "higher_is_better": False}
    data = f"{n.users:,} users, {len(KEYS)} experiments, {DAYS - 1} rolled-up days + today"
    out = [
        Result(
            name=f"rollups_{name}_today_dirty",
            title=f"30-day {name}, {TODAY_ROWS:,} impressions today (dirty), at {n.large:,} vs {n.small:,}",
            baseline_label=f"at {n.small:,}",
            candidate_label=f"at {n.large:,}",
            baseline=at_small[name],
            candidate=at_large[name],
            ratio_label="large/small time",
            target=1.5,
            notes=[data, "sizes measured one after the other (the data grows), not alternated"],
            **common,
        )
        for name in READS
    ]
    rollup_bytes, raw_bytes, size_note = size
    out += [
        Result(
            name="rollups_results_vs_group_by",
            title=f"results RPC over 30 days at {n.large:,}, today dirty, vs a one-pass per-user group by",
            baseline_label="select user_id, count(*) ... group by user_id",
            candidate_label="rec_experiment_results_stats",
            baseline=results[0],
            candidate=results[1],
            ratio_label="RPC/group-by time",
            target=0.5,
            notes=[data],
            **common,
        ),
        Result(
            name="rollups_chart_full_day_today",
            title=f"30-day chart with today holding 1/{DAYS - 1} of {n.large:,} (dirty)",
            baseline_label="chart of the 29 clean days + today's rows grouped live",
            candidate_label="rec_experiment_daily_metrics over 30 days",
            baseline=full_day[0],
            candidate=full_day[1],
            ratio_label="chart/(clean + live day) time",
            target=1.5,
            **common,
        ),
        Result(
            name="rollups_refresh_one_day",
            title="refresh of one new day (today's full share) vs create table as group by of its rows",
            baseline_label="create table as select key, variant, user, count(*) ... group by",
            candidate_label="rec_refresh_daily_rollups(today)",
            baseline=refreshes["one"][0],
            candidate=refreshes["one"][1],
            ratio_label="refresh/group-by time",
            target=3.0,
            notes=["each run in a transaction rolled back, so every round refreshes the same new day"],
            **common,
        ),
        Result(
            name="rollups_refresh_from_scratch",
            title=f"refresh of all {DAYS} days from empty rollups vs create table as group by of all rows",
            baseline_label="create table as ... group by, 30 days",
            candidate_label="rec_refresh_daily_rollups (one transaction)",
            baseline=refreshes["scratch"][0],
            candidate=refreshes["scratch"][1],
            ratio_label="refresh/group-by time",
            target=5.0,
            notes=["rolled back after each run"],
            **common,
        ),
        Result(
            name="rollups_size",
            title="rollup tables + indexes vs rec_impressions + indexes, after 5 incremental rounds",
            baseline_label="rec_impressions",
            candidate_label="rec_internal.rollup_*",
            baseline=[raw_bytes / 2**20],
            candidate=[rollup_bytes / 2**20],
            ratio_label="rollups/raw size",
            target=1.0,
            notes=[size_note],
            unit="MiB",
            higher_is_better=False,
        ),
        Result(
            name="rollups_insert",
            title=f"insert {INSERT_ROWS:,} tagged impressions vs a bare copy of the table",
            baseline_label="bare copy (no index, trigger, constraint)",
            candidate_label="rec_impressions",
            baseline=inserts[0],
            candidate=inserts[1],
            ratio_label="table/bare time (<= 2 is >= 0.5x the speed)",
            target=2.0,
            **common,
        ),
    ]
    return out
