"""`/rest/v1` with the Auth stand-in's ES256 sessions: the same verifier as
the functions decides, and its refusals read as PostgREST's JWT errors."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from devstack.auth_keys import SigningKey
from tests.sessions.conftest import Person
from tests.stack.conftest import Stack, error, key_headers


def _signed_in(stack: Stack, token: str) -> dict[str, str]:
    return key_headers(stack.keys.publishable, bearer=token)


async def _assign(http: httpx.AsyncClient, stack: Stack, token: str, user: str) -> httpx.Response:
    return await http.post(
        "/rest/v1/rpc/rec_assign_variants", json={"user_id": user}, headers=_signed_in(stack, token)
    )


def _claims(stack: Stack, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "sub": str(uuid.uuid4()),
        "aud": "authenticated",
        "role": "authenticated",
        "iat": now,
        "exp": now + 600,
        "iss": f"{stack.url}/auth/v1",
        **changes,
    }
    return {k: v for k, v in claims.items() if v is not None}


def _stack_key(stack: Stack) -> SigningKey:
    key: SigningKey = stack.app.state.auth.signing_key
    return key


async def test_signed_in_user_assigns_itself(
    http: httpx.AsyncClient, stack: Stack, people: dict[str, Person], tokens: dict[str, str]
) -> None:
    response = await _assign(http, stack, tokens["nobody"], people["nobody"].user_id)
    assert response.status_code == 200, response.text
    assert isinstance(response.json(), dict)


async def test_signed_in_user_may_not_assign_someone_else(
    http: httpx.AsyncClient, stack: Stack, people: dict[str, Person], tokens: dict[str, str]
) -> None:
    response = await _assign(http, stack, tokens["nobody"], people["admin"].user_id)
    assert response.status_code == 403
    assert error(response)["code"] == "42501"


async def test_session_token_as_the_only_key_works(
    http: httpx.AsyncClient, stack: Stack, people: dict[str, Person], tokens: dict[str, str]
) -> None:
    """A JWT in `apikey` alone is a caller too (as the legacy anon/service keys are)."""
    response = await http.post(
        "/rest/v1/rpc/rec_assign_variants",
        json={"user_id": people["viewer"].user_id},
        headers={"apikey": tokens["viewer"]},
    )
    assert response.status_code == 200, response.text


def _tampered(token: str) -> str:
    head, body, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return ".".join([head, body, flipped])


def _foreign_key_same_kid(stack: Stack) -> str:
    import jwt

    other = ec.generate_private_key(ec.SECP256R1())
    headers = {"kid": _stack_key(stack).kid}
    return jwt.encode(_claims(stack), other, algorithm="ES256", headers=headers)


@pytest.mark.parametrize(
    ("make", "code", "message"),
    [
        (lambda s: _stack_key(s).sign(_claims(s, exp=int(time.time()) - 3600)), "PGRST303", "JWT expired"),
        (lambda s: _stack_key(s).sign(_claims(s, aud="somewhere")), "PGRST303", "JWT not in audience"),
        (
            lambda s: _tampered(_stack_key(s).sign(_claims(s))),
            "PGRST301",
            "JWT cryptographic operation failed",
        ),
        (_foreign_key_same_kid, "PGRST301", "JWT cryptographic operation failed"),
        (
            lambda s: SigningKey.generate().sign(_claims(s)),
            "PGRST301",
            "No suitable key or wrong key type",
        ),
    ],
    ids=["expired", "other-audience", "tampered", "foreign-key", "unknown-kid"],
)
async def test_bad_es256_token_is_refused_like_postgrest(
    http: httpx.AsyncClient, stack: Stack, make: Any, code: str, message: str
) -> None:
    before = stack.sql("select count(*) from rec_audit_log")
    response = await _assign(http, stack, make(stack), str(uuid.uuid4()))
    assert response.status_code == 401, response.text
    body = error(response)
    assert (body["code"], body["message"]) == (code, message)
    assert isinstance(body["details"], str) and body["details"]  # the verifier's own sentence
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert stack.sql("select count(*) from rec_audit_log") == before


async def test_es256_session_runs_as_its_role_with_its_claims(
    http: httpx.AsyncClient, stack: Stack, people: dict[str, Person], tokens: dict[str, str]
) -> None:
    response = await http.post(
        "/rest/v1/rpc/stack_session", json={}, headers=_signed_in(stack, tokens["admin"])
    )
    assert response.status_code == 200, response.text
    [row] = response.json()
    assert row["acting_role"] == "authenticated"
    assert row["claims"]["sub"] == people["admin"].user_id
