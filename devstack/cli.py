"""`recsys-exp`: migrate a database, run the local stack, play a demo.

This module only parses arguments. Each command is a `run(args) -> int`
function in its own module, named as "module:function" and imported when
the command runs; adding a command is one `add_parser` block here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import cast

from devstack import cli_args

LOCAL_URL = "http://127.0.0.1:54321"
DEFAULT_DATA_DIR = Path(".devdata")
REGIMES = ("none", "legacy")  # devstack.platform.Regime's values
DECISIONS = ("shipped", "rolled_back", "inconclusive")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)  # a usage error exits 2 with one line (devstack.cli_args)
    try:
        import psycopg

        from devstack import keys, migrate, postgres
        from shared.config import ConfigError
    except ModuleNotFoundError as exc:  # `pip install .` is the functions only
        return cli_args.fail(f"{exc.name} is missing; install the dev extra: pip install '.[dev]'")
    # Failures whose message says what to do: one line, exit status 1.
    failures = (postgres.DatabaseError, migrate.MigrationError, keys.InvalidKeys, ConfigError, OSError)
    try:
        return int(command(args.run)(args))
    except failures as exc:
        return cli_args.fail(exc)
    except psycopg.Error as exc:
        return cli_args.fail(f"database error: {cli_args.one_line(exc)}")
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        return cli_args.unexpected(exc)


def command(target: str) -> Callable[[argparse.Namespace], int]:
    """ "devstack.demo:run" → that function."""
    module, _, name = target.partition(":")
    return cast(Callable[[argparse.Namespace], int], getattr(importlib.import_module(module), name))


def parser() -> argparse.ArgumentParser:
    p = cli_args.Parser(prog="recsys-exp", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(required=True, metavar="command")

    m = sub.add_parser("migrate", help="apply supabase/migrations (on plain Postgres: stand-in first)")
    add_database_args(m, from_env=True)
    m.add_argument("--seed", action="store_true", help="run supabase/seed.sql on a fresh database")
    m.add_argument(
        "--regime",
        choices=REGIMES,
        default="none",
        help="default privileges to emulate on plain Postgres (default: none, as Supabase today)",
    )
    m.set_defaults(run="devstack.migrate:run")

    d = sub.add_parser("dev", help="run the local stack: Postgres + /rest/v1 + /functions/v1")
    add_database_args(d)
    d.add_argument("--host", default="127.0.0.1")
    d.add_argument("--port", type=cli_args.port, default=54321)
    d.add_argument(
        "--refresh-every",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="refresh the daily metric rollups this often (default %(default)s; 0 = never)",
    )
    d.add_argument(
        "--anchor-every",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="record the audit chain's head in <data-dir>/audit-anchors.jsonl this often"
        " (default %(default)s; 0 = never)",
    )
    d.set_defaults(run="devstack.server:run")

    demo = sub.add_parser("demo", help="play recommender traffic with a known effect through a running stack")
    add_api_args(demo)
    demo.add_argument("--users", type=cli_args.positive_int, default=2000)
    demo.add_argument("--days", type=cli_args.positive_int, default=7)
    demo.add_argument("--seed", type=int, default=7, help="random seed")
    demo.add_argument(
        "--keep-active", action="store_true", help="leave the demo experiment active afterwards"
    )
    demo.set_defaults(run="devstack.demo:run")

    admin = sub.add_parser("admin", help="who may use the admin functions signed in (rec_admins)")
    actions = admin.add_subparsers(required=True, metavar="action")
    grant = admin_action(actions, "grant", "give an existing Supabase Auth user a role")
    grant.add_argument("email")
    grant.add_argument("--role", choices=["viewer", "admin"], default="admin")
    revoke = admin_action(actions, "revoke", "remove a user's access")
    revoke.add_argument("email")
    admin_action(actions, "list", "everyone with access, and their role")
    add = admin_action(actions, "add", "local stack: create (or re-password) an auth user, then grant")
    add.add_argument("email")
    add.add_argument("--password", required=True)
    add.add_argument("--role", choices=["viewer", "admin"], default="admin")

    metrics = sub.add_parser("metrics", help="the metric catalogue (rec_metrics)")
    metric_actions = metrics.add_subparsers(required=True, metavar="action")
    ml = metric_actions.add_parser("list", help="every metric definition, built-ins first")
    add_database_args(ml, from_env=True)
    ml.set_defaults(run="devstack.metrics_cli:run_list")
    mc = metric_actions.add_parser("create", help="define a metric (audited)")
    mc.add_argument("key", help="metric key")
    mc.add_argument(
        "--kind",
        required=True,
        choices=["impression_rate", "value_per_impression", "per_user_count", "per_user_value", "user_rate"],
    )
    mc.add_argument("--outcome", help="one outcome name (default: any outcome)")
    mc.add_argument("--direction", choices=["increase", "decrease"], default="increase")
    mc.add_argument("--capping", type=float, help="winsorise users at this quantile, e.g. 0.999")
    mc.add_argument("--name")
    mc.add_argument("--description")
    add_database_args(mc, from_env=True)
    mc.add_argument("--admin-id", type=uuid.UUID, default=uuid.UUID(int=0), help=argparse.SUPPRESS)
    mc.set_defaults(run="devstack.metrics_cli:run_create")
    decision_command(sub, "end", "end an active experiment, optionally recording its decision")
    decision_command(sub, "decide", "record or change the decision of an ended experiment", required=True)

    layers = sub.add_parser("layers", help="layers: experiments in one layer never share a user")
    layer_actions = layers.add_subparsers(required=True, metavar="action")
    listing = layer_actions.add_parser(
        "list", help="every layer, its experiments' ranges and the free ranges"
    )
    add_database_args(listing, from_env=True)
    listing.set_defaults(run="devstack.layers:run_list")
    create = layer_actions.add_parser("create", help="a new layer (random salt that never changes)")
    create.add_argument("key", help="layer key: 1-64 of a-z, 0-9, _ . - (starting with a letter or digit)")
    create.add_argument("--name")
    create.add_argument("--description")
    add_database_args(create, from_env=True)
    create.add_argument("--admin-id", type=uuid.UUID, default=uuid.UUID(int=0), help=argparse.SUPPRESS)
    create.set_defaults(run="devstack.layers:run_create")

    r = sub.add_parser("results", help="an experiment's per-user statistics, comparisons and warnings")
    r.add_argument("key", help="experiment key")
    r.add_argument("--from", dest="from_day", type=utc_day, help="first UTC day (YYYY-MM-DD)")
    r.add_argument("--to", dest="to_day", type=utc_day, help="last UTC day (YYYY-MM-DD)")
    add_database_args(r, from_env=True)
    r.set_defaults(run="devstack.results_report:run")

    pl = sub.add_parser("plan", help="the smallest effect runs of some days would detect, per goal metric")
    pl.add_argument("key", help="experiment key")
    pl.add_argument("--days", type=int, nargs="+", default=[7, 14, 28], help="run lengths, 1 to 28 days")
    add_database_args(pl, from_env=True)
    pl.set_defaults(run="devstack.plan_report:run")

    audit = sub.add_parser("audit", help="check the audit hash chain from outside the database")
    steps = audit.add_subparsers(required=True, metavar="action")
    anchor = steps.add_parser("anchor", help="append the chain's current head to FILE (JSON lines)")
    anchor.add_argument("--anchors", type=Path, required=True, metavar="FILE", help="where anchors are kept")
    add_database_args(anchor, from_env=True)
    anchor.set_defaults(run="devstack.audit:run_anchor")
    verify = steps.add_parser("verify", help="re-derive every hash and link; check the anchors in FILE")
    verify.add_argument("--anchors", type=Path, metavar="FILE", help="anchors recorded by `audit anchor`")
    add_database_args(verify, from_env=True)
    verify.set_defaults(run="devstack.audit:run_verify")
    return p


def utc_day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day: {text!r} (expected YYYY-MM-DD)") from None


def admin_action(
    actions: argparse._SubParsersAction[cli_args.Parser], name: str, help: str
) -> argparse.ArgumentParser:
    """`recsys-exp admin NAME`, run by devstack.admins.run_NAME."""
    p = actions.add_parser(name, help=help)
    add_database_args(p, from_env=True)
    # the audit row's actor; default the all-zero id, "a terminal with database access"
    p.add_argument("--admin-id", type=uuid.UUID, default=uuid.UUID(int=0), help=argparse.SUPPRESS)
    p.set_defaults(run=f"devstack.admins:run_{name}")
    return p


def decision_command(
    sub: argparse._SubParsersAction[cli_args.Parser], name: str, help: str, *, required: bool = False
) -> argparse.ArgumentParser:
    """`recsys-exp end|decide KEY`, run by devstack.decisions.run_NAME."""
    p = sub.add_parser(name, help=help)
    p.add_argument("key", help="experiment key")
    p.add_argument(
        "--decision", choices=DECISIONS, required=required, help="what was decided (shipped needs --winner)"
    )
    p.add_argument("--winner", help="the variant that shipped (with --decision shipped)")
    p.add_argument("--notes", help="why: the evidence, the guardrails, what happens next")
    add_database_args(p, from_env=True)
    # the audit row's actor; default the all-zero id, "a terminal with database access"
    p.add_argument("--admin-id", type=uuid.UUID, default=uuid.UUID(int=0), help=argparse.SUPPRESS)
    p.set_defaults(run=f"devstack.decisions:run_{name}")
    return p


def add_database_args(p: argparse.ArgumentParser, *, from_env: bool = False) -> None:
    """--database-url / --data-dir: which Postgres (see devstack.database)."""
    # Only `migrate` reads $DATABASE_URL: a stray one in a shell must not turn
    # `dev` (which installs roles and writes data) onto another database.
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


def add_api_args(p: argparse.ArgumentParser) -> None:
    """--url / --key: a running stack (or Supabase project) reached over HTTP.
    No environment default for the URL: a stray $SUPABASE_URL must not send
    demo traffic to a real project."""
    p.add_argument("--url", default=LOCAL_URL, help=f"the API URL (default: {LOCAL_URL}, the local stack)")
    p.add_argument(
        "--key",
        help="a secret key (default: the local stack's, $RECSYS_SECRET_KEY if set, as `dev` uses)",
    )


if __name__ == "__main__":
    sys.exit(main())
