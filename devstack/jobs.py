"""Background jobs of `recsys-exp dev`: what a hosted project schedules with
pg_cron (README, "Scheduling"). Today one: refreshing the daily rollups."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

REFRESH_EVERY = 300.0  # seconds, `recsys-exp dev --refresh-every`


def refresh_rollups(url: str) -> int:
    """Roll up every finished dirty day, committing after each (so a backlog
    never holds one long transaction); the number of days rebuilt."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("call public.rec_refresh_daily_rollups_by_day(null, null)").fetchone()
    return int(row[0]) if row else 0


def _loop(url: str, every: float, stop: threading.Event) -> None:
    while True:
        try:
            days = refresh_rollups(url)
            if days:
                print(f"recsys-exp dev: rolled up {days} day(s)", flush=True)
        except psycopg.Error as exc:  # the next run retries; reads never depend on it
            print(f"recsys-exp dev: rollup refresh failed: {exc}", file=sys.stderr, flush=True)
        if stop.wait(every):
            return


@contextmanager
def refreshing_rollups(url: str, every: float) -> Iterator[None]:
    """Refresh the rollups now and then every `every` seconds until the
    block exits; `every` <= 0 disables it."""
    if every <= 0:
        yield
        return
    stop = threading.Event()
    thread = threading.Thread(target=_loop, args=(url, every, stop), name="rollup-refresh", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)
