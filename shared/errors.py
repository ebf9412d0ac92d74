"""Errors the functions answer with, and how upstream failures map onto them.

PostgREST errors carry the SQLSTATE (or a ``PGRST…`` code) but, through
supabase-py, no HTTP status, so the mapping is by code alone.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from postgrest.exceptions import APIError
from pydantic import ValidationError

log = logging.getLogger("functions")

MAX_ERROR_ITEMS = 20
MAX_TEXT = 200

# SQLSTATEs the RPCs raise on purpose, or that a caller's values can trigger.
_CALLER_ERRORS: dict[str, int] = {
    "P0002": 404,  # no such experiment
    "22023": 422,  # invalid argument (unknown variant, bad weights, bad interval)
    "23514": 422,  # check constraint
    "22P02": 422,  # invalid text representation
    "22007": 422,  # invalid datetime format (interval text)
    "22008": 422,  # datetime field overflow
    "22003": 422,  # numeric value out of range
    "23502": 422,  # not null violation
    "22001": 422,  # string too long
    "23505": 409,  # duplicate key
    "55000": 409,  # wrong state for the action
    "42501": 403,  # not allowed
    "P0001": 400,  # a plain RAISE: PostgREST's own mapping
}
_MISSING_FUNCTION = {"PGRST202", "42883", "42P01", "PGRST205"}
_TRANSIENT_PREFIXES = ("08", "53", "57P0", "PGRST00")
_TRANSIENT = {"57014", "40001", "40P01", "55P03"}


class ApiError(Exception):
    """An error answer: HTTP status plus the ``{"error": …}`` body fields."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}


def from_validation_error(exc: ValidationError) -> ApiError:
    """422 with ``[{loc, msg}]``; 400 when pydantic could not even parse the JSON."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    if any(error["type"] == "json_invalid" for error in errors):
        return ApiError(400, "invalid_json", "The request body is not valid JSON.")
    details = [
        {"loc": [_clip(part) for part in error["loc"]], "msg": _clip(error["msg"])}
        for error in errors[:MAX_ERROR_ITEMS]
    ]
    return ApiError(422, "validation_failed", "The request body has invalid fields.", details)


def from_postgrest_error(exc: APIError, fn: str) -> ApiError:
    """Map a PostgREST error; the database's messages are written for people."""
    code = exc.code or ""
    status = _CALLER_ERRORS.get(code) or _class_status(code)
    if status is not None:
        return ApiError(status, code, exc.message or "The database refused the request.", _db_details(exc))
    unavailable = _unavailable(code, fn)
    if unavailable is not None:
        # A database outage answers every request 503: logging each one would
        # bury the outage itself (the local stack logs one line per change).
        level = logging.INFO if _transient(code) else logging.WARNING
        log.log(level, "rpc %s failed upstream: %s %s", fn, code or "-", exc.message)
        return unavailable
    log.error("rpc %s failed with unmapped code %s: %s", fn, code, exc.message)
    return internal_error()


def from_transport_error(exc: httpx.HTTPError, fn: str) -> ApiError:
    """Connection refused, timeout, broken response: the API is unreachable."""
    log.warning("rpc %s: %s talking to PostgREST", fn, type(exc).__name__)
    return ApiError(503, "upstream_unavailable", "The database API could not be reached; retry shortly.")


def internal_error() -> ApiError:
    return ApiError(500, "internal_error", "Internal error; the server log has the details.")


def misconfigured() -> ApiError:
    message = "The functions service is misconfigured; the server log says how."
    return ApiError(503, "misconfigured", message)


def _class_status(code: str) -> int | None:
    """Whole SQLSTATE classes a caller's values can reach: data exceptions, integrity."""
    if code.startswith("22"):
        return 422
    if code.startswith("23"):
        return 409
    return None


def _unavailable(code: str, fn: str) -> ApiError | None:
    if code in _MISSING_FUNCTION:
        return ApiError(
            503,
            code,
            f"The database function {fn} is missing: apply the project's migrations (supabase db push).",
        )
    if code.startswith("PGRST3"):
        return ApiError(
            503,
            code,
            "The functions service is misconfigured: PostgREST "
            "refused its key. Check SUPABASE_SECRET_KEYS / SUPABASE_SERVICE_ROLE_KEY.",
        )
    if _transient(code):
        return ApiError(503, code, "The database is temporarily unavailable; retry shortly.")
    if not code:
        # JSON without a code: an API gateway, not PostgREST (e.g. "Invalid API key").
        return ApiError(
            503,
            "upstream_error",
            "The API gateway refused the request: check SUPABASE_URL and the functions' key.",
        )
    if len(code) == 3 and code.isdigit():
        # supabase-py could not read the error body (a proxy page): the code is the
        # HTTP status (SQLSTATEs have 5 characters); the body is not ours to show.
        return ApiError(
            503,
            "upstream_error",
            f"The database API answered HTTP {code} without a PostgREST error: retry, or check SUPABASE_URL.",
        )
    return None


def _transient(code: str) -> bool:
    return code in _TRANSIENT or code.startswith(_TRANSIENT_PREFIXES)


def _db_details(exc: APIError) -> dict[str, str] | None:
    details = {
        name: _clip(value, 1000)
        for name, value in (("detail", exc.details), ("hint", exc.hint))
        if isinstance(value, str) and value
    }
    return details or None


def _clip(value: Any, limit: int = MAX_TEXT) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "…"
    return value
