"""A small PostgREST-compatible `/rest/v1`: the part of Supabase's Data API
that the admin functions and a recommender use (RPCs, and inserts into
tables: devstack/rest_tables.py), for the local stack.

What it implements, following PostgREST's documented behaviour:

- `POST /rest/v1/rpc/<fn>` with a JSON object of named arguments; a function
  with one unnamed json/jsonb parameter gets the whole body instead.
  `GET` (and `HEAD`) take the arguments from the query string and run in a
  READ ONLY transaction, so a writing function answers 405 (25006).
- Functions of schema `public`, found in pg_catalog (cached, reloaded once
  on a miss); all required parameters present and every key a parameter,
  else 404 PGRST202; overloads resolved by the same rule (300 PGRST203).
- Result shapes: scalar → bare JSON value; single composite → one object;
  SETOF scalar → array of values; SETOF composite / RETURNS TABLE → array of
  objects (`[]` when empty); void → 204. Postgres serializes (json_agg /
  to_json), so timestamps, intervals and uuids read exactly as PostgREST's.
- Keys and JWTs → role (devstack/rest_auth.py); each request is one
  transaction with `role`, `request.jwt.claims`, `request.method`,
  `request.path`, `request.headers` and `request.cookies` set locally,
  committed on success and rolled back on any error.
- Errors: `{"code", "message", "details", "hint"}` with PostgREST's
  SQLSTATE → HTTP table (devstack/rest_errors.py); 503 PGRST000 at once
  while the database is unreachable (devstack/db_monitor.py watches it and
  swaps the connection pool), 413 past 1 MiB, never a traceback.
- It logs in as `authenticator` (LOGIN NOINHERIT, like PostgREST) and falls
  back to the URL's own user, with a warning, only where authenticator
  cannot log in (e.g. a server that wants a password it does not have).

- `POST /rest/v1/<table>`: inserts, as PostgREST does them, with `select=`
  and `.single()` (devstack/rest_tables.py).
- `Accept: application/vnd.pgrst.object+json` on a set-returning RPC: its one
  row, else 406 PGRST116 (rolled back).

Refused with PostgREST's own codes, never done differently
(devstack/rest_request.py): reading, updating or deleting through
`/rest/v1/<table>`, upsert, filters, `select` and ordering on RPC results,
`Prefer` count/tx/max-affected/timezone/params (400 PGRST127 "Feature not
implemented"); `Accept` types other than JSON and the single object (CSV:
PGRST127; unknown: 406 PGRST107). Not served either: `Accept-Profile`
schemas other than public, `RAISE SQLSTATE 'PGRST'` responses, non-JSON
bodies, the OpenAPI root.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route, request_response
from starlette.types import Receive, Scope, Send

from devstack.db_monitor import DatabaseMonitor, quiet_pool_logs
from devstack.keys import LocalKeys
from devstack.rest_auth import Caller, authenticate
from devstack.rest_catalog import Call, Catalog
from devstack.rest_errors import JSON_TYPE, GatewayError, RestError, first_line, from_database, json_response
from devstack.rest_request import OBJECT_TYPE, Shape, not_implemented, preferences, response_shape, singular
from devstack.rest_tables import Tables
from shared import http
from shared.tokens import TokenVerifier

log = logging.getLogger("devstack.rest")

MAX_BODY_BYTES = 1024 * 1024
AUTHENTICATOR = "authenticator"
SEARCH_PATH = "public, extensions"  # Supabase's exposed schema plus extra_search_path
_RPC_METHODS = "OPTIONS,GET,HEAD,POST"
_RESERVED_PARAMS = {"select", "columns", "on_conflict", "order", "limit", "offset", "and", "or"}
_OBJECT_MEDIA = OBJECT_TYPE + "; charset=utf-8"
# What PostgREST does with each table method, and this stack does not (but POST).
_TABLE_FEATURES = {
    "POST": "",
    "GET": "GET on a table (reads and filters): read through an RPC",
    "HEAD": "HEAD on a table (reads and counts): read through an RPC",
    "PATCH": "PATCH on a table (updates)",
    "DELETE": "DELETE on a table (deletes)",
    "PUT": "PUT on a table (upsert of one row)",
}

# Everything PostgREST sets per request, in one round trip. set_config(...,
# true) is SET LOCAL: it ends with the transaction, so the pooled
# connection goes back as authenticator with no trace of the request.
_LOCALS_SQL = """select pg_catalog.set_config('search_path', %s, true),
       pg_catalog.set_config('role', %s, true),
       pg_catalog.set_config('request.jwt.claims', %s, true),
       pg_catalog.set_config('request.method', %s, true),
       pg_catalog.set_config('request.path', %s, true),
       pg_catalog.set_config('request.headers', %s, true),
       pg_catalog.set_config('request.cookies', %s, true)"""
_READ_ONLY_SQL = _LOCALS_SQL + ",\n       pg_catalog.set_config('transaction_read_only', 'on', true)"


class RestApi:
    """The endpoint and its connection pool. `app` serves `/rest/v1/...`;
    run it through `running()` (or `app`'s own lifespan)."""

    def __init__(
        self,
        database_url: str,
        keys: LocalKeys,
        *,
        pool_size: int = 10,
        acquire_timeout: float = 5.0,
        max_body_bytes: int = MAX_BODY_BYTES,
        verifier: TokenVerifier | None = None,
    ) -> None:
        self.database_url = database_url
        self.keys = keys
        self.verifier = verifier  # ES256/RS256 sessions: the functions' own verifier
        self.pool_size = pool_size
        self.acquire_timeout = acquire_timeout
        self.max_body_bytes = max_body_bytes
        self.catalog = Catalog()
        self.tables = Tables()
        self.login_role: str | None = None  # who the pool logs in as, once started
        self._conninfo = ""
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.monitor = DatabaseMonitor("")  # its conninfo is set by running()
        self.monitor.on_change(self._database_changed)
        self.app = Starlette(
            routes=[
                # As ASGI apps, so every method reaches them and is answered
                # in PostgREST's words (PGRST101/PGRST117), not Starlette's.
                Route("/rest/v1/rpc/{fn}", _AnyMethod(self._rpc)),
                Route("/rest/v1/{table}", _AnyMethod(self._table)),
                Route("/rest/v1/{path:path}", _AnyMethod(self._elsewhere)),
            ],
            middleware=[
                Middleware(
                    CORSMiddleware,
                    allow_origins=["*"],
                    allow_headers=["*"],
                    allow_methods=["GET", "HEAD", "POST", "OPTIONS"],
                )
            ],
            lifespan=lambda _app: self.running(),
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Watch the database (devstack.db_monitor) and keep a connection pool
        open while it answers; close everything after."""
        self._conninfo, self.login_role = await login_conninfo(self.database_url)
        self.monitor.conninfo = self._conninfo
        quiet_pool_logs()
        try:
            async with self.monitor.watching():
                yield
        finally:
            await self._close_pool()
            await asyncio.gather(*self._closing)

    async def _database_changed(self, up: bool) -> None:
        """Up: a fresh pool (no reconnect back-off to sit out). Down: drop the
        pool, so requests, and any waiting for a connection, answer 503 now."""
        if up:
            if self._pool is None:
                pool = self._new_pool()
                await pool.open(wait=False)
                self._pool = pool
        else:
            await self._close_pool()

    def _new_pool(self) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        return AsyncConnectionPool(
            self._conninfo,
            min_size=1,
            max_size=self.pool_size,
            open=False,
            timeout=self.acquire_timeout,
            name="recsys-exp-rest",
            kwargs={"autocommit": True, "application_name": "recsys-exp rest"},
        )

    async def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            # In the background: closing waits for the pool's workers.
            task = asyncio.create_task(pool.close(timeout=2))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _rpc(self, request: Request) -> Response:
        try:
            return await self._call(request)
        except RestError as exc:
            return exc.response()
        except Exception:
            log.exception("rpc %s failed", request.path_params.get("fn"))
            return RestError(
                500, "PGRSTX00", "Internal error in the local RPC endpoint; its log has the details."
            ).response()

    async def _table(self, request: Request) -> Response:
        try:
            return await self._insert(request)
        except RestError as exc:
            return exc.response()
        except Exception:
            log.exception("insert into %s failed", request.path_params.get("table"))
            return RestError(
                500, "PGRSTX00", "Internal error in the local REST endpoint; its log has the details."
            ).response()

    async def _insert(self, request: Request) -> Response:
        """`POST /rest/v1/<table>`: see devstack/rest_tables.py."""
        if request.method == "OPTIONS":
            return Response(status_code=200, headers={"Allow": "OPTIONS,POST"})
        if request.method not in _TABLE_FEATURES:
            raise RestError(405, "PGRST117", f"Unsupported HTTP method: {request.method}")
        caller = await authenticate(request.headers, self.keys, self.verifier)
        if request.method != "POST":
            raise not_implemented(_TABLE_FEATURES[request.method])
        prefer = preferences(request.headers.get("prefer", ""))
        shape = response_shape(request.headers.get("accept", ""))
        text = await self._read_body(request)
        table = request.path_params["table"]
        count, inserted = 0, list[Any]()
        async with self._connection(caller) as conn:
            inserts = await self.tables.inserts(conn, table, text, prefer, dict(request.query_params))
            async with conn.transaction():
                await conn.execute(_LOCALS_SQL, _locals(request, caller, "/" + table))
                for insert in inserts:
                    row = await (await conn.execute(insert.query(), [insert.rows_json])).fetchone()
                    if row:
                        count += row[0]
                        inserted += json.loads(row[1]) if row[1] else []
                if shape is Shape.OBJECT and count != 1:
                    raise singular(count)  # inside the transaction: nothing stays inserted
        if not prefer.representation:
            return Response(status_code=201)
        if shape is Shape.OBJECT:
            return json_response(inserted[0], 201, media_type=_OBJECT_MEDIA)
        return json_response(inserted, 201)

    async def _call(self, request: Request) -> Response:
        method = request.method
        if method == "OPTIONS":
            return Response(status_code=200, headers={"Allow": _RPC_METHODS})
        if method not in ("GET", "HEAD", "POST"):
            raise RestError(405, "PGRST101", f"Cannot use the {method} method on RPC")
        caller = await authenticate(request.headers, self.keys, self.verifier)
        post = method == "POST"
        preferences(request.headers.get("prefer", ""))  # refuses counts, tx, ...
        shape = response_shape(request.headers.get("accept", ""))
        _check_rpc_params(request, post)
        args_json, keys = await self._post_args(request) if post else _query_args(request)
        async with self._connection(caller) as conn:
            call = await self.catalog.resolve(conn, request.path_params["fn"], keys, post)
            async with conn.transaction():
                await conn.execute(
                    _LOCALS_SQL if post else _READ_ONLY_SQL,
                    _locals(request, caller, "/rpc/" + request.path_params["fn"]),
                )
                cursor = await conn.execute(
                    call.query(text_args=not post), [args_json] if call.arg_names or call.whole_body else []
                )
                row = await cursor.fetchone()
                body = row[0] if row else None
                if shape is Shape.OBJECT and call.routine.returns_set:
                    body = _one_of(body)  # inside the transaction: 406 undoes the call
        media = _OBJECT_MEDIA if shape is Shape.OBJECT else JSON_TYPE
        return _respond(call, body, head=method == "HEAD", media_type=media)

    @asynccontextmanager
    async def _connection(self, caller: Caller | None = None) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection; database errors leave as PostgREST-shaped errors."""
        pool = self._pool
        if pool is None:
            raise self._database_down()
        try:
            async with pool.connection() as conn:
                yield conn
        except (PoolTimeout, PoolClosed):
            if pool is not self._pool:  # the monitor closed it: the database went down
                raise self._database_down() from None
            raise await self._unavailable() from None
        except psycopg.OperationalError as exc:
            self.monitor.poke()  # likely the database going away: look now
            raise from_database(exc, caller is not None and caller.authenticated) from None
        except psycopg.Error as exc:
            raise from_database(exc, caller is not None and caller.authenticated) from None

    def _database_down(self) -> RestError:
        state = self.monitor.state
        details = state.reason if not state.up else "the connection pool was reset; retry"
        return RestError(
            503,
            "PGRST000",
            "Database connection error. Retrying the connection.",
            details=details,
            headers={"Retry-After": "1"},
        )

    async def _unavailable(self) -> RestError:
        """Tell "the database is down" (503) from "the pool is busy" (504)."""
        try:
            conn = await psycopg.AsyncConnection.connect(self._conninfo, connect_timeout=2)
        except psycopg.Error as exc:
            return RestError(
                503,
                "PGRST000",
                "Database connection error. Retrying the connection.",
                details=first_line(exc),
            )
        await conn.close()
        return RestError(504, "PGRST003", "Timed out acquiring connection from connection pool.")

    async def _post_args(self, request: Request) -> tuple[str, frozenset[str] | None]:
        """The body as JSON text (handed to Postgres untouched) and its keys;
        keys None when the body is JSON but not an object."""
        text = await self._read_body(request)
        if not text.strip():
            return "{}", frozenset()  # supabase clients send {} but an empty body means the same
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:  # nesting too deep for Python is invalid too
            raise RestError(400, "PGRST102", f"Invalid JSON body: {exc}") from None
        return text, frozenset(value) if isinstance(value, dict) else None

    async def _read_body(self, request: Request) -> str:
        try:
            data = await http.read_body(request, self.max_body_bytes, self._too_large, self._bad_length)
        except ClientDisconnect:
            raise RestError(400, "PGRST102", "The request body was cut short") from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise RestError(400, "PGRST102", "The request body is not valid UTF-8") from None

    @staticmethod
    def _bad_length() -> RestError:
        return RestError(400, "PGRST102", "Content-Length is not a number")

    def _too_large(self, limit: int) -> GatewayError:
        return GatewayError(
            413,
            None,
            "Payload Too Large",
            hint=f"The local stack accepts request bodies up to {limit} bytes.",
        )

    async def _elsewhere(self, request: Request) -> Response:
        return RestError(
            404,
            "PGRST125",
            "Invalid path specified in request URL",
            hint="The local stack serves /rest/v1/rpc/<function> and inserts (POST) into /rest/v1/<table>.",
        ).response()


class _AnyMethod:
    """A request handler as a plain ASGI app: Starlette routes every method to it."""

    def __init__(self, handler: Callable[[Request], Awaitable[Response]]) -> None:
        self._app = request_response(handler)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


def _query_args(request: Request) -> tuple[str, frozenset[str]]:
    """GET arguments: query-string text, one value per name (the last one)."""
    args = dict(request.query_params)
    return json.dumps(args), frozenset(args)


def _locals(request: Request, caller: Caller, path: str) -> list[str]:
    headers = dict(request.headers.items())
    return [
        SEARCH_PATH,
        caller.role,
        caller.claims_json(),
        request.method,
        path,
        json.dumps(headers),
        json.dumps(request.cookies),
    ]


def _respond(call: Call, body: str | None, *, head: bool, media_type: str = JSON_TYPE) -> Response:
    if call.routine.kind == "void":
        return Response(status_code=204)
    content = b"" if head else (body if body is not None else "null").encode()
    return Response(content, 200, media_type=media_type)


def _one_of(body: str | None) -> str:
    """A set-returning function's one row, for `Accept: ...object+json`."""
    rows = json.loads(body) if body else []
    if len(rows) != 1:
        raise singular(len(rows))
    return json.dumps(rows[0])


def _check_rpc_params(request: Request, post: bool) -> None:
    """PostgREST filters, orders and pages RPC results by query parameters;
    this stack does not: on POST any, on GET its reserved ones, are PGRST127."""
    names = set(request.query_params)
    refused = sorted(names if post else names & _RESERVED_PARAMS)
    if refused:
        raise not_implemented(
            f"query parameters {', '.join(refused)} on an RPC (select, filters, ordering, paging)"
        )


async def login_conninfo(url: str) -> tuple[str, str]:
    """Where the pool connects, and as whom: `authenticator` on the URL's
    host, port and database (so a request can never be more than the API
    role it switches to); the URL's own user only when authenticator cannot
    log in and the URL works."""
    params = conninfo_to_dict(url)
    params.pop("password", None)
    params["user"] = AUTHENTICATOR
    as_authenticator = make_conninfo("", **params)
    try:
        return as_authenticator, await _login_user(as_authenticator)
    except psycopg.Error as exc:
        reason = first_line(exc)
    try:
        user = await _login_user(url)
    except psycopg.Error:
        return as_authenticator, AUTHENTICATOR  # unreachable for now: keep the intended login
    log.warning(
        "authenticator cannot log in (%s); the RPC endpoint connects as %s and still "
        "switches to the API role for every request",
        reason,
        user,
    )
    return url, user


async def _login_user(conninfo: str) -> str:
    conn = await psycopg.AsyncConnection.connect(conninfo, connect_timeout=5)
    try:
        return conn.info.user
    finally:
        await conn.close()
