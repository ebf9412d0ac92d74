"""Calibration of CUPED, the sequential test and the plan by simulation
(2,000 runs each, bands of ±3 simulation standard errors, fixed seeds that
were never tuned): the Python formulas over simulated sufficient statistics.

Users persist: each has a rate λ ~ Gamma(1.5, 2) (outcomes per user) or an
engagement probability p ~ Beta(2, 18) with μ ~ Gamma(2, 10) impressions
(engagement rate), the same before and during the experiment, so the
pre-period predicts the in-period value as real engagement does.
Measured numbers are printed (pytest -s) and quoted in the README."""

from __future__ import annotations

import math

import numpy as np

from shared.results import compare, estimate
from shared.results.cuped import PreStats, cuped
from shared.results.estimators import MetricStats
from shared.results.plan import mde, spread

RUNS = 2000
Q, Z80 = 1.959963984540054, 0.841621


def band(p: float) -> tuple[float, float]:
    se = math.sqrt(p * (1 - p) / RUNS)
    return p - 3 * se, p + 3 * se


def _sums(y: np.ndarray, x: np.ndarray) -> tuple[list[MetricStats], list[PreStats]]:
    """Per run (axis 0), a mean kind's sums over users (axis 1)."""
    k = y.shape[1]
    sy, syy, sx, sxx, sxy = (v.sum(axis=1).tolist() for v in (y, y * y, x, x * x, x * y))
    stats = [MetricStats(k, k, k, a, aa, a) for a, aa in zip(sy, syy, strict=True)]
    pre = [PreStats(k, k, b, bb, b, ab) for b, bb, ab in zip(sx, sxx, sxy, strict=True)]
    return stats, pre


def persistent(rng: np.random.Generator, users: int, lift: float) -> tuple[list[MetricStats], list[PreStats]]:
    lam = rng.gamma(1.5, 2.0, (RUNS, users))
    return _sums(rng.poisson(lam * (1 + lift)), rng.poisson(lam))


def test_daily_peeking_a_a_fixed_horizon_against_sequential() -> None:
    """A/A, 100 new users per variant a day, looked at daily for 14 days,
    stopping at the first p < 0.05."""
    rng = np.random.default_rng(2023)
    y = rng.gamma(2.0, 1.0, (RUNS, 14, 2, 100))
    s, ss = np.cumsum(y.sum(axis=3), axis=1), np.cumsum((y * y).sum(axis=3), axis=1)
    fixed = sequential = 0
    for run in range(RUNS):
        called = called_seq = False
        for day in range(14):
            n = 100 * (day + 1)
            t, c = (
                estimate("per_user_value", MetricStats(n, n, n, s[run, day, v], ss[run, day, v], 0))
                for v in (1, 0)
            )
            found = compare(t, c)
            called = called or (found.p_value is not None and found.p_value < 0.05)
            called_seq = called_seq or (
                found.sequential_p_value is not None and found.sequential_p_value < 0.05
            )
        fixed += called
        sequential += called_seq
    rates = f"fixed-horizon {fixed / RUNS:.1%}, sequential {sequential / RUNS:.1%}"
    print(f"\nA/A peeked daily for 14 days: {rates}")
    assert fixed / RUNS > 0.10  # peeking at a fixed-horizon test: far more than 5 %
    assert sequential / RUNS <= 0.065


def test_cuped_a_a_false_positives_and_variance_reduction() -> None:
    rng = np.random.default_rng(31)
    (st, pt), (sc, pc) = persistent(rng, 1000, 0.0), persistent(rng, 1000, 0.0)
    positives, reductions = 0, []
    for i in range(RUNS):
        adj = cuped("per_user_count", st[i], sc[i], pt[i], pc[i])
        assert adj is not None
        found = compare(adj.treatment, adj.control)
        positives += found.p_value is not None and found.p_value < 0.05
        reductions.append(adj.variance_reduction)
    found_rates = f"FPR {positives / RUNS:.2%}, variance reduction {np.mean(reductions):.1%}"
    print(f"\nCUPED A/A (outcomes per user): {found_rates}")
    assert 0.035 <= positives / RUNS <= 0.065
    # r² of the model: Cov(x, y)² / (Var x · Var y) = 6² / 9² = 0.444
    assert abs(np.mean(reductions) - 36 / 81) < 0.01


def test_cuped_a_a_ratio_kind() -> None:
    """Engagement rate (linearised) with persistent users: false positives in band."""
    rng = np.random.default_rng(47)
    users = 1000
    positives, reductions = 0, []
    for _ in range(RUNS // 250):
        p = rng.beta(2, 18, (250, 2, users))
        mu = rng.gamma(2.0, 10.0, (250, 2, users))
        n = 1 + rng.poisson(mu)
        a = rng.binomial(n, p)
        m = rng.poisson(mu)
        x = rng.binomial(m, p)
        sums = [
            (v.sum(axis=2))
            for v in (n, n * n, a, a * a, a * n, m, m * m, x, x * x, x * m, a * x, a * m, n * x, n * m)
        ]
        for r in range(250):
            stats, pre = [], []
            for v in (1, 0):
                row = [int(s[r, v]) for s in sums]
                stats.append(MetricStats(users, *row[:5]))
                pre.append(PreStats(*row[5:]))
            adj = cuped("impression_rate", stats[0], stats[1], pre[0], pre[1])
            assert adj is not None
            found = compare(adj.treatment, adj.control)
            positives += found.p_value is not None and found.p_value < 0.05
            reductions.append(adj.variance_reduction)
    found_rates = f"FPR {positives / RUNS:.2%}, variance reduction {np.mean(reductions):.1%}"
    print(f"\nCUPED A/A (engagement rate): {found_rates}")
    assert 0.035 <= positives / RUNS <= 0.065
    assert np.mean(reductions) > 0.1


def test_cuped_covers_a_true_lift_and_saves_users() -> None:
    """+5 % on outcomes per user: the CUPED interval covers it at 95 %; the
    users needed for 80 % power with and without CUPED, side by side."""
    rng = np.random.default_rng(59)
    (st, pt), (sc, pc) = persistent(rng, 1000, 0.05), persistent(rng, 1000, 0.0)
    covered, var_raw, var_adj, base = 0, [], [], []
    for i in range(RUNS):
        adj = cuped("per_user_count", st[i], sc[i], pt[i], pc[i])
        assert adj is not None
        found = compare(adj.treatment, adj.control)
        assert found.lift_ci_low is not None and found.lift_ci_high is not None
        covered += found.lift_ci_low <= 0.05 <= found.lift_ci_high
        raw_c = estimate("per_user_count", sc[i])
        var_raw.append(raw_c.variance * 1000)  # type: ignore[operator]
        var_adj.append(adj.control.variance * 1000)  # type: ignore[operator]
        base.append(raw_c.value)
    need = [(Q + Z80) ** 2 * 2 * np.mean(v) / (0.05 * np.mean(base)) ** 2 for v in (var_raw, var_adj)]
    print(
        f"\nCUPED +5% coverage {covered / RUNS:.2%}; users per variant for 80% power at +5%: "
        f"{need[0]:,.0f} without CUPED, {need[1]:,.0f} with"
    )
    assert 0.935 <= covered / RUNS <= 0.965
    assert need[1] < 0.7 * need[0]


def test_the_plans_mde_has_80_percent_power() -> None:
    """The spread and the baseline from a history of 200,000 users (its spread then known to 0.5 %), as the
    plan takes them; then 2,000 experiments at the planned users with the
    true lift equal to the MDE (added to every treated user, so the spread
    the plan assumes is the spread of both arms), one look at the end:
    power 80 % ± 3 SE, fixed and sequential."""
    rng = np.random.default_rng(67)
    history = rng.poisson(rng.gamma(1.5, 2.0, 200_000))
    baseline, sd = spread(
        "per_user_count", MetricStats(200_000, 0, 0, int(history.sum()), int((history**2).sum()), 0)
    )
    assert baseline is not None and sd is not None
    low, high = band(0.8)
    for sequential in (False, True):
        n = 3000
        lift = mde(sd, n, n, sequential) / baseline
        lam_c, lam_t = rng.gamma(1.5, 2.0, (RUNS, n)), rng.gamma(1.5, 2.0, (RUNS, n))
        treated = rng.poisson(lam_t) + lift * baseline
        (st, _), (sc, _) = _sums(treated, lam_t), _sums(rng.poisson(lam_c).astype(float), lam_c)
        hits = 0
        for i in range(RUNS):
            found = compare(estimate("per_user_value", st[i]), estimate("per_user_value", sc[i]))
            p = found.sequential_p_value if sequential else found.p_value
            hits += p is not None and p < 0.05
        what = f"plan MDE {lift:.2%} at {n} users per variant (sequential={sequential})"
        print(f"\n{what}: power {hits / RUNS:.1%}")
        assert low <= hits / RUNS <= high
