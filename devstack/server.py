"""`recsys-exp dev`: the local stack on one port, laid out like a Supabase
project's API URL:

    /rest/v1/rpc/<fn>       the PostgREST-compatible RPC endpoint (devstack.rest)
    /functions/v1/<name>    the admin functions (functions.app), whose own
                            supabase client calls back into /rest/v1 here
    /auth/v1/...            the Supabase Auth stand-in (devstack.auth): sign-in,
                            refresh, user, logout, and the JWKS the functions verify with
    /dashboard/             the admin dashboard (served by functions.app too)
    /                       an index of these URLs;  /health  which part is down (db_monitor)

`build_app()` is that whole ASGI app for a database URL, keys and public
base URL (tests serve it in-process or with uvicorn); `run()` is the command:
Postgres (embedded in <data-dir>/postgres, or --database-url), migrations
and seed, one uvicorn server, and on Ctrl-C / SIGTERM the server stops
first and then Postgres, cleanly, so a restart finds every row.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import signal
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp
from supabase import AsyncClient

from devstack import admins, audit, cli_args, jobs, migrate, pg_owner, postgres
from devstack import keys as local_keys
from devstack.auth import AuthApi
from devstack.auth_keys import SigningKey
from devstack.database import open_database
from devstack.rest import RestApi
from devstack.rest_errors import json_response, request_timeout_body
from functions.app import create_app as create_functions_app
from functions.registry import FUNCTIONS
from shared.body_timeout import BodyTimeoutMiddleware, timeout_from_env
from shared.client import create_client
from shared.config import ConfigError, Settings
from shared.header_timeout import server_options

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def build_app(
    database_url: str,
    keys: local_keys.LocalKeys,
    public_url: str,
    *,
    loopback: bool = False,
    pool_size: int = 10,
    acquire_timeout: float = 5.0,
    signing_key: SigningKey | None = None,
    body_timeout: float | None = None,
) -> Starlette:
    """The local stack as one ASGI app.

    `public_url` is where clients reach this app (http://host:port); the
    functions' supabase client is pointed there with the secret key. With
    `loopback=True` that client instead calls this same app in-process
    (httpx.ASGITransport), for tests that need no socket. The RestApi is
    at `app.state.rest`, the Auth stand-in at `app.state.auth`; without a
    `signing_key` a new one is made for this app.
    `body_timeout` (default: RECSYS_BODY_TIMEOUT, else 10 s) bounds how long a
    request body may take to arrive (408 after).
    """
    public_url = public_url.rstrip("/")
    auth = AuthApi(database_url, keys, public_url, signing_key or SigningKey.generate())
    # /rest/v1 checks the Auth stand-in's ES256 sessions with the verifier the functions use.
    rest = RestApi(
        database_url, keys, pool_size=pool_size, acquire_timeout=acquire_timeout, verifier=auth.verifier
    )
    app: Starlette | None = None

    def this_app() -> ASGIApp:
        assert app is not None  # only called once the app serves requests
        return app

    body_timeout = timeout_from_env() if body_timeout is None else body_timeout
    functions = _functions_app(keys, public_url, this_app if loopback else None, body_timeout)

    async def index(request: Request) -> Response:
        return json_response(_index(public_url))

    async def health(request: Request) -> Response:
        state = rest.monitor.state  # kept current by devstack.db_monitor: no wait here
        return json_response(state.health(), 200 if state.up else 503)

    async def not_found(request: Request, exc: Exception) -> Response:
        return json_response(
            {
                "message": f"No route for {request.url.path}",
                "hint": f"See {public_url}/ for what this server serves.",
            },
            404,
        )

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # Mounted apps' lifespans do not run by themselves: run both here.
        async with rest.running(), functions.router.lifespan_context(functions):
            yield

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/health", health),
            Route("/rest/v1/{path:path}", rest.app),
            Route("/functions/v1/{path:path}", functions),
            Route("/auth/v1/{path:path}", auth.app),
            Route("/dashboard{path:path}", functions),
        ],
        exception_handlers={404: not_found},
        middleware=[Middleware(BodyTimeoutMiddleware, timeout=body_timeout, error_body=request_timeout_body)],
        lifespan=lifespan,
    )
    app.state.rest = rest
    app.state.auth = auth
    return app


def _functions_app(
    keys: local_keys.LocalKeys,
    public_url: str,
    loopback: Callable[[], ASGIApp] | None,
    body_timeout: float,
) -> Starlette:
    settings = Settings(
        supabase_url=public_url,
        secret_keys=(keys.secret,),
        service_role_key=keys.service_role_jwt,
        publishable_keys=(keys.publishable,),
        anon_key=keys.anon_jwt,
        jwt_secret=keys.jwt_secret,
    )
    if loopback is None:
        return create_functions_app(settings, body_timeout=body_timeout)

    async def in_process_client(s: Settings) -> AsyncClient:
        return await create_client(s, transport=httpx.ASGITransport(app=loopback()))

    return create_functions_app(
        settings, in_process_client, lambda: httpx.ASGITransport(app=loopback()), body_timeout=body_timeout
    )


def _index(base: str) -> dict[str, Any]:
    return {
        "service": "recsys-exp local stack (local development only)",
        "api_url": base,
        "rpc": f"{base}/rest/v1/rpc/<function>",
        "functions": {name: f"{base}/functions/v1/{name}" for name in FUNCTIONS},
        "functions_openapi": f"{base}/functions/v1/openapi.json",
        "auth": f"{base}/auth/v1 (token, user, logout, .well-known/jwks.json)",
        "dashboard": f"{base}/dashboard/",
        "health": f"{base}/health",
    }


def run(args: argparse.Namespace) -> int:
    """`recsys-exp dev`; returns the exit status."""
    try:
        keys = local_keys.from_env()
        local_keys.check_exposure(args.host, keys)
        timeout_from_env()  # an unusable RECSYS_BODY_TIMEOUT fails before anything starts
        sock = listen(args.host, args.port)
    except (local_keys.InvalidKeys, ConfigError, OSError) as exc:
        return cli_args.fail(exc)
    # Our own log lines (e.g. the database going down) look like uvicorn's.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s:  %(message)s")
    with sock, _signals_unwind():
        server = open_database(args.database_url, args.data_dir)
        try:
            public_url = base_url(args.host, sock.getsockname()[1])
            applied = migrate.migrate(server.url, seed=True)
            signing_key = SigningKey.load_or_create(args.data_dir)
            demo_admin = admins.ensure_demo_admin(server.url, args.data_dir)
            print(banner(public_url, server, keys, applied, args, demo_admin), flush=True)
            anchors = args.data_dir / audit.DEV_ANCHORS
            with (
                jobs.refreshing_rollups(server.url, getattr(args, "refresh_every", jobs.REFRESH_EVERY)),
                audit.anchoring(server.url, anchors, getattr(args, "anchor_every", audit.ANCHOR_EVERY)),
            ):
                started = serve(build_app(server.url, keys, public_url, signing_key=signing_key), sock)
        finally:
            _stop_database(server)
    print("recsys-exp dev: stopped", flush=True)
    return 0 if started else 1


def listen(host: str, port: int) -> socket.socket:
    """Bind before starting anything, so a busy port fails fast and clearly."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections
    # only when the listening socket says TCP (proto 0 would leave Nagle on,
    # ~40 ms per keep-alive response).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise OSError(f"port {port} on {host} is already in use; pass --port to pick another") from None
        raise OSError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); check --host and --port"
        ) from None
    return sock


def base_url(host: str, port: int) -> str:
    """The URL clients use: a wildcard bind is reached through loopback."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def banner(
    url: str,
    server: postgres.Server,
    keys: local_keys.LocalKeys,
    applied: list[str],
    args: argparse.Namespace,
    demo_admin: tuple[str, str | None] | None = None,
) -> str:
    migrations = f"applied {len(applied)} migration(s)" if applied else "migrations up to date"
    stop = "the server"
    shared_with = pg_owner.others_using(args.data_dir / "postgres") if server.embedded else ()
    if server.embedded is not None and shared_with:
        stop += f" (Postgres keeps running for process {', '.join(map(str, shared_with))})"
    elif server.embedded is not None:
        stop += f", then Postgres (its data stays in {args.data_dir / 'postgres'})"
    return "\n".join(
        [
            f"recsys-exp dev: local stack on {url} ({migrations})",
            "",
            f"  API URL           {url}",
            f"  RPC               {url}/rest/v1/rpc/<function>",
            f"  Functions         {url}/functions/v1/<name>",
            f"  Dashboard         {url}/dashboard/",
            f"  Database          {postgres.redact(server.url)}",
            "",
            "  Keys: LOCAL DEVELOPMENT ONLY (public defaults unless RECSYS_* are set)",
            f"  Publishable key   {keys.publishable}",
            f"  Secret key        {keys.secret}",
            f"  JWT secret        {keys.jwt_secret}",
            f"  anon key          {keys.anon_jwt}",
            f"  service_role key  {keys.service_role_jwt}",
            *_sign_in_lines(url, demo_admin),
            "",
            f"Ctrl-C stops {stop}.",
        ]
    )


def _sign_in_lines(url: str, demo_admin: tuple[str, str | None] | None) -> list[str]:
    if demo_admin is None:
        return []
    email, password = demo_admin
    shown = password or "(set earlier; change it: recsys-exp admin add EMAIL --password ...)"
    return [
        "",
        f"  Auth              {url}/auth/v1 (tokens signed ES256; HS256 with the JWT secret accepted)",
        f"  Sign in as        {email}",
        f"  Password          {shown}",
    ]


def server_config(app: ASGIApp, sock: socket.socket, log_level: str = "info") -> uvicorn.Config:
    """How `recsys-exp dev` (and the tests' stacks) run uvicorn: request heads
    get the same read timeout as bodies, and idle keep-alive connections
    outlast clients' own expiry, so no client reuses one the server is just
    closing (shared.header_timeout)."""
    host, port = sock.getsockname()[:2]  # for uvicorn's "running on" line
    options = server_options(timeout_from_env())
    return uvicorn.Config(app, host=host, port=port, lifespan="on", log_level=log_level, **options)


def serve(app: ASGIApp, sock: socket.socket) -> bool:
    """Run uvicorn on the bound socket until a stop signal; False if it
    never started (e.g. the app's startup failed)."""
    server = uvicorn.Server(server_config(app, sock))
    # uvicorn shuts down gracefully on Ctrl-C / SIGTERM, then hands the signal back.
    with suppress(KeyboardInterrupt):
        asyncio.run(server.serve(sockets=[sock]))
    return bool(server.started)


@contextmanager
def _signals_unwind() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C: it unwinds, so `finally` stops Postgres
    whatever phase we are in (uvicorn handles both itself while serving)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop_database(server: postgres.Server) -> None:
    """Stop an embedded Postgres (pg_ctl stop); a second Ctrl-C must not cut it short."""
    if threading.current_thread() is not threading.main_thread():
        server.stop()
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in _STOP_SIGNALS}
    try:
        server.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
