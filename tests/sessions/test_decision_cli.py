"""`recsys-exp end` and `recsys-exp decide` against the stack's database:
the decision is stored and audited with the terminal as actor; bad input
fails with one line and changes nothing."""

from __future__ import annotations

import json
import uuid

import pytest

from devstack import admins
from devstack.cli import main
from tests.stack.conftest import Stack

VARIANTS = [{"name": "control", "weight": 1}, {"name": "v2", "weight": 1}]


def active(stack: Stack) -> str:
    key = f"cli-end-{uuid.uuid4().hex[:8]}"
    stack.sql("select rec_create_experiment(%s, %s::jsonb, %s)", [key, json.dumps(VARIANTS), admins.TERMINAL])
    stack.sql("select rec_activate_experiment(%s, %s)", [key, admins.TERMINAL])
    return key


def state(stack: Stack, key: str) -> tuple[object, ...]:
    return tuple(
        stack.sql(
            "select status, decision, winner, decision_notes from rec_experiments where key = %s", [key]
        )[0]
    )


def audit_rows(stack: Stack) -> int:
    return int(stack.sql("select count(*) from rec_audit_log")[0][0])


def test_end_with_a_decision_then_change_it(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    key = active(stack)
    db = ["--database-url", stack.db_url]
    assert main(["end", key, "--decision", "shipped", "--winner", "v2", "--notes", "+3% likes", *db]) == 0
    assert capsys.readouterr().out.strip() == f"experiment {key} ended: shipped (winner v2); notes: +3% likes"
    assert state(stack, key) == ("ended", "shipped", "v2", "+3% likes")
    action, actor, details = stack.sql(
        "select action, actor_id, details from rec_audit_log order by id desc limit 1"
    )[0]
    assert (action, str(actor)) == ("end_experiment", admins.TERMINAL)
    assert details["after"]["winner"] == "v2"
    assert main(["decide", key, "--decision", "rolled_back", *db]) == 0
    assert "decision recorded: rolled_back" in capsys.readouterr().out
    assert state(stack, key) == ("ended", "rolled_back", None, None)


def test_end_without_a_decision(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    key = active(stack)
    assert main(["end", key, "--database-url", stack.db_url]) == 0
    assert "no decision recorded" in capsys.readouterr().out
    assert state(stack, key) == ("ended", None, None, None)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--decision", "shipped", "--winner", "v3"], "has no variant 'v3'"),
        (["--decision", "shipped"], "needs the winner"),
        (["--winner", "v2"], "a winner goes with decision shipped"),
        (["--decision", "inconclusive", "--winner", "v2"], "a winner goes with decision shipped"),
    ],
)
def test_bad_decisions_fail_with_one_line_and_change_nothing(
    stack: Stack, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    key = active(stack)
    before = audit_rows(stack)
    assert main(["end", key, *argv, "--database-url", stack.db_url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("recsys-exp: error: ") and message in err and len(err.strip().splitlines()) == 1
    assert state(stack, key) == ("active", None, None, None)
    assert audit_rows(stack) == before


def test_decide_on_an_active_experiment_and_unknown_keys(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    key = active(stack)
    db = ["--database-url", stack.db_url]
    assert main(["decide", key, "--decision", "inconclusive", *db]) == 1
    assert "once it has ended" in capsys.readouterr().err
    assert main(["end", "no-such-experiment", *db]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert state(stack, key) == ("active", None, None, None)


@pytest.mark.parametrize(
    "argv",
    [["decide", "k"], ["end", "k", "--decision", "won"], ["end"], ["decide", "k", "--decision", "Shipped"]],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("recsys-exp: error: ")
