"""`recsys-exp demo`: an experiment with a known true effect, played through
the same calls a recommender makes, then measured from the metrics view.

Every simulated request calls `rec_assign_variants(user)` (as the service
role, like a recommender backend), writes impressions tagged with the map it
returned, and draws outcomes with a per-variant engagement probability. The
treatment's probability is the control's times (1 + lift), so the printed
measured lift should land near `--lift`.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from scipy import stats
from tqdm import tqdm

from devstack import migrate

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


@dataclass(frozen=True)
class VariantResult:
    variant: str
    users: int
    impressions: int
    engaged: int
    outcomes: int

    @property
    def rate(self) -> float:
        return self.engaged / self.impressions if self.impressions else 0.0


def run(args: argparse.Namespace) -> int:
    if args.users < 1 or args.days < 1:
        print("recsys-exp demo: --users and --days must be at least 1")
        return 2
    from devstack.cli import open_server  # late: the cli imports this module's command lazily too

    server = open_server(args)  # --database-url, or the embedded Postgres in --data-dir
    try:
        migrate.migrate(server.url, seed=True)
        plan = Plan(users=args.users, days=args.days, seed=args.seed)
        with psycopg.connect(server.url, autocommit=True) as conn:
            key = play(conn, plan, progress=True)
            results = measure(conn, key)
        print(report(key, plan, results))
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


def measure(conn: psycopg.Connection, key: str) -> list[VariantResult]:
    """Per-variant totals from the daily metrics RPC the dashboard uses.
    `users` is the distinct user count over the whole period."""
    rows = conn.execute(
        """select m.variant, sum(m.impressions), sum(m.engaged_impressions), sum(m.outcomes)
             from rec_experiment_daily_metrics(%s) m group by m.variant order by m.variant""",
        [key],
    ).fetchall()
    users: dict[str, int] = dict(
        conn.execute(
            """select a.variant, count(*) from rec_user_experiment_assignments a
             join rec_experiments e on e.id = a.experiment_id where e.key = %s group by 1""",
            [key],
        ).fetchall()
    )
    return [VariantResult(v, int(users.get(v, 0)), int(i), int(e), int(o)) for v, i, e, o in rows]


def lift(results: list[VariantResult]) -> tuple[float, float, float]:
    """Relative lift of treatment over control, its 95% CI half-width (delta
    method on the log ratio) and the two-proportion z-test p-value."""
    by = {r.variant: r for r in results}
    c, t = by["control"], by["treatment"]
    ratio = t.rate / c.rate
    se_log = math.sqrt((1 - t.rate) / t.engaged + (1 - c.rate) / c.engaged)
    half = ratio * 1.96 * se_log
    pooled = (t.engaged + c.engaged) / (t.impressions + c.impressions)
    se = math.sqrt(pooled * (1 - pooled) * (1 / t.impressions + 1 / c.impressions))
    p_value = float(2 * stats.norm.sf(abs(t.rate - c.rate) / se))
    return ratio - 1, half, p_value


def report(key: str, plan: Plan, results: list[VariantResult]) -> str:
    lines = [
        f"experiment {key}: {plan.users} users x {plan.days} days, "
        f"true lift {plan.lift:+.1%} on a {plan.base_rate:.0%} base rate",
        "",
        f"{'variant':<10} {'users':>7} {'impressions':>12} {'engaged':>8} {'outcomes':>9} {'rate':>7}",
    ]
    lines += [
        f"{r.variant:<10} {r.users:>7} {r.impressions:>12} {r.engaged:>8} {r.outcomes:>9} {r.rate:>7.2%}"
        for r in results
    ]
    measured, half, p_value = lift(results)
    lines += [
        "",
        f"measured lift {measured:+.1%} (95% CI {measured - half:+.1%} .. {measured + half:+.1%}),"
        f" p = {p_value:.3g}",
    ]
    return "\n".join(lines)
