"""`python -m bench [all|NAME ...] [options]`: NAME is one of the keys of bench.targets.BENCHMARKS."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from bench.harness import BenchError, Result, bench_database, bench_server, say, server_version
from bench.targets import BENCHMARKS, BenchDatabase, Config
from devstack.postgres import DatabaseError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = Config()
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure the performance targets, each as a ratio against a "
        "baseline measured in the same run. Uses DATABASE_URL if set, else an "
        "embedded Postgres in a temporary directory.",
    )
    p.add_argument(
        "which",
        nargs="*",
        metavar=(
            "{all,assign,assign_new,assign_many,metrics,results,rollups,signed_in,metric_catalogue,"
            "assign_new_counted,list_experiments,layers,cuped}"
        ),
        help="benchmarks to run (default: all)",
    )
    p.add_argument(
        "--seconds",
        type=int,
        default=defaults.seconds,
        help="duration of each pgbench run (default %(default)s)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=defaults.rounds,
        help="alternating pgbench rounds per side (default %(default)s)",
    )
    p.add_argument(
        "--clients",
        type=int,
        default=defaults.clients,
        help="pgbench clients and threads (default %(default)s)",
    )
    p.add_argument(
        "--users", type=int, default=defaults.users, help="pre-assigned users (default %(default)s)"
    )
    p.add_argument(
        "--impressions",
        type=int,
        default=defaults.impressions,
        help="impressions for the metrics and results benchmarks (default %(default)s)",
    )
    p.add_argument(
        "--query-rounds",
        type=int,
        default=defaults.query_rounds,
        help="metrics: timed runs per side (default %(default)s)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=defaults.warmup,
        help="metrics: untimed runs per side first (default %(default)s: past the "
        "5 custom plans of a prepared statement)",
    )
    p.add_argument(
        "--apply",
        type=Path,
        action="append",
        default=[],
        metavar="SQL_FILE",
        help="run this SQL as the migration owner after the migrations (to measure "
        "a proposed change); may be repeated",
    )
    p.add_argument("--strict", action="store_true", help="exit with status 1 when a target is not met")
    args = p.parse_args(argv)
    unknown = [w for w in args.which if w != "all" and w not in BENCHMARKS]
    if unknown:
        p.error(f"unknown benchmark {', '.join(unknown)}; choose from all, {', '.join(BENCHMARKS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    which = list(BENCHMARKS) if not args.which or "all" in args.which else list(dict.fromkeys(args.which))
    cfg = Config(
        seconds=args.seconds,
        rounds=args.rounds,
        clients=args.clients,
        users=args.users,
        impressions=args.impressions,
        query_rounds=args.query_rounds,
        warmup=args.warmup,
    )
    started = time.perf_counter()
    results: list[Result] = []
    try:
        with bench_server() as (server, where), bench_database(server, args.apply) as url:
            say(f"# recsys bench on {where}: PostgreSQL {server_version(url)}, {os.cpu_count()} CPUs")
            for path in args.apply:
                say(f"# applied {path}")
            db = BenchDatabase(url, cfg)
            for name in which:
                got = BENCHMARKS[name](db)
                for result in got if isinstance(got, list) else [got]:
                    say(result.report())
                    results.append(result)
    except (BenchError, DatabaseError) as exc:
        say(f"bench: {exc}")
        return 2
    say(f"# summary ({time.perf_counter() - started:.0f} s)")
    for r in results:
        say(
            f"   {r.name:<24} ratio {r.ratio:6.2f}  target {r.target_text:<7} {'MET' if r.met else 'NOT MET'}"
        )
    return 1 if args.strict and not all(r.met for r in results) else 0
