"""rec_experiment_plan_stats + shared.results.plan on hand-made traffic:
users seen per run length (ending yesterday), each goal metric's per-user
spread over the last 28 days, and the MDE formula, fixed and sequential."""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid

import numpy as np
import psycopg
import pytest

from devstack import plan_report
from tests.sql.conftest import create_experiment, sqlstate_of

KEY = "planned"
VARIANTS = [{"name": "control", "weight": 2}, {"name": "a", "weight": 1}, {"name": "b", "weight": 3}]
Q, Z80 = 1.959963984540054, 0.841621
TODAY = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
# Per user: impressions as (days before today, outcomes on it).
USERS: list[list[tuple[int, int]]] = [
    [(1, 1), (1, 0), (3, 2)],
    [(2, 0)],
    [(6, 1), (10, 1), (10, 0), (12, 0)],
    [(9, 0), (20, 3)],
    [(27, 1), (28, 0)],  # day 28 is the last of the 28 days
    [(29, 5)],  # before the 28 days: not counted
    [(0, 1)],  # today: not counted
]


@pytest.fixture
def data(db: psycopg.Connection) -> psycopg.Connection:
    create_experiment(db, KEY, VARIANTS, active=False)
    for i, rows in enumerate(USERS):
        who = uuid.UUID(int=i + 1, version=4)
        for days, outcomes in rows:
            at = TODAY - dt.timedelta(days=days) + dt.timedelta(hours=12)
            row = db.execute(
                "insert into rec_impressions (user_id, request_context, created_at) values (%s, '{}', %s)"
                " returning id",
                [who, at],
            ).fetchone()
            assert row is not None
            for _ in range(outcomes):
                db.execute(
                    "insert into rec_outcomes (impression_id, user_id, outcome, created_at)"
                    " values (%s, %s, 'click', %s)",
                    [row[0], who, at],
                )
    return db


def _truth(metric: str) -> tuple[float, float]:
    """(baseline, per-user sd) over the users of the last 28 days."""
    seen = [[r for r in rows if 1 <= r[0] <= 28] for rows in USERS]
    seen = [rows for rows in seen if rows]
    n = np.array([len(rows) for rows in seen], dtype=float)
    e = np.array([sum(1 for _, o in rows if o) for rows in seen], dtype=float)
    o = np.array([sum(o for _, o in rows) for rows in seen], dtype=float)
    if metric == "engagement_rate":
        r = e.sum() / n.sum()
        return r, float(np.std((e - r * n) / n.mean(), ddof=1))
    a = o if metric == "outcomes_per_user" else (e > 0).astype(float)
    return a.mean(), float(np.std(a, ddof=1))


@pytest.mark.parametrize("sequential", [False, True])
def test_plan_is_the_formula_on_hand_made_traffic(data: psycopg.Connection, sequential: bool) -> None:
    data.execute("update rec_experiments set sequential = %s where key = %s", [sequential, KEY])
    answer = plan_report.fetch(data, KEY, [7, 14, 28, 1])
    assert answer["key"] == KEY and answer["eligible_share"] == 1.0
    users = {7: 3, 14: 4, 28: 5, 1: 1}  # distinct users with an impression in the d days up to yesterday
    assert [m["metric"] for m in answer["metrics"]] == [
        "engagement_rate",
        "outcomes_per_user",
        "engaged_user_rate",
    ]
    for m in answer["metrics"]:
        baseline, sd = _truth(m["metric"])
        assert m["baseline"] == pytest.approx(baseline, rel=1e-12)
        assert m["std_dev"] == pytest.approx(sd, rel=1e-12)
        assert [r["days"] for r in m["mde"]] == [7, 14, 28, 1]
        for row in m["mde"]:
            total = users[row["days"]]
            assert row["users"] == total
            # the smallest-weight non-baseline variant: a (1 of 6) against control (2 of 6)
            n_t, n_c = total / 6, total * 2 / 6
            q = Q
            if sequential:
                rho2 = (-2 * math.log(0.05) + math.log(-2 * math.log(0.05) + 1)) / 5000
                nr = (n_t + n_c) * rho2
                q = math.sqrt(2 * (nr + 1) / nr * math.log(math.sqrt(nr + 1) / 0.05))
            expected = (q + Z80) * sd * math.sqrt(1 / n_t + 1 / n_c) / baseline
            assert row["mde_relative"] == pytest.approx(expected, rel=1e-12)
    report = plan_report.format_answer(answer)
    assert report.startswith(f"Plan for {KEY}") and "engagement_rate" in report
    json.dumps(answer, allow_nan=False)


def test_no_traffic_gives_nulls_not_errors(db: psycopg.Connection) -> None:
    create_experiment(db, KEY, VARIANTS)
    answer = plan_report.fetch(db, KEY)
    assert [r["users"] for r in answer["metrics"][0]["mde"]] == [0, 0, 0]
    assert all(m["baseline"] is None and m["std_dev"] is None for m in answer["metrics"])
    assert all(r["mde_relative"] is None for m in answer["metrics"] for r in m["mde"])


@pytest.mark.parametrize("days", [[0], [29], [7, -1], [], [None]])
def test_bad_days_are_refused(data: psycopg.Connection, days: list[int | None]) -> None:
    state = sqlstate_of(lambda: data.execute("select rec_experiment_plan_stats(%s, %s::int[])", [KEY, days]))
    assert state == "22023"


def test_unknown_experiment(db: psycopg.Connection) -> None:
    assert sqlstate_of(lambda: db.execute("select rec_experiment_plan_stats('nope')")) == "P0002"


def test_only_service_role_may_call(data: psycopg.Connection) -> None:
    from tests.sql.conftest import acting_as

    for role in ("anon", "authenticated"):
        with acting_as(data, role):
            state = sqlstate_of(lambda: data.execute("select rec_experiment_plan_stats(%s)", [KEY]))
        assert state == "42501", role
    with acting_as(data, "service_role"):
        row = data.execute("select rec_experiment_plan_stats(%s)", [KEY]).fetchone()
    assert row is not None and row[0]["key"] == KEY
