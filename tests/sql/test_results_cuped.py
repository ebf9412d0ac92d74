"""CUPED through SQL on hand-made rows: each user's pre-period (all
impressions, tagged or not, in the cuped_days days before the window)
becomes the covariate of every metric, mean and ratio kinds, capped and
not; checked against an independent per-user computation with numpy."""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from typing import Any

import numpy as np
import psycopg
import pytest

from devstack import results_report
from tests.sql.conftest import ADMIN, create_experiment

KEY = "cup"
AB = [{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}]
DAY = dt.datetime(2026, 2, 1, 10, tzinfo=dt.UTC)
Q = 1.959963984540054
Imp = list[tuple[str, float]]  # one impression's outcomes (name, value)
# Per user: variant, in-window impressions, pre-period impressions as
# (days before DAY, outcomes, tag or None). Days 1..14 are the pre-period of
# 14 days; day 20 is before it and must not count.
USERS: list[tuple[str, list[Imp], list[tuple[int, Imp, str | None]]]] = [
    ("control", [[("like", 2.0)], [], [("like", 0.5)]], [(1, [("like", 1.0)], None), (3, [], "other")]),
    ("control", [[]], []),
    (
        "control",
        [[("like", 1.0), ("like", 3.0)], [("hide", 1.0)]],
        [(2, [("like", 2.0)], None), (20, [("like", 9.0)], None)],
    ),
    ("control", [[]] * 6 + [[("like", 1.0)]], [(5, [], None)] * 5 + [(6, [("like", 1.0)], "control")]),
    ("control", [[("like", 1.0)], [("like", 2.0)]], [(7, [("like", 1.0)], None), (8, [("save", 1.0)], None)]),
    (
        "treatment",
        [[("like", 4.0)], [("like", 1.0)]],
        [(1, [("like", 3.0)], None), (2, [("like", 1.0)], None)],
    ),
    ("treatment", [[("save", 2.5)], [], [("like", 1.5)]], [(4, [], None), (4, [("like", 1.0)], None)]),
    ("treatment", [[], [("like", 1.0), ("like", 2.0)]], []),
    (
        "treatment",
        [[("like", 9.0)]] + [[]] * 9,
        [(9, [], None)] * 8 + [(14, [("like", 5.0), ("like", 1.0)], None)],
    ),
    ("treatment", [[("like", 1.0)]], [(13, [("like", 2.0)], None)]),
]
DEFINITIONS = [
    ("likes_rate", "impression_rate", "like", None),
    ("likes_rate_capped", "impression_rate", "like", 0.7),
    ("watch_per_imp", "value_per_impression", None, None),
    ("watch_per_imp_capped", "value_per_impression", None, 0.6),
    ("likes", "per_user_count", "like", None),
    ("likes_capped", "per_user_count", "like", 0.5),
    ("watch", "per_user_value", None, None),
    ("watch_capped", "per_user_value", None, 0.75),
    ("liked_users", "user_rate", "like", None),
]
RATIO = ("impression_rate", "value_per_impression")


def _quantity(rows: list[Imp], outcome: str | None, kind: str) -> tuple[float, float]:
    """(impressions, the metric's per-user value or numerator) of some impressions."""
    rows = [[(name, v) for name, v in imp if outcome is None or name == outcome] for imp in rows]
    e = sum(1 for r in rows if r)
    o = sum(len(r) for r in rows)
    v = sum(value for r in rows for _, value in r)
    a = {"impression_rate": e, "value_per_impression": v, "per_user_count": o, "per_user_value": v}
    return float(len(rows)), float(a.get(kind, e > 0))


def _cap(kind: str, n: np.ndarray, a: np.ndarray, capping: float | None) -> tuple[np.ndarray, np.ndarray]:
    if capping is None:
        return n, a
    if kind in RATIO:
        if kind == "value_per_impression":
            a = np.minimum(a, np.quantile(a, capping))
        c = np.quantile(n, capping)
        s = np.array([min(1.0, c / x) if x > 0 else 1.0 for x in n])
        return n * s, a * s
    return n, np.minimum(a, np.quantile(a, capping))


def oracle(kind: str, outcome: str | None, capping: float | None) -> dict[str, Any]:
    """The CUPED comparison from the per-user rows, by the definition."""
    variant = np.array([u[0] for u in USERS])
    now = [_quantity(u[1], outcome, kind) for u in USERS]
    before = [_quantity([imp for days, imp, _ in u[2] if 1 <= days <= 14], outcome, kind) for u in USERS]
    n, a = _cap(kind, np.array([q[0] for q in now]), np.array([q[1] for q in now]), capping)
    m, x = _cap(kind, np.array([q[0] for q in before]), np.array([q[1] for q in before]), capping)
    y, value = np.zeros(len(USERS)), {}
    if kind in RATIO:
        r_pre, m_bar = x.sum() / m.sum(), m.mean()
        x = (x - r_pre * m) / m_bar
    for v in ("control", "treatment"):
        k = variant == v
        if kind in RATIO:
            value[v] = a[k].sum() / n[k].sum()
            y[k] = (a[k] - value[v] * n[k]) / n[k].mean()
        else:
            value[v] = a[k].mean()
            y[k] = a[k]
    cx = {v: x[variant == v] - x[variant == v].mean() for v in value}
    cy = {v: y[variant == v] - y[variant == v].mean() for v in value}
    theta = sum((cx[v] * cy[v]).sum() for v in value) / sum((cx[v] ** 2).sum() for v in value)
    adj, var, raw_var = {}, {}, {}
    for v in value:
        k = variant == v
        adj[v] = value[v] - theta * (x[k].mean() - x.mean())
        var[v] = np.var(y[k] - theta * x[k], ddof=1) / k.sum()
        raw_var[v] = np.var(y[k], ddof=1) / k.sum()
    mt, mc, vt, vc = adj["treatment"], adj["control"], var["treatment"], var["control"]
    z = (mt - mc) / math.sqrt(vt + vc)
    a_, b, c = mc**2 - Q**2 * vc, mt * mc, mt**2 - Q**2 * vt
    ci = (None, None)
    if a_ > 0:
        ci = ((b - math.sqrt(b * b - a_ * c)) / a_ - 1, (b + math.sqrt(b * b - a_ * c)) / a_ - 1)
    return {
        "value": value,
        "adjusted": adj,
        "theta": theta,
        "p": math.erfc(abs(z) / math.sqrt(2)),
        "ci": ci,
        "reduction": 1 - (vt + vc) / (raw_var["treatment"] + raw_var["control"]),
    }


def _impression(
    db: psycopg.Connection, who: uuid.UUID, at: dt.datetime, tag: dict[str, str], outcomes: Imp
) -> None:
    row = db.execute(
        "insert into rec_impressions (user_id, request_context, created_at) values (%s, %s, %s) returning id",
        [who, json.dumps({"experiments": tag}), at],
    ).fetchone()
    assert row is not None
    for name, value in outcomes:
        db.execute(
            "insert into rec_outcomes (impression_id, user_id, outcome, value, created_at)"
            " values (%s, %s, %s, %s, %s)",
            [row[0], who, name, value, at],
        )


@pytest.fixture
def data(db: psycopg.Connection) -> psycopg.Connection:
    create_experiment(db, KEY, AB)
    # the owner's own SQL: the experiment started on DAY, 14 days of CUPED
    db.execute("update rec_experiments set started_at = %s, cuped_days = 14 where key = %s", [DAY, KEY])
    for key, kind, outcome, capping in DEFINITIONS:
        db.execute(
            "select rec_create_metric(%s, %s, %s, outcome => %s, capping => %s)",
            [key, kind, ADMIN, outcome, capping],
        )
    metrics = [{"metric": d[0], "role": "goal" if i == 0 else "secondary"} for i, d in enumerate(DEFINITIONS)]
    db.execute("select rec_set_experiment_metrics(%s, %s::jsonb, %s)", [KEY, json.dumps(metrics), ADMIN])
    for i, (variant, window, pre) in enumerate(USERS):
        who = uuid.UUID(int=i + 1, version=4)
        db.execute(
            "insert into rec_user_experiment_assignments (experiment_id, user_id, variant)"
            " select id, %s, %s from rec_experiments where key = %s",
            [who, variant, KEY],
        )
        for j, outcomes in enumerate(window):
            _impression(db, who, DAY + dt.timedelta(minutes=j), {KEY: variant}, outcomes)
        for j, (days, outcomes, tag) in enumerate(pre):
            at = DAY - dt.timedelta(days=days, minutes=j)
            _impression(db, who, at, {} if tag is None else {"x" if tag == "other" else KEY: tag}, outcomes)
    return db


def test_cuped_matches_the_per_user_definition(data: psycopg.Connection) -> None:
    answer = results_report.fetch(data, KEY, DAY.date(), DAY.date())
    assert answer["settings"] == {"sequential": True, "sequential_tuning": 5000, "cuped_days": 14}
    comparisons = {c["metric"]: c for c in answer["comparisons"]}
    for key, kind, outcome, capping in DEFINITIONS:
        truth = oracle(kind, outcome, capping)
        c = comparisons[key]
        assert truth["theta"] != 0, key  # the data make every covariate matter
        # measured values stay unadjusted; the comparison uses the adjusted ones
        assert c["baseline_value"] == pytest.approx(truth["value"]["control"], rel=1e-9), key
        assert c["value"] == pytest.approx(truth["value"]["treatment"], rel=1e-9), key
        assert c["adjusted_baseline_value"] == pytest.approx(truth["adjusted"]["control"], rel=1e-9), key
        assert c["adjusted_value"] == pytest.approx(truth["adjusted"]["treatment"], rel=1e-9), key
        adj_c, adj_t = truth["adjusted"]["control"], truth["adjusted"]["treatment"]
        assert c["difference"] == pytest.approx(adj_t - adj_c, rel=1e-9), key
        assert c["lift"] == pytest.approx(adj_t / adj_c - 1, rel=1e-9), key
        assert c["p_value"] == pytest.approx(truth["p"], rel=1e-9), key
        assert c["cuped_variance_reduction"] == pytest.approx(truth["reduction"], rel=1e-9, abs=1e-12), key
        if truth["ci"][0] is None:
            assert c["lift_ci_low"] is None, key
        else:
            assert (c["lift_ci_low"], c["lift_ci_high"]) == pytest.approx(truth["ci"], rel=1e-9), key
    json.dumps(answer, allow_nan=False)


def test_cuped_off_is_the_unadjusted_analysis(data: psycopg.Connection) -> None:
    on = results_report.fetch(data, KEY, DAY.date(), DAY.date())
    data.execute("update rec_experiments set cuped_days = 0 where key = %s", [KEY])
    off = results_report.fetch(data, KEY, DAY.date(), DAY.date())
    assert off["settings"]["cuped_days"] == 0
    for c_on, c in zip(on["comparisons"], off["comparisons"], strict=True):
        assert (c["adjusted_value"], c["adjusted_baseline_value"]) == (c["value"], c["baseline_value"])
        assert c["cuped_variance_reduction"] == 0.0
        assert (c_on["value"], c_on["baseline_value"]) == (c["value"], c["baseline_value"])
    assert on["metrics"] == off["metrics"]


def test_the_pre_period_ends_before_the_earlier_of_start_and_window(data: psycopg.Connection) -> None:
    """A window starting after the start day keeps the pre-period before the
    start: the covariate of a later window is the same pre-period."""
    raw = data.execute(
        "select rec_experiment_results_stats(%s, %s, %s)", [KEY, DAY.date() + dt.timedelta(days=3), None]
    ).fetchone()
    assert raw is not None
    pre_to = DAY.date() - dt.timedelta(days=1)
    assert raw[0]["cuped_window"] == {"from_day": str(pre_to - dt.timedelta(days=13)), "to_day": str(pre_to)}
    earlier = data.execute(
        "select rec_experiment_results_stats(%s, %s, %s)", [KEY, DAY.date() - dt.timedelta(days=2), None]
    ).fetchone()
    assert earlier is not None
    assert earlier[0]["cuped_window"]["to_day"] == str(DAY.date() - dt.timedelta(days=3))


def test_an_experiment_that_never_started_has_no_cuped(db: psycopg.Connection) -> None:
    create_experiment(db, KEY, AB, active=False)
    raw = db.execute("select rec_experiment_results_stats(%s)", [KEY]).fetchone()
    assert raw is not None and raw[0]["cuped_window"] is None
    assert raw[0]["settings"] == {"sequential": True, "sequential_tuning": 5000, "cuped_days": 14}
