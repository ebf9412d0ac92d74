"""The audit chain read and checked from outside the database
(docs/audit.md): rec_audit_chain_head(), rec_audit_chain_rows() with the
exact text each hash covers, the chain columns of rec_audit_entries(), and
shared.audit_chain rebuilding that text byte for byte from the fields."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from devstack import audit
from shared import audit_chain
from tests.sql.conftest import ADMIN, acting_as, create_experiment, raises_sqlstate

AB = [{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}]

# details the audited functions never write, to pin the jsonb rendering:
# key order (byte length, then bytes), numbers as stored, escapes, unicode
ODD_DETAILS: list[Any] = [
    {"bb": 1, "a": 2, "ccc": {"é": True, "z": None, "": []}},
    {"n": [1.50, 1e3, -0.0, 12345678901234567890, 1e-7, 2.5e-10]},
    {"s": 'quote " backslash \\ nl \n tab \t bell \x07 del \x7f \u2028 emoji 😀 slash /'},
    {"nested": [[], {}, [{"k": "v"}], False, "ünï"]},
    {"ключ": "значение", "日本": "語", "ab": "x", "b": "y"},
]
# as text, so the literals reach the database as written
RAW_DETAILS = ['{"n": [1.50, 1E3, 0.000, -0, 1e-7, -12.340e2], "dup": 1, "dup": 2}', '{"u": "\\u00e9\\n"}']


def rows_of(conn: psycopg.Connection, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
    with acting_as(conn, "service_role"):
        cur = conn.execute("select * from rec_audit_chain_rows(%s, %s)", [after, limit])
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def head_of(conn: psycopg.Connection) -> tuple[int, str | None]:
    with acting_as(conn, "service_role"):
        row = conn.execute("select chain_seq, row_hash from rec_audit_chain_head()").fetchone()
    assert row is not None
    return (row[0], row[1])


def history(conn: psycopg.Connection) -> None:
    create_experiment(conn, "exp", AB)
    conn.execute("select rec_set_user_variant('exp', %s, 'control', %s)", [uuid.uuid4(), ADMIN])
    conn.execute("select rec_end_experiment('exp', %s)", [ADMIN])


def test_an_empty_chain_is_the_genesis(db: psycopg.Connection) -> None:
    assert head_of(db) == (0, None)
    assert rows_of(db) == []
    head, rows = audit.read_chain(db)
    assert (head, rows) == ((0, None), [])
    assert audit_chain.check_rows(rows, head) == []


def test_head_and_rows_in_chain_order_with_the_hashed_text(db: psycopg.Connection) -> None:
    history(db)
    rows = rows_of(db)
    assert [r["chain_seq"] for r in rows] == [1, 2, 3, 4]
    assert [r["action"] for r in rows] == [
        "create_experiment",
        "activate_experiment",
        "set_user_variant",
        "end_experiment",
    ]
    prev = None
    for r in rows:
        assert r["prev_hash"] == prev
        assert hashlib.sha256(r["hashed_text"].encode()).hexdigest() == r["row_hash"]
        assert r["hashed_text"].startswith(
            (prev or "") + "\n[" + str(r["chain_seq"]) + ", " + str(r["id"]) + ", "
        )
        prev = r["row_hash"]
    assert head_of(db) == (4, prev)


def test_rows_page_by_chain_seq(db: psycopg.Connection) -> None:
    history(db)
    assert [r["chain_seq"] for r in rows_of(db, 0, 3)] == [1, 2, 3]
    assert [r["chain_seq"] for r in rows_of(db, 3, 3)] == [4]
    assert rows_of(db, 4) == []


@pytest.mark.parametrize("after, limit", [(-1, 10), (None, 10), (0, 0), (0, 10001), (0, None)])
def test_rows_refuse_bad_paging(db: psycopg.Connection, after: Any, limit: Any) -> None:
    with acting_as(db, "service_role"), raises_sqlstate(db, "22023"):
        db.execute("select * from rec_audit_chain_rows(%s, %s)", [after, limit])


def test_python_rebuilds_every_text_byte_for_byte(db: psycopg.Connection) -> None:
    """Odd details (written by the owner, as nothing else can): the text
    rebuilt from the fields is the database's, and so is the hash."""
    history(db)
    for details in ODD_DETAILS:
        db.execute(
            "insert into rec_audit_log (experiment_id, action, details) values (%s, 'note', %s)",
            [uuid.uuid4(), json.dumps(details, ensure_ascii=False)],
        )
    for raw in RAW_DETAILS:
        db.execute("insert into rec_audit_log (action, details) values ('note', %s::jsonb)", [raw])
    head, rows = audit.read_chain(db)
    assert len(rows) == 4 + len(ODD_DETAILS) + len(RAW_DETAILS)
    for row in rows:
        assert row.expected_text() == row.hashed_text, row.details
    assert audit_chain.check_rows(rows, head) == []


def test_the_session_time_zone_changes_nothing(db: psycopg.Connection) -> None:
    history(db)
    db.execute("set timezone = 'Pacific/Chatham'")
    head, rows = audit.read_chain(db)
    assert audit_chain.check_rows(rows, head) == []


def test_audit_entries_carry_the_chain_columns(db: psycopg.Connection) -> None:
    history(db)
    by_id = {r["id"]: r for r in rows_of(db)}
    with acting_as(db, "service_role"):
        cur = db.execute("select * from rec_audit_entries()")
        names = [d.name for d in cur.description or []]
        entries = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    assert names[-3:] == ["chain_seq", "prev_hash", "row_hash"]
    assert [e["chain_seq"] for e in entries] == [4, 3, 2, 1]  # newest first
    for e in entries:
        assert (e["prev_hash"], e["row_hash"]) == (by_id[e["id"]]["prev_hash"], by_id[e["id"]]["row_hash"])


def test_only_service_role_reads_the_chain(db: psycopg.Connection) -> None:
    for role in ("anon", "authenticated"):
        for call in ("select * from rec_audit_chain_head()", "select * from rec_audit_chain_rows()"):
            with acting_as(db, role), raises_sqlstate(db, "42501"):
                db.execute(call)  # type: ignore[arg-type]


def test_a_text_that_does_not_match_its_fields_is_reported(db: psycopg.Connection) -> None:
    """Whatever serves the rows, the text is rebuilt from the fields, not trusted."""
    history(db)
    head, rows = audit.read_chain(db)
    lying = dataclasses.replace(rows[1], hashed_text=rows[1].hashed_text.replace("activate", "activatE"))
    problems = audit_chain.check_rows([rows[0], lying, *rows[2:]], head)
    assert problems == [
        f"row id {rows[1].id} (chain_seq 2): its fields do not match the text its hash covers (rewritten)"
    ]


def test_the_documented_example_hashes_as_documented() -> None:
    """docs/audit.md's worked example, re-derived: the text is the rebuilt one, the hash its SHA-256."""
    doc = (Path(__file__).parents[2] / "docs" / "audit.md").read_text()
    array = next(line.strip() for line in doc.splitlines() if line.startswith("    [1, 1, "))
    row_hash = doc.split("its `row_hash` is\n`")[1].split("`")[0]
    row = audit_chain.ChainRow(
        1,
        1,
        uuid.UUID("5c2e0b7a-3f1d-4c6e-9a8b-1d2e3f4a5b6c"),
        "create_experiment",
        uuid.UUID("00000000-0000-4000-8000-00000000ad01"),
        '{"salt": "s1", "key": "home", "variants": [{"weight": 1, "name": "control"}]}',
        dt.datetime(2026, 12, 8, 2, 0, 0, 123456, tzinfo=dt.UTC),
        None,
        row_hash,
        "\n" + array,
    )
    assert audit_chain.check_rows([row], (1, row_hash)) == []
