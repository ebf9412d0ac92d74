"""docs/reference.md §8: experiment results, exact on small hand-made data.

Every expected number below is worked out by hand from the per-user values
written next to it (fractions in comments), not by the code under test.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from typing import Any

import psycopg
import pytest

from devstack import results_report
from tests.sql.conftest import ADMIN, acting_as, create_experiment, raises_sqlstate, scalar
from tests.sql.test_metrics import impression, outcome

KEY = "res"
VARIANTS = [{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}]
FROM, TO = dt.date(2026, 1, 10), dt.date(2026, 1, 11)


Q2 = 1.959963984540054**2


def fieller_lift(b: float, a: float, disc: float) -> tuple[float, float]:
    """θ = (b ∓ √disc)/a, as lift θ - 1."""
    return (b - math.sqrt(disc)) / a - 1, (b + math.sqrt(disc)) / a - 1


def user(n: int) -> uuid.UUID:
    return uuid.UUID(f"00000000-0000-4000-8000-{n:012d}")


C1, C2, C3, T1, T2, OVERRIDDEN, CROSSOVER, IDLE, STRANGER = (user(n) for n in range(1, 10))


def tag(variant: str, **others: str) -> dict[str, Any]:
    return {"experiments": {KEY: variant, **others}}


def assign(conn: psycopg.Connection, who: uuid.UUID, variant: str) -> None:
    # assigned before the hand-made traffic: untagged impressions count only
    # from a user's assigned_at on
    conn.execute(
        "insert into rec_user_experiment_assignments (experiment_id, user_id, variant, assigned_at)"
        " select id, %s, %s, '2026-01-01T00:00:00Z' from rec_experiments where key = %s",
        [who, variant, KEY],
    )


def engaged(conn: psycopg.Connection, who: uuid.UUID, created: str, variant: str, outcomes: int) -> None:
    imp = impression(conn, who, created, tag(variant))
    for _ in range(outcomes):
        outcome(conn, imp, who, "click", created)


@pytest.fixture
def data(db: psycopg.Connection) -> psycopg.Connection:
    """control: c1 n=3 e=1 o=2, c2 n=1 e=0 o=0, c3 n=2 e=2 o=2;
    treatment: t1 n=2 e=1 o=1, t2 n=4 e=3 o=4; plus an overridden user, a
    crossover user, an assigned user never shown anything, and noise outside
    the window or of another experiment."""
    create_experiment(db, KEY, VARIANTS)
    # the plain analysis (no CUPED, fixed horizon), exactly as defined for it
    db.execute(
        "update rec_experiments set started_at = '2026-01-10T12:00:00Z', cuped_days = 0, sequential = false"
        " where key = %s",
        [KEY],
    )
    for who, variant in [(C1, "control"), (C2, "control"), (C3, "control"), (T1, "treatment")]:
        assign(db, who, variant)
    for who, variant in [(T2, "treatment"), (CROSSOVER, "control"), (IDLE, "treatment")]:
        assign(db, who, variant)
    db.execute("select rec_set_user_variant(%s, %s, 'treatment', %s)", [KEY, OVERRIDDEN, ADMIN])

    # c1: 3 impressions, one with two outcomes (the second a day later: it
    # still counts toward the impression's day).
    imp = impression(db, C1, "2026-01-10T00:00:00Z", tag("control"))
    outcome(db, imp, C1, "click", "2026-01-10T00:01:00Z")
    outcome(db, imp, C1, "like", "2026-01-12T09:00:00Z")
    engaged(db, C1, "2026-01-10T13:00:00Z", "control", 0)
    engaged(db, C1, "2026-01-11T23:59:59.999999Z", "control", 0)
    # c2: the last microsecond of the window, no outcome.
    engaged(db, C2, "2026-01-11T23:59:59.999999Z", "control", 0)
    # c3: two engaged impressions, one outcome each; the second outcome lands after the window.
    engaged(db, C3, "2026-01-10T08:00:00Z", "control", 1)
    imp = impression(db, C3, "2026-01-11T22:00:00Z", tag("control"))
    outcome(db, imp, C3, "save", "2026-01-13T01:00:00Z")
    # t1, t2
    engaged(db, T1, "2026-01-10T10:00:00Z", "treatment", 1)
    engaged(db, T1, "2026-01-10T11:00:00Z", "treatment", 0)
    engaged(db, T2, "2026-01-10T14:00:00Z", "treatment", 1)
    engaged(db, T2, "2026-01-10T15:00:00Z", "treatment", 1)
    engaged(db, T2, "2026-01-11T16:00:00Z", "treatment", 2)
    engaged(db, T2, "2026-01-11T17:00:00Z", "treatment", 0)
    # Left out: the overridden user, and a user tagged with both variants.
    engaged(db, OVERRIDDEN, "2026-01-10T14:00:00Z", "treatment", 1)
    engaged(db, CROSSOVER, "2026-01-10T14:00:00Z", "control", 1)
    engaged(db, CROSSOVER, "2026-01-11T14:00:00Z", "treatment", 0)
    # Outside the window (either side of its UTC days), with outcomes.
    engaged(db, C2, "2026-01-09T23:59:59.999999Z", "control", 3)
    engaged(db, T1, "2026-01-12T00:00:00Z", "treatment", 3)
    engaged(db, STRANGER, "2026-01-12T00:00:00Z", "control", 1)
    # Untagged for this experiment: two count (assigned user, after the
    # start, inside the window); before the start, or by a user with no
    # assignment, they do not.
    impression(db, C1, "2026-01-10T13:30:00Z", {})
    impression(db, T2, "2026-01-11T09:00:00Z", {"experiments": {"other": "x"}})
    impression(db, C1, "2026-01-10T11:59:59Z", {})
    impression(db, STRANGER, "2026-01-10T13:30:00Z", {})
    return db


def test_results_are_exact_on_hand_made_data(data: psycopg.Connection) -> None:
    answer = results_report.fetch(data, KEY, FROM, TO)
    assert (answer["key"], answer["from_day"], answer["to_day"], answer["baseline"]) == (
        KEY,
        "2026-01-10",
        "2026-01-11",
        "control",
    )
    assert answer["variants"] == [
        {
            "variant": "control",
            "weight": 1,
            "users": 3,
            "impressions": 6,
            "engaged_impressions": 3,
            "outcomes": 4,
        },
        {
            "variant": "treatment",
            "weight": 1,
            "users": 2,
            "impressions": 6,
            "engaged_impressions": 4,
            "outcomes": 5,
        },
    ]
    metrics = {(m["metric"], m["variant"]): (m["value"], m["std_error"]) for m in answer["metrics"]}
    assert [(m["metric"], m["variant"]) for m in answer["metrics"]] == [
        ("engagement_rate", "control"),
        ("engagement_rate", "treatment"),
        ("outcomes_per_user", "control"),
        ("outcomes_per_user", "treatment"),
        ("engaged_user_rate", "control"),
        ("engaged_user_rate", "treatment"),
    ]
    # engagement_rate, control: R = 3/6; residuals e - Rn = -1/2, -1/2, 1 -> Σ² = 3/2,
    # / (N-1) = 3/4; N n̄² = 3·2² = 12 -> Var = 1/16.
    # treatment: R = 4/6; residuals -1/3, 1/3 -> 2/9; N n̄² = 2·3² = 18 -> Var = 1/81.
    expect = {
        ("engagement_rate", "control"): (1 / 2, 1 / 4),
        ("engagement_rate", "treatment"): (2 / 3, 1 / 9),
        # o = 2, 0, 2: mean 4/3, s² = 4/3, Var = 4/9;  o = 1, 4: mean 5/2, s² = 9/2, Var = 9/4
        ("outcomes_per_user", "control"): (4 / 3, 2 / 3),
        ("outcomes_per_user", "treatment"): (5 / 2, 3 / 2),
        # 2 of 3 engaged: s² = 1/3, Var = 1/9; 2 of 2: Var = 0
        ("engaged_user_rate", "control"): (2 / 3, 1 / 3),
        ("engaged_user_rate", "treatment"): (1.0, 0.0),
    }
    for name, (value, se) in expect.items():
        assert metrics[name][0] == pytest.approx(value, rel=1e-12), name
        assert metrics[name][1] == pytest.approx(se, rel=1e-12, abs=1e-15), name

    def p_normal(z: float) -> float:
        return math.erfc(z / math.sqrt(2))

    comparisons = {c["metric"]: c for c in answer["comparisons"]}
    assert [c["variant"] for c in answer["comparisons"]] == ["treatment"] * 3
    er = comparisons["engagement_rate"]
    assert er["baseline_value"] == pytest.approx(1 / 2) and er["value"] == pytest.approx(2 / 3)
    assert er["difference"] == pytest.approx(1 / 6)
    assert er["p_value"] == pytest.approx(p_normal((1 / 6) / math.sqrt(1 / 81 + 1 / 16)), rel=1e-9)
    assert er["lift"] == pytest.approx(1 / 3)
    # Fieller: a = M_c² - q²·Var_c = 1/4 - q²/16, b = M_t·M_c = 1/3,
    # b² - a·c = q²·Var_t·a + q²·M_t²·Var_c = q²·a/81 + q²/36; θ = (b ∓ √(b² - a·c))/a
    assert (er["lift_ci_low"], er["lift_ci_high"]) == pytest.approx(
        fieller_lift(1 / 3, 1 / 4 - Q2 / 16, Q2 * (1 / 4 - Q2 / 16) / 81 + Q2 / 36), rel=1e-12
    )
    assert er["chance_to_win"] == pytest.approx(
        0.5 * math.erfc(-((1 / 6) / math.sqrt(1 / 81 + 1 / 16)) / math.sqrt(2))
    )
    assert (er["role"], er["direction"], er["adjusted_p_value"]) == (
        "goal",
        "increase",
        pytest.approx(
            min(1, 3 * min(c["p_value"] for c in answer["comparisons"] if c["p_value"] is not None))
        ),
    )
    opu = comparisons["outcomes_per_user"]
    assert opu["difference"] == pytest.approx(5 / 2 - 4 / 3)
    assert opu["p_value"] == pytest.approx(p_normal((7 / 6) / math.sqrt(9 / 4 + 4 / 9)), rel=1e-9)
    assert opu["lift"] == pytest.approx((5 / 2) / (4 / 3) - 1)
    # a = 16/9 - q²·(4/9), b = (5/2)(4/3) = 10/3, b² - a·c = q²·(9/4)·a + q²·(25/4)·(4/9)
    a = 16 / 9 - Q2 * 4 / 9
    assert (opu["lift_ci_low"], opu["lift_ci_high"]) == pytest.approx(
        fieller_lift(10 / 3, a, Q2 * 9 / 4 * a + Q2 * 25 / 9), rel=1e-12
    )
    eur = comparisons["engaged_user_rate"]
    # every treatment user engaged: no spread (Var_t = 0), so no p, interval
    # or chance to win (too few events, not certainty); difference and lift stay
    assert eur["difference"] == pytest.approx(1 / 3) and eur["lift"] == pytest.approx(1 / 2)
    assert [eur[k] for k in ("p_value", "lift_ci_low", "lift_ci_high", "chance_to_win")] == [None] * 4
    # a null p counts as 1 in Holm's family of the three goals
    assert eur["adjusted_p_value"] == 1.0
    assert any(
        "engaged_user_rate (treatment against the baseline): no spread" in w for w in answer["warnings"]
    )

    health = answer["health"]
    # 3 vs 2 against 1:1: χ² = 2·(1/2)²/(5/2) = 1/5, df 1 -> p = erfc(√(1/10))
    assert health["srm_p_value"] == pytest.approx(math.erfc(math.sqrt(0.1)), rel=1e-9)
    assert {k: v for k, v in health.items() if k != "srm_p_value"} == {
        "assigned_users": 8,
        "exposed_users": 7,
        "analysed_users": 5,
        "overridden_users": 1,
        "crossover_users": 1,
        "untagged_impressions": 2,
        "srm": False,
    }
    assert any(
        "1 with a manual override and 1 tagged with more than one variant" in w for w in answer["warnings"]
    )
    assert any("2 impressions of assigned users" in w for w in answer["warnings"])
    json.dumps(answer, allow_nan=False)


def test_default_window_is_while_the_experiment_ran(data: psycopg.Connection) -> None:
    data.execute(
        "update rec_experiments set ended_at = '2026-01-11T20:00:00Z', status = 'ended' where key = %s", [KEY]
    )
    answer = results_report.fetch(data, KEY)
    assert (answer["from_day"], answer["to_day"]) == ("2026-01-10", "2026-01-11")
    assert answer["health"]["analysed_users"] == 5


def test_nulls_never_nan_when_nothing_can_be_computed(db: psycopg.Connection) -> None:
    create_experiment(db, KEY, VARIANTS)
    assign(db, C1, "control")
    assign(db, T1, "treatment")
    impression(db, C1, "2026-01-10T10:00:00Z", tag("control"))  # one user, no outcome
    answer = results_report.fetch(db, KEY, FROM, TO)
    text = json.dumps(answer, allow_nan=False)
    assert "NaN" not in text
    metrics = {(m["metric"], m["variant"]): m for m in answer["metrics"]}
    assert metrics["engagement_rate", "control"] == {
        "metric": "engagement_rate",
        "role": "goal",
        "direction": "increase",
        "variant": "control",
        "value": 0.0,
        "std_error": None,
    }
    assert metrics["engagement_rate", "treatment"]["value"] is None
    for c in answer["comparisons"]:
        assert [c[k] for k in ("value", "difference", "p_value", "lift", "lift_ci_low", "lift_ci_high")] == [
            None
        ] * 6
    assert answer["variants"][1] == {
        "variant": "treatment",
        "weight": 1,
        "users": 0,
        "impressions": 0,
        "engaged_impressions": 0,
        "outcomes": 0,
    }
    assert any("Too few analysed users" in w for w in answer["warnings"])


def test_an_experiment_nobody_reached_says_so(db: psycopg.Connection) -> None:
    create_experiment(db, KEY, VARIANTS)
    answer = results_report.fetch(db, KEY)
    assert answer["health"]["assigned_users"] == answer["health"]["exposed_users"] == 0
    assert len(answer["warnings"]) == 1 and "nothing to analyse" in answer["warnings"][0]
    assert all(m["value"] is None for m in answer["metrics"])


def test_assigned_but_untagged_is_a_warning(db: psycopg.Connection) -> None:
    create_experiment(db, KEY, VARIANTS)
    assign(db, C1, "control")
    answer = results_report.fetch(db, KEY)
    assert answer["health"]["exposed_users"] == 0
    assert any("the recommender is not tagging impressions: see README" in w for w in answer["warnings"])
    assert answer["health"]["srm_p_value"] is None and answer["health"]["srm"] is False


def test_srm_and_zero_weight_variant(db: psycopg.Connection) -> None:
    create_experiment(db, KEY, [*VARIANTS, {"name": "off", "weight": 0}])
    for n in range(1, 4):
        assign(db, user(n), "control")
        impression(db, user(n), "2026-01-10T10:00:00Z", tag("control"))
    impression(db, user(4), "2026-01-10T10:00:00Z", tag("off"))
    answer = results_report.fetch(db, KEY, FROM, TO)
    assert answer["health"]["srm"] is True and answer["health"]["srm_p_value"] == 0.0
    assert [v["variant"] for v in answer["variants"]] == ["control", "treatment", "off"]
    assert answer["warnings"][0].startswith("Sample ratio mismatch")
    assert "control 75.0% / treatment 0.0% / off 25.0%" in answer["warnings"][0]


def test_unknown_key_and_reversed_window(db: psycopg.Connection) -> None:
    with raises_sqlstate(db, "P0002"):
        db.execute("select rec_experiment_results_stats('nope', null, null)")
    create_experiment(db, KEY, VARIANTS)
    with raises_sqlstate(db, "22023"):
        db.execute("select rec_experiment_results_stats(%s, %s, %s)", [KEY, TO, FROM])


def test_only_service_role_may_read_results(db: psycopg.Connection) -> None:
    create_experiment(db, KEY, VARIANTS)
    for role in ("anon", "authenticated"):
        with acting_as(db, role, sub=str(C1)), raises_sqlstate(db, "42501"):
            db.execute("select rec_experiment_results_stats(%s, null, null)", [KEY])
    with acting_as(db, "service_role"):
        assert scalar(db, "select rec_experiment_results_stats(%s, null, null)->>'key'", [KEY]) == KEY


def test_days_are_utc_whatever_the_session_time_zone(data: psycopg.Connection) -> None:
    utc = results_report.fetch(data, KEY, FROM, TO)
    data.execute("set timezone = 'Pacific/Kiritimati'")  # UTC+14
    assert results_report.fetch(data, KEY, FROM, TO) == utc
