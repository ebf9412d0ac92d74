"""Real clients against the stack: supabase-py's rpc(), the admin functions
at /functions/v1 (whose own client calls back into /rest/v1), the index
and health pages, and a database that is not there."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from postgrest.exceptions import APIError
from supabase import AsyncClient, acreate_client

from devstack import rest
from devstack.keys import LocalKeys
from devstack.server import build_app
from tests.stack.conftest import ADMIN, Stack, error, key_headers

VARIANTS = [{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}]


@pytest.fixture
async def admin(stack: Stack) -> AsyncIterator[AsyncClient]:
    client = await acreate_client(stack.url, stack.keys.secret)
    yield client
    await client.postgrest.aclose()


async def call(client: AsyncClient, fn: str, params: dict[str, Any], get: bool = False) -> Any:
    """supabase-py's rpc(): the parsed JSON result."""
    return (await client.rpc(fn, params, get=get).execute()).data


async def test_supabase_client_calls_rpcs(admin: AsyncClient) -> None:
    key = f"client-{uuid.uuid4().hex[:10]}"
    created = await call(
        admin, "rec_create_experiment", {"experiment_key": key, "variants": VARIANTS, "admin_id": ADMIN}
    )
    assert created["key"] == key and created["status"] == "draft"
    await call(admin, "rec_activate_experiment", {"experiment_key": key, "admin_id": ADMIN})
    user = str(uuid.uuid4())
    variant = await call(admin, "rec_assign_variant", {"experiment_key": key, "user_id": user})
    assert variant in ("control", "treatment")
    listed = await call(admin, "rec_list_experiments", {"status": "active"})
    assert key in {row["key"] for row in listed}
    read = await call(admin, "rec_get_experiment", {"experiment_key": key}, get=True)
    assert read["key"] == key
    assert await call(admin, "stack_void", {}) == []  # supabase-py's reading of a 204


async def test_supabase_client_raises_the_postgres_error(admin: AsyncClient) -> None:
    with pytest.raises(APIError) as raised:
        await admin.rpc("rec_get_experiment", {"experiment_key": "client-missing"}).execute()
    assert raised.value.code == "P0002"
    assert raised.value.message == "experiment 'client-missing' does not exist"


async def test_publishable_client_is_refused_admin_rpcs(stack: Stack) -> None:
    public = await acreate_client(stack.url, stack.keys.publishable)
    try:
        with pytest.raises(APIError) as raised:
            await public.rpc("rec_list_experiments", {}).execute()
    finally:
        await public.postgrest.aclose()
    assert raised.value.code == "42501"


async def test_functions_call_back_into_the_rpc_endpoint(client: httpx.AsyncClient, stack: Stack) -> None:
    key = f"fn-{uuid.uuid4().hex[:10]}"
    headers = key_headers(stack.keys.secret)
    created = await client.post(
        "/functions/v1/admin-create-experiment",
        headers=headers,
        json={"key": key, "variants": VARIANTS, "admin_id": ADMIN},
    )
    assert created.status_code == 200, created.text
    assert created.json()["data"]["key"] == key
    got = await client.post("/functions/v1/admin-get-experiment", headers=headers, json={"key": key})
    assert got.status_code == 200 and got.json()["data"]["status"] == "draft"
    refused = await client.post(
        "/functions/v1/admin-list-experiments", json={}, headers=key_headers(stack.keys.publishable)
    )
    assert refused.status_code == 403


async def test_index_and_health(client: httpx.AsyncClient, stack: Stack) -> None:
    index = (await client.get("/")).json()
    assert index["rpc"] == f"{stack.url}/rest/v1/rpc/<function>"
    assert index["functions"]["admin-rotate-salt"] == f"{stack.url}/functions/v1/admin-rotate-salt"
    assert stack.keys.secret not in (await client.get("/")).text
    assert (await client.get("/health")).json() == {"status": "ok", "database": "up"}
    assert (await client.get("/nowhere")).status_code == 404


async def test_in_process_stack_needs_no_socket(stack: Stack) -> None:
    app = build_app(stack.db_url, LocalKeys(), "http://stack.invalid", loopback=True)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://stack.invalid") as http:
            r = await http.post(
                "/functions/v1/admin-list-experiments", json={}, headers=key_headers(stack.keys.secret)
            )
    assert r.status_code == 200
    listed = sorted(row["key"] for row in r.json()["data"])
    assert listed == sorted(k for (k,) in stack.sql("select key from rec_experiments"))


async def test_unreachable_database_is_503(stack: Stack) -> None:
    app = build_app(
        "host=127.0.0.1 port=1 dbname=postgres user=postgres connect_timeout=1",
        LocalKeys(),
        "http://down.invalid",
        acquire_timeout=0.5,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://down.invalid") as http:
            r = await http.post(
                "/rest/v1/rpc/rec_list_experiments", json={}, headers=key_headers(stack.keys.secret)
            )
            health = await http.get("/health")
    assert r.status_code == 503 and error(r)["code"] == "PGRST000"
    assert "Traceback" not in r.text
    assert health.status_code == 503
    assert health.json()["database"] == "down" and health.json()["status"] == "degraded"


async def test_login_falls_back_to_the_url_user_only_when_needed(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _, role = await rest.login_conninfo(stack.db_url)
    assert role == stack.rest.login_role  # authenticator wherever it can log in
    monkeypatch.setattr(rest, "AUTHENTICATOR", "rec_no_such_login_role")
    conninfo, role = await rest.login_conninfo(stack.db_url)
    assert conninfo == stack.db_url and role != "rec_no_such_login_role"
    assert "authenticator cannot log in" in caplog.text


async def test_dropped_connections_are_a_reset_not_an_outage(
    stack: Stack, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Every connection of the stack terminated while the server stays up (as
    after a quick restart): /health stays 200, one log line, fresh connections."""
    caplog.set_level(logging.WARNING, logger="devstack.database")
    backends = "select pid from pg_stat_activity where datname = current_database() and application_name = %s"
    # A backend an earlier test terminated may still be listed for a moment
    # on a busy machine: wait until the monitor's one connection is all there is.
    deadline = time.monotonic() + 30
    while len(before := stack.sql(backends, ["recsys-exp health"])) != 1:
        assert time.monotonic() < deadline, f"health connections: {before}"
        await asyncio.sleep(0.1)
    stack.sql(
        "select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() "
        "and application_name in ('recsys-exp health', 'recsys-exp rest')"
    )
    headers = key_headers(stack.keys.secret)

    async def serving_again() -> bool:
        assert (await client.get("/health")).status_code == 200  # never an outage
        after = stack.sql(backends, ["recsys-exp health"])
        r = await client.post("/rest/v1/rpc/rec_list_experiments", json={}, headers=headers)
        return bool(after) and after != before and r.status_code == 200

    deadline = time.monotonic() + 30
    while not await serving_again():
        assert time.monotonic() < deadline, "no fresh connections within 30 s"
        await asyncio.sleep(0.05)
    lines = [r.getMessage() for r in caplog.records if r.name == "devstack.database"]
    assert len(lines) == 1 and lines[0].startswith("database connection reset ("), lines
