"""Every admin function called by signed-in people over real HTTP: viewers
read, admins also write and the audit names them, everyone else gets a
clear 401/403 and nothing changes. Both signature kinds: ES256 (the
stand-in's sessions, verified through its JWKS) and HS256 (the JWT secret)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from functions.registry import FUNCTIONS
from shared import tokens as messages
from tests.sessions.conftest import Person
from tests.stack.conftest import Stack

VARIANTS = [{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}]
READS = sorted(name for name, f in FUNCTIONS.items() if not f.writes)
WRITES = sorted(name for name, f in FUNCTIONS.items() if f.writes)


def headers(stack: Stack, token: str) -> dict[str, str]:
    return {"apikey": stack.keys.publishable, "authorization": f"Bearer {token}"}


async def call(http: httpx.AsyncClient, stack: Stack, name: str, body: Any, token: str) -> httpx.Response:
    response = await http.post(f"/functions/v1/{name}", json=body, headers=headers(stack, token))
    assert token not in response.text
    for key in (stack.keys.secret, stack.keys.service_role_jwt, stack.keys.jwt_secret):
        assert key not in response.text
    return response


def audit(stack: Stack) -> list[tuple[Any, ...]]:
    return stack.sql("select id, action, actor_id from rec_audit_log order by id")


@pytest.fixture(scope="module")
def experiment(stack: Stack) -> str:
    """An active experiment to read (made through the SQL API as the seed would)."""
    key = f"sessions-{uuid.uuid4().hex[:8]}"
    admin = "00000000-0000-4000-8000-000000000001"
    stack.sql("select rec_create_experiment(%s, %s::jsonb, %s)", [key, json.dumps(VARIANTS), admin])
    stack.sql("select rec_activate_experiment(%s, %s)", [key, admin])
    return key


def read_body(name: str, key: str, user: str) -> dict[str, Any]:
    bodies: dict[str, dict[str, Any]] = {
        "admin-get-experiment": {"key": key},
        "admin-experiment-results": {"key": key},
        "admin-experiment-plan": {"key": key},
        "admin-search-users": {"query": "viewer@"},
        "admin-user-assignments": {"user_id": user},
        "admin-audit-log": {"key": key},
    }
    return bodies.get(name, {})


@pytest.mark.parametrize("name", READS)
async def test_viewer_calls_every_read(
    name: str,
    http: httpx.AsyncClient,
    stack: Stack,
    tokens: dict[str, str],
    experiment: str,
    people: dict[str, Person],
) -> None:
    response = await call(
        http, stack, name, read_body(name, experiment, people["viewer"].user_id), tokens["viewer"]
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("name", WRITES)
async def test_viewer_is_refused_every_write(
    name: str, http: httpx.AsyncClient, stack: Stack, tokens: dict[str, str], experiment: str
) -> None:
    before = audit(stack)
    response = await call(http, stack, name, {"key": experiment}, tokens["viewer"])
    assert response.status_code == 403
    assert "viewer" in response.json()["error"]["message"]
    assert audit(stack) == before


async def test_admin_writes_and_the_audit_names_them(
    http: httpx.AsyncClient, stack: Stack, tokens: dict[str, str], people: dict[str, Person]
) -> None:
    key = f"sessions-admin-{uuid.uuid4().hex[:8]}"
    user = str(uuid.uuid4())
    admin = people["admin"].user_id
    steps: list[tuple[str, dict[str, Any]]] = [
        ("admin-create-experiment", {"key": key, "variants": VARIANTS}),
        ("admin-update-experiment", {"key": key, "name": "Renamed", "admin_id": admin}),
        ("admin-activate-experiment", {"key": key}),
        ("admin-create-metric", {"key": f"{key}-likes", "kind": "per_user_count", "outcome": "like"}),
        ("admin-update-metric", {"key": f"{key}-likes", "capping": 0.999}),
        (
            "admin-set-experiment-metrics",
            {"key": key, "metrics": [{"metric": f"{key}-likes", "role": "goal"}]},
        ),
        ("admin-set-user-variant", {"key": key, "user_id": user, "variant": "treatment"}),
        ("admin-reset-user-variant", {"key": key, "user_id": user}),
        ("admin-rotate-salt", {"key": key}),
        ("admin-end-experiment", {"key": key, "decision": "inconclusive"}),
        ("admin-record-decision", {"key": key, "decision": "shipped", "winner": "treatment", "notes": "n"}),
        ("admin-create-layer", {"key": f"layer-{key}"}),
    ]
    assert {name for name, _ in steps} == set(WRITES)
    for name, body in steps:
        last = audit(stack)[-1][0]
        response = await call(http, stack, name, body, tokens["admin"])
        assert response.status_code == 200, (name, response.text)
        new = [row for row in audit(stack) if row[0] > last]
        assert new and all(str(actor) == admin for _, _, actor in new), (name, new)


async def test_a_different_admin_id_is_403(
    http: httpx.AsyncClient, stack: Stack, tokens: dict[str, str], experiment: str, people: dict[str, Person]
) -> None:
    before = audit(stack)
    body = {"key": experiment, "name": "hijack", "admin_id": people["viewer"].user_id}
    response = await call(http, stack, "admin-update-experiment", body, tokens["admin"])
    assert response.status_code == 403
    assert "admin_id" in response.json()["error"]["message"]
    assert audit(stack) == before


async def test_revoke_takes_effect_on_the_next_call(
    http: httpx.AsyncClient, stack: Stack, tokens: dict[str, str], people: dict[str, Person]
) -> None:
    viewer = people["viewer"].user_id
    assert (await call(http, stack, "admin-whoami", {}, tokens["viewer"])).json()["data"]["role"] == "viewer"
    stack.sql("select rec_revoke_admin(%s, %s)", [viewer, people["admin"].user_id])
    try:
        response = await call(http, stack, "admin-list-experiments", {}, tokens["viewer"])
        assert response.status_code == 403
        assert "not an admin" in response.json()["error"]["message"]
    finally:
        stack.sql("select rec_grant_admin(%s, 'viewer', %s)", [viewer, people["admin"].user_id])


async def test_signed_in_non_admin_is_403(
    http: httpx.AsyncClient, stack: Stack, tokens: dict[str, str]
) -> None:
    response = await call(http, stack, "admin-list-experiments", {}, tokens["nobody"])
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


async def test_hs256_session_with_the_jwt_secret(
    http: httpx.AsyncClient, stack: Stack, people: dict[str, Person]
) -> None:
    token = stack.keys.user_jwt(
        people["admin"].user_id, email=people["admin"].email, iss=f"{stack.url}/auth/v1"
    )
    response = await call(http, stack, "admin-whoami", {}, token)
    assert response.status_code == 200
    assert response.json()["data"] == {
        "user_id": people["admin"].user_id,
        "email": people["admin"].email,
        "role": "admin",
    }


async def test_the_secret_key_path_is_unchanged(http: httpx.AsyncClient, stack: Stack) -> None:
    response = await http.post("/functions/v1/admin-whoami", json={}, headers={"apikey": stack.keys.secret})
    assert response.json() == {"data": {"user_id": None, "email": None, "role": "service"}}
    body = {"key": "nope-never-made", "admin_id": str(uuid.uuid4())}
    response = await http.post(
        "/functions/v1/admin-end-experiment", json=body, headers={"apikey": stack.keys.secret}
    )
    assert response.status_code == 404  # any admin_id, as before: the key is trusted
    assert (await http.post("/functions/v1/admin-list-experiments", json={})).status_code == 401


def _claims(stack: Stack, person: Person, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": f"{stack.url}/auth/v1",
        "sub": person.user_id,
        "aud": "authenticated",
        "role": "authenticated",
        "iat": now,
        "exp": now + 600,
        **extra,
    }


def _segment(value: dict[str, Any]) -> str:
    return jwt.utils.base64url_encode(json.dumps(value).encode()).decode()


def bad_token(kind: str, stack: Stack, admin: Person, good: str) -> str:
    signing = stack.app.state.auth.signing_key
    foreign = ec.generate_private_key(ec.SECP256R1())
    if kind == "expired":
        return str(signing.sign(_claims(stack, admin, exp=int(time.time()) - 120)))
    if kind == "expired-hs256":
        return stack.keys.user_jwt(admin.user_id, expires_in=-120, iss=f"{stack.url}/auth/v1")
    if kind == "tampered":
        header, _, signature = good.split(".")
        payload = jwt.decode(good, options={"verify_signature": False})
        return f"{header}.{_segment({**payload, 'email': 'x@evil.test'})}.{signature}"
    if kind == "alg-none":
        return f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(_claims(stack, admin))}."
    if kind == "wrong-audience":
        return str(signing.sign(_claims(stack, admin, aud="somebody-else")))
    if kind == "wrong-issuer-key":
        return jwt.encode(_claims(stack, admin), foreign, algorithm="ES256", headers={"kid": signing.kid})
    if kind == "unknown-kid":
        return jwt.encode(_claims(stack, admin), foreign, algorithm="ES256", headers={"kid": "not-ours"})
    if kind == "wrong-secret":
        return jwt.encode(_claims(stack, admin), "y" * 40, algorithm="HS256")
    raise AssertionError(kind)


BAD = {
    "expired": messages.EXPIRED,
    "expired-hs256": messages.EXPIRED,
    "tampered": messages.BAD_SIGNATURE,
    "alg-none": "'none' are not accepted",
    "wrong-audience": messages.WRONG_AUDIENCE,
    "wrong-issuer-key": messages.BAD_SIGNATURE,
    "unknown-kid": messages.UNKNOWN_KID,
    "wrong-secret": messages.BAD_SIGNATURE,
}


@pytest.mark.parametrize("kind", BAD)
async def test_bad_tokens_are_401_with_a_clear_message(
    kind: str, http: httpx.AsyncClient, stack: Stack, tokens: dict[str, str], people: dict[str, Person]
) -> None:
    token = bad_token(kind, stack, people["admin"], tokens["admin"])
    before = audit(stack)
    response = await call(http, stack, "admin-end-experiment", {"key": "whatever"}, token)
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_token"
    assert BAD[kind] in error["message"]
    assert audit(stack) == before
