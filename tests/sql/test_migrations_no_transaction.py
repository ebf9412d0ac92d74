"""Every migration runs the same with and without an enclosing transaction.

`recsys-exp migrate` runs each file in one transaction; the Supabase CLI's
`db push` sends a file's statements one by one with none around them, so a
statement that needs a transaction block (a bare LOCK TABLE, SAVEPOINT) or
that relies on an earlier statement's transaction fails or behaves
differently there. Here every statement runs on its own in autocommit, as
the owner, after the file is split exactly as the CLI splits it; the
resulting database (schema, owners, grants and the rows migrations write,
the migration records included) must equal the one our runner builds."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from devstack import migrate, postgres, sql_split
from devstack.platform import Regime
from tests.support.schema_dump import dump


def apply_statement_by_statement(url: str, regime: Regime) -> None:
    """The CLI's way: each statement its own transaction, then the record."""
    with psycopg.connect(url, autocommit=True) as conn:
        owner = migrate.prepare(conn, regime)
        assert owner is not None, "the test server is a plain Postgres where we are superuser"
        migrate.applied_versions(conn, owner)  # the records table, as both tools create it
        conn.execute(sql.SQL("set role {}").format(sql.Identifier(owner)))
        for m in migrate.discover():
            statements = sql_split.split(m.path.read_text())
            for number, statement in enumerate(statements, 1):
                try:
                    conn.execute(statement.encode())
                except psycopg.Error as exc:
                    where = f"{m.path.name}, statement {number}"
                    pytest.fail(f"{where} without a transaction: {exc.sqlstate}: {exc}")
            conn.execute(
                "insert into supabase_migrations.schema_migrations (version, name, statements)"
                " values (%s, %s, %s)",
                [m.version, m.name, statements],
            )


@pytest.fixture
def two_databases(pg_server: postgres.Server) -> Iterator[tuple[str, str]]:
    with (
        postgres.fresh_database(pg_server, "rec_one_tx") as one,
        postgres.fresh_database(pg_server, "rec_no_tx") as each,
    ):
        yield one, each


@pytest.mark.parametrize("regime", list(Regime), ids=lambda r: r.value)
def test_each_statement_alone_builds_the_same_database(
    two_databases: tuple[str, str], regime: Regime
) -> None:
    one_transaction, statement_by_statement = two_databases
    migrate.migrate(one_transaction, regime=regime)
    apply_statement_by_statement(statement_by_statement, regime)
    assert dump(statement_by_statement) == dump(one_transaction)


def test_a_bare_lock_table_fails_without_a_transaction(pg_server: postgres.Server) -> None:
    """The check above can fail: what the CLI refused before the fix is refused here."""
    with (
        postgres.fresh_database(pg_server, "rec_no_tx") as url,
        psycopg.connect(url, autocommit=True) as conn,
    ):
        conn.execute("create table t (x int)")
        [statement] = sql_split.split("lock table t in exclusive mode;")
        with pytest.raises(psycopg.Error) as info:
            conn.execute(statement)
        assert info.value.sqlstate == "25P01"
        # inside a block the same lock holds for the block's own transaction
        conn.execute("do $$ begin lock table t in exclusive mode; end $$")
