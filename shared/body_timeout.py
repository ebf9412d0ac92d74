"""A read timeout for request bodies, as ASGI middleware for every server
the project runs (the functions app and the local stack).

uvicorn times out idle keep-alive connections but not a request whose
headers arrived and whose body never does: such a client would hold its
connection (and a coroutine) forever. Here the whole body must arrive
within `timeout` seconds of the app first asking for it; otherwise the
client gets `408 Request Timeout` with `Connection: close` (so the server
closes the connection) and the app sees the client as gone.

The timeout is `RECSYS_BODY_TIMEOUT` seconds (default 10). Nested apps
that both use the middleware (the functions app inside the local stack)
time the body once: the outermost one does.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.config import ConfigError

ENV = "RECSYS_BODY_TIMEOUT"
DEFAULT_TIMEOUT = 10.0
_MARK = "recsys.body_timeout"

ErrorBody = Callable[[Scope, float], dict[str, object]]


def timeout_from_env(environ: Mapping[str, str] | None = None) -> float:
    """RECSYS_BODY_TIMEOUT in seconds (default 10); ConfigError if unusable."""
    raw = (os.environ if environ is None else environ).get(ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise ConfigError(f"{ENV} must be a positive number of seconds (got {raw!r})")
    return value


def functions_error(scope: Scope, timeout: float) -> dict[str, object]:
    """The functions' error shape."""
    message = f"The request body did not arrive within {timeout:g} s."
    return {"error": {"code": "request_timeout", "message": message}}


class BodyTimeoutMiddleware:
    def __init__(self, app: ASGIApp, timeout: float | None = None, error_body: ErrorBody = functions_error):
        self.app = app
        self.timeout = timeout_from_env() if timeout is None else timeout
        if not self.timeout > 0:
            raise ConfigError("the body timeout must be a positive number of seconds")
        self.error_body = error_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get(_MARK):
            await self.app(scope, receive, send)
            return
        scope[_MARK] = True
        await _TimedRequest(self, scope, receive, send).run()


class _TimedRequest:
    def __init__(self, owner: BodyTimeoutMiddleware, scope: Scope, receive: Receive, send: Send) -> None:
        self.owner = owner
        self.scope = scope
        self._receive = receive
        self._send = send
        self.deadline: float | None = None
        self.body_done = False
        self.timed_out = False
        self.response_started = False

    async def run(self) -> None:
        await self.owner.app(self.scope, self.receive, self.send)

    async def receive(self) -> Message:
        if self.timed_out:
            return {"type": "http.disconnect"}
        if self.body_done:
            return await self._receive()  # waiting for a disconnect is not a body read
        loop = asyncio.get_running_loop()
        if self.deadline is None:
            self.deadline = loop.time() + self.owner.timeout
        try:
            async with asyncio.timeout_at(self.deadline):
                message = await self._receive()
        except TimeoutError:
            await self._time_out()
            return {"type": "http.disconnect"}
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.body_done = True
        return message

    async def send(self, message: Message) -> None:
        if self.timed_out:
            return  # the client already has its 408; whatever the app answers now goes nowhere
        if message["type"] == "http.response.start":
            self.response_started = True
        await self._send(message)

    async def _time_out(self) -> None:
        self.timed_out = True
        if self.response_started:
            return
        body = json.dumps(self.owner.error_body(self.scope, self.owner.timeout)).encode()
        await self._send(
            {
                "type": "http.response.start",
                "status": 408,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                    (b"access-control-allow-origin", b"*"),
                ],
            }
        )
        await self._send({"type": "http.response.body", "body": body})
