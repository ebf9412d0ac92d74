"""A read timeout for request heads (request line and headers), for the
uvicorn servers the project starts itself (`recsys-exp dev`, `python -m
functions`).

uvicorn closes idle keep-alive connections, but a connection that never
sends anything, or sends half a request head and stops, stays open for
good: ASGI middleware cannot help, as no request exists yet. This is
uvicorn's own h11 protocol plus one timer: the head must be complete within
`timeout` seconds of the connection opening (or of its first byte after a
response). A half-sent head then gets `408` and the connection is closed;
a connection that sent nothing at all is closed quietly.

Pass `protocol(timeout)` as uvicorn's `http=`, or `server_options(timeout)`
as uvicorn's keyword arguments. The bodies that follow are timed by
shared.body_timeout.

Keep-alive: uvicorn closes a connection idle for `timeout_keep_alive`
seconds, 5 by default, which is also httpx's default idle expiry. With
equal timeouts a client may send its next request on a connection in the
very moment the server closes it; the server's kernel answers that request
with a reset, and the client sees `httpx.ReadError` with no message (under
load, one request in about a hundred that follow a 5 s pause). The server
must be the one to wait longer, so idle connections are always closed by
the client: KEEP_ALIVE_SECONDS is above the idle expiry of common clients
(httpx 5 s, Node's fetch 4 s, aiohttp 15 s) and at the usual gateway
value (Kong's and nginx's 60-75 s).
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

KEEP_ALIVE_SECONDS = 75.0

_BODY = b"The request head did not arrive in time.\n"
_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
)


class HeadTimeoutH11Protocol(H11Protocol):
    head_timeout: float = 10.0
    _head_timer: asyncio.TimerHandle | None = None
    _head_started = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._head_started = True
            if self._head_timer is None:
                self._arm()
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()  # the head is complete: the body timeout takes over

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._head_started = False

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.conn.their_state is not h11.IDLE or self.transport.is_closing():
            return
        if self._head_started:
            self.transport.write(_408)
        self.transport.close()


def protocol(timeout: float) -> type[HeadTimeoutH11Protocol]:
    """uvicorn's `http=` class with this head timeout, in seconds."""
    return type("HeadTimeoutH11Protocol", (HeadTimeoutH11Protocol,), {"head_timeout": timeout})


def server_options(timeout: float) -> dict[str, Any]:
    """uvicorn keyword arguments for the project's servers: this head timeout
    and a keep-alive that outlasts clients' idle expiry (see above)."""
    return {"http": protocol(timeout), "timeout_keep_alive": KEEP_ALIVE_SECONDS}
