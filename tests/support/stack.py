"""The local stack served for tests: `devstack.server.build_app` on a free
port, uvicorn in a background thread, stopped (and checked stopped) after.
Used by tests/stack, tests/e2e, the demo and the example tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import uvicorn
from starlette.applications import Starlette

from devstack.keys import LocalKeys
from devstack.rest import RestApi
from devstack.server import base_url, build_app, listen, server_config

KEYS = LocalKeys()  # the Supabase CLI's public local defaults
READY_LIMIT = 30.0  # seconds: bounded polling, never a fixed sleep


@dataclass
class Stack:
    url: str
    db_url: str
    keys: LocalKeys
    app: Starlette
    server: uvicorn.Server

    @property
    def rest(self) -> RestApi:
        rest: RestApi = self.app.state.rest
        return rest

    def sql(self, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run SQL as superuser, committed; the rows if it returns any."""
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []


def poll(ready: Callable[[], bool], limit: float = READY_LIMIT, what: str = "condition") -> None:
    deadline = time.monotonic() + limit
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {limit} s")
        time.sleep(0.05)


@contextmanager
def serve_stack(db_url: str, keys: LocalKeys = KEYS, **app_options: Any) -> Iterator[Stack]:
    """build_app on a free port, uvicorn in a background thread; stopped after."""
    sock = listen("127.0.0.1", 0)
    url = base_url("127.0.0.1", sock.getsockname()[1])
    app = build_app(db_url, keys, url, **app_options)
    server = uvicorn.Server(server_config(app, sock, log_level="warning"))  # as `recsys-exp dev` runs it
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        poll(lambda: server.started or not thread.is_alive(), what="uvicorn start")
        assert server.started, "the stack did not start"
        yield Stack(url, db_url, keys, app, server)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        assert not thread.is_alive(), "the stack did not stop"


def key_headers(key: str, bearer: str | None = None) -> dict[str, str]:
    headers = {"apikey": key}
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    return headers
