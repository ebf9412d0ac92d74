"""Nothing changes without an audit row (docs/reference.md §5), under both
privilege regimes: no API role updates, deletes or truncates rec_audit_log,
or writes experiments or assignments directly; and triggers keep refusing
even after someone grants the privileges back."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql

from devstack.platform import OWNER
from tests.sql.conftest import ADMIN, create_experiment, raises_sqlstate, scalar, snapshot

API_ROLES = ["anon", "authenticated", "service_role"]
AB = [{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}]
GUARDED = [
    "rec_audit_log",
    "rec_experiments",
    "rec_user_experiment_assignments",
    "rec_metrics",
    "rec_experiment_metrics",
]

# A forged audit row: a real-looking action and actor, backdated.
FORGED_AUDIT_INSERTS = [
    "insert into rec_audit_log (action, actor_id, details, created_at)"
    f" values ('grant_admin', '{ADMIN}', '{{}}', '2020-01-01T00:00:00Z')",
    "insert into rec_audit_log (action) select 'note' where false",  # even one that adds no row
]
AUDIT_LOG_WRITES = [
    *FORGED_AUDIT_INSERTS,
    "update rec_audit_log set action = 'forged'",
    "update rec_audit_log set details = '{}' where false",  # even one that touches no row
    "delete from rec_audit_log",
    "truncate rec_audit_log",
]
EXPERIMENT_WRITES = [
    "insert into rec_experiments (key, variants, salt)"
    " values ('direct', '[{\"name\": \"a\", \"weight\": 1}]', 's')",
    "update rec_experiments set status = 'ended'",
    "delete from rec_experiments",
    "truncate rec_experiments, rec_user_experiment_assignments, rec_experiment_metrics",
]
METRIC_WRITES = [
    "insert into rec_metrics (key, kind) values ('direct', 'user_rate')",
    "update rec_metrics set direction = 'decrease'",
    "delete from rec_metrics",
    "truncate rec_metrics, rec_experiment_metrics",
    "insert into rec_experiment_metrics (experiment_id, metric_id, role, position)"
    " select e.id, m.id, 'goal', 1 from rec_experiments e, rec_metrics m",
    "delete from rec_experiment_metrics",
]
ASSIGNMENT_WRITES = [
    "insert into rec_user_experiment_assignments (experiment_id, user_id, variant)"
    " select id, gen_random_uuid(), 'control' from rec_experiments",
    "update rec_user_experiment_assignments set variant = 'treatment'",
    "delete from rec_user_experiment_assignments",
    "truncate rec_user_experiment_assignments",
]
ALL_WRITES = AUDIT_LOG_WRITES + EXPERIMENT_WRITES + ASSIGNMENT_WRITES + METRIC_WRITES


@pytest.fixture
def state(db: psycopg.Connection) -> dict[str, object]:
    """An active experiment with an automatic and a manual assignment, and their audit rows."""
    create_experiment(db, "exp", AB)
    db.execute("select rec_assign_variant('exp', %s)", [uuid.uuid4()])
    db.execute("select rec_set_user_variant('exp', %s, 'control', %s)", [uuid.uuid4(), ADMIN])
    return snapshot(db)


@contextmanager
def as_role(
    conn: psycopg.Connection, role: str, *, grant_everything: bool = False, sub: uuid.UUID | None = None
) -> Iterator[None]:
    """One rolled-back transaction acting as `role`, as PostgREST would; with
    grant_everything the owner first grants every privilege on the guarded
    tables back to the API roles (a careless later migration)."""
    claims = {"role": role, "sub": str(sub or uuid.uuid4())}
    try:
        with conn.transaction(force_rollback=True):
            if grant_everything:
                conn.execute(
                    sql.SQL("grant all on {} to anon, authenticated, service_role").format(
                        sql.SQL(", ").join(sql.Identifier(t) for t in GUARDED)
                    )
                )
            conn.execute("reset role")
            conn.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
            conn.execute("select set_config('request.jwt.claims', %s, true)", [json.dumps(claims)])
            yield
    finally:
        conn.execute(sql.SQL("set role {}").format(sql.Identifier(OWNER)))


@pytest.mark.parametrize("role", API_ROLES)
def test_api_roles_cannot_change_the_audit_log_experiments_or_assignments(
    db: psycopg.Connection, state: dict[str, object], role: str
) -> None:
    with as_role(db, role):
        for statement in ALL_WRITES:
            with raises_sqlstate(db, "42501"):
                db.execute(statement)  # type: ignore[arg-type]
    assert snapshot(db) == state


@pytest.mark.parametrize("role", API_ROLES)
def test_a_later_grant_does_not_reopen_the_tables(
    db: psycopg.Connection, state: dict[str, object], role: str
) -> None:
    """The triggers refuse on their own, with a message that says why."""
    with as_role(db, role, grant_everything=True):
        assert scalar(db, "select has_table_privilege('rec_audit_log', 'delete')")
        for statement in ALL_WRITES:
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as info, db.transaction():
                db.execute(statement)  # type: ignore[arg-type]
            message = str(info.value)
            assert f"is not allowed for {role}" in message, message
            if statement in FORGED_AUDIT_INSERTS:
                assert "audit rows are written only by the audited rec_* functions" in message
            elif statement in AUDIT_LOG_WRITES:
                assert "the audit log is append-only" in message
            else:
                assert "only through the" in message, message
            assert info.value.diag.message_hint, statement
    assert snapshot(db) == state


def test_a_forged_audit_row_as_service_role_is_refused_and_never_chained(
    db: psycopg.Connection, state: dict[str, object]
) -> None:
    """The secret key's role cannot add an audit row, with or without a grant
    (both privilege regimes run this), so nothing forged reaches the chain."""
    head = db.execute("select * from rec_audit_chain_head()").fetchone()
    for grant_everything in (False, True):
        with as_role(db, "service_role", grant_everything=grant_everything):
            with raises_sqlstate(db, "42501"):
                db.execute(FORGED_AUDIT_INSERTS[0])  # type: ignore[arg-type]
            with (
                raises_sqlstate(db, "42501"),
                db.cursor().copy("copy rec_audit_log (action) from stdin") as cp,
            ):
                cp.write_row(("forged",))
    assert snapshot(db) == state
    assert db.execute("select * from rec_audit_chain_head()").fetchone() == head


def test_audit_rows_get_the_database_clock(db: psycopg.Connection) -> None:
    """Even the owner cannot backdate an audit row by inserting it."""
    db.execute(FORGED_AUDIT_INSERTS[0])
    row = db.execute(
        "select created_at > now() - interval '1 hour', action from rec_audit_log order by id desc limit 1"
    ).fetchone()
    assert row == (True, "grant_admin")


def test_service_role_still_logs_impressions_and_outcomes(db: psycopg.Connection) -> None:
    user = uuid.uuid4()
    with as_role(db, "service_role", grant_everything=True):
        imp = scalar(db, "insert into rec_impressions (user_id) values (%s) returning id", [user])
        db.execute(
            "insert into rec_outcomes (impression_id, user_id, outcome) values (%s, %s, 'click')", [imp, user]
        )
        assert scalar(db, "select count(*) from rec_outcomes") == 1


def test_the_rpcs_still_write_for_api_roles(db: psycopg.Connection) -> None:
    """The audited functions run as the owner, so the guards let them through."""
    create_experiment(db, "exp", AB)
    user, me = uuid.uuid4(), uuid.uuid4()
    with as_role(db, "service_role"):
        db.execute("select rec_set_user_variant('exp', %s, 'treatment', %s)", [user, ADMIN])
        db.execute("select rec_update_experiment('exp', %s, name => 'renamed')", [ADMIN])
        assert scalar(db, "select variant from rec_user_experiment_assignments where user_id = %s", [user])
        assert scalar(db, "select name from rec_experiments") == "renamed"
    with as_role(db, "authenticated", sub=me):
        variant = scalar(db, "select rec_assign_variant('exp', %s)", [me])
        assert variant in {"control", "treatment"}


def test_the_owner_is_not_refused(db: psycopg.Connection) -> None:
    """The owner (Supabase's SQL editor) is outside the guard, as the RPCs need it to be."""
    create_experiment(db, "exp", AB)
    db.execute("update rec_experiments set description = 'by hand'")
    assert scalar(db, "select description from rec_experiments") == "by hand"


def test_no_api_role_may_touch_the_chain_head(db: psycopg.Connection) -> None:
    for role in API_ROLES:
        for priv in ("select", "insert", "update", "delete", "truncate"):
            granted = scalar(
                db, "select has_table_privilege(%s, 'rec_internal.audit_chain_head', %s)", [role, priv]
            )
            assert not granted, (role, priv)
