"""`recsys-exp admin ...`: who may use the admin functions signed in, from a
terminal, and the local stack's demo admin.

    recsys-exp admin grant EMAIL [--role viewer|admin]   any database (--database-url)
    recsys-exp admin revoke EMAIL
    recsys-exp admin list
    recsys-exp admin add EMAIL --password PW [--role]    local stack: creates the auth user too

The commands call the audited RPCs (rec_grant_admin, rec_revoke_admin,
rec_list_admins) over a direct database connection; the audit row's actor
is --admin-id (default: the all-zero id, meaning "a terminal with database
access").
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import psycopg

from devstack import auth_users, platform
from devstack.database import open_database

TERMINAL = "00000000-0000-0000-0000-000000000000"
DEMO_EMAIL = "admin@example.com"
DEMO_PASSWORD_FILE = "admin-password"


class AdminError(RuntimeError):
    """A one-line, actionable failure of an admin command."""


def run_grant(args: argparse.Namespace) -> int:
    def grant(conn: psycopg.Connection) -> str:
        row = _grant(conn, _user_id(conn, args.email), args.role, str(args.admin_id))
        return f"{args.email} is now {row['role']}"

    return _run(args, grant)


def run_revoke(args: argparse.Namespace) -> int:
    def revoke(conn: psycopg.Connection) -> str:
        row = conn.execute(
            "select rec_revoke_admin(%s, %s)", [_user_id(conn, args.email), str(args.admin_id)]
        ).fetchone()
        return f"{args.email}: access revoked" if row and row[0] else f"{args.email} had no access"

    return _run(args, revoke)


def run_list(args: argparse.Namespace) -> int:
    def listing(conn: psycopg.Connection) -> str:
        rows = conn.execute("select email, role, user_id, granted_at from rec_list_admins()").fetchall()
        if not rows:
            return "no admins yet: recsys-exp admin grant EMAIL"
        return "\n".join(
            f"{r[1]:<7} {r[0] or '(no e-mail)'}  {r[2]}  since {r[3]:%Y-%m-%d %H:%M}" for r in rows
        )

    return _run(args, listing)


def run_add(args: argparse.Namespace) -> int:
    def add(conn: psycopg.Connection) -> str:
        if platform.is_supabase(conn):
            raise AdminError(
                "admin add creates users only on the local stack; on Supabase, invite the user "
                "(Dashboard → Authentication) and then run: recsys-exp admin grant EMAIL"
            )
        try:
            user_id, created = auth_users.put_user(conn, args.email, args.password)
        except auth_users.WeakPassword as exc:
            raise AdminError(str(exc)) from None
        row = _grant(conn, user_id, args.role, str(args.admin_id))
        verb = "created" if created else "password set for"
        return f"{verb} {args.email} ({user_id}); role {row['role']}"

    return _run(args, add)


def ensure_demo_admin(database_url: str, data_dir: Path) -> tuple[str, str | None]:
    """On a fresh local stack, admin@example.com with a random password (kept
    in <data-dir>/admin-password for the banner): (e-mail, password or None
    if it was set elsewhere)."""
    path = data_dir / DEMO_PASSWORD_FILE
    with psycopg.connect(database_url) as conn:
        if platform.is_supabase(conn):
            return DEMO_EMAIL, None
        if auth_users.find_by_email(conn, DEMO_EMAIL) is None:
            password = secrets.token_urlsafe(12)
            user_id, _ = auth_users.put_user(conn, DEMO_EMAIL, password)
            _grant(conn, user_id, "admin", TERMINAL)
            conn.commit()
            data_dir.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(password + "\n")
            return DEMO_EMAIL, password
    return DEMO_EMAIL, path.read_text().strip() if path.exists() else None


def _grant(conn: psycopg.Connection, user_id: str, role: str, admin_id: str) -> dict[str, Any]:
    row = conn.execute("select rec_grant_admin(%s, %s, %s)", [user_id, role, admin_id]).fetchone()
    assert row is not None
    granted: dict[str, Any] = row[0]
    return granted


def _user_id(conn: psycopg.Connection, email: str) -> str:
    user = auth_users.find_by_email(conn, email)
    if user is None:
        raise AdminError(
            f"no user with e-mail {email} in auth.users: they sign up (or are invited) first; "
            "on the local stack: recsys-exp admin add EMAIL --password ..."
        )
    return str(user["id"])


def _run(args: argparse.Namespace, work: Any) -> int:
    server = open_database(args.database_url, args.data_dir)
    try:
        with psycopg.connect(server.url) as conn:
            message = work(conn)
            conn.commit()
    except AdminError as exc:
        print(f"recsys-exp: {exc}", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        print(f"recsys-exp: {(str(exc).splitlines() or [type(exc).__name__])[0]}", file=sys.stderr)
        return 1
    finally:
        server.stop()
    print(message)
    return 0
