"""The changed signatures over /rest/v1/rpc: old named calls (only the old
arguments) keep working, the new arguments work, and no call is ambiguous."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.stack.conftest import ADMIN, Stack, error, rpc

VARIANTS = [{"name": "control", "weight": 50}, {"name": "v2", "weight": 50}]


async def active(client: httpx.AsyncClient, stack: Stack, name: str | None = None) -> str:
    key = f"decide-{uuid.uuid4().hex[:12]}"
    body: dict[str, Any] = {"experiment_key": key, "variants": VARIANTS, "admin_id": ADMIN}
    if name:
        body["name"] = name
    assert (await rpc(client, stack, "rec_create_experiment", body)).status_code == 200
    r = await rpc(client, stack, "rec_activate_experiment", {"experiment_key": key, "admin_id": ADMIN})
    assert r.status_code == 200, r.text
    return key


async def test_old_two_argument_end_still_works(client: httpx.AsyncClient, stack: Stack) -> None:
    key = await active(client, stack)
    r = await rpc(client, stack, "rec_end_experiment", {"experiment_key": key, "admin_id": ADMIN})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["decision"], r.json()["winner"]) == ("ended", None, None)


async def test_end_with_a_decision_then_change_it(client: httpx.AsyncClient, stack: Stack) -> None:
    key = await active(client, stack)
    body = {"experiment_key": key, "admin_id": ADMIN, "decision": "shipped", "winner": "v2", "notes": "ship"}
    r = await rpc(client, stack, "rec_end_experiment", body)
    assert r.status_code == 200, r.text
    assert (r.json()["decision"], r.json()["winner"], r.json()["decision_notes"]) == ("shipped", "v2", "ship")
    r = await rpc(
        client,
        stack,
        "rec_record_decision",
        {"experiment_key": key, "admin_id": ADMIN, "decision": "rolled_back"},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["decision"], r.json()["winner"], r.json()["decision_notes"]) == (
        "rolled_back",
        None,
        None,
    )


async def test_unknown_winner_is_a_clear_400_and_nothing_ends(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    key = await active(client, stack)
    body = {"experiment_key": key, "admin_id": ADMIN, "decision": "shipped", "winner": "v3"}
    r = await rpc(client, stack, "rec_end_experiment", body)
    assert r.status_code == 400
    assert error(r)["code"] == "22023" and "v3" in error(r)["message"]
    r = await rpc(client, stack, "rec_get_experiment", {"experiment_key": key})
    assert r.json()["status"] == "active"


async def test_old_status_only_list_and_the_new_paging(client: httpx.AsyncClient, stack: Stack) -> None:
    marker = uuid.uuid4().hex[:10]
    keys = [await active(client, stack, name=f"List {marker} {i}") for i in range(3)]
    r = await rpc(client, stack, "rec_list_experiments", {"status": "active"})
    assert r.status_code == 200, r.text
    assert set(keys) <= {row["key"] for row in r.json()}
    r = await rpc(client, stack, "rec_list_experiments", {"search": marker.upper(), "max_rows": 2})
    assert r.status_code == 200, r.text
    assert [row["key"] for row in r.json()] == keys[::-1][:2]
    assert {row["total_rows"] for row in r.json()} == {3}
    r = await rpc(client, stack, "rec_list_experiments", {"search": marker, "max_rows": 2, "offset_rows": 2})
    assert [row["key"] for row in r.json()] == keys[:1]
    r = await rpc(client, stack, "rec_list_experiments", {"max_rows": 0})
    assert r.status_code == 400 and error(r)["code"] == "22023"
