"""The results series on hand-made days: every point equals the results of
[from_day, that day] (to 1e-9 relative), for every metric kind, with CUPED
on, users entering on later days, a crossover user who leaves the day a
second variant is tagged, an overridden user, and a capped metric (computed
per prefix)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import psycopg
import pytest

from devstack import results_report
from tests.sql.conftest import ADMIN, create_experiment

KEY = "ser"
AB = [{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}]
START = dt.datetime(2026, 3, 1, 8, tzinfo=dt.UTC)
# Per user: (variant on that impression, day offset, outcomes (name, value)).
USERS: list[list[tuple[str, int, list[tuple[str, float]]]]] = [
    [("control", 0, [("like", 2.0)]), ("control", 0, []), ("control", 2, [("like", 1.0), ("save", 3.0)])],
    [("control", 1, []), ("control", 3, [("like", 1.0)])],
    [("control", 0, [("save", 1.0)]), ("treatment", 2, [("like", 5.0)]), ("control", 3, [])],  # crossover
    [("control", 3, [("like", 4.0)]), ("control", 3, [("like", 1.0)])],
    [("control", -3, [("like", 1.0)]), ("control", 1, [("like", 2.0)])],  # a pre-period impression
    [("treatment", 0, [("like", 1.0)]), ("treatment", 1, []), ("treatment", 1, [("like", 2.0)])],
    [("treatment", 0, []), ("treatment", 2, [("like", 1.0)]), ("treatment", 3, [("save", 2.0)])],
    [("treatment", 1, [("like", 3.0), ("like", 1.0)]), ("treatment", 3, [])],
    [("treatment", -1, [("like", 2.0)]), ("treatment", 2, []), ("treatment", 2, [("like", 1.0)])],
    [("treatment", 0, [("like", 9.0)])],  # overridden below
]
DEFINITIONS = [
    ("likes_rate", "impression_rate", "like", None),
    ("watch_per_imp", "value_per_impression", None, None),
    ("likes", "per_user_count", "like", None),
    ("watch", "per_user_value", None, None),
    ("liked_users", "user_rate", "like", None),
    ("likes_capped", "per_user_count", "like", 0.8),
]


def _insert(db: psycopg.Connection) -> None:
    for i, rows in enumerate(USERS):
        who = uuid.UUID(int=i + 1, version=4)
        db.execute(
            "insert into rec_user_experiment_assignments (experiment_id, user_id, variant)"
            " select id, %s, %s from rec_experiments where key = %s",
            [who, rows[0][0], KEY],
        )
        for j, (variant, day, outcomes) in enumerate(rows):
            at = START + dt.timedelta(days=day, minutes=j)
            tag = {KEY: variant} if day >= 0 else {}
            row = db.execute(
                "insert into rec_impressions (user_id, request_context, created_at)"
                " values (%s, %s, %s) returning id",
                [who, json.dumps({"experiments": tag}), at],
            ).fetchone()
            assert row is not None
            for name, value in outcomes:
                db.execute(
                    "insert into rec_outcomes (impression_id, user_id, outcome, value, created_at)"
                    " values (%s, %s, %s, %s, %s)",
                    [row[0], who, name, value, at],
                )
    db.execute(
        "select rec_set_user_variant(%s, %s, 'treatment', %s)",
        [KEY, uuid.UUID(int=len(USERS), version=4), ADMIN],
    )


@pytest.fixture
def data(db: psycopg.Connection) -> psycopg.Connection:
    create_experiment(db, KEY, AB)
    db.execute("update rec_experiments set started_at = %s, cuped_days = 7 where key = %s", [START, KEY])
    for key, kind, outcome, capping in DEFINITIONS:
        db.execute(
            "select rec_create_metric(%s, %s, %s, outcome => %s, capping => %s)",
            [key, kind, ADMIN, outcome, capping],
        )
    metrics = [{"metric": d[0], "role": "goal" if i < 2 else "secondary"} for i, d in enumerate(DEFINITIONS)]
    db.execute("select rec_set_experiment_metrics(%s, %s::jsonb, %s)", [KEY, json.dumps(metrics), ADMIN])
    _insert(db)
    return db


def _same(a: Any, b: Any, where: str) -> None:
    if isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-15), where
    else:
        assert a == b, where


@pytest.mark.parametrize("cuped_days", [7, 0])
def test_each_point_is_the_results_of_its_prefix(data: psycopg.Connection, cuped_days: int) -> None:
    data.execute("update rec_experiments set cuped_days = %s where key = %s", [cuped_days, KEY])
    first, last = START.date(), START.date() + dt.timedelta(days=3)
    points = results_report.fetch_series(data, KEY, first, last)
    assert [p["day"] for p in points] == [str(first + dt.timedelta(days=i)) for i in range(4)]
    reduced = 0
    for point in points:
        prefix = results_report.fetch(data, KEY, first, dt.date.fromisoformat(point["day"]))
        assert len(point["comparisons"]) == len(prefix["comparisons"]) == len(DEFINITIONS)
        for got, want in zip(point["comparisons"], prefix["comparisons"], strict=True):
            assert got.keys() == want.keys()
            for field in want:
                _same(got[field], want[field], f"{point['day']} {want['metric']} {field}")
            reduced += bool(want["cuped_variance_reduction"])
    assert (reduced > 0) == (cuped_days > 0)
    # the crossover user counts until day 2 and not after: the prefixes differ
    assert points[1]["comparisons"][2]["baseline_value"] != points[3]["comparisons"][2]["baseline_value"]


def test_a_day_without_traffic_repeats_the_previous_point(data: psycopg.Connection) -> None:
    first = START.date()
    points = results_report.fetch_series(data, KEY, first, first + dt.timedelta(days=5))
    assert len(points) == 6
    assert points[4]["comparisons"] == points[5]["comparisons"] == points[3]["comparisons"]


def test_series_refuses_a_reversed_window(data: psycopg.Connection) -> None:
    with pytest.raises(psycopg.Error) as info:
        data.execute(
            "select rec_experiment_results_series_stats(%s, %s, %s)",
            [KEY, START.date(), START.date() - dt.timedelta(1)],
        )
    assert info.value.sqlstate == "22023"


def _user_days(db: psycopg.Connection) -> list[tuple[Any, ...]]:
    return db.execute(
        "select * from rec_internal.series_user_day_counts(%s, %s, %s)"
        " order by user_id, day, variant, outcome nulls first",
        [KEY, START.date(), START.date() + dt.timedelta(days=3)],
    ).fetchall()


def test_rolled_up_days_and_a_dirty_last_day_give_the_live_rows(data: psycopg.Connection) -> None:
    live = _user_days(data)
    data.execute("select rec_refresh_daily_rollups(%s)", [START.date() + dt.timedelta(days=2)])
    # (other tests' rows may leave later days dirty: look at this data's days only)
    dirty = [
        r[0]
        for r in data.execute(
            "select day from rec_internal.rollup_dirty_days where day between %s and %s order by day",
            [START.date(), START.date() + dt.timedelta(days=3)],
        )
    ]
    assert dirty == [START.date() + dt.timedelta(days=3)]  # the "today" of this data
    assert _user_days(data) == live
    # a late outcome on a rolled-up day makes it dirty again, and is counted
    data.execute(
        "insert into rec_outcomes (impression_id, user_id, outcome, value, created_at)"
        " select id, user_id, 'like', 7, created_at from rec_impressions"
        " where created_at = %s",
        [START + dt.timedelta(days=1)],
    )
    assert _user_days(data) != live
    again = _user_days(data)
    data.execute("select rec_refresh_daily_rollups(%s)", [START.date() + dt.timedelta(days=2)])
    assert _user_days(data) == again


def test_each_point_is_the_results_of_its_prefix_when_rolled_up(data: psycopg.Connection) -> None:
    data.execute("select rec_refresh_daily_rollups(%s)", [START.date() + dt.timedelta(days=2)])
    first, last = START.date(), START.date() + dt.timedelta(days=3)
    points = results_report.fetch_series(data, KEY, first, last)
    for point in points:
        prefix = results_report.fetch(data, KEY, first, dt.date.fromisoformat(point["day"]))
        for got, want in zip(point["comparisons"], prefix["comparisons"], strict=True):
            for field in want:
                _same(got[field], want[field], f"rolled {point['day']} {want['metric']} {field}")
