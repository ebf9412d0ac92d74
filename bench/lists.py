"""Kept assignment counts: what they cost the recommender's hot path, and
what they save the experiment list.

- **assign_new_counted** (pgbench, 8 clients: the contention the sharded
  counters exist for): a first-time `rec_assign_variant` (a new user every
  call, so every call inserts) against a bare insert of the same row into
  a copy of the assignments table with its indexes but no foreign key,
  check or trigger; and the same call with the counting triggers disabled,
  so one run measures the hot path before and after the counters.
- **list_experiments**: `rec_list_experiments` over ten experiments holding
  1,000,000 assignments against the same call over ten holding 1,000 (a
  search picks each set, so both calls return ten rows with their counts
  and alternate in the same run). Before the counts were kept this counted
  every assignment on every call.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import psycopg

from bench import fixtures
from bench.harness import BenchError, Result, progress, run_pgbench, timed_ms

CLIENTS = 8
NEW_KEY = "bench-new-users"
COUNT_TRIGGERS = (
    "rec_assignments_count_insert",
    "rec_assignments_count_update",
    "rec_assignments_count_delete",
    "rec_assignments_count_truncate",
)
SMALL = [f"bench-list-small-{i}" for i in range(10)]
LARGE = [f"bench-list-large-{i}" for i in range(10)]
LIST_CALL = "select * from public.rec_list_experiments(search => %s)"
BARE = "bench_bare_assignments"


# --------------------------------------------------------------------------
# The hot path: a new user's first assignment


def _set_counting(url: str, on: bool) -> None:
    verb = "enable" if on else "disable"
    with psycopg.connect(url, autocommit=True) as conn:
        for trigger in COUNT_TRIGGERS:
            conn.execute(f"alter table public.rec_user_experiment_assignments {verb} trigger {trigger}")


def _rotated(sides: list[Callable[[], float]], rounds: int) -> list[list[float]]:
    """Each side once per round, the order rotated round by round so drifts
    of the machine hit every side alike."""
    got: list[list[float]] = [[] for _ in sides]
    for r in range(rounds):
        for i in [(r + k) % len(sides) for k in range(len(sides))]:
            got[i].append(sides[i]())
    return got


def bench_assign_new(url: str, seconds: int, rounds: int) -> list[Result]:
    with psycopg.connect(url, autocommit=True) as conn:
        fixtures.create_active_experiments(conn, [NEW_KEY])
        eid = fixtures.experiment_id(conn, NEW_KEY)
        conn.execute(
            f"create table public.{BARE} (like public.rec_user_experiment_assignments"
            " including defaults including indexes)"
        )
    bare = (
        f"insert into public.{BARE} (experiment_id, user_id, variant, assignment_mode)"
        " values (:eid, gen_random_uuid(), 'control', 'auto');\n"
    )
    assign = "select public.rec_assign_variant(:key, gen_random_uuid());\n"
    variables = {"eid": eid, "key": NEW_KEY}

    def run(script: str, counting: bool | None = None) -> float:
        if counting is not None:
            _set_counting(url, counting)
        return run_pgbench(url, script, clients=CLIENTS, seconds=seconds, variables=variables).tps

    try:
        base, uncounted, counted = _rotated(
            [lambda: run(bare), lambda: run(assign, False), lambda: run(assign, True)], rounds
        )
    finally:
        _set_counting(url, True)
    for r, (a, b, c) in enumerate(zip(base, uncounted, counted, strict=True), 1):
        progress(f"   assign_new round {r}/{rounds}: bare {a:,.0f}, uncounted {b:,.0f}, counted {c:,.0f} tps")
    _check_counts(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select public.rec_end_experiment(%s, %s)", [NEW_KEY, fixtures.ADMIN])
        conn.execute(f"drop table public.{BARE}")
    notes = [
        f"pgbench -M prepared -c {CLIENTS} -j {CLIENTS} -T {seconds}, {rounds} rotated rounds per side; "
        "a new random user every call (every call inserts)",
        f"per-round ratios counted/bare: {_ratios(counted, base)}",
        f"per-round ratios counted/uncounted: {_ratios(counted, uncounted)}",
    ]
    return [
        Result(
            name="assign_new_counted",
            title="first-time rec_assign_variant (counts kept) vs a bare insert of the row, 8 clients",
            baseline_label="insert into a bare copy (indexes only)",
            candidate_label="select rec_assign_variant($1, gen_random_uuid())",
            unit="tps",
            baseline=base,
            candidate=counted,
            ratio_label="candidate/baseline throughput",
            target=0.6,
            higher_is_better=True,
            notes=notes,
        ),
        Result(
            name="assign_new_count_cost",
            title="first-time rec_assign_variant with the counting triggers vs without them",
            baseline_label="rec_assign_variant, counting triggers disabled",
            candidate_label="rec_assign_variant, counts kept",
            unit="tps",
            baseline=uncounted,
            candidate=counted,
            ratio_label="counted/uncounted throughput",
            target=0.85,
            higher_is_better=True,
            notes=notes[:1],
        ),
    ]


def _ratios(a: list[float], b: list[float]) -> str:
    ratios = [x / y for x, y in zip(a, b, strict=True)]
    return f"{', '.join(f'{r:.2f}' for r in ratios)} (median {statistics.median(ratios):.2f})"


def _check_counts(url: str) -> None:
    """The disabled rounds left the counts short on purpose; recount so the
    database stays exact for the benchmarks after this one."""
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("delete from rec_internal.assignment_counts")
            conn.execute(
                "insert into rec_internal.assignment_counts"
                " select experiment_id, variant, assignment_mode, 0, count(*)"
                "   from public.rec_user_experiment_assignments group by 1, 2, 3"
            )
        row = conn.execute("select count(*) from public.rec_user_experiment_assignments").fetchone()
    if not row or row[0] == 0:
        raise BenchError("assign_new: no assignment was written")


# --------------------------------------------------------------------------
# The list: 1,000,000 assignments vs 1,000


def bench_list(url: str, query_rounds: int, warmup: int) -> Result:
    with psycopg.connect(url, autocommit=True) as conn:
        for keys, users in ((SMALL, 100), (LARGE, 100_000)):
            fixtures.create_active_experiments(conn, keys)
            fixtures.assign_population(conn, keys, users)
            for key in keys:  # ended: out of the way of the benchmarks that count active ones
                conn.execute("select public.rec_end_experiment(%s, %s)", [key, fixtures.ADMIN])
        totals = {}
        for label, search in (("small", "bench-list-small-"), ("large", "bench-list-large-")):
            cur = conn.execute(LIST_CALL, [search], prepare=True)
            assert cur.description is not None
            column = [d.name for d in cur.description].index("assigned_users")
            rows = cur.fetchall()
            totals[label] = sum(r[column] for r in rows)
            if len(rows) != 10:
                raise BenchError(f"list: expected 10 {label} experiments, got {len(rows)}")
        if totals != {"small": 1_000, "large": 1_000_000}:
            raise BenchError(f"list: expected 1,000 and 1,000,000 assignments, got {totals}")

        def small() -> float:
            return timed_ms(lambda: conn.execute(LIST_CALL, ["bench-list-small-"], prepare=True).fetchall())

        def large() -> float:
            return timed_ms(lambda: conn.execute(LIST_CALL, ["bench-list-large-"], prepare=True).fetchall())

        for _ in range(warmup):
            small()
            large()
        a, b = [], []
        for r in range(query_rounds):
            if r % 2 == 0:
                a.append(small())
                b.append(large())
            else:
                b.append(large())
                a.append(small())
            progress(f"   list round {r + 1}/{query_rounds}: 1k {a[-1]:.2f} ms, 1M {b[-1]:.2f} ms")
    return Result(
        name="list_experiments",
        title="rec_list_experiments over 10 experiments with 1,000,000 assignments vs 10 with 1,000",
        baseline_label="rec_list_experiments(search => small set): 1,000 assignments",
        candidate_label="rec_list_experiments(search => large set): 1,000,000 assignments",
        unit="ms",
        baseline=a,
        candidate=b,
        ratio_label="candidate/baseline time",
        target=5.0,
        higher_is_better=False,
        notes=[
            f"psycopg, prepared, {query_rounds} alternating timed runs per side after {warmup} warm-up runs; "
            f"per-round ratios {_ratios(b, a)}"
        ],
    )
