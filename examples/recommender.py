"""A recommender's side of an experiment, runnable as is against the local
stack (`recsys-exp dev`) or a Supabase project:

    SUPABASE_URL=... SUPABASE_SECRET_KEY=... python examples/recommender.py

Per recommendation request: ask for the user's variants of every active
experiment (sticky: stored on first call), rank with them, log the shown
items tagged with that map; later, log what the user did with one of them.
Without the variables it uses the local stack's URL and its public
development secret key.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from typing import Any

from supabase import AsyncClient, acreate_client

SUPABASE_URL = os.environ.get("SUPABASE_URL", "http://127.0.0.1:54321")
# Server side only. The default is the local stack's well-known development key.
SECRET_KEY = os.environ.get("SUPABASE_SECRET_KEY", "sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz")


def rank(user_id: str, *, blend: bool) -> list[str]:
    """Your ranking; the experiment decides how (here: which candidate pool)."""
    pool = "blend" if blend else "base"
    return [f"{pool}-item-{i}" for i in range(5)]


async def recommend(sb: AsyncClient, user_id: str) -> list[dict[str, Any]]:
    """One recommendation request; returns the logged impressions."""
    variants = (await sb.rpc("rec_assign_variants", {"user_id": user_id}).execute()).data
    # e.g. {"swipe-blend": "blend", "diversity-cap": "control"}
    items = rank(user_id, blend=variants.get("swipe-blend") == "blend")
    logged = await (
        sb.table("rec_impressions")
        .insert(
            [
                {"user_id": user_id, "item_id": item, "request_context": {"experiments": variants}}
                for item in items
            ]
        )
        .execute()
    )
    return logged.data


async def record_outcome(sb: AsyncClient, impression: dict[str, Any], outcome: str) -> None:
    """Later, when the user acts on an impression."""
    await (
        sb.table("rec_outcomes")
        .insert({"impression_id": impression["id"], "user_id": impression["user_id"], "outcome": outcome})
        .execute()
    )


async def main() -> None:
    sb = await acreate_client(SUPABASE_URL, SECRET_KEY)
    user_id = str(uuid.uuid4())
    impressions = await recommend(sb, user_id)
    await record_outcome(sb, impressions[0], "click")
    tags = impressions[0]["request_context"]["experiments"]
    print(json.dumps({"user_id": user_id, "variants": tags, "impressions": len(impressions)}))


if __name__ == "__main__":
    asyncio.run(main())
