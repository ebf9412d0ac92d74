"""`recsys-exp`: migrate a database, run the local stack, play a demo."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from devstack import migrate as migrator
from devstack import postgres
from devstack.platform import Regime

DEFAULT_DATA_DIR = Path(".devdata")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (postgres.DatabaseError, migrator.MigrationError) as exc:
        print(f"recsys-exp: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recsys-exp", description=__doc__)
    sub = p.add_subparsers(required=True, metavar="command")

    m = sub.add_parser("migrate", help="apply supabase/migrations (on plain Postgres: stand-in first)")
    add_database_args(m, from_env=True)
    m.add_argument("--seed", action="store_true", help="run supabase/seed.sql on a fresh database")
    m.add_argument(
        "--regime",
        choices=[r.value for r in Regime],
        default=Regime.NONE.value,
        help="default privileges to emulate on plain Postgres (default: none, as Supabase today)",
    )
    m.set_defaults(run=run_migrate)

    d = sub.add_parser("dev", help="run the local stack: Postgres + /rest/v1/rpc + /functions/v1")
    add_database_args(d)
    d.add_argument("--host", default="127.0.0.1")
    d.add_argument("--port", type=int, default=54321)
    d.add_argument(
        "--refresh-every",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="refresh the daily metric rollups this often (default %(default)s; 0 = never)",
    )
    d.set_defaults(run=run_dev)

    demo = sub.add_parser("demo", help="play recommender traffic with a known effect and print the result")
    add_database_args(demo)
    demo.add_argument("--users", type=int, default=2000)
    demo.add_argument("--days", type=int, default=7)
    demo.add_argument("--seed", type=int, default=7, help="random seed")
    demo.set_defaults(run=run_demo)
    return p


def add_database_args(p: argparse.ArgumentParser, *, from_env: bool = False) -> None:
    # Only `migrate` reads $DATABASE_URL: a stray one in a shell must not turn
    # `dev`/`demo` (which install roles and write data) onto another database.
    if from_env:
        p.add_argument(
            "--database-url",
            default=os.environ.get("DATABASE_URL"),
            help="Postgres to use (default: $DATABASE_URL, else the embedded one)",
        )
    else:
        p.add_argument("--database-url", help="Postgres to use instead of the embedded one")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="where the embedded Postgres keeps its data (default: .devdata)",
    )


def open_server(args: argparse.Namespace) -> postgres.Server:
    if args.database_url:
        return postgres.connect_server(args.database_url)
    return postgres.start_embedded(args.data_dir / "postgres")


def run_migrate(args: argparse.Namespace) -> int:
    server = open_server(args)
    try:
        applied = migrator.migrate(server.url, regime=Regime(args.regime), seed=args.seed)
        where = postgres.redact(server.url)
        if applied:
            print(f"applied {len(applied)} migration(s) to {where}: {', '.join(applied)}")
        else:
            print(f"{where} is up to date ({len(migrator.discover())} migrations)")
    finally:
        server.stop()
    return 0


def run_dev(args: argparse.Namespace) -> int:
    from devstack import server

    return server.run(args)


def run_demo(args: argparse.Namespace) -> int:
    from devstack import demo

    return demo.run(args)


if __name__ == "__main__":
    sys.exit(main())
