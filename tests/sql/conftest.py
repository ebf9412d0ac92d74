"""A freshly migrated database per privilege regime (docs/reference.md §5): every
SQL test runs twice, once with Supabase's legacy default grants and once
with none. Tests connect as superuser and act as the roles they test."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import sql

from devstack import migrate, postgres
from devstack.platform import OWNER, Regime

TABLES = (
    "rec_audit_log",
    "rec_experiment_metrics",
    "rec_outcomes",
    "rec_impressions",
    "rec_user_experiment_assignments",
    "rec_experiments",
    "rec_layers",
)
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
        # DELETE, children first: on these small tables it is several times
        # faster than TRUNCATE, which matters at hundreds of tests.
        for table in (*TABLES, "auth.users"):
            conn.execute(sql.SQL("delete from {}").format(sql.Identifier(*table.split("."))))
        conn.execute(
            "delete from rec_metrics"
            " where key not in ('engagement_rate', 'outcomes_per_user', 'engaged_user_rate')"
        )
        # an empty log is an empty chain
        conn.execute("update rec_internal.audit_chain_head set seq = 0, hash = null")
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


def create_experiment(
    conn: psycopg.Connection,
    key: str,
    variants: list[dict[str, Any]],
    *,
    active: bool = True,
    salt: str | None = None,
    interval: str | None = None,
) -> dict[str, Any]:
    """Create (and by default activate) an experiment through the RPCs."""
    conn.execute(
        "select rec_create_experiment(%s, %s::jsonb, %s, salt => %s, salt_rotation_interval => %s::interval)",
        [key, json.dumps(variants), ADMIN, salt, interval],
    )
    if active:
        conn.execute("select rec_activate_experiment(%s, %s)", [key, ADMIN])
    row = conn.execute("select to_jsonb(e) from rec_experiments e where key = %s", [key]).fetchone()
    assert row is not None
    return dict(row[0])


def audit_count(conn: psycopg.Connection) -> int:
    row = conn.execute("select count(*) from rec_audit_log").fetchone()
    assert row is not None
    return int(row[0])


# --- helpers shared by the SQL tests ---------------------------------------


def sqlstate_of(call: Any) -> str | None:
    """Run `call()`; the SQLSTATE it raised, or None if it succeeded."""
    try:
        call()
    except psycopg.Error as exc:
        return exc.sqlstate
    return None


@contextmanager
def raises_sqlstate(conn: psycopg.Connection, code: str) -> Iterator[None]:
    """The block must fail with this SQLSTATE. It runs in its own
    transaction (a savepoint inside acting_as), so the connection stays
    usable and whatever the block did is rolled back."""
    with pytest.raises(psycopg.Error) as info, conn.transaction():
        yield
    assert info.value.sqlstate == code, f"expected SQLSTATE {code}, got {info.value.sqlstate}: {info.value}"


def scalar(conn: psycopg.Connection, query: str | sql.Composed, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def uuids(n: int, seed: int) -> list[uuid.UUID]:
    """n reproducible random v4 uuids."""
    rng = random.Random(seed)
    return [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(n)]


def experiment(conn: psycopg.Connection, key: str) -> dict[str, Any]:
    row = conn.execute("select to_jsonb(e) from rec_experiments e where key = %s", [key]).fetchone()
    assert row is not None, f"no experiment {key}"
    return dict(row[0])


def experiment_as_reported(conn: psycopg.Connection, key: str) -> dict[str, Any]:
    """The experiment as the RPCs report it: layer by key, range as [from, to]."""
    row = conn.execute(
        "select rec_internal.experiment_json(e) from rec_experiments e where key = %s", [key]
    ).fetchone()
    assert row is not None, f"no experiment {key}"
    return dict(row[0])


def assignments(conn: psycopg.Connection, key: str) -> dict[uuid.UUID, tuple[str, str, Any]]:
    """{user_id: (variant, mode, assigned_by)} of one experiment."""
    rows = conn.execute(
        "select a.user_id, a.variant, a.assignment_mode, a.assigned_by"
        "  from rec_user_experiment_assignments a join rec_experiments e on e.id = a.experiment_id"
        " where e.key = %s",
        [key],
    ).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def snapshot(conn: psycopg.Connection) -> dict[str, Any]:
    """Everything an admin action could change, to prove a refused one changed nothing."""

    def rows(query: str) -> list[Any]:
        return [r[0] for r in conn.execute(query).fetchall()]

    return {
        "experiments": rows("select to_jsonb(e) from rec_experiments e order by key"),
        "assignments": rows(
            "select to_jsonb(a) from rec_user_experiment_assignments a order by experiment_id, user_id"
        ),
        "audit": rows("select to_jsonb(l) from rec_audit_log l order by id"),
        "metrics": rows("select to_jsonb(m) from rec_metrics m order by key"),
        "experiment_metrics": rows(
            "select to_jsonb(x) from rec_experiment_metrics x order by experiment_id, metric_id"
        ),
    }


def last_audit(conn: psycopg.Connection) -> dict[str, Any]:
    row = conn.execute("select to_jsonb(l) from rec_audit_log l order by id desc limit 1").fetchone()
    assert row is not None, "no audit row"
    return dict(row[0])


def connect_as_owner(db_url: str) -> psycopg.Connection:
    """An extra autocommit connection acting as the migration owner."""
    conn = psycopg.connect(db_url, autocommit=True)
    conn.execute(sql.SQL("set role {}").format(sql.Identifier(OWNER)))
    return conn
