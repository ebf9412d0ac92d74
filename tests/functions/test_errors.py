"""PostgREST and network failures → the function's HTTP answer."""

from __future__ import annotations

import logging

import httpx
import pytest
import respx

from tests.functions.cases import CASES, Case
from tests.functions.conftest import ALL_KEYS, RPC, Caller, pg_error

# (PostgREST status, code) → function status. Statuses are what PostgREST
# really sends (docs.postgrest.org, references/errors): P0* other than P0001
# and 55* come back as 500, unlisted SQLSTATEs as 400. The function maps by
# code only: supabase-py does not expose the status.
DB_ERRORS = [
    (500, "P0002", 404),
    (400, "22023", 422),
    (400, "23514", 422),
    (400, "22P02", 422),
    (400, "22007", 422),
    (400, "22008", 422),
    (400, "22003", 422),
    (400, "23502", 422),
    (400, "22001", 422),
    (409, "23505", 409),
    (409, "23503", 409),
    (500, "55000", 409),
    (403, "42501", 403),
    (401, "42501", 403),
    (400, "P0001", 400),
]
UNAVAILABLE = [
    (404, "PGRST202"),
    (404, "42883"),
    (401, "PGRST301"),
    (401, "PGRST302"),
    (500, "PGRST300"),
    (503, "08006"),
    (503, "08001"),
    (500, "57014"),
    (503, "53300"),
    (503, "57P01"),
    (503, "57P03"),
    (503, "PGRST000"),
    (504, "PGRST003"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
@pytest.mark.parametrize(("pg_status", "code", "status"), DB_ERRORS)
async def test_database_errors_pass_code_and_message(
    case: Case, pg_status: int, code: str, status: int, call: Caller, postgrest: respx.MockRouter
) -> None:
    postgrest.post(RPC + case.rpc).mock(
        return_value=pg_error(
            pg_status,
            code,
            "Something a person can act on.",
            "Key (key)=(x) already exists.",
            "Try another key.",
        )
    )
    if (case.name, code) == ("admin-set-user-variant", "22023"):
        status = 404  # there the only 22023 left is a variant the experiment lacks
    response = await call(case.name, case.body)
    assert response.status_code == status
    assert response.json() == {
        "error": {
            "code": code,
            "message": "Something a person can act on.",
            "details": {"detail": "Key (key)=(x) already exists.", "hint": "Try another key."},
        }
    }


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
@pytest.mark.parametrize(("pg_status", "code"), UNAVAILABLE)
async def test_platform_errors_are_503(
    case: Case, pg_status: int, code: str, call: Caller, postgrest: respx.MockRouter
) -> None:
    postgrest.post(RPC + case.rpc).mock(return_value=pg_error(pg_status, code, "upstream says"))
    response = await call(case.name, case.body)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == code


async def test_missing_function_says_migrations(call: Caller, postgrest: respx.MockRouter) -> None:
    postgrest.post(RPC + "rec_end_experiment").mock(
        return_value=pg_error(
            404,
            "PGRST202",
            "Could not find the function public.rec_end_experiment"
            "(admin_id, experiment_key) in the schema cache",
            None,
            "Perhaps ...",
        )
    )
    case = next(case for case in CASES if case.rpc == "rec_end_experiment")
    error = (await call(case.name, case.body)).json()["error"]
    assert "rec_end_experiment is missing" in error["message"]
    assert "migrations" in error["message"]
    assert "details" not in error


async def test_rejected_own_key_says_misconfigured(call: Caller, postgrest: respx.MockRouter) -> None:
    postgrest.post(RPC + "rec_list_experiments").mock(
        return_value=pg_error(401, "PGRST301", "JWSError JWSInvalidSignature")
    )
    error = (await call("admin-list-experiments", {})).json()["error"]
    assert "misconfigured" in error["message"]


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(502, text="<html>Bad gateway</html>"),
        httpx.Response(504, content=b""),
        httpx.Response(500, json=["not", "an", "error", "object"]),
        httpx.Response(404, text="Not Found"),
        httpx.Response(401, json={"message": "Invalid authentication credentials"}),
    ],
    ids=["html-502", "empty-504", "json-array-500", "text-404", "gateway-401"],
)
async def test_non_postgrest_errors_are_503(
    response: httpx.Response, call: Caller, postgrest: respx.MockRouter
) -> None:
    postgrest.post(RPC + "rec_list_experiments").mock(return_value=response)
    answer = await call("admin-list-experiments", {})
    assert answer.status_code == 503
    assert "<html>" not in answer.text


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.ConnectTimeout("timed out"),
        httpx.RemoteProtocolError("server hung up"),
    ],
    ids=lambda exc: type(exc).__name__,
)
async def test_network_errors_are_503(
    case: Case, exc: Exception, call: Caller, postgrest: respx.MockRouter
) -> None:
    postgrest.post(RPC + case.rpc).mock(side_effect=exc)
    response = await call(case.name, case.body)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "upstream_unavailable"


@pytest.mark.parametrize(("pg_status", "code"), [(500, "XX000"), (400, "42703"), (400, "PGRST100")])
async def test_unmapped_codes_are_internal_errors(
    pg_status: int,
    code: str,
    call: Caller,
    postgrest: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    postgrest.post(RPC + "rec_list_experiments").mock(return_value=pg_error(pg_status, code, "boom"))
    response = await call("admin-list-experiments", {})
    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "internal_error", "message": "Internal error; the server log has the details."}
    }
    assert code in caplog.text


async def test_unexpected_exception_is_500_logged_without_key(
    call: Caller, postgrest: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    postgrest.post(RPC + "rec_list_experiments").mock(side_effect=RuntimeError("bug"))
    with caplog.at_level(logging.ERROR, logger="functions"):
        response = await call("admin-list-experiments", {})
    assert response.status_code == 500
    assert "Traceback" not in response.text
    assert "RuntimeError: bug" in caplog.text  # the traceback is in the server log
    assert all(key not in caplog.text for key in ALL_KEYS)


async def test_real_connection_refused_is_503() -> None:
    # No respx here: a real connect to a closed local port.
    from functions.app import create_app
    from tests.functions.conftest import ADMIN, SETTINGS

    settings = type(SETTINGS)(supabase_url="http://127.0.0.1:9", secret_keys=SETTINGS.secret_keys)
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://f") as http:
        response = await http.post("/functions/v1/admin-list-experiments", json={}, headers=ADMIN)
    await app.state.runtime.aclose()
    assert response.status_code == 503
