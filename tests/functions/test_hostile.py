"""Hostile bodies: every one gets a clear 4xx and PostgREST sees no request."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import respx

from functions.registry import FUNCTIONS
from tests.functions.cases import CASES, VARIANTS
from tests.functions.conftest import ADMIN, Caller

NAMES = [case.name for case in CASES]
VALID = {case.name: case.body for case in CASES}

NOT_AN_OBJECT = {
    "not-json": b"{not json",
    "truncated": b'{"key": "a"',
    "trailing-data": b'{"a": 1}{"b": 2}',
    "array": b"[]",
    "array-of-object": b'[{"key": "home-feed"}]',
    "string": b'"home-feed"',
    "number": b"42",
    "null": b"null",
    "true": b"true",
    "nan": b'{"max_rows": NaN}',
    "infinity": b'{"max_rows": Infinity}',
    "duplicate-keys": b'{"key": "a", "key": "b"}',
    "invalid-utf8": b'{"key": "\xff\xfe"}',
    "utf16": '{"key": "a"}'.encode("utf-16"),
    "utf8-bom": b'\xef\xbb\xbf{"key": "a"}',
    "lone-surrogate": b'{"key": "\\ud800"}',
    "deep-nesting": b"[" * 60_000,
}

KEYS = ["Home-Feed", "ключ", "", "-lead", "a" * 65, "abc\n", "caf\u00e9", "a b", "a/b", "😀"]
VARIANT_NAMES = ["контроль", "a b", "😀", "", "x" * 65, "a\nb", "a\x00"]
NOT_UUIDS = ["not-a-uuid", "", "1234", "2b1c6a4e-9c1d-4c3b-8f7e", "g" * 32, 123, True]
WRONG_TYPES: dict[type, list[Any]] = {
    str: [1, 1.5, True, [], {}, ["x"]],
    bool: [1, 0, "true", [], {}],
    int: [True, "5", 5.5, [], {}],
    list: ["control", {}, 1, True],
    float: [True, "0.5", [], {}, 1.5, -0.5, 1.0],
}
# Metric definitions and sets the models refuse before any database call.
BAD_METRIC_FIELDS: list[tuple[str, dict[str, Any]]] = [
    ("admin-create-metric", {"kind": "ratio"}),
    ("admin-create-metric", {"kind": "User_Rate"}),
    ("admin-create-metric", {"direction": "up"}),
    ("admin-create-metric", {"outcome": "Like"}),
    ("admin-create-metric", {"outcome": ""}),
    ("admin-create-metric", {"outcome": "a" * 65}),
    ("admin-create-metric", {"capping": 0}),
    ("admin-create-metric", {"capping": 1}),
    ("admin-create-metric", {"kind": "user_rate", "capping": 0.99}),
    ("admin-update-metric", {"capping": -0.1}),
    ("admin-update-metric", {"capping": 1}),
    ("admin-update-metric", {"direction": "down"}),
    ("admin-set-experiment-metrics", {"metrics": []}),
    ("admin-set-experiment-metrics", {"metrics": [{"metric": "likes", "role": "guardrail"}]}),
    ("admin-set-experiment-metrics", {"metrics": [{"metric": "likes", "role": "owner"}]}),
    ("admin-set-experiment-metrics", {"metrics": [{"metric": "likes"}]}),
    ("admin-set-experiment-metrics", {"metrics": [{"metric": "Likes!", "role": "goal"}]}),
    (
        "admin-set-experiment-metrics",
        {"metrics": [{"metric": "likes", "role": "goal"}, {"metric": "likes", "role": "secondary"}]},
    ),
    ("admin-set-experiment-metrics", {"metrics": [{"metric": "likes", "role": "goal", "extra": 1}]}),
]


def bodies() -> Iterator[Any]:
    """(function, label, body) for field-level attacks on each valid body."""
    for name, valid in VALID.items():
        model = FUNCTIONS[name].body
        yield pytest.param(name, {**valid, "extra": 1}, id=f"{name}-extra-field")
        yield pytest.param(name, {**valid, "Key": "x"}, id=f"{name}-field-case")
        for field, value in valid.items():
            for wrong in WRONG_TYPES[type(value)]:
                yield pytest.param(name, {**valid, field: wrong}, id=f"{name}-{field}={wrong!r}")
            if isinstance(value, str):
                huge = "a" * 20_000
                yield pytest.param(name, {**valid, field: huge}, id=f"{name}-{field}-huge")
            if model.model_fields[field].is_required():
                body = {k: v for k, v in valid.items() if k != field}
                yield pytest.param(name, body, id=f"{name}-missing-{field}")
        for field in ("key",):
            if field in valid:
                for bad in KEYS:
                    yield pytest.param(name, {**valid, field: bad}, id=f"{name}-key={bad!r}")
        for field in ("admin_id", "user_id"):
            if field in valid:
                for bad in NOT_UUIDS:
                    yield pytest.param(name, {**valid, field: bad}, id=f"{name}-{field}={bad!r}")
        if "variant" in valid:
            for bad in VARIANT_NAMES:
                yield pytest.param(name, {**valid, "variant": bad}, id=f"{name}-variant={bad!r}")


def metric_bodies() -> Iterator[Any]:
    for name, change in BAD_METRIC_FIELDS:
        yield pytest.param(name, {**VALID[name], **change}, id=f"{name}-{change!r}")


def variant_lists() -> Iterator[Any]:
    bad: dict[str, Any] = {
        "empty": [],
        "too-many": [{"name": f"v{i}", "weight": 1} for i in range(101)],
        "not-objects": ["control", "treatment"],
        "missing-weight": [{"name": "control"}],
        "missing-name": [{"weight": 1}],
        "extra-field": [{"name": "control", "weight": 1, "share": 0.5}],
        "negative-weight": [{"name": "control", "weight": -1}],
        "string-weight": [{"name": "control", "weight": "50"}],
        "bool-weight": [{"name": "control", "weight": True}],
        "null-weight": [{"name": "control", "weight": None}],
        "int-name": [{"name": 1, "weight": 1}],
    }
    bad.update({f"name={n!r}": [{"name": n, "weight": 1}] for n in VARIANT_NAMES})
    for name in ("admin-create-experiment", "admin-update-experiment"):
        for label, variants in bad.items():
            yield pytest.param(name, {**VALID[name], "variants": variants}, id=f"{name}-{label}")


CREATE = VALID["admin-create-experiment"]
ADMIN_ID = CREATE["admin_id"]
INFINITE_WEIGHT = (
    json.dumps({**CREATE, "variants": [{"name": "a", "weight": 1}]})
    .replace('"weight": 1', '"weight": 1e400')
    .encode()
)
SPECIFIC = {
    "rotate-key-and-due": ("admin-rotate-salt", {"key": "a", "due": True, "admin_id": ADMIN_ID}),
    "rotate-due-false": ("admin-rotate-salt", {"due": False}),
    "rotate-due-one": ("admin-rotate-salt", {"due": 1}),
    "rotate-due-string": ("admin-rotate-salt", {"due": "true"}),
    "rotate-nothing": ("admin-rotate-salt", {}),
    "rotate-key-without-admin": ("admin-rotate-salt", {"key": "home-feed"}),
    "rotate-reassign-str": ("admin-rotate-salt", {"due": True, "reassign": "yes"}),
    "get-bad-date": ("admin-get-experiment", {"key": "a", "from_day": "2026-13-01"}),
    "get-int-date": ("admin-get-experiment", {"key": "a", "from_day": 20261101}),
    "get-datetime": ("admin-get-experiment", {"key": "a", "to_day": "2026-11-01T00:00:00"}),
    "update-nothing": ("admin-update-experiment", {"key": "a", "admin_id": ADMIN_ID}),
    "update-all-null": (
        "admin-update-experiment",
        {
            "key": "a",
            "admin_id": ADMIN_ID,
            "name": None,
            "description": None,
            "variants": None,
            "salt_rotation_interval": None,
        },
    ),
    "rotate-key-null-admin": ("admin-rotate-salt", {"key": "a", "admin_id": None}),
    "create-all-zero-weights": (
        "admin-create-experiment",
        {**CREATE, "variants": [{"name": "a", "weight": 0}, {"name": "b", "weight": 0.0}]},
    ),
    "create-weight-below-the-smallest": (
        "admin-create-experiment",
        {**CREATE, "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1e-7}]},
    ),
    "create-interval-zero": ("admin-create-experiment", {**CREATE, "salt_rotation_interval": "0 days"}),
    "create-interval-over-100-years": (
        "admin-create-experiment",
        {**CREATE, "salt_rotation_interval": "1000 weeks"},
    ),
    "create-interval-negative": ("admin-create-experiment", {**CREATE, "salt_rotation_interval": "-1 day"}),
    "search-rows-fraction": ("admin-search-users", {"query": "a", "max_rows": 30.5}),
    "list-bad-status": ("admin-list-experiments", {"status": "paused"}),
    "list-status-case": ("admin-list-experiments", {"status": "ACTIVE"}),
    "search-empty": ("admin-search-users", {"query": ""}),
    "search-321": ("admin-search-users", {"query": "a" * 321}),
    "search-nul": ("admin-search-users", {"query": "a\x00b"}),
    "search-rows-0": ("admin-search-users", {"query": "a", "max_rows": 0}),
    "search-rows-1001": ("admin-search-users", {"query": "a", "max_rows": 1001}),
    "search-rows-huge": ("admin-search-users", {"query": "a", "max_rows": 10**30}),
    "audit-rows-negative": ("admin-audit-log", {"max_rows": -1}),
    "create-empty-salt": ("admin-create-experiment", {**CREATE, "salt": ""}),
    "create-nul-name": ("admin-create-experiment", {**CREATE, "name": "a\x00"}),
    "create-interval-junk": (
        "admin-create-experiment",
        {**CREATE, "salt_rotation_interval": "7 days'; drop table x"},
    ),
    "create-infinite-weight": ("admin-create-experiment", INFINITE_WEIGHT),
    "results-series-string": ("admin-experiment-results", {"key": "a", "series": "yes"}),
    "results-series-int": ("admin-experiment-results", {"key": "a", "series": 1}),
    "results-series-null": ("admin-experiment-results", {"key": "a", "series": None}),
    "plan-day-0": ("admin-experiment-plan", {"key": "a", "days": [0]}),
    "plan-day-29": ("admin-experiment-plan", {"key": "a", "days": [7, 29]}),
    "plan-days-empty": ("admin-experiment-plan", {"key": "a", "days": []}),
    "plan-days-not-a-list": ("admin-experiment-plan", {"key": "a", "days": 7}),
    "plan-day-string": ("admin-experiment-plan", {"key": "a", "days": ["7"]}),
    "plan-day-fraction": ("admin-experiment-plan", {"key": "a", "days": [7.5]}),
    "plan-day-null": ("admin-experiment-plan", {"key": "a", "days": [None]}),
    "plan-days-too-many": ("admin-experiment-plan", {"key": "a", "days": [1] * 29}),
    "plan-no-key": ("admin-experiment-plan", {"days": [7]}),
    "plan-extra-field": ("admin-experiment-plan", {"key": "a", "series": True}),
    # coverage, layer range and settings
    "create-coverage-negative": ("admin-create-experiment", {**CREATE, "coverage": -0.1}),
    "create-coverage-above-one": ("admin-create-experiment", {**CREATE, "coverage": 1.01}),
    "create-coverage-string": ("admin-create-experiment", {**CREATE, "coverage": "0.5"}),
    "create-coverage-bool": ("admin-create-experiment", {**CREATE, "coverage": True}),
    "create-range-without-layer": ("admin-create-experiment", {**CREATE, "layer_from": 0, "layer_to": 5}),
    "create-from-only": ("admin-create-experiment", {**CREATE, "layer_key": "feed", "layer_from": 0}),
    "create-to-only": ("admin-create-experiment", {**CREATE, "layer_key": "feed", "layer_to": 5}),
    "create-range-reversed": (
        "admin-create-experiment",
        {**CREATE, "layer_key": "feed", "layer_from": 50, "layer_to": 10},
    ),
    "create-range-past-end": (
        "admin-create-experiment",
        {**CREATE, "layer_key": "feed", "layer_from": 0, "layer_to": 10001},
    ),
    "create-range-negative": (
        "admin-create-experiment",
        {**CREATE, "layer_key": "feed", "layer_from": -1, "layer_to": 5},
    ),
    "create-range-fraction": (
        "admin-create-experiment",
        {**CREATE, "layer_key": "feed", "layer_from": 0.5, "layer_to": 5},
    ),
    "create-empty-layer-key": ("admin-create-experiment", {**CREATE, "layer_key": ""}),
    "create-bad-layer-key": ("admin-create-experiment", {**CREATE, "layer_key": "Feed; drop"}),
    "create-tuning-low": ("admin-create-experiment", {**CREATE, "sequential_tuning": 99}),
    "create-tuning-high": ("admin-create-experiment", {**CREATE, "sequential_tuning": 10_000_001}),
    "create-cuped-61": ("admin-create-experiment", {**CREATE, "cuped_days": 61}),
    "create-sequential-int": ("admin-create-experiment", {**CREATE, "sequential": 1}),
    "update-leave-with-range": (
        "admin-update-experiment",
        {"key": "a", "admin_id": ADMIN_ID, "layer_key": "", "layer_from": 0, "layer_to": 5},
    ),
    "update-range-reversed": (
        "admin-update-experiment",
        {"key": "a", "admin_id": ADMIN_ID, "layer_from": 5, "layer_to": 5},
    ),
    "update-coverage-nan": ("admin-update-experiment", {"key": "a", "admin_id": ADMIN_ID, "coverage": "NaN"}),
    "layer-bad-key": ("admin-create-layer", {"key": "Feed", "admin_id": ADMIN_ID}),
    "layer-no-admin": ("admin-create-layer", {"key": "feed"}),
    "layer-extra-field": ("admin-create-layer", {"key": "feed", "admin_id": ADMIN_ID, "salt": "mine"}),
    "list-layers-field": ("admin-list-layers", {"key": "feed"}),
}


@pytest.fixture
def no_postgrest(postgrest: respx.MockRouter) -> Iterator[respx.MockRouter]:
    route = postgrest.route().respond(200, json=None)
    yield postgrest
    assert not route.called, "a refused body reached PostgREST"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("raw", NOT_AN_OBJECT.values(), ids=NOT_AN_OBJECT.keys())
async def test_bodies_that_are_not_a_json_object_are_400(
    name: str, raw: bytes, call: Caller, no_postgrest: respx.MockRouter
) -> None:
    response = await call(name, content=raw)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("name", "body"),
    [
        *bodies(),
        *metric_bodies(),
        *variant_lists(),
        *(pytest.param(*case, id=label) for label, case in SPECIFIC.items()),
    ],
)
async def test_invalid_fields_are_422(
    name: str, body: dict[str, Any] | bytes, call: Caller, no_postgrest: respx.MockRouter
) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = await call(name, content=raw)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert error["details"] and all(set(item) == {"loc", "msg"} for item in error["details"])
    assert len(response.content) < 4096  # never echoes huge input back


async def test_validation_details_name_the_field(call: Caller, no_postgrest: respx.MockRouter) -> None:
    body = {**VALID["admin-create-experiment"], "variants": [{"name": "a", "weight": -1}]}
    details = (await call("admin-create-experiment", body)).json()["error"]["details"]
    message = "Weight must be 0 or between 0.000001 and 1000000"
    assert details == [{"loc": ["variants", 0, "weight"], "msg": message}]


async def test_huge_unknown_field_name_is_clipped(call: Caller, no_postgrest: respx.MockRouter) -> None:
    response = await call("admin-list-experiments", {"x" * 50_000: 1})
    assert response.status_code == 422
    assert len(response.content) < 1024


@pytest.mark.parametrize("name", NAMES)
async def test_oversize_body_is_413(name: str, call: Caller, no_postgrest: respx.MockRouter) -> None:
    body = {**VALID[name], "padding": "x" * (70 * 1024)}
    response = await call(name, body)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize("name", NAMES)
async def test_oversize_stream_without_length_is_413(
    name: str, call: Caller, no_postgrest: respx.MockRouter
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"padding": "'
        for _ in range(80):
            yield b"x" * 1024
        yield b'"}'

    response = await call.http.post(f"/functions/v1/{name}", content=chunks(), headers=ADMIN)
    assert "content-length" not in response.request.headers
    assert response.status_code == 413


async def test_body_at_the_limit_is_read(call: Caller, postgrest: respx.MockRouter) -> None:
    postgrest.post("/rest/v1/rpc/rec_search_users").respond(200, json=[])
    prefix, suffix = b'{"query": "a", "max_rows": 5', b"}"
    raw = prefix + b" " * (64 * 1024 - len(prefix) - len(suffix)) + suffix
    assert len(raw) == 64 * 1024
    assert (await call("admin-search-users", content=raw)).status_code == 200


@pytest.mark.parametrize("length", ["abc", "-1", "1e3", "\u00b2"])
async def test_bad_content_length_is_400(length: str, app: Any, no_postgrest: respx.MockRouter) -> None:
    # httpx always sends a correct Content-Length, so talk ASGI directly.
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/functions/v1/admin-list-experiments",
        "raw_path": b"",
        "query_string": b"",
        "root_path": "",
        "server": ("f", 80),
        "client": ("c", 1),
        "headers": [(b"apikey", ADMIN["apikey"].encode()), (b"content-length", length.encode("latin-1"))],
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 400


async def test_unauthenticated_oversize_body_is_401_unread(
    call: Caller, no_postgrest: respx.MockRouter
) -> None:
    response = await call("admin-list-experiments", {"x": "y" * 100_000}, headers={})
    assert response.status_code == 401


async def test_unicode_in_free_text_is_fine(call: Caller, postgrest: respx.MockRouter) -> None:
    # Unicode is refused only where the contract restricts the alphabet.
    route = postgrest.post("/rest/v1/rpc/rec_create_experiment").respond(200, json={})
    name = "admin-create-experiment"
    body = {**VALID[name], "name": "Главная лента 🏠", "description": "é\u200b", "variants": VARIANTS}
    assert (await call(name, body)).status_code == 200
    assert json.loads(route.calls.last.request.content)["name"] == "Главная лента 🏠"
