"""The data the benchmarks run on, made in SQL (set-based, so loading is
quick): active experiments, a population of users already assigned to them,
and a week of tagged impressions with outcomes."""

from __future__ import annotations

import datetime as dt
import time

import psycopg

from bench.harness import progress

ADMIN = "00000000-0000-4000-8000-00000000ad01"
VARIANTS = '[{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}]'
ASSIGN_KEYS = [f"bench-{i:02d}" for i in range(10)]
METRICS_KEY = "bench-metrics"
METRICS_FIRST_DAY = dt.date(2026, 1, 5)
METRICS_DAYS = 7
RESULTS_KEY = "bench-results"
RESULTS_FIRST_DAY = dt.date(2026, 2, 1)  # after the metrics week: the windows never overlap
RESULTS_DAYS = 30


def user_sql(n: str) -> str:
    """SQL for the uuid of benchmark user number `n` (an integer expression).
    pgbench can only draw integers, so its scripts turn them into uuids with
    this same expression; baseline and candidate scripts pay it alike."""
    return f"('00000000-0000-4000-8000-' || lpad(({n})::text, 12, '0'))::uuid"


def create_active_experiments(conn: psycopg.Connection, keys: list[str]) -> None:
    for key in keys:
        conn.execute("select public.rec_create_experiment(%s, %s::jsonb, %s::uuid)", [key, VARIANTS, ADMIN])
        conn.execute("select public.rec_activate_experiment(%s, %s::uuid)", [key, ADMIN])


def experiment_id(conn: psycopg.Connection, key: str) -> str:
    row = conn.execute("select id from public.rec_experiments where key = %s", [key]).fetchone()
    if not row:
        raise LookupError(key)
    return str(row[0])


def assign_population(conn: psycopg.Connection, keys: list[str], users: int) -> None:
    """Users 1..`users` get their stored `auto` assignment in every experiment
    of `keys`, with the variant the §2 rule gives (so the stored rows are
    exactly what rec_assign_variant would have written)."""
    start = time.perf_counter()
    conn.execute(
        f"""
        insert into public.rec_user_experiment_assignments (experiment_id, user_id, variant)
        select e.id, u.id, rec_internal.bucket(e.salt, u.id, e.variants)
          from public.rec_experiments e
         cross join (select {user_sql("n")} as id from generate_series(1, %s) n) u
         where e.key = any(%s)""",
        [users, keys],
    )
    conn.execute("vacuum (analyze) public.rec_user_experiment_assignments")
    progress(f"   assigned {users:,} users x {len(keys)} experiments in {time.perf_counter() - start:.1f} s")


def load_impressions(
    conn: psycopg.Connection,
    key: str,
    impressions: int,
    users: int,
    *,
    first_day: dt.date = METRICS_FIRST_DAY,
    days: int = METRICS_DAYS,
) -> None:
    """`impressions` impressions spread evenly over `days` UTC days from `first_day`,
    each by one of users 1..`users` (drawn by a hash of the row number) and
    tagged {"experiments": {key: <that user's stored variant>}}; then ~10%
    of them get an outcome (an eighth of those a second one). One
    INSERT ... SELECT per table, then VACUUM ANALYZE."""
    start = time.perf_counter()
    eid = experiment_id(conn, key)
    first = dt.datetime.combine(first_day, dt.time(), tzinfo=dt.UTC)
    conn.execute(
        f"""
        insert into public.rec_impressions (user_id, item_id, request_context, created_at)
        select a.user_id, 'item-' || (g %% 5000),
               jsonb_build_object('experiments', jsonb_build_object(%(key)s::text, a.variant)),
               %(first)s::timestamptz + (g - 1) * (%(days)s * interval '1 day' / %(n)s)
          from generate_series(1, %(n)s) g
         cross join lateral (
               select x.user_id, x.variant from public.rec_user_experiment_assignments x
                where x.experiment_id = %(eid)s
                  and x.user_id = {user_sql("1 + (hashint4(g) & 2147483647) %% %(users)s")}) a
         order by g""",
        {"key": key, "first": first, "days": days, "n": impressions, "eid": eid, "users": users},
    )
    loaded = time.perf_counter()
    conn.execute(
        """
        insert into public.rec_outcomes (impression_id, user_id, outcome, value, created_at)
        select i.id, i.user_id, case when k = 1 then 'click' else 'like' end, k,
               i.created_at + k * interval '1 minute'
          from public.rec_impressions i
         cross join generate_series(1, case when hashtext(i.id::text) & 7 = 0 then 2 else 1 end) k
         where (hashtext(i.id::text) & 2147483647) %% 10 = 0
           and i.created_at >= %(first)s and i.created_at < %(first)s + %(days)s * interval '1 day'""",
        {"first": first, "days": days},
    )
    # The whole database: also whatever a proposal (--apply) derives from them.
    conn.execute("vacuum (analyze)")
    row = conn.execute("select count(*) from public.rec_outcomes").fetchone()
    progress(
        f"   loaded {impressions:,} impressions in {loaded - start:.1f} s, "
        f"{row[0] if row else 0:,} outcomes + vacuum analyze in "
        f"{time.perf_counter() - loaded:.1f} s"
    )
