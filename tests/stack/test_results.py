"""admin-experiment-results through the whole stack: function → /rest/v1 →
Postgres, with its 404 and 422."""

from __future__ import annotations

import uuid

import httpx

from tests.stack.conftest import ADMIN, Stack, key_headers

VARIANTS = [{"name": "control", "weight": 1}, {"name": "treatment", "weight": 3}]


async def test_results_answer_and_errors(client: httpx.AsyncClient, stack: Stack) -> None:
    key = f"res-{uuid.uuid4().hex[:10]}"
    headers = key_headers(stack.keys.secret)
    created = await client.post(
        "/functions/v1/admin-create-experiment",
        headers=headers,
        json={"key": key, "variants": VARIANTS, "admin_id": ADMIN},
    )
    assert created.status_code == 200, created.text
    got = await client.post(
        "/functions/v1/admin-experiment-results",
        headers=headers,
        json={"key": key, "from_day": "2026-01-01", "to_day": "2026-01-31"},
    )
    assert got.status_code == 200, got.text
    data = got.json()["data"]
    assert (data["key"], data["from_day"], data["to_day"], data["baseline"]) == (
        key,
        "2026-01-01",
        "2026-01-31",
        "control",
    )
    assert [(v["variant"], v["weight"], v["users"]) for v in data["variants"]] == [
        ("control", 1, 0),
        ("treatment", 3, 0),
    ]
    assert [(m["metric"], m["value"]) for m in data["metrics"][:2]] == [
        ("engagement_rate", None),
        ("engagement_rate", None),
    ]
    assert data["health"]["srm_p_value"] is None and data["health"]["srm"] is False

    missing = await client.post(
        "/functions/v1/admin-experiment-results", headers=headers, json={"key": "no-such-experiment"}
    )
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "P0002"
    reversed_window = await client.post(
        "/functions/v1/admin-experiment-results",
        headers=headers,
        json={"key": key, "from_day": "2026-02-01", "to_day": "2026-01-01"},
    )
    assert reversed_window.status_code == 422
