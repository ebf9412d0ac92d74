"""Daily rollups (docs/rollups.md): every read answers exactly what the live
computation over the raw tables answers, whether the refresh ran, ran part of
the way, ran before late data arrived, or ran twice at once."""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from devstack import jobs
from tests.sql.conftest import acting_as, connect_as_owner, create_experiment, raises_sqlstate, scalar, uuids

UTC = dt.UTC
DAYS = [dt.date(2026, 3, 1) + dt.timedelta(days=n) for n in range(5)]
LAST = DAYS[-1]
AB = [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]
ABC = [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}, {"name": "c", "weight": 2}]
VARIANTS = {"e1": ["a", "b"], "e2": ["a", "b", "c"], "e3": ["a", "b"]}
# started_at / ended_at: e1 starts mid-day, e2 starts at midnight and ends
# mid-day, e3 starts one microsecond before a UTC midnight.
LIFETIMES = {
    "e1": ("2026-03-01T12:00:00+00:00", None),
    "e2": ("2026-03-02T00:00:00+00:00", "2026-03-04T06:30:00+00:00"),
    "e3": ("2026-03-01T23:59:59.999999+00:00", None),
}
# Outcome values whose sums are exact in floating point, so the rolled-up and
# live sums agree whatever order they are added in.
VALUES = (1.0, 0.5, 2.0, 4.0, 0.25)
ASSIGNED_AT = [
    "2026-02-01T00:00:00+00:00",
    "2026-03-01T00:00:00+00:00",
    "2026-03-02T13:30:00+00:00",
    "2026-03-03T23:59:59.999999+00:00",
    "2026-03-04T00:00:00+00:00",
]
WINDOWS: list[tuple[dt.date | None, dt.date | None]] = [
    (None, None),
    (DAYS[0], LAST),
    (DAYS[1], DAYS[3]),
    (DAYS[2], DAYS[2]),
    (DAYS[3], None),
]

LIVE_METRICS = """
select day, experiment_key, variant, sum(impressions)::bigint, sum(users)::bigint, sum(outcomes)::bigint,
       sum(engaged_impressions)::bigint, sum(outcome_value)::double precision
  from (
    select (i.created_at at time zone 'UTC')::date as day, t.key as experiment_key, t.value as variant,
           count(*) as impressions, count(distinct i.user_id) as users,
           0::bigint as outcomes, 0::bigint as engaged_impressions, 0::double precision as outcome_value
      from rec_impressions i cross join lateral jsonb_each_text(i.request_context->'experiments') t
     where t.value is not null group by 1, 2, 3
    union all
    select (i.created_at at time zone 'UTC')::date, t.key, t.value, 0, 0, count(*),
           count(distinct o.impression_id), sum(o.value)
      from rec_outcomes o join rec_impressions i on i.id = o.impression_id
     cross join lateral jsonb_each_text(i.request_context->'experiments') t
     where t.value is not null group by 1, 2, 3
  ) parts
 group by 1, 2, 3"""
LIVE_OUTCOMES = """
select (i.created_at at time zone 'UTC')::date, t.key, t.value, o.outcome, count(*),
       count(distinct o.impression_id), count(distinct o.user_id), sum(o.value)::double precision
  from rec_outcomes o join rec_impressions i on i.id = o.impression_id
 cross join lateral jsonb_each_text(i.request_context->'experiments') t
 where t.value is not null group by 1, 2, 3, 4"""
# Results, written from their definition: per (user, variant) the tagged
# impressions in the window, those with an outcome, and their outcome rows.
LIVE_USER_COUNTS = """
select i.user_id, i.request_context->'experiments'->>%(key)s, count(*)::bigint,
       count(*) filter (where n.n > 0)::bigint, coalesce(sum(n.n), 0)::bigint
  from rec_impressions i
 cross join lateral (select count(*) as n from rec_outcomes o where o.impression_id = i.id) n
 where (i.created_at at time zone 'UTC')::date between coalesce(%(lo)s, '-infinity'::date)
                                                    and coalesce(%(hi)s, 'infinity'::date)
   and i.request_context->'experiments'->>%(key)s is not null
 group by 1, 2"""
LIVE_UNTAGGED = """
select count(*)::bigint
  from rec_impressions i join rec_experiments e on e.key = %(key)s
 where (i.created_at at time zone 'UTC')::date between coalesce(%(lo)s, '-infinity'::date)
                                                    and coalesce(%(hi)s, 'infinity'::date)
   and i.created_at >= e.started_at and (e.ended_at is null or i.created_at < e.ended_at)
   and exists (select 1 from rec_user_experiment_assignments a
                where a.experiment_id = e.id and a.user_id = i.user_id and i.created_at >= a.assigned_at)
   and i.request_context->'experiments'->>%(key)s is null"""
# Per (user, variant, outcome name): impressions with >= 1 outcome of that
# name, those outcome rows, and the sum of their values in numeric.
LIVE_USER_OUTCOMES = """
select i.user_id, i.request_context->'experiments'->>%(key)s, o.outcome, count(distinct i.id)::bigint,
       count(*)::bigint, sum(o.value::numeric)
  from rec_impressions i join rec_outcomes o on o.impression_id = i.id
 where (i.created_at at time zone 'UTC')::date between coalesce(%(lo)s, '-infinity'::date)
                                                    and coalesce(%(hi)s, 'infinity'::date)
   and i.request_context->'experiments'->>%(key)s is not null
 group by 1, 2, 3"""
ROLLUP_TABLES = (
    "rollup_arms",
    "rollup_days",
    "rollup_variant_day",
    "rollup_variant_day_outcome",
    "rollup_user_day",
    "rollup_user_day_outcome",
    "rollup_user_totals",
    "rollup_untagged_day",
    "rollup_dirty_days",
)


def rows(conn: psycopg.Connection, query: Any, params: Any = None) -> list[tuple[Any, ...]]:
    return sorted(conn.execute(query, params).fetchall(), key=repr)


def assert_reads_equal_live(conn: psycopg.Connection) -> None:
    """Every read that may use the rollups, against the live computation."""
    metrics = rows(conn, LIVE_METRICS)
    assert metrics, "the data set must not be empty"
    # the per-user totals are kept in step with the per-day rows
    assert rows(
        conn,
        "select arm_id, user_id, impressions, engaged_impressions, outcomes"
        "  from rec_internal.rollup_user_totals where impressions <> 0",
    ) == rows(
        conn,
        "select arm_id, user_id, sum(impressions)::bigint,"
        "       sum(engaged_impressions)::bigint, sum(outcomes)::bigint"
        "  from rec_internal.rollup_user_day group by 1, 2",
    )
    assert rows(conn, "select * from rec_variant_daily_metrics_v1") == metrics
    assert rows(conn, "select * from rec_variant_daily_outcomes_v1") == rows(conn, LIVE_OUTCOMES)
    for key in VARIANTS:
        for lo, hi in WINDOWS:
            chart = conn.execute(
                "select * from rec_experiment_daily_metrics(%s, %s, %s)", [key, lo, hi]
            ).fetchall()
            expected = sorted(
                (r for r in metrics if r[1] == key and (lo or r[0]) <= r[0] <= (hi or r[0])),
                key=lambda r: (r[0], r[2]),
            )
            assert chart == expected, (key, lo, hi)
            params = {"key": key, "lo": lo, "hi": hi}
            seam = "select * from rec_internal.results_user_variant_counts(%(key)s, %(lo)s, %(hi)s)"
            got = rows(conn, seam, params)
            assert got == rows(conn, LIVE_USER_COUNTS, params), (key, lo, hi)
            seam = "select * from rec_internal.results_user_outcome_counts(%(key)s, %(lo)s, %(hi)s)"
            assert rows(conn, seam, params) == rows(conn, LIVE_USER_OUTCOMES, params), (key, lo, hi)
            untagged = scalar(
                conn, "select rec_internal.results_untagged_impressions(%(key)s, %(lo)s, %(hi)s)", params
            )
            assert untagged == scalar(conn, LIVE_UNTAGGED, params), (key, lo, hi)


def refresh(conn: psycopg.Connection, through: dt.date | None = LAST) -> int:
    return int(scalar(conn, "select rec_refresh_daily_rollups(%s)", [through]))


def dirty_days(conn: psycopg.Connection) -> list[dt.date]:
    return [r[0] for r in conn.execute("select day from rec_internal.rollup_dirty_days order by day")]


def random_time(rng: random.Random) -> dt.datetime:
    day = rng.choice(DAYS)
    edge = rng.random()
    if edge < 0.05:  # the first and last instants of a UTC day
        return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
    if edge < 0.1:
        return dt.datetime(day.year, day.month, day.day, 23, 59, 59, 999999, tzinfo=UTC)
    return dt.datetime(day.year, day.month, day.day, tzinfo=UTC) + dt.timedelta(seconds=rng.randrange(86400))


def random_context(rng: random.Random) -> dict[str, Any]:
    shape = rng.random()
    if shape < 0.1:
        return {}
    if shape < 0.15:
        return {"experiments": {}, "page": "home"}
    tags: dict[str, Any] = {}
    for key, names in VARIANTS.items():
        draw = rng.random()
        if draw < 0.7:
            tags[key] = rng.choice(names)
    return {"experiments": tags}


Impression = tuple[uuid.UUID, uuid.UUID, dt.datetime]


def insert_traffic(conn: psycopg.Connection, users: list[uuid.UUID], n: int, seed: int) -> list[Impression]:
    """n impressions (COPY, one statement each table) with ~15 % engaged."""
    rng = random.Random(seed)
    imps = [
        (uuid.UUID(int=rng.getrandbits(128), version=4), rng.choice(users), random_time(rng))
        for _ in range(n)
    ]
    copy = "copy rec_impressions (id, user_id, request_context, created_at) from stdin"
    with conn.cursor().copy(copy) as cp:
        for imp_id, user, created in imps:
            cp.write_row((imp_id, user, json.dumps(random_context(rng)), created))
    insert_outcomes(conn, [imp for imp in imps if rng.random() < 0.15], seed + 1)
    return imps


def insert_outcomes(conn: psycopg.Connection, imps: list[Impression], seed: int) -> None:
    rng = random.Random(seed)
    copy = "copy rec_outcomes (impression_id, user_id, outcome, value, created_at) from stdin"
    with conn.cursor().copy(copy) as cp:
        for imp_id, user, created in imps:
            for _ in range(rng.choice((1, 1, 1, 2, 3))):
                later = created + dt.timedelta(seconds=rng.randrange(1, 2 * 86400))
                cp.write_row((imp_id, user, rng.choice(("click", "like", "save")), rng.choice(VALUES), later))


@pytest.fixture
def rolled(db: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """Three experiments with their lifetimes, assignments for most users,
    and ~1,500 impressions over five UTC days; no rollup rows yet."""
    for table in ROLLUP_TABLES:
        db.execute(f"delete from rec_internal.{table}")
    users = uuids(40, seed=70)
    for key, (started, ended) in LIFETIMES.items():
        e = create_experiment(db, key, ABC if key == "e2" else AB)
        db.execute(
            "update rec_experiments set started_at = %s, ended_at = %s where key = %s", [started, ended, key]
        )
        for n, u in enumerate(users[: 30 + len(key)]):
            # assigned at different times: before the start, on a day, at its edges
            db.execute(
                "insert into rec_user_experiment_assignments (experiment_id, user_id, variant, assigned_at)"
                " values (%s, %s, 'a', %s)",
                [e["id"], u, ASSIGNED_AT[n % len(ASSIGNED_AT)]],
            )
    insert_traffic(db, users, 1500, seed=71)
    yield db


def test_reads_equal_live_before_and_after_refresh(rolled: psycopg.Connection) -> None:
    assert dirty_days(rolled) == DAYS  # written days are dirty until rolled up
    assert_reads_equal_live(rolled)
    assert refresh(rolled) == len(DAYS)
    assert dirty_days(rolled) == []
    assert scalar(rolled, "select count(*) from rec_internal.rollup_user_day") > 0
    assert_reads_equal_live(rolled)
    assert refresh(rolled) == 0  # idempotent: nothing changed, nothing rebuilt


def test_reads_read_the_rollups_once_rolled(rolled: psycopg.Connection) -> None:
    """Proof the rolled-up path is the one answering: with the raw rows of a
    clean day hidden from the live path, the answer is unchanged."""
    refresh(rolled)
    before = rows(rolled, "select * from rec_variant_daily_metrics_v1")
    rolled.execute("alter table rec_impressions disable trigger user")
    try:
        rolled.execute(
            "delete from rec_impressions where (created_at at time zone 'UTC')::date = %s", [DAYS[2]]
        )
        assert rows(rolled, "select * from rec_variant_daily_metrics_v1") == before
    finally:
        rolled.execute("alter table rec_impressions enable trigger user")


def test_partial_refresh(rolled: psycopg.Connection) -> None:
    assert refresh(rolled, DAYS[1]) == 2
    assert dirty_days(rolled) == DAYS[2:]
    assert_reads_equal_live(rolled)
    assert refresh(rolled, DAYS[3]) == 2
    assert_reads_equal_live(rolled)


def test_default_through_day_is_yesterday(rolled: psycopg.Connection) -> None:
    rolled.execute(
        "insert into rec_impressions (user_id, request_context, created_at) values (%s, %s, now())",
        [uuid.uuid4(), json.dumps({"experiments": {"e1": "a"}})],
    )
    today = scalar(rolled, "select current_date")
    assert scalar(rolled, "select rec_refresh_daily_rollups()") == len(DAYS)
    assert today in dirty_days(rolled)


def test_late_outcomes_and_impressions_mark_their_day(rolled: psycopg.Connection) -> None:
    refresh(rolled)
    old = rolled.execute(
        "select id, user_id, created_at from rec_impressions"
        " where (created_at at time zone 'UTC')::date = %s and request_context ? 'experiments' limit 20",
        [DAYS[1]],
    ).fetchall()
    insert_outcomes(rolled, old, seed=72)  # outcomes arriving days later count on the impression's day
    rolled.execute(
        "insert into rec_impressions (user_id, request_context, created_at) values (%s, %s, %s)",
        [old[0][1], json.dumps({"experiments": {"e1": "b", "e2": "c"}}), "2026-03-04T23:59:59.999999+00:00"],
    )
    assert dirty_days(rolled) == [DAYS[1], DAYS[3]]
    assert_reads_equal_live(rolled)
    assert refresh(rolled) == 2
    assert_reads_equal_live(rolled)


def test_retagged_moved_and_deleted_rows(rolled: psycopg.Connection) -> None:
    refresh(rolled)
    # re-tagging an impression of a rolled day
    rolled.execute(
        "update rec_impressions"
        "   set request_context = jsonb_build_object('experiments', jsonb_build_object('e1', 'b'))"
        " where id in (select id from rec_impressions"
        "               where (created_at at time zone 'UTC')::date = %s limit 30)",
        [DAYS[0]],
    )
    # moving an impression (with its outcomes, which may not predate it) to another day
    moved = scalar(
        rolled,
        "select impression_id from rec_outcomes o join rec_impressions i on i.id = o.impression_id"
        " where (i.created_at at time zone 'UTC')::date = %s limit 1",
        [DAYS[1]],
    )
    with rolled.transaction():
        rolled.execute(
            "update rec_outcomes set created_at = created_at + interval '2 days' where impression_id = %s",
            [moved],
        )
        rolled.execute(
            "update rec_impressions set created_at = created_at + interval '2 days' where id = %s", [moved]
        )
    # moving an outcome to an impression of another day (its user, and not before it)
    rolled.execute(
        "update rec_outcomes set impression_id = i.id, user_id = i.user_id, created_at = i.created_at"
        "  from (select id, user_id, created_at from rec_impressions"
        "         where (created_at at time zone 'UTC')::date = %s limit 1) i"
        " where rec_outcomes.id = (select o.id from rec_outcomes o"
        "                           join rec_impressions i on i.id = o.impression_id"
        "                          where (i.created_at at time zone 'UTC')::date = %s limit 1)",
        [DAYS[4], DAYS[2]],
    )
    assert dirty_days(rolled) == DAYS
    assert_reads_equal_live(rolled)
    refresh(rolled)
    # deleting impressions (their outcomes go by cascade) and outcomes
    rolled.execute("delete from rec_impressions where (created_at at time zone 'UTC')::date = %s", [DAYS[2]])
    rolled.execute(
        "delete from rec_outcomes where impression_id in (select id from rec_impressions"
        " where (created_at at time zone 'UTC')::date = %s)",
        [DAYS[3]],
    )
    assert dirty_days(rolled) == [DAYS[2], DAYS[3]]
    assert_reads_equal_live(rolled)
    assert refresh(rolled) == 2
    assert_reads_equal_live(rolled)
    rolled.execute("truncate rec_outcomes")
    assert dirty_days(rolled) == DAYS  # every rolled-up day, the emptied one too
    assert_reads_equal_live(rolled)


@pytest.mark.parametrize("timezone", ["Pacific/Kiritimati", "America/Los_Angeles"])
def test_days_are_utc_days_in_any_session_time_zone(rolled: psycopg.Connection, timezone: str) -> None:
    rolled.execute("select set_config('TimeZone', %s, false)", [timezone])
    refresh(rolled)
    rolled.execute("select set_config('TimeZone', 'UTC', false)")
    assert_reads_equal_live(rolled)


def test_concurrent_refreshes_rebuild_each_day_once(rolled: psycopg.Connection, db_url: str) -> None:
    conns = [connect_as_owner(db_url) for _ in range(4)]
    barrier = threading.Barrier(len(conns))

    def run(conn: psycopg.Connection) -> int:
        barrier.wait(timeout=30)
        return refresh(conn)

    try:
        with ThreadPoolExecutor(len(conns)) as pool:
            rebuilt = list(pool.map(run, conns))
    finally:
        for c in conns:
            c.close()
    assert sum(rebuilt) == len(DAYS)
    assert dirty_days(rolled) == []
    assert_reads_equal_live(rolled)


def test_refresh_while_writing_never_loses_a_row(rolled: psycopg.Connection, db_url: str) -> None:
    """Late impressions and outcomes committed while refreshes run: the reads
    equal the live answer at every point, with or without another refresh."""
    stop = threading.Event()

    def write(seed: int) -> None:
        try:
            with connect_as_owner(db_url) as conn:
                users = uuids(10, seed=seed)
                for n in range(15):
                    insert_traffic(conn, users, 20, seed=seed * 100 + n)
        finally:
            stop.set()

    def refresh_until_stopped() -> int:
        total = 0
        with connect_as_owner(db_url) as conn:
            while not stop.is_set():
                total += refresh(conn)
        return total + refresh_once(db_url)

    with ThreadPoolExecutor(2) as pool:
        refreshed = pool.submit(refresh_until_stopped)
        pool.submit(write, 73).result()
        assert refreshed.result() > 0
    assert_reads_equal_live(rolled)
    refresh(rolled)
    assert dirty_days(rolled) == []
    assert_reads_equal_live(rolled)


def refresh_once(db_url: str) -> int:
    with connect_as_owner(db_url) as conn:
        return refresh(conn)


def test_service_role_refreshes(rolled: psycopg.Connection) -> None:
    with acting_as(rolled, "service_role"):
        assert scalar(rolled, "select rec_refresh_daily_rollups(%s)", [LAST]) == len(DAYS)
        assert rows(rolled, "select * from rec_variant_daily_metrics_v1") == rows(rolled, LIVE_METRICS)


def test_impression_ids_are_time_ordered_uuid_v7(db: psycopg.Connection) -> None:
    before = scalar(db, "select (extract(epoch from clock_timestamp()) * 1000)::bigint")
    ids = [
        uuid.UUID(str(scalar(db, "insert into rec_impressions (user_id) values (%s) returning id", [user])))
        for user in uuids(50, seed=74)
    ]
    after = scalar(db, "select (extract(epoch from clock_timestamp()) * 1000)::bigint")
    assert {u.version for u in ids} == {7}
    assert {u.variant for u in ids} == {uuid.RFC_4122}
    millis = [u.int >> 80 for u in ids]
    assert before <= millis[0] and millis == sorted(millis) and millis[-1] <= after
    assert len(set(ids)) == len(ids)


def test_dev_stack_job_refreshes_in_the_background(rolled: psycopg.Connection, db_url: str) -> None:
    """`recsys-exp dev --refresh-every`: the job rolls up finished days by itself."""
    assert jobs.refresh_rollups(db_url) == len(DAYS)
    rolled.execute(
        "insert into rec_impressions (user_id, request_context, created_at) values (%s, %s, %s)",
        [uuid.uuid4(), json.dumps({"experiments": {"e1": "a"}}), "2026-03-02T10:00:00+00:00"],
    )
    with jobs.refreshing_rollups(db_url, every=0.05):
        for _ in range(600):  # bounded wait for the background thread
            if not dirty_days(rolled):
                break
            threading.Event().wait(0.05)
    assert dirty_days(rolled) == []
    assert_reads_equal_live(rolled)


def results_answers(conn: psycopg.Connection) -> dict[tuple[Any, ...], Any]:
    return {
        (key, lo, hi): scalar(conn, "select rec_experiment_results_stats(%s, %s, %s)", [key, lo, hi])
        for key in VARIANTS
        for lo, hi in WINDOWS
    }


def test_results_rpc_answers_the_same_before_and_after_refresh(rolled: psycopg.Connection) -> None:
    live = results_answers(rolled)
    assert any(a["health"]["exposed_users"] for a in live.values()), "the data set must expose users"
    assert refresh(rolled) == len(DAYS)
    assert results_answers(rolled) == live
    insert_outcomes(rolled, insert_traffic(rolled, uuids(40, seed=70), 200, seed=72), seed=73)
    assert results_answers(rolled) != live  # late traffic shows at once, before the next refresh
    late = results_answers(rolled)
    refresh(rolled)
    assert results_answers(rolled) == late


def add_today(conn: psycopg.Connection, users: list[uuid.UUID], n: int, seed: int) -> None:
    """n impressions stamped now (today: always dirty), a third with outcomes."""
    rng = random.Random(seed)
    for k in range(n):
        imp = scalar(
            conn,
            "insert into rec_impressions (user_id, request_context) values (%s, %s) returning id",
            [rng.choice(users), json.dumps(random_context(rng))],
        )
        if k % 3 == 0:
            conn.execute(
                "insert into rec_outcomes (impression_id, user_id, outcome, value)"
                " select id, user_id, %s, %s from rec_impressions where id = %s",
                [rng.choice(("click", "save")), rng.choice(VALUES), imp],
            )


def test_today_dirty_with_late_outcomes_on_rolled_days(rolled: psycopg.Connection) -> None:
    """Production's steady state: the past rolled up, today written as it
    comes, late outcomes landing on rolled days. Windows reaching today."""
    refresh(rolled)
    users = uuids(40, seed=70)
    add_today(rolled, users, 30, seed=80)
    old = rolled.execute(
        "select id, user_id, created_at from rec_impressions where (created_at at time zone 'UTC')::date = %s"
        " order by id limit 15",
        [DAYS[2]],
    ).fetchall()
    insert_outcomes(rolled, old, seed=81)
    today = scalar(rolled, "select (now() at time zone 'UTC')::date")
    assert dirty_days(rolled) == [DAYS[2], today]
    assert_reads_equal_live(rolled)
    for key in VARIANTS:
        params = {"key": key, "lo": DAYS[1], "hi": today}
        assert rows(
            rolled, "select * from rec_internal.results_user_outcome_counts(%(key)s, %(lo)s, %(hi)s)", params
        ) == rows(rolled, LIVE_USER_OUTCOMES, params)
        chart = rolled.execute("select * from rec_experiment_daily_metrics(%s, %s, %s)", [key, today, today])
        assert sorted(chart.fetchall()) == sorted(
            r for r in rows(rolled, LIVE_METRICS) if r[1] == key and r[0] == today
        )
    assert refresh(rolled) == 1  # DAYS[2] again; today stays dirty
    assert dirty_days(rolled) == [today]
    assert_reads_equal_live(rolled)


def test_assignment_and_lifetime_changes_make_rolled_days_dirty(rolled: psycopg.Connection) -> None:
    """Untagged counts depend on assigned_at, started_at and ended_at: a
    change reaching back into rolled days sends those days live again."""
    refresh(rolled)
    e1 = scalar(rolled, "select id from rec_experiments where key = 'e1'")
    # an override restamps assigned_at (the user's earlier impressions stop counting)
    rolled.execute(
        "update rec_user_experiment_assignments set assigned_at = '2026-03-03T12:00:00+00:00'"
        " where experiment_id = %s and user_id = %s",
        [e1, uuids(40, seed=70)[0]],
    )
    assert dirty_days(rolled) == DAYS
    assert_reads_equal_live(rolled)
    refresh(rolled)
    # a user assigned in the past who had impressions before (a late import)
    rolled.execute(
        "insert into rec_user_experiment_assignments (experiment_id, user_id, variant, assigned_at)"
        " values (%s, %s, 'b', '2026-03-04T01:00:00+00:00')",
        [e1, uuids(40, seed=70)[-1]],
    )
    assert dirty_days(rolled) == DAYS[3:]
    assert_reads_equal_live(rolled)
    refresh(rolled)
    rolled.execute("delete from rec_user_experiment_assignments where experiment_id = %s", [e1])
    assert_reads_equal_live(rolled)
    refresh(rolled)
    rolled.execute("truncate rec_user_experiment_assignments")
    assert dirty_days(rolled) == DAYS
    assert_reads_equal_live(rolled)
    refresh(rolled)
    rolled.execute("update rec_experiments set ended_at = '2026-03-03T08:00:00+00:00' where key = 'e3'")
    assert dirty_days(rolled) == DAYS[2:]
    assert_reads_equal_live(rolled)
    refresh(rolled)
    rolled.execute("update rec_experiments set started_at = '2026-03-02T05:00:00+00:00' where key = 'e1'")
    assert_reads_equal_live(rolled)
    refresh(rolled)
    assert_reads_equal_live(rolled)


def test_new_assignments_now_leave_rolled_days_clean(rolled: psycopg.Connection) -> None:
    """The hot path (a first assignment, stamped now) never dirties the past."""
    refresh(rolled)
    e1 = scalar(rolled, "select id from rec_experiments where key = 'e1'")
    rolled.execute(
        "insert into rec_user_experiment_assignments (experiment_id, user_id, variant) values (%s, %s, 'a')",
        [e1, uuid.uuid4()],
    )
    assert dirty_days(rolled) == []


def test_refresh_by_day_commits_each_day(rolled: psycopg.Connection, db_url: str) -> None:
    row = rolled.execute("call rec_refresh_daily_rollups_by_day(%s, null)", [DAYS[2]]).fetchone()
    assert row is not None and row[0] == 3
    assert dirty_days(rolled) == DAYS[3:]
    assert rolled.execute("call rec_refresh_daily_rollups_by_day(%s, null)", [LAST]).fetchone() == (2,)
    assert_reads_equal_live(rolled)
    # it commits, so it cannot run inside a transaction block; nothing changes
    with connect_as_owner(db_url) as other:
        with pytest.raises(psycopg.Error) as info, other.transaction():
            other.execute(
                "insert into rec_impressions (user_id, created_at) values (%s, %s)",
                [uuid.uuid4(), "2026-03-01T10:00:00+00:00"],
            )
            other.execute("call rec_refresh_daily_rollups_by_day(%s, null)", [LAST])
        assert info.value.sqlstate == "2D000"
    assert dirty_days(rolled) == []


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_refresh_is_not_for_clients(rolled: psycopg.Connection, role: str) -> None:
    for call in ("select rec_refresh_daily_rollups(%s)", "call rec_refresh_daily_rollups_by_day(%s, null)"):
        with acting_as(rolled, role), raises_sqlstate(rolled, "42501"):
            rolled.execute(call, [LAST])
    assert dirty_days(rolled) == DAYS
    assert scalar(rolled, "select count(*) from rec_internal.rollup_user_day") == 0


def test_rollup_rows_are_narrow(rolled: psycopg.Connection) -> None:
    """Strings appear once per (experiment, variant), not once per row."""
    refresh(rolled)
    columns = rolled.execute(
        "select table_name, column_name from information_schema.columns"
        " where table_schema = 'rec_internal' and table_name like 'rollup_user%%' and data_type = 'text'"
    ).fetchall()
    assert columns == [("rollup_user_day_outcome", "outcome")]


def test_uuid_v7_is_inlined(db: psycopg.Connection) -> None:
    """No SET clause: the planner replaces the call by its expression (a
    default evaluated per row costs no function call), whatever search_path."""
    db.execute("set search_path = public, pg_catalog")
    plan = scalar(db, "explain (verbose, format json) select rec_internal.uuid_v7()")
    output = plan[0]["Plan"]["Output"][0]
    assert "uuid_v7" not in output and "gen_random_uuid" in output
    db.execute("reset search_path")
