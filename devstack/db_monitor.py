"""Whether Postgres answers, known ahead of any request: the local stack
fails fast while the database is down and heals by itself when it is back.

A `DatabaseMonitor` keeps one connection of its own and runs `select 1` on
it every `interval` seconds (and at once when a request saw a connection
error: `poke()`). On each change between up and down it

- logs ONE line (no traceback), and
- calls its listeners: the RPC endpoint closes its connection pool when
  the database goes down (requests then answer 503 at once, and any request
  waiting for a pooled connection is released instead of waiting out the
  pool timeout) and opens a fresh pool when it is back (so recovery does not
  wait for the pool's own reconnect back-off).

`/health` reads `state` (no query of its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

log = logging.getLogger("devstack.database")

DEFAULT_INTERVAL = 0.5  # seconds between probes
# A probe slower than this counts as "down". Generous: a busy machine must not
# read as an outage; a stopped server refuses connections at once anyway.
DEFAULT_PROBE_TIMEOUT = 3.0
_PROBE_ERRORS = (psycopg.Error, OSError, TimeoutError)

Listener = Callable[[bool], Awaitable[None]]


@dataclass(frozen=True)
class DatabaseState:
    up: bool
    since: float  # time.monotonic() of the last change
    reason: str | None = None  # why it is down, one line

    def health(self) -> dict[str, Any]:
        """The `/health` body: which part is down, and why."""
        if self.up:
            return {"status": "ok", "database": "up"}
        down_for = round(time.monotonic() - self.since, 1)
        return {"status": "degraded", "database": "down", "reason": self.reason, "down_for_s": down_for}


class DatabaseMonitor:
    def __init__(
        self,
        conninfo: str,
        *,
        interval: float = DEFAULT_INTERVAL,
        probe_timeout: float = DEFAULT_PROBE_TIMEOUT,
    ) -> None:
        self.conninfo = conninfo
        self.interval = interval
        self.probe_timeout = probe_timeout
        self.state = DatabaseState(up=False, since=time.monotonic(), reason="not checked yet")
        self._checked = False
        self._listeners: list[Listener] = []
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._wake = asyncio.Event()

    @property
    def up(self) -> bool:
        return self.state.up

    def on_change(self, listener: Listener) -> None:
        """`await listener(up)` on every change (and after the first check)."""
        self._listeners.append(listener)

    def poke(self) -> None:
        """A request saw a connection error: probe now rather than at the next tick."""
        self._wake.set()

    @asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        """Check once (so the first request already knows), then keep watching."""
        await self.check()
        task = asyncio.create_task(self._loop(), name="recsys-exp database monitor")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self._drop_connection()

    async def check(self) -> bool:
        """Probe once and record the outcome; whether the database answered."""
        had_connection = self._conn is not None
        try:
            await self._timed_probe()
        except _PROBE_ERRORS as exc:
            await self._drop_connection()
            if not had_connection:
                await self._record(False, _reason(exc))
                return False
            # Our own connection broke: the server is gone, or only that
            # connection was (terminated, reset, or the server restarted
            # between two probes). A fresh connection tells which.
            try:
                await self._timed_probe()
            except _PROBE_ERRORS as again:
                await self._drop_connection()
                await self._record(False, _reason(again))
                return False
            await self._reset(_reason(exc))
        await self._record(True, None)
        return True

    async def _timed_probe(self) -> None:
        await asyncio.wait_for(self._probe(), self.probe_timeout)

    async def _reset(self, reason: str) -> None:
        """The server answers but dropped our connection: pooled connections may
        be dead too, so listeners start over as after an outage (one line)."""
        if not self.state.up:
            return  # coming back from an outage: _record says so
        log.warning("database connection reset (%s); reconnected", reason)
        for up in (False, True):
            await self._notify(up)

    async def _probe(self) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self.conninfo, autocommit=True, application_name="recsys-exp health"
            )
        await self._conn.execute("select 1")

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            try:
                await self.check()
            except Exception as exc:  # never stop watching; say what broke, on one line
                log.error("database monitor: %s: %s", type(exc).__name__, _reason(exc))

    async def _record(self, up: bool, reason: str | None) -> None:
        first = not self._checked
        self._checked = True
        if not first and up == self.state.up:
            return
        previous = self.state
        self.state = DatabaseState(up=up, since=time.monotonic(), reason=reason)
        if not up:
            log.warning("database unreachable (%s): answering 503 until it is back", reason)
        elif not first:
            log.warning("database reachable again after %.1f s: serving", self.state.since - previous.since)
        await self._notify(up)

    async def _notify(self, up: bool) -> None:
        for listener in self._listeners:
            try:
                await listener(up)
            except Exception as exc:  # a listener's failure must not stop the watching
                log.error("database monitor listener failed: %s: %s", type(exc).__name__, _reason(exc))

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer within the probe timeout"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def quiet_pool_logs() -> None:
    """psycopg_pool logs every failed reconnect attempt (with tracebacks at
    times); with a monitor those say nothing new, so keep only its errors."""
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
