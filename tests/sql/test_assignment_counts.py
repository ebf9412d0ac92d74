"""Assignment counts kept as assignments change (rec_internal.assignment_counts):
always equal to a live count, whatever sequence of assigns, overrides,
resets, reassigning rotations and direct writes ran, from however many
connections (each adds to its own shard); and the backfill of a database
that already had assignments."""

from __future__ import annotations

import random
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from devstack import migrate, postgres
from tests.sql.conftest import ADMIN, connect_as_owner, create_experiment, scalar, uuids

AB = [{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}]
ABC = [{"name": "a", "weight": 2}, {"name": "b", "weight": 1}, {"name": "c", "weight": 1}]
COUNTS_MIGRATION = "20261208600100"


def kept(conn: psycopg.Connection) -> dict[tuple[str, str, str], int]:
    rows = conn.execute(
        "select x.key, c.variant, c.assignment_mode, sum(c.users)"
        "  from rec_internal.assignment_counts c join rec_experiments x on x.id = c.experiment_id"
        " group by 1, 2, 3 having sum(c.users) <> 0"
    ).fetchall()
    return {(r[0], r[1], r[2]): int(r[3]) for r in rows}


def live(conn: psycopg.Connection) -> dict[tuple[str, str, str], int]:
    rows = conn.execute(
        "select x.key, a.variant, a.assignment_mode, count(*)"
        "  from rec_user_experiment_assignments a join rec_experiments x on x.id = a.experiment_id"
        " group by 1, 2, 3"
    ).fetchall()
    return {(r[0], r[1], r[2]): int(r[3]) for r in rows}


def listed(conn: psycopg.Connection) -> dict[tuple[str, str, str], int]:
    """What rec_list_experiments and rec_get_experiment answer, which must agree."""
    found: dict[tuple[str, str, str], int] = {}
    for key, total, manual, counts in conn.execute(
        "select key, assigned_users, manual_users, assignment_counts from rec_list_experiments()"
    ).fetchall():
        assert counts == scalar(conn, "select rec_get_experiment(%s)", [key])["assignment_counts"]
        assert total == sum(c["total"] for c in counts)
        assert manual == sum(c["manual"] for c in counts)
        for c in counts:
            assert c["total"] == c["auto"] + c["manual"]
            for mode in ("auto", "manual"):
                if c[mode]:
                    found[(key, c["variant"], mode)] = c[mode]
    return found


def assert_exact(conn: psycopg.Connection) -> None:
    truth = live(conn)
    assert kept(conn) == truth
    assert listed(conn) == truth


@contextmanager
def other_shard(conn: psycopg.Connection, db_url: str) -> Iterator[psycopg.Connection]:
    """A second owner connection whose backend adds to another shard than conn's
    (pids 32 apart share one; on a busy server that happens)."""
    shard = "select pg_backend_pid() % 32"
    mine = scalar(conn, shard)
    tried = []
    try:
        while len(tried) < 5:
            tried.append(connect_as_owner(db_url))
            if scalar(tried[-1], shard) != mine:
                yield tried[-1]
                return
        raise AssertionError("five new backends all landed on one shard")
    finally:
        for c in tried:
            c.close()


def test_concurrent_first_calls_on_two_backends_do_not_wait_for_each_other(
    db: psycopg.Connection, db_url: str
) -> None:
    create_experiment(db, "exp", AB)
    with other_shard(db, db_url) as two:
        two.execute("set lock_timeout = '2s'")  # waiting on db's counter row would fail, not hang
        with db.transaction():
            db.execute("select rec_assign_variant('exp', %s)", [uuid.uuid4()])
            two.execute("select rec_assign_variant('exp', %s)", [uuid.uuid4()])
        assert scalar(db, "select count(distinct shard) from rec_internal.assignment_counts") == 2
        assert_exact(db)


class World:
    """Random admin and recommender actions over a few experiments, from
    three connections (three backends, so three shards)."""

    def __init__(self, conns: list[psycopg.Connection], seed: int) -> None:
        self.conns = conns
        self.rng = random.Random(seed)
        self.users = uuids(30, seed=seed)
        self.keys = ["ab", "abc", "draft"]

    def conn(self) -> psycopg.Connection:
        return self.rng.choice(self.conns)

    def step(self) -> None:
        rng, conn = self.rng, self.conn()
        user, key = rng.choice(self.users), rng.choice(self.keys)
        variants = ABC if key == "abc" else AB
        action = rng.choice(["assign", "assign", "assign_all", "override", "reset", "rotate", "direct"])
        if action == "assign":
            conn.execute("select rec_assign_variant(%s, %s)", [key, user])
        elif action == "assign_all":
            conn.execute("select rec_assign_variants(%s)", [user])
        elif action == "override":
            variant = rng.choice(variants)["name"]
            conn.execute("select rec_set_user_variant(%s, %s, %s, %s)", [key, user, variant, ADMIN])
        elif action == "reset":
            conn.execute("select rec_reset_user_variant(%s, %s, %s)", [key, user, ADMIN])
        elif action == "rotate" and key != "draft":
            conn.execute("select rec_rotate_salt(%s, %s, reassign => %s)", [key, ADMIN, rng.random() < 0.7])
        elif action == "direct":
            self.direct(conn, rng.choice(["to_manual", "to_auto", "delete_some", "variant"]))

    def direct(self, conn: psycopg.Connection, what: str) -> None:
        """The owner's own SQL (a fix-up in the SQL editor) is counted too."""
        if what == "to_manual":
            conn.execute(
                "update rec_user_experiment_assignments set assignment_mode = 'manual', assigned_by = %s"
                " where user_id = any(%s)",
                [ADMIN, self.rng.sample(self.users, 5)],
            )
        elif what == "to_auto":
            conn.execute(
                "update rec_user_experiment_assignments set assignment_mode = 'auto', assigned_by = null"
                " where user_id = any(%s)",
                [self.rng.sample(self.users, 5)],
            )
        elif what == "delete_some":
            conn.execute(
                "delete from rec_user_experiment_assignments where user_id = any(%s)",
                [self.rng.sample(self.users, 4)],
            )
        else:  # a variant swap inside one experiment: two counts move at once
            conn.execute(
                "update rec_user_experiment_assignments a"
                "   set variant = case a.variant when 'control' then 'treatment' else 'control' end"
                "  from rec_experiments x where x.id = a.experiment_id and x.key = 'ab'"
                "   and a.user_id = any(%s)",
                [self.rng.sample(self.users, 6)],
            )


@pytest.mark.parametrize("seed", range(6))
def test_counts_equal_a_live_count_after_random_sequences(
    db: psycopg.Connection, db_url: str, seed: int
) -> None:
    create_experiment(db, "ab", AB)
    create_experiment(db, "abc", ABC)
    create_experiment(db, "draft", AB, active=False)
    with connect_as_owner(db_url) as second, connect_as_owner(db_url) as third:
        world = World([db, second, third], seed)
        for step in range(120):
            world.step()
            if step % 10 == 9:
                assert_exact(db)
        if seed % 2:
            # ending and editing a draft's variants (its overrides of a removed variant go)
            db.execute("select rec_end_experiment('abc', %s, 'shipped', 'a')", [ADMIN])
            db.execute(
                "select rec_update_experiment('draft', %s, variants => %s::jsonb)",
                [ADMIN, '[{"name": "control", "weight": 1}]'],
            )
        assert_exact(db)


def test_transactions_that_roll_back_leave_no_count(db: psycopg.Connection) -> None:
    create_experiment(db, "exp", AB)
    with db.transaction(force_rollback=True):
        for user in uuids(5, seed=3):
            db.execute("select rec_assign_variant('exp', %s)", [user])
    assert kept(db) == {} and live(db) == {}
    assert_exact(db)


def test_bulk_writes_and_truncate(db: psycopg.Connection) -> None:
    create_experiment(db, "exp", ABC)
    db.execute(
        "insert into rec_user_experiment_assignments (experiment_id, user_id, variant)"
        " select x.id, gen_random_uuid(), (array['a', 'b', 'c'])[1 + g % 3]"
        "   from rec_experiments x, generate_series(1, 3000) g where x.key = 'exp'"
    )
    assert kept(db) == {("exp", "a", "auto"): 1000, ("exp", "b", "auto"): 1000, ("exp", "c", "auto"): 1000}
    db.execute("select rec_rotate_salt('exp', %s, reassign => true)", [ADMIN])
    assert kept(db) == {}
    for user in uuids(10, seed=4):
        db.execute("select rec_assign_variant('exp', %s)", [user])
    assert_exact(db)
    db.execute("truncate rec_user_experiment_assignments")
    assert scalar(db, "select count(*) from rec_internal.assignment_counts") == 0
    assert_exact(db)


def test_deleting_an_experiment_takes_its_counts(db: psycopg.Connection) -> None:
    create_experiment(db, "gone", AB)
    create_experiment(db, "kept", AB)
    for user in uuids(8, seed=5):
        db.execute("select rec_assign_variants(%s)", [user])
    db.execute("select rec_reset_user_variant('kept', %s, %s)", [uuids(1, seed=5)[0], ADMIN])
    db.execute("delete from rec_experiments where key = 'gone'")
    assert {k for k, _, _ in kept(db)} == {"kept"}
    assert scalar(db, "select count(distinct experiment_id) from rec_internal.assignment_counts") == 1
    assert_exact(db)
    # an experiment whose counts are all back to zero leaves no rows behind either
    db.execute("delete from rec_user_experiment_assignments")
    db.execute("delete from rec_experiments")
    assert scalar(db, "select count(*) from rec_internal.assignment_counts") == 0


def test_api_roles_cannot_read_or_write_the_counts(db: psycopg.Connection) -> None:
    for role in ("anon", "authenticated", "service_role"):
        for privilege in ("select", "insert", "update", "delete"):
            assert not scalar(
                db,
                "select has_table_privilege(%s, 'rec_internal.assignment_counts', %s)",
                [role, privilege],
            )


# --- the backfill --------------------------------------------------------------


def _copy_migrations(target: Path, *, before: str | None = None) -> None:
    target.mkdir(exist_ok=True)
    for path in sorted(migrate.MIGRATIONS_DIR.glob("*.sql")):
        if before is None or path.name < before:
            shutil.copy(path, target / path.name)


def test_the_migration_backfills_existing_assignments(pg_server: postgres.Server, tmp_path: Path) -> None:
    with postgres.fresh_database(pg_server) as url:
        _copy_migrations(tmp_path, before=COUNTS_MIGRATION)
        migrate.migrate(url, directory=tmp_path)
        with connect_as_owner(url) as conn:
            create_experiment(conn, "old", ABC)
            create_experiment(conn, "other", AB)
            for user in uuids(40, seed=6):
                conn.execute("select rec_assign_variants(%s)", [user])
            conn.execute("select rec_set_user_variant('old', %s, 'c', %s)", [uuids(1, seed=6)[0], ADMIN])
            before: dict[Any, int] = live(conn)
        _copy_migrations(tmp_path)
        assert COUNTS_MIGRATION in migrate.migrate(url, directory=tmp_path)
        with connect_as_owner(url) as conn:
            assert kept(conn) == before == live(conn)
            assert sum(before.values()) == 80
            conn.execute("select rec_assign_variant('old', %s)", [uuid.uuid4()])
            assert_exact(conn)
