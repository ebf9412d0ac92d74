"""rec_list_experiments: newest first, search of key or name, paging with
total_rows, and the arguments it refuses."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.sql.conftest import ADMIN, raises_sqlstate, scalar, snapshot

AB = '[{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}]'
# key, name, status; created in this order, one transaction each, so newest first is the reverse
EXPERIMENTS = [
    ("home-feed", "Home feed blend", "active"),
    ("search_rank", "Search ranking", "draft"),
    ("diversity", "Diversity CAP", "ended"),
    ("cap-100", "100% off_topic", "active"),
    ("promo", None, "draft"),
]


@pytest.fixture
def five(db: psycopg.Connection) -> psycopg.Connection:
    for key, name, status in EXPERIMENTS:
        db.execute("select rec_create_experiment(%s, %s::jsonb, %s, name => %s)", [key, AB, ADMIN, name])
        if status != "draft":
            db.execute("select rec_activate_experiment(%s, %s)", [key, ADMIN])
        if status == "ended":
            db.execute("select rec_end_experiment(%s, %s)", [key, ADMIN])
    return db


def keys(conn: psycopg.Connection, query: str, params: Any = None) -> list[tuple[str, int]]:
    return [(r[0], r[1]) for r in conn.execute(query, params).fetchall()]


def listing(conn: psycopg.Connection, **kw: Any) -> list[tuple[str, int]]:
    named = ", ".join(f"{k} => %({k})s" for k in kw)
    return keys(conn, f"select key, total_rows from rec_list_experiments({named})", kw)


NEWEST_FIRST = [key for key, _, _ in reversed(EXPERIMENTS)]


def test_newest_first_and_every_row_carries_the_total(five: psycopg.Connection) -> None:
    assert listing(five) == [(k, 5) for k in NEWEST_FIRST]


def test_old_status_only_calls_keep_working(five: psycopg.Connection) -> None:
    assert keys(five, "select key, total_rows from rec_list_experiments('active')") == [
        ("cap-100", 2),
        ("home-feed", 2),
    ]
    assert listing(five, status="draft") == [("promo", 2), ("search_rank", 2)]
    assert scalar(five, "select count(*) from pg_proc where proname = 'rec_list_experiments'") == 1


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("feed", ["home-feed"]),
        ("FEED", ["home-feed"]),  # case-insensitive
        ("cap", ["cap-100", "diversity"]),  # key of one, name of the other
        ("rank", ["search_rank"]),
        ("_", ["cap-100", "search_rank"]),  # literal, not a LIKE wildcard
        ("%", ["cap-100"]),
        ("o", ["promo", "cap-100", "home-feed"]),
        ("", NEWEST_FIRST),
        ("nothing-like-it", []),
    ],
)
def test_search_is_a_case_insensitive_substring_of_key_or_name(
    five: psycopg.Connection, search: str, expected: list[str]
) -> None:
    assert listing(five, search=search) == [(k, len(expected)) for k in expected]


def test_status_and_search_combine(five: psycopg.Connection) -> None:
    assert listing(five, status="active", search="CAP") == [("cap-100", 1)]
    assert listing(five, status="ended", search="feed") == []


def test_pages_cover_the_list_once_in_order(five: psycopg.Connection) -> None:
    pages = [listing(five, max_rows=2, offset_rows=offset) for offset in (0, 2, 4)]
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [k for page in pages for k, _ in page] == NEWEST_FIRST
    assert {t for page in pages for _, t in page} == {5}
    assert listing(five, max_rows=2, offset_rows=5) == []
    assert listing(five, offset_rows=3) == [(k, 5) for k in NEWEST_FIRST[3:]]
    assert listing(five, search="o", max_rows=1, offset_rows=1) == [("cap-100", 3)]


def test_null_paging_arguments_mean_all(five: psycopg.Connection) -> None:
    assert listing(five, max_rows=None, offset_rows=None) == [(k, 5) for k in NEWEST_FIRST]


@pytest.mark.parametrize(
    "kw",
    [
        {"max_rows": 0},
        {"max_rows": -1},
        {"max_rows": 1001},
        {"offset_rows": -1},
        {"status": "paused"},
        {"status": "Active", "search": "feed"},
    ],
    ids=["max-0", "max-negative", "max-1001", "offset-negative", "status-unknown", "status-case"],
)
def test_bad_arguments_are_22023(five: psycopg.Connection, kw: dict[str, Any]) -> None:
    before = snapshot(five)
    with raises_sqlstate(five, "22023"):
        listing(five, **kw)
    assert snapshot(five) == before


def test_counts_per_variant_and_mode(five: psycopg.Connection) -> None:
    five.execute("select rec_set_user_variant('home-feed', gen_random_uuid(), 'treatment', %s)", [ADMIN])
    for _ in range(3):
        five.execute("select rec_assign_variant('home-feed', gen_random_uuid())")
    row = five.execute(
        "select assigned_users, manual_users, assignment_counts from rec_list_experiments(search => 'home')"
    ).fetchone()
    assert row is not None
    total, manual, counts = row
    assert (total, manual) == (4, 1)
    assert [c["variant"] for c in counts] == ["control", "treatment"]
    assert sum(c["auto"] for c in counts) == 3
    assert counts[1]["manual"] == 1
