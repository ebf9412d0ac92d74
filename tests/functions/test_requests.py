"""The exact request each function sends to PostgREST, and what it answers."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from tests.functions.cases import CASES, EXPERIMENT, VARIANTS, Case
from tests.functions.conftest import (
    ADMIN_ID,
    RPC,
    SECRET_KEY,
    SERVICE_ROLE_JWT,
    USER_ID,
    Caller,
)

SIMPLE = [case for case in CASES if case.data is not None]


def assert_rpc_request(request: httpx.Request, fn: str, args: dict[str, object]) -> None:
    assert request.method == "POST"
    assert request.url.path == RPC + fn
    assert request.headers["apikey"] == SECRET_KEY
    assert request.headers["authorization"] == f"Bearer {SECRET_KEY}"
    assert json.loads(request.content) == args


@pytest.mark.parametrize("case", SIMPLE, ids=lambda case: case.id)
async def test_sends_rpc_and_answers_data(case: Case, call: Caller, postgrest: respx.MockRouter) -> None:
    route = postgrest.post(RPC + case.rpc).respond(200, json=case.result)
    response = await call(case.name, case.body)
    assert response.status_code == 200, response.text
    assert response.json() == {"data": case.data}
    assert route.call_count == 1
    assert_rpc_request(route.calls.last.request, case.rpc, case.args)


async def test_get_experiment_merges_daily_metrics(call: Caller, postgrest: respx.MockRouter) -> None:
    rows = [{"day": "2026-11-01", "variant": "control", "impressions": 10}]
    get = postgrest.post(RPC + "rec_get_experiment").respond(200, json=EXPERIMENT)
    daily = postgrest.post(RPC + "rec_experiment_daily_metrics").respond(200, json=rows)
    body = {"key": "home-feed", "from_day": "2026-11-01", "to_day": "2026-11-07"}
    response = await call("admin-get-experiment", body)
    assert response.status_code == 200
    assert response.json() == {"data": {**EXPERIMENT, "daily_metrics": rows}}
    assert_rpc_request(get.calls.last.request, "rec_get_experiment", {"experiment_key": "home-feed"})
    assert_rpc_request(
        daily.calls.last.request,
        "rec_experiment_daily_metrics",
        {"experiment_key": "home-feed", "from_day": "2026-11-01", "to_day": "2026-11-07"},
    )


async def test_get_experiment_reversed_days_are_an_empty_range(
    call: Caller, postgrest: respx.MockRouter
) -> None:
    get = postgrest.post(RPC + "rec_get_experiment").respond(200, json=EXPERIMENT)
    daily = postgrest.post(RPC + "rec_experiment_daily_metrics").respond(200, json=[{"day": "x"}])
    body = {"key": "home-feed", "from_day": "2026-11-08", "to_day": "2026-11-01"}
    response = await call("admin-get-experiment", body)
    assert response.status_code == 200
    assert response.json() == {"data": {**EXPERIMENT, "daily_metrics": []}}
    assert get.call_count == 1 and daily.call_count == 0


async def test_get_experiment_unknown_key_stops_at_first_rpc(
    call: Caller, postgrest: respx.MockRouter
) -> None:
    postgrest.post(RPC + "rec_get_experiment").respond(
        500,
        json={
            "code": "P0002",
            "message": 'experiment "nope" not found',
            "details": None,
            "hint": "Check the key with rec_list_experiments().",
        },
    )
    daily = postgrest.post(RPC + "rec_experiment_daily_metrics").respond(200, json=[])
    response = await call("admin-get-experiment", {"key": "nope"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "P0002"
    assert daily.call_count == 0


async def test_create_sends_every_optional_argument(call: Caller, postgrest: respx.MockRouter) -> None:
    route = postgrest.post(RPC + "rec_create_experiment").respond(200, json=EXPERIMENT)
    body = {
        "key": "home-feed",
        "variants": VARIANTS,
        "admin_id": ADMIN_ID.upper(),
        "name": "Home feed",
        "description": "Ranking v2 vs v1 ✓",
        "salt": "s3cr3t-salt",
        "salt_rotation_interval": "7 days",
    }
    response = await call("admin-create-experiment", body)
    assert response.status_code == 200
    expected = {**body, "admin_id": ADMIN_ID}  # canonical lower-case uuid
    expected["experiment_key"] = expected.pop("key")
    assert_rpc_request(route.calls.last.request, "rec_create_experiment", expected)


async def test_create_sends_layer_coverage_and_settings(call: Caller, postgrest: respx.MockRouter) -> None:
    route = postgrest.post(RPC + "rec_create_experiment").respond(200, json=EXPERIMENT)
    body = {
        "key": "home-feed",
        "variants": VARIANTS,
        "admin_id": ADMIN_ID,
        "coverage": 0.05,
        "layer_key": "feed",
        "layer_from": 0,
        "layer_to": 2500.0,  # a whole number is an integer
        "sequential": False,
        "sequential_tuning": 20000,
        "cuped_days": 0,
    }
    assert (await call("admin-create-experiment", body)).status_code == 200
    expected = {**body, "layer_to": 2500, "experiment_key": "home-feed"}
    del expected["key"]
    assert_rpc_request(route.calls.last.request, "rec_create_experiment", expected)


async def test_update_leaves_a_layer_and_ramps(call: Caller, postgrest: respx.MockRouter) -> None:
    route = postgrest.post(RPC + "rec_update_experiment").respond(200, json=EXPERIMENT)
    body = {"key": "home-feed", "admin_id": ADMIN_ID, "layer_key": "", "coverage": 1}
    assert (await call("admin-update-experiment", body)).status_code == 200
    assert_rpc_request(
        route.calls.last.request,
        "rec_update_experiment",
        {"experiment_key": "home-feed", "admin_id": ADMIN_ID, "layer_key": "", "coverage": 1.0},
    )


async def test_weights_are_forwarded_as_sent(call: Caller, postgrest: respx.MockRouter) -> None:
    """50 stays 50 (not 50.0) and 0.5 stays 0.5: the stored variants read as the admin wrote them."""
    route = postgrest.post(RPC + "rec_create_experiment").respond(200, json=EXPERIMENT)
    variants = [{"name": "a", "weight": 50}, {"name": "b", "weight": 0.5}, {"name": "c", "weight": 0}]
    body = {"key": "home-feed", "variants": variants, "admin_id": ADMIN_ID}
    assert (await call("admin-create-experiment", body)).status_code == 200
    sent = route.calls.last.request.content.decode()
    assert '"weight":50}' in sent.replace(" ", "") and '"weight":0.5}' in sent.replace(" ", "")
    assert '"weight":0}' in sent.replace(" ", "")


async def test_update_sends_only_given_fields(call: Caller, postgrest: respx.MockRouter) -> None:
    route = postgrest.post(RPC + "rec_update_experiment").respond(200, json=EXPERIMENT)
    body = {
        "key": "home-feed",
        "admin_id": ADMIN_ID,
        "variants": VARIANTS,
        "salt_rotation_interval": "1 day",
        "description": None,
    }
    response = await call("admin-update-experiment", body)
    assert response.status_code == 200
    assert_rpc_request(
        route.calls.last.request,
        "rec_update_experiment",
        {
            "experiment_key": "home-feed",
            "admin_id": ADMIN_ID,
            "variants": VARIANTS,
            "salt_rotation_interval": "1 day",
        },
    )


async def test_rotate_salt_with_reassign(call: Caller, postgrest: respx.MockRouter) -> None:
    route = postgrest.post(RPC + "rec_rotate_salt").respond(200, json="fresh")
    body = {"key": "home-feed", "admin_id": ADMIN_ID, "reassign": True}
    response = await call("admin-rotate-salt", body)
    assert response.json() == {"data": {"key": "home-feed", "salt": "fresh"}}
    assert_rpc_request(
        route.calls.last.request,
        "rec_rotate_salt",
        {"experiment_key": "home-feed", "admin_id": ADMIN_ID, "reassign": True},
    )


@pytest.mark.parametrize(
    ("body", "args"),
    [
        ({"due": True}, {"reassign": False}),
        ({"due": True, "reassign": True, "admin_id": ADMIN_ID}, {"reassign": True, "admin_id": ADMIN_ID}),
    ],
)
async def test_rotate_due_salts_for_the_scheduler(
    body: dict[str, object], args: dict[str, object], call: Caller, postgrest: respx.MockRouter
) -> None:
    route = postgrest.post(RPC + "rec_rotate_due_salts").respond(200, json=["a", "b"])
    response = await call("admin-rotate-salt", body)
    assert response.status_code == 200
    assert response.json() == {"data": {"rotated": ["a", "b"]}}
    assert_rpc_request(route.calls.last.request, "rec_rotate_due_salts", args)


@pytest.mark.parametrize(
    ("name", "fn"),
    [("admin-list-experiments", "rec_list_experiments"), ("admin-audit-log", "rec_audit_entries")],
)
async def test_no_body_means_no_filters(
    name: str, fn: str, call: Caller, postgrest: respx.MockRouter
) -> None:
    route = postgrest.post(RPC + fn).respond(200, json=[])
    response = await call(name)
    assert response.json() == {"data": []}
    assert_rpc_request(route.calls.last.request, fn, {})


@pytest.mark.parametrize(
    ("name", "fn", "body"),
    [
        ("admin-search-users", "rec_search_users", {"query": "a", "max_rows": 30.0}),
        ("admin-audit-log", "rec_audit_entries", {"max_rows": 30.0}),
    ],
)
async def test_whole_numbers_sent_as_floats_are_integers(
    name: str, fn: str, body: dict[str, object], call: Caller, postgrest: respx.MockRouter
) -> None:
    """JSON Schema's integer includes 30.0; the RPC gets 30."""
    route = postgrest.post(RPC + fn).respond(200, json=[])
    response = await call(name, body)
    assert response.status_code == 200, response.text
    sent = json.loads(route.calls.last.request.content)
    assert sent["max_rows"] == 30 and isinstance(sent["max_rows"], int)


async def test_search_users_default_rows(call: Caller, postgrest: respx.MockRouter) -> None:
    route = postgrest.post(RPC + "rec_search_users").respond(200, json=[])
    await call("admin-search-users", {"query": USER_ID})
    assert_rpc_request(route.calls.last.request, "rec_search_users", {"query": USER_ID})


async def test_bearer_service_role_jwt_is_not_forwarded(call: Caller, postgrest: respx.MockRouter) -> None:
    # The caller's credentials never reach PostgREST: the function uses its own key.
    route = postgrest.post(RPC + "rec_list_experiments").respond(200, json=[])
    await call("admin-list-experiments", {}, headers={"authorization": f"Bearer {SERVICE_ROLE_JWT}"})
    assert route.calls.last.request.headers["authorization"] == f"Bearer {SECRET_KEY}"


async def test_results_series_makes_one_series_call_for_uncapped_metrics(
    call: Caller, postgrest: respx.MockRouter
) -> None:
    """No capped metric: the window's stats and one series call, never one
    results call per day."""
    from shared import results
    from shared.results.series import series
    from tests.functions.cases import RESULTS_STATS

    per_day = {"key": "home-feed", "from_day": "2026-01-10", "to_day": "2026-01-11", "metric_stats": []}
    stats = postgrest.post(RPC + "rec_experiment_results_stats").respond(200, json=RESULTS_STATS)
    days = postgrest.post(RPC + "rec_experiment_results_series_stats").respond(200, json=per_day)
    body = {"key": "home-feed", "from_day": "2026-01-10", "to_day": "2026-01-11", "series": True}
    response = await call("admin-experiment-results", body)
    assert response.status_code == 200, response.text
    answer = response.json()["data"]
    assert answer == {**results.analyse(RESULTS_STATS), "series": series(RESULTS_STATS, per_day, {})}
    assert [p["day"] for p in answer["series"]] == ["2026-01-10", "2026-01-11"]
    assert stats.call_count == 1 and days.call_count == 1
    window = {"p_experiment_key": "home-feed", "p_from": "2026-01-10", "p_to": "2026-01-11"}
    assert_rpc_request(stats.calls.last.request, "rec_experiment_results_stats", window)
    assert_rpc_request(days.calls.last.request, "rec_experiment_results_series_stats", window)
