"""A freshly migrated database per privilege regime (CONTRACT.md §5): every
SQL test runs twice, once with Supabase's legacy default grants and once
with none. Tests connect as superuser and act as the roles they test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import sql

from devstack import migrate, postgres
from devstack.platform import OWNER, Regime

TABLES = ("rec_audit_log", "rec_outcomes", "rec_impressions",
          "rec_user_experiment_assignments", "rec_experiments")
ADMIN = "00000000-0000-4000-8000-00000000ad01"


@pytest.fixture(scope="session", params=list(Regime), ids=lambda r: r.value)
def db_url(request: pytest.FixtureRequest, pg_server: postgres.Server) -> Iterator[str]:
    with postgres.fresh_database(pg_server) as url:
        migrate.migrate(url, regime=request.param)
        yield url


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection acting as the migration owner (Supabase's
    `postgres`), on empty tables."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("truncate {} , auth.users restart identity cascade").format(
            sql.SQL(", ").join(sql.Identifier(t) for t in TABLES)))
        conn.execute(sql.SQL("set role {}").format(sql.Identifier(OWNER)))
        yield conn


@contextmanager
def acting_as(conn: psycopg.Connection, role: str, sub: str | None = None) -> Iterator[None]:
    """Run the block as PostgREST would for a request with this JWT role:
    one transaction, SET LOCAL ROLE and request.jwt.claims. Rolls back."""
    claims: dict[str, Any] = {"role": role}
    if sub:
        claims["sub"] = sub
    conn.execute("reset role")
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
            conn.execute("select set_config('request.jwt.claims', %s, true)", [json.dumps(claims)])
            yield
    finally:
        conn.execute(sql.SQL("set role {}").format(sql.Identifier(OWNER)))


def create_experiment(conn: psycopg.Connection, key: str, variants: list[dict[str, Any]],
                      *, active: bool = True, salt: str | None = None,
                      interval: str | None = None) -> dict[str, Any]:
    """Create (and by default activate) an experiment through the RPCs."""
    conn.execute(
        "select rec_create_experiment(%s, %s::jsonb, %s, salt => %s,"
        " salt_rotation_interval => %s::interval)",
        [key, json.dumps(variants), ADMIN, salt, interval])
    if active:
        conn.execute("select rec_activate_experiment(%s, %s)", [key, ADMIN])
    row = conn.execute("select to_jsonb(e) from rec_experiments e where key = %s", [key]).fetchone()
    assert row is not None
    return dict(row[0])


def audit_count(conn: psycopg.Connection) -> int:
    row = conn.execute("select count(*) from rec_audit_log").fetchone()
    assert row is not None
    return int(row[0])
