"""The one path every admin function takes: check the caller → read and
validate the body → call → answer ``200 {"data": …}``.

There is no other way to run a function, so none can skip the caller check.
Every failure becomes a JSON error with CORS headers; only bugs become 500.
"""

from __future__ import annotations

import logging

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from functions.registry import Function
from shared.auth import VIEWER_READS_ONLY, Caller, authorize
from shared.client import Runtime
from shared.config import ConfigError
from shared.errors import ApiError, internal_error, misconfigured
from shared.http import error_response, ok, read_model

log = logging.getLogger("functions")


async def run(function: Function, request: Request, runtime: Runtime) -> Response:
    try:
        settings = runtime.settings
        caller = await check(request, runtime)
        if function.writes and not caller.may_write:
            raise ApiError(403, "forbidden", VIEWER_READS_ONLY)
        body = await read_model(request, function.body, settings.max_body_bytes, actor=caller.user_id)
        if function.with_caller:
            return ok(await function.call(runtime, body, caller))
        return ok(await function.call(runtime, body))
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
