"""A client that sends its headers and then stalls its body gets 408 and a
closed connection after the body timeout, on both servers the project
runs: the functions app on its own and the local stack (both its RPC
endpoint and the functions it mounts). Raw sockets, a short timeout."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn
from starlette.types import ASGIApp

from devstack.keys import LocalKeys
from devstack.server import base_url, build_app, listen
from functions.app import create_app
from shared import body_timeout, header_timeout
from shared.config import ConfigError
from tests.functions.conftest import SECRET_KEY, SETTINGS
from tests.support.stack import poll

TIMEOUT = 0.3  # seconds: the server's body timeout in these tests
CLIENT_LIMIT = 20.0  # how long the client waits at most; far beyond TIMEOUT


@contextmanager
def serving(app: ASGIApp, head_timeout: float = TIMEOUT) -> Iterator[tuple[str, int]]:
    """`app` on uvicorn as the project serves it: heads timed by shared.header_timeout."""
    sock = listen("127.0.0.1", 0)
    http = header_timeout.protocol(head_timeout)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", http=http))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    poll(lambda: server.started or not thread.is_alive(), what="uvicorn started")
    assert server.started
    try:
        yield sock.getsockname()[:2]
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def stall(address: tuple[str, int], path: str, apikey: str, sent_body: bytes = b"") -> socket.socket:
    """Headers promising 100 bytes of body, then only `sent_body`."""
    conn = socket.create_connection(address, timeout=CLIENT_LIMIT)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: test\r\napikey: {apikey}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    conn.sendall(head.encode() + sent_body)
    return conn


def read_until_closed(conn: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    with conn:
        while chunk := conn.recv(65536):
            data += chunk
    return data


def assert_408_and_closed(answer: bytes, shape: bytes) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    assert b"connection: close" in head.lower(), head
    assert shape in body and b"did not arrive within 0.3 s" in body, body


def test_functions_app_times_out_a_stalled_body() -> None:
    with serving(create_app(SETTINGS, body_timeout=TIMEOUT)) as address:
        path = "/functions/v1/admin-list-experiments"
        quiet = stall(address, path, SECRET_KEY)
        partial = stall(address, path, SECRET_KEY, b'{"key": ')
        assert_408_and_closed(read_until_closed(quiet), b'"request_timeout"')
        assert_408_and_closed(read_until_closed(partial), b'"request_timeout"')


def test_local_stack_times_out_stalled_bodies_on_rpc_and_functions(stack_db: str) -> None:
    keys = LocalKeys()
    sock = listen("127.0.0.1", 0)
    url = base_url("127.0.0.1", sock.getsockname()[1])
    sock.close()
    with serving(build_app(stack_db, keys, url, body_timeout=TIMEOUT)) as address:
        many = [stall(address, "/rest/v1/rpc/rec_list_experiments", keys.secret) for _ in range(20)]
        function = stall(address, "/functions/v1/admin-list-experiments", keys.secret, b"{")
        for conn in many:
            assert_408_and_closed(read_until_closed(conn), b'"hint"')  # PostgREST's error shape
        assert_408_and_closed(read_until_closed(function), b'"request_timeout"')
        with socket.create_connection(address, timeout=CLIENT_LIMIT) as fine:
            fine.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            assert read_until_closed(fine).startswith(b"HTTP/1.1 200 ")  # the server itself is fine


def test_a_body_that_arrives_in_time_is_served() -> None:
    with serving(create_app(SETTINGS, body_timeout=5.0)) as address:
        conn = socket.create_connection(address, timeout=CLIENT_LIMIT)
        conn.sendall(
            b"POST /functions/v1/nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\napikey: "
            + SECRET_KEY.encode()
            + b"\r\nContent-Length: 2\r\n\r\n{}"
        )
        assert read_until_closed(conn).startswith(b"HTTP/1.1 404 ")


def test_a_stalled_or_missing_request_head_is_closed_too() -> None:
    """Half a request head: 408 and closed. Nothing at all: closed quietly.
    After a complete keep-alive request, the next head is timed again."""
    with serving(create_app(SETTINGS, body_timeout=TIMEOUT)) as address:
        half = socket.create_connection(address, timeout=CLIENT_LIMIT)
        half.sendall(b"POST /functions/v1/admin-list-experiments HTTP/1.1\r\nHost: t\r\n")
        silent = socket.create_connection(address, timeout=CLIENT_LIMIT)
        reused = socket.create_connection(address, timeout=CLIENT_LIMIT)
        reused.sendall(b"GET /functions/v1/openapi.json HTTP/1.1\r\nHost: t\r\n\r\n")
        first = reused.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 "), first
        reused.sendall(b"GET /functions/v1/openapi.json HTTP/1.1\r\nHo")  # and stalls
        answer = read_until_closed(half)
        assert answer.startswith(b"HTTP/1.1 408 ") and b"connection: close" in answer.lower(), answer
        assert read_until_closed(silent) == b""
        assert b"HTTP/1.1 408 " in read_until_closed(reused)  # after the rest of the first answer


def test_timeout_from_env() -> None:
    assert body_timeout.timeout_from_env({}) == body_timeout.DEFAULT_TIMEOUT == 10.0
    assert body_timeout.timeout_from_env({"RECSYS_BODY_TIMEOUT": "2.5"}) == 2.5
    for bad in ("0", "-1", "soon", "inf", "nan"):
        with pytest.raises(ConfigError, match="RECSYS_BODY_TIMEOUT"):
            body_timeout.timeout_from_env({"RECSYS_BODY_TIMEOUT": bad})
