"""admin-end-experiment's decision, admin-record-decision and the list's
search and paging: what they send, and the bodies they refuse before any
request reaches PostgREST."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from tests.functions.conftest import ADMIN_ID, RPC, Caller, pg_error

END = {"key": "home-feed", "admin_id": ADMIN_ID}


async def test_end_without_a_decision_sends_only_key_and_admin(
    call: Caller, postgrest: respx.MockRouter
) -> None:
    route = postgrest.post(RPC + "rec_end_experiment").respond(200, json={"status": "ended"})
    response = await call("admin-end-experiment", END)
    assert response.status_code == 200, response.text
    assert json.loads(route.calls.last.request.content) == {
        "experiment_key": "home-feed",
        "admin_id": ADMIN_ID,
    }


BAD_DECISIONS = {
    "unknown-decision": {"decision": "won"},
    "decision-case": {"decision": "Shipped", "winner": "v2"},
    "decision-null-with-winner": {"decision": None, "winner": "v2"},
    "winner-without-decision": {"winner": "v2"},
    "winner-with-rolled-back": {"decision": "rolled_back", "winner": "v2"},
    "shipped-without-winner": {"decision": "shipped"},
    "winner-not-a-variant-name": {"decision": "shipped", "winner": "a b"},
    "notes-too-long": {"decision": "inconclusive", "notes": "x" * 5001},
    "notes-with-nul": {"decision": "inconclusive", "notes": "a\x00b"},
    "notes-number": {"decision": "inconclusive", "notes": 3},
}


@pytest.mark.parametrize("name", ["admin-end-experiment", "admin-record-decision"])
@pytest.mark.parametrize("extra", list(BAD_DECISIONS.values()), ids=list(BAD_DECISIONS))
async def test_bad_decisions_are_422_before_any_rpc(
    name: str, extra: dict[str, Any], call: Caller, postgrest: respx.MockRouter
) -> None:
    route = postgrest.route().respond(500)
    response = await call(name, {**END, **extra})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_failed"
    assert route.call_count == 0


async def test_record_needs_a_decision(call: Caller, postgrest: respx.MockRouter) -> None:
    route = postgrest.route().respond(500)
    response = await call("admin-record-decision", END)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["decision"]
    assert route.call_count == 0


@pytest.mark.parametrize(
    ("code", "status"),
    [("22023", 422), ("55000", 409), ("P0002", 404)],
    ids=["unknown-winner", "not-ended", "unknown-key"],
)
async def test_database_refusals_map_to_clear_errors(
    code: str, status: int, call: Caller, postgrest: respx.MockRouter
) -> None:
    message = "experiment 'home-feed' has no variant 'v9'"
    postgrest.post(RPC + "rec_record_decision").mock(return_value=pg_error(400, code, message))
    body = {**END, "decision": "shipped", "winner": "v9"}
    response = await call("admin-record-decision", body)
    assert response.status_code == status
    assert response.json()["error"] == {"code": code, "message": message}


# --- the list: search and paging ---------------------------------------------------

BAD_LISTS = {
    "max-rows-0": {"max_rows": 0},
    "max-rows-1001": {"max_rows": 1001},
    "max-rows-fraction": {"max_rows": 2.5},
    "max-rows-text": {"max_rows": "10"},
    "offset-negative": {"offset_rows": -1},
    "offset-past-int4": {"offset_rows": 2**31},
    "offset-bool": {"offset_rows": True},
    "search-empty": {"search": ""},
    "search-too-long": {"search": "s" * 201},
    "search-nul": {"search": "a\x00"},
    "search-list": {"search": ["feed"]},
    "status-unknown": {"status": "paused"},
}


@pytest.mark.parametrize("body", list(BAD_LISTS.values()), ids=list(BAD_LISTS))
async def test_bad_list_arguments_are_422(
    body: dict[str, Any], call: Caller, postgrest: respx.MockRouter
) -> None:
    route = postgrest.route().respond(500)
    response = await call("admin-list-experiments", body)
    assert response.status_code == 422, response.text
    assert route.call_count == 0


async def test_list_sends_only_what_was_given(call: Caller, postgrest: respx.MockRouter) -> None:
    route = postgrest.post(RPC + "rec_list_experiments").respond(200, json=[])
    response = await call("admin-list-experiments", {"search": "Feed", "max_rows": 5.0})
    assert response.status_code == 200
    assert json.loads(route.calls.last.request.content) == {"search": "Feed", "max_rows": 5}


async def test_openapi_says_what_the_new_fields_take(client: httpx.AsyncClient) -> None:
    schemas = (await client.get("/functions/v1/openapi.json")).json()["components"]["schemas"]
    listing = schemas["ListExperiments"]["properties"]
    assert {"minimum": 1, "maximum": 1000, "type": "integer"}.items() <= listing["max_rows"]["anyOf"][
        0
    ].items()
    assert {"minimum": 0, "type": "integer"}.items() <= listing["offset_rows"]["anyOf"][0].items()
    assert {"minLength": 1, "maxLength": 200}.items() <= listing["search"]["anyOf"][0].items()
    for model in ("EndExperiment", "RecordDecision"):
        schema = schemas[model]
        decision = schema["properties"]["decision"]
        choices = decision["anyOf"][0]["enum"] if "anyOf" in decision else decision["enum"]
        assert set(choices) == {"shipped", "rolled_back", "inconclusive"}
        pairing = schema["allOf"]
        assert pairing[0]["then"]["properties"]["decision"] == {"const": "shipped"}
        assert pairing[1]["then"]["required"] == ["winner"]
        assert schema["properties"]["notes"]["anyOf"][0]["maxLength"] == 5000
    assert schemas["RecordDecision"]["required"] == ["key", "admin_id", "decision"]
