"""The local Supabase Auth stand-in: GoTrue's shapes for password and
refresh-token grants, /user, /logout and the JWKS."""

from __future__ import annotations

import httpx
import jwt
import pytest

from tests.sessions.conftest import PASSWORD, Person, refresh, sign_in
from tests.stack.conftest import Stack


async def test_password_sign_in_answers_a_gotrue_session(
    http: httpx.AsyncClient, stack: Stack, people: dict[str, Person]
) -> None:
    response = await sign_in(http, stack, people["viewer"].email.upper())
    assert response.status_code == 200, response.text
    session = response.json()
    assert session["token_type"] == "bearer"
    assert session["expires_in"] == 3600
    assert session["user"]["id"] == people["viewer"].user_id
    assert session["user"]["email"] == people["viewer"].email
    assert session["user"]["aud"] == "authenticated"
    header = jwt.get_unverified_header(session["access_token"])
    jwks = (await http.get("/auth/v1/.well-known/jwks.json")).json()
    assert header["alg"] == "ES256"
    assert header["kid"] == jwks["keys"][0]["kid"]
    key = jwt.PyJWK(jwks["keys"][0]).key
    claims = jwt.decode(session["access_token"], key, algorithms=["ES256"], audience="authenticated")
    assert claims["sub"] == people["viewer"].user_id
    assert claims["role"] == "authenticated"
    assert claims["iss"] == f"{stack.url}/auth/v1"
    assert claims["exp"] == session["expires_at"]
    assert "session_id" in claims


@pytest.mark.parametrize("who", ["wrong-password", "unknown-email"])
async def test_bad_credentials_are_invalid_grant(
    who: str, http: httpx.AsyncClient, stack: Stack, people: dict[str, Person]
) -> None:
    email = people["admin"].email if who == "wrong-password" else "ghost@sessions.test"
    response = await sign_in(http, stack, email, "not the password")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_grant"
    assert body["error_description"] == "Invalid login credentials"
    assert body["error_code"] == "invalid_credentials"


async def test_sign_in_needs_a_project_key(http: httpx.AsyncClient, people: dict[str, Person]) -> None:
    body = {"email": people["admin"].email, "password": PASSWORD}
    response = await http.post("/auth/v1/token?grant_type=password", json=body)
    assert response.status_code == 401


async def test_refresh_rotates_logout_ends_the_session(
    http: httpx.AsyncClient, stack: Stack, own_admin: Person
) -> None:
    key = {"apikey": stack.keys.publishable}
    first = (await sign_in(http, stack, own_admin.email)).json()
    refreshed = await refresh(http, stack, first["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    second = refreshed.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["user"]["id"] == own_admin.user_id
    # a refresh token is spent once: presented again (a client retrying a refresh
    # whose answer it lost) it gets the same successor back, never a new one
    again = await refresh(http, stack, first["refresh_token"])
    assert again.status_code == 200 and again.json()["refresh_token"] == second["refresh_token"]

    bearer = {**key, "authorization": f"Bearer {second['access_token']}"}
    user = await http.get("/auth/v1/user", headers=bearer)
    assert user.status_code == 200 and user.json()["email"] == own_admin.email
    assert (await http.post("/auth/v1/logout", headers=bearer)).status_code == 204
    gone = await http.get("/auth/v1/user", headers=bearer)
    assert gone.status_code == 403 and gone.json()["error_code"] == "session_not_found"
    after = await refresh(http, stack, second["refresh_token"])
    assert after.status_code == 400


async def test_user_endpoint_accepts_hs256_with_the_jwt_secret(
    http: httpx.AsyncClient, stack: Stack, people: dict[str, Person]
) -> None:
    token = stack.keys.user_jwt(people["viewer"].user_id, iss=f"{stack.url}/auth/v1")
    headers = {"apikey": stack.keys.publishable, "authorization": f"Bearer {token}"}
    response = await http.get("/auth/v1/user", headers=headers)
    assert response.status_code == 200
    assert response.json()["id"] == people["viewer"].user_id
    forged = jwt.encode(jwt.decode(token, options={"verify_signature": False}), "x" * 40, algorithm="HS256")
    headers["authorization"] = f"Bearer {forged}"
    refused = await http.get("/auth/v1/user", headers=headers)
    assert refused.status_code == 403 and refused.json()["error_code"] == "bad_jwt"
    assert forged not in refused.text


HOSTILE_TOKEN_REQUESTS = [
    ("grant_type=password", b"{not json"),
    ("grant_type=password", b"[]"),
    ("grant_type=password", b'{"email": 5, "password": ["x"]}'),
    ("grant_type=password", b'{"email": "a@b.c"}'),
    ("grant_type=magic", b'{"email": "a@b.c", "password": "x"}'),
    ("", b'{"email": "a@b.c", "password": "x"}'),
    ("grant_type=refresh_token", b'{"refresh_token": "forged"}'),
    ("grant_type=refresh_token", b'{"refresh_token": null}'),
    ("grant_type=password", b'{"email": "' + b"a" * 100_000 + b'@b.c", "password": "x"}'),
]


@pytest.mark.parametrize(("query", "body"), HOSTILE_TOKEN_REQUESTS)
async def test_hostile_token_requests_get_a_clear_4xx_and_no_session(
    query: str, body: bytes, http: httpx.AsyncClient, stack: Stack
) -> None:
    sessions_before = stack.sql("select count(*) from auth.sessions")
    response = await http.post(
        f"/auth/v1/token?{query}",
        content=body,
        headers={"apikey": stack.keys.publishable, "content-type": "application/json"},
    )
    assert 400 <= response.status_code < 500, response.text
    answer = response.json()
    assert answer.get("error_description") or answer.get("msg") or answer.get("message"), answer
    assert "access_token" not in answer
    assert stack.sql("select count(*) from auth.sessions") == sessions_before
