"""Routing, CORS, the OpenAPI document, start-up and configuration."""

from __future__ import annotations

import functools
import json
import logging

import httpx
import pytest
import respx
from starlette.applications import Starlette

from functions.app import create_app
from functions.registry import FUNCTIONS
from shared.client import create_client
from shared.config import ConfigError, Settings
from tests.functions.cases import NAMES
from tests.functions.conftest import (
    ADMIN,
    OTHER_SECRET_KEY,
    RPC,
    SECRET_KEY,
    SERVICE_ROLE_JWT,
    SETTINGS,
    URL,
    Caller,
    assert_no_key,
)

CORS = {
    "access-control-allow-origin": "*",
    "access-control-allow-headers": "authorization, x-client-info, apikey, content-type",
    "access-control-allow-methods": "POST, OPTIONS",
}
FUNCTION_NAMES = {
    "admin-create-experiment",
    "admin-update-experiment",
    "admin-activate-experiment",
    "admin-end-experiment",
    "admin-record-decision",
    "admin-rotate-salt",
    "admin-set-user-variant",
    "admin-reset-user-variant",
    "admin-list-experiments",
    "admin-get-experiment",
    "admin-search-users",
    "admin-user-assignments",
    "admin-audit-log",
    "admin-whoami",
    "admin-experiment-results",
    "admin-experiment-plan",
    "admin-create-metric",
    "admin-update-metric",
    "admin-list-metrics",
    "admin-set-experiment-metrics",
    "admin-create-layer",
    "admin-list-layers",
}
# Functions that call no RPC (tests/functions/test_sessions.py covers them).
NO_RPC = {"admin-whoami"}


def assert_cors(response: httpx.Response) -> None:
    for name, value in CORS.items():
        assert response.headers[name] == value


def test_routes_exactly_the_contract_functions() -> None:
    assert set(FUNCTIONS) == FUNCTION_NAMES == set(NAMES) | NO_RPC


@pytest.mark.parametrize("name", [*NAMES, "no-such-function"])
async def test_preflight_is_answered_without_a_key(name: str, client: httpx.AsyncClient) -> None:
    response = await client.options(
        f"/functions/v1/{name}",
        headers={
            "origin": "https://dash.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "apikey, content-type",
        },
    )
    assert response.status_code == 200
    assert response.text == "ok"
    assert_cors(response)


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
async def test_wrong_method_is_405_json(method: str, client: httpx.AsyncClient) -> None:
    response = await client.request(method, "/functions/v1/admin-list-experiments", headers=ADMIN)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST, OPTIONS"
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert_cors(response)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/functions/v1/admin-list-experiments"),
        ("DELETE", "/functions/v1/admin-end-experiment"),
        ("POST", "/functions/v1/admin-nope"),
        ("PROPFIND", "/functions/v1/admin-list-experiments"),
    ],
)
async def test_caller_check_comes_before_404_and_405(
    method: str, path: str, client: httpx.AsyncClient
) -> None:
    """Nothing about the functions is revealed to a caller without a service key."""
    response = await client.request(method, path)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    response = await client.request(method, path, headers={"apikey": "sb_publishable_x"})
    assert response.status_code == 403
    assert_cors(response)


async def test_unusual_method_is_405_json(client: httpx.AsyncClient) -> None:
    response = await client.request("PROPFIND", "/functions/v1/admin-list-experiments", headers=ADMIN)
    assert response.status_code == 405
    assert_cors(response)


@pytest.mark.parametrize(
    "path",
    [
        "/functions/v1/admin-nope",
        "/functions/v1/",
        "/",
        "/rest/v1/rpc/x",
        "/functions/v1/admin-list-experiments/extra",
    ],
)
async def test_unknown_paths_are_404_json(path: str, client: httpx.AsyncClient) -> None:
    response = await client.post(path, headers=ADMIN, json={})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert_cors(response)


async def test_unknown_function_name_is_not_echoed(client: httpx.AsyncClient) -> None:
    response = await client.post("/functions/v1/" + "<script>" * 100, headers=ADMIN)
    assert response.status_code == 404
    assert "<script>" not in response.text


@pytest.mark.parametrize("status_body", [{}, {"key": "Bad Key"}])
async def test_errors_carry_cors_headers(
    status_body: dict[str, str], call: Caller, postgrest: respx.MockRouter
) -> None:
    for headers in ({}, {"apikey": "nope"}, ADMIN):
        assert_cors(await call("admin-get-experiment", status_body, headers=headers))


async def test_success_carries_cors_headers(call: Caller, postgrest: respx.MockRouter) -> None:
    postgrest.post(RPC + "rec_list_experiments").respond(200, json=[])
    assert_cors(await call("admin-list-experiments", {}))


async def test_openapi_lists_all_functions(client: httpx.AsyncClient) -> None:
    response = await client.get("/functions/v1/openapi.json")
    assert response.status_code == 200
    assert_cors(response)
    doc = response.json()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {f"/functions/v1/{name}" for name in FUNCTION_NAMES}
    schemes = doc["components"]["securitySchemes"]
    assert schemes["apikey"] == {**schemes["apikey"], "type": "apiKey", "in": "header", "name": "apikey"}
    assert schemes["bearer"]["scheme"] == "bearer"
    assert doc["security"] == [{"apikey": []}, {"bearer": []}]
    create = doc["paths"]["/functions/v1/admin-create-experiment"]["post"]
    ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"key", "variants", "admin_id"}
    assert schema["properties"]["key"]["pattern"] == "^[a-z0-9][a-z0-9_.-]{0,63}$"
    assert {"200", "401", "403", "422", "503"} <= set(create["responses"])
    assert "$ref" not in json.dumps(doc).replace('"$ref": "#/components/', "")


async def test_openapi_marks_only_bodies_that_cannot_be_left_out_as_required(
    client: httpx.AsyncClient,
) -> None:
    doc = (await client.get("/functions/v1/openapi.json")).json()
    required = {
        path.rsplit("/", 1)[1]: op["post"]["requestBody"]["required"] for path, op in doc["paths"].items()
    }
    optional = {
        "admin-list-experiments",
        "admin-audit-log",
        "admin-whoami",
        "admin-list-metrics",
        "admin-list-layers",
    }
    assert required == {name: name not in optional for name in FUNCTION_NAMES}


async def test_openapi_says_what_the_server_refuses(client: httpx.AsyncClient) -> None:
    """What JSON Schema can say of the refusals the server makes."""
    schemas = (await client.get("/functions/v1/openapi.json")).json()["components"]["schemas"]
    variants = schemas["CreateExperiment"]["properties"]["variants"]
    assert variants["uniqueItems"] is True
    assert variants["contains"]["properties"]["weight"] == {"minimum": 0.000001}
    weight = schemas["Variant"]["properties"]["weight"]
    assert weight["anyOf"][0] == {"const": 0}
    update = schemas["UpdateExperiment"]["anyOf"]
    assert {"required": ["name"], "properties": {"name": {"not": {"type": "null"}}}} in update
    rotate = schemas["RotateSalt"]["oneOf"]
    assert rotate[0]["properties"]["admin_id"] == {"type": "string"}
    assert rotate[1]["properties"]["key"] == {"type": "null"}
    assert schemas["SearchUsers"]["properties"]["max_rows"]["anyOf"][0]["type"] == "integer"


async def test_openapi_refuses_post(client: httpx.AsyncClient) -> None:
    response = await client.post("/functions/v1/openapi.json", headers=ADMIN)
    assert response.status_code == 405


# --- configuration and start-up ------------------------------------------------

ENV = {"SUPABASE_URL": URL, "SUPABASE_SECRET_KEYS": json.dumps({"default": SECRET_KEY})}


def test_settings_from_env() -> None:
    env = {
        "SUPABASE_URL": URL + "/",
        "SUPABASE_SECRET_KEYS": json.dumps({"default": SECRET_KEY, "ci": OTHER_SECRET_KEY}),
        "SUPABASE_SERVICE_ROLE_KEY": SERVICE_ROLE_JWT,
        "SUPABASE_PUBLISHABLE_KEYS": json.dumps({"default": "sb_publishable_x"}),
        "SUPABASE_ANON_KEY": "anon",
    }
    settings = Settings.from_env(env)
    assert settings.supabase_url == URL
    assert settings.service_keys == (SECRET_KEY, OTHER_SECRET_KEY, SERVICE_ROLE_JWT)
    assert settings.client_key == SECRET_KEY
    assert settings.low_privilege_keys == ("sb_publishable_x", "anon")
    assert SECRET_KEY not in repr(settings) and SERVICE_ROLE_JWT not in repr(settings)


def test_legacy_service_role_key_alone_is_enough() -> None:
    settings = Settings.from_env({"SUPABASE_URL": URL, "SUPABASE_SERVICE_ROLE_KEY": "jwt"})
    assert settings.client_key == "jwt"


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({}, "SUPABASE_URL is not set"),
        ({"SUPABASE_URL": URL}, "no service-level key"),
        ({"SUPABASE_URL": "supabase.test", "SUPABASE_SERVICE_ROLE_KEY": "k"}, "http"),
        ({"SUPABASE_URL": URL, "SUPABASE_SECRET_KEYS": "sb_secret_raw"}, "not valid JSON"),
        ({"SUPABASE_URL": URL, "SUPABASE_SECRET_KEYS": '["sb_secret_x"]'}, "JSON object"),
        ({"SUPABASE_URL": URL, "SUPABASE_SECRET_KEYS": '{"default": ""}'}, "JSON object"),
        ({"SUPABASE_URL": URL, "SUPABASE_SECRET_KEYS": "{}"}, "no service-level key"),
    ],
)
def test_bad_config_is_one_clear_line(env: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    message = str(info.value)
    assert words in message and "\n" not in message
    assert "sb_secret_raw" not in message and "sb_secret_x" not in message


async def test_startup_fails_without_env(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("SUPABASE_URL", "SUPABASE_SECRET_KEYS", "SUPABASE_SERVICE_ROLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    app = create_app()
    with pytest.raises(ConfigError, match="SUPABASE_URL is not set"):
        async with app.router.lifespan_context(app):
            pass
    assert "functions cannot start: SUPABASE_URL is not set" in caplog.text


async def test_request_without_env_is_503_misconfigured(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    app = create_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://f") as http:
        response = await http.post("/functions/v1/admin-list-experiments", json={}, headers=ADMIN)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "misconfigured"
    assert "SUPABASE_URL is not set" in caplog.text


async def test_env_is_read_lazily_and_lifespan_builds_one_client(
    monkeypatch: pytest.MonkeyPatch, postgrest: respx.MockRouter
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    made: list[Settings] = []

    async def factory(settings: Settings):  # type: ignore[no-untyped-def]
        made.append(settings)
        return await create_client(settings)

    app = create_app(client_factory=factory)
    route = postgrest.post(RPC + "rec_list_experiments").respond(200, json=[])
    async with app.router.lifespan_context(app):
        assert len(made) == 1
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://f") as http:
            for _ in range(3):
                response = await http.post("/functions/v1/admin-list-experiments", json={}, headers=ADMIN)
                assert response.status_code == 200
    assert len(made) == 1  # one client per process, not per request
    assert route.call_count == 3
    assert route.calls.last.request.headers["apikey"] == SECRET_KEY


async def test_client_has_a_short_timeout() -> None:
    client = await create_client(SETTINGS)
    try:
        http = client.options.httpx_client
        assert http is not None and http.timeout.read == 10.0
        assert client.supabase_key == SECRET_KEY
    finally:
        await client.postgrest.aclose()


async def test_client_factory_with_custom_transport() -> None:
    # How a host (the dev stack) routes the client in-process instead of over the network.
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=["home-feed"])

    factory = functools.partial(create_client, transport=httpx.MockTransport(handler))
    app = create_app(SETTINGS, client_factory=factory)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://f") as http:
            response = await http.post("/functions/v1/admin-rotate-salt", json={"due": True}, headers=ADMIN)
    assert response.json() == {"data": {"rotated": ["home-feed"]}}
    assert str(seen[0].url) == URL + RPC + "rec_rotate_due_salts"


async def test_mounted_in_a_bigger_app_without_its_lifespan(postgrest: respx.MockRouter) -> None:
    # Starlette does not run a mounted app's lifespan: the client is then made lazily.
    from starlette.routing import Mount

    inner = create_app(SETTINGS)
    outer = Starlette(routes=[Mount("/", app=inner)])
    postgrest.post(RPC + "rec_list_experiments").respond(200, json=[{"key": "a"}])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=outer), base_url="http://f") as http:
        response = await http.post("/functions/v1/admin-list-experiments", json={}, headers=ADMIN)
    await inner.state.runtime.aclose()
    assert response.json() == {"data": [{"key": "a"}]}
    assert_no_key(response)


def test_module_level_app_imports_without_env() -> None:
    from functions import app as module

    assert isinstance(module.app, Starlette)


async def test_logs_at_startup_do_not_contain_keys(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SUPABASE_URL", "ftp://nope")
    monkeypatch.setenv("SUPABASE_SECRET_KEYS", json.dumps({"default": SECRET_KEY}))
    app = create_app()
    with caplog.at_level(logging.DEBUG), pytest.raises(ConfigError):
        async with app.router.lifespan_context(app):
            pass
    assert SECRET_KEY not in caplog.text
