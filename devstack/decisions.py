"""`recsys-exp end KEY` and `recsys-exp decide KEY`: end an experiment with
its decision, or record (change) the decision of one that has ended.

    recsys-exp end KEY [--decision shipped --winner v2] [--notes TEXT]
    recsys-exp decide KEY --decision rolled_back [--notes TEXT]

Like `recsys-exp admin`, they call the audited RPCs (rec_end_experiment,
rec_record_decision) over a direct database connection (--database-url,
else the local stack's embedded Postgres); the audit row's actor is
--admin-id (default: the all-zero id, "a terminal with database access").
The database checks the decision (a winner only with shipped, and one of
the experiment's variants) and its refusal is printed as one line.
"""

from __future__ import annotations

import argparse
from typing import Any

import psycopg

from devstack import cli_args
from devstack.database import open_database

# What the database refuses on purpose; its message says what to do.
REFUSALS = {"22023", "55000", "P0002", "42501"}


def run_end(args: argparse.Namespace) -> int:
    return _run(args, "rec_end_experiment", "ended")


def run_decide(args: argparse.Namespace) -> int:
    return _run(args, "rec_record_decision", "decision recorded")


def _run(args: argparse.Namespace, fn: str, done: str) -> int:
    server = open_database(args.database_url, args.data_dir)
    try:
        with psycopg.connect(server.url) as conn:
            row = conn.execute(
                f"select to_jsonb(public.{fn}(experiment_key => %s, admin_id => %s,"
                " decision => %s, winner => %s, notes => %s))",
                [args.key, str(args.admin_id), args.decision, args.winner, args.notes],
            ).fetchone()
            conn.commit()
    except psycopg.Error as exc:
        if exc.sqlstate not in REFUSALS:
            raise
        hint = f" ({exc.diag.message_hint})" if exc.diag.message_hint else ""
        return cli_args.fail(f"{exc.diag.message_primary or cli_args.one_line(exc)}{hint}")
    finally:
        server.stop()
    assert row is not None
    print(f"experiment {args.key} {done}: {describe(row[0])}")
    return 0


def describe(experiment: dict[str, Any]) -> str:
    """ "shipped (winner v2); notes: …" or "no decision recorded"."""
    decision = experiment.get("decision")
    if decision is None:
        text = "no decision recorded"
    elif decision == "shipped":
        text = f"shipped (winner {experiment['winner']})"
    else:
        text = decision
    notes = experiment.get("decision_notes")
    return f"{text}; notes: {notes}" if notes else text
