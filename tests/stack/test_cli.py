"""`recsys-exp`'s parser: every command resolves to a run() in its module,
and `migrate` opens the Postgres --database-url names."""

from __future__ import annotations

import argparse

import pytest

from devstack import cli, migrate, postgres
from devstack.platform import Regime


def commands(p: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every leaf command, by its full name ("admin grant")."""
    sub = next((a for a in p._actions if isinstance(a, argparse._SubParsersAction)), None)
    if sub is None:
        return {prefix.strip(): p}
    found: dict[str, argparse.ArgumentParser] = {}
    for name, child in sub.choices.items():
        found.update(commands(child, f"{prefix} {name}"))
    return found


def test_every_command_resolves_to_its_run_function() -> None:
    leaves = commands(cli.parser())
    assert set(leaves) == {
        "migrate",
        "dev",
        "demo",
        "results",
        "plan",
        "end",
        "decide",
        "admin grant",
        "admin revoke",
        "admin list",
        "admin add",
        "audit anchor",
        "audit verify",
        "metrics list",
        "metrics create",
        "layers list",
        "layers create",
    }
    for name, p in leaves.items():
        target = p.get_default("run")
        module, _, function = target.partition(":")
        assert cli.command(target).__module__ == module, name
        assert cli.command(target).__name__ == function, name
        assert function.startswith("run"), name


def test_regime_choices_are_the_platform_regimes() -> None:
    assert set(cli.REGIMES) == {r.value for r in Regime}


def test_migrate_command_applies_then_is_up_to_date(
    pg_server: postgres.Server, capsys: pytest.CaptureFixture[str]
) -> None:
    with postgres.fresh_database(pg_server, "rec_cli") as url:
        assert cli.main(["migrate", "--database-url", url]) == 0
        assert f"applied {len(migrate.discover())} migration(s)" in capsys.readouterr().out
        assert cli.main(["migrate", "--database-url", url]) == 0
        assert "is up to date" in capsys.readouterr().out


def test_unreachable_database_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["migrate", "--database-url", "postgresql://nobody@127.0.0.1:9/x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("recsys-exp: error: cannot connect to") and err.count("\n") == 1
