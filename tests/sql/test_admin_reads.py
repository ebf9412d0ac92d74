"""What the dashboard reads: experiment lists and details, user search, one
user's assignments, the audit trail (docs/reference.md §3)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import psycopg
import pytest

from tests.sql.conftest import (
    ADMIN,
    create_experiment,
    experiment,
    experiment_as_reported,
    raises_sqlstate,
    scalar,
    uuids,
)
from tests.sql.reference import assign

AB = [{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}]
ABC = [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}, {"name": "c", "weight": 0}]


def dict_rows(conn: psycopg.Connection, query: str, params: Any = None) -> list[dict[str, Any]]:
    cur = conn.execute(query, params)
    assert cur.description is not None
    names = [d.name for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


@pytest.fixture
def three(db: psycopg.Connection) -> psycopg.Connection:
    """draft 'd'; active 'a' with 3 auto + 1 manual; ended 'e' with 2 auto."""
    create_experiment(db, "d", AB, active=False)
    create_experiment(db, "a", ABC, salt="sa")
    create_experiment(db, "e", AB)
    users = uuids(4, seed=80)
    for u in users[:3]:
        db.execute("select rec_assign_variant('a', %s)", [u])
    db.execute("select rec_set_user_variant('a', %s, 'c', %s)", [users[3], ADMIN])
    for u in users[:2]:
        db.execute("select rec_assign_variant('e', %s)", [u])
    db.execute("select rec_end_experiment('e', %s)", [ADMIN])
    return db


# --- rec_list_experiments / rec_active_experiments ------------------------------


def test_list_experiments_with_counts(three: psycopg.Connection) -> None:
    rows = {r["key"]: r for r in dict_rows(three, "select * from rec_list_experiments()")}
    assert set(rows) == {"d", "a", "e"}
    assert {k: (r["status"], r["assigned_users"], r["manual_users"]) for k, r in rows.items()} == {
        "d": ("draft", 0, 0),
        "a": ("active", 4, 1),
        "e": ("ended", 2, 0),
    }
    assert rows["a"]["variants"] == ABC and rows["a"]["salt"] == "sa"


@pytest.mark.parametrize("status", ["draft", "active", "ended"])
def test_list_experiments_by_status(three: psycopg.Connection, status: str) -> None:
    rows = dict_rows(three, "select key, status from rec_list_experiments(status => %s)", [status])
    assert rows == [{"key": status[0], "status": status}]


@pytest.mark.parametrize("status", ["paused", "ACTIVE", "", "active "])
def test_list_experiments_refuses_unknown_status(three: psycopg.Connection, status: str) -> None:
    with raises_sqlstate(three, "22023"):
        three.execute("select * from rec_list_experiments(%s)", [status])


def test_active_experiments(three: psycopg.Connection) -> None:
    rows = dict_rows(three, "select * from rec_active_experiments()")
    assert len(rows) == 1
    e = experiment(three, "a")
    row = rows[0]
    assert (row["key"], row["variants"]) == ("a", ABC)
    assert row["started_at"] == dt.datetime.fromisoformat(e["started_at"])
    assert "name" in row


# --- rec_get_experiment ------------------------------------------------------------


def counts_by_variant(payload: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {c["variant"]: (c["auto"], c["manual"]) for c in payload["assignment_counts"]}


def test_get_experiment_counts_per_variant_and_mode(three: psycopg.Connection) -> None:
    got = scalar(three, "select rec_get_experiment('a')")
    e = experiment_as_reported(three, "a")
    assert {k: got[k] for k in e} == e
    stored = three.execute(
        "select variant, count(*) filter (where assignment_mode = 'auto'),"
        "       count(*) filter (where assignment_mode = 'manual')"
        "  from rec_user_experiment_assignments where experiment_id = %s group by variant",
        [e["id"]],
    ).fetchall()
    expected = {"a": (0, 0), "b": (0, 0), "c": (0, 0)}
    expected.update({v: (auto, manual) for v, auto, manual in stored})
    assert counts_by_variant(got) == expected
    assert expected["c"] == (0, 1)
    assert sum(a + m for a, m in expected.values()) == 4
    draft = scalar(three, "select rec_get_experiment('d')")
    assert draft["status"] == "draft" and counts_by_variant(draft) == {"control": (0, 0), "treatment": (0, 0)}


def test_get_experiment_unknown_is_p0002(three: psycopg.Connection) -> None:
    with raises_sqlstate(three, "P0002"):
        three.execute("select rec_get_experiment('zzz')")


# --- rec_search_users ------------------------------------------------------------

EMAILS = [
    "Alice@Example.com",
    "alice.smith@x.org",
    "bob@x.org",
    "al_x@x.org",
    "al%y@x.org",
    "alpha@x.org",
    "back\\slash@x.org",
]


@pytest.fixture
def accounts(db: psycopg.Connection) -> dict[str, uuid.UUID]:
    """auth.users rows, written as the platform (superuser) does."""
    ids = dict(zip(EMAILS, uuids(len(EMAILS), seed=81), strict=True))
    db.execute("reset role")
    try:
        with db.cursor() as cur:
            cur.executemany(
                "insert into auth.users (id, email) values (%s, %s)", [(i, e) for e, i in ids.items()]
            )
    finally:
        db.execute("set role rec_migrator")
    return ids


def search(conn: psycopg.Connection, query: str, max_rows: int | None = None) -> list[dict[str, Any]]:
    if max_rows is None:
        return dict_rows(conn, "select * from rec_search_users(%s)", [query])
    return dict_rows(conn, "select * from rec_search_users(%s, %s)", [query, max_rows])


def emails(rows: list[dict[str, Any]]) -> set[str]:
    return {r["email"] for r in rows}


def test_search_by_exact_uuid_of_an_account(db: psycopg.Connection, accounts: dict[str, uuid.UUID]) -> None:
    bob = accounts["bob@x.org"]
    create_experiment(db, "exp", AB)
    db.execute("select rec_assign_variant('exp', %s)", [bob])
    rows = search(db, str(bob))
    assert [(r["user_id"], r["email"], r["assignments"]) for r in rows] == [(bob, "bob@x.org", 1)]
    assert [r["user_id"] for r in search(db, str(bob).upper())] == [bob]
    assert [r["user_id"] for r in search(db, f"  {bob}  ")] == [bob]


def test_search_finds_ids_seen_only_in_assignments(
    db: psycopg.Connection, accounts: dict[str, uuid.UUID]
) -> None:
    create_experiment(db, "exp", AB)
    create_experiment(db, "exp2", AB)
    anonymous, stranger = uuids(2, seed=82)
    db.execute("select rec_assign_variants(%s)", [anonymous])
    rows = search(db, str(anonymous))
    assert [(r["user_id"], r["email"], r["assignments"]) for r in rows] == [(anonymous, None, 2)]
    assert search(db, str(stranger)) == []


def test_search_by_email_prefix_is_case_insensitive(
    db: psycopg.Connection, accounts: dict[str, uuid.UUID]
) -> None:
    assert emails(search(db, "ALI")) == {"Alice@Example.com", "alice.smith@x.org"}
    assert emails(search(db, "alice@example.COM")) == {"Alice@Example.com"}
    assert emails(search(db, "a")) == {
        "Alice@Example.com",
        "alice.smith@x.org",
        "al_x@x.org",
        "al%y@x.org",
        "alpha@x.org",
    }
    assert search(db, "x.org") == []  # a prefix, not a substring
    rows = search(db, "bob")
    assert [(r["user_id"], r["assignments"]) for r in rows] == [(accounts["bob@x.org"], 0)]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("al_", {"al_x@x.org"}),
        ("al%", {"al%y@x.org"}),
        ("%", set()),
        ("_", set()),
        ("back\\", {"back\\slash@x.org"}),
        ("\\", set()),
    ],
)
def test_search_treats_like_wildcards_literally(
    db: psycopg.Connection, accounts: dict[str, uuid.UUID], query: str, expected: set[str]
) -> None:
    assert emails(search(db, query)) == expected


def test_search_max_rows(db: psycopg.Connection, accounts: dict[str, uuid.UUID]) -> None:
    assert len(search(db, "a", 2)) == 2
    assert len(search(db, "a", 1000)) == 5
    db.execute("reset role")
    try:
        with db.cursor() as cur:
            cur.executemany(
                "insert into auth.users (id, email) values (%s, %s)",
                [(uuid.uuid4(), f"many{i:02}@x.org") for i in range(30)],
            )
    finally:
        db.execute("set role rec_migrator")
    assert len(search(db, "many")) == 20  # the default
    for bad in (0, -1, 1001):
        with raises_sqlstate(db, "22023"):
            search(db, "a", bad)
    with raises_sqlstate(db, "22023"):
        db.execute("select * from rec_search_users('a', null)")


@pytest.mark.parametrize("query", ["", "   ", "x" * 321])
def test_search_refuses_empty_or_huge_queries(db: psycopg.Connection, query: str) -> None:
    with raises_sqlstate(db, "22023"):
        search(db, query)


# --- rec_user_assignments ----------------------------------------------------------


def test_user_assignments_with_rule_variant(db: psycopg.Connection) -> None:
    create_experiment(db, "one", AB, salt="s1")
    create_experiment(db, "two", ABC, salt="s2")
    create_experiment(db, "three", AB, salt="s3")
    create_experiment(db, "untouched", AB)
    users = uuids(30, seed=83)
    user = users[0]
    for key in ("one", "two", "three"):
        db.execute("select rec_assign_variant(%s, %s)", [key, user])
    db.execute("select rec_set_user_variant('two', %s, 'c', %s)", [user, ADMIN])
    db.execute("update rec_experiments set salt = 's3-new' where key = 'three'")
    db.execute("select rec_end_experiment('one', %s)", [ADMIN])
    rows = {r["key"]: r for r in dict_rows(db, "select * from rec_user_assignments(%s)", [user])}
    assert set(rows) == {"one", "two", "three"}
    assert rows["one"]["status"] == "ended" and rows["one"]["assignment_mode"] == "auto"
    assert rows["one"]["variant"] == assign("s1", user, AB) and rows["one"]["assigned_by"] is None
    assert rows["two"]["variant"] == "c" and rows["two"]["assignment_mode"] == "manual"
    assert rows["two"]["assigned_by"] == uuid.UUID(ADMIN) and rows["two"]["assigned_at"] is not None
    assert rows["three"]["variant"] == assign("s3", user, AB)
    # rule_variant: what §2 gives today, with the current salt
    assert rows["one"]["rule_variant"] == assign("s1", user, AB)
    assert rows["two"]["rule_variant"] == assign("s2", user, ABC)
    assert rows["three"]["rule_variant"] == assign("s3-new", user, AB)
    assert dict_rows(db, "select * from rec_user_assignments(%s)", [users[1]]) == []
    # and for many users at once
    for u in users:
        db.execute("select rec_assign_variant('three', %s)", [u])
    got = db.execute(
        "select u, (select rule_variant from rec_user_assignments(u) r"
        "            where r.key = 'three') from unnest(%s::uuid[]) u",
        [users],
    ).fetchall()
    assert dict(got) == {u: assign("s3-new", u, AB) for u in users}


# --- rec_audit_entries ---------------------------------------------------------------


def test_audit_entries_newest_first(db: psycopg.Connection) -> None:
    create_experiment(db, "one", AB)  # create, activate
    create_experiment(db, "two", AB, active=False)  # create
    db.execute("select rec_update_experiment('two', %s, name => 'Two')", [ADMIN])
    db.execute("select rec_end_experiment('one', %s)", [ADMIN])
    rows = dict_rows(db, "select * from rec_audit_entries()")
    assert [(r["experiment_key"], r["action"]) for r in rows] == [
        ("one", "end_experiment"),
        ("two", "update_experiment"),
        ("two", "create_experiment"),
        ("one", "activate_experiment"),
        ("one", "create_experiment"),
    ]
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)
    assert all(r["actor_id"] == uuid.UUID(ADMIN) for r in rows)
    assert [r["action"] for r in dict_rows(db, "select * from rec_audit_entries('one')")] == [
        "end_experiment",
        "activate_experiment",
        "create_experiment",
    ]
    assert [r["action"] for r in dict_rows(db, "select * from rec_audit_entries(max_rows => 2)")] == [
        "end_experiment",
        "update_experiment",
    ]
    assert [
        r["action"]
        for r in dict_rows(db, "select * from rec_audit_entries(experiment_key => 'two', max_rows => 1)")
    ] == ["update_experiment"]


def test_audit_entries_refuse_bad_arguments(db: psycopg.Connection) -> None:
    create_experiment(db, "one", AB)
    with raises_sqlstate(db, "P0002"):
        db.execute("select * from rec_audit_entries('nope')")
    for bad in (0, -5, 100000):
        with raises_sqlstate(db, "22023"):
            db.execute("select * from rec_audit_entries(null, %s)", [bad])
