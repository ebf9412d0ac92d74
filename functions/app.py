"""The ASGI app: ``POST /functions/v1/<name>`` for each admin function, and the
admin dashboard at ``/dashboard/`` (functions.dashboard).

``uvicorn functions.app:app`` serves it with settings from the environment;
a host that wants its own settings or client calls ``create_app``.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from functions import dashboard
from functions.openapi import openapi_document
from functions.registry import FUNCTIONS
from functions.runner import refuse_caller, run
from shared.body_timeout import BodyTimeoutMiddleware
from shared.client import ClientFactory, Runtime, TransportFactory
from shared.config import ConfigError, Settings
from shared.errors import ApiError, internal_error
from shared.http import (
    error_response,
    json_response,
    method_not_allowed,
    preflight_response,
)

log = logging.getLogger("functions")

_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_UNKNOWN = ApiError(404, "not_found", "No such function; GET /functions/v1/openapi.json lists them.")


def create_app(
    settings: Settings | None = None,
    client_factory: ClientFactory | None = None,
    auth_transport: TransportFactory | None = None,
    *,
    body_timeout: float | None = None,
) -> Starlette:
    """The functions app. ``settings=None`` reads the env at startup / first request;
    ``body_timeout=None`` reads RECSYS_BODY_TIMEOUT (shared.body_timeout)."""
    runtime = Runtime(settings, client_factory, auth_transport)
    document = openapi_document(FUNCTIONS)

    async def function_endpoint(request: Request) -> Response:
        if request.method == "OPTIONS":
            return preflight_response()
        function = FUNCTIONS.get(request.path_params["name"])
        if function is None or request.method != "POST":
            refused = await refuse_caller(request, runtime)
            if refused:
                return refused
            return error_response(_UNKNOWN) if function is None else method_not_allowed()
        return await run(function, request, runtime)

    async def openapi_endpoint(request: Request) -> Response:
        if request.method == "OPTIONS":
            return preflight_response()
        if request.method not in ("GET", "HEAD"):
            return method_not_allowed()
        return json_response(document)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await runtime.start()
        except ConfigError as exc:
            log.error("functions cannot start: %s", exc)
            raise
        try:
            yield
        finally:
            await runtime.aclose()

    app = Starlette(
        routes=[
            Route("/functions/v1/openapi.json", openapi_endpoint, methods=_METHODS),
            Route("/functions/v1/{name}", function_endpoint, methods=_METHODS),
            *dashboard.routes(runtime),
        ],
        exception_handlers={HTTPException: _http_exception, Exception: _unhandled},
        middleware=[Middleware(BodyTimeoutMiddleware, timeout=body_timeout)],
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    return app


async def _http_exception(request: Request, exc: Exception) -> Response:
    # Router-level misses (paths outside /functions/v1/<name>, odd methods).
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 405:
        return await refuse_caller(request, request.app.state.runtime) or method_not_allowed()
    where = "Functions live at POST /functions/v1/<name>."
    return error_response(ApiError(status, "not_found", where))


async def _unhandled(request: Request, exc: Exception) -> Response:
    return error_response(internal_error())


app = create_app()
