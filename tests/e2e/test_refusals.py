"""Refused admin calls, end to end: the right status and error body from the
real stack, and nothing changed behind them (no audit row, no experiment
or assignment touched)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from supabase_functions.errors import FunctionsHttpError

from tests.e2e.conftest import (
    ADMIN,
    KEYS,
    audit_count,
    call,
    failure,
    invoke,
    new_key,
    supabase_client,
)
from tests.stack.conftest import Stack, key_headers

VARIANTS = [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]
USER = str(uuid.uuid4())
SECRET = key_headers(KEYS.secret)
PUBLISHABLE = key_headers(KEYS.publishable)


@dataclass(frozen=True)
class Keys:
    draft: str
    active: str
    ended: str


@pytest.fixture(scope="module")
def experiments(e2e_stack: Stack) -> Iterator[Keys]:
    """One experiment per state, made through the functions."""
    keys = Keys(new_key("e2e-draft"), new_key("e2e-active"), new_key("e2e-ended"))
    with httpx.Client(base_url=e2e_stack.url, timeout=30, headers=SECRET) as http:

        def ok(name: str, body: dict[str, Any]) -> None:
            r = http.post(f"/functions/v1/{name}", json=body)
            assert r.status_code == 200, r.text

        for key in (keys.draft, keys.active, keys.ended):
            ok("admin-create-experiment", {"key": key, "variants": VARIANTS, "admin_id": ADMIN})
        for key in (keys.active, keys.ended):
            ok("admin-activate-experiment", {"key": key, "admin_id": ADMIN})
        ok("admin-set-user-variant", {"key": keys.active, "user_id": USER, "variant": "a", "admin_id": ADMIN})
        ok("admin-end-experiment", {"key": keys.ended, "admin_id": ADMIN})
    yield keys


def snapshot(stack: Stack) -> tuple[Any, ...]:
    """Everything a refused call could have changed."""
    return (
        audit_count(stack),
        stack.sql(
            "select key, name, description, status, variants, salt, salt_rotation_interval,"
            " salt_rotated_at, updated_at, started_at, ended_at from public.rec_experiments"
            " order by key"
        ),
        stack.sql(
            "select experiment_id, user_id, variant, assignment_mode, assigned_by, assigned_at"
            " from public.rec_user_experiment_assignments order by 1, 2"
        ),
    )


@dataclass(frozen=True)
class Refusal:
    function: str
    body: Any
    status: int
    code: str
    headers: dict[str, str] | None = None
    raw: bytes | None = None  # sent as is, instead of body as JSON
    signed_in: bool = False  # with the publishable key and a valid access token of a non-admin


NOT_AN_ADMIN = str(uuid.uuid4())

# Keys in bodies: "draft"/"active"/"ended" are replaced by the fixture's keys.
REFUSALS = {
    "unknown-experiment-activate": Refusal(
        "admin-activate-experiment", {"key": "e2e-no-such", "admin_id": ADMIN}, 404, "P0002"
    ),
    "unknown-experiment-get": Refusal("admin-get-experiment", {"key": "e2e-no-such"}, 404, "P0002"),
    "unknown-experiment-set-variant": Refusal(
        "admin-set-user-variant",
        {"key": "e2e-no-such", "user_id": USER, "variant": "a", "admin_id": ADMIN},
        404,
        "P0002",
    ),
    "unknown-experiment-audit": Refusal("admin-audit-log", {"key": "e2e-no-such"}, 404, "P0002"),
    "activate-twice": Refusal(
        "admin-activate-experiment", {"key": "active", "admin_id": ADMIN}, 409, "55000"
    ),
    "end-a-draft": Refusal("admin-end-experiment", {"key": "draft", "admin_id": ADMIN}, 409, "55000"),
    "end-twice": Refusal("admin-end-experiment", {"key": "ended", "admin_id": ADMIN}, 409, "55000"),
    "variants-after-draft": Refusal(
        "admin-update-experiment", {"key": "active", "admin_id": ADMIN, "variants": VARIANTS}, 409, "55000"
    ),
    "rotate-ended": Refusal("admin-rotate-salt", {"key": "ended", "admin_id": ADMIN}, 409, "55000"),
    "unknown-variant": Refusal(
        "admin-set-user-variant",
        {"key": "active", "user_id": USER, "variant": "c", "admin_id": ADMIN},
        404,
        "22023",
    ),
    "malformed-variant-name": Refusal(
        "admin-set-user-variant",
        {"key": "active", "user_id": USER, "variant": "no spaces", "admin_id": ADMIN},
        422,
        "validation_failed",
    ),
    "all-zero-weights": Refusal(
        "admin-create-experiment",
        {"key": "e2e-zero", "admin_id": ADMIN, "variants": [{"name": "a", "weight": 0}]},
        422,
        "validation_failed",
    ),
    "bad-interval": Refusal(
        "admin-update-experiment",
        {"key": "draft", "admin_id": ADMIN, "salt_rotation_interval": "-1 day"},
        422,
        "validation_failed",
    ),
    "duplicate-key": Refusal(
        "admin-create-experiment", {"key": "draft", "admin_id": ADMIN, "variants": VARIANTS}, 409, "23505"
    ),
    "missing-admin-id": Refusal("admin-end-experiment", {"key": "active"}, 422, "validation_failed"),
    "publishable-key": Refusal(
        "admin-end-experiment", {"key": "active", "admin_id": ADMIN}, 403, "forbidden", headers=PUBLISHABLE
    ),
    "legacy-anon-jwt": Refusal(
        "admin-end-experiment",
        {"key": "active", "admin_id": ADMIN},
        403,
        "forbidden",
        headers=key_headers(KEYS.anon_jwt, KEYS.anon_jwt),
    ),
    "no-key": Refusal(
        "admin-end-experiment", {"key": "active", "admin_id": ADMIN}, 401, "unauthorized", headers={}
    ),
    "secret-key-only-as-bearer": Refusal(
        "admin-end-experiment",
        {"key": "active", "admin_id": ADMIN},
        401,
        "unauthorized",
        headers={"Authorization": f"Bearer {KEYS.secret}"},
    ),
    "user-jwt": Refusal(
        "admin-end-experiment",
        {"key": "active", "admin_id": ADMIN},
        403,
        "forbidden",
        signed_in=True,
    ),
    "malformed-json": Refusal(
        "admin-end-experiment", None, 400, "invalid_json", raw=b'{"key": "active", "admin_id": '
    ),
    "json-not-an-object": Refusal("admin-end-experiment", None, 400, "invalid_json", raw=b'["active"]'),
    "unknown-function": Refusal("admin-drop-everything", {}, 404, "not_found"),
}


def _resolve(value: Any, keys: Keys) -> Any:
    if isinstance(value, dict):
        return {
            k: getattr(keys, v) if k == "key" and v in ("draft", "active", "ended") else v
            for k, v in value.items()
        }
    return value


@pytest.mark.parametrize("case", list(REFUSALS.values()), ids=list(REFUSALS))
async def test_refused_call_changes_nothing(
    http: httpx.AsyncClient, e2e_stack: Stack, experiments: Keys, case: Refusal
) -> None:
    before = snapshot(e2e_stack)
    headers = SECRET if case.headers is None else case.headers
    if case.signed_in:  # issued by this stack's Auth (iss), as every real token is
        token = KEYS.user_jwt(NOT_AN_ADMIN, iss=f"{e2e_stack.url}/auth/v1")
        headers = key_headers(KEYS.publishable, token)
    if case.raw is not None:
        response = await http.post(
            f"/functions/v1/{case.function}",
            content=case.raw,
            headers={**headers, "content-type": "application/json"},
        )
    else:
        response = await invoke(http, case.function, _resolve(case.body, experiments), headers=headers)
    failure(response, case.status, case.code)
    if case.status == 401:
        assert response.json()["error"]["message"].startswith(("Missing API key", "Secret keys go"))
    assert snapshot(e2e_stack) == before


async def test_not_post_is_405(http: httpx.AsyncClient, e2e_stack: Stack, experiments: Keys) -> None:
    before = snapshot(e2e_stack)
    response = await http.get("/functions/v1/admin-end-experiment", headers=SECRET)
    failure(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST, OPTIONS"
    assert snapshot(e2e_stack) == before


async def test_preflight_is_answered_without_a_key(http: httpx.AsyncClient) -> None:
    response = await http.options(
        "/functions/v1/admin-create-experiment",
        headers={
            "Origin": "https://dashboard.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, x-client-info, apikey, content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    allowed = {h.strip() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "x-client-info", "apikey", "content-type"} <= allowed


async def test_supabase_client_sees_the_status_and_the_error_body(
    e2e_stack: Stack, experiments: Keys
) -> None:
    """functions.invoke raises FunctionsHttpError with the function's status
    and message; a publishable-key client is refused the same way."""
    before = snapshot(e2e_stack)
    async with supabase_client(e2e_stack.url, KEYS.secret) as admin:
        with pytest.raises(FunctionsHttpError) as missing:
            await admin.functions.invoke(
                "admin-end-experiment", {"body": {"key": "e2e-no-such", "admin_id": ADMIN}}
            )
        assert missing.value.status == 404
        with pytest.raises(FunctionsHttpError) as twice:
            await admin.functions.invoke(
                "admin-activate-experiment", {"body": {"key": experiments.active, "admin_id": ADMIN}}
            )
        assert twice.value.status == 409
    async with supabase_client(e2e_stack.url, KEYS.publishable) as public:
        with pytest.raises(FunctionsHttpError) as refused:
            await public.functions.invoke("admin-list-experiments", {"body": {}})
        assert refused.value.status == 403
    assert snapshot(e2e_stack) == before


async def test_a_refusal_in_between_leaves_the_next_call_working(
    http: httpx.AsyncClient, e2e_stack: Stack, experiments: Keys
) -> None:
    """After every kind of refusal above, the stack still serves: the draft
    can be started and its one new audit row is the only change."""
    count = audit_count(e2e_stack)
    assert (await call(http, "admin-activate-experiment", {"key": experiments.draft, "admin_id": ADMIN}))[
        "status"
    ] == "active"
    assert audit_count(e2e_stack) == count + 1
    newest = (await call(http, "admin-audit-log", {"max_rows": 1}))[0]
    assert (newest["action"], newest["experiment_key"], newest["actor_id"]) == (
        "activate_experiment",
        experiments.draft,
        ADMIN,
    )
