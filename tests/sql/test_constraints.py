"""docs/reference.md §1 as the migration owner writes it by hand (Supabase's SQL
editor): the plain inserts work, and the tables themselves refuse bad data."""

from __future__ import annotations

import datetime as dt
import uuid

import psycopg
import pytest

from tests.sql.cases import BAD_KEYS, BAD_VARIANTS, GOOD_KEYS, GOOD_VARIANTS
from tests.sql.conftest import raises_sqlstate, scalar
from tests.sql.reference import assign

AB = '[{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}]'


def test_plain_experiment_insert_defaults_the_rest(db: psycopg.Connection) -> None:
    row = db.execute(
        "insert into rec_experiments (key, status, variants, salt)"
        " values ('plain', 'active', %s, 'pepper') returning to_jsonb(rec_experiments)",
        [AB],
    ).fetchone()
    assert row is not None
    e = row[0]
    assert e["id"] and e["created_at"] and e["updated_at"]
    for column in (
        "name",
        "description",
        "salt_rotation_interval",
        "salt_rotated_at",
        "started_at",
        "ended_at",
    ):
        assert e[column] is None, column
    # the hand-made experiment serves traffic like any other
    user = uuid.uuid4()
    expected = assign("pepper", user, [{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}])
    assert scalar(db, "select rec_assign_variant('plain', %s)", [user]) == expected


def test_plain_experiment_insert_without_salt_gets_a_random_one(db: psycopg.Connection) -> None:
    db.execute("insert into rec_experiments (key, variants) values ('k1', %s), ('k2', %s)", [AB, AB])
    salts = [r[0] for r in db.execute("select salt from rec_experiments").fetchall()]
    assert len(set(salts)) == 2 and all(len(s) >= 16 for s in salts)
    assert scalar(db, "select status from rec_experiments where key = 'k1'") == "draft"


def test_plain_impression_and_outcome_inserts(db: psycopg.Connection) -> None:
    user = uuid.uuid4()
    at = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    imp = db.execute(
        "insert into rec_impressions (user_id, request_context, created_at)"
        ' values (%s, \'{"experiments": {"exp": "a"}}\', %s) returning id, item_id, created_at',
        [user, at],
    ).fetchone()
    assert imp is not None and imp[0] is not None and imp[1] is None and imp[2] == at
    out = db.execute(
        "insert into rec_outcomes (impression_id, user_id, outcome, created_at)"
        " values (%s, %s, 'click', %s) returning id, value",
        [imp[0], user, at + dt.timedelta(minutes=1)],
    ).fetchone()
    assert out is not None and out[0] is not None and out[1] == 1
    # request_context and created_at default too
    row = db.execute(
        "insert into rec_impressions (user_id) values (%s) returning request_context, created_at", [user]
    ).fetchone()
    assert row is not None and row[0] == {} and row[1] is not None


@pytest.mark.parametrize("case", sorted(BAD_VARIANTS))
def test_table_refuses_bad_variants(db: psycopg.Connection, case: str) -> None:
    with raises_sqlstate(db, "23514"):
        db.execute(
            "insert into rec_experiments (key, status, variants, salt)"
            " values ('bad', 'draft', %s::jsonb, 's')",
            [BAD_VARIANTS[case]],
        )
    db.execute("insert into rec_experiments (key, variants) values ('ok', %s)", [AB])
    with raises_sqlstate(db, "23514"):
        db.execute("update rec_experiments set variants = %s::jsonb where key = 'ok'", [BAD_VARIANTS[case]])
    assert scalar(db, "select variants from rec_experiments") == [
        {"name": "control", "weight": 1},
        {"name": "treatment", "weight": 1},
    ]


def test_table_refuses_null_variants(db: psycopg.Connection) -> None:
    with raises_sqlstate(db, "23502"):
        db.execute("insert into rec_experiments (key, variants) values ('k', null)")


@pytest.mark.parametrize("case", sorted(GOOD_VARIANTS))
def test_table_accepts_good_variants(db: psycopg.Connection, case: str) -> None:
    db.execute("insert into rec_experiments (key, variants) values ('k', %s)", [GOOD_VARIANTS[case]])
    assert scalar(db, "select count(*) from rec_experiments") == 1


def test_table_refuses_bad_keys_and_accepts_good_ones(db: psycopg.Connection) -> None:
    for key in BAD_KEYS:
        with raises_sqlstate(db, "23514"):
            db.execute("insert into rec_experiments (key, variants) values (%s, %s)", [key, AB])
    for key in GOOD_KEYS:
        db.execute("insert into rec_experiments (key, variants) values (%s, %s)", [key, AB])
    assert scalar(db, "select count(*) from rec_experiments") == len(GOOD_KEYS)


def test_table_refuses_duplicate_key_and_unknown_status(db: psycopg.Connection) -> None:
    db.execute("insert into rec_experiments (key, variants) values ('k', %s)", [AB])
    with raises_sqlstate(db, "23505"):
        db.execute("insert into rec_experiments (key, variants) values ('k', %s)", [AB])
    with raises_sqlstate(db, "23514"):
        db.execute("insert into rec_experiments (key, variants, status) values ('k2', %s, 'paused')", [AB])
    with raises_sqlstate(db, "23514"):
        db.execute("update rec_experiments set status = 'running'")


def test_assignment_rows(db: psycopg.Connection) -> None:
    eid = scalar(db, "insert into rec_experiments (key, variants) values ('k', %s) returning id", [AB])
    user = uuid.uuid4()  # no auth.users row: anonymous users are units too
    db.execute(
        "insert into rec_user_experiment_assignments (experiment_id, user_id, variant)"
        " values (%s, %s, 'control')",
        [eid, user],
    )
    row = db.execute(
        "select assignment_mode, assigned_by, assigned_at from rec_user_experiment_assignments"
    ).fetchone()
    assert row is not None and row[0] == "auto" and row[1] is None and row[2] is not None
    with raises_sqlstate(db, "23505"):  # one row per (experiment, user)
        db.execute(
            "insert into rec_user_experiment_assignments (experiment_id, user_id, variant)"
            " values (%s, %s, 'treatment')",
            [eid, user],
        )
    with raises_sqlstate(db, "23514"):
        db.execute(
            "insert into rec_user_experiment_assignments"
            " (experiment_id, user_id, variant, assignment_mode)"
            " values (%s, %s, 'control', 'sticky')",
            [eid, uuid.uuid4()],
        )
    with raises_sqlstate(db, "23503"):
        db.execute(
            "insert into rec_user_experiment_assignments (experiment_id, user_id, variant)"
            " values (%s, %s, 'control')",
            [uuid.uuid4(), uuid.uuid4()],
        )


@pytest.mark.parametrize("context", ["[]", '"x"', '{"experiments": []}', '{"experiments": "a"}'])
def test_impressions_refuse_malformed_context(db: psycopg.Connection, context: str) -> None:
    with raises_sqlstate(db, "23514"):
        db.execute(
            "insert into rec_impressions (user_id, request_context) values (%s, %s::jsonb)",
            [uuid.uuid4(), context],
        )


def test_outcome_needs_an_existing_impression(db: psycopg.Connection) -> None:
    with raises_sqlstate(db, "23503"):
        db.execute(
            "insert into rec_outcomes (impression_id, user_id, outcome) values (%s, %s, 'click')",
            [uuid.uuid4(), uuid.uuid4()],
        )
