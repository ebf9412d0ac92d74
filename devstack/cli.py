"""`recsys-exp`: migrate a database, run the local stack, play a demo."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import psycopg

from devstack import cli_args, pg_owner, postgres
from devstack import keys as local_keys
from devstack import migrate as migrator
from devstack.platform import Regime
from shared.config import ConfigError

DEFAULT_DATA_DIR = Path(".devdata")
# Failures whose message says what to do: printed as one line, exit status 1.
_FAILURES = (postgres.DatabaseError, migrator.MigrationError, local_keys.InvalidKeys, ConfigError, OSError)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)  # a usage error exits 2 with one line
    try:
        return int(args.run(args))
    except _FAILURES as exc:
        return cli_args.fail(exc)
    except psycopg.Error as exc:
        return cli_args.fail(f"database error: {cli_args.one_line(exc)}")
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        return cli_args.unexpected(exc)


def parser() -> argparse.ArgumentParser:
    p = cli_args.Parser(prog="recsys-exp", description=__doc__)
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
    d.add_argument("--port", type=cli_args.port, default=54321)
    d.set_defaults(run=run_dev)

    demo = sub.add_parser("demo", help="play recommender traffic with a known effect and print the result")
    add_database_args(demo)
    demo.add_argument("--users", type=cli_args.positive_int, default=2000)
    demo.add_argument("--days", type=cli_args.positive_int, default=7)
    demo.add_argument("--seed", type=int, default=7, help="random seed")
    demo.set_defaults(run=run_demo)
    return p


def add_database_args(p: argparse.ArgumentParser, *, from_env: bool = False) -> None:
    # Only `migrate` reads $DATABASE_URL: a stray one in a shell must not turn
    # `dev`/`demo` (which install roles and write data) onto another database.
    if from_env:
        p.add_argument(
            "--database-url",
            type=cli_args.database_url,
            default=os.environ.get("DATABASE_URL"),
            help="Postgres to use (default: $DATABASE_URL, else the embedded one)",
        )
    else:
        p.add_argument(
            "--database-url", type=cli_args.database_url, help="Postgres to use instead of the embedded one"
        )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="where the embedded Postgres keeps its data (default: .devdata)",
    )


def open_server(args: argparse.Namespace) -> postgres.Server:
    if args.database_url:
        return postgres.connect_server(args.database_url)
    data_dir = args.data_dir / "postgres"
    owner = pg_owner.claim(data_dir)  # a Postgres left running by a killed run: say so, own it
    if owner.note:
        print(f"recsys-exp: {owner.note}", file=sys.stderr, flush=True)
    return postgres.start_embedded(data_dir)


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
