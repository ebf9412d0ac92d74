"""Ending with a decision and recording it later: rec_end_experiment's
decision, winner and notes, rec_record_decision, their audit rows and the
input they refuse."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.sql.conftest import (
    ADMIN,
    acting_as,
    create_experiment,
    experiment,
    last_audit,
    raises_sqlstate,
    scalar,
    snapshot,
)

AB = [{"name": "control", "weight": 1}, {"name": "v2", "weight": 1}]
OTHER_ADMIN = "00000000-0000-4000-8000-00000000ad02"


def end(conn: psycopg.Connection, key: str, **kw: Any) -> dict[str, Any]:
    named = "".join(f", {k} => %({k})s" for k in kw)
    query = f"select to_jsonb(rec_end_experiment(%(key)s, %(admin)s{named}))"
    return dict(scalar(conn, query, {"key": key, "admin": ADMIN, **kw}))


def record(conn: psycopg.Connection, key: str, decision: str | None, admin: str = ADMIN, **kw: Any) -> Any:
    named = "".join(f", {k} => %({k})s" for k in kw)
    query = f"select to_jsonb(rec_record_decision(%(key)s, %(admin)s, %(decision)s{named}))"
    return scalar(conn, query, {"key": key, "admin": admin, "decision": decision, **kw})


def decision_of(conn: psycopg.Connection, key: str) -> tuple[Any, Any, Any]:
    e = experiment(conn, key)
    return e["decision"], e["winner"], e["decision_notes"]


# --- ending with a decision -----------------------------------------------------


def test_end_with_shipped_winner_and_notes_is_stored_and_audited(db: psycopg.Connection) -> None:
    create_experiment(db, "exp", AB)
    row = end(db, "exp", decision="shipped", winner="v2", notes="+3% likes, guardrails flat")
    assert row == experiment(db, "exp")
    assert (row["status"], row["decision"], row["winner"]) == ("ended", "shipped", "v2")
    assert row["decision_notes"] == "+3% likes, guardrails flat"
    entry = last_audit(db)
    assert entry["action"] == "end_experiment" and entry["actor_id"] == ADMIN
    assert entry["details"]["before"] == {"status": "active"}
    assert entry["details"]["after"] == {
        "status": "ended",
        "decision": "shipped",
        "winner": "v2",
        "decision_notes": "+3% likes, guardrails flat",
    }


@pytest.mark.parametrize("decision", ["rolled_back", "inconclusive"])
def test_end_with_a_decision_without_winner(db: psycopg.Connection, decision: str) -> None:
    create_experiment(db, "exp", AB)
    row = end(db, "exp", decision=decision)
    assert (row["status"], row["decision"], row["winner"], row["decision_notes"]) == (
        "ended",
        decision,
        None,
        None,
    )
    assert last_audit(db)["details"]["after"]["decision"] == decision


def test_old_two_argument_calls_still_end_without_a_decision(db: psycopg.Connection) -> None:
    create_experiment(db, "a", AB)
    create_experiment(db, "b", AB)
    db.execute("select rec_end_experiment('a', %s)", [ADMIN])
    db.execute("select rec_end_experiment(experiment_key => 'b', admin_id => %s)", [ADMIN])
    for key in ("a", "b"):
        assert experiment(db, key)["status"] == "ended"
        assert decision_of(db, key) == (None, None, None)


def test_one_signature_only(db: psycopg.Connection) -> None:
    """A second overload would make every named call ambiguous."""
    for name in ("rec_end_experiment", "rec_record_decision"):
        assert scalar(db, "select count(*) from pg_proc where proname = %s", [name]) == 1


BAD_END = [
    ("unknown-decision", {"decision": "won"}),
    ("decision-case", {"decision": "Shipped", "winner": "v2"}),
    ("shipped-without-winner", {"decision": "shipped"}),
    ("winner-without-decision", {"winner": "v2"}),
    ("winner-with-rolled-back", {"decision": "rolled_back", "winner": "v2"}),
    ("winner-with-inconclusive", {"decision": "inconclusive", "winner": "control"}),
    ("unknown-winner", {"decision": "shipped", "winner": "v3"}),
    ("winner-case", {"decision": "shipped", "winner": "V2"}),
    ("empty-winner", {"decision": "shipped", "winner": ""}),
    ("notes-too-long", {"decision": "inconclusive", "notes": "x" * 5001}),
]


@pytest.mark.parametrize("kw", [kw for _, kw in BAD_END], ids=[name for name, _ in BAD_END])
def test_bad_decision_on_end_is_22023_and_changes_nothing(db: psycopg.Connection, kw: dict[str, Any]) -> None:
    create_experiment(db, "exp", AB)
    before = snapshot(db)
    with raises_sqlstate(db, "22023"):
        end(db, "exp", **kw)
    assert snapshot(db) == before
    assert experiment(db, "exp")["status"] == "active"


@pytest.mark.parametrize("state", ["draft", "ended"])
def test_end_in_wrong_state_is_55000_even_with_a_decision(db: psycopg.Connection, state: str) -> None:
    create_experiment(db, "exp", AB, active=state == "ended")
    if state == "ended":
        end(db, "exp")
    before = snapshot(db)
    with raises_sqlstate(db, "55000"):
        end(db, "exp", decision="shipped", winner="v2")
    assert snapshot(db) == before


def test_the_table_refuses_inconsistent_decisions(db: psycopg.Connection) -> None:
    """The owner's own SQL cannot store what the RPCs refuse."""
    create_experiment(db, "live", AB)
    create_experiment(db, "over", AB)
    end(db, "over")
    for query in (
        "update rec_experiments set decision = 'inconclusive' where key = 'live'",
        "update rec_experiments set decision = 'shipped' where key = 'over'",
        "update rec_experiments set decision = 'rolled_back', winner = 'v2' where key = 'over'",
        "update rec_experiments set decision = 'won' where key = 'over'",
    ):
        with raises_sqlstate(db, "23514"):
            db.execute(query)


# --- recording (or changing) it later --------------------------------------------


def test_record_sets_and_changes_the_decision_with_before_and_after(db: psycopg.Connection) -> None:
    create_experiment(db, "exp", AB)
    end(db, "exp")
    row = record(db, "exp", "inconclusive", notes="too few users")
    assert (row["decision"], row["winner"], row["decision_notes"]) == ("inconclusive", None, "too few users")
    first = last_audit(db)
    assert first["action"] == "record_decision" and first["actor_id"] == ADMIN
    assert first["experiment_id"] == row["id"]
    assert first["details"]["before"] == {"decision": None, "winner": None, "decision_notes": None}
    assert first["details"]["after"] == {
        "decision": "inconclusive",
        "winner": None,
        "decision_notes": "too few users",
    }
    row = record(db, "exp", "shipped", admin=OTHER_ADMIN, winner="v2")
    assert decision_of(db, "exp") == ("shipped", "v2", None)  # notes are part of the decision
    second = last_audit(db)
    assert second["actor_id"] == OTHER_ADMIN
    assert second["details"]["before"]["decision"] == "inconclusive"
    assert second["details"]["after"] == {"decision": "shipped", "winner": "v2", "decision_notes": None}
    assert row["status"] == "ended" and row["ended_at"] is not None


@pytest.mark.parametrize("state", ["draft", "active"])
def test_record_on_an_experiment_not_ended_is_55000(db: psycopg.Connection, state: str) -> None:
    create_experiment(db, "exp", AB, active=state == "active")
    before = snapshot(db)
    with raises_sqlstate(db, "55000"):
        record(db, "exp", "shipped", winner="v2")
    assert snapshot(db) == before


BAD_RECORD = [
    ("no-decision", None, {}),
    ("unknown-decision", "lost", {}),
    ("shipped-without-winner", "shipped", {}),
    ("winner-without-shipped", "rolled_back", {"winner": "v2"}),
    ("unknown-winner", "shipped", {"winner": "v9"}),
    ("notes-too-long", "rolled_back", {"notes": "n" * 5001}),
]


@pytest.mark.parametrize(
    ("decision", "kw"), [(d, kw) for _, d, kw in BAD_RECORD], ids=[name for name, _, _ in BAD_RECORD]
)
def test_bad_recorded_decision_is_22023_and_changes_nothing(
    db: psycopg.Connection, decision: str | None, kw: dict[str, Any]
) -> None:
    create_experiment(db, "exp", AB)
    end(db, "exp", decision="inconclusive", notes="first look")
    before = snapshot(db)
    with raises_sqlstate(db, "22023"):
        record(db, "exp", decision, **kw)
    assert snapshot(db) == before


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("select rec_record_decision('nope', %(a)s, 'inconclusive')", "P0002"),
        ("select rec_record_decision('exp', null, 'inconclusive')", "22023"),
        ("select rec_end_experiment('exp', null, 'inconclusive')", "22023"),
        ("select rec_end_experiment('nope', %(a)s, 'inconclusive')", "P0002"),
    ],
)
def test_unknown_experiment_or_missing_admin(db: psycopg.Connection, query: str, code: str) -> None:
    create_experiment(db, "exp", AB)
    before = snapshot(db)
    with raises_sqlstate(db, code):
        db.execute(query, {"a": ADMIN})
    assert snapshot(db) == before


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_api_roles_other_than_service_cannot_decide(db: psycopg.Connection, role: str) -> None:
    create_experiment(db, "live", AB)
    create_experiment(db, "over", AB)
    end(db, "over")
    before = snapshot(db)
    for query in (
        "select rec_end_experiment('live', %(a)s, 'shipped', 'v2')",
        "select rec_record_decision('over', %(a)s, 'rolled_back')",
    ):
        with acting_as(db, role, sub=ADMIN), raises_sqlstate(db, "42501"):
            db.execute(query, {"a": ADMIN})
    assert snapshot(db) == before


def test_service_role_decides(db: psycopg.Connection) -> None:
    create_experiment(db, "exp", AB)
    with acting_as(db, "service_role"):
        db.execute("select rec_end_experiment('exp', %s, 'shipped', 'v2', 'ship it')", [ADMIN])
        db.execute("select rec_record_decision('exp', %s, 'rolled_back', notes => 'regressed')", [ADMIN])
        assert scalar(db, "select decision from rec_experiments where key = 'exp'") == "rolled_back"


def test_get_and_list_show_the_decision(db: psycopg.Connection) -> None:
    create_experiment(db, "exp", AB)
    end(db, "exp", decision="shipped", winner="v2", notes="n")
    got = scalar(db, "select rec_get_experiment('exp')")
    assert (got["decision"], got["winner"], got["decision_notes"]) == ("shipped", "v2", "n")
    row = db.execute("select decision, winner, decision_notes from rec_list_experiments()").fetchone()
    assert row == ("shipped", "v2", "n")
