"""One Postgres server per test session: the one DATABASE_URL names, or an
embedded PostgreSQL in a temporary directory (deleted afterwards)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import postgres


@pytest.fixture(scope="session")
def pg_server() -> Iterator[postgres.Server]:
    url = os.environ.get("DATABASE_URL")
    if url:
        yield postgres.connect_server(url)
        return
    with tempfile.TemporaryDirectory(prefix="recsys-exp-test-") as tmp:
        server = postgres.start_embedded(Path(tmp) / "pgdata", delete_on_stop=True)
        try:
            yield server
        finally:
            server.stop()
