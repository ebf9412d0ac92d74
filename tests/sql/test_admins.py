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


def test_role_with_a_session_only_while_that_session_lives(
    db: psycopg.Connection, people: list[uuid.UUID]
) -> None:
    a, b, _ = people
    db.execute("select rec_grant_admin(%s, 'viewer', %s)", [a, ADMIN])
    db.execute("select rec_grant_admin(%s, 'admin', %s)", [b, ADMIN])
    live, ended, b_session, expired = uuids(4, seed=120)
    db.execute("reset role")  # sessions are written by Auth, not by the migration owner
    try:
        db.execute(
            """insert into auth.sessions (id, user_id, not_after) values
               (%s, %s, null), (%s, %s, now() + interval '1 hour'), (%s, %s, null),
               (%s, %s, now() - interval '1 second')""",
            [live, a, ended, a, b_session, b, expired, a],
        )
        db.execute("delete from auth.sessions where id = %s", [ended])  # signed out
    finally:
        db.execute(f"set role {OWNER}")
    role = "select rec_admin_role(%s, %s)"
    assert scalar(db, role, [a, live]) == "viewer"
    assert scalar(db, role, [a, ended]) is None  # signed out
    assert scalar(db, role, [a, expired]) is None  # past not_after
    assert scalar(db, role, [a, b_session]) is None  # someone else's session
    assert scalar(db, role, [a, uuid.uuid4()]) is None  # never existed
    assert scalar(db, role, [b, b_session]) == "admin"
    assert scalar(db, role, [a, None]) == "viewer"  # no session named: membership only
    assert scalar(db, "select rec_admin_role(%s)", [a]) == "viewer"  # the old call
    assert scalar(db, "select rec_admin_role(user_id => %s)", [b]) == "admin"
    db.execute("select rec_revoke_admin(%s, %s)", [a, ADMIN])
    assert scalar(db, role, [a, live]) is None  # a live session is no grant


def test_the_session_role_lookup_is_for_service_role_only(
    db: psycopg.Connection, people: list[uuid.UUID]
) -> None:
    for api_role in ("anon", "authenticated"):
        with acting_as(db, api_role), raises_sqlstate(db, "42501"):
            db.execute("select rec_admin_role(%s, %s)", [people[0], people[1]])
    with acting_as(db, "service_role"):
        assert scalar(db, "select rec_admin_role(%s, %s)", [people[0], people[1]]) is None
