"""PostgREST's error responses: the SQLSTATE → HTTP status table and the
`{"code", "message", "details", "hint"}` body.

The table follows PostgREST's own `mapSQLtoHTTP` (src/PostgREST/Error.hs)
and its documented "HTTP Status Codes" list; note that it sends 500 for the
PL/pgSQL class `P0*` other than P0001 (so P0002 no_data_found), for `55*`
and for `40*`, and 400 for anything unlisted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from starlette.responses import Response

from shared import http

JSON_TYPE = "application/json; charset=utf-8"

# Exact codes first, then whole classes (the first two characters).
_EXACT: dict[str, int] = {
    "23503": 409,  # foreign_key_violation
    "23505": 409,  # unique_violation
    "25006": 405,  # read_only_sql_transaction: a GET that tried to write
    "53400": 500,  # configuration_limit_exceeded
    "57P01": 503,  # admin_shutdown: the database is going away
    "P0001": 400,  # a plain RAISE
    "42883": 404,  # undefined_function
    "42P01": 404,  # undefined_table
    "42P17": 500,  # invalid_object_definition (infinite recursion)
}
_CLASSES: dict[str, int] = {
    "08": 503,
    "09": 500,
    "0L": 403,
    "0P": 403,
    "25": 500,
    "28": 403,
    "2D": 500,
    "38": 500,
    "39": 500,
    "3B": 500,
    "40": 500,
    "53": 503,
    "54": 500,
    "55": 500,
    "57": 500,
    "58": 500,
    "F0": 500,
    "HV": 500,
    "P0": 500,
    "XX": 500,
}


class RestError(Exception):
    """An error answer in PostgREST's shape."""

    def __init__(
        self,
        status: int,
        code: str | None,
        message: str,
        details: str | None = None,
        hint: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.hint = hint
        self.headers = dict(headers or {})
        if status == 401:
            self.headers.setdefault("WWW-Authenticate", "Bearer")

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "details": self.details, "hint": self.hint, "message": self.message}

    def response(self) -> Response:
        return json_response(self.body(), self.status, self.headers)


class GatewayError(RestError):
    """Refused before PostgREST, as Supabase's API gateway refuses: its body
    has only `message` and `hint`."""

    def body(self) -> dict[str, Any]:
        return {"message": self.message, "hint": self.hint}


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None, media_type: str = JSON_TYPE
) -> Response:
    """shared.http's JSON response as PostgREST sends it: charset, no CORS
    headers (the local stack's CORS middleware adds them)."""
    return http.json_response(body, status, headers, cors=False, media_type=media_type)


def http_status(sqlstate: str, message: str, authenticated: bool) -> int:
    """PostgREST's status for a database error. `authenticated` means the
    request ran as any role but anon (PostgREST: role /= db-anon-role)."""
    if sqlstate in _EXACT:
        return _EXACT[sqlstate]
    if sqlstate == "42501":
        return 403 if authenticated else 401
    if sqlstate == "21000":  # pg-safeupdate's refusal is the caller's fault
        return 400 if message.endswith("requires a WHERE clause") else 500
    if sqlstate == "22023":  # a JWT naming a role that does not exist
        return 401 if message.startswith("role") and message.endswith("does not exist") else 400
    if sqlstate.startswith("PT"):
        return _pt_status(sqlstate[2:])
    return _CLASSES.get(sqlstate[:2], 400)


def _pt_status(digits: str) -> int:
    """`RAISE SQLSTATE 'PT402'` asks for HTTP 402."""
    if digits.isdigit() and 100 <= int(digits) <= 599:
        return int(digits)
    return 500


def from_database(exc: psycopg.Error, authenticated: bool) -> RestError:
    """The Postgres error as PostgREST forwards it; a lost connection is a 503."""
    diag = exc.diag
    if not diag.sqlstate:
        return RestError(
            503, "PGRST001", "Database client error. Retrying the connection.", details=first_line(exc)
        )
    message = diag.message_primary or ""
    return RestError(
        http_status(diag.sqlstate, message, authenticated),
        diag.sqlstate,
        message,
        diag.message_detail,
        diag.message_hint,
    )


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def request_timeout_body(scope: Mapping[str, Any], timeout: float) -> dict[str, Any]:
    """The local stack's 408 for a stalled body (shared.body_timeout): PostgREST's
    shape under /rest/, the functions' shape elsewhere."""
    message = f"The request body did not arrive within {timeout:g} s."
    if str(scope.get("path", "")).startswith("/rest/"):
        return {"code": None, "details": None, "hint": "Send the whole body promptly.", "message": message}
    return {"error": {"code": "request_timeout", "message": message}}
