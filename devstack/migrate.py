"""Apply supabase/migrations in order, recording each version in
supabase_migrations.schema_migrations (the Supabase CLI's own table), so a
second run applies only new files. Each file and its record commit together.

Records have the CLI's shape (version, name, the file split into statements
as the CLI splits it), and the seed is recorded in
supabase_migrations.seed_files as the CLI records it, so `supabase db push`
and `recsys-exp migrate` each see what the other applied."""

from __future__ import annotations

import argparse
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from devstack import database, platform, postgres, sql_split

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS_DIR = PROJECT_ROOT / "supabase" / "migrations"
SEED_FILE = PROJECT_ROOT / "supabase" / "seed.sql"
SEED_PATH = "supabase/seed.sql"  # as the CLI names it in seed_files (relative to the project)
FILE_NAME = re.compile(r"^(\d{14})_([A-Za-z0-9_\-]+)\.sql$")


class MigrationError(RuntimeError):
    """A migration failed; nothing of that file was applied."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named <YYYYMMDDHHMMSS>_<name>.sql")
        found.append(Migration(match[1], match[2], path))
    return found


def migrate(
    url: str,
    *,
    regime: platform.Regime = platform.Regime.NONE,
    directory: Path = MIGRATIONS_DIR,
    seed: bool = False,
) -> list[str]:
    """Bring the database at `url` up to date; returns the versions applied.

    On a plain Postgres (we are superuser) the platform stand-in is installed
    first and the migrations run as its non-superuser owner. On a real
    Supabase database they run as the connecting user, as `supabase db push`.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        owner = prepare(conn, regime)
        conn.execute("select pg_advisory_lock(hashtext('recsys-exp migrate'))")
        try:
            check_records_owner(conn, owner)
            fresh = not applied_versions(conn, owner)
            applied = apply_new(conn, discover(directory), owner)
            if seed and fresh and SEED_FILE.exists():
                apply_seed(conn, owner)
        finally:
            conn.execute("select pg_advisory_unlock(hashtext('recsys-exp migrate'))")
    return applied


def prepare(conn: psycopg.Connection, regime: platform.Regime) -> str | None:
    """Install the stand-in where needed; returns the role to run migrations as."""
    if platform.is_supabase(conn) or not platform.is_superuser(conn):
        return None
    with conn.transaction():
        platform.install(conn, regime)
    return platform.OWNER


def check_records_owner(conn: psycopg.Connection, owner: str | None) -> None:
    """Refuse a database whose migrations another role applied (say `supabase
    db push` connected as a superuser): its objects are not the owner's, so
    the next migration would fail halfway with "must be owner"."""
    row = conn.execute(
        "select pg_get_userbyid(relowner) from pg_class"
        " where oid = to_regclass('supabase_migrations.schema_migrations')"
    ).fetchone()
    if owner and row and row[0] != owner:
        raise MigrationError(
            f"the migrations in this database were applied as {row[0]}, not as {owner}, which owns the "
            f"schema here and applies migrations: apply them as {owner} only (with the Supabase CLI: "
            f"--db-url 'postgresql://{owner}@host:port/db?sslmode=disable'), on a fresh database"
        )


def applied_versions(conn: psycopg.Connection, owner: str | None) -> set[str]:
    with conn.transaction():
        run_as(
            conn,
            owner,
            """
            create schema if not exists supabase_migrations;
            create table if not exists supabase_migrations.schema_migrations (
              version text not null primary key);
            alter table supabase_migrations.schema_migrations
              add column if not exists statements text[];
            alter table supabase_migrations.schema_migrations
              add column if not exists name text;
            create table if not exists supabase_migrations.seed_files (
              path text not null primary key, hash text not null);""",
        )
    rows = conn.execute("select version from supabase_migrations.schema_migrations")
    return {row[0] for row in rows}


def apply_new(conn: psycopg.Connection, migrations: list[Migration], owner: str | None) -> list[str]:
    done = applied_versions(conn, owner)
    applied = []
    for m in migrations:
        if m.version in done:
            continue
        text = m.path.read_text()
        try:
            with conn.transaction():
                run_as(conn, owner, text)
                conn.execute(
                    "insert into supabase_migrations.schema_migrations (version, name, statements)"
                    " values (%s, %s, %s)",
                    [m.version, m.name, sql_split.split(text)],
                )
        except psycopg.Error as exc:
            raise MigrationError(f"{m.path.name}: {exc.diag.sqlstate}: {exc}".strip()) from exc
        applied.append(m.version)
    return applied


def apply_seed(conn: psycopg.Connection, owner: str | None) -> None:
    """Run seed.sql once and record it (path and sha256) as `db push --include-seed` does."""
    data = SEED_FILE.read_bytes()
    with conn.transaction():
        run_as(conn, owner, data.decode())
        conn.execute(
            "insert into supabase_migrations.seed_files (path, hash) values (%s, %s)"
            " on conflict (path) do update set hash = excluded.hash",
            [SEED_PATH, hashlib.sha256(data).hexdigest()],
        )


def run_as(conn: psycopg.Connection, role: str | None, text: str) -> None:
    """Run a multi-statement script, as `role` when given (inside the
    caller's transaction, so the role switch ends with it)."""
    if role:
        conn.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
    conn.execute(text.encode())
    if role:
        conn.execute("reset role")


def run(args: argparse.Namespace) -> int:
    """`recsys-exp migrate`."""
    with database.opened(args.database_url, args.data_dir) as server:
        applied = migrate(server.url, regime=platform.Regime(args.regime), seed=args.seed)
        where = postgres.redact(server.url)
        if applied:
            print(f"applied {len(applied)} migration(s) to {where}: {', '.join(applied)}")
        else:
            print(f"{where} is up to date ({len(discover())} migrations)")
    return 0
