"""Users, sessions and refresh tokens of the local Auth stand-in, in the
tables GoTrue uses (auth.users with a bcrypt ``encrypted_password``,
auth.sessions, auth.refresh_tokens). Plain functions on a psycopg
connection: the stand-in's endpoints and ``recsys-exp admin add`` share them.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from typing import Any

import bcrypt
import psycopg
from psycopg.rows import dict_row

BCRYPT_COST = 10  # GoTrue's default cost
# Checked against when the e-mail is unknown, so both failures take as long.
_DUMMY_HASH = bcrypt.hashpw(b"no such user", bcrypt.gensalt(BCRYPT_COST))
MIN_PASSWORD_LENGTH = 6  # GoTrue's default minimum

_USER_COLUMNS = """id, email, encrypted_password, email_confirmed_at, last_sign_in_at,
                   raw_app_meta_data, raw_user_meta_data, created_at, updated_at"""


class WeakPassword(ValueError):
    pass


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"Password should be at least {MIN_PASSWORD_LENGTH} characters.")
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_COST)).decode()


def check_password(user: dict[str, Any] | None, password: str) -> bool:
    """bcrypt check; the same work whether or not the user exists."""
    stored = (user or {}).get("encrypted_password") or ""
    hashed = stored.encode() if stored.startswith("$2") else _DUMMY_HASH
    try:
        matches = bcrypt.checkpw(password.encode(), hashed)
    except ValueError:
        return False
    return matches and user is not None and bool(stored)


def find_by_email(conn: psycopg.Connection, email: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"select {_USER_COLUMNS} from auth.users where lower(email) = lower(%s)", [email.strip()]
        ).fetchone()


def find_by_id(conn: psycopg.Connection, user_id: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"select {_USER_COLUMNS} from auth.users where id = %s", [user_id]).fetchone()


def put_user(conn: psycopg.Connection, email: str, password: str) -> tuple[str, bool]:
    """Create a confirmed e-mail user, or set the password of an existing one:
    (user id, created?)."""
    hashed = hash_password(password)
    existing = find_by_email(conn, email)
    if existing:
        conn.execute(
            "update auth.users set encrypted_password = %s, updated_at = now() where id = %s",
            [hashed, existing["id"]],
        )
        return str(existing["id"]), False
    user_id = str(uuid.uuid4())
    conn.execute(
        """insert into auth.users (id, email, encrypted_password, email_confirmed_at, raw_app_meta_data)
           values (%s, %s, %s, now(), '{"provider": "email", "providers": ["email"]}')""",
        [user_id, email.strip().lower(), hashed],
    )
    return user_id, True


def start_session(conn: psycopg.Connection, user_id: str) -> tuple[str, str]:
    """A new session and its first refresh token: (session id, refresh token)."""
    session_id = str(uuid.uuid4())
    token = _refresh_token()
    conn.execute("insert into auth.sessions (id, user_id) values (%s, %s)", [session_id, user_id])
    conn.execute(
        "insert into auth.refresh_tokens (token, user_id, session_id) values (%s, %s, %s)",
        [token, user_id, session_id],
    )
    conn.execute("update auth.users set last_sign_in_at = now() where id = %s", [user_id])
    return session_id, token


# GoTrue's default: a client that lost the answer to its refresh may present
# the spent token again this long after, and gets the same new token back.
REUSE_INTERVAL = 10.0
NOT_FOUND = "refresh_token_not_found"
ALREADY_USED = "refresh_token_already_used"


def rotate_refresh_token(
    conn: psycopg.Connection, token: str, reuse_interval: float = REUSE_INTERVAL
) -> tuple[str, str, str] | str:
    """Spend a refresh token for the next one: (user id, session id, new token),
    or why not (``NOT_FOUND``, ``ALREADY_USED``).

    Reuse detection as GoTrue does it: a token already spent means someone
    else holds a copy, so the whole session ends (its refresh tokens go with
    it, and the functions refuse its access tokens). The one exception: the
    token the session's current one was issued for, within ``reuse_interval``
    seconds of being spent, gets that current token again (a client retrying
    a refresh whose answer it lost).
    """
    row = conn.execute(
        """select user_id, session_id, revoked,
                  updated_at > now() - make_interval(secs => %s) as recent
             from auth.refresh_tokens where token = %s for update""",
        [reuse_interval, token],
    ).fetchone()
    if row is None:
        return NOT_FOUND
    user_id, session_id, revoked, recent = str(row[0]), str(row[1]), bool(row[2]), bool(row[3])
    if revoked:
        child = conn.execute(
            "select token from auth.refresh_tokens where session_id = %s and parent = %s and not revoked",
            [session_id, token],
        ).fetchone()
        if child is not None and recent:
            return user_id, session_id, str(child[0])
        end_sessions(conn, user_id, session_id)
        return ALREADY_USED
    conn.execute(
        "update auth.refresh_tokens set revoked = true, updated_at = now() where token = %s", [token]
    )
    new = _refresh_token()
    conn.execute(
        "insert into auth.refresh_tokens (token, user_id, session_id, parent) values (%s, %s, %s, %s)",
        [new, user_id, session_id, token],
    )
    conn.execute("update auth.sessions set updated_at = now() where id = %s", [session_id])
    return user_id, session_id, new


def session_exists(conn: psycopg.Connection, session_id: str) -> bool:
    return conn.execute("select 1 from auth.sessions where id = %s", [session_id]).fetchone() is not None


def end_sessions(conn: psycopg.Connection, user_id: str, session_id: str | None) -> None:
    """Logout: one session (scope local) or all of the user's (global); their refresh tokens go too."""
    if session_id is None:
        conn.execute("delete from auth.sessions where user_id = %s", [user_id])
    else:
        conn.execute("delete from auth.sessions where id = %s", [session_id])


def user_json(user: dict[str, Any]) -> dict[str, Any]:
    """GoTrue's user object."""

    def when(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": str(user["id"]),
        "aud": "authenticated",
        "role": "authenticated",
        "email": user["email"],
        "email_confirmed_at": when(user["email_confirmed_at"]),
        "phone": "",
        "confirmed_at": when(user["email_confirmed_at"]),
        "last_sign_in_at": when(user["last_sign_in_at"]),
        "app_metadata": user["raw_app_meta_data"] or {},
        "user_metadata": user["raw_user_meta_data"] or {},
        "identities": [],
        "created_at": when(user["created_at"]),
        "updated_at": when(user["updated_at"]),
        "is_anonymous": False,
    }


def _refresh_token() -> str:
    return secrets.token_urlsafe(16)
