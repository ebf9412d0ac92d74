"""docs/reference.md §4: the daily per-variant metrics views and the chart RPC."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import psycopg
import pytest

from tests.sql.conftest import create_experiment, raises_sqlstate, uuids

D1, D2, D3 = dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 3)
AB = [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]
XY = [{"name": "x", "weight": 1}, {"name": "y", "weight": 1}]
METRIC_COLUMNS = (
    "day, experiment_key, variant, impressions, users, outcomes, engaged_impressions, outcome_value"
)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def impression(conn: psycopg.Connection, user: uuid.UUID, created: str, context: dict[str, Any]) -> uuid.UUID:
    row = conn.execute(
        "insert into rec_impressions (user_id, request_context, created_at)"
        " values (%s, %s::jsonb, %s) returning id",
        [user, json.dumps(context), at(created)],
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def outcome(
    conn: psycopg.Connection,
    imp: uuid.UUID,
    user: uuid.UUID,
    kind: str,
    created: str,
    value: float | None = None,
) -> None:
    if value is None:  # the column default
        conn.execute(
            "insert into rec_outcomes (impression_id, user_id, outcome, created_at) values (%s, %s, %s, %s)",
            [imp, user, kind, at(created)],
        )
    else:
        conn.execute(
            "insert into rec_outcomes (impression_id, user_id, outcome, created_at, value)"
            " values (%s, %s, %s, %s, %s)",
            [imp, user, kind, at(created), value],
        )


@pytest.fixture
def traffic(db: psycopg.Connection) -> psycopg.Connection:
    create_experiment(db, "exp1", AB)
    create_experiment(db, "exp2", XY)
    create_experiment(db, "quiet", AB)
    u1, u2, u3, u4, u5 = uuids(5, seed=50)
    # two experiments on one impression
    i1 = impression(db, u1, "2026-03-01T10:00:00+00:00", {"experiments": {"exp1": "a", "exp2": "x"}})
    outcome(db, i1, u1, "click", "2026-03-01T10:05:00+00:00")
    outcome(db, i1, u1, "like", "2026-03-01T10:06:00+00:00", 2.5)
    # the outcome happens the next UTC day: it counts on the impression's day
    i2 = impression(db, u1, "2026-03-01T23:59:30+00:00", {"experiments": {"exp1": "a"}, "page": "home"})
    outcome(db, i2, u1, "click", "2026-03-02T00:00:30+00:00")
    impression(db, u2, "2026-03-01T12:00:00+00:00", {"experiments": {"exp1": "b"}})
    i4 = impression(db, u2, "2026-03-02T08:00:00+00:00", {"experiments": {"exp1": "b", "exp2": "y"}})
    outcome(db, i4, u2, "save", "2026-03-02T08:01:00+00:00", 4)
    # untagged impressions (and their outcomes) appear nowhere
    i5 = impression(db, u3, "2026-03-01T11:00:00+00:00", {})
    outcome(db, i5, u3, "click", "2026-03-01T11:01:00+00:00")
    i6 = impression(db, u3, "2026-03-01T13:00:00+00:00", {"experiments": {}})
    outcome(db, i6, u3, "click", "2026-03-01T13:01:00+00:00")
    impression(db, u3, "2026-03-01T14:00:00+00:00", {"other": {"exp1": "a"}})
    # two outcomes on one impression: 2 outcomes, 1 engaged impression
    i7 = impression(db, u4, "2026-03-02T09:00:00+00:00", {"experiments": {"exp1": "a"}})
    outcome(db, i7, u4, "click", "2026-03-02T09:01:00+00:00")
    outcome(db, i7, u4, "click", "2026-03-02T09:02:00+00:00")
    # 23:30 in New York on Mar 1 is Mar 2 in UTC
    impression(db, u5, "2026-03-01T23:30:00-05:00", {"experiments": {"exp1": "a"}})
    return db


# (day, key, variant, impressions, users, outcomes, engaged_impressions, outcome_value)
EXPECTED_METRICS = [
    (D1, "exp1", "a", 2, 1, 3, 2, 4.5),
    (D1, "exp1", "b", 1, 1, 0, 0, 0.0),
    (D1, "exp2", "x", 1, 1, 2, 1, 3.5),
    (D2, "exp1", "a", 2, 2, 2, 1, 2.0),
    (D2, "exp1", "b", 1, 1, 1, 1, 4.0),
    (D2, "exp2", "y", 1, 1, 1, 1, 4.0),
]


@pytest.mark.parametrize("timezone", ["UTC", "Pacific/Kiritimati", "America/Los_Angeles"])
def test_daily_metrics_view(traffic: psycopg.Connection, timezone: str) -> None:
    """Days are UTC days whatever the session's time zone."""
    traffic.execute("select set_config('TimeZone', %s, false)", [timezone])
    rows = traffic.execute(
        f"select {METRIC_COLUMNS} from rec_variant_daily_metrics_v1 order by day, experiment_key, variant"
    ).fetchall()
    assert rows == EXPECTED_METRICS


def test_daily_outcomes_view(traffic: psycopg.Connection) -> None:
    rows = traffic.execute(
        "select day, experiment_key, variant, outcome, outcomes, outcome_value"
        "  from rec_variant_daily_outcomes_v1 order by day, experiment_key, variant, outcome"
    ).fetchall()
    assert rows == [
        (D1, "exp1", "a", "click", 2, 2.0),
        (D1, "exp1", "a", "like", 1, 2.5),
        (D1, "exp2", "x", "click", 1, 1.0),
        (D1, "exp2", "x", "like", 1, 2.5),
        (D2, "exp1", "a", "click", 2, 2.0),
        (D2, "exp1", "b", "save", 1, 4.0),
        (D2, "exp2", "y", "save", 1, 4.0),
    ]


def test_views_agree_with_each_other(traffic: psycopg.Connection) -> None:
    """Summed over outcome types, the outcomes view gives the metrics view's totals."""
    mismatch = traffic.execute(
        "select m.day, m.experiment_key, m.variant"
        "  from rec_variant_daily_metrics_v1 m"
        "  left join (select day, experiment_key, variant, sum(outcomes) n, sum(outcome_value) v"
        "               from rec_variant_daily_outcomes_v1 group by 1, 2, 3) o"
        "       using (day, experiment_key, variant)"
        " where m.outcomes <> coalesce(o.n, 0) or m.outcome_value <> coalesce(o.v, 0)"
    ).fetchall()
    assert mismatch == []


def metrics(
    conn: psycopg.Connection, key: str, from_day: dt.date | None = None, to_day: dt.date | None = None
) -> list[tuple[Any, ...]]:
    return conn.execute(
        f"select {METRIC_COLUMNS} from rec_experiment_daily_metrics(%s, %s, %s)", [key, from_day, to_day]
    ).fetchall()


def test_experiment_daily_metrics(traffic: psycopg.Connection) -> None:
    exp1 = [r for r in EXPECTED_METRICS if r[1] == "exp1"]
    assert metrics(traffic, "exp1") == exp1  # ordered by day, variant
    assert metrics(traffic, "exp1", D2) == [r for r in exp1 if r[0] == D2]
    assert metrics(traffic, "exp1", None, D1) == [r for r in exp1 if r[0] == D1]
    assert metrics(traffic, "exp1", D1, D1) == [r for r in exp1 if r[0] == D1]
    assert metrics(traffic, "exp1", D3, None) == []
    assert metrics(traffic, "exp2") == [r for r in EXPECTED_METRICS if r[1] == "exp2"]
    assert metrics(traffic, "quiet") == []
    # named arguments, as PostgREST passes them
    rows = traffic.execute(
        "select count(*) from rec_experiment_daily_metrics("
        "experiment_key => 'exp1', from_day => %s, to_day => %s)",
        [D1, D2],
    ).fetchone()
    assert rows == (4,)


def test_experiment_daily_metrics_refuses_bad_arguments(traffic: psycopg.Connection) -> None:
    with raises_sqlstate(traffic, "22023"):
        metrics(traffic, "exp1", D2, D1)
    with raises_sqlstate(traffic, "P0002"):
        metrics(traffic, "not-an-experiment")
    with raises_sqlstate(traffic, "P0002"):
        metrics(traffic, "other")  # a tag alone does not make an experiment


def test_tags_for_unknown_experiments_still_count_in_the_view(db: psycopg.Connection) -> None:
    """The view reads tags, not rec_experiments: a deleted or external key still shows."""
    user = uuid.uuid4()
    impression(db, user, "2026-03-01T10:00:00+00:00", {"experiments": {"gone": "v"}})
    rows = db.execute(f"select {METRIC_COLUMNS} from rec_variant_daily_metrics_v1").fetchall()
    assert rows == [(D1, "gone", "v", 1, 1, 0, 0, 0.0)]
