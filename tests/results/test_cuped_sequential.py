"""CUPED and the sequential test as pure functions over sufficient
statistics: exact numbers on hand-made users (Fractions from the per-user
definition), and gbstats (GrowthBook's engine) as an oracle where the
definitions agree: its t-tests against our z at large N, its pooled θ
against our within-variant θ."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from gbstats.frequentist.tests import SequentialConfig, SequentialTwoSidedTTest
from gbstats.models.statistics import RegressionAdjustedStatistic, SampleMeanStatistic, compute_theta

from shared.results import compare, fieller, intervals
from shared.results.cuped import PreStats, cuped
from shared.results.estimators import Estimate, MetricStats, estimate

Users = list[tuple[int, int, int, int]]  # per user: n, a, m (pre impressions), x (pre value)


def sums(users: Users) -> tuple[MetricStats, PreStats]:
    n, a, m, x = (np.array([u[i] for u in users], dtype=object) for i in range(4))
    stats = MetricStats(len(users), sum(n), sum(n * n), sum(a), sum(a * a), sum(a * n))
    pre = PreStats(
        sum(m), sum(m * m), sum(x), sum(x * x), sum(x * m), sum(a * x), sum(a * m), sum(n * x), sum(n * m)
    )
    return stats, pre


def exact(kind: str, t: Users, c: Users) -> dict[str, Fraction]:
    """The definition, per user, in exact arithmetic."""
    ratio = kind == "impression_rate"
    both = t + c
    pre_m = sum(Fraction(u[2]) for u in both)
    r_pre = sum(Fraction(u[3]) for u in both) / pre_m if ratio else Fraction(0)
    m_bar = pre_m / len(both)
    ys, xs, values = {}, {}, {}
    for name, users in (("t", t), ("c", c)):
        if ratio:
            rate, n_bar = (
                Fraction(sum(u[1] for u in users), sum(u[0] for u in users)),
                Fraction(sum(u[0] for u in users), len(users)),
            )
            ys[name] = [(u[1] - rate * u[0]) / n_bar for u in users]
            xs[name] = [(u[3] - r_pre * u[2]) / m_bar for u in users]
            values[name] = rate
        else:
            ys[name] = [Fraction(u[1]) for u in users]
            xs[name] = [Fraction(u[3]) for u in users]
            values[name] = sum(ys[name]) / len(users)

    def mean(v: list[Fraction]) -> Fraction:
        return sum(v, Fraction(0)) / len(v)

    sxy = sum(
        sum((x - mean(xs[k])) * (y - mean(ys[k])) for x, y in zip(xs[k], ys[k], strict=True)) for k in ys
    )
    sxx = sum(sum((x - mean(xs[k])) ** 2 for x in xs[k]) for k in ys)
    theta = sxy / sxx
    x_all = mean(xs["t"] + xs["c"])
    out = {"theta": theta}
    for k in ys:
        resid = [y - theta * x for x, y in zip(xs[k], ys[k], strict=True)]
        r_mean = mean(resid)
        out[f"var_{k}"] = sum((r - r_mean) ** 2 for r in resid) / (len(resid) - 1) / len(resid)
        y_mean = mean(ys[k])
        out[f"raw_{k}"] = sum((y - y_mean) ** 2 for y in ys[k]) / (len(ys[k]) - 1) / len(ys[k])
        out[f"m_{k}"] = values[k] - theta * (mean(xs[k]) - x_all)
    return out


def test_mean_kind_by_hand() -> None:
    """control y = 1, 2, 4 with x = 0, 1, 2; treatment y = 3, 4, 2 with
    x = 1, 3, 2. Within variants Σ(x-x̄)(y-ȳ) = 3 + 1, Σ(x-x̄)² = 2 + 2, so
    θ = 1; x̄ = 1.5, so M_c = 7/3 + 1/2 = 17/6 and M_t = 3 - 1/2 = 5/2.
    y - x is 1, 1, 2 (variance 1/3) and 2, 1, 0 (variance 1): Var = 1/9 and
    1/3 against 7/9 and 1/3 unadjusted, a reduction of 1 - (4/9)/(10/9)."""
    c: Users = [(1, 1, 1, 0), (1, 2, 1, 1), (1, 4, 1, 2)]
    t: Users = [(1, 3, 1, 1), (1, 4, 1, 3), (1, 2, 1, 2)]
    (st, pt), (sc, pc) = sums(t), sums(c)
    adj = cuped("per_user_count", st, sc, pt, pc)
    assert adj is not None
    assert adj.theta == pytest.approx(1, rel=1e-15)
    assert adj.control.value == pytest.approx(17 / 6, rel=1e-15)
    assert adj.treatment.value == pytest.approx(5 / 2, rel=1e-15)
    assert adj.control.variance == pytest.approx(1 / 9, rel=1e-14)
    assert adj.treatment.variance == pytest.approx(1 / 3, rel=1e-14)
    assert adj.variance_reduction == pytest.approx(0.6, rel=1e-14)


@pytest.mark.parametrize("kind", ["per_user_count", "impression_rate"])
def test_cuped_is_the_per_user_definition(kind: str) -> None:
    rng = np.random.default_rng(7)

    def users(k: int) -> Users:
        out = []
        for _ in range(k):
            n, m = int(rng.integers(1, 9)), int(rng.integers(0, 9))
            out.append((n, int(rng.integers(0, n + 1)), m, int(rng.integers(0, m + 1))))
        return out

    t, c = users(9), users(7)
    truth = exact(kind, t, c)
    (st, pt), (sc, pc) = sums(t), sums(c)
    adj = cuped(kind, st, sc, pt, pc)
    assert adj is not None and truth["theta"] != 0
    assert adj.theta == pytest.approx(float(truth["theta"]), rel=1e-12)
    assert adj.treatment.value == pytest.approx(float(truth["m_t"]), rel=1e-12)
    assert adj.control.value == pytest.approx(float(truth["m_c"]), rel=1e-12)
    assert adj.treatment.variance == pytest.approx(float(truth["var_t"]), rel=1e-12)
    assert adj.control.variance == pytest.approx(float(truth["var_c"]), rel=1e-12)
    raw = float(truth["raw_t"] + truth["raw_c"])
    assert adj.variance_reduction == pytest.approx(
        1 - float(truth["var_t"] + truth["var_c"]) / raw, rel=1e-12
    )
    # θ = 0 (no pre-period at all) is the unadjusted analysis exactly
    none = cuped(kind, st, sc, PreStats(), PreStats())
    assert none is not None and none.theta == 0 and none.variance_reduction == pytest.approx(0, abs=1e-15)
    assert none.treatment == Estimate(estimate(kind, st).value, none.treatment.variance, st.users)
    assert none.treatment.variance == pytest.approx(estimate(kind, st).variance, rel=1e-12)


def test_cuped_does_not_apply_below_two_users() -> None:
    (st, pt), (sc, pc) = sums([(1, 1, 1, 1)]), sums([(1, 0, 1, 0), (2, 1, 2, 2)])
    assert cuped("per_user_count", st, sc, pt, pc) is None
    assert cuped("impression_rate", sums([(0, 0, 1, 1)] * 3)[0], sc, pt, pc) is None


def _normal_users(rng: np.random.Generator, k: int, shift: float) -> tuple[MetricStats, PreStats]:
    x = rng.normal(10, 3, k)
    y = 2 + 0.8 * x + rng.normal(shift, 2, k)
    stats = MetricStats(k, k, k, float(y.sum()), float((y * y).sum()), float(y.sum()))
    pre = PreStats(k, k, float(x.sum()), float((x * x).sum()), float(x.sum()), float((x * y).sum()))
    return stats, pre


def test_gbstats_regression_adjustment_agrees() -> None:
    """Given our θ, gbstats' regression-adjusted means and variances give
    our difference and variances exactly; its pooled θ is close to ours."""
    rng = np.random.default_rng(11)
    (st, pt), (sc, pc) = _normal_users(rng, 200_000, 0.05), _normal_users(rng, 200_000, 0.0)
    adj = cuped("per_user_value", st, sc, pt, pc)
    assert adj is not None

    def gb(s: MetricStats, p: PreStats, theta: float) -> RegressionAdjustedStatistic:
        return RegressionAdjustedStatistic(
            n=s.users,
            post_statistic=SampleMeanStatistic(n=s.users, sum=s.sum_a, sum_squares=s.sum_aa),
            pre_statistic=SampleMeanStatistic(n=s.users, sum=p.sum_x, sum_squares=p.sum_xx),
            post_pre_sum_of_products=p.sum_ax,
            theta=theta,
        )

    gt, gc = gb(st, pt, adj.theta), gb(sc, pc, adj.theta)
    assert adj.treatment.value - adj.control.value == pytest.approx(gt.mean - gc.mean, rel=1e-9)
    assert adj.treatment.variance == pytest.approx(gt.variance / st.users, rel=1e-9)
    assert adj.control.variance == pytest.approx(gc.variance / sc.users, rel=1e-9)
    assert compute_theta(gb(st, pt, 0), gb(sc, pc, 0)) == pytest.approx(adj.theta, rel=1e-3)
    assert adj.variance_reduction == pytest.approx(1 - 4 / (4 + 0.64 * 9), rel=0.02)  # r² of the model


def test_sequential_by_hand() -> None:
    """N = 2,000, N* = 5,000: r² = (5.991465 + 1.944690) / 5000 = 0.00158723,
    Nr² = 3.174462, q_seq = √(2·4.174462/3.174462 · ln(√4.174462/0.05)) = 3.123779;
    at z = 2.5, p = √4.174462 · exp(-3.174462·6.25/8.348924) = 0.189777."""
    alpha, tuning, users, z = 0.05, 5000, 2000, 2.5
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning
    assert rho2 == pytest.approx(0.00158723092, rel=1e-9)
    nr = users * rho2  # 3.1744380...
    q = math.sqrt(2 * (nr + 1) / nr * math.log(math.sqrt(nr + 1) / alpha))
    assert intervals.sequential_radius(users, tuning) == pytest.approx(q, rel=1e-15)
    assert q == pytest.approx(3.1237791, rel=1e-7)
    p = math.sqrt(nr + 1) * math.exp(-nr * z * z / (2 * (nr + 1)))
    assert intervals.sequential_p(z, users, tuning) == pytest.approx(p, rel=1e-15)
    assert p == pytest.approx(0.1897766, rel=1e-6)
    # the comparison: p and the interval from the same q, so they agree
    t, c = Estimate(1.1, 0.0016, 1000), Estimate(1.0, 0.0009, 1000)
    found = compare(t, c)
    z = 0.1 / math.sqrt(0.0025)
    assert found.sequential_p_value == pytest.approx(intervals.sequential_p(z, 2000, 5000), rel=1e-15)
    low, high = fieller(1.1, 1.0, 0.0016, 0.0009, q)  # type: ignore[misc]
    assert (found.sequential_ci_low, found.sequential_ci_high) == pytest.approx(
        (low - 1, high - 1), rel=1e-15
    )
    # |z| = 2 < q: the sequential interval holds 0 and p ≥ 0.05 (fixed p = 0.0455)
    assert found.sequential_ci_low < 0 < found.sequential_ci_high  # type: ignore[operator]
    assert found.p_value is not None and found.p_value < 0.05 <= found.sequential_p_value  # type: ignore[operator]


@pytest.mark.parametrize("users", [2_000, 200_000])
def test_gbstats_sequential_agrees(users: int) -> None:
    """Same sums into gbstats' SequentialTwoSidedTTest: the absolute
    interval is ours (z and t coincide in this test's use of SE), its p is
    our sequential p, and its relative interval (delta method) is close to
    our Fieller one at large N."""
    rng = np.random.default_rng(users)
    yt, yc = rng.gamma(2.0, 1.05, users // 2), rng.gamma(2.0, 1.0, users // 2)
    st = SampleMeanStatistic(n=len(yt), sum=float(yt.sum()), sum_squares=float((yt * yt).sum()))
    sc = SampleMeanStatistic(n=len(yc), sum=float(yc.sum()), sum_squares=float((yc * yc).sum()))
    ours = compare(
        estimate("per_user_value", MetricStats(len(yt), 0, 0, st.sum, st.sum_squares, 0)),
        estimate("per_user_value", MetricStats(len(yc), 0, 0, sc.sum, sc.sum_squares, 0)),
    )
    absolute = SequentialTwoSidedTTest(sc, st, SequentialConfig(difference_type="absolute")).compute_result()
    assert ours.sequential_p_value == pytest.approx(absolute.p_value, rel=1e-9)
    se = math.sqrt(st.variance / st.n + sc.variance / sc.n)
    q = intervals.sequential_radius(users, 5000)
    assert absolute.ci == pytest.approx([ours.difference - q * se, ours.difference + q * se], rel=1e-9)
    if users >= 200_000:
        relative = SequentialTwoSidedTTest(sc, st, SequentialConfig()).compute_result()
        assert [ours.sequential_ci_low, ours.sequential_ci_high] == pytest.approx(relative.ci, rel=2e-3)
