"""Session tokens, stricter: exp and iss checked, a bad token is 401 whatever
key comes with it, a signed-out session is refused, viewers never see salts,
and a read runs concurrently with the role lookup without leaking past it.
PostgREST and the JWKS are mocked with respx (tests/functions/test_sessions.py)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import jwt
import pytest
import respx

from shared import auth, tokens
from shared.redact import REDACTED, redact_salts
from tests.functions.conftest import JWT_SECRET, PUBLISHABLE_KEY, RPC, SECRET_KEY, Caller
from tests.functions.test_sessions import (  # noqa: F401 (fixtures)
    ISSUER,
    SUB,
    call,
    claims,
    hs256,
    platform,
    role,
    session,
)

SESSION_ID = "3f2e1d0c-9b8a-4765-8432-10fedcba9876"
NOW = int(time.time())
WEEK = 7 * 24 * 3600


def raw(payload: dict[str, Any]) -> str:
    return jwt.encode(payload, JWT_SECRET, algorithm="HS256")


BAD_CLAIMS: dict[str, tuple[dict[str, Any], str]] = {
    "exp-numeric-string": ({"exp": str(NOW + 3600)}, tokens.BAD_EXPIRY),
    "exp-10-to-the-30": ({"exp": 10**30}, tokens.BAD_EXPIRY),
    "exp-float": ({"exp": NOW + 3600.5}, tokens.BAD_EXPIRY),
    "exp-true": ({"exp": True}, tokens.EXPIRED),  # PyJWT reads True as 1
    "exp-beyond-a-week": ({"exp": NOW + WEEK + 3600, "iat": None}, tokens.BAD_EXPIRY),
    "lifetime-beyond-a-week": ({"iat": NOW - WEEK, "exp": NOW + 3600}, tokens.BAD_EXPIRY),
    "iat-string": ({"iat": str(NOW)}, tokens.BAD_EXPIRY),
    "wrong-issuer": ({"iss": "https://elsewhere.supabase.co/auth/v1"}, tokens.WRONG_ISSUER),
    "no-issuer": ({"iss": None}, tokens.WRONG_ISSUER),
    "session-id-not-a-uuid": ({"session_id": "'; drop table x"}, tokens.BAD_SESSION),
    "session-id-a-number": ({"session_id": 7}, tokens.BAD_SESSION),
}


def _without_nones(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


@pytest.mark.parametrize("name", BAD_CLAIMS)
async def test_implausible_claims_are_401(name: str, call: Caller, platform: respx.MockRouter) -> None:  # noqa: F811
    extra, message = BAD_CLAIMS[name]
    lookup = role(platform, "admin")
    token = raw(_without_nones({**claims(), **extra}))
    response = await call("admin-list-experiments", {}, headers=session(token))
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_token"
    assert message.split(":")[0] in response.json()["error"]["message"]
    assert not lookup.called


def _unsigned(payload: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return jwt.utils.base64url_encode(json.dumps(value).encode()).decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


WITH_PUBLISHABLE_KEY = {
    "malformed-jwt": "abc.def.ghi",
    "not-a-jwt": "hello",
    "alg-none-without-sub": _unsigned({"role": "authenticated", "exp": NOW + 3600}),
    "alg-none": _unsigned(claims()),
    "hs256-without-sub": raw({"role": "service_role", "exp": NOW + 3600}),
    "expired-service-role-jwt": raw({"role": "service_role", "exp": NOW - 60}),
}


@pytest.mark.parametrize("name", WITH_PUBLISHABLE_KEY)
async def test_a_bad_token_with_the_publishable_key_is_401_and_says_nothing_of_secret_keys(
    name: str,
    call: Caller,  # noqa: F811
    platform: respx.MockRouter,  # noqa: F811
) -> None:
    response = await call("admin-list-experiments", {}, headers=session(WITH_PUBLISHABLE_KEY[name]))
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_token"
    assert "secret" not in response.text.lower()
    assert not platform.calls.called or all("/rpc/" not in str(c.request.url) for c in platform.calls)


async def test_the_publishable_key_alone_is_told_to_sign_in(call: Caller) -> None:  # noqa: F811
    response = await call("admin-list-experiments", {}, headers={"apikey": PUBLISHABLE_KEY})
    assert response.status_code == 403
    message = response.json()["error"]["message"]
    assert "sign in" in message and "secret" not in message.lower()
    same = await call(
        "admin-list-experiments",
        {},
        headers={"apikey": PUBLISHABLE_KEY, "authorization": f"Bearer {PUBLISHABLE_KEY}"},
    )
    assert same.status_code == 403 and same.json()["error"]["message"] == message


def _role_unless_session(value: str | None) -> Any:
    """rec_admin_role as the database answers: `value` without a session id, null with one (it ended)."""

    def answer(request: httpx.Request) -> httpx.Response:
        args = json.loads(request.content)
        return httpx.Response(200, json=None if "session_id" in args else value)

    return answer


async def test_the_session_is_checked_in_the_role_lookup(call: Caller, platform: respx.MockRouter) -> None:  # noqa: F811
    lookup = role(platform, "viewer")
    platform.post(RPC + "rec_list_experiments").respond(200, json=[])
    token = hs256(session_id=SESSION_ID.upper())
    response = await call("admin-list-experiments", {}, headers=session(token))
    assert response.status_code == 200, response.text
    assert lookup.call_count == 1  # one round trip for role and session
    assert json.loads(lookup.calls.last.request.content) == {"user_id": SUB, "session_id": SESSION_ID}


@pytest.mark.parametrize("name", ["admin-get-experiment", "admin-create-experiment", "admin-whoami"])
async def test_a_signed_out_session_is_401_and_gets_nothing(
    name: str,
    call: Caller,  # noqa: F811
    platform: respx.MockRouter,  # noqa: F811
) -> None:
    platform.post(RPC + "rec_admin_role").mock(side_effect=_role_unless_session("admin"))
    read = platform.post(RPC + "rec_get_experiment").respond(200, json={"key": "k", "salt": "s3cret"})
    platform.post(RPC + "rec_experiment_daily_metrics").respond(200, json=[])
    write = platform.post(RPC + "rec_create_experiment").respond(200, json={})
    body = {"key": "k", "variants": [{"name": "a", "weight": 1}]} if "create" in name else {"key": "k"}
    response = await call(name, body, headers=session(hs256(session_id=SESSION_ID)))
    assert response.status_code == 401, response.text
    assert response.json()["error"]["message"] == auth.SESSION_ENDED
    assert "s3cret" not in response.text
    assert not write.called
    del read  # a read may have run concurrently; its answer was discarded


async def test_a_session_of_someone_never_granted_is_403(call: Caller, platform: respx.MockRouter) -> None:  # noqa: F811
    lookup = platform.post(RPC + "rec_admin_role").mock(side_effect=_role_unless_session(None))
    response = await call("admin-list-experiments", {}, headers=session(hs256(session_id=SESSION_ID)))
    assert response.status_code == 403
    assert response.json()["error"]["message"] == auth.NOT_AN_ADMIN
    assert lookup.call_count == 2  # the second only on the refusal path, to say why


async def test_a_refused_reader_learns_nothing_about_the_body_or_the_read(
    call: Caller,  # noqa: F811
    platform: respx.MockRouter,  # noqa: F811
) -> None:
    role(platform, None)
    platform.post(RPC + "rec_get_experiment").respond(404, json={"code": "P0002", "message": "no such"})
    for body in ({"key": "missing"}, {"key": 7}, {"nope": True}):
        response = await call("admin-get-experiment", body, headers=session(hs256()))
        assert response.status_code == 403, response.text
        assert response.json()["error"]["message"] == auth.NOT_AN_ADMIN


SALTED_EXPERIMENT = {
    "key": "k",
    "salt": "exp-salt",
    "salt_rotated_at": "2026-01-01T00:00:00Z",
    "salt_rotation_interval": "7 days",
    "layer": {"key": "feed", "salt": "layer-salt"},
}
SALTED_AUDIT = [
    {
        "action": "rotate_salt",
        "details": {"before": {"salt": "old-salt"}, "after": {"salt": "new-salt"}, "new_salt": "also"},
    },
    {"action": "create", "details": {"after": SALTED_EXPERIMENT}, "layers": [{"salt": "l2-salt"}]},
]
SALTS = ("exp-salt", "layer-salt", "old-salt", "new-salt", "also", "l2-salt")
SALTED_READS = {
    "admin-get-experiment": ({"key": "k"}, "rec_get_experiment", SALTED_EXPERIMENT),
    "admin-list-experiments": ({}, "rec_list_experiments", [SALTED_EXPERIMENT]),
    "admin-audit-log": ({}, "rec_audit_entries", SALTED_AUDIT),
}


@pytest.mark.parametrize("name", SALTED_READS)
async def test_viewers_never_see_salts_admins_do(
    name: str,
    call: Caller,  # noqa: F811
    platform: respx.MockRouter,  # noqa: F811
) -> None:
    body, rpc, result = SALTED_READS[name]
    platform.post(RPC + rpc).respond(200, json=result)
    platform.post(RPC + "rec_experiment_daily_metrics").respond(200, json=[])
    lookup = role(platform, "viewer")
    viewer = await call(name, body, headers=session(hs256()))
    assert viewer.status_code == 200, viewer.text
    assert not any(salt in viewer.text for salt in SALTS)
    assert REDACTED in viewer.text
    assert "2026-01-01T00:00:00Z" in viewer.text  # salt_rotated_at is not a salt
    lookup.respond(200, json="admin")
    admin = await call(name, body, headers=session(hs256()))
    service = await call(name, body, headers={"apikey": SECRET_KEY})
    for shown in (admin, service):
        assert shown.status_code == 200
        assert "exp-salt" in shown.text and REDACTED not in shown.text


def test_redaction_keeps_everything_but_salts() -> None:
    value = {"salt": None, "a": [{"b_salt": "x", "salty": "y"}, 3, "salt"], "salt_rotated_at": "t"}
    assert redact_salts(value) == {
        "salt": None,
        "a": [{"b_salt": REDACTED, "salty": "y"}, 3, "salt"],
        "salt_rotated_at": "t",
    }
    assert value["a"][0]["b_salt"] == "x"  # a copy: the original is untouched


async def test_verifier_without_an_issuer_accepts_any(platform: respx.MockRouter) -> None:  # noqa: F811
    async def no_fetch(url: str) -> Any:
        raise AssertionError("HS256 needs no key set")

    verifier = tokens.TokenVerifier("http://x/jwks", JWT_SECRET, no_fetch)
    assert (await verifier.verify(raw({**claims(), "iss": "anything"}))).user_id == SUB
    strict = tokens.TokenVerifier("http://x/jwks", JWT_SECRET, no_fetch, issuer=ISSUER)
    with pytest.raises(Exception, match="iss"):
        await strict.verify(raw({**claims(), "iss": "anything"}))
