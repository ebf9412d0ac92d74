"""Install the platform stand-in: what a Supabase project has before any
migration (API roles, `auth` schema, `auth.users`, `extensions`)."""

from __future__ import annotations

from enum import StrEnum
from importlib.resources import files

import psycopg
from psycopg import sql

OWNER = "rec_migrator"  # plays Supabase's `postgres`: owns the schema, not a superuser


class Regime(StrEnum):
    """The two privilege regimes Supabase has had (docs/reference.md §5)."""

    LEGACY = "legacy"  # new public objects granted to the API roles by default
    NONE = "none"  # nothing granted unless a migration grants it


def is_supabase(conn: psycopg.Connection) -> bool:
    """A real Supabase database already has the platform; never touch it."""
    row = conn.execute("select exists (select 1 from pg_roles where rolname = 'supabase_admin')").fetchone()
    return bool(row and row[0])


def is_superuser(conn: psycopg.Connection) -> bool:
    row = conn.execute("select rolsuper from pg_roles where rolname = current_user").fetchone()
    return bool(row and row[0])


def install(conn: psycopg.Connection, regime: Regime = Regime.NONE, owner: str = OWNER) -> None:
    """Create the stand-in (idempotent) and set the default privileges the
    owner's new objects get, as the chosen Supabase regime would."""
    ensure_role(conn, owner)
    dbname = conn.info.dbname
    text = files("devstack").joinpath("platform.sql").read_text()
    text = text.replace(':"owner"', sql.Identifier(owner).as_string(conn))
    text = text.replace(':"dbname"', sql.Identifier(dbname).as_string(conn))
    conn.execute(text.encode())
    set_regime(conn, regime, owner)


def ensure_role(conn: psycopg.Connection, role: str) -> None:
    # Roles are cluster-wide and databases may be set up concurrently.
    conn.execute("select pg_advisory_xact_lock(hashtext('recsys-exp roles'))")
    exists = conn.execute("select 1 from pg_roles where rolname = %s", [role]).fetchone()
    if not exists:
        conn.execute(sql.SQL("create role {} nologin nosuperuser").format(sql.Identifier(role)))


def set_regime(conn: psycopg.Connection, regime: Regime, owner: str) -> None:
    api_roles = sql.SQL("anon, authenticated, service_role")
    who = sql.Identifier(owner)
    if regime is Regime.LEGACY:
        for kind in ("tables", "functions", "sequences"):
            conn.execute(
                sql.SQL("alter default privileges for role {} in schema public grant all on {} to {}").format(
                    who, sql.SQL(kind), api_roles
                )
            )
    else:
        # Today's platform: nothing is exposed, not even PUBLIC's execute.
        conn.execute(
            sql.SQL("alter default privileges for role {} revoke execute on functions from public").format(
                who
            )
        )
