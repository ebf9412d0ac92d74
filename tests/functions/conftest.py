"""Functions against a respx-mocked PostgREST: no database, no network."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jwt
import pytest
import respx
from starlette.applications import Starlette

from functions.app import create_app
from shared.config import Settings

URL = "http://supabase.test"
RPC = "/rest/v1/rpc/"
JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
SECRET_KEY = "sb_secret_test_4f9c2d7e1a8b3c6d5e0f9a2b"
OTHER_SECRET_KEY = "sb_secret_test_second_7d1e8c3b2a9f"
PUBLISHABLE_KEY = "sb_publishable_test_0a1b2c3d4e5f6a7b"
ADMIN_ID = "2b1c6a4e-9c1d-4c3b-8f7e-1a2b3c4d5e6f"
USER_ID = "7f0e2d3c-4b5a-4968-8776-5a4b3c2d1e0f"
FAR = int(time.time()) + 10 * 365 * 86400


def make_jwt(claims: dict[str, Any], secret: str = JWT_SECRET) -> str:
    return jwt.encode({"iss": "supabase-demo", **claims}, secret, algorithm="HS256")


SERVICE_ROLE_JWT = make_jwt({"role": "service_role", "exp": FAR})
ANON_JWT = make_jwt({"role": "anon", "exp": FAR})
USER_JWT = make_jwt({"role": "authenticated", "sub": USER_ID, "exp": FAR})
EXPIRED_SERVICE_JWT = make_jwt({"role": "service_role", "exp": int(time.time()) - 60})
FOREIGN_SERVICE_JWT = make_jwt(
    {"role": "service_role", "exp": FAR}, "another-secret-that-is-also-32-characters-long"
)
ALL_KEYS = (SECRET_KEY, OTHER_SECRET_KEY, SERVICE_ROLE_JWT)

ADMIN = {"apikey": SECRET_KEY}

SETTINGS = Settings(
    supabase_url=URL,
    secret_keys=(SECRET_KEY, OTHER_SECRET_KEY),
    service_role_key=SERVICE_ROLE_JWT,
    publishable_keys=(PUBLISHABLE_KEY,),
    anon_key=ANON_JWT,
)


def pg_error(
    status: int, code: str, message: str, details: str | None = None, hint: str | None = None
) -> httpx.Response:
    """PostgREST's error body: always all four keys."""
    body = {"code": code, "message": message, "details": details, "hint": hint}
    return httpx.Response(status, json=body)


def assert_no_key(response: httpx.Response) -> None:
    for key in ALL_KEYS:
        assert key not in response.text
        assert all(key not in value for value in response.headers.values())


@pytest.fixture(scope="session")
def app() -> Starlette:
    return create_app(SETTINGS)


@pytest.fixture(scope="session")
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://functions.test") as http:
        yield http
    await app.state.runtime.aclose()


@pytest.fixture
def postgrest() -> Iterator[respx.MockRouter]:
    """The mocked PostgREST; a catch-all route answers anything not set up by the test."""
    with respx.mock(base_url=URL, assert_all_called=False) as router:
        yield router


class Caller:
    """POSTs to a function and checks what every response must satisfy."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def __call__(
        self,
        name: str,
        body: Any = None,
        *,
        content: bytes | None = None,
        headers: dict[str, Any] | None = None,
    ) -> httpx.Response:
        response = await self.http.post(
            f"/functions/v1/{name}",
            json=body if content is None else None,
            content=content,
            headers=ADMIN if headers is None else headers,
        )
        assert_no_key(response)
        assert response.headers["access-control-allow-origin"] == "*"
        assert response.headers["content-type"] == "application/json"
        return response


@pytest.fixture
def call(client: httpx.AsyncClient) -> Caller:
    return Caller(client)
