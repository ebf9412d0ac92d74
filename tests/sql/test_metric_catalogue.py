"""The metric catalogue: rec_metrics / rec_experiment_metrics, their audited
RPCs and the refusals (clear SQLSTATE, nothing changed)."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from tests.sql.conftest import ADMIN, acting_as, audit_count, create_experiment, raises_sqlstate, scalar

AB = [{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}]
BUILTINS = ["engagement_rate", "outcomes_per_user", "engaged_user_rate"]


def metrics(conn: psycopg.Connection) -> list[Any]:
    return conn.execute("select to_jsonb(m) - 'updated_at' from rec_metrics m order by key").fetchall()


def create(conn: psycopg.Connection, key: str, kind: str, **kw: Any) -> dict[str, Any]:
    names = ", ".join(f"{k} => %({k})s" for k in kw)
    row = conn.execute(
        f"select rec_create_metric(%(key)s, %(kind)s, %(admin)s{', ' + names if names else ''})",
        {"key": key, "kind": kind, "admin": ADMIN, **kw},
    ).fetchone()
    assert row is not None
    return dict(row[0])


def set_metrics(conn: psycopg.Connection, key: str, items: Any) -> Any:
    return scalar(
        conn, "select rec_set_experiment_metrics(%s, %s::jsonb, %s)", [key, json.dumps(items), ADMIN]
    )


def test_builtins_are_rows_and_immutable(db: psycopg.Connection) -> None:
    rows = db.execute(
        "select key, kind, outcome, direction, capping, builtin from rec_list_metrics()"
    ).fetchall()
    assert rows[:3] == [
        ("engaged_user_rate", "user_rate", None, "increase", None, True),
        ("engagement_rate", "impression_rate", None, "increase", None, True),
        ("outcomes_per_user", "per_user_count", None, "increase", None, True),
    ]
    before, audits = metrics(db), audit_count(db)
    for key in BUILTINS:
        with raises_sqlstate(db, "55000"):
            db.execute("select rec_update_metric(%s, %s, direction => 'decrease')", [key, ADMIN])
    assert metrics(db) == before and audit_count(db) == audits


def test_create_and_update_are_audited(db: psycopg.Connection) -> None:
    m = create(db, "likes", "per_user_count", outcome="like", capping=0.99, name="Likes")
    assert (m["kind"], m["outcome"], m["direction"], m["capping"]) == (
        "per_user_count",
        "like",
        "increase",
        0.99,
    )
    row = db.execute("select action, details from rec_audit_log order by id desc limit 1").fetchone()
    assert row is not None and row[0] == "create_metric" and row[1]["after"]["key"] == "likes"
    updated = scalar(
        db, "select rec_update_metric('likes', %s, direction => 'decrease', capping => 0)", [ADMIN]
    )
    assert (updated["direction"], updated["capping"], updated["kind"]) == ("decrease", None, "per_user_count")
    row = db.execute("select action, details from rec_audit_log order by id desc limit 1").fetchone()
    assert row is not None and row[0] == "update_metric"
    assert row[1]["changes"] == {
        "direction": {"before": "increase", "after": "decrease"},
        "capping": {"before": 0.99, "after": None},
    }
    with raises_sqlstate(db, "P0002"):
        db.execute("select rec_update_metric('nope', %s, name => 'x')", [ADMIN])


@pytest.mark.parametrize(
    ("key", "kind", "extra", "code"),
    [
        ("m1", "ratio", {}, "22023"),
        ("m1", None, {}, "22023"),
        ("m1", "per_user_count", {"direction": "up"}, "22023"),
        ("m1", "per_user_count", {"outcome": "Like"}, "22023"),
        ("m1", "per_user_count", {"outcome": ""}, "22023"),
        ("m1", "per_user_count", {"outcome": "a" * 65}, "22023"),
        ("m1", "per_user_count", {"capping": 0.0}, "22023"),
        ("m1", "per_user_count", {"capping": 1.0}, "22023"),
        ("m1", "per_user_count", {"capping": -0.5}, "22023"),
        ("m1", "per_user_count", {"capping": float("nan")}, "22023"),
        ("m1", "user_rate", {"capping": 0.9}, "22023"),
        ("Bad Key", "per_user_count", {}, "22023"),
        ("engagement_rate", "per_user_count", {}, "23505"),
    ],
)
def test_bad_definitions_are_refused_and_change_nothing(
    db: psycopg.Connection, key: str, kind: str | None, extra: dict[str, Any], code: str
) -> None:
    before, audits = metrics(db), audit_count(db)
    with raises_sqlstate(db, code):
        create(db, key, kind, **extra)  # type: ignore[arg-type]
    assert metrics(db) == before and audit_count(db) == audits


def test_existing_key_and_bad_updates(db: psycopg.Connection) -> None:
    create(db, "likes", "per_user_count", outcome="like")
    create(db, "liked", "user_rate", outcome="like")
    before, audits = metrics(db), audit_count(db)
    with raises_sqlstate(db, "23505"):
        create(db, "likes", "per_user_value")
    for call in (
        "select rec_update_metric('likes', %s, capping => 1.5)",
        "select rec_update_metric('likes', %s, capping => -0.1)",
        "select rec_update_metric('likes', %s, direction => 'sideways')",
        "select rec_update_metric('liked', %s, capping => 0.9)",
        "select rec_update_metric('likes', null)",
    ):
        with raises_sqlstate(db, "22023"):
            db.execute(call, [ADMIN] if "null" not in call else None)
    assert metrics(db) == before and audit_count(db) == audits


def test_set_experiment_metrics_before_and_after(db: psycopg.Connection) -> None:
    create_experiment(db, "exp", AB)
    create(db, "likes", "per_user_count", outcome="like")
    create(db, "hides", "per_user_count", outcome="hide", direction="decrease")
    items = [
        {"metric": "hides", "role": "guardrail"},
        {"metric": "likes", "role": "goal"},
        {"metric": "engagement_rate", "role": "secondary"},
        {"metric": "outcomes_per_user", "role": "goal"},
    ]
    answer = set_metrics(db, "exp", items)
    ordered = [items[1], items[3], items[0], items[2]]  # by role, then as given
    assert answer == {"experiment_key": "exp", "metrics": ordered}
    row = db.execute("select action, details from rec_audit_log order by id desc limit 1").fetchone()
    assert row is not None and row[0] == "set_experiment_metrics"
    assert (row[1]["before"], row[1]["after"], row[1]["goals_changed"]) == ([], ordered, True)
    set_metrics(db, "exp", [{"metric": "likes", "role": "goal"}])
    row = db.execute("select details from rec_audit_log order by id desc limit 1").fetchone()
    assert row is not None and row[0]["before"] == ordered


@pytest.mark.parametrize(
    ("items", "code"),
    [
        ([{"metric": "likes", "role": "guardrail"}], "22023"),  # no goal
        ([], "22023"),
        ({"metric": "likes"}, "22023"),
        ([{"metric": "likes", "role": "owner"}], "22023"),
        ([{"metric": "likes"}], "22023"),
        ([{"metric": "likes", "role": "goal", "x": 1}], "22023"),
        ([{"metric": "likes", "role": "goal"}, {"metric": "likes", "role": "secondary"}], "22023"),
        (["likes"], "22023"),
        ([{"metric": "nope", "role": "goal"}], "P0002"),
        (None, "22023"),
    ],
)
def test_bad_metric_sets_are_refused_and_change_nothing(
    db: psycopg.Connection, items: Any, code: str
) -> None:
    create_experiment(db, "exp", AB)
    create(db, "likes", "per_user_count", outcome="like")
    set_metrics(db, "exp", [{"metric": "likes", "role": "goal"}])
    rows = db.execute("select * from rec_experiment_metrics").fetchall()
    audits = audit_count(db)
    with raises_sqlstate(db, code):
        db.execute(
            "select rec_set_experiment_metrics('exp', %s::jsonb, %s)",
            [None if items is None else json.dumps(items), ADMIN],
        )
    assert db.execute("select * from rec_experiment_metrics").fetchall() == rows
    assert audit_count(db) == audits


def test_metrics_of_an_ended_experiment_cannot_change(db: psycopg.Connection) -> None:
    create_experiment(db, "exp", AB)
    db.execute("select rec_end_experiment('exp', %s)", [ADMIN])
    audits = audit_count(db)
    with raises_sqlstate(db, "55000"):
        set_metrics(db, "exp", [{"metric": "engagement_rate", "role": "goal"}])
    with raises_sqlstate(db, "P0002"):
        set_metrics(db, "nope", [{"metric": "engagement_rate", "role": "goal"}])
    assert audit_count(db) == audits
    assert scalar(db, "select count(*) from rec_experiment_metrics") == 0


@pytest.mark.parametrize("role", ["anon", "authenticated", "service_role"])
def test_no_api_role_writes_the_tables_directly(db: psycopg.Connection, role: str) -> None:
    create_experiment(db, "exp", AB)
    metric_id = scalar(db, "select id from rec_metrics where key = 'engagement_rate'")
    experiment_id = scalar(db, "select id from rec_experiments where key = 'exp'")
    statements = [
        ("insert into rec_metrics (key, kind) values ('x', 'user_rate')", None),
        ("update rec_metrics set direction = 'decrease'", None),
        ("delete from rec_metrics", None),
        ("truncate rec_metrics cascade", None),
        ("insert into rec_experiment_metrics values (%s, %s, 'goal', 1)", [experiment_id, metric_id]),
        ("delete from rec_experiment_metrics", None),
    ]
    for statement, params in statements:
        with acting_as(db, role), raises_sqlstate(db, "42501"):
            db.execute(statement, params)
    if role == "service_role":
        with acting_as(db, role):
            assert scalar(db, "select count(*) from rec_metrics") == 3
    else:
        with acting_as(db, role), raises_sqlstate(db, "42501"):
            db.execute("select * from rec_metrics")
