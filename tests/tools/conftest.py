"""Real tools nobody on this project wrote, pinned: the Supabase CLI (npm),
pgTAP with pg_prove, pg_cron and plpgsql_check (Debian's PostgreSQL 15
packages). `.ci/run` installs them.

They run against the machine's PostgreSQL 15 at 127.0.0.1:5432 (its
extensions live there) or a throwaway cluster of its binaries, whatever
DATABASE_URL says, each in a database of its own. A missing tool or server
skips with one line locally and fails under CI=true."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from devstack import migrate, platform, postgres

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
CLI = PROJECT_ROOT / ".tools" / "node_modules" / ".bin" / "supabase"
CLI_VERSION = "2.117.0"
INSTALL = "(.ci/run installs it)"


def missing(reason: str) -> None:
    """Skip with one line; under CI=true a missing tool is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} {INSTALL}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def system_pg() -> postgres.Server:
    """The machine's PostgreSQL 15 (where Debian's extensions are installed)."""
    try:
        server = postgres.connect_server(SYSTEM_PG)
        with psycopg.connect(server.url) as conn:
            version = conn.execute("show server_version_num").fetchone()
    except postgres.DatabaseError as exc:
        missing(f"no PostgreSQL at 127.0.0.1:5432: {exc}")
        raise
    assert version is not None
    if not str(version[0]).startswith("15"):
        missing(f"the server at 127.0.0.1:5432 is not PostgreSQL 15 ({version[0]})")
    return server


def require_extension(server: postgres.Server, name: str, package: str) -> None:
    with psycopg.connect(server.url) as conn:
        row = conn.execute("select 1 from pg_available_extensions where name = %s", [name]).fetchone()
    if row is None:
        missing(f"extension {name} is not installed on {postgres.redact(server.url)} (Debian: {package})")


def require_program(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        missing(f"{name} not found (Debian: {package})")
    assert found is not None
    return found


@pytest.fixture(scope="session")
def supabase_cli() -> Path:
    if not CLI.exists():
        missing(
            f"Supabase CLI not found at {CLI.relative_to(PROJECT_ROOT)} (npm i -E supabase@{CLI_VERSION})"
        )
    version = subprocess.run([str(CLI), "--version"], capture_output=True, text=True, check=False).stdout
    assert version.strip() == CLI_VERSION, (
        f"the tests pin Supabase CLI {CLI_VERSION}, found {version.strip()}"
    )
    return CLI


def owner_url(url: str) -> str:
    """The same database, logged in as the migration owner (Supabase's
    `postgres`), in the URL form `supabase --db-url` takes."""
    params = conninfo_to_dict(url)
    return (
        f"postgresql://{platform.OWNER}@{params['host']}:{params['port']}/{params['dbname']}?sslmode=disable"
    )


def prepare_platform(url: str, regime: platform.Regime = platform.Regime.NONE) -> None:
    """What a Supabase project has before its first migration: the platform
    stand-in, and an owner that can log in (the CLI connects as it)."""
    with psycopg.connect(url, autocommit=True) as conn:
        migrate.prepare(conn, regime)
        conn.execute(f"alter role {platform.OWNER} login")


@pytest.fixture
def platform_db(system_pg: postgres.Server) -> Iterator[str]:
    """A fresh database on 127.0.0.1:5432 with the platform stand-in only."""
    with postgres.fresh_database(system_pg, "rec_tools") as url:
        prepare_platform(url)
        yield url
