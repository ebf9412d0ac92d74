"""The Auth stand-in and the functions against abuse, over real HTTP:
oversized bodies are refused before they are read, password guessing is
rate-limited per e-mail and per address, a replayed refresh token ends its
session, and a signed-out session's access tokens stop working at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jwt
import psutil
import pytest

from devstack.auth import AuthApi
from devstack.auth_limits import Limit, SignInLimiter
from shared import auth as messages
from tests.sessions.conftest import Person, refresh, sign_in
from tests.stack.conftest import Stack

MB = 1024 * 1024


def auth_api(stack: Stack) -> AuthApi:
    api: AuthApi = stack.app.state.auth
    return api


def _chunks(total: int) -> Iterator[bytes]:
    block = b"x" * MB
    for _ in range(total // MB):
        yield block


async def _async_chunks(total: int) -> AsyncIterator[bytes]:
    for block in _chunks(total):
        yield block


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_200_mb_to_the_token_endpoint_is_413_and_not_held_in_memory(
    http: httpx.AsyncClient, stack: Stack, declared: bool
) -> None:
    size = 200 * MB
    process = psutil.Process()  # the stack serves from a thread of this process
    before = process.memory_info().rss
    headers = {"apikey": stack.keys.publishable, "content-type": "application/json"}
    if declared:
        headers["content-length"] = str(size)
    response = await http.post(
        "/auth/v1/token", params={"grant_type": "password"}, content=_async_chunks(size), headers=headers
    )
    grown = process.memory_info().rss - before
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["code"] == 413 and body["error_code"] == "request_too_large"
    assert grown < 20 * MB, f"RSS grew by {grown / MB:.0f} MB"


@pytest.mark.parametrize(("method", "path"), [("GET", "/auth/v1/user"), ("POST", "/auth/v1/logout")])
async def test_user_and_logout_bound_their_bodies_too(
    http: httpx.AsyncClient, stack: Stack, tokens: dict[str, str], method: str, path: str
) -> None:
    headers = {"apikey": stack.keys.publishable, "authorization": f"Bearer {tokens['viewer']}"}
    response = await http.request(method, path, content=b"x" * (2 * MB), headers=headers)
    assert response.status_code == 413
    assert response.json()["error_code"] == "request_too_large"
    # nothing happened: the session still works
    assert (await http.get("/auth/v1/user", headers=headers)).status_code == 200


class Clock:
    """The limiter's clock, moved by the test: waiting out the window takes no time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    limiter = SignInLimiter(per_email=Limit(3, 60.0), per_address=Limit(5, 60.0), clock=clock)
    monkeypatch.setattr(auth_api(stack), "limiter", limiter)
    return clock


async def test_wrong_passwords_per_email_hit_429_until_the_window_passes(
    http: httpx.AsyncClient, stack: Stack, people: dict[str, Person], clock: Clock
) -> None:
    email = people["viewer"].email
    for _ in range(3):
        assert (await sign_in(http, stack, email, "wrong password")).status_code == 400
    refused = await sign_in(http, stack, email.upper(), "wrong password")  # the same e-mail
    assert refused.status_code == 429
    assert refused.json() == {
        "code": 429,
        "error_code": "over_request_rate_limit",
        "msg": "Request rate limit reached",
    }
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert (await sign_in(http, stack, email)).status_code == 429  # the right one waits too
    clock.now += 61
    assert (await sign_in(http, stack, email)).status_code == 200
    # a success forgives the e-mail's failures
    for _ in range(3):
        assert (await sign_in(http, stack, email, "wrong again")).status_code == 400


async def test_wrong_passwords_per_address_hit_429_across_emails(
    http: httpx.AsyncClient, stack: Stack, people: dict[str, Person], clock: Clock
) -> None:
    for n in range(5):
        assert (await sign_in(http, stack, f"nobody-{n}@abuse.test", "guess")).status_code == 400
    refused = await sign_in(http, stack, people["admin"].email)
    assert refused.status_code == 429 and "retry-after" in refused.headers
    clock.now += 61
    assert (await sign_in(http, stack, people["admin"].email)).status_code == 200


async def test_concurrent_guesses_cannot_slip_past_the_limit(
    http: httpx.AsyncClient, stack: Stack, people: dict[str, Person], clock: Clock
) -> None:
    email = people["nobody"].email
    answers = await asyncio.gather(*(sign_in(http, stack, email, f"guess {n}") for n in range(8)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [400, 400, 400, 429, 429, 429, 429, 429]
    clock.now += 61
    assert (await sign_in(http, stack, email)).status_code == 200


def test_the_limiter_stays_bounded() -> None:
    now = [0.0]
    limiter = SignInLimiter(Limit(2, 10.0), Limit(1000, 10.0), clock=lambda: now[0], max_keys=50)
    for n in range(500):
        assert limiter.attempt(f"user{n}@x.test", "10.0.0.1") is None
    assert len(limiter._email._seen) <= 51
    assert limiter.attempt("user499@x.test", "10.0.0.1") is None
    assert limiter.attempt("user499@x.test", "10.0.0.1") == 10
    now[0] = 10.5
    assert limiter.attempt("user499@x.test", "10.0.0.1") is None


# --- refresh-token reuse ---------------------------------------------------------------


async def _session(http: httpx.AsyncClient, stack: Stack, person: Person) -> dict[str, Any]:
    response = await sign_in(http, stack, person.email)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def whoami(http: httpx.AsyncClient, stack: Stack, access_token: str) -> httpx.Response:
    headers = {"apikey": stack.keys.publishable, "authorization": f"Bearer {access_token}"}
    return await http.post("/functions/v1/admin-whoami", json={}, headers=headers)


async def test_a_replayed_refresh_token_ends_the_whole_session(
    http: httpx.AsyncClient, stack: Stack, own_admin: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth_api(stack), "reuse_interval", 300.0)  # no timing in the test
    first = await _session(http, stack, own_admin)
    a = first["refresh_token"]
    second = await refresh(http, stack, a)
    b = second.json()["refresh_token"]
    # A client that lost the answer presents A again: it gets B back, nothing new.
    retried = await refresh(http, stack, a)
    assert retried.status_code == 200 and retried.json()["refresh_token"] == b
    third = await refresh(http, stack, b)
    c, access = third.json()["refresh_token"], third.json()["access_token"]
    assert (await whoami(http, stack, access)).status_code == 200
    # A is two generations old now: a copy is in someone else's hands.
    replayed = await refresh(http, stack, a)
    assert replayed.status_code == 400
    assert replayed.json()["error_code"] == "refresh_token_already_used"
    assert replayed.json()["error"] == "invalid_grant"
    assert (await refresh(http, stack, c)).status_code == 400  # the family is gone
    ended = await whoami(http, stack, access)
    assert ended.status_code == 401
    assert ended.json()["error"]["message"] == messages.SESSION_ENDED
    session_id = jwt.decode(access, options={"verify_signature": False})["session_id"]
    assert not stack.sql("select 1 from auth.sessions where id = %s", [session_id])
    assert not stack.sql("select 1 from auth.refresh_tokens where session_id = %s", [session_id])


async def test_outside_the_reuse_interval_even_the_parent_ends_the_session(
    http: httpx.AsyncClient, stack: Stack, own_admin: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth_api(stack), "reuse_interval", 0.0)
    first = await _session(http, stack, own_admin)
    second = await refresh(http, stack, first["refresh_token"])
    assert second.status_code == 200
    replayed = await refresh(http, stack, first["refresh_token"])
    assert replayed.json()["error_code"] == "refresh_token_already_used"
    assert (await refresh(http, stack, second.json()["refresh_token"])).status_code == 400
    assert (await whoami(http, stack, second.json()["access_token"])).status_code == 401


# --- sign-out reaches the functions -----------------------------------------------------


async def _logout(http: httpx.AsyncClient, stack: Stack, access_token: str, scope: str) -> None:
    headers = {"apikey": stack.keys.publishable, "authorization": f"Bearer {access_token}"}
    response = await http.post("/auth/v1/logout", params={"scope": scope}, headers=headers)
    assert response.status_code == 204


@pytest.mark.parametrize("name", ["admin-whoami", "admin-get-experiment", "admin-create-experiment"])
async def test_a_signed_out_session_is_refused_on_the_next_call(
    http: httpx.AsyncClient, stack: Stack, own_admin: Person, name: str
) -> None:
    admin = own_admin
    here = (await _session(http, stack, admin))["access_token"]
    there = (await _session(http, stack, admin))["access_token"]
    key = f"abuse-{uuid.uuid4().hex[:8]}"
    body = {"key": key, "variants": [{"name": "a", "weight": 1}]} if "create" in name else {"key": key}
    headers = {"apikey": stack.keys.publishable, "authorization": f"Bearer {here}"}
    assert (await whoami(http, stack, here)).status_code == 200
    await _logout(http, stack, here, "local")
    before = stack.sql("select count(*) from rec_audit_log")
    refused = await http.post(f"/functions/v1/{name}", json=body, headers=headers)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["message"] == messages.SESSION_ENDED
    assert stack.sql("select count(*) from rec_audit_log") == before
    assert (await whoami(http, stack, there)).status_code == 200  # the other session lives on
    await _logout(http, stack, there, "global")
    assert (await whoami(http, stack, there)).status_code == 401


async def test_a_user_never_granted_is_still_told_so(
    http: httpx.AsyncClient, stack: Stack, people: dict[str, Person]
) -> None:
    token = (await _session(http, stack, people["nobody"]))["access_token"]
    response = await whoami(http, stack, token)
    assert response.status_code == 403
    assert response.json()["error"]["message"] == messages.NOT_AN_ADMIN
