"""The Supabase CLI (npm `supabase`, pinned) against a fresh Supabase-like
database, as the non-superuser owner: `db push --include-seed` applies every
migration and the seed, `migration list` shows nothing pending, `db lint`
reports nothing, and `recsys-exp migrate` and the CLI each accept what the
other applied, in either order, with the same owner and the same records."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

from devstack import migrate, postgres, sql_split
from devstack.platform import OWNER
from tests.support.schema_dump import dump
from tests.tools.conftest import PROJECT_ROOT, owner_url, prepare_platform, require_extension

pytestmark = pytest.mark.usefixtures("supabase_cli")


def cli(*args: str, workdir: Path = PROJECT_ROOT) -> subprocess.CompletedProcess[str]:
    """The CLI with no stdin (as CI runs it); --yes answers its prompts."""
    from tests.tools.conftest import CLI

    return subprocess.run(
        [str(CLI), *args, "--workdir", str(workdir), "--yes"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=180,
        check=False,
    )


def push(url: str, workdir: Path = PROJECT_ROOT) -> subprocess.CompletedProcess[str]:
    return cli("db", "push", "--db-url", owner_url(url), "--include-seed", workdir=workdir)


def succeeded(result: subprocess.CompletedProcess[str]) -> str:
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    return out


def migration_list(url: str) -> tuple[set[str], set[str]]:
    """`migration list`'s table as (local versions, remote versions)."""
    out = succeeded(cli("migration", "list", "--db-url", owner_url(url)))
    local, remote = set(), set()
    for line in out.splitlines():
        cells = [c.strip().strip("`") for c in line.split("|")]
        if len(cells) == 3 and (cells[0].isdigit() or cells[1].isdigit()):
            local |= {cells[0]} - {""}
            remote |= {cells[1]} - {""}
    return local, remote


def records(url: str) -> list[tuple[str, str, list[str]]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select version, name, statements from supabase_migrations.schema_migrations order by version"
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def expected_records() -> list[tuple[str, str, list[str]]]:
    return [(m.version, m.name, sql_split.split(m.path.read_text())) for m in migrate.discover()]


def seed_files(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return [(r[0], r[1]) for r in conn.execute("select path, hash from supabase_migrations.seed_files")]


def not_owned_by_owner(url: str) -> list[str]:
    """Our schemas' tables, views, sequences and functions someone else owns."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """select c.oid::regclass::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
                where n.nspname in ('public', 'rec_internal') and c.relkind in ('r', 'v', 'm', 'S', 'p')
                  and pg_get_userbyid(c.relowner) <> %(owner)s
               union all
               select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                where n.nspname in ('public', 'rec_internal') and pg_get_userbyid(p.proowner) <> %(owner)s""",
            {"owner": OWNER},
        ).fetchall()
    return [r[0] for r in rows]


SEED = [(migrate.SEED_PATH, hashlib.sha256(migrate.SEED_FILE.read_bytes()).hexdigest())]
VERSIONS = {m.version for m in migrate.discover()}


def test_db_push_applies_everything_and_migrate_then_has_nothing_to_do(platform_db: str) -> None:
    out = succeeded(push(platform_db))
    assert "Finished supabase db push." in out and "Seeding data from supabase/seed.sql" in out
    assert migration_list(platform_db) == (VERSIONS, VERSIONS)
    assert records(platform_db) == expected_records()
    assert seed_files(platform_db) == SEED
    assert not_owned_by_owner(platform_db) == []
    assert migrate.migrate(platform_db, seed=True) == []
    assert records(platform_db) == expected_records()
    assert "Remote database is up to date." in succeeded(push(platform_db))


def test_migrate_first_then_db_push_has_nothing_to_do(platform_db: str) -> None:
    assert len(migrate.migrate(platform_db, seed=True)) == len(VERSIONS)
    assert records(platform_db) == expected_records()
    assert seed_files(platform_db) == SEED
    assert migration_list(platform_db) == (VERSIONS, VERSIONS)
    out = succeeded(push(platform_db))
    assert "Remote database is up to date." in out and "Seeding" not in out
    assert not_owned_by_owner(platform_db) == []


def test_either_order_builds_the_same_schema(system_pg: postgres.Server) -> None:
    with (
        postgres.fresh_database(system_pg, "rec_tools") as by_cli,
        postgres.fresh_database(system_pg, "rec_tools") as by_runner,
    ):
        prepare_platform(by_cli)
        prepare_platform(by_runner)
        succeeded(push(by_cli))
        migrate.migrate(by_runner, seed=True)
        assert dump(by_cli, "--schema-only") == dump(by_runner, "--schema-only")
        assert records(by_cli) == records(by_runner)


def test_db_lint_reports_nothing(platform_db: str, system_pg: postgres.Server) -> None:
    require_extension(system_pg, "plpgsql_check", "postgresql-15-plpgsql-check")
    succeeded(push(platform_db))
    lint = ["db", "lint", "--db-url", owner_url(platform_db), "--level", "warning", "--fail-on", "warning"]
    with psycopg.connect(platform_db, autocommit=True) as conn:
        # the CLI creates it unqualified; the owner is no superuser, so a superuser does it first
        conn.execute("create extension if not exists plpgsql_check")
    out = succeeded(cli(*lint))
    assert "No schema errors found" in out
    # and lint does see a function with the mistake we fixed
    with psycopg.connect(platform_db, autocommit=True) as conn:
        conn.execute(
            "create function public.tools_lint_probe() returns int language plpgsql as"
            " $$ declare names text[] := '{}'; begin return cardinality(names); end $$"
        )
    result = cli(*lint)
    assert result.returncode != 0 and "tools_lint_probe" in result.stdout + result.stderr


def test_db_push_runs_statements_without_a_transaction(platform_db: str, tmp_path: Path) -> None:
    """Why migrations must not rely on one: the CLI refuses a bare LOCK TABLE."""
    (tmp_path / "supabase" / "migrations").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "supabase" / "config.toml", tmp_path / "supabase" / "config.toml")
    (tmp_path / "supabase" / "migrations" / "20200101000000_lock.sql").write_text(
        "create table public.tools_probe (x int);\nlock table public.tools_probe in exclusive mode;\n"
    )
    result = cli("db", "push", "--db-url", owner_url(platform_db), workdir=tmp_path)
    assert result.returncode != 0
    assert "SQLSTATE 25P01" in result.stdout + result.stderr


def test_migrate_refuses_what_the_cli_applied_as_another_role(platform_db: str) -> None:
    """Pushed as the superuser, the objects are not the owner's: say so, change nothing."""
    superuser = owner_url(platform_db).replace(f"{OWNER}@", "postgres@", 1)
    succeeded(cli("db", "push", "--db-url", superuser))
    before = records(platform_db)
    with pytest.raises(migrate.MigrationError, match=f"applied as postgres, not as {OWNER}"):
        migrate.migrate(platform_db)
    assert records(platform_db) == before
