"""Signed-in admins: session tokens verified (HS256 secret, ES256/RS256 JWKS),
the role read from rec_admins on every request, admin_id taken from the token.
PostgREST and the JWKS endpoint are mocked with respx."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from functions.app import create_app
from shared import tokens
from shared.config import Settings
from shared.tokens import TokenVerifier
from tests.functions.cases import CASES
from tests.functions.conftest import (
    JWT_SECRET,
    PUBLISHABLE_KEY,
    RPC,
    SECRET_KEY,
    SETTINGS,
    URL,
    USER_JWT,
    Caller,
)

SUB = "5d7c1b2a-3e4f-4a5b-8c6d-7e8f9a0b1c2d"
OTHER = "11111111-2222-4333-8444-555555555555"
JWKS = f"{URL}/auth/v1/.well-known/jwks.json"
ISSUER = f"{URL}/auth/v1"
EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
FOREIGN_EC_KEY = ec.generate_private_key(ec.SECP256R1())
READS = [c for c in CASES if "admin_id" not in c.body and "due" not in c.body]
WRITES = [c for c in CASES if "admin_id" in c.body]


def public_jwk(key: Any, kid: str) -> dict[str, Any]:
    algorithm = ECAlgorithm if isinstance(key, ec.EllipticCurvePrivateKey) else RSAAlgorithm
    alg = "ES256" if algorithm is ECAlgorithm else "RS256"
    return {**json.loads(algorithm.to_jwk(key.public_key())), "kid": kid, "alg": alg, "use": "sig"}


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "sub": SUB,
        "aud": "authenticated",
        "role": "authenticated",
        "email": "ada@example.com",
        "iss": ISSUER,
    }
    return {**base, "iat": now, "exp": now + 3600, **extra}


def hs256(**extra: Any) -> str:
    return jwt.encode(claims(**extra), JWT_SECRET, algorithm="HS256")


def es256(key: Any = EC_KEY, kid: str = "ec-1", **extra: Any) -> str:
    return jwt.encode(claims(**extra), key, algorithm="ES256", headers={"kid": kid})


def session(token: str) -> dict[str, str]:
    return {"apikey": PUBLISHABLE_KEY, "authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
async def call() -> AsyncIterator[Caller]:
    settings = Settings(
        supabase_url=URL,
        secret_keys=SETTINGS.secret_keys,
        publishable_keys=SETTINGS.publishable_keys,
        jwt_secret=JWT_SECRET,
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://functions.test") as http:
        yield Caller(http)
    await app.state.runtime.aclose()


@pytest.fixture
def platform() -> AsyncIterator[respx.MockRouter]:
    with respx.mock(base_url=URL, assert_all_called=False) as router:
        router.get(JWKS).respond(
            200, json={"keys": [public_jwk(EC_KEY, "ec-1"), public_jwk(RSA_KEY, "rsa-1")]}
        )
        yield router


def role(router: respx.MockRouter, value: str | None) -> respx.Route:
    return router.post(RPC + "rec_admin_role").respond(200, json=value)


@pytest.mark.parametrize("case", READS, ids=lambda c: c.id)
async def test_viewer_may_read(case: Any, call: Caller, platform: respx.MockRouter) -> None:
    lookup = role(platform, "viewer")
    route = platform.post(RPC + case.rpc).respond(200, json=case.result)
    platform.post(RPC + "rec_experiment_daily_metrics").respond(200, json=[])
    response = await call(case.name, case.body, headers=session(hs256()))
    assert response.status_code == 200, response.text
    assert json.loads(lookup.calls.last.request.content) == {"user_id": SUB}
    assert route.call_count == 1


@pytest.mark.parametrize("case", WRITES, ids=lambda c: c.id)
async def test_viewer_may_not_write(case: Any, call: Caller, platform: respx.MockRouter) -> None:
    role(platform, "viewer")
    route = platform.post(RPC + case.rpc).respond(200, json=case.result)
    response = await call(case.name, case.body, headers=session(hs256()))
    assert response.status_code == 403
    assert "viewer" in response.json()["error"]["message"]
    assert not route.called


@pytest.mark.parametrize("case", WRITES, ids=lambda c: c.id)
async def test_admin_writes_as_the_token_subject(case: Any, call: Caller, platform: respx.MockRouter) -> None:
    role(platform, "admin")
    route = platform.post(RPC + case.rpc).respond(200, json=case.result)
    body = {k: v for k, v in case.body.items() if k != "admin_id"}
    response = await call(case.name, body, headers=session(es256()))
    assert response.status_code == 200, response.text
    assert json.loads(route.calls.last.request.content)["admin_id"] == SUB
    # the same id spelled in upper case is the same person
    response = await call(case.name, {**body, "admin_id": SUB.upper()}, headers=session(hs256()))
    assert response.status_code == 200, response.text
    # anyone else's id is refused before any RPC
    calls = route.call_count
    response = await call(case.name, {**body, "admin_id": OTHER}, headers=session(hs256()))
    assert response.status_code == 403
    assert "admin_id" in response.json()["error"]["message"]
    assert route.call_count == calls


async def test_scheduler_rotation_names_the_session_user(call: Caller, platform: respx.MockRouter) -> None:
    role(platform, "admin")
    route = platform.post(RPC + "rec_rotate_due_salts").respond(200, json=[])
    response = await call("admin-rotate-salt", {"due": True}, headers=session(hs256()))
    assert response.status_code == 200
    assert json.loads(route.calls.last.request.content)["admin_id"] == SUB


async def test_user_not_in_rec_admins_is_403(call: Caller, platform: respx.MockRouter) -> None:
    role(platform, None)
    response = await call("admin-list-experiments", {}, headers=session(hs256()))
    assert response.status_code == 403
    assert "not an admin" in response.json()["error"]["message"]


async def test_whoami(call: Caller, platform: respx.MockRouter) -> None:
    role(platform, "viewer")
    response = await call("admin-whoami", {}, headers=session(es256()))
    assert response.json() == {"data": {"user_id": SUB, "email": "ada@example.com", "role": "viewer"}}
    response = await call("admin-whoami", {}, headers={"apikey": SECRET_KEY})
    assert response.json() == {"data": {"user_id": None, "email": None, "role": "service"}}


def _none_token() -> str:
    def part(value: dict[str, Any]) -> str:
        return jwt.utils.base64url_encode(json.dumps(value).encode()).decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims())}."


_NESTED = '{"alg": "HS256", "x": ' + "[" * 5000 + "]" * 5000 + "}"


def _segment_raw(text: str) -> str:
    return jwt.utils.base64url_encode(text.encode()).decode()


def _tampered() -> str:
    header, _, signature = hs256().split(".")
    payload = jwt.utils.base64url_encode(json.dumps(claims(sub=OTHER)).encode()).decode()
    return f"{header}.{payload}.{signature}"


BAD_TOKENS: dict[str, tuple[Callable[[], str], str]] = {
    "expired": (lambda: hs256(exp=int(time.time()) - 120), tokens.EXPIRED),
    "expired-es256": (lambda: es256(exp=int(time.time()) - 120), tokens.EXPIRED),
    "tampered": (_tampered, tokens.BAD_SIGNATURE),
    "alg-none": (_none_token, "'none' are not accepted"),
    "hs512": (lambda: jwt.encode(claims(), "z" * 64, algorithm="HS512"), "'HS512' are not accepted"),
    "wrong-audience": (lambda: hs256(aud="somebody-else"), tokens.WRONG_AUDIENCE),
    "no-audience": (lambda: jwt.encode({**claims(), "aud": None}, JWT_SECRET), tokens.WRONG_AUDIENCE),
    "wrong-secret": (
        lambda: jwt.encode(claims(), "another-secret-that-is-also-32-characters-long"),
        tokens.BAD_SIGNATURE,
    ),
    "foreign-ec-key": (lambda: es256(FOREIGN_EC_KEY), tokens.BAD_SIGNATURE),
    "unknown-kid": (lambda: es256(FOREIGN_EC_KEY, kid="nobody"), tokens.UNKNOWN_KID),
    "rsa-kid-on-ec-token": (lambda: es256(kid="rsa-1"), tokens.BAD_SIGNATURE),
    "sub-not-uuid": (lambda: hs256(sub="admin"), tokens.NO_SUBJECT),
    "nested-header": (
        lambda: f"{_segment_raw(_NESTED)}.{hs256().split('.')[1]}.sig",
        tokens.MALFORMED,
    ),
    "huge": (lambda: hs256(pad="x" * 20_000), tokens.MALFORMED),
    "no-expiry": (lambda: jwt.encode({**claims(), "exp": None}, JWT_SECRET), tokens.NO_EXPIRY),
}


@pytest.mark.parametrize("name", BAD_TOKENS)
async def test_bad_tokens_are_401_with_a_clear_message(
    name: str, call: Caller, platform: respx.MockRouter
) -> None:
    make, message = BAD_TOKENS[name]
    token = make()
    lookup = role(platform, "admin")
    response = await call("admin-list-experiments", {}, headers=session(token))
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_token"
    assert message in error["message"]
    assert token not in response.text
    assert not lookup.called


async def test_rs256_tokens_verify_with_the_jwks(call: Caller, platform: respx.MockRouter) -> None:
    role(platform, "admin")
    token = jwt.encode(claims(), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"})
    response = await call("admin-whoami", {}, headers=session(token))
    assert response.status_code == 200


async def test_hs256_without_the_secret_is_401() -> None:
    app = create_app(SETTINGS)  # no SUPABASE_JWT_SECRET
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://functions.test") as http:
        response = await Caller(http)("admin-list-experiments", {}, headers=session(USER_JWT))
    assert response.status_code == 401
    assert "SUPABASE_JWT_SECRET" in response.json()["error"]["message"]


# --- the key set cache -------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_key_set_is_cached_and_an_unknown_kid_refetches_once() -> None:
    served = [{"keys": [public_jwk(EC_KEY, "ec-1")]}]
    fetched: list[str] = []

    async def fetch(url: str) -> Any:
        fetched.append(url)
        return served[-1]

    clock = Clock()
    verifier = TokenVerifier(JWKS, None, fetch, clock=clock)
    assert (await verifier.verify(es256())).user_id == SUB
    assert (await verifier.verify(es256())).email == "ada@example.com"
    assert len(fetched) == 1
    # a rotated-in key is found by one refetch
    served.append({"keys": [public_jwk(EC_KEY, "ec-1"), public_jwk(FOREIGN_EC_KEY, "ec-2")]})
    clock.now += tokens.REFETCH_GAP
    await verifier.verify(es256(FOREIGN_EC_KEY, kid="ec-2"))
    assert len(fetched) == 2
    # unknown kids right after a fetch do not refetch
    for _ in range(3):
        with pytest.raises(Exception, match="kid"):
            await verifier.verify(es256(FOREIGN_EC_KEY, kid="ec-3"))
    assert len(fetched) == 2
    # after the TTL the set is fetched again
    clock.now += tokens.JWKS_TTL
    await verifier.verify(es256())
    assert len(fetched) == 3


async def test_unreachable_jwks_is_503_and_a_cached_set_keeps_working() -> None:
    calls = 0

    async def fetch(url: str) -> Any:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise httpx.ConnectError("down")
        return {"keys": [public_jwk(EC_KEY, "ec-1")]}

    async def down(url: str) -> Any:
        raise httpx.ConnectError("down")

    with pytest.raises(Exception, match="could not be fetched") as info:
        await TokenVerifier(JWKS, None, down).verify(es256())
    assert getattr(info.value, "status", None) == 503
    clock = Clock()
    verifier = TokenVerifier(JWKS, None, fetch, clock=clock)
    await verifier.verify(es256())
    clock.now += tokens.JWKS_TTL + 1
    assert (await verifier.verify(es256())).user_id == SUB
