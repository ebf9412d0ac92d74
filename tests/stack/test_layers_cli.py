"""`recsys-exp layers list|create` against a migrated database."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from devstack import cli, migrate, postgres

ADMIN = "00000000-0000-4000-8000-00000000ad01"
AB = json.dumps([{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}])


@pytest.fixture
def url(pg_server: postgres.Server) -> Iterator[str]:
    with postgres.fresh_database(pg_server, "rec_cli") as fresh:
        migrate.migrate(fresh)
        yield fresh


def test_create_then_list(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["layers", "list", "--database-url", url]) == 0
    assert "no layers yet" in capsys.readouterr().out
    assert cli.main(["layers", "create", "feed", "--name", "Home feed", "--database-url", url]) == 0
    assert capsys.readouterr().out.startswith("created layer feed (salt ")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "select rec_create_experiment('ranker', %s::jsonb, %s, layer_key => 'feed',"
            " layer_from => 0, layer_to => 2500)",
            [AB, ADMIN],
        )
        salt = conn.execute("select salt from rec_layers where key = 'feed'").fetchone()
        actor = conn.execute("select actor_id from rec_audit_log where action = 'create_layer'").fetchone()
    assert salt is not None
    assert actor == (uuid.UUID(int=0),)  # "a terminal with database access"
    assert cli.main(["layers", "list", "--database-url", url]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "feed  Home feed"
    assert f"salt {salt[0]}" in out
    assert "[0, 2500)" in out and "ranker (draft)" in out and "free [2500, 10000)" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["layers", "create", "Feed"], "invalid layer key"),
        (["layers", "create", "dup"], "already exists"),
    ],
)
def test_refusals_are_one_line_and_change_nothing(
    url: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert cli.main(["layers", "create", "dup", "--database-url", url]) == 0
    capsys.readouterr()
    assert cli.main([*argv, "--database-url", url]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from rec_layers").fetchone() == (1,)
