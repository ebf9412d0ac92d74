"""JSON and CORS helpers, and reading a size-limited JSON body into a model."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from shared.errors import ApiError, from_validation_error

# What Supabase's edge-function examples send, so browser dashboards work the same.
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "authorization, x-client-info, apikey, content-type",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
}
ALLOWED_METHODS = "POST, OPTIONS"

ModelT = TypeVar("ModelT", bound=BaseModel)


def json_response(
    payload: Any,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    *,
    cors: bool = True,
    media_type: str | None = None,
) -> Response:
    """Compact JSON; with the functions' CORS headers unless `cors=False`."""
    sent = {**(CORS_HEADERS if cors else {}), **(headers or {})}
    return JSONResponse(payload, status_code=status, headers=sent, media_type=media_type)


def ok(data: Any) -> Response:
    return json_response({"data": data})


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> Response:
    return json_response(error.body(), error.status, headers)


def preflight_response() -> Response:
    return PlainTextResponse("ok", headers=CORS_HEADERS)


def method_not_allowed() -> Response:
    error = ApiError(405, "method_not_allowed", "Use POST with a JSON body.")
    return error_response(error, {"Allow": ALLOWED_METHODS})


ACTOR_MISMATCH = (
    "admin_id must be your own user id when you are signed in "
    "(or leave it out: it is taken from your session)."
)


async def read_model(
    request: Request, model: type[ModelT], limit: int, *, actor: str | None = None
) -> ModelT:
    """Body → validated model, or an ApiError (413, 400, 403 or 422).

    ``actor`` is a signed-in caller's user id: it becomes ``admin_id`` when
    the body leaves it out, and a different ``admin_id`` is refused (403).
    """
    text = _decode(await read_body(request, limit))
    value = _require_json_object(text)
    if actor is not None and "admin_id" in model.model_fields:
        given = value.setdefault("admin_id", actor)
        if not isinstance(given, str) or given.lower() != actor.lower():
            raise ApiError(403, "forbidden", ACTOR_MISMATCH)
        text = json.dumps(value)
    try:
        return model.model_validate_json(text, strict=True)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


async def read_body(
    request: Request,
    limit: int,
    too_large: Callable[[int], Exception] | None = None,
    bad_length: Callable[[], Exception] | None = None,
) -> bytes:
    """Read at most ``limit`` bytes; Content-Length may be absent or lie, so count too.
    Raises ``too_large(limit)`` / ``bad_length()`` (the functions' ApiErrors by default)."""
    too_large = too_large or _too_large
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise (bad_length or _bad_length)()
        if int(declared) > limit:
            raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _bad_length() -> ApiError:
    return ApiError(400, "bad_request", "Content-Length is not a number.")


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"The request body is larger than {limit} bytes.")


def _decode(raw: bytes) -> str:
    # No body at all reads as an empty object: `functions.invoke(name)` sends none.
    if not raw.strip():
        return "{}"
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_json", "The request body is not UTF-8 JSON.") from None


def _require_json_object(text: str) -> dict[str, Any]:
    """400 unless the text is one JSON object without duplicate keys or NaN."""
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise ApiError(400, "invalid_json", "The request body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_json", "The request body must be a JSON object.")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two values for one field are ambiguous: refuse rather than pick one.
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
