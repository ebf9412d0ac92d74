"""Concurrent first calls agree (docs/reference.md §3): many connections, each in
its own thread, released together by a barrier."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, LiteralString, TypeVar

import psycopg

from tests.sql.conftest import ADMIN, assignments, connect_as_owner, create_experiment, uuids
from tests.sql.reference import assign

T = TypeVar("T")
THREADS = 8
AB = [{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}]
ABC = [{"name": "a", "weight": 1}, {"name": "b", "weight": 2}, {"name": "c", "weight": 3}]


def run_together(db_url: str, workers: list[Callable[[psycopg.Connection], T]]) -> list[T]:
    """Each worker gets its own owner connection; all start at the same moment."""
    conns = [connect_as_owner(db_url) for _ in workers]
    barrier = threading.Barrier(len(workers))

    def run(i: int) -> T:
        barrier.wait(timeout=30)
        return workers[i](conns[i])

    try:
        with ThreadPoolExecutor(len(workers)) as pool:
            return list(pool.map(run, range(len(workers))))
    finally:
        for c in conns:
            c.close()


def shuffled(items: list[Any], seed: int) -> list[Any]:
    copy = list(items)
    random.Random(seed).shuffle(copy)
    return copy


Worker = Callable[[psycopg.Connection], dict[uuid.UUID, Any]]


def per_user(query: LiteralString, users: list[uuid.UUID], seed: int) -> Worker:
    """A worker that runs `query` (one user parameter) for every user, in a
    seed-shuffled order, and returns each user's answer."""

    def go(conn: psycopg.Connection) -> dict[uuid.UUID, Any]:
        got = {}
        for u in shuffled(users, seed):
            row = conn.execute(query, [u]).fetchone()
            assert row is not None
            got[u] = row[0]
        return got

    return go


def test_concurrent_first_calls_store_one_row_and_agree(db: psycopg.Connection, db_url: str) -> None:
    create_experiment(db, "race", ABC, salt="s")
    users = uuids(200, seed=70)

    query = "select rec_assign_variant('race', %s)"
    # pairs of threads share an order, so they collide on every user
    results = run_together(db_url, [per_user(query, users, i // 2) for i in range(THREADS)])
    expected = {u: assign("s", u, ABC) for u in users}
    for got in results:
        assert got == expected
    assert db.execute(
        "select count(*), count(distinct user_id) from rec_user_experiment_assignments"
    ).fetchone() == (200, 200)
    assert assignments(db, "race") == {u: (expected[u], "auto", None) for u in users}


def test_concurrent_assign_variants_agree(db: psycopg.Connection, db_url: str) -> None:
    create_experiment(db, "one", AB, salt="s1")
    create_experiment(db, "two", ABC, salt="s2")
    create_experiment(db, "three", AB, salt="s3")
    users = uuids(300, seed=71)

    query = "select rec_assign_variants(%s)"
    results = run_together(db_url, [per_user(query, users, i // 2) for i in range(THREADS)])
    expected = {
        u: {"one": assign("s1", u, AB), "two": assign("s2", u, ABC), "three": assign("s3", u, AB)}
        for u in users
    }
    for got in results:
        assert got == expected
    assert db.execute("select count(*) from rec_user_experiment_assignments").fetchone() == (3 * len(users),)


def test_single_and_map_calls_race_and_agree(db: psycopg.Connection, db_url: str) -> None:
    create_experiment(db, "one", AB, salt="s1")
    create_experiment(db, "two", ABC, salt="s2")
    users = uuids(300, seed=72)

    def single(seed: int) -> Callable[[psycopg.Connection], dict[uuid.UUID, Any]]:
        def go(conn: psycopg.Connection) -> dict[uuid.UUID, Any]:
            got: dict[uuid.UUID, Any] = {}
            for u in shuffled(users, seed):
                # one call per transaction, as PostgREST makes them
                got[u] = {}
                for key in ("one", "two"):
                    row = conn.execute("select rec_assign_variant(%s, %s)", [key, u]).fetchone()
                    assert row is not None
                    got[u][key] = row[0]
            return got

        return go

    mapped = "select rec_assign_variants(%s)"
    results = run_together(
        db_url, [single(i // 2) if i % 2 else per_user(mapped, users, i // 2) for i in range(THREADS)]
    )
    expected = {u: {"one": assign("s1", u, AB), "two": assign("s2", u, ABC)} for u in users}
    for got in results:
        assert got == expected
    assert db.execute("select count(*) from rec_user_experiment_assignments").fetchone() == (2 * len(users),)


def test_override_racing_auto_assignment_ends_manual(db: psycopg.Connection, db_url: str) -> None:
    create_experiment(db, "race", AB, salt="s")
    users = uuids(200, seed=73)
    # the override is always the variant the rule would NOT give, so it shows
    forced = {u: "treatment" if assign("s", u, AB) == "control" else "control" for u in users}

    def auto(seed: int) -> Callable[[psycopg.Connection], None]:
        def go(conn: psycopg.Connection) -> None:
            for u in shuffled(users, seed):
                conn.execute("select rec_assign_variant('race', %s)", [u])

        return go

    def override(seed: int) -> Callable[[psycopg.Connection], None]:
        def go(conn: psycopg.Connection) -> None:
            for u in shuffled(users, seed):
                got = conn.execute(
                    "select rec_set_user_variant('race', %s, %s, %s)", [u, forced[u], ADMIN]
                ).fetchone()
                assert got == (forced[u],)

        return go

    run_together(db_url, [override(i) if i < 2 else auto(i) for i in range(THREADS)])
    assert assignments(db, "race") == {u: (forced[u], "manual", uuid.UUID(ADMIN)) for u in users}
    after = {u: db.execute("select rec_assign_variant('race', %s)", [u]).fetchone() for u in users}
    assert after == {u: (forced[u],) for u in users}
    assert db.execute("select count(*) from rec_audit_log where action = 'set_user_variant'").fetchone() == (
        400,
    )


def test_overlapping_scheduler_runs_rotate_each_experiment_once(db: psycopg.Connection, db_url: str) -> None:
    keys = [f"due{i}" for i in range(6)]
    for key in keys:
        create_experiment(db, key, AB, interval="1 hour")
    db.execute("update rec_experiments set created_at = now() - interval '2 hours'")
    create_experiment(db, "not-due", AB, interval="1 hour")

    def rotate(conn: psycopg.Connection) -> list[str]:
        return [r[0] for r in conn.execute("select * from rec_rotate_due_salts(admin_id => %s)", [ADMIN])]

    results = run_together(db_url, [rotate] * THREADS)
    rotated = [k for r in results for k in r]
    assert sorted(rotated) == keys
    assert db.execute("select count(*) from rec_audit_log where action = 'rotate_salt'").fetchone() == (6,)


def test_admin_action_in_flight_does_not_block_first_assignments(db: psycopg.Connection, db_url: str) -> None:
    """An admin transaction holding the experiment row (edit, rotation) must
    not stall the recommender's first-time assignments of that experiment."""
    create_experiment(db, "busy", AB, salt="s")
    user = uuids(1, seed=90)[0]
    admin = connect_as_owner(db_url)
    recommender = connect_as_owner(db_url)
    try:
        with admin.transaction():
            admin.execute("select rec_update_experiment('busy', %s, name => 'renamed')", [ADMIN])
            admin.execute("select rec_rotate_salt('busy', %s)", [ADMIN])
            # Blocking would surface as 55P03 after lock_timeout, not as a hang.
            recommender.execute("set lock_timeout = '3s'")
            row = recommender.execute("select rec_assign_variant('busy', %s)", [user]).fetchone()
            assert row == (assign("s", user, AB),)  # the committed salt, not the in-flight one
    finally:
        admin.close()
        recommender.close()
    assert assignments(db, "busy")[user][1] == "auto"
