"""Layers and coverage on the hot path: rec_assign_variants over 10 active
experiments, 5 of them each in its own layer at coverage 0.5.

1. layers_sticky: users stored in all 10 experiments, the 5 layered vs the
   same users and experiments with no layers (coverage 1). Same script,
   same stored rows; between rounds only the 5 experiments' layer and
   coverage columns are switched. Target: <= 1.15x the time.
2. layers_uncovered: a user covered by none of the 5 layered experiments
   (stored in the other 5, nothing stored for the layered ones: the rule
   runs on every call and answers "not in it") vs a fully stored user.
   Target: <= 1.3x the time.

Its own database (other benchmarks' active experiments would be in every
map), users drawn by pgbench from a table of each kind.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg

from bench.fixtures import ADMIN, VARIANTS, user_sql
from bench.harness import BenchError, Result, alternate, progress, run_pgbench
from devstack import migrate, postgres

KEYS = [f"layers-{i:02d}" for i in range(10)]
LAYERED = KEYS[:5]
POPULATION = 32_000  # ~1/32 of them covered by all five layered experiments, ~1/32 by none
COVERAGE = 0.5
KINDS = {"all": len(LAYERED), "none": 0}  # of how many layered experiments the rule lets them in

SCRIPT = (
    "\\set i random(1, :count)\n"
    "select public.rec_assign_variants("
    "(select id from public.bench_layer_users where covered = :covered and i = :i));\n"
)


def bench_layers(url: str, clients: int, seconds: int, rounds: int) -> list[Result]:
    with postgres.fresh_database(postgres.Server(url=url), prefix="rec_bench_layers") as own:
        migrate.migrate(own)
        with psycopg.connect(own, autocommit=True) as conn:
            counts = _load(conn)
            return [
                _sticky(own, conn, counts, clients, seconds, rounds),
                _uncovered(own, conn, counts, clients, seconds, rounds),
            ]


def _load(conn: psycopg.Connection) -> dict[str, int]:
    start = time.perf_counter()
    for i, key in enumerate(KEYS):
        layer = f"layer-{i}" if key in LAYERED else None
        if layer:
            conn.execute("select public.rec_create_layer(%s, %s::uuid)", [layer, ADMIN])
        conn.execute(
            "select public.rec_create_experiment(%s, %s::jsonb, %s::uuid, layer_key => %s, coverage => %s)",
            [key, VARIANTS, ADMIN, layer, COVERAGE if layer else 1],
        )
        conn.execute("select public.rec_activate_experiment(%s, %s::uuid)", [key, ADMIN])
    # Who the rule lets into how many of the layered experiments.
    conn.execute(
        f"""
        create table public.bench_layer_users as
        with covered as (
          select u.id, count(*) filter (
                   where rec_internal.rule_variant(e.salt, u.id, e.variants, e.coverage, l.salt,
                                                   e.layer_range) is not null) as n
            from (select {user_sql("g")} as id from generate_series(1, %s) g) u
           cross join public.rec_experiments e
            join public.rec_layers l on l.id = e.layer_id
           group by u.id)
        select n as covered, (row_number() over (partition by n order by id))::int as i, id
          from covered where n in (0, %s)""",
        [POPULATION, len(LAYERED)],
    )
    conn.execute("alter table public.bench_layer_users add primary key (covered, i)")
    # Stored: every experiment the rule lets each of them into.
    conn.execute(
        """
        insert into public.rec_user_experiment_assignments (experiment_id, user_id, variant)
        select e.id, b.id, v
          from public.bench_layer_users b
         cross join public.rec_experiments e
          left join public.rec_layers l on l.id = e.layer_id
         cross join lateral rec_internal.rule_variant(e.salt, b.id, e.variants, e.coverage, l.salt,
                                                      e.layer_range) v
         where v is not null"""
    )
    conn.execute("vacuum (analyze)")
    by_covered = dict(
        conn.execute("select covered, count(*) from public.bench_layer_users group by 1").fetchall()
    )
    counts = {"all": int(by_covered.get(len(LAYERED), 0)), "none": int(by_covered.get(0, 0))}
    progress(
        f"   layers: {counts.get('all', 0):,} users stored in all 10, {counts.get('none', 0):,} "
        f"covered by none of the 5 layered, in {time.perf_counter() - start:.1f} s"
    )
    if min(counts.get("all", 0), counts.get("none", 0)) < 100:
        raise BenchError(f"layers: too few users of each kind: {counts}")
    _check(conn)
    return counts


def _check(conn: psycopg.Connection) -> None:
    """Fully stored users get all 10 keys, uncovered ones the 5 unlayered."""
    for kind, want in (("all", set(KEYS)), ("none", set(KEYS) - set(LAYERED))):
        row = conn.execute(
            "select public.rec_assign_variants(id) from public.bench_layer_users"
            " where covered = %s and i = 1",
            [KINDS[kind]],
        ).fetchone()
        if row is None or set(row[0]) != want:
            raise BenchError(f"layers: a user of kind {kind!r} got {row}, expected the keys {sorted(want)}")


def _layered(conn: psycopg.Connection, on: bool) -> None:
    """Switch the five experiments between their layers (coverage 0.5) and no
    layer (coverage 1), as the owner. Stored rows stay as they are."""
    for i, key in enumerate(LAYERED):
        if on:
            conn.execute(
                "update public.rec_experiments set layer_range = int4range(0, 10000), coverage = %s,"
                " layer_id = (select id from public.rec_layers where key = %s) where key = %s",
                [COVERAGE, f"layer-{i}", key],
            )
        else:
            conn.execute(
                "update public.rec_experiments set layer_id = null, layer_range = null, coverage = 1"
                " where key = %s",
                [key],
            )


def _stored(conn: psycopg.Connection) -> int:
    row = conn.execute("select count(*) from public.rec_user_experiment_assignments").fetchone()
    return int(row[0]) if row else 0


def _ms_per_call(
    url: str, kind: str, count: int, clients: int, seconds: int, before: Callable[[], None]
) -> Callable[[], float]:
    def run() -> float:
        before()
        variables = {"covered": str(KINDS[kind]), "count": str(count)}
        got = run_pgbench(url, SCRIPT, clients=clients, seconds=seconds, variables=variables)
        return 1000.0 * clients / got.tps

    return run


def _pair(
    conn: psycopg.Connection, name: str, base: Callable[[], float], cand: Callable[[], float], rounds: int
) -> tuple[list[float], list[float]]:
    def show(r: int, a: float, b: float) -> None:
        progress(
            f"   {name} round {r}/{rounds}: baseline {a:.3f} ms, candidate {b:.3f} ms, ratio {b / a:.2f}"
        )

    stored = _stored(conn)
    a, b = alternate(base, cand, rounds, show)
    if _stored(conn) != stored:
        raise BenchError(f"{name}: rows were written during the runs; nothing was meant to be")
    return a, b


def _sticky(
    url: str, conn: psycopg.Connection, counts: dict[str, int], clients: int, seconds: int, rounds: int
) -> Result:
    base = _ms_per_call(url, "all", counts["all"], clients, seconds, lambda: _layered(conn, False))
    cand = _ms_per_call(url, "all", counts["all"], clients, seconds, lambda: _layered(conn, True))
    a, b = _pair(conn, "layers_sticky", base, cand, rounds)
    _layered(conn, True)
    return Result(
        name="layers_sticky",
        title="sticky rec_assign_variants, 10 active (5 layered at coverage 0.5) vs the same with no layers",
        baseline_label="no layers, coverage 1 (same users, same stored rows)",
        candidate_label="5 experiments each in a layer, coverage 0.5",
        unit="ms",
        baseline=a,
        candidate=b,
        ratio_label="candidate/baseline time per call",
        target=1.15,
        higher_is_better=False,
        notes=[
            f"pgbench -M prepared -c {clients} -T {seconds}, {rounds} alternating rounds per side, "
            f"{counts['all']:,} users stored in all 10; no rows written",
            "verdict: the median of the paired per-round ratios",
        ],
    )


def _uncovered(
    url: str, conn: psycopg.Connection, counts: dict[str, int], clients: int, seconds: int, rounds: int
) -> Result:
    _layered(conn, True)
    base = _ms_per_call(url, "all", counts["all"], clients, seconds, lambda: None)
    cand = _ms_per_call(url, "none", counts["none"], clients, seconds, lambda: None)
    a, b = _pair(conn, "layers_uncovered", base, cand, rounds)
    return Result(
        name="layers_uncovered",
        title="rec_assign_variants: a user covered by none of the 5 layered vs a fully stored one",
        baseline_label="stored in all 10",
        candidate_label="stored in the 5 unlayered, the rule leaves them out of the rest",
        unit="ms",
        baseline=a,
        candidate=b,
        ratio_label="candidate/baseline time per call",
        target=1.3,
        higher_is_better=False,
        notes=[
            f"pgbench -M prepared -c {clients} -T {seconds}, {rounds} alternating rounds per side, "
            f"{counts['none']:,} uncovered and {counts['all']:,} fully stored users; no rows written",
            "verdict: the median of the paired per-round ratios",
        ],
    )
