"""Key / JWT → role: which Postgres role a request runs as, and who is
refused before the database is reached."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import jwt
import pytest

from tests.stack.conftest import ADMIN, Stack, error, key_headers, rpc

VARIANTS = [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]


async def acting_role(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    r = await client.post("/rest/v1/rpc/stack_session", json={}, headers=headers)
    assert r.status_code == 200, r.text
    row: dict[str, Any] = r.json()[0]
    return row


async def active_experiment(client: httpx.AsyncClient, stack: Stack) -> str:
    key = f"auth-{uuid.uuid4().hex[:12]}"
    for fn, args in (("rec_create_experiment", {"variants": VARIANTS}), ("rec_activate_experiment", {})):
        r = await rpc(client, stack, fn, {"experiment_key": key, "admin_id": ADMIN, **args})
        assert r.status_code == 200, r.text
    return key


async def test_secret_key_is_service_role(client: httpx.AsyncClient, stack: Stack) -> None:
    row = await acting_role(client, key_headers(stack.keys.secret))
    assert row["acting_role"] == "service_role" and row["claims"] == {"role": "service_role"}


async def test_publishable_key_is_anon(client: httpx.AsyncClient, stack: Stack) -> None:
    row = await acting_role(client, key_headers(stack.keys.publishable))
    assert row["acting_role"] == "anon" and row["claims"] == {"role": "anon"}


async def test_supabase_clients_send_the_key_twice(client: httpx.AsyncClient, stack: Stack) -> None:
    row = await acting_role(client, key_headers(stack.keys.secret, bearer=stack.keys.secret))
    assert row["acting_role"] == "service_role"


async def test_bearer_key_without_apikey_counts_as_the_apikey(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    row = await acting_role(client, {"Authorization": f"Bearer {stack.keys.publishable}"})
    assert row["acting_role"] == "anon"


@pytest.mark.parametrize(("which", "role"), [("anon_jwt", "anon"), ("service_role_jwt", "service_role")])
async def test_legacy_jwt_keys_name_their_role(
    client: httpx.AsyncClient, stack: Stack, which: str, role: str
) -> None:
    token = getattr(stack.keys, which)
    row = await acting_role(client, key_headers(token, bearer=token))
    assert row["acting_role"] == role and row["claims"]["iss"] == "supabase-demo"


async def test_user_jwt_wins_over_the_apikey_and_passes_its_claims(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    user = str(uuid.uuid4())
    token = stack.keys.user_jwt(user, email="u@example.com")
    row = await acting_role(client, key_headers(stack.keys.secret, bearer=token))
    assert row["acting_role"] == "authenticated"
    assert row["claims"]["sub"] == user and row["claims"]["email"] == "u@example.com"


async def test_signed_in_user_may_assign_only_themselves(client: httpx.AsyncClient, stack: Stack) -> None:
    key = await active_experiment(client, stack)
    user = str(uuid.uuid4())
    headers = key_headers(stack.keys.publishable, bearer=stack.keys.user_jwt(user))
    mine = await rpc(
        client, stack, "rec_assign_variant", {"experiment_key": key, "user_id": user}, headers=headers
    )
    assert mine.status_code == 200 and mine.json() in ("a", "b")
    other = await rpc(
        client,
        stack,
        "rec_assign_variant",
        {"experiment_key": key, "user_id": str(uuid.uuid4())},
        headers=headers,
    )
    assert other.status_code == 403 and error(other)["code"] == "42501"


@pytest.mark.parametrize(
    ("fn", "args"),
    [
        ("rec_list_experiments", {}),
        ("rec_create_experiment", {"experiment_key": "never", "variants": VARIANTS, "admin_id": ADMIN}),
        ("rec_assign_variant", {"experiment_key": "x", "user_id": str(uuid.uuid4())}),
        ("rec_rotate_due_salts", {}),
    ],
)
async def test_anon_and_users_cannot_run_admin_rpcs(
    client: httpx.AsyncClient, stack: Stack, fn: str, args: dict[str, Any]
) -> None:
    # PostgREST: 42501 is 401 for the anonymous role, 403 for any other.
    for headers, status in (
        (key_headers(stack.keys.publishable), 401),
        (key_headers(stack.keys.anon_jwt), 401),
    ):
        r = await rpc(client, stack, fn, args, headers=headers)
        assert (r.status_code, error(r)["code"]) == (status, "42501"), r.text
        assert r.headers["www-authenticate"] == "Bearer"
    if fn != "rec_assign_variant":  # a user may call that one, for themselves
        user = key_headers(stack.keys.publishable, bearer=stack.keys.user_jwt(str(uuid.uuid4())))
        r = await rpc(client, stack, fn, args, headers=user)
        assert (r.status_code, error(r)["code"]) == (403, "42501")
    assert stack.sql("select count(*) from rec_experiments where key = 'never'") == [(0,)]


async def test_no_key_at_all_is_refused_like_the_gateway(client: httpx.AsyncClient, stack: Stack) -> None:
    r = await client.post("/rest/v1/rpc/rec_list_experiments", json={})
    assert r.status_code == 401
    assert r.json() == {
        "message": "No API key found in request",
        "hint": "No `apikey` request header was found.",
    }


@pytest.mark.parametrize(
    "headers",
    [
        {"apikey": "sb_secret_not-this-project"},
        {"apikey": "not a key at all"},
        {
            "apikey": "sb_publishable_ACJWlzQHlZjBrEguHvfOxg_3BJgxAaH",
            "Authorization": "Bearer sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz",
        },  # two different keys
    ],
)
async def test_unknown_key_is_invalid(
    client: httpx.AsyncClient, stack: Stack, headers: dict[str, str]
) -> None:
    r = await client.post("/rest/v1/rpc/rec_list_experiments", json={}, headers=headers)
    assert r.status_code == 401 and r.json()["message"] == "Invalid API key"


def _token(stack: Stack, secret: str | None = None, algorithm: str = "HS256", **claims: Any) -> str:
    now = int(time.time())
    payload = {"sub": str(uuid.uuid4()), "role": "authenticated", "iat": now, "exp": now + 600, **claims}
    return jwt.encode(payload, secret or stack.keys.jwt_secret, algorithm=algorithm)


@pytest.mark.parametrize(
    ("make", "code", "message"),
    [
        (lambda s: _token(s, exp=int(time.time()) - 3600), "PGRST303", "JWT expired"),
        (lambda s: _token(s, nbf=int(time.time()) + 3600), "PGRST303", "JWT not yet valid"),
        (
            lambda s: _token(s, secret="another-projects-secret-at-least-32-characters"),
            "PGRST301",
            "JWT cryptographic operation failed",
        ),
        (
            lambda s: _token(s, secret="k" * 64, algorithm="HS512"),
            "PGRST301",
            "Wrong or unsupported encoding algorithm",
        ),
        (lambda s: "bm90IGpzb24.bm90IGpzb24.c2ln", "PGRST301", "JWT couldn't be decoded"),
    ],
    ids=["expired", "not-yet-valid", "foreign-signed", "other-algorithm", "garbage"],
)
async def test_bad_jwt_is_401(
    client: httpx.AsyncClient, stack: Stack, make: Any, code: str, message: str
) -> None:
    headers = key_headers(stack.keys.publishable, bearer=make(stack))
    r = await rpc(client, stack, "stack_session", headers=headers)
    assert r.status_code == 401
    assert error(r) == {"code": code, "message": message, "details": None, "hint": None}
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


async def test_bad_jwt_as_apikey_is_401(client: httpx.AsyncClient, stack: Stack) -> None:
    r = await rpc(
        client, stack, "stack_session", headers={"apikey": _token(stack, exp=int(time.time()) - 3600)}
    )
    assert r.status_code == 401 and error(r)["code"] == "PGRST303"


async def test_jwt_for_a_non_api_role_is_refused(client: httpx.AsyncClient, stack: Stack) -> None:
    headers = key_headers(stack.keys.publishable, bearer=_token(stack, role="postgres"))
    r = await rpc(client, stack, "stack_session", headers=headers)
    assert r.status_code == 403
    assert error(r)["message"] == 'permission denied to set role "postgres"'


@pytest.mark.parametrize(
    ("role", "kind"),
    [
        (["service_role"], "an array"),
        ({"name": "service_role"}, "an object"),
        (7, "a number"),
        (None, "null"),
    ],
    ids=["list", "object", "number", "null"],
)
async def test_jwt_role_that_is_not_a_string_is_401(
    client: httpx.AsyncClient, stack: Stack, role: Any, kind: str
) -> None:
    """A correctly signed token with a malformed role claim is a bad token, not a server error."""
    headers = key_headers(stack.keys.publishable, bearer=_token(stack, role=role))
    r = await rpc(client, stack, "stack_session", headers=headers)
    assert r.status_code == 401
    message = f"JWT claim 'role' must be a string, not {kind}"
    assert error(r) == {"code": "PGRST303", "message": message, "details": None, "hint": None}
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


async def test_jwt_without_role_is_anon(client: httpx.AsyncClient, stack: Stack) -> None:
    token = stack.keys.sign({"sub": str(uuid.uuid4()), "exp": int(time.time()) + 600})
    row = await acting_role(client, key_headers(stack.keys.publishable, bearer=token))
    assert row["acting_role"] == "anon"
