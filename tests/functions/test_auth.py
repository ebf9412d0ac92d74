"""The caller check: secret keys in apikey, the legacy service-role JWT in either header."""

from __future__ import annotations

import logging

import pytest
import respx

from tests.functions.cases import CASES, Case
from tests.functions.conftest import (
    ALL_KEYS,
    ANON_JWT,
    EXPIRED_SERVICE_JWT,
    FOREIGN_SERVICE_JWT,
    OTHER_SECRET_KEY,
    PUBLISHABLE_KEY,
    RPC,
    SECRET_KEY,
    SERVICE_ROLE_JWT,
    Caller,
)

ACCEPTED = {
    "secret-key-in-apikey": {"apikey": SECRET_KEY},
    "second-secret-key-in-apikey": {"apikey": OTHER_SECRET_KEY},
    "secret-key-in-both-headers": {"apikey": SECRET_KEY, "authorization": f"Bearer {SECRET_KEY}"},
    "service-role-jwt-in-bearer": {"authorization": f"Bearer {SERVICE_ROLE_JWT}"},
    "service-role-jwt-in-apikey": {"apikey": SERVICE_ROLE_JWT},
    "service-role-jwt-bearer-with-publishable-apikey": {
        "apikey": PUBLISHABLE_KEY,
        "authorization": f"Bearer {SERVICE_ROLE_JWT}",
    },
    "lower-case-bearer-scheme": {"authorization": f"bearer {SERVICE_ROLE_JWT}"},
}
UNAUTHENTICATED = {
    "no-headers": {},
    "empty-apikey": {"apikey": ""},
    "basic-auth": {"authorization": "Basic dXNlcjpwYXNz"},
    "bearer-without-token": {"authorization": "Bearer "},
    "secret-key-only-in-authorization": {"authorization": f"Bearer {SECRET_KEY}"},
    "random-string-only-in-authorization": {"authorization": "Bearer not-a-key"},
}
FORBIDDEN = {
    "wrong-secret-key": {"apikey": "sb_secret_wrong_000000000000000000"},
    "random-string": {"apikey": "hello"},
    "publishable-key": {"apikey": PUBLISHABLE_KEY},
    "anon-jwt-in-apikey": {"apikey": ANON_JWT},
    "anon-jwt-in-bearer": {"authorization": f"Bearer {ANON_JWT}"},
    "expired-service-role-jwt": {"authorization": f"Bearer {EXPIRED_SERVICE_JWT}"},
    "service-role-jwt-foreign-signature": {"authorization": f"Bearer {FOREIGN_SERVICE_JWT}"},
    "secret-key-prefix": {"apikey": SECRET_KEY[:-1]},
    "secret-key-extended": {"apikey": SECRET_KEY + "x"},
    "publishable-apikey-secret-bearer": {
        "apikey": PUBLISHABLE_KEY,
        "authorization": f"Bearer {SECRET_KEY}",
    },
    "non-ascii-apikey": {"apikey": "sb_secret_\u00e9t\u00e9".encode()},
}
LIST = next(case for case in CASES if case.name == "admin-list-experiments")


@pytest.mark.parametrize("headers", ACCEPTED.values(), ids=ACCEPTED.keys())
async def test_service_level_callers_are_accepted(
    headers: dict[str, str], call: Caller, postgrest: respx.MockRouter
) -> None:
    route = postgrest.post(RPC + LIST.rpc).respond(200, json=[])
    response = await call(LIST.name, LIST.body, headers=headers)
    assert response.status_code == 200
    assert route.call_count == 1


@pytest.mark.parametrize("headers", UNAUTHENTICATED.values(), ids=UNAUTHENTICATED.keys())
async def test_missing_credentials_are_401(
    headers: dict[str, str], call: Caller, postgrest: respx.MockRouter
) -> None:
    response = await call(LIST.name, LIST.body, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert not postgrest.calls


async def test_secret_key_as_bearer_says_use_apikey(call: Caller) -> None:
    response = await call(LIST.name, {}, headers={"authorization": f"Bearer {SECRET_KEY}"})
    assert response.status_code == 401
    assert "apikey header" in response.json()["error"]["message"]


@pytest.mark.parametrize("headers", FORBIDDEN.values(), ids=FORBIDDEN.keys())
async def test_non_service_credentials_are_403(
    headers: dict[str, str], call: Caller, postgrest: respx.MockRouter
) -> None:
    response = await call(LIST.name, LIST.body, headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert not postgrest.calls


async def test_publishable_key_refusal_names_it(call: Caller) -> None:
    response = await call(LIST.name, {}, headers={"apikey": PUBLISHABLE_KEY})
    assert "publishable" in response.json()["error"]["message"]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
@pytest.mark.parametrize(
    ("headers", "status"), [({}, 401), ({"apikey": PUBLISHABLE_KEY}, 403)], ids=["none", "public"]
)
async def test_every_function_checks_the_caller(
    case: Case, headers: dict[str, str], status: int, call: Caller, postgrest: respx.MockRouter
) -> None:
    response = await call(case.name, case.body, headers=headers)
    assert response.status_code == status
    assert not postgrest.calls


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
async def test_caller_check_comes_before_the_body(
    case: Case, call: Caller, postgrest: respx.MockRouter
) -> None:
    # A refused caller learns nothing about the body, not even that it is malformed.
    response = await call(case.name, content=b"{not json", headers={"apikey": "nope"})
    assert response.status_code == 403
    assert not postgrest.calls


async def test_refusals_do_not_log_keys(call: Caller, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        for headers in (*UNAUTHENTICATED.values(), *FORBIDDEN.values()):
            await call(LIST.name, {}, headers=headers)
    assert all(key not in caplog.text for key in ALL_KEYS)
