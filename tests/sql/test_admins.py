"""rec_admins and its RPCs: who may use the admin functions signed in.
Runs under both privilege regimes, like every SQL test."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from devstack.platform import OWNER
from tests.sql.conftest import ADMIN, acting_as, audit_count, last_audit, raises_sqlstate, scalar, uuids


def dict_rows(conn: psycopg.Connection, query: str, params: Any = None) -> list[dict[str, Any]]:
    cur = conn.execute(query, params)
    assert cur.description is not None
    names = [d.name for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


@pytest.fixture
def people(db: psycopg.Connection) -> list[uuid.UUID]:
    """Three auth.users rows, written as the platform (superuser) does."""
    ids = uuids(3, seed=110)
    db.execute("reset role")
    try:
        for n, user in enumerate(ids):
            db.execute("insert into auth.users (id, email) values (%s, %s)", [user, f"p{n}@example.com"])
    finally:
        db.execute(f"set role {OWNER}")
    return ids


def test_grant_change_list_revoke_each_audited(db: psycopg.Connection, people: list[uuid.UUID]) -> None:
    a, b, _ = people
    row = scalar(db, "select rec_grant_admin(%s, 'viewer', %s)", [a, ADMIN])
    assert row["user_id"] == str(a) and row["role"] == "viewer" and row["granted_by"] == ADMIN
    entry = last_audit(db)
    assert (entry["action"], entry["actor_id"], entry["experiment_id"]) == ("grant_admin", ADMIN, None)
    assert entry["details"]["user_id"] == str(a) and entry["details"]["before"] is None

    promoted = scalar(db, "select rec_grant_admin(%s, 'admin', %s)", [a, str(b)])
    assert promoted["role"] == "admin" and promoted["granted_by"] == str(b)
    assert last_audit(db)["details"]["before"]["role"] == "viewer"
    db.execute("select rec_grant_admin(%s, 'viewer', %s)", [b, ADMIN])

    listed = dict_rows(db, "select * from rec_list_admins()")
    assert [(r["email"], r["role"]) for r in listed] == [
        ("p0@example.com", "admin"),
        ("p1@example.com", "viewer"),
    ]
    assert scalar(db, "select rec_admin_role(%s)", [a]) == "admin"
    assert scalar(db, "select rec_admin_role(%s)", [people[2]]) is None

    before = audit_count(db)
    assert scalar(db, "select rec_revoke_admin(%s, %s)", [a, ADMIN]) is True
    assert last_audit(db)["action"] == "revoke_admin"
    assert last_audit(db)["details"]["before"]["role"] == "admin"
    assert scalar(db, "select rec_admin_role(%s)", [a]) is None
    # nothing to revoke: false, and nothing written
    assert scalar(db, "select rec_revoke_admin(%s, %s)", [a, ADMIN]) is False
    assert audit_count(db) == before + 1


@pytest.mark.parametrize(
    ("role", "admin_id", "code"),
    [("owner", ADMIN, "22023"), (None, ADMIN, "22023"), ("admin", None, "22023")],
)
def test_grant_refuses_bad_input(
    db: psycopg.Connection, people: list[uuid.UUID], role: str | None, admin_id: str | None, code: str
) -> None:
    with raises_sqlstate(db, code):
        db.execute("select rec_grant_admin(%s, %s, %s)", [people[0], role, admin_id])
    assert audit_count(db) == 0


def test_grant_unknown_user_is_p0002(db: psycopg.Connection) -> None:
    with raises_sqlstate(db, "P0002"):
        db.execute("select rec_grant_admin(%s, 'admin', %s)", [uuid.uuid4(), ADMIN])
    with raises_sqlstate(db, "22023"):
        db.execute("select rec_revoke_admin(%s, null)", [uuid.uuid4()])
    assert audit_count(db) == 0


def test_deleting_the_auth_user_removes_the_grant(db: psycopg.Connection, people: list[uuid.UUID]) -> None:
    db.execute("select rec_grant_admin(%s, 'admin', %s)", [people[0], ADMIN])
    db.execute("reset role")
    db.execute("delete from auth.users where id = %s", [people[0]])
    db.execute(f"set role {OWNER}")
    assert scalar(db, "select count(*) from rec_admins") == 0


def test_service_role_reads_and_calls_but_never_writes_directly(
    db: psycopg.Connection, people: list[uuid.UUID]
) -> None:
    with acting_as(db, "service_role"):
        db.execute("select rec_grant_admin(%s, 'viewer', %s)", [people[0], ADMIN])
        assert scalar(db, "select count(*) from rec_admins") == 1
        assert scalar(db, "select rec_admin_role(%s)", [people[0]]) == "viewer"
        for statement in (
            "insert into rec_admins (user_id, role) values (%s, 'admin')",
            "update rec_admins set role = 'admin' where user_id = %s",
            "delete from rec_admins where user_id = %s",
        ):
            with raises_sqlstate(db, "42501"):
                db.execute(statement, [people[1] if "insert" in statement else people[0]])


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_api_roles_get_nothing(db: psycopg.Connection, people: list[uuid.UUID], role: str) -> None:
    db.execute("select rec_grant_admin(%s, 'admin', %s)", [people[0], ADMIN])
    with acting_as(db, role, sub=str(people[0])):
        for statement, params in (
            ("select * from rec_admins", None),
            ("select rec_admin_role(%s)", [people[0]]),
            ("select * from rec_list_admins()", None),
            ("select rec_grant_admin(%s, 'admin', %s)", [people[1], people[0]]),
            ("select rec_revoke_admin(%s, %s)", [people[0], people[0]]),
        ):
            with raises_sqlstate(db, "42501"):
                db.execute(statement, params)
