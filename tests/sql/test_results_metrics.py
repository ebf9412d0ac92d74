"""Results per catalogue metric, on hand-made data: every kind, with and
without capping, a metric on one outcome name and a `decrease` metric,
checked against an independent computation from the raw rows (numpy) and
statsmodels' z-test."""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from typing import Any

import numpy as np
import psycopg
import pytest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from devstack import results_report
from tests.sql.conftest import ADMIN, create_experiment

KEY = "cat"
AB = [{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}]
DAY = dt.datetime(2026, 2, 1, 10, tzinfo=dt.UTC)
Q = 1.959963984540054
# Per user: variant, then one list per impression of its outcomes (name, value).
USERS: list[tuple[str, list[list[tuple[str, float]]]]] = [
    ("control", [[("like", 2.0)], [], [("save", 1.0), ("like", 0.5)]]),
    ("control", [[]]),
    ("control", [[("like", 1.0), ("like", 3.0)], [("hide", 1.0)]]),
    ("control", [[], [], [], [("like", 1.0)], [], [], [], [], [], []]),
    ("treatment", [[("like", 4.0)], [("like", 1.0)]]),
    ("treatment", [[("save", 2.5)], [], [("like", 1.5), ("hide", 1.0)]]),
    ("treatment", [[], [("like", 1.0), ("like", 2.0), ("like", 1.0)]]),
    ("treatment", [[("hide", 1.0)] * 3 + [("like", 9.0)]] + [[]] * 12),
]
DEFINITIONS = [
    ("likes_rate", "impression_rate", "like", "increase", None),
    ("likes_rate_capped", "impression_rate", "like", "increase", 0.7),
    ("watch_per_imp", "value_per_impression", None, "increase", None),
    ("watch_per_imp_capped", "value_per_impression", None, "increase", 0.6),
    ("likes", "per_user_count", "like", "increase", None),
    ("likes_capped", "per_user_count", "like", "increase", 0.5),
    ("hides", "per_user_count", "hide", "decrease", None),
    ("watch", "per_user_value", None, "increase", None),
    ("watch_capped", "per_user_value", None, "increase", 0.75),
    ("liked_users", "user_rate", "like", "increase", None),
]
ROLES = ["goal", "guardrail"] + ["secondary"] * 7 + ["goal"]


def _per_user(outcome: str | None, kind: str) -> list[tuple[str, float, float]]:
    """(variant, n, a) per user, from the raw rows."""
    out = []
    for variant, impressions in USERS:
        rows = [[(name, v) for name, v in imp if outcome is None or name == outcome] for imp in impressions]
        e = sum(1 for r in rows if r)
        o = sum(len(r) for r in rows)
        v = sum(value for r in rows for _, value in r)
        a = {"impression_rate": e, "value_per_impression": v, "per_user_count": o, "per_user_value": v}.get(
            kind, float(e > 0)
        )
        out.append((variant, float(len(impressions)), float(a)))
    return out


def oracle(kind: str, outcome: str | None, capping: float | None) -> dict[str, Any]:
    """Value, variance per variant and the comparison, straight from the rows."""
    users = _per_user(outcome, kind)
    n = np.array([u[1] for u in users])
    a = np.array([u[2] for u in users])
    if capping is not None:
        if kind == "impression_rate":
            s = np.minimum(1, np.quantile(n, capping) / n)
            n, a = n * s, a * s
        elif kind == "value_per_impression":
            a = np.minimum(a, np.quantile(a, capping))
            s = np.minimum(1, np.quantile(n, capping) / n)
            n, a = n * s, a * s
        else:
            a = np.minimum(a, np.quantile(a, capping))
    est = {}
    for variant in ("control", "treatment"):
        mask = np.array([u[0] == variant for u in users])
        nv, av = n[mask], a[mask]
        if kind in ("impression_rate", "value_per_impression"):
            r = av.sum() / nv.sum()
            # delta method: variance of the linearised values (a - R n) / n̄
            var = np.var((av - r * nv) / nv.mean(), ddof=1) / len(nv)
        else:
            r, var = av.mean(), np.var(av, ddof=1) / len(av)
        est[variant] = (r, var, av)
    (mc, vc, _), (mt, vt, _) = est["control"], est["treatment"]
    if vc == 0 or vt == 0:  # no spread: no test, no interval
        return {"est": est, "z": None, "p": None, "ci": (None, None)}
    z = (mt - mc) / math.sqrt(vt + vc)
    a_ = mc**2 - Q**2 * vc
    b, c = mt * mc, mt**2 - Q**2 * vt
    # a ≤ 0: the set of ratios is unbounded, reported as no interval
    ci = (None, None)
    if a_ > 0:
        ci = ((b - math.sqrt(b * b - a_ * c)) / a_ - 1, (b + math.sqrt(b * b - a_ * c)) / a_ - 1)
    return {"est": est, "z": z, "p": math.erfc(abs(z) / math.sqrt(2)), "ci": ci}


@pytest.fixture
def data(db: psycopg.Connection) -> psycopg.Connection:
    create_experiment(db, KEY, AB)
    for key, kind, outcome, direction, capping in DEFINITIONS:
        db.execute(
            "select rec_create_metric(%s, %s, %s, outcome => %s, direction => %s, capping => %s)",
            [key, kind, ADMIN, outcome, direction, capping],
        )
    db.execute(
        "select rec_set_experiment_metrics(%s, %s::jsonb, %s)",
        [
            KEY,
            json.dumps([{"metric": d[0], "role": r} for d, r in zip(DEFINITIONS, ROLES, strict=True)]),
            ADMIN,
        ],
    )
    for i, (variant, impressions) in enumerate(USERS):
        who = uuid.UUID(int=i + 1, version=4)
        db.execute(
            "insert into rec_user_experiment_assignments (experiment_id, user_id, variant)"
            " select id, %s, %s from rec_experiments where key = %s",
            [who, variant, KEY],
        )
        for j, outcomes in enumerate(impressions):
            at = DAY + dt.timedelta(minutes=j)
            row = db.execute(
                "insert into rec_impressions (user_id, request_context, created_at)"
                " values (%s, %s, %s) returning id",
                [who, json.dumps({"experiments": {KEY: variant}}), at],
            ).fetchone()
            assert row is not None
            for name, value in outcomes:
                db.execute(
                    "insert into rec_outcomes (impression_id, user_id, outcome, value, created_at)"
                    " values (%s, %s, %s, %s, %s)",
                    [row[0], who, name, value, at],
                )
    return db


def test_every_kind_with_and_without_capping_matches_the_raw_rows(data: psycopg.Connection) -> None:
    answer = results_report.fetch(data, KEY, DAY.date(), DAY.date())
    order = [m["metric"] for m in answer["metrics"][::2]]
    # by role (goal, guardrail, secondary), then as given
    assert order == ["likes_rate", "liked_users", "likes_rate_capped", *[d[0] for d in DEFINITIONS[2:9]]]
    values = {(m["metric"], m["variant"]): m for m in answer["metrics"]}
    comparisons = {c["metric"]: c for c in answer["comparisons"]}
    warnings, bounded = answer["warnings"], 0
    for key, kind, outcome, direction, capping in DEFINITIONS:
        truth = oracle(kind, outcome, capping)
        for variant in ("control", "treatment"):
            value, var, _ = truth["est"][variant]
            got = values[key, variant]
            assert got["value"] == pytest.approx(value, rel=1e-9), (key, variant)
            assert got["std_error"] == pytest.approx(math.sqrt(var), rel=1e-9), (key, variant)
            assert got["direction"] == direction
        c = comparisons[key]
        if truth["p"] is None:
            assert [c[k] for k in ("p_value", "lift_ci_low", "lift_ci_high", "chance_to_win")] == [None] * 4
            assert c["difference"] is not None and c["lift"] is not None
            assert any(w.startswith(f"{key} (treatment against the baseline): no spread") for w in warnings)
            continue
        assert c["p_value"] == pytest.approx(truth["p"], rel=1e-9), key
        if truth["ci"][0] is None:
            assert (c["lift_ci_low"], c["lift_ci_high"]) == (None, None), key
            assert any(
                w.startswith(f"{key} (treatment against the baseline): the interval") for w in warnings
            )
        else:
            assert (c["lift_ci_low"], c["lift_ci_high"]) == pytest.approx(truth["ci"], rel=1e-9), key
            bounded += 1
        z = truth["z"] if direction == "increase" else -truth["z"]
        assert c["chance_to_win"] == pytest.approx(0.5 * math.erfc(-z / math.sqrt(2)), rel=1e-9), key
    assert bounded >= 3  # the data leave some intervals bounded, some not
    json.dumps(answer, allow_nan=False)


def test_capping_changes_the_numbers_it_should(data: psycopg.Connection) -> None:
    answer = results_report.fetch(data, KEY, DAY.date(), DAY.date())
    values = {(m["metric"], m["variant"]): m["value"] for m in answer["metrics"]}
    # likes per user: treatment 2, 1, 3, 1 and control 2, 0, 2, 1; sorted
    # 0 1 1 1 2 2 2 3, the 0.5 quantile (percentile_cont) is 1.5, so capped:
    # treatment 1.5, 1, 1.5, 1 and control 1.5, 0, 1.5, 1
    assert values["likes", "treatment"] == pytest.approx(7 / 4)
    assert values["likes_capped", "treatment"] == pytest.approx(5 / 4)
    assert values["likes_capped", "control"] == pytest.approx(4 / 4)


def test_mean_kinds_agree_with_statsmodels(data: psycopg.Connection) -> None:
    """statsmodels' two-sample z-test with unequal variances is the same test."""
    answer = results_report.fetch(data, KEY, DAY.date(), DAY.date())
    comparisons = {c["metric"]: c for c in answer["comparisons"]}
    for key, kind, outcome, _, capping in DEFINITIONS:
        if kind not in ("per_user_count", "per_user_value", "user_rate"):
            continue
        truth = oracle(kind, outcome, capping)
        if truth["p"] is None:
            continue
        est = truth["est"]
        test = CompareMeans(DescrStatsW(est["treatment"][2]), DescrStatsW(est["control"][2]))
        _, p = test.ztest_ind(usevar="unequal")
        assert comparisons[key]["p_value"] == pytest.approx(p, rel=1e-9), key


def test_holm_over_the_goals_and_the_verdict(data: psycopg.Connection) -> None:
    answer = results_report.fetch(data, KEY, DAY.date(), DAY.date())
    goals = [c for c in answer["comparisons"] if c["role"] == "goal"]
    by_metric = {c["metric"]: c for c in goals}
    # liked_users has no p (no spread): it counts as 1 in the family of two
    assert by_metric["liked_users"]["p_value"] is None
    assert by_metric["likes_rate"]["adjusted_p_value"] == pytest.approx(
        min(1, 2 * by_metric["likes_rate"]["p_value"])
    )
    assert by_metric["liked_users"]["adjusted_p_value"] == 1.0
    assert all(c["adjusted_p_value"] is None for c in answer["comparisons"] if c["role"] != "goal")
    assert answer["verdicts"] == [
        {
            "variant": "treatment",
            "verdict": "inconclusive",
            "reasons": [pytest.approx(answer["verdicts"][0]["reasons"][0])],
        }
    ]
    assert answer["summary"].startswith("treatment is inconclusive against control")
    report = results_report.format_answer(answer)
    assert report.splitlines()[0] == answer["summary"]
    assert report.index("goals (") < report.index("guardrails (") < report.index("secondary:")


def test_goals_changed_after_the_start_is_a_warning(data: psycopg.Connection) -> None:
    data.execute(
        'select rec_set_experiment_metrics(%s, \'[{"metric": "likes", "role": "goal"}]\', %s)', [KEY, ADMIN]
    )
    answer = results_report.fetch(data, KEY, DAY.date(), DAY.date())
    assert any(w.startswith("The goals changed after the start") for w in answer["warnings"])


def test_heavy_users_warning(db: psycopg.Connection) -> None:
    """1,000 users, one of them with a tenth of all impressions' outcomes
    and more: the uncapped built-ins warn, a capped metric does not."""
    create_experiment(db, KEY, AB)
    db.execute("select rec_create_metric('opu_capped', 'per_user_count', %s, capping => 0.99)", [ADMIN])
    db.execute(
        "select rec_set_experiment_metrics(%s, %s::jsonb, %s)",
        [
            KEY,
            json.dumps(
                [{"metric": "outcomes_per_user", "role": "goal"}, {"metric": "opu_capped", "role": "goal"}]
            ),
            ADMIN,
        ],
    )
    db.execute(
        """with u as (select g, ('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid as id,
                             case when g %% 2 = 0 then 'control' else 'treatment' end as v
                        from generate_series(1, 1000) g),
                imp as (insert into rec_impressions (user_id, request_context, created_at)
                        select u.id, jsonb_build_object('experiments', jsonb_build_object(%s::text, u.v)), %s
                          from u returning id, user_id)
           insert into rec_outcomes (impression_id, user_id, outcome, created_at)
           select imp.id, imp.user_id, 'click', %s from imp
             cross join generate_series(1, case when imp.user_id = '00000000-0000-4000-8000-000000000001'
                                                then 200 else 1 end)""",
        [KEY, DAY, DAY],
    )
    answer = results_report.fetch(db, KEY, DAY.date(), DAY.date())
    heavy = [w for w in answer["warnings"] if w.startswith("A few heavy users dominate")]
    # top 0.1 % = 1 user holding 200 of 1,199 outcomes (17 %)
    assert heavy == [
        "A few heavy users dominate outcomes_per_user: the top 0.1 % of analysed users (1) hold 17% of it: "
        "use a capped metric (capping 0.999, say) to decide on."
    ]
