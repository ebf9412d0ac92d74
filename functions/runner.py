"""The one path every admin function takes: check the caller → read and
validate the body → call → answer ``200 {"data": …}``.

There is no other way to run a function, so none can skip the caller check.
Every failure becomes a JSON error with CORS headers; only bugs become 500.

A signed-in person's token is verified first (no round trip); their role and
session are then looked up in one RPC. For a read that a viewer may make,
that lookup runs concurrently with the read and the read's answer is only
returned once the lookup has admitted the caller (a refusal wins over
anything the read found); a write waits for the lookup before it starts.
Viewers get answers with salts redacted (shared.redact).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from functions.registry import Function
from shared.auth import VIEWER_READS_ONLY, Caller, admit, authenticate, authorize
from shared.client import Runtime
from shared.config import ConfigError
from shared.errors import ApiError, internal_error, misconfigured
from shared.http import error_response, ok, read_model
from shared.redact import redact_salts
from shared.tokens import Session

log = logging.getLogger("functions")


async def run(function: Function, request: Request, runtime: Runtime) -> Response:
    try:
        who = await authenticate(request.headers, runtime.settings, runtime.tokens)
        if isinstance(who, Session) and not function.writes and not function.with_caller:
            return ok(await _read_while_admitting(function, request, runtime, who))
        caller = who if isinstance(who, Caller) else await admit(who, runtime.admin_role)
        if function.writes and not caller.may_write:
            raise ApiError(403, "forbidden", VIEWER_READS_ONLY)
        return ok(_shown_to(caller, await _call(function, request, runtime, caller)))
    except ApiError as exc:
        return error_response(exc)
    except ConfigError as exc:
        log.error("functions misconfigured: %s", exc)
        return error_response(misconfigured())
    except ClientDisconnect:
        return error_response(ApiError(400, "client_disconnected", "The body was cut short."))
    except Exception:
        log.exception("function %s failed", function.name)
        return error_response(internal_error())


async def _call(function: Function, request: Request, runtime: Runtime, caller: Caller) -> Any:
    body = await read_model(request, function.body, runtime.settings.max_body_bytes, actor=caller.user_id)
    if function.with_caller:
        return await function.call(runtime, body, caller)
    return await function.call(runtime, body)


async def _read_while_admitting(function: Function, request: Request, runtime: Runtime, who: Session) -> Any:
    """A read, concurrently with the role/session lookup; the lookup's verdict
    comes first: a refused caller gets the refusal, never the read's answer
    or its error (not even a malformed-body one)."""
    lookup = asyncio.ensure_future(admit(who, runtime.admin_role))
    work = asyncio.ensure_future(_call(function, request, runtime, Caller("viewer", who.user_id, who.email)))
    try:
        caller = await lookup
    except BaseException:
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        raise
    return _shown_to(caller, await work)


def _shown_to(caller: Caller, data: Any) -> Any:
    return redact_salts(data) if caller.role == "viewer" else data


async def check(request: Request, runtime: Runtime) -> Caller:
    """A service-level key, or a verified session of someone in rec_admins."""
    return await authorize(request.headers, runtime.settings, runtime.tokens, runtime.admin_role)


async def refuse_caller(request: Request, runtime: Runtime) -> Response | None:
    """For answers that run no function (404, 405): the caller check still comes first."""
    try:
        await check(request, runtime)
    except ApiError as exc:
        return error_response(exc)
    except ConfigError:
        return error_response(misconfigured())
    return None
