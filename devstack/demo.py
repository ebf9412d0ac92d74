"""`recsys-exp demo`: an experiment with a known true effect, played through
a running stack (`recsys-exp dev`, or any Supabase project with these
migrations) exactly the way a recommender backend talks to it: supabase-py
with a secret key.

It creates and activates the experiment with the admin functions, then for
every simulated request calls `rec_assign_variants(user)`, logs impressions
tagged with the map it returned (`POST /rest/v1/rec_impressions`, backdated
over `--days`) and draws outcomes (`rec_outcomes`) with a per-variant
engagement probability; the treatment's is the control's times (1 + lift),
so the measured lift, read back from the metrics RPC the dashboard uses,
should land near `--lift`. Finally it ends the experiment (unless
`--keep-active`), so later requests stop being assigned to it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from postgrest.exceptions import APIError
from postgrest.types import ReturnMethod
from scipy import stats
from supabase import AsyncClient, acreate_client
from supabase_functions.errors import FunctionsError
from tqdm import tqdm

from devstack import keys as local_keys

DEMO_ADMIN = "00000000-0000-4000-8000-00000000de30"
IMPRESSIONS_PER_REQUEST = 5
SAVE_AFTER_CLICK = 0.3
CONCURRENCY = 50  # requests in flight at once, as a recommender under load


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
    key = args.key or local_keys.from_env().secret
    plan = Plan(users=args.users, days=args.days, seed=args.seed)
    try:
        print(asyncio.run(_demo(args.url, key, plan, keep_active=args.keep_active)))
    except httpx.TransportError as exc:
        print(f"recsys-exp demo: cannot reach {args.url} ({exc}); is `recsys-exp dev` running?")
        return 1
    except (APIError, FunctionsError) as exc:
        print(f"recsys-exp demo: {args.url} refused a request: {exc}")
        return 1
    return 0


async def _demo(url: str, key: str, plan: Plan, *, keep_active: bool) -> str:
    sb = await acreate_client(url, key)
    experiment, users = await play(sb, plan, progress=True)
    try:
        results = await measure(sb, experiment, users)
    finally:
        if not keep_active:
            await end(sb, experiment)
    state = "left active (--keep-active)" if keep_active else "ended"
    return report(experiment, plan, results) + f"\n\nexperiment {experiment} {state}"


async def invoke(sb: AsyncClient, name: str, body: dict[str, Any]) -> Any:
    """An admin function through supabase-py; its JSON answer."""
    answer = await sb.functions.invoke(name, {"body": body, "responseType": "json"})
    return json.loads(answer) if isinstance(answer, bytes | str) else answer


async def play(sb: AsyncClient, plan: Plan, *, progress: bool = False) -> tuple[str, dict[str, set[str]]]:
    """Create and activate the experiment, then play `days` x `users` requests.
    Returns its key and the users each variant was served to."""
    rng = random.Random(plan.seed)
    key = plan.key or f"demo-{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(2)}"
    variants = [{"name": "control", "weight": 50}, {"name": "treatment", "weight": 50}]
    await invoke(
        sb,
        "admin-create-experiment",
        {
            "key": key,
            "variants": variants,
            "admin_id": DEMO_ADMIN,
            "name": "Demo: diversity cap",
            "description": f"Known effect: treatment engagement x{1 + plan.lift:.2f} (recsys-exp demo)",
            "salt": f"demo-salt-{plan.seed}",
        },
    )
    await invoke(sb, "admin-activate-experiment", {"key": key, "admin_id": DEMO_ADMIN})
    rates = {"control": plan.base_rate, "treatment": plan.base_rate * (1 + plan.lift)}
    users = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(plan.users)]
    served: dict[str, set[str]] = {}
    first_day = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(
        days=plan.days - 1
    )
    bar = tqdm(total=plan.days * plan.users, unit="req", disable=not progress, desc="requests")
    for d in range(plan.days):
        day = first_day + timedelta(days=d)
        for start in range(0, len(users), CONCURRENCY):
            batch = users[start : start + CONCURRENCY]
            maps = await asyncio.gather(*(assign(sb, user) for user in batch))
            for user, experiments in zip(batch, maps, strict=True):
                served.setdefault(experiments[key], set()).add(user)
            await log_traffic(sb, rng, key, list(zip(batch, maps, strict=True)), day, rates)
            bar.update(len(batch))
    bar.close()
    return key, served


async def assign(sb: AsyncClient, user: str) -> dict[str, str]:
    """What a recommender asks first on every request: the user's variants."""
    answer: dict[str, str] = _data(await sb.rpc("rec_assign_variants", {"user_id": user}).execute())
    return answer


async def log_traffic(
    sb: AsyncClient,
    rng: random.Random,
    key: str,
    requests: Sequence[tuple[str, dict[str, str]]],
    at: datetime,
    rates: dict[str, float],
) -> None:
    """The impressions these requests showed, tagged with their variants, and
    what the users did: a click on an engaged impression, sometimes a save."""
    shown: list[dict[str, Any]] = []
    for user, experiments in requests:
        context = {"experiments": experiments, "surface": "demo-feed"}
        for _ in range(IMPRESSIONS_PER_REQUEST):
            when = at + timedelta(seconds=rng.randrange(0, 36000))
            shown.append(
                {
                    "user_id": user,
                    "item_id": f"item-{rng.randrange(10_000)}",
                    "request_context": context,
                    "created_at": when.isoformat(),
                }
            )
    logged: list[dict[str, Any]] = _data(await sb.table("rec_impressions").insert(shown).execute())
    outcomes: list[dict[str, Any]] = []
    for imp in logged:
        if rng.random() >= rates[imp["request_context"]["experiments"][key]]:
            continue
        kinds = ["click", "save"] if rng.random() < SAVE_AFTER_CLICK else ["click"]
        when = datetime.fromisoformat(imp["created_at"])
        for minutes, outcome in enumerate(kinds, start=1):
            outcomes.append(
                {
                    "impression_id": imp["id"],
                    "user_id": imp["user_id"],
                    "outcome": outcome,
                    "created_at": (when + timedelta(minutes=minutes)).isoformat(),
                }
            )
    if outcomes:
        await sb.table("rec_outcomes").insert(outcomes, returning=ReturnMethod.minimal).execute()


async def measure(sb: AsyncClient, key: str, served: dict[str, set[str]]) -> list[VariantResult]:
    """Per-variant totals from the daily metrics RPC the dashboard uses; `users`
    is how many distinct users each variant was served to."""
    rows: list[dict[str, Any]] = _data(
        await sb.rpc("rec_experiment_daily_metrics", {"experiment_key": key}).execute()
    )
    totals: dict[str, list[int]] = {}
    for row in rows:
        t = totals.setdefault(row["variant"], [0, 0, 0])
        t[0] += int(row["impressions"])
        t[1] += int(row["engaged_impressions"])
        t[2] += int(row["outcomes"])
    return [VariantResult(v, len(served.get(v, ())), i, e, o) for v, (i, e, o) in sorted(totals.items())]


def _data(response: Any) -> Any:
    """A postgrest response's JSON, typed by the caller."""
    return response.data


async def end(sb: AsyncClient, key: str) -> None:
    """End the experiment, so the recommender's later requests no longer get it."""
    await invoke(sb, "admin-end-experiment", {"key": key, "admin_id": DEMO_ADMIN})


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
