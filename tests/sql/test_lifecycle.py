"""Creating, editing, starting and ending experiments; rotating salts
(docs/reference.md §3, admin RPCs)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import psycopg
import pytest

from tests.sql.cases import BAD_KEYS, BAD_VARIANTS, GOOD_KEYS
from tests.sql.conftest import (
    ADMIN,
    assignments,
    create_experiment,
    experiment,
    experiment_as_reported,
    raises_sqlstate,
    scalar,
    snapshot,
    uuids,
)
from tests.sql.reference import assign

AB: list[dict[str, Any]] = [{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}]
ABJ = json.dumps(AB)


def create(conn: psycopg.Connection, key: str, variants: str | None = ABJ, **kw: Any) -> dict[str, Any]:
    named = "".join(f", {k} => %({k})s" for k in kw)
    query = f"select to_jsonb(rec_create_experiment(%(key)s, %(v)s::jsonb, %(admin)s{named}))"
    return dict(scalar(conn, query, {"key": key, "v": variants, "admin": ADMIN, **kw}))


def call_row(conn: psycopg.Connection, fn: str, key: str) -> dict[str, Any]:
    return dict(scalar(conn, f"select to_jsonb({fn}(%s, %s))", [key, ADMIN]))


# --- create ------------------------------------------------------------------


def test_create_returns_a_draft_row(db: psycopg.Connection) -> None:
    e = create(db, "exp", name="Exp", description="what it tests", salt="s", salt_rotation_interval="7 days")
    assert e == experiment_as_reported(db, "exp")
    assert e["layer"] is None and e["layer_range"] is None and e["coverage"] == 1
    assert e["status"] == "draft" and e["name"] == "Exp" and e["description"] == "what it tests"
    assert e["variants"] == AB and e["salt"] == "s"
    assert e["salt_rotation_interval"] == "7 days"
    assert e["started_at"] is None and e["ended_at"] is None and e["salt_rotated_at"] is None


def test_create_picks_a_random_salt(db: psycopg.Connection) -> None:
    salts = {create(db, f"exp{i}")["salt"] for i in range(5)}
    assert len(salts) == 5 and all(isinstance(s, str) and len(s) >= 16 for s in salts)


def test_create_rotation_interval_zero_means_never_and_negative_is_refused(db: psycopg.Connection) -> None:
    assert create(db, "zero", salt_rotation_interval="0")["salt_rotation_interval"] is None
    with raises_sqlstate(db, "22023"):
        create(db, "negative", salt_rotation_interval="-1 day")
    assert scalar(db, "select array_agg(key) from rec_experiments") == ["zero"]


@pytest.mark.parametrize("key", [*BAD_KEYS, None])
def test_create_refuses_bad_keys(db: psycopg.Connection, key: str | None) -> None:
    with raises_sqlstate(db, "22023"):
        create(db, key)  # type: ignore[arg-type]
    assert scalar(db, "select count(*) from rec_experiments") == 0


def test_create_accepts_good_keys(db: psycopg.Connection) -> None:
    for key in GOOD_KEYS:
        create(db, key)
    assert scalar(db, "select count(*) from rec_experiments") == len(GOOD_KEYS)


@pytest.mark.parametrize("case", sorted(BAD_VARIANTS))
def test_create_refuses_bad_variants(db: psycopg.Connection, case: str) -> None:
    with raises_sqlstate(db, "22023"):
        create(db, "exp", BAD_VARIANTS[case])
    assert scalar(db, "select count(*) from rec_experiments") == 0


def test_create_refuses_sql_null_variants(db: psycopg.Connection) -> None:
    with raises_sqlstate(db, "22023"):
        create(db, "exp", None)


@pytest.mark.parametrize("salt", ["", "x" * 257])
def test_create_refuses_bad_salts(db: psycopg.Connection, salt: str) -> None:
    with raises_sqlstate(db, "22023"):
        create(db, "exp", salt=salt)


def test_create_duplicate_key_is_23505(db: psycopg.Connection) -> None:
    create(db, "exp")
    before = snapshot(db)
    with raises_sqlstate(db, "23505"):
        create(db, "exp", '[{"name": "x", "weight": 1}]')
    assert snapshot(db) == before


# --- update ------------------------------------------------------------------


def test_update_null_means_unchanged(db: psycopg.Connection) -> None:
    create(db, "exp", name="n", description="d", salt_rotation_interval="1 day")
    before = experiment_as_reported(db, "exp")
    after = dict(scalar(db, "select to_jsonb(rec_update_experiment('exp', %s))", [ADMIN]))
    assert {k: v for k, v in after.items() if k != "updated_at"} == {
        k: v for k, v in before.items() if k != "updated_at"
    }
    after = dict(
        scalar(db, "select to_jsonb(rec_update_experiment('exp', %s, description => 'd2'))", [ADMIN])
    )
    assert after["description"] == "d2" and after["name"] == "n"
    assert after["salt_rotation_interval"] == "1 day" and after["variants"] == AB


def test_update_variants_in_draft(db: psycopg.Connection) -> None:
    create(db, "exp")
    new = [{"name": "a", "weight": 1}, {"name": "b", "weight": 3}]
    e = dict(
        scalar(
            db,
            "select to_jsonb(rec_update_experiment('exp', %s, variants => %s::jsonb))",
            [ADMIN, json.dumps(new)],
        )
    )
    assert e["variants"] == new == experiment(db, "exp")["variants"]


@pytest.mark.parametrize("state", ["active", "ended"])
def test_update_variants_after_draft_is_55000(db: psycopg.Connection, state: str) -> None:
    create_experiment(db, "exp", AB)
    if state == "ended":
        db.execute("select rec_end_experiment('exp', %s)", [ADMIN])
    before = snapshot(db)
    with raises_sqlstate(db, "55000"):
        db.execute(
            "select rec_update_experiment('exp', %s, variants => %s::jsonb)",
            [ADMIN, '[{"name": "a", "weight": 1}]'],
        )
    # also with a change that would otherwise be allowed in the same call
    with raises_sqlstate(db, "55000"):
        db.execute(
            "select rec_update_experiment('exp', %s, name => 'x', variants => %s::jsonb)", [ADMIN, ABJ]
        )
    assert snapshot(db) == before
    # name, description and rotation interval stay editable
    e = dict(
        scalar(
            db,
            "select to_jsonb(rec_update_experiment('exp', %s, name => 'renamed',"
            " salt_rotation_interval => '1 hour'))",
            [ADMIN],
        )
    )
    assert e["name"] == "renamed" and e["salt_rotation_interval"] == "01:00:00"
    assert e["status"] == state and e["variants"] == AB


@pytest.mark.parametrize("case", sorted(BAD_VARIANTS))
def test_update_refuses_bad_variants(db: psycopg.Connection, case: str) -> None:
    create(db, "exp")
    before = snapshot(db)
    with raises_sqlstate(db, "22023"):
        db.execute(
            "select rec_update_experiment('exp', %s, variants => %s::jsonb)", [ADMIN, BAD_VARIANTS[case]]
        )
    assert snapshot(db) == before


@pytest.mark.parametrize("interval", ["100 years 1 day", "300000 years", "178000000 years"])
def test_rotation_interval_is_bounded(db: psycopg.Connection, interval: str) -> None:
    """Past 100 years `rotated_at + interval` may overflow and break the
    scheduler for every experiment: refused on create, update and direct write."""
    create(db, "exp", salt_rotation_interval="1 day")
    before = snapshot(db)
    with raises_sqlstate(db, "22023"):
        create(db, "huge", salt_rotation_interval=interval)
    with raises_sqlstate(db, "22023"):
        db.execute(
            "select rec_update_experiment('exp', %s, salt_rotation_interval => %s::interval)",
            [ADMIN, interval],
        )
    with raises_sqlstate(db, "23514"):
        db.execute("update rec_experiments set salt_rotation_interval = %s::interval", [interval])
    assert snapshot(db) == before
    assert db.execute("select count(*) from rec_rotate_due_salts()").fetchone() == (0,)


def test_update_rotation_interval(db: psycopg.Connection) -> None:
    create(db, "exp", salt_rotation_interval="1 day")
    upd = "select to_jsonb(rec_update_experiment('exp', %s, salt_rotation_interval => %s::interval))"
    assert scalar(db, upd, [ADMIN, "2 days"])["salt_rotation_interval"] == "2 days"
    assert scalar(db, upd, [ADMIN, "0"])["salt_rotation_interval"] is None
    with raises_sqlstate(db, "22023"):
        db.execute(upd, [ADMIN, "-5 minutes"])
    assert experiment(db, "exp")["salt_rotation_interval"] is None


def test_updated_at_moves_on_update(db: psycopg.Connection) -> None:
    create(db, "exp")
    db.execute("update rec_experiments set updated_at = now() - interval '1 day'")
    old = scalar(db, "select updated_at from rec_experiments")
    db.execute("select rec_update_experiment('exp', %s, name => 'n')", [ADMIN])
    assert scalar(db, "select updated_at from rec_experiments") > old


# --- activate / end ----------------------------------------------------------


def test_activate_then_end(db: psycopg.Connection) -> None:
    created = create(db, "exp")
    active = call_row(db, "rec_activate_experiment", "exp")
    assert active["status"] == "active" and active["ended_at"] is None
    started = dt.datetime.fromisoformat(active["started_at"])
    assert started >= dt.datetime.fromisoformat(created["created_at"])
    assert active == experiment(db, "exp")
    ended = call_row(db, "rec_end_experiment", "exp")
    assert ended["status"] == "ended" and ended["started_at"] == active["started_at"]
    assert dt.datetime.fromisoformat(ended["ended_at"]) >= started
    assert ended == experiment(db, "exp")


@pytest.mark.parametrize(
    ("state", "fn"),
    [
        ("active", "rec_activate_experiment"),
        ("ended", "rec_activate_experiment"),
        ("draft", "rec_end_experiment"),
        ("ended", "rec_end_experiment"),
    ],
)
def test_wrong_state_is_55000_and_changes_nothing(db: psycopg.Connection, state: str, fn: str) -> None:
    create_experiment(db, "exp", AB, active=state != "draft")
    if state == "ended":
        db.execute("select rec_end_experiment('exp', %s)", [ADMIN])
    before = snapshot(db)
    with raises_sqlstate(db, "55000"):
        db.execute(f"select {fn}('exp', %s)", [ADMIN])
    assert snapshot(db) == before


@pytest.mark.parametrize(
    "call",
    [
        "select rec_update_experiment('nope', %(a)s, name => 'x')",
        "select rec_activate_experiment('nope', %(a)s)",
        "select rec_end_experiment('nope', %(a)s)",
        "select rec_rotate_salt('nope', %(a)s)",
        "select rec_get_experiment('nope')",
        "select rec_experiment_daily_metrics('nope')",
    ],
)
def test_unknown_experiment_is_p0002(db: psycopg.Connection, call: str) -> None:
    create_experiment(db, "exp", AB)
    before = snapshot(db)
    with raises_sqlstate(db, "P0002"):
        db.execute(call, {"a": ADMIN})
    assert snapshot(db) == before


# --- salt rotation -------------------------------------------------------------


def test_rotate_salt_keeps_assignments_by_default(db: psycopg.Connection) -> None:
    create_experiment(db, "exp", AB, salt="old")
    users = uuids(100, seed=30)
    for u in users:
        db.execute("select rec_assign_variant('exp', %s)", [u])
    db.execute("select rec_set_user_variant('exp', %s, 'treatment', %s)", [users[0], ADMIN])
    before = assignments(db, "exp")
    new_salt = scalar(db, "select rec_rotate_salt('exp', %s)", [ADMIN])
    e = experiment(db, "exp")
    assert e["salt"] == new_salt != "old"
    assert e["salt_rotated_at"] is not None
    assert assignments(db, "exp") == before


def test_rotate_salt_with_reassign_drops_auto_rows_only(db: psycopg.Connection) -> None:
    create_experiment(db, "exp", AB, salt="old")
    users = uuids(100, seed=31)
    for u in users:
        db.execute("select rec_assign_variant('exp', %s)", [u])
    pinned = users[:5]
    for u in pinned:
        db.execute("select rec_set_user_variant('exp', %s, 'control', %s)", [u, ADMIN])
    new_salt = scalar(db, "select rec_rotate_salt('exp', %s, reassign => true)", [ADMIN])
    assert new_salt != "old" and experiment(db, "exp")["salt"] == new_salt
    assert assignments(db, "exp") == {u: ("control", "manual", uuid.UUID(ADMIN)) for u in pinned}
    # users come back under the new salt; the pinned ones keep their override
    got = {u: scalar(db, "select rec_assign_variant('exp', %s)", [u]) for u in users}
    assert got == {u: "control" if u in pinned else assign(new_salt, u, AB) for u in users}


def test_rotate_salt_of_a_draft_and_refusal_when_ended(db: psycopg.Connection) -> None:
    create_experiment(db, "draft", AB, salt="s1", active=False)
    assert scalar(db, "select rec_rotate_salt('draft', %s)", [ADMIN]) == experiment(db, "draft")["salt"]
    create_experiment(db, "over", AB, salt="s2")
    db.execute("select rec_end_experiment('over', %s)", [ADMIN])
    before = snapshot(db)
    with raises_sqlstate(db, "55000"):
        db.execute("select rec_rotate_salt('over', %s)", [ADMIN])
    assert snapshot(db) == before


def backdate(
    conn: psycopg.Connection, key: str, *, created: str | None = None, rotated: str | None = None
) -> None:
    if created:
        conn.execute(
            "update rec_experiments set created_at = now() - %s::interval where key = %s", [created, key]
        )
    if rotated:
        conn.execute(
            "update rec_experiments set salt_rotated_at = now() - %s::interval where key = %s", [rotated, key]
        )


def due_fixture(conn: psycopg.Connection) -> set[str]:
    """Experiments around the due line; returns the keys that are due."""
    create_experiment(conn, "due-never-rotated", AB, interval="1 day")
    backdate(conn, "due-never-rotated", created="25 hours")
    create_experiment(conn, "due-rotated-long-ago", AB, interval="1 hour")
    backdate(conn, "due-rotated-long-ago", created="30 days", rotated="61 minutes")
    create_experiment(conn, "due-draft", AB, interval="1 day", active=False)
    backdate(conn, "due-draft", created="2 days")
    # salt_rotated_at, when set, counts instead of created_at
    create_experiment(conn, "recently-rotated", AB, interval="1 day")
    backdate(conn, "recently-rotated", created="30 days", rotated="23 hours")
    create_experiment(conn, "young", AB, interval="1 day")
    backdate(conn, "young", created="23 hours")
    create_experiment(conn, "never", AB)
    backdate(conn, "never", created="400 days")
    # the longest interval allowed must not overflow the due arithmetic
    create_experiment(conn, "century", AB, interval="100 years")
    create_experiment(conn, "ended", AB, interval="1 hour")
    conn.execute("select rec_end_experiment('ended', %s)", [ADMIN])
    backdate(conn, "ended", created="30 days", rotated="10 days")
    return {"due-never-rotated", "due-rotated-long-ago", "due-draft"}


def test_rotate_due_salts_rotates_exactly_the_due_ones(db: psycopg.Connection) -> None:
    due = due_fixture(db)
    salts = {r[0]: r[1] for r in db.execute("select key, salt from rec_experiments")}
    rotated = [r[0] for r in db.execute("select * from rec_rotate_due_salts()")]
    assert sorted(rotated) == sorted(due) and len(rotated) == len(due)
    after = {
        r[0]: r[1:]
        for r in db.execute(
            "select key, salt, salt_rotated_at > now() - interval '1 minute' from rec_experiments"
        )
    }
    for key, (salt, just_rotated) in after.items():
        if key in due:
            assert salt != salts[key] and just_rotated, key
        else:
            assert salt == salts[key] and not just_rotated, key
    # nothing is due any more
    assert db.execute("select * from rec_rotate_due_salts()").fetchall() == []


def test_rotate_due_salts_reassign(db: psycopg.Connection) -> None:
    due_fixture(db)
    users = uuids(20, seed=32)
    for key in ("due-never-rotated", "young"):
        for u in users:
            db.execute("select rec_assign_variant(%s, %s)", [key, u])
        db.execute("select rec_set_user_variant(%s, %s, 'treatment', %s)", [key, users[0], ADMIN])
    young = assignments(db, "young")
    rotated = [
        r[0] for r in db.execute("select rec_rotate_due_salts(reassign => true, admin_id => %s)", [ADMIN])
    ]
    assert "due-never-rotated" in rotated and "young" not in rotated
    assert assignments(db, "due-never-rotated") == {users[0]: ("treatment", "manual", uuid.UUID(ADMIN))}
    assert assignments(db, "young") == young


def test_rotate_due_salts_without_reassign_keeps_rows(db: psycopg.Connection) -> None:
    due_fixture(db)
    users = uuids(20, seed=33)
    for u in users:
        db.execute("select rec_assign_variant('due-never-rotated', %s)", [u])
    before = assignments(db, "due-never-rotated")
    db.execute("select rec_rotate_due_salts()")
    assert assignments(db, "due-never-rotated") == before


def test_draft_variant_change_leaves_no_override_on_a_removed_variant(db: psycopg.Connection) -> None:
    """A QA override pinned in draft must not outlive its variant: either the
    edit is refused, or the override goes with it. Never serve a variant the
    experiment does not have."""
    create_experiment(db, "exp", AB, active=False)
    qa = uuids(1, seed=34)[0]
    db.execute("select rec_set_user_variant('exp', %s, 'treatment', %s)", [qa, ADMIN])
    before = snapshot(db)
    new = '[{"name": "control", "weight": 1}, {"name": "other", "weight": 1}]'
    try:
        with db.transaction():
            db.execute("select rec_update_experiment('exp', %s, variants => %s::jsonb)", [ADMIN, new])
    except psycopg.Error as exc:
        assert exc.sqlstate in ("22023", "55000"), exc
        assert snapshot(db) == before
        return
    declared = {v["name"] for v in experiment(db, "exp")["variants"]}
    assert {v for v, _, _ in assignments(db, "exp").values()} <= declared
    if qa not in assignments(db, "exp"):  # the override went: the audit row says so
        entry = db.execute("select action, details from rec_audit_log order by id desc limit 1").fetchone()
        assert entry is not None and entry[0] == "update_experiment"
        assert str(qa) in json.dumps(entry[1])
    db.execute("select rec_activate_experiment('exp', %s)", [ADMIN])
    assert scalar(db, "select rec_assign_variant('exp', %s)", [qa]) in declared
