"""Every state-changing RPC writes exactly one audit row per change, in the
same transaction as the change; a refused action writes nothing at all."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from tests.sql.conftest import (
    ADMIN,
    audit_count,
    create_experiment,
    experiment,
    last_audit,
    raises_sqlstate,
    scalar,
    snapshot,
    uuids,
)

AB = [{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}]
ABJ = '[{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}]'
OTHER_ADMIN = "00000000-0000-4000-8000-00000000ad02"


def audited(conn: psycopg.Connection, query: str, params: Any = None) -> dict[str, Any]:
    """Run one RPC call; it must add exactly one audit row, which is returned."""
    before = audit_count(conn)
    conn.execute(query, params)
    assert audit_count(conn) == before + 1
    return last_audit(conn)


def xmin_of(conn: psycopg.Connection, query: str, params: Any = None) -> str:
    return str(scalar(conn, query, params))


def same_transaction_as_audit(conn: psycopg.Connection, row_xmin: str) -> bool:
    """The newest audit row was written by the transaction that wrote the row
    (not checked for create, whose insert runs in a subtransaction)."""
    return xmin_of(conn, "select xmin::text from rec_audit_log order by id desc limit 1") == row_xmin


def test_create_is_audited(db: psycopg.Connection) -> None:
    entry = audited(
        db, "select rec_create_experiment('exp', %s::jsonb, %s, name => 'N', salt => 's')", [ABJ, ADMIN]
    )
    e = experiment(db, "exp")
    assert entry["action"] == "create_experiment"
    assert entry["actor_id"] == ADMIN and entry["experiment_id"] == e["id"]
    after = entry["details"]["after"]
    assert after["key"] == "exp" and after["name"] == "N" and after["variants"] == AB
    assert after["status"] == "draft"


def test_update_is_audited_with_before_and_after(db: psycopg.Connection) -> None:
    create_experiment(db, "exp", AB, active=False)
    db.execute("update rec_experiments set name = 'old'")
    new = [{"name": "x", "weight": 2}]
    entry = audited(
        db,
        "select rec_update_experiment('exp', %s, name => 'new', variants => %s::jsonb)",
        [OTHER_ADMIN, '[{"name": "x", "weight": 2}]'],
    )
    assert entry["action"] == "update_experiment" and entry["actor_id"] == OTHER_ADMIN
    assert entry["experiment_id"] == experiment(db, "exp")["id"]
    changes = entry["details"]["changes"]
    assert changes["name"] == {"before": "old", "after": "new"}
    assert changes["variants"] == {"before": AB, "after": new}
    assert "description" not in changes  # unchanged fields are not reported as changes
    assert same_transaction_as_audit(db, xmin_of(db, "select xmin::text from rec_experiments"))


@pytest.mark.parametrize(
    ("fn", "action", "before", "after"),
    [
        ("rec_activate_experiment", "activate_experiment", "draft", "active"),
        ("rec_end_experiment", "end_experiment", "active", "ended"),
    ],
)
def test_transitions_are_audited(
    db: psycopg.Connection, fn: str, action: str, before: str, after: str
) -> None:
    create_experiment(db, "exp", AB, active=before == "active")
    entry = audited(db, f"select {fn}('exp', %s)", [ADMIN])
    assert entry["action"] == action and entry["actor_id"] == ADMIN
    assert entry["experiment_id"] == experiment(db, "exp")["id"]
    assert entry["details"]["before"]["status"] == before
    assert entry["details"]["after"]["status"] == after
    assert same_transaction_as_audit(db, xmin_of(db, "select xmin::text from rec_experiments"))


def test_set_user_variant_is_audited(db: psycopg.Connection) -> None:
    e = create_experiment(db, "exp", AB)
    fresh, auto_user = uuids(2, seed=40)
    entry = audited(db, "select rec_set_user_variant('exp', %s, 'treatment', %s)", [fresh, ADMIN])
    assert entry["action"] == "set_user_variant" and entry["actor_id"] == ADMIN
    assert entry["experiment_id"] == e["id"]
    assert entry["details"]["user_id"] == str(fresh)
    assert entry["details"]["before"] is None
    assert entry["details"]["after"]["variant"] == "treatment"
    assert entry["details"]["after"]["assignment_mode"] == "manual"
    assert same_transaction_as_audit(
        db, xmin_of(db, "select xmin::text from rec_user_experiment_assignments where user_id = %s", [fresh])
    )
    # overriding again: before is the previous override
    entry = audited(db, "select rec_set_user_variant('exp', %s, 'control', %s)", [fresh, OTHER_ADMIN])
    assert entry["actor_id"] == OTHER_ADMIN
    assert entry["details"]["before"]["variant"] == "treatment"
    assert entry["details"]["before"]["assignment_mode"] == "manual"
    assert entry["details"]["after"]["variant"] == "control"
    # overriding an auto assignment: before says so
    auto = scalar(db, "select rec_assign_variant('exp', %s)", [auto_user])
    entry = audited(db, "select rec_set_user_variant('exp', %s, 'control', %s)", [auto_user, ADMIN])
    assert entry["details"]["before"]["variant"] == auto
    assert entry["details"]["before"]["assignment_mode"] == "auto"


def test_reset_user_variant_is_audited(db: psycopg.Connection) -> None:
    e = create_experiment(db, "exp", AB, salt="s")
    user = uuids(1, seed=41)[0]
    db.execute("select rec_set_user_variant('exp', %s, 'treatment', %s)", [user, ADMIN])
    entry = audited(db, "select rec_reset_user_variant('exp', %s, %s)", [user, OTHER_ADMIN])
    now_variant = scalar(db, "select rec_assign_variant('exp', %s)", [user])
    assert entry["action"] == "reset_user_variant" and entry["actor_id"] == OTHER_ADMIN
    assert entry["experiment_id"] == e["id"] and entry["details"]["user_id"] == str(user)
    assert entry["details"]["before"]["variant"] == "treatment"
    assert entry["details"]["before"]["assignment_mode"] == "manual"
    assert entry["details"]["after"]["variant"] == now_variant
    assert same_transaction_as_audit(
        db, xmin_of(db, "select xmin::text from rec_user_experiment_assignments where user_id = %s", [user])
    )


def test_rotate_salt_is_audited_with_old_and_new_salt(db: psycopg.Connection) -> None:
    e = create_experiment(db, "exp", AB, salt="old")
    for u in uuids(3, seed=42):
        db.execute("select rec_assign_variant('exp', %s)", [u])
    before = audit_count(db)
    new_salt = scalar(db, "select rec_rotate_salt('exp', %s, reassign => true)", [ADMIN])
    assert audit_count(db) == before + 1
    entry = last_audit(db)
    assert entry["action"] == "rotate_salt" and entry["actor_id"] == ADMIN
    assert entry["experiment_id"] == e["id"]
    assert entry["details"]["before"]["salt"] == "old"
    assert entry["details"]["after"]["salt"] == new_salt
    assert entry["details"]["reassign"] is True
    assert same_transaction_as_audit(db, xmin_of(db, "select xmin::text from rec_experiments"))


@pytest.mark.parametrize("admin", [ADMIN, None])
def test_rotate_due_salts_writes_one_row_per_rotated_experiment(
    db: psycopg.Connection, admin: str | None
) -> None:
    for key in ("a", "b", "c"):
        create_experiment(db, key, AB, interval="1 hour")
    db.execute("update rec_experiments set created_at = now() - interval '2 hours' where key <> 'c'")
    before = audit_count(db)
    rotated = [r[0] for r in db.execute("select rec_rotate_due_salts(admin_id => %s)", [admin])]
    assert sorted(rotated) == ["a", "b"]
    rows = db.execute(
        "select l.action, l.actor_id, e.key from rec_audit_log l"
        " join rec_experiments e on e.id = l.experiment_id"
        " order by l.id desc limit 2"
    ).fetchall()
    assert audit_count(db) == before + 2
    expected_actor = uuid.UUID(admin) if admin else None
    assert sorted(rows) == [("rotate_salt", expected_actor, "a"), ("rotate_salt", expected_actor, "b")]


def test_nothing_due_writes_nothing(db: psycopg.Connection) -> None:
    create_experiment(db, "a", AB, interval="1 day")
    before = snapshot(db)
    assert db.execute("select rec_rotate_due_salts(true, %s)", [ADMIN]).fetchall() == []
    assert snapshot(db) == before


# --- refused actions: no change, no audit row ----------------------------------

REFUSED: list[tuple[str, str, str]] = [
    # (id, call, expected SQLSTATE); 'draft' is a draft, 'live' active, 'over' ended
    ("create-null-admin", "select rec_create_experiment('new', %(v)s::jsonb, null)", "22023"),
    ("create-bad-variants", "select rec_create_experiment('new', '[]', %(a)s)", "22023"),
    ("create-bad-key", "select rec_create_experiment('New', %(v)s::jsonb, %(a)s)", "22023"),
    ("create-duplicate", "select rec_create_experiment('live', %(v)s::jsonb, %(a)s)", "23505"),
    ("update-null-admin", "select rec_update_experiment('draft', null, name => 'x')", "22023"),
    ("update-unknown", "select rec_update_experiment('nope', %(a)s, name => 'x')", "P0002"),
    (
        "update-variants-active",
        "select rec_update_experiment('live', %(a)s, variants => %(v)s::jsonb)",
        "55000",
    ),
    (
        "update-bad-variants",
        "select rec_update_experiment('draft', %(a)s, variants => '[{\"name\": \"a\"}]')",
        "22023",
    ),
    (
        "update-bad-interval",
        "select rec_update_experiment('draft', %(a)s, salt_rotation_interval => '-1 day')",
        "22023",
    ),
    ("activate-null-admin", "select rec_activate_experiment('draft', null)", "22023"),
    ("activate-unknown", "select rec_activate_experiment('nope', %(a)s)", "P0002"),
    ("activate-active", "select rec_activate_experiment('live', %(a)s)", "55000"),
    ("activate-ended", "select rec_activate_experiment('over', %(a)s)", "55000"),
    ("end-null-admin", "select rec_end_experiment('live', null)", "22023"),
    ("end-unknown", "select rec_end_experiment('nope', %(a)s)", "P0002"),
    ("end-draft", "select rec_end_experiment('draft', %(a)s)", "55000"),
    ("end-ended", "select rec_end_experiment('over', %(a)s)", "55000"),
    ("set-null-admin", "select rec_set_user_variant('live', %(u)s, 'control', null)", "22023"),
    ("set-unknown", "select rec_set_user_variant('nope', %(u)s, 'control', %(a)s)", "P0002"),
    ("set-bad-variant", "select rec_set_user_variant('live', %(u)s, 'nope', %(a)s)", "22023"),
    ("reset-null-admin", "select rec_reset_user_variant('live', %(p)s, null)", "22023"),
    ("reset-unknown", "select rec_reset_user_variant('nope', %(p)s, %(a)s)", "P0002"),
    ("rotate-null-admin", "select rec_rotate_salt('live', null)", "22023"),
    ("rotate-unknown", "select rec_rotate_salt('nope', %(a)s)", "P0002"),
    ("rotate-ended", "select rec_rotate_salt('over', %(a)s)", "55000"),
]


@pytest.mark.parametrize(("call", "code"), [(c, s) for _, c, s in REFUSED], ids=[i for i, _, _ in REFUSED])
def test_refused_action_changes_nothing(db: psycopg.Connection, call: str, code: str) -> None:
    create_experiment(db, "draft", AB, active=False)
    create_experiment(db, "live", AB)
    create_experiment(db, "over", AB)
    db.execute("select rec_end_experiment('over', %s)", [ADMIN])
    pinned, user = uuids(2, seed=43)
    db.execute("select rec_set_user_variant('live', %s, 'treatment', %s)", [pinned, ADMIN])
    db.execute("select rec_assign_variant('live', %s)", [user])
    before = snapshot(db)
    with raises_sqlstate(db, code):
        db.execute(call, {"a": ADMIN, "v": ABJ, "u": user, "p": pinned})
    assert snapshot(db) == before
