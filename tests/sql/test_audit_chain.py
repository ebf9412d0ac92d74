"""The audit hash chain: every committed audit row is chained in commit order,
concurrent writers never fork it, rows from before the chain existed are
chained by its migration, and rec_verify_audit_chain() reports each kind of
tampering by the table owner (docs/reference.md §5)."""

from __future__ import annotations

import shutil
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from devstack import migrate, postgres
from devstack.platform import OWNER
from tests.sql.conftest import ADMIN, acting_as, connect_as_owner, create_experiment, scalar

AB = [{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}]
CHAIN_MIGRATION = "20261129100000"


def verify(conn: psycopg.Connection) -> list[tuple[int | None, str]]:
    with acting_as(conn, "service_role"):
        return [(r[0], r[1]) for r in conn.execute("select id, problem from rec_verify_audit_chain()")]


def chain(conn: psycopg.Connection) -> list[tuple[int, int, str | None, str]]:
    """(id, chain_seq, prev_hash, row_hash) in chain order."""
    return [
        (r[0], r[1], r[2], r[3])
        for r in conn.execute(
            "select id, chain_seq, prev_hash, row_hash from rec_audit_log order by chain_seq"
        )
    ]


def assert_linked(conn: psycopg.Connection, count: int) -> None:
    rows = chain(conn)
    assert [r[1] for r in rows] == list(range(1, count + 1))
    assert [r[2] for r in rows] == [None] + [r[3] for r in rows[:-1]]
    assert len({r[3] for r in rows}) == count
    assert verify(conn) == []


@pytest.fixture
def history(db: psycopg.Connection) -> list[int]:
    """Five audited actions; their audit ids in chain order."""
    create_experiment(db, "exp", AB)  # create + activate
    db.execute("select rec_set_user_variant('exp', %s, 'control', %s)", [uuid.uuid4(), ADMIN])
    db.execute("select rec_update_experiment('exp', %s, name => 'N')", [ADMIN])
    db.execute("select rec_end_experiment('exp', %s)", [ADMIN])
    assert_linked(db, 5)
    return [r[0] for r in chain(db)]


def test_an_empty_log_is_intact(db: psycopg.Connection) -> None:
    assert verify(db) == []


def test_each_committed_audit_row_is_chained(db: psycopg.Connection, history: list[int]) -> None:
    rows = db.execute("select action, length(row_hash) from rec_audit_log order by chain_seq").fetchall()
    assert rows == [
        ("create_experiment", 64),
        ("activate_experiment", 64),
        ("set_user_variant", 64),
        ("update_experiment", 64),
        ("end_experiment", 64),
    ]


def test_inserters_cannot_choose_their_place_in_the_chain(db: psycopg.Connection, history: list[int]) -> None:
    db.execute(
        "insert into rec_audit_log (action, chain_seq, prev_hash, row_hash) values ('note', 1, 'x', 'y')"
    )
    assert_linked(db, 6)


def test_an_owner_insert_is_chained_when_it_commits(db: psycopg.Connection, history: list[int]) -> None:
    """Only the owner (the audited functions, the SQL editor) adds audit rows;
    the chaining trigger places them at commit."""
    with db.transaction():
        db.execute("insert into rec_audit_log (action, actor_id) values ('note', %s)", [ADMIN])
        assert scalar(db, "select chain_seq from rec_audit_log where action = 'note'") is None
    assert_linked(db, 6)


def test_the_hash_does_not_depend_on_the_session_time_zone(
    db: psycopg.Connection, history: list[int]
) -> None:
    db.execute("set timezone = 'Asia/Kathmandu'")
    assert verify(db) == []


def test_an_edited_row_is_reported(db: psycopg.Connection, history: list[int]) -> None:
    db.execute(
        "update rec_audit_log set details = details || '{\"forged\": true}' where id = %s", [history[2]]
    )
    assert verify(db) == [
        (history[2], "its content does not match its row_hash (the row was changed after it was written)")
    ]


def test_a_forged_actor_is_reported(db: psycopg.Connection, history: list[int]) -> None:
    db.execute("update rec_audit_log set actor_id = gen_random_uuid() where id = %s", [history[0]])
    assert [r[0] for r in verify(db)] == [history[0]]


def test_a_deleted_row_is_reported_at_the_gap(db: psycopg.Connection, history: list[int]) -> None:
    db.execute("delete from rec_audit_log where id = %s", [history[1]])
    problems = verify(db)
    assert [p[0] for p in problems] == [history[2]]
    assert "chain position 3 comes after 1: 1 row(s) before it are missing" in problems[0][1]
    assert "prev_hash is not the hash of the row before it" in problems[0][1]


def test_a_deleted_last_row_is_reported(db: psycopg.Connection, history: list[int]) -> None:
    db.execute("delete from rec_audit_log where id = %s", [history[-1]])
    problems = verify(db)
    assert [p[0] for p in problems] == [history[-2]]
    assert "the chain head records 5 chained row(s) but the chain ends at position 4" in problems[0][1]


def test_reordered_rows_are_reported(db: psycopg.Connection, history: list[int]) -> None:
    """Swap the chain places of rows 2 and 3: both, and the row after them, break."""
    a, b = history[1], history[2]
    with db.transaction():
        db.execute("update rec_audit_log set chain_seq = -1 where id = %s", [a])
        db.execute("update rec_audit_log set chain_seq = 2 where id = %s", [b])
        db.execute("update rec_audit_log set chain_seq = 3 where id = %s", [a])
    problems = dict(verify(db))
    assert sorted(problems) == sorted([a, b, history[3]])
    for row in (a, b):
        assert "prev_hash is not the hash of the row before it" in problems[row]
        assert "does not match its row_hash" in problems[row]
    assert problems[history[3]].startswith("its prev_hash is not the hash of the row before it")


def test_a_row_outside_the_chain_is_reported(db: psycopg.Connection, history: list[int]) -> None:
    db.execute("update rec_audit_log set chain_seq = null where id = %s", [history[4]])
    problems = verify(db)
    assert (history[4], problems[0][1]) in problems
    assert "not in the chain" in problems[0][1]


def test_concurrent_writers_never_fork_the_chain(db: psycopg.Connection, db_url: str) -> None:
    """Eight transactions each write two audit rows and then commit at the same
    moment: the chain takes them one transaction after the other."""
    threads, rounds = 8, 3
    for i in range(threads):
        create_experiment(db, f"e{i}", AB)
    start = len(chain(db))
    conns = [connect_as_owner(db_url) for _ in range(threads)]
    barrier = threading.Barrier(threads)

    def write(i: int) -> list[list[int]]:
        conn, txs = conns[i], []
        for _ in range(rounds):
            with conn.transaction():
                conn.execute(
                    "select rec_set_user_variant(%s, %s, 'control', %s)", [f"e{i}", uuid.uuid4(), ADMIN]
                )
                conn.execute(
                    "select rec_update_experiment(%s, %s, name => %s)", [f"e{i}", ADMIN, str(uuid.uuid4())]
                )
                # this transaction's rows: not chained before it commits
                ids = [r[0] for r in conn.execute("select id from rec_audit_log where chain_seq is null")]
                barrier.wait(timeout=30)
            txs.append(ids)
        return txs

    try:
        with ThreadPoolExecutor(threads) as pool:
            per_thread = list(pool.map(write, range(threads)))
    finally:
        for c in conns:
            c.close()
    assert_linked(db, start + threads * rounds * 2)
    seq = {r[0]: r[1] for r in chain(db)}
    for txs in per_thread:
        for ids in txs:
            assert len(ids) == 2
            first, second = sorted(seq[i] for i in ids)
            assert second == first + 1, "a transaction's audit rows are adjacent in the chain"


def test_the_migration_chains_existing_rows(pg_server: postgres.Server, tmp_path: Path) -> None:
    before = tmp_path / "before"
    before.mkdir()
    for path in migrate.discover():
        if path.version < CHAIN_MIGRATION:
            shutil.copy(path.path, before / path.path.name)
    with postgres.fresh_database(pg_server) as url:
        migrate.migrate(url, directory=before)
        with connect_as_owner(url) as conn:
            for key in ("old1", "old2"):
                conn.execute(
                    "select rec_create_experiment(%s, %s::jsonb, %s)",
                    [key, '[{"name": "a", "weight": 1}]', ADMIN],
                )
            conn.execute("select rec_activate_experiment('old1', %s)", [ADMIN])
        migrate.migrate(url)
        with connect_as_owner(url) as conn:
            conn.execute("select rec_end_experiment('old1', %s)", [ADMIN])
            assert_linked(conn, 4)
            assert [r[0] for r in conn.execute("select action from rec_audit_log order by chain_seq")] == [
                "create_experiment",
                "create_experiment",
                "activate_experiment",
                "end_experiment",
            ]
            assert scalar(conn, "select current_user") == OWNER
