"""Layers and coverage through the local stack: PostgREST-style named calls
(old calls with only the old arguments keep working after the signatures
grew) and the admin functions over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.stack.conftest import ADMIN, Stack, error, key_headers, rpc

VARIANTS = [{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}]


def new_key(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def function(
    client: httpx.AsyncClient, stack: Stack, name: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.post(f"/functions/v1/{name}", headers=key_headers(stack.keys.secret), json=body)


async def test_old_named_calls_keep_working(client: httpx.AsyncClient, stack: Stack) -> None:
    key = new_key("old")
    old_create = {
        "experiment_key": key,
        "variants": VARIANTS,
        "admin_id": ADMIN,
        "name": "Old",
        "description": "d",
        "salt": "old-salt",
        "salt_rotation_interval": "7 days",
    }
    r = await rpc(client, stack, "rec_create_experiment", old_create)
    assert r.status_code == 200, r.text
    row = r.json()
    assert row["key"] == key and row["coverage"] == 1 and row["layer"] is None
    assert (row["sequential"], row["sequential_tuning"], row["cuped_days"]) == (True, 5000, 14)
    r = await rpc(
        client,
        stack,
        "rec_update_experiment",
        {"experiment_key": key, "admin_id": ADMIN, "name": "Renamed", "variants": VARIANTS},
    )
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Renamed"
    r = await rpc(client, stack, "rec_update_experiment", {"experiment_key": key, "admin_id": ADMIN})
    assert r.status_code == 200, r.text  # only the required arguments


async def test_layers_through_named_calls(client: httpx.AsyncClient, stack: Stack) -> None:
    layer = new_key("layer")
    r = await rpc(client, stack, "rec_create_layer", {"layer_key": layer, "admin_id": ADMIN, "name": "Feed"})
    assert r.status_code == 200, r.text
    assert r.json()["key"] == layer and r.json()["salt"]
    first, second = new_key("a"), new_key("b")
    r = await rpc(
        client,
        stack,
        "rec_create_experiment",
        {
            "experiment_key": first,
            "variants": VARIANTS,
            "admin_id": ADMIN,
            "layer_key": layer,
            "layer_from": 0,
            "layer_to": 4000,
            "coverage": 0.1,
            "cuped_days": 0,
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["layer"] == layer and r.json()["layer_range"] == [0, 4000] and r.json()["cuped_days"] == 0
    r = await rpc(
        client,
        stack,
        "rec_create_experiment",
        {"experiment_key": second, "variants": VARIANTS, "admin_id": ADMIN, "layer_key": layer},
    )
    assert r.status_code == 400  # PostgREST sends 400 for 23P01
    body = error(r)
    assert body["code"] == "23P01" and repr(first) in body["message"]
    r = await rpc(client, stack, "rec_list_layers")
    assert r.status_code == 200
    listed = {row["key"]: row for row in r.json()}[layer]
    assert listed["experiments"] == [{"key": first, "status": "draft", "layer_range": [0, 4000]}]
    assert listed["free"] == [[4000, 10000]]
    r = await rpc(
        client, stack, "rec_update_experiment", {"experiment_key": first, "admin_id": ADMIN, "coverage": 0.5}
    )
    assert r.status_code == 200 and r.json()["coverage"] == 0.5
    r = await rpc(client, stack, "rec_get_experiment", {"experiment_key": first})
    got = r.json()
    assert (got["coverage"], got["layer"], got["layer_range"]) == (0.5, layer, [0, 4000])


async def test_layer_functions_over_http(client: httpx.AsyncClient, stack: Stack) -> None:
    layer = new_key("fl")
    r = await function(client, stack, "admin-create-layer", {"key": layer, "admin_id": ADMIN})
    assert r.status_code == 200, r.text
    r = await function(client, stack, "admin-create-layer", {"key": layer, "admin_id": ADMIN})
    assert r.status_code == 409 and r.json()["error"]["code"] == "23505"
    key = new_key("fe")
    body = {
        "key": key,
        "variants": VARIANTS,
        "admin_id": ADMIN,
        "layer_key": layer,
        "layer_from": 100,
        "layer_to": 200,
    }
    r = await function(
        client, stack, "admin-create-experiment", {**body, "coverage": 0.25, "sequential": False}
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert (data["layer"], data["layer_range"], data["coverage"], data["sequential"]) == (
        layer,
        [100, 200],
        0.25,
        False,
    )
    r = await function(
        client, stack, "admin-create-experiment", {**body, "key": new_key("fx"), "layer_from": 150}
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "23P01"
    assert repr(key) in r.json()["error"]["message"]
    r = await function(
        client, stack, "admin-create-experiment", {**body, "key": new_key("fy"), "layer_key": "nope-nope"}
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "P0002"
    await function(client, stack, "admin-activate-experiment", {"key": key, "admin_id": ADMIN})
    r = await function(
        client, stack, "admin-update-experiment", {"key": key, "admin_id": ADMIN, "layer_key": ""}
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "55000"
    r = await function(
        client, stack, "admin-update-experiment", {"key": key, "admin_id": ADMIN, "coverage": 1}
    )
    assert r.status_code == 200 and r.json()["data"]["coverage"] == 1
    r = await function(client, stack, "admin-list-layers", {})
    assert r.status_code == 200
    mine = [row for row in r.json()["data"] if row["key"] == layer]
    assert mine and mine[0]["free"] == [[0, 100], [200, 10000]]
