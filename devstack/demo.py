"""`recsys-exp demo`: an experiment with a known true effect, played through
a running stack (`recsys-exp dev`, or any Supabase project with these
migrations) exactly the way a recommender backend talks to it: supabase-py
with a secret key.

It creates and activates the experiment with the admin functions, then for
every simulated request calls `rec_assign_variants(user)`, logs impressions
tagged with the map it returned (`POST /rest/v1/rec_impressions`, backdated
over `--days`) and draws outcomes (`rec_outcomes`) with a per-variant
engagement probability; the treatment's is the control's times (1 + lift),
so the engagement_rate lift, measured per user by admin-experiment-results
(the same results the dashboard shows), should land inside its 95% interval.
Finally it ends the experiment (unless `--keep-active`), so later requests stop being assigned to it.
Whenever the demo fails or is interrupted (Ctrl-C) after creating its
experiment, it ends that experiment before exiting, `--keep-active` or not,
and prints the error as it was (its type and message).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from postgrest.exceptions import APIError
from postgrest.types import ReturnMethod
from supabase import AsyncClient, acreate_client
from supabase_functions.errors import FunctionsError
from tqdm import tqdm

from devstack import keys as local_keys
from devstack import results_report

DEMO_ADMIN = "00000000-0000-4000-8000-00000000de30"
IMPRESSIONS_PER_REQUEST = 5
SAVE_AFTER_CLICK = 0.3
CONCURRENCY = 50  # requests in flight at once, as a recommender under load
TRAFFIC_SPAN = timedelta(hours=10)  # of one day's requests


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
    key = args.key or local_keys.from_env().secret
    plan = Plan(users=args.users, days=args.days, seed=args.seed)
    try:
        print(asyncio.run(_demo(args.url, key, plan, keep_active=args.keep_active)))
    except KeyboardInterrupt:
        print("recsys-exp demo: interrupted", file=sys.stderr)
        return 130
    except httpx.ConnectError as exc:
        print(
            f"recsys-exp demo: cannot connect to {args.url} ({_described(exc)}); is `recsys-exp dev` running?"
        )
        return 1
    except httpx.HTTPError as exc:
        print(f"recsys-exp demo: a request to {args.url} failed: {_described(exc)}")
        return 1
    except (APIError, FunctionsError) as exc:
        print(f"recsys-exp demo: {args.url} refused a request: {_described(exc)}")
        return 1
    return 0


def _described(exc: BaseException) -> str:
    """The exception's type and message, e.g. `ReadError: [Errno 104] ...`,
    also when it has no message (then its cause's, if any)."""
    text = str(exc).strip()
    cause = exc.__cause__ or exc.__context__
    if not text and cause is not None and cause is not exc:
        return f"{type(exc).__name__} (from {_described(cause)})"
    return f"{type(exc).__name__}: {text}" if text else f"{type(exc).__name__} (no message)"


async def _demo(url: str, key: str, plan: Plan, *, keep_active: bool) -> str:
    sb = await acreate_client(url, key)
    experiment = await start(sb, plan)
    async with ended_on_failure(sb, experiment):
        await play_traffic(sb, plan, experiment, progress=True)
        answer = await measure(sb, experiment, plan)
    if not keep_active:
        await end(sb, experiment)
    state = "left active (--keep-active)" if keep_active else "ended"
    return report(plan, answer) + f"\n\nexperiment {experiment} {state}"


@asynccontextmanager
async def ended_on_failure(sb: AsyncClient, experiment: str) -> AsyncIterator[None]:
    """Whatever goes wrong inside (an error, Ctrl-C, a cancel), end the
    experiment before passing it on: a failed demo must not leave an active
    experiment that every later rec_assign_variants answer carries."""
    try:
        yield
    except BaseException:
        try:
            await asyncio.shield(end(sb, experiment))
        except Exception as exc:  # keep the original error; say what is left behind
            print(
                f"recsys-exp demo: could not end experiment {experiment} ({_described(exc)}); "
                "end it with the admin-end-experiment function",
                file=sys.stderr,
            )
        else:
            print(f"recsys-exp demo: failed; experiment {experiment} ended", file=sys.stderr)
        raise


async def invoke(sb: AsyncClient, name: str, body: dict[str, Any]) -> Any:
    """An admin function through supabase-py; its JSON answer."""
    answer = await sb.functions.invoke(name, {"body": body, "responseType": "json"})
    return json.loads(answer) if isinstance(answer, bytes | str) else answer


async def play(sb: AsyncClient, plan: Plan, *, progress: bool = False) -> tuple[str, dict[str, set[str]]]:
    """Create and activate the experiment, then play `days` x `users` requests
    (ending the experiment if that fails). Returns its key and the users each
    variant was served to."""
    key = await start(sb, plan)
    async with ended_on_failure(sb, key):
        served = await play_traffic(sb, plan, key, progress=progress)
    return key, served


async def start(sb: AsyncClient, plan: Plan) -> str:
    """Create and activate the demo's experiment; its key."""
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
    async with ended_on_failure(sb, key):
        await invoke(sb, "admin-activate-experiment", {"key": key, "admin_id": DEMO_ADMIN})
    return key


async def play_traffic(
    sb: AsyncClient, plan: Plan, key: str, *, progress: bool = False
) -> dict[str, set[str]]:
    """`days` x `users` requests against the active experiment `key`: the users each variant was served to."""
    rng = random.Random(plan.seed)
    rates = {"control": plan.base_rate, "treatment": plan.base_rate * (1 + plan.lift)}
    users = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(plan.users)]
    served: dict[str, set[str]] = {}
    # The `days` UTC days before today, 01:00-11:00 each: no row is dated in
    # the future, where a later run's users would meet it as untagged traffic.
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = midnight - timedelta(days=plan.days) + timedelta(hours=1)
    bar = tqdm(total=plan.days * plan.users, unit="req", disable=not progress, desc="requests")
    try:
        for d in range(plan.days):
            day = first_day + timedelta(days=d)
            for begin in range(0, len(users), CONCURRENCY):
                batch = users[begin : begin + CONCURRENCY]
                maps = await asyncio.gather(*(assign(sb, user) for user in batch))
                for user, experiments in zip(batch, maps, strict=True):
                    served.setdefault(experiments[key], set()).add(user)
                await log_traffic(sb, rng, key, list(zip(batch, maps, strict=True)), day, rates)
                bar.update(len(batch))
    finally:
        bar.close()
    return served


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
            when = at + timedelta(seconds=rng.randrange(0, int(TRAFFIC_SPAN.total_seconds())))
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


async def measure(sb: AsyncClient, key: str, plan: Plan) -> dict[str, Any]:
    """The experiment's per-user results from admin-experiment-results, the
    function the dashboard and `recsys-exp results` use. The window reaches
    back before the experiment started (the demo plays past days), with a
    day's margin either side of midnight."""
    today = datetime.now(UTC).date()
    window = {"from_day": str(today - timedelta(days=plan.days)), "to_day": str(today + timedelta(days=1))}
    answer: dict[str, Any] = (await invoke(sb, "admin-experiment-results", {"key": key, **window}))["data"]
    return answer


def _data(response: Any) -> Any:
    """A postgrest response's JSON, typed by the caller."""
    return response.data


async def end(sb: AsyncClient, key: str) -> None:
    """End the experiment, so the recommender's later requests no longer get it."""
    await invoke(sb, "admin-end-experiment", {"key": key, "admin_id": DEMO_ADMIN})


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
