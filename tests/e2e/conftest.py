"""End-to-end: the whole local stack (devstack.server.build_app) served by
uvicorn on a free port, over a freshly migrated and seeded database, driven
only the way its users drive it: `POST /functions/v1/<name>` with the
secret key (httpx and supabase-py's functions.invoke), the recommender RPCs
through supabase-py's rpc(), and impressions/outcomes through supabase-py's
table inserts, as a recommender backend writes them.

The server runner is tests/support/stack.py's `serve_stack`; the restart and
outage tests start and stop stacks with it themselves.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from supabase import AsyncClient, AsyncClientOptions, acreate_client

from devstack import migrate, postgres
from tests.support.stack import KEYS, Stack, key_headers, poll, serve_stack

__all__ = ["KEYS", "E2EStack", "key_headers", "poll", "serve_stack"]

ADMIN = "00000000-0000-4000-8000-0000000e2e01"
E2EStack = Stack


@pytest.fixture(scope="session")
def e2e_db(pg_server: postgres.Server) -> Iterator[str]:
    """A fresh database, migrated and seeded exactly as `recsys-exp dev` does."""
    with postgres.fresh_database(pg_server, prefix="rec_e2e") as url:
        migrate.migrate(url, seed=True)
        yield url


@pytest.fixture(scope="session")
def e2e_stack(e2e_db: str) -> Iterator[E2EStack]:
    with serve_stack(e2e_db) as stack:
        yield stack


@pytest.fixture
async def http(e2e_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=e2e_stack.url, timeout=30) as client:
        yield client


@asynccontextmanager
async def supabase_client(url: str, key: str, *, bearer: str | None = None) -> AsyncIterator[AsyncClient]:
    """supabase-py's async client with its own (closed afterwards) httpx client;
    `bearer` rides along as a signed-in user's access token would."""
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    async with httpx.AsyncClient(timeout=30) as transport:
        options = AsyncClientOptions(
            httpx_client=transport, headers=headers, auto_refresh_token=False, persist_session=False
        )
        yield await acreate_client(url, key, options)


async def rpc(client: AsyncClient, fn: str, params: dict[str, Any]) -> Any:
    """supabase-py's rpc(): the parsed JSON result (APIError on failure)."""
    return (await client.rpc(fn, params).execute()).data


async def invoke(
    http: httpx.AsyncClient, name: str, body: Any = None, *, headers: dict[str, str] | None = None
) -> httpx.Response:
    """POST /functions/v1/<name> with the secret key unless headers say otherwise."""
    sent = key_headers(KEYS.secret) if headers is None else headers
    return await http.post(f"/functions/v1/{name}", json={} if body is None else body, headers=sent)


async def call(http: httpx.AsyncClient, name: str, body: Any = None) -> Any:
    """A function call that must succeed: its `data`."""
    response = await invoke(http, name, body)
    assert response.status_code == 200, f"{name}: {response.status_code} {response.text}"
    payload = response.json()
    assert set(payload) == {"data"}, payload
    return payload["data"]


def failure(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """A function's error answer: the status, the `{"error": …}` shape, no leaks."""
    assert response.status_code == status, f"{response.status_code} {response.text}"
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert {"code", "message"} <= set(error) <= {"code", "message", "details"}, error
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    text = response.text
    assert "Traceback" not in text and KEYS.secret not in text and KEYS.jwt_secret not in text
    assert response.headers["access-control-allow-origin"] == "*"
    return error


def audit_count(stack: Stack) -> int:
    return int(stack.sql("select count(*) from public.rec_audit_log")[0][0])


def new_key(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def user_ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]
