"""`recsys-exp admin ...` against the stack's database, and the demo admin
the first `recsys-exp dev` creates."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from devstack import admins
from devstack.cli import main
from tests.sessions.conftest import sign_in
from tests.stack.conftest import Stack


def role_of(stack: Stack, email: str) -> str | None:
    rows = stack.sql(
        "select a.role from rec_admins a join auth.users u on u.id = a.user_id where u.email = %s", [email]
    )
    return rows[0][0] if rows else None


async def test_add_grant_list_revoke(
    stack: Stack, http: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    email = f"cli-{uuid.uuid4().hex[:6]}@sessions.test"
    db = ["--database-url", stack.db_url]
    assert main(["admin", "add", email, "--password", "s3cret-pass", "--role", "viewer", *db]) == 0
    assert "created" in capsys.readouterr().out
    assert role_of(stack, email) == "viewer"
    signed_in = await sign_in(http, stack, email, "s3cret-pass")
    assert signed_in.status_code == 200

    assert main(["admin", "grant", email, *db]) == 0
    assert role_of(stack, email) == "admin"
    actions = stack.sql("select action, actor_id from rec_audit_log order by id desc limit 2")
    assert [a for a, _ in actions] == ["grant_admin", "grant_admin"]
    assert all(str(actor) == admins.TERMINAL for _, actor in actions)

    capsys.readouterr()
    assert main(["admin", "list", *db]) == 0
    assert any(email in line and line.startswith("admin") for line in capsys.readouterr().out.splitlines())

    assert main(["admin", "revoke", email, *db]) == 0
    assert role_of(stack, email) is None
    assert main(["admin", "revoke", email, *db]) == 0
    assert "had no access" in capsys.readouterr().out


def test_unknown_email_and_weak_password_fail_clearly(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--database-url", stack.db_url]
    assert main(["admin", "grant", "ghost@sessions.test", *db]) == 1
    assert "no user with e-mail ghost@sessions.test" in capsys.readouterr().err
    assert main(["admin", "add", "weak@sessions.test", "--password", "123", *db]) == 1
    assert "at least 6" in capsys.readouterr().err


async def test_demo_admin_signs_in_with_the_banner_password(
    stack: Stack, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    stack.sql("delete from auth.users where email = %s", [admins.DEMO_EMAIL])
    email, password = admins.ensure_demo_admin(stack.db_url, tmp_path)
    assert email == admins.DEMO_EMAIL and password
    assert admins.ensure_demo_admin(stack.db_url, tmp_path) == (email, password)  # kept, not reset
    assert (tmp_path / admins.DEMO_PASSWORD_FILE).stat().st_mode & 0o077 == 0
    assert role_of(stack, email) == "admin"
    response = await sign_in(http, stack, email, password)
    assert response.status_code == 200
