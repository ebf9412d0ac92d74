"""Admin sessions over real HTTP: the local stack (as tests/stack serves it)
with its Auth stand-in, a few people in auth.users, and their roles."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest

from devstack import auth_users
from tests.stack.conftest import Stack, stack, stack_db  # noqa: F401 (fixtures)

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Person:
    email: str
    user_id: str


@pytest.fixture(scope="session")
def people(stack: Stack) -> dict[str, Person]:  # noqa: F811
    """admin, viewer and nobody (a user who is not in rec_admins)."""
    found: dict[str, Person] = {}
    with psycopg.connect(stack.db_url) as conn:
        for name in ("admin", "viewer", "nobody"):
            email = f"{name}@sessions.test"
            user_id, _ = auth_users.put_user(conn, email, PASSWORD)
            found[name] = Person(email, user_id)
            if name != "nobody":
                conn.execute(
                    "select rec_grant_admin(%s, %s, %s)",
                    [user_id, name, "00000000-0000-0000-0000-000000000000"],
                )
        conn.commit()
    return found


@pytest.fixture
def own_admin(stack: Stack) -> Person:  # noqa: F811
    """An admin of one test only: ending all of its sessions signs nobody else out
    (the session-wide ``tokens`` stay valid)."""
    email = f"own-{uuid.uuid4().hex[:8]}@sessions.test"
    with psycopg.connect(stack.db_url) as conn:
        user_id, _ = auth_users.put_user(conn, email, PASSWORD)
        conn.execute("select rec_grant_admin(%s, 'admin', %s)", [user_id, str(uuid.uuid4())])
        conn.commit()
    return Person(email, user_id)


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:  # noqa: F811
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
        yield client


async def sign_in(http: httpx.AsyncClient, on: Stack, email: str, password: str = PASSWORD) -> httpx.Response:
    return await http.post(
        "/auth/v1/token",
        params={"grant_type": "password"},
        json={"email": email, "password": password},
        headers={"apikey": on.keys.publishable},
    )


async def refresh(http: httpx.AsyncClient, on: Stack, token: str) -> httpx.Response:
    return await http.post(
        "/auth/v1/token",
        params={"grant_type": "refresh_token"},
        json={"refresh_token": token},
        headers={"apikey": on.keys.publishable},
    )


@pytest.fixture(scope="session")
def tokens(stack: Stack, people: dict[str, Person]) -> dict[str, str]:  # noqa: F811
    """An access token per person, from a real password sign-in."""

    found = {}
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        for name, person in people.items():
            response = client.post(
                "/auth/v1/token",
                params={"grant_type": "password"},
                json={"email": person.email, "password": PASSWORD},
                headers={"apikey": stack.keys.publishable},
            )
            assert response.status_code == 200, response.text
            found[name] = response.json()["access_token"]
    return found
