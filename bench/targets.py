"""The three performance targets, each measured against its
baseline in the same run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from bench import cuped, fixtures, layers, lists, metric_catalogue, rollups, signed_in
from bench.fixtures import user_sql
from bench.harness import BenchError, Result, alternate, progress, run_pgbench, timed_ms


@dataclass
class Config:
    seconds: int = 5  # per pgbench run
    rounds: int = 3  # pgbench rounds per side
    clients: int = 2
    users: int = 100_000  # pre-assigned population
    impressions: int = 1_000_000
    query_rounds: int = 5  # metrics: timed runs per side
    # metrics: untimed runs per side first. Past 5 executions a prepared
    # statement (and plpgsql's RETURN QUERY) may switch to its generic plan;
    # PostgREST's pooled connections live in that steady state.
    warmup: int = 6


class BenchDatabase:
    """A migrated database; the data each benchmark needs is made on first use."""

    def __init__(self, url: str, cfg: Config):
        self.url = url
        self.cfg = cfg
        self._assigned = False
        self._impressions = False
        self._results = False

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True)

    def ensure_assignments(self) -> None:
        if self._assigned:
            return
        with self.connect() as conn:
            fixtures.create_active_experiments(conn, fixtures.ASSIGN_KEYS)
            fixtures.assign_population(conn, fixtures.ASSIGN_KEYS, self.cfg.users)
        self._assigned = True

    def ensure_impressions(self) -> None:
        if self._impressions:
            return
        with self.connect() as conn:
            fixtures.create_active_experiments(conn, [fixtures.METRICS_KEY])
            fixtures.assign_population(conn, [fixtures.METRICS_KEY], self.cfg.users)
            fixtures.load_impressions(conn, fixtures.METRICS_KEY, self.cfg.impressions, self.cfg.users)
        self._impressions = True

    def ensure_results(self) -> None:
        if self._results:
            return
        with self.connect() as conn:
            fixtures.create_active_experiments(conn, [fixtures.RESULTS_KEY])
            fixtures.assign_population(conn, [fixtures.RESULTS_KEY], self.cfg.users)
            fixtures.load_impressions(
                conn,
                fixtures.RESULTS_KEY,
                self.cfg.impressions,
                self.cfg.users,
                first_day=fixtures.RESULTS_FIRST_DAY,
                days=fixtures.RESULTS_DAYS,
            )
        self._results = True

    def assignment_count(self) -> int:
        with self.connect() as conn:
            row = conn.execute("select count(*) from public.rec_user_experiment_assignments").fetchone()
        return int(row[0]) if row else 0


def _pgbench_pair(
    db: BenchDatabase, name: str, base_script: str, cand_script: str, variables: dict[str, str]
) -> tuple[list[float], list[float]]:
    cfg = db.cfg

    def run(script: str) -> float:
        return run_pgbench(db.url, script, clients=cfg.clients, seconds=cfg.seconds, variables=variables).tps

    def show(r: int, a: float, b: float) -> None:
        progress(
            f"   {name} round {r}/{cfg.rounds}: baseline {a:,.0f} tps, "
            f"candidate {b:,.0f} tps, ratio {b / a:.2f}"
        )

    before = db.assignment_count()
    result = alternate(lambda: run(base_script), lambda: run(cand_script), cfg.rounds, show)
    after = db.assignment_count()
    if after != before:
        raise BenchError(
            f"{name}: {after - before} assignment rows were written during the "
            "runs; these were meant to be sticky hits only"
        )
    return result


def _pgbench_notes(cfg: Config) -> list[str]:
    return [
        f"pgbench -M prepared -c {cfg.clients} -j {cfg.clients} -T {cfg.seconds}, "
        f"{cfg.rounds} alternating rounds per side, random users of {cfg.users:,} "
        "pre-assigned; no rows written"
    ]


# --------------------------------------------------------------------------
# 1. Sticky hit of rec_assign_variant vs the bare primary-key lookup


def bench_assign(db: BenchDatabase) -> Result:
    db.ensure_assignments()
    key = fixtures.ASSIGN_KEYS[0]
    with db.connect() as conn:
        eid = fixtures.experiment_id(conn, key)
        # Same answer both ways (a sticky hit returns the stored row).
        for number in (1, db.cfg.users // 2, db.cfg.users):
            uid = conn.execute(f"select {user_sql('%s')}", [number]).fetchone()[0]  # type: ignore[index]
            direct = conn.execute(
                "select variant from public.rec_user_experiment_assignments"
                " where experiment_id = %s and user_id = %s",
                [eid, uid],
            ).fetchone()
            via_rpc = conn.execute("select public.rec_assign_variant(%s, %s)", [key, uid]).fetchone()
            if direct is None or via_rpc is None or direct[0] != via_rpc[0]:
                raise BenchError(f"assign: user {number} got {via_rpc} from the RPC, stored {direct}")
    draw = f"\\set n random(1, {db.cfg.users})\n"
    baseline = draw + (
        "select variant from public.rec_user_experiment_assignments\n"
        f" where experiment_id = :eid and user_id = {user_sql(':n')};\n"
    )
    candidate = draw + f"select public.rec_assign_variant(:key, {user_sql(':n')});\n"
    a, b = _pgbench_pair(db, "assign", baseline, candidate, {"eid": eid, "key": key})
    return Result(
        name="assign",
        title="sticky hit of rec_assign_variant(key, user) vs bare PK lookup of the same row",
        baseline_label="select variant ... where experiment_id = $1 and user_id = $2",
        candidate_label="select rec_assign_variant($1, $2)",
        unit="tps",
        baseline=a,
        candidate=b,
        ratio_label="candidate/baseline throughput",
        target=0.8,
        higher_is_better=True,
        notes=_pgbench_notes(db.cfg),
    )


# --------------------------------------------------------------------------
# 1b. First call for a new user (the rule, then the insert) vs a bare insert


def bench_assign_new(db: BenchDatabase) -> Result:
    db.ensure_assignments()
    key = fixtures.ASSIGN_KEYS[1]
    cfg = db.cfg
    with db.connect() as conn:
        eid = fixtures.experiment_id(conn, key)
    baseline = (
        "insert into public.rec_user_experiment_assignments (experiment_id, user_id, variant)\n"
        " values (:eid, gen_random_uuid(), 'control');\n"
    )
    candidate = "select public.rec_assign_variant(:key, gen_random_uuid());\n"

    def run(script: str) -> float:
        variables = {"eid": eid, "key": key}
        return run_pgbench(db.url, script, clients=cfg.clients, seconds=cfg.seconds, variables=variables).tps

    def show(r: int, a: float, b: float) -> None:
        progress(f"   assign_new round {r}/{cfg.rounds}: baseline {a:,.0f} tps, candidate {b:,.0f} tps")

    a, b = alternate(lambda: run(baseline), lambda: run(candidate), cfg.rounds, show)
    return Result(
        name="assign_new",
        title="rec_assign_variant for a new user (rule + insert) vs a bare insert of the same row",
        baseline_label="insert into rec_user_experiment_assignments values ($1, random uuid, 'control')",
        candidate_label="select rec_assign_variant($1, random uuid)",
        unit="tps",
        baseline=a,
        candidate=b,
        ratio_label="candidate/baseline throughput",
        target=0.6,
        higher_is_better=True,
        notes=[
            f"pgbench -M prepared -c {cfg.clients} -j {cfg.clients} -T {cfg.seconds}, {cfg.rounds} "
            "alternating rounds per side; every transaction writes one new assignment row"
        ],
    )


# --------------------------------------------------------------------------
# 2. rec_assign_variants (one call) vs ten rec_assign_variant calls


def bench_assign_many(db: BenchDatabase) -> Result:
    db.ensure_assignments()
    keys = fixtures.ASSIGN_KEYS
    with db.connect() as conn:
        active = conn.execute(
            "select count(*) from public.rec_experiments where status = 'active'"
        ).fetchone()
        uid = conn.execute(f"select {user_sql('7')}").fetchone()[0]  # type: ignore[index]
        row = conn.execute("select public.rec_assign_variants(%s)", [uid]).fetchone()
        got = row[0] if row else None
        want = {
            k: conn.execute("select public.rec_assign_variant(%s, %s)", [k, uid]).fetchone()[0]  # type: ignore[index]
            for k in keys
        }
    if not active or active[0] != len(keys) or not isinstance(got, dict) or got != want:
        raise BenchError(
            f"assign_many: expected {len(keys)} active experiments and the map "
            f"{want}, got {active} active and {got}"
        )
    draw = f"\\set n random(1, {db.cfg.users})\n"
    baseline = draw + "".join(f"select public.rec_assign_variant('{k}', {user_sql(':n')});\n" for k in keys)
    candidate = draw + f"select public.rec_assign_variants({user_sql(':n')});\n"
    a, b = _pgbench_pair(db, "assign_many", baseline, candidate, {})
    return Result(
        name="assign_many",
        title=f"rec_assign_variants(user) vs {len(keys)} rec_assign_variant calls "
        f"({len(keys)} active experiments, sticky users)",
        baseline_label=f"{len(keys)} x select rec_assign_variant(k, $1) (one pgbench txn)",
        candidate_label="select rec_assign_variants($1)",
        unit="tps",
        baseline=a,
        candidate=b,
        ratio_label="speedup (candidate/baseline tps)",
        target=5.0,
        higher_is_better=True,
        notes=[
            *_pgbench_notes(db.cfg),
            "one pgbench transaction = all variants of one user (10 autocommit statements vs 1)",
        ],
    )


# --------------------------------------------------------------------------
# 3. rec_experiment_daily_metrics vs a one-pass count / count distinct by day

METRICS_BASELINE = """
select (i.created_at at time zone 'UTC')::date as day, count(*) as impressions,
       count(distinct i.user_id) as users
  from public.rec_impressions i
 where (i.created_at at time zone 'UTC')::date between %(from)s and %(to)s
 group by 1 order by 1"""

METRICS_CANDIDATE = "select * from public.rec_experiment_daily_metrics(%(key)s, %(from)s, %(to)s)"


def bench_metrics(db: BenchDatabase) -> Result:
    db.ensure_impressions()
    cfg = db.cfg
    first = fixtures.METRICS_FIRST_DAY
    last = first + dt.timedelta(days=fixtures.METRICS_DAYS - 1)
    params = {"key": fixtures.METRICS_KEY, "from": first, "to": last}
    with db.connect() as conn:

        def baseline() -> float:
            return timed_ms(lambda: conn.execute(METRICS_BASELINE, params, prepare=True).fetchall())

        def candidate() -> float:
            return timed_ms(lambda: conn.execute(METRICS_CANDIDATE, params, prepare=True).fetchall())

        # Both read the same impressions: the per-variant rows add up to the
        # baseline's per-day counts.
        base_rows = conn.execute(METRICS_BASELINE, params).fetchall()
        cand_rows = conn.execute(METRICS_CANDIDATE, params).fetchall()
        base_total = sum(r[1] for r in base_rows)
        cand_total = sum(r[3] for r in cand_rows)
        if (
            len(base_rows) != fixtures.METRICS_DAYS
            or base_total != cfg.impressions
            or cand_total != cfg.impressions
        ):
            raise BenchError(
                f"metrics: expected {cfg.impressions:,} impressions over "
                f"{fixtures.METRICS_DAYS} days, baseline saw {base_total:,} in "
                f"{len(base_rows)} days, the RPC {cand_total:,}"
            )
        for _ in range(cfg.warmup):  # reach the steady-state plans (see Config.warmup)
            baseline()
            candidate()

        def show(r: int, a: float, b: float) -> None:
            progress(
                f"   metrics round {r}/{cfg.query_rounds}: baseline {a:,.0f} ms, "
                f"candidate {b:,.0f} ms, ratio {b / a:.2f}"
            )

        a, b = alternate(baseline, candidate, cfg.query_rounds, show)
    outcomes = sum(r[5] for r in cand_rows)
    return Result(
        name="metrics",
        title=f"rec_experiment_daily_metrics over {fixtures.METRICS_DAYS} days vs one-pass "
        "count(*), count(distinct user_id) group by day",
        baseline_label="select day, count(*), count(distinct user_id) ... group by day",
        candidate_label="select * from rec_experiment_daily_metrics($1, $2, $3)",
        unit="ms",
        baseline=a,
        candidate=b,
        ratio_label="candidate/baseline time",
        target=2.0,
        higher_is_better=False,
        notes=[
            f"{cfg.impressions:,} impressions of one experiment, {outcomes:,} outcomes, "
            f"{len(cand_rows)} result rows; psycopg, prepared, {cfg.query_rounds} "
            f"alternating timed runs per side after {cfg.warmup} warm-up runs"
        ],
    )


# --------------------------------------------------------------------------
# 4. rec_experiment_results_stats vs a one-pass per-user group by

RESULTS_BASELINE = """
select i.user_id, count(*) as impressions
  from public.rec_impressions i
 where (i.created_at at time zone 'UTC')::date between %(from)s and %(to)s
 group by 1"""

RESULTS_CANDIDATE = "select public.rec_experiment_results_stats(%(key)s, %(from)s, %(to)s)"


def bench_results(db: BenchDatabase) -> list[Result]:
    """Twice: live over raw impressions (no refresh has run: a deployment
    without the rollup job), then once the 30 days are rolled up (what
    `recsys-exp dev` and the pg_cron recipe give)."""
    db.ensure_results()
    live = _time_results(db, rolled_up=False)
    with db.connect() as conn:
        last = fixtures.RESULTS_FIRST_DAY + dt.timedelta(days=fixtures.RESULTS_DAYS - 1)
        conn.execute("select public.rec_refresh_daily_rollups(%s)", [last])
    return [live, _time_results(db, rolled_up=True)]


def _time_results(db: BenchDatabase, *, rolled_up: bool) -> Result:
    cfg = db.cfg
    label = "rolled up" if rolled_up else "live"
    first = fixtures.RESULTS_FIRST_DAY
    last = first + dt.timedelta(days=fixtures.RESULTS_DAYS - 1)
    params = {"key": fixtures.RESULTS_KEY, "from": first, "to": last}
    with db.connect() as conn:

        def baseline() -> float:
            return timed_ms(lambda: conn.execute(RESULTS_BASELINE, params, prepare=True).fetchall())

        def candidate() -> float:
            return timed_ms(lambda: conn.execute(RESULTS_CANDIDATE, params, prepare=True).fetchall())

        # Both read the same impressions of the same users.
        base_rows = conn.execute(RESULTS_BASELINE, params).fetchall()
        row = conn.execute(RESULTS_CANDIDATE, params).fetchone()
        stats = row[0] if row else {}
        cand_users = sum(v["users"] for v in stats.get("stats", []))
        cand_total = sum(v["sum_n"] for v in stats.get("stats", []))
        base_total = sum(r[1] for r in base_rows)
        if base_total != cfg.impressions or cand_total != cfg.impressions or cand_users != len(base_rows):
            raise BenchError(
                f"results: expected {cfg.impressions:,} impressions, the baseline saw {base_total:,} "
                f"of {len(base_rows):,} users, the RPC {cand_total:,} of {cand_users:,}"
            )
        for _ in range(cfg.warmup):
            baseline()
            candidate()

        def show(r: int, a: float, b: float) -> None:
            progress(
                f"   results ({label}) round {r}/{cfg.query_rounds}: baseline {a:,.0f} ms, "
                f"candidate {b:,.0f} ms, ratio {b / a:.2f}"
            )

        a, b = alternate(baseline, candidate, cfg.query_rounds, show)
    return Result(
        name="results_rolled_up" if rolled_up else "results_live",
        title=f"rec_experiment_results_stats ({label}) over {fixtures.RESULTS_DAYS} days vs one-pass "
        "count(*) group by user_id",
        baseline_label="select user_id, count(*) ... where day between $1 and $2 group by user_id",
        candidate_label="select rec_experiment_results_stats($1, $2, $3)",
        unit="ms",
        baseline=a,
        candidate=b,
        ratio_label="candidate/baseline time",
        target=2.0,
        higher_is_better=False,
        notes=[
            f"{cfg.impressions:,} impressions of one experiment by {cand_users:,} users over "
            f"{fixtures.RESULTS_DAYS} days; psycopg, prepared, {cfg.query_rounds} alternating "
            f"timed runs per side after {cfg.warmup} warm-up runs"
        ],
    )


# --------------------------------------------------------------------------
# 5. Daily rollups at two sizes (bench/rollups.py; sizes from BENCH_SCALE)


def bench_rollups(db: BenchDatabase) -> list[Result]:
    return rollups.bench_rollups(db.url, db.cfg.query_rounds, db.cfg.warmup)


# --------------------------------------------------------------------------
# 6. Signed-in function calls (bench/signed_in.py)


def bench_signed_in(db: BenchDatabase) -> Result:
    return signed_in.bench_signed_in(db.url, max(db.cfg.query_rounds, 7))


# --------------------------------------------------------------------------
# 7. Results with one catalogue metric of each kind (bench/metric_catalogue.py)


def bench_metric_catalogue(db: BenchDatabase) -> list[Result]:
    return metric_catalogue.bench_metric_catalogue(db.url, db.cfg.query_rounds, db.cfg.warmup)


# --------------------------------------------------------------------------
# 8. Kept assignment counts: the new-user hot path and the list (bench/lists.py)


def bench_assign_new_counted(db: BenchDatabase) -> list[Result]:
    return lists.bench_assign_new(db.url, db.cfg.seconds, db.cfg.rounds)


def bench_list_experiments(db: BenchDatabase) -> Result:
    return lists.bench_list(db.url, db.cfg.query_rounds, db.cfg.warmup)


# --------------------------------------------------------------------------
# 9. Layers and coverage on rec_assign_variants (bench/layers.py, own database)


def bench_layers(db: BenchDatabase) -> list[Result]:
    return layers.bench_layers(db.url, db.cfg.clients, db.cfg.seconds, db.cfg.rounds)


def bench_cuped(db: BenchDatabase) -> list[Result]:
    return cuped.bench_cuped(db.url, db.cfg.query_rounds, db.cfg.warmup)


BENCHMARKS: dict[str, Callable[[BenchDatabase], Result | list[Result]]] = {
    "assign": bench_assign,
    "assign_new": bench_assign_new,
    "assign_many": bench_assign_many,
    "metrics": bench_metrics,
    "results": bench_results,
    "rollups": bench_rollups,
    "signed_in": bench_signed_in,
    "metric_catalogue": bench_metric_catalogue,
    "assign_new_counted": bench_assign_new_counted,
    "list_experiments": bench_list_experiments,
    "layers": bench_layers,
    "cuped": bench_cuped,
}
