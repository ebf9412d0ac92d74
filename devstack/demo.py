"""`recsys-exp demo`: an experiment with a known true effect, played through
the same calls a recommender makes, then measured per user through the same
results module as admin-experiment-results and `recsys-exp results`.

Every simulated request calls `rec_assign_variants(user)` (as the service
role, like a recommender backend), writes impressions tagged with the map it
returned, and draws outcomes with a per-variant engagement probability. The
treatment's probability is the control's times (1 + lift), so the printed
engagement_rate lift should land near `--lift`, inside its 95% interval.
"""

from __future__ import annotations

import argparse
import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from tqdm import tqdm

from devstack import migrate, postgres, results_report

DEMO_ADMIN = "00000000-0000-4000-8000-00000000de30"
IMPRESSIONS_PER_REQUEST = 5
SAVE_AFTER_CLICK = 0.3


@dataclass(frozen=True)
class Plan:
    users: int
    days: int
    seed: int = 7
    base_rate: float = 0.10  # control's engagement probability per impression
    lift: float = 0.10  # true relative effect of the treatment
    key: str | None = None


def run(args: argparse.Namespace) -> int:
    if args.users < 1 or args.days < 1:
        print("recsys-exp demo: --users and --days must be at least 1")
        return 2
    server = (
        postgres.connect_server(args.database_url)
        if args.database_url
        else postgres.start_embedded(args.data_dir / "postgres")
    )
    try:
        migrate.migrate(server.url, seed=True)
        plan = Plan(users=args.users, days=args.days, seed=args.seed)
        with psycopg.connect(server.url, autocommit=True) as conn:
            key = play(conn, plan, progress=True)
            answer = measure(conn, key, plan)
        print(report(plan, answer))
    finally:
        server.stop()
    return 0


def play(conn: psycopg.Connection, plan: Plan, *, progress: bool = False) -> str:
    """Create and activate the experiment, then play `days` x `users` requests."""
    rng = random.Random(plan.seed)
    key = plan.key or f"demo-{datetime.now(UTC):%Y%m%d%H%M%S}"
    conn.execute("set role service_role")
    conn.execute(
        "select rec_create_experiment(%s, %s::jsonb, %s, name => %s, description => %s, salt => %s)",
        [
            key,
            json.dumps([{"name": "control", "weight": 50}, {"name": "treatment", "weight": 50}]),
            DEMO_ADMIN,
            "Demo: diversity cap",
            f"Known effect: treatment engagement x{1 + plan.lift:.2f} (recsys-exp demo)",
            f"demo-salt-{plan.seed}",
        ],
    )
    conn.execute("select rec_activate_experiment(%s, %s)", [key, DEMO_ADMIN])
    rates = {"control": plan.base_rate, "treatment": plan.base_rate * (1 + plan.lift)}
    users = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(plan.users)]
    first_day = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(
        days=plan.days - 1
    )
    bar = tqdm(total=plan.days * plan.users, unit="req", disable=not progress, desc="requests")
    for d in range(plan.days):
        day = first_day + timedelta(days=d)
        with conn.transaction():
            for user in users:
                play_request(conn, rng, key, user, day, rates)
                bar.update()
    bar.close()
    conn.execute("reset role")
    return key


def play_request(
    conn: psycopg.Connection,
    rng: random.Random,
    key: str,
    user: uuid.UUID,
    at: datetime,
    rates: dict[str, float],
) -> None:
    """One recommendation request: assign, show items, record what the user did."""
    row = conn.execute("select rec_assign_variants(%s)", [user]).fetchone()
    experiments: dict[str, str] = row[0] if row else {}
    rate = rates[experiments[key]]
    context = json.dumps({"experiments": experiments, "surface": "demo-feed"})
    for _ in range(IMPRESSIONS_PER_REQUEST):
        shown = at + timedelta(seconds=rng.randrange(0, 36000))
        imp = conn.execute(
            "insert into rec_impressions (user_id, item_id, request_context, created_at)"
            " values (%s, %s, %s::jsonb, %s) returning id",
            [user, f"item-{rng.randrange(10_000)}", context, shown],
        ).fetchone()
        if imp and rng.random() < rate:
            # An engaged impression: a click, sometimes followed by a save.
            outcomes = ["click", "save"] if rng.random() < SAVE_AFTER_CLICK else ["click"]
            for minutes, outcome in enumerate(outcomes, start=1):
                conn.execute(
                    "insert into rec_outcomes (impression_id, user_id, outcome, created_at)"
                    " values (%s, %s, %s, %s)",
                    [imp[0], user, outcome, shown + timedelta(minutes=minutes)],
                )


def measure(conn: psycopg.Connection, key: str, plan: Plan) -> dict[str, Any]:
    """The experiment's results, per user, as admin-experiment-results gives
    them. The window reaches back before the experiment started (the demo
    plays past days), with a day's margin either side of midnight."""
    today = datetime.now(UTC).date()
    return results_report.fetch(conn, key, today - timedelta(days=plan.days), today + timedelta(days=1))


def engagement_lift(answer: dict[str, Any]) -> dict[str, Any]:
    """The treatment-vs-control comparison of engagement_rate."""
    return next(c for c in answer["comparisons"] if c["metric"] == "engagement_rate")


def report(plan: Plan, answer: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"{plan.users} users x {plan.days} days, true lift {plan.lift:+.1%} "
            f"on a {plan.base_rate:.0%} base engagement rate",
            "",
            results_report.format_answer(answer),
        ]
    )
