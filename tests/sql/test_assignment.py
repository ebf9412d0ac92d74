"""Sticky assignment, overrides and resets (docs/reference.md §3, first rows)."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from tests.sql.conftest import (
    ADMIN,
    assignments,
    create_experiment,
    experiment,
    raises_sqlstate,
    scalar,
    uuids,
)
from tests.sql.reference import assign

AB = [{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}]
ABC = [
    {"name": "a", "weight": 1},
    {"name": "b", "weight": 1},
    {"name": "c", "weight": 0},
    {"name": "d", "weight": 2},
]


def assign_sql(conn: psycopg.Connection, key: str, user: uuid.UUID | None) -> str | None:
    got: str | None = scalar(conn, "select rec_assign_variant(%s, %s)", [key, user])
    return got


def assign_many(conn: psycopg.Connection, key: str, users: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    rows = conn.execute(
        "select u, rec_assign_variant(%s, u) from unnest(%s::uuid[]) u", [key, users]
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def other(variant: str | None, variants: list[dict[str, object]] = AB) -> str:
    return next(str(v["name"]) for v in variants if v["name"] != variant)


def test_repeat_calls_return_the_stored_variant(db: psycopg.Connection) -> None:
    create_experiment(db, "exp", AB, salt="s")
    users = uuids(200, seed=1)
    first = assign_many(db, "exp", users)
    assert first == {u: assign("s", u, AB) for u in users}
    assert assign_many(db, "exp", users) == first
    assert assign_many(db, "exp", list(reversed(users))) == first
    assert assignments(db, "exp") == {u: (first[u], "auto", None) for u in users}


def test_a_stored_row_wins_over_the_rule(db: psycopg.Connection) -> None:
    e = create_experiment(db, "exp", AB, salt="s")
    user = uuids(1, seed=2)[0]
    stored = other(assign("s", user, AB))
    db.execute(
        "insert into rec_user_experiment_assignments (experiment_id, user_id, variant) values (%s, %s, %s)",
        [e["id"], user, stored],
    )
    assert assign_sql(db, "exp", user) == stored
    assert assignments(db, "exp") == {user: (stored, "auto", None)}


def test_salt_update_does_not_move_stored_users(db: psycopg.Connection) -> None:
    create_experiment(db, "exp", AB, salt="old")
    users = uuids(300, seed=3)
    before = assign_many(db, "exp", users)
    db.execute("update rec_experiments set salt = 'new' where key = 'exp'")
    # The new salt moves about half of the users under the rule ...
    assert sum(assign("new", u, AB) != before[u] for u in users) > 100
    # ... but not stored ones.
    assert assign_many(db, "exp", users) == before
    newcomers = uuids(300, seed=4)
    assert assign_many(db, "exp", newcomers) == {u: assign("new", u, AB) for u in newcomers}


def test_rotate_salt_does_not_move_stored_users(db: psycopg.Connection) -> None:
    create_experiment(db, "exp", AB, salt="old")
    users = uuids(300, seed=5)
    before = assign_many(db, "exp", users)
    new_salt = scalar(db, "select rec_rotate_salt('exp', %s)", [ADMIN])
    assert new_salt != "old" and experiment(db, "exp")["salt"] == new_salt
    assert sum(assign(new_salt, u, AB) != before[u] for u in users) > 50
    assert assign_many(db, "exp", users) == before
    newcomers = uuids(100, seed=6)
    assert assign_many(db, "exp", newcomers) == {u: assign(new_salt, u, AB) for u in newcomers}


def test_override_replaces_an_auto_assignment(db: psycopg.Connection) -> None:
    create_experiment(db, "exp", AB, salt="s")
    user = uuids(1, seed=7)[0]
    auto = assign_sql(db, "exp", user)
    assert auto is not None
    forced = other(auto)
    assert scalar(db, "select rec_set_user_variant('exp', %s, %s, %s)", [user, forced, ADMIN]) == forced
    assert assign_sql(db, "exp", user) == forced
    assert assignments(db, "exp") == {user: (forced, "manual", uuid.UUID(ADMIN))}


def test_override_before_any_auto_assignment(db: psycopg.Connection) -> None:
    create_experiment(db, "exp", AB, salt="s")
    user = uuids(1, seed=8)[0]
    forced = other(assign("s", user, AB))
    db.execute("select rec_set_user_variant('exp', %s, %s, %s)", [user, forced, ADMIN])
    assert assign_sql(db, "exp", user) == forced
    assert scalar(db, "select rec_assign_variants(%s)", [user]) == {"exp": forced}
    assert assignments(db, "exp") == {user: (forced, "manual", uuid.UUID(ADMIN))}


def test_override_to_a_zero_weight_variant_is_allowed(db: psycopg.Connection) -> None:
    create_experiment(db, "exp", ABC, salt="s")
    user = uuids(1, seed=9)[0]
    assert scalar(db, "select rec_set_user_variant('exp', %s, 'c', %s)", [user, ADMIN]) == "c"
    assert assign_sql(db, "exp", user) == "c"


def test_second_override_by_another_admin(db: psycopg.Connection) -> None:
    create_experiment(db, "exp", ABC, salt="s")
    user = uuids(1, seed=10)[0]
    admin2 = uuid.uuid4()
    db.execute("select rec_set_user_variant('exp', %s, 'a', %s)", [user, ADMIN])
    db.execute("select rec_set_user_variant('exp', %s, 'd', %s)", [user, admin2])
    assert assignments(db, "exp") == {user: ("d", "manual", admin2)}


def test_reset_returns_what_the_user_now_gets(db: psycopg.Connection) -> None:
    create_experiment(db, "exp", AB, salt="s")
    user = uuids(1, seed=11)[0]
    rule = assign("s", user, AB)
    db.execute("select rec_set_user_variant('exp', %s, %s, %s)", [user, other(rule), ADMIN])
    assert scalar(db, "select rec_reset_user_variant('exp', %s, %s)", [user, ADMIN]) == rule
    assert assign_sql(db, "exp", user) == rule
    assert assignments(db, "exp") == {user: (rule, "auto", None)}


def test_reset_after_a_salt_rotation_uses_the_current_salt(db: psycopg.Connection) -> None:
    create_experiment(db, "exp", AB, salt="s")
    users = uuids(40, seed=12)
    for u in users:
        db.execute("select rec_set_user_variant('exp', %s, 'control', %s)", [u, ADMIN])
    salt = scalar(db, "select rec_rotate_salt('exp', %s)", [ADMIN])
    got = {u: scalar(db, "select rec_reset_user_variant('exp', %s, %s)", [u, ADMIN]) for u in users}
    assert got == {u: assign(salt, u, AB) for u in users}
    assert "treatment" in got.values()  # the reset really re-bucketed someone


def test_reset_keeps_an_existing_auto_assignment(db: psycopg.Connection) -> None:
    """Without an override, reset returns the stored (sticky) variant, even
    when the current salt would now give another one."""
    create_experiment(db, "exp", AB, salt="s")
    users = uuids(60, seed=13)
    before = assign_many(db, "exp", users)
    db.execute("update rec_experiments set salt = 'other' where key = 'exp'")
    moved = [u for u in users if assign("other", u, AB) != before[u]]
    assert moved
    for u in moved:
        assert scalar(db, "select rec_reset_user_variant('exp', %s, %s)", [u, ADMIN]) == before[u]
    assert assignments(db, "exp") == {u: (before[u], "auto", None) for u in users}


def test_reset_in_draft_returns_null_and_stores_nothing(db: psycopg.Connection) -> None:
    create_experiment(db, "exp", AB, salt="s", active=False)
    user = uuids(1, seed=14)[0]
    db.execute("select rec_set_user_variant('exp', %s, 'treatment', %s)", [user, ADMIN])
    assert scalar(db, "select rec_reset_user_variant('exp', %s, %s)", [user, ADMIN]) is None
    assert assignments(db, "exp") == {}


def test_draft_serves_only_manual_overrides_and_writes_nothing(db: psycopg.Connection) -> None:
    create_experiment(db, "exp", AB, salt="s", active=False)
    qa, nobody = uuids(2, seed=15)
    db.execute("select rec_set_user_variant('exp', %s, 'treatment', %s)", [qa, ADMIN])
    assert assign_sql(db, "exp", qa) == "treatment"
    assert assign_sql(db, "exp", nobody) is None
    assert scalar(db, "select rec_assign_variants(%s)", [nobody]) == {}
    assert scalar(db, "select rec_assign_variants(%s)", [qa]) == {}
    assert assignments(db, "exp") == {qa: ("treatment", "manual", uuid.UUID(ADMIN))}


def test_ended_serves_only_manual_overrides_and_writes_nothing(db: psycopg.Connection) -> None:
    create_experiment(db, "exp", AB, salt="s")
    auto_user, qa, newcomer = uuids(3, seed=16)
    auto = assign_sql(db, "exp", auto_user)
    db.execute("select rec_set_user_variant('exp', %s, 'control', %s)", [qa, ADMIN])
    db.execute("select rec_end_experiment('exp', %s)", [ADMIN])
    assert assign_sql(db, "exp", auto_user) is None  # an auto row is not a QA override
    assert assign_sql(db, "exp", qa) == "control"
    assert assign_sql(db, "exp", newcomer) is None
    assert scalar(db, "select rec_assign_variants(%s)", [newcomer]) == {}
    assert assignments(db, "exp") == {
        auto_user: (auto, "auto", None),
        qa: ("control", "manual", uuid.UUID(ADMIN)),
    }


def test_unknown_experiment_is_p0002(db: psycopg.Connection) -> None:
    user = uuids(1, seed=17)[0]
    create_experiment(db, "exists", AB)
    calls: list[tuple[str, list[Any]]] = [
        ("select rec_assign_variant('nope', %s)", [user]),
        ("select rec_assign_variant(null, %s)", [user]),
        ("select rec_set_user_variant('nope', %s, 'control', %s)", [user, ADMIN]),
        ("select rec_reset_user_variant('nope', %s, %s)", [user, ADMIN]),
    ]
    for query, params in calls:
        with raises_sqlstate(db, "P0002"):
            db.execute(query, params)
    assert scalar(db, "select count(*) from rec_user_experiment_assignments") == 0


@pytest.mark.parametrize("variant", ["nope", "Control", "control ", "", None])
def test_unknown_variant_is_22023(db: psycopg.Connection, variant: str | None) -> None:
    create_experiment(db, "exp", AB)
    user = uuids(1, seed=18)[0]
    with raises_sqlstate(db, "22023"):
        db.execute("select rec_set_user_variant('exp', %s, %s, %s)", [user, variant, ADMIN])
    assert assignments(db, "exp") == {}


def test_null_user_id_is_a_bad_argument(db: psycopg.Connection) -> None:
    """docs/reference.md §3: a bad argument is 22023, not a constraint error from inside."""
    create_experiment(db, "exp", AB)
    calls: list[tuple[str, list[Any]]] = [
        ("select rec_assign_variant('exp', null)", []),
        ("select rec_assign_variants(null)", []),
        ("select rec_set_user_variant('exp', null, 'control', %s)", [ADMIN]),
        ("select rec_reset_user_variant('exp', null, %s)", [ADMIN]),
    ]
    for query, params in calls:
        with raises_sqlstate(db, "22023"):
            db.execute(query, params)
    assert scalar(db, "select count(*) from rec_user_experiment_assignments") == 0


def test_assign_variants_is_the_map_over_active_experiments_only(db: psycopg.Connection) -> None:
    create_experiment(db, "one", AB, salt="s1")
    create_experiment(db, "two", ABC, salt="s2")
    create_experiment(db, "draft", AB, salt="s3", active=False)
    create_experiment(db, "over", AB, salt="s4")
    user, other_user = uuids(2, seed=19)
    # manual rows in the draft and the soon-ended one must not leak into the map
    db.execute("select rec_set_user_variant('draft', %s, 'treatment', %s)", [user, ADMIN])
    db.execute("select rec_set_user_variant('over', %s, 'treatment', %s)", [user, ADMIN])
    db.execute("select rec_end_experiment('over', %s)", [ADMIN])
    expected = {"one": assign("s1", user, AB), "two": assign("s2", user, ABC)}
    assert scalar(db, "select rec_assign_variants(%s)", [user]) == expected
    assert scalar(db, "select rec_assign_variants(%s)", [user]) == expected
    assert assignments(db, "one") == {user: (expected["one"], "auto", None)}
    assert assignments(db, "two") == {user: (expected["two"], "auto", None)}
    assert assignments(db, "draft") == {user: ("treatment", "manual", uuid.UUID(ADMIN))}
    # one experiment already stored (and overridden), the other assigned now
    forced = other(assign("s1", other_user, AB))
    db.execute("select rec_set_user_variant('one', %s, %s, %s)", [other_user, forced, ADMIN])
    assert scalar(db, "select rec_assign_variants(%s)", [other_user]) == {
        "one": forced,
        "two": assign("s2", other_user, ABC),
    }
    # agrees with the single-experiment RPC
    assert assign_sql(db, "two", other_user) == assign("s2", other_user, ABC)


def test_assign_variants_without_active_experiments_is_empty(db: psycopg.Connection) -> None:
    assert scalar(db, "select rec_assign_variants(%s)", [uuid.uuid4()]) == {}
    create_experiment(db, "draft", AB, active=False)
    assert scalar(db, "select rec_assign_variants(%s)", [uuid.uuid4()]) == {}
    assert scalar(db, "select count(*) from rec_user_experiment_assignments") == 0


def test_assign_variants_agrees_with_the_rule_for_many_users(db: psycopg.Connection) -> None:
    create_experiment(db, "one", AB, salt="s1")
    create_experiment(db, "two", ABC, salt="s2")
    users = uuids(500, seed=20)
    rows = db.execute("select u, rec_assign_variants(u) from unnest(%s::uuid[]) u", [users]).fetchall()
    assert {r[0]: r[1] for r in rows} == {
        u: {"one": assign("s1", u, AB), "two": assign("s2", u, ABC)} for u in users
    }
