"""The formulas on their own: Fieller against a direct numerical solution
of its inequality, the p-value / interval boundary, every null of the
comparison, Holm, chance to win and the verdict rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize

from shared import results
from shared.results import Estimate, compare, fieller, holm, verdict

Q = results.Q_95


def _inequality(mt: float, mc: float, vt: float, vc: float) -> tuple[float, float]:
    """The θ where (M_t - θ·M_c)² = q²·(Var_t + θ²·Var_c), found by root search."""

    def f(theta: float) -> float:
        return (mt - theta * mc) ** 2 - Q * Q * (vt + theta * theta * vc)

    centre = mt / mc
    return optimize.brentq(f, centre - 100, centre, xtol=1e-14), optimize.brentq(
        f, centre, centre + 100, xtol=1e-14
    )


@pytest.mark.parametrize(
    ("mt", "mc", "vt", "vc"),
    [(0.12, 0.1, 1e-4, 1e-4), (2.5, 4 / 3, 1.5**2, (2 / 3) ** 2), (0.5, 0.3, 0.001, 0.02)],
)
def test_fieller_solves_its_inequality(mt: float, mc: float, vt: float, vc: float) -> None:
    interval = fieller(mt, mc, vt, vc)
    assert interval is not None
    assert interval == pytest.approx(_inequality(mt, mc, vt, vc), rel=1e-10)


def test_fieller_is_unbounded_when_the_baseline_is_not_away_from_zero() -> None:
    assert fieller(1.0, 0.1, 0.01, 0.1**2 / Q**2) is None  # a = 0
    assert fieller(1.0, 0.1, 0.01, 0.01) is None  # a < 0


def _at_z(z: float) -> tuple[Estimate, Estimate]:
    """Treatment and control with difference / SE = z."""
    vc = vt = 0.0001
    return Estimate(0.1 + z * math.sqrt(vt + vc), vt, 1000), Estimate(0.1, vc, 1000)


@pytest.mark.parametrize(("z", "significant"), [(Q * (1 + 1e-9), True), (Q * (1 - 1e-9), False)])
def test_p_below_005_exactly_when_the_interval_excludes_zero(z: float, significant: bool) -> None:
    for sign in (1, -1):
        c = compare(*_at_z(sign * z))
        assert c.p_value is not None and c.lift_ci_low is not None and c.lift_ci_high is not None
        assert (c.p_value < 0.05) is significant
        assert (not c.lift_ci_low <= 0 <= c.lift_ci_high) is significant


def test_null_table() -> None:
    ok = Estimate(0.2, 0.001, 10)
    # N < 2 in a variant: only the values and the lift stay
    c = compare(Estimate(0.3, None, 1), ok)
    assert (c.baseline_value, c.value, c.lift) == (0.2, 0.3, pytest.approx(0.5))
    assert [c.difference, c.p_value, c.lift_ci_low, c.lift_ci_high, c.chance_to_win] == [None] * 5
    assert c.sequential_p_value is None and c.sequential_ci_low is None
    # no one in a variant: nothing
    c = compare(Estimate(None, None, 0), ok)
    assert [c.value, c.difference, c.p_value, c.lift] == [None] * 4
    # Var = 0 in either: no p, interval or chance to win; difference and lift stay
    for t, ctl in ((Estimate(0.3, 0.0, 10), ok), (ok, Estimate(0.3, 0.0, 10))):
        c = compare(t, ctl)
        assert c.difference is not None and c.lift is not None
        assert [c.p_value, c.lift_ci_low, c.lift_ci_high, c.chance_to_win] == [None] * 4
        assert "no_spread" in c.nulls
    # M_c = 0: no lift or interval; difference and p stay
    c = compare(ok, Estimate(0.0, 0.001, 10))
    assert c.difference == pytest.approx(0.2) and c.p_value is not None
    assert [c.lift, c.lift_ci_low, c.lift_ci_high] == [None] * 3
    # a ≤ 0: unbounded interval, p stays
    c = compare(Estimate(0.1, 0.001, 10), Estimate(0.01, 0.001, 10))
    assert c.p_value is not None and (c.lift_ci_low, c.lift_ci_high) == (None, None)
    assert "unbounded" in c.nulls


def test_holm() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.01, None]) == pytest.approx([0.02, 1.0])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []
    # against statsmodels' implementation
    from statsmodels.stats.multitest import multipletests

    ps = list(np.random.default_rng(3).random(9) / 10)
    assert holm(ps) == pytest.approx(list(multipletests(ps, method="holm")[1]))


def test_chance_to_win_follows_the_direction() -> None:
    t, c = _at_z(1.0)
    assert compare(t, c).chance_to_win == pytest.approx(0.5 * math.erfc(-1 / math.sqrt(2)))
    assert compare(t, c, "decrease").chance_to_win == pytest.approx(0.5 * math.erfc(1 / math.sqrt(2)))


def _row(role: str, direction: str, difference: float, p: float, adjusted: float | None) -> dict[str, object]:
    return {
        "metric": "m",
        "role": role,
        "direction": direction,
        "difference": difference,
        "lift": 0.1,
        "p_value": p,
        "adjusted_p_value": adjusted,
        "lift_ci_low": 0.01,
        "lift_ci_high": 0.2,
        "sequential_p_value": 0.5,
        "sequential_ci_low": -0.1,
        "sequential_ci_high": 0.3,
    }


def test_verdict_rules() -> None:
    better_goal = _row("goal", "increase", 0.1, 0.001, 0.003)
    worse_guardrail = _row("guardrail", "decrease", 0.1, 0.01, None)  # a decrease metric went up
    assert verdict([better_goal], srm=True, sequential=False)[0] == "srm"
    assert verdict([better_goal], srm=False, sequential=False)[0] == "better"
    assert verdict([better_goal, worse_guardrail], srm=False, sequential=False)[0] == "worse"
    assert (
        verdict([_row("goal", "increase", 0.1, 0.01, 0.06)], srm=False, sequential=False)[0] == "inconclusive"
    )
    assert verdict([_row("secondary", "increase", -0.1, 0.001, None)], srm=False, sequential=False)[0] == (
        "inconclusive"
    )
    # sequential on: guardrails are judged by the sequential p
    assert verdict([worse_guardrail], srm=False, sequential=True)[0] == "inconclusive"
    _, reasons = verdict([better_goal], srm=False, sequential=False)
    assert reasons == ["goal m is better: +10.0%, 95% interval +1.0% .. +20.0%, adjusted p = 0.003"]
