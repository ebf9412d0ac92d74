"""One Postgres server per test session: the one DATABASE_URL names, or an
embedded PostgreSQL in a temporary directory (deleted afterwards)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack import database, postgres


@pytest.fixture(scope="session")
def pg_server() -> Iterator[postgres.Server]:
    with database.throwaway_server("recsys-exp-test-") as (server, _):
        yield server
