"""CUPED (Deng et al. 2013): less variance from each user's pre-period.

For one comparison of two variants, y is the user's in-window value and x
the same quantity over the pre-period. Mean kinds use them as they are;
ratio kinds use the linearised values y = (a - R_v·n)/n̄_v and
x = (x' - R'·m)/m̄', where R', m̄' are over both variants' users. Then

    θ = Σ_v Σ_i (x - x̄_v)(y - ȳ_v) / Σ_v Σ_i (x - x̄_v)²   (within variants)
    M_v' = M_v - θ·(x̄_v - x̄)                              (x̄ over both)
    Var_v' = (s²_y - 2θ·s_xy + θ²·s²_x) / N_v

θ = 0 gives the unadjusted estimates exactly. Everything is computed from
the sums the database returns (``PreStats`` next to ``MetricStats``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.results.estimators import (
    MIN_USERS,
    RATIO_KINDS,
    Estimate,
    MetricStats,
    Number,
    _number,
    covariance,
)


@dataclass(frozen=True)
class PreStats:
    """Pre-period sums of one variant's analysed users for one metric:
    x = the pre-period value (ratio kinds: numerator), m = pre-period
    impressions, with the in-window a and n of ``MetricStats``."""

    sum_m: Number = 0
    sum_mm: Number = 0
    sum_x: Number = 0
    sum_xx: Number = 0
    sum_xm: Number = 0
    sum_ax: Number = 0
    sum_am: Number = 0
    sum_nx: Number = 0
    sum_nm: Number = 0

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> PreStats:
        return cls(**{name: _number(row.get(name)) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Moments:
    """Within-variant moments of (x, y) for one variant (sample, N - 1)."""

    users: int
    value: float  # M_v, unadjusted
    var_y: float
    var_x: float
    cov_xy: float
    mean_x: float


@dataclass(frozen=True)
class Adjusted:
    treatment: Estimate
    control: Estimate
    theta: float
    variance_reduction: float


def _mean_moments(s: MetricStats, p: PreStats) -> Moments:
    n = s.users
    return Moments(
        n,
        s.sum_a / n,
        covariance(n, s.sum_a, s.sum_a, s.sum_aa),
        covariance(n, p.sum_x, p.sum_x, p.sum_xx),
        covariance(n, s.sum_a, p.sum_x, p.sum_ax),
        p.sum_x / n,
    )


def _ratio_moments(s: MetricStats, p: PreStats, r_pre: float, m_bar: float) -> Moments:
    """Moments of the linearised values; x is 0 for everyone when m̄' = 0."""
    n = s.users
    rate, n_bar = s.sum_a / s.sum_n, s.sum_n / n
    var_y = (
        covariance(n, s.sum_a, s.sum_a, s.sum_aa)
        - 2 * rate * covariance(n, s.sum_a, s.sum_n, s.sum_an)
        + rate * rate * covariance(n, s.sum_n, s.sum_n, s.sum_nn)
    ) / (n_bar * n_bar)
    if m_bar == 0:
        return Moments(n, rate, var_y, 0.0, 0.0, 0.0)
    var_x = (
        covariance(n, p.sum_x, p.sum_x, p.sum_xx)
        - 2 * r_pre * covariance(n, p.sum_x, p.sum_m, p.sum_xm)
        + r_pre * r_pre * covariance(n, p.sum_m, p.sum_m, p.sum_mm)
    ) / (m_bar * m_bar)
    cov_xy = (
        covariance(n, s.sum_a, p.sum_x, p.sum_ax)
        - r_pre * covariance(n, s.sum_a, p.sum_m, p.sum_am)
        - rate * covariance(n, s.sum_n, p.sum_x, p.sum_nx)
        + rate * r_pre * covariance(n, s.sum_n, p.sum_m, p.sum_nm)
    ) / (n_bar * m_bar)
    mean_x = (p.sum_x - r_pre * p.sum_m) / (n * m_bar)
    return Moments(n, rate, var_y, var_x, cov_xy, mean_x)


def moments(
    kind: str, t: MetricStats, c: MetricStats, pt: PreStats, pc: PreStats
) -> tuple[Moments, Moments] | None:
    """Both variants' moments, or None when CUPED cannot apply (fewer than
    2 users, or no in-window impressions, in a variant)."""
    if min(t.users, c.users) < MIN_USERS:
        return None
    if kind not in RATIO_KINDS:
        return _mean_moments(t, pt), _mean_moments(c, pc)
    if t.sum_n == 0 or c.sum_n == 0:
        return None
    m_total = pt.sum_m + pc.sum_m
    r_pre = (pt.sum_x + pc.sum_x) / m_total if m_total else 0.0
    m_bar = m_total / (t.users + c.users)
    return _ratio_moments(t, pt, r_pre, m_bar), _ratio_moments(c, pc, r_pre, m_bar)


def theta(t: Moments, c: Moments) -> float:
    """Pooled within-variant slope of y on x; 0 when x has no spread."""
    sxx = (t.users - 1) * t.var_x + (c.users - 1) * c.var_x
    sxy = (t.users - 1) * t.cov_xy + (c.users - 1) * c.cov_xy
    return sxy / sxx if sxx > 0 else 0.0


def adjusted(m: Moments, theta_: float, mean_x: float) -> Estimate:
    """The variant's CUPED estimate at slope θ (x̄ over both variants)."""
    variance = (m.var_y - 2 * theta_ * m.cov_xy + theta_ * theta_ * m.var_x) / m.users
    return Estimate(m.value - theta_ * (m.mean_x - mean_x), max(variance, 0.0), m.users)


def cuped(kind: str, t: MetricStats, c: MetricStats, pt: PreStats, pc: PreStats) -> Adjusted | None:
    """Adjusted treatment and control estimates for one comparison, or None
    when CUPED cannot apply (the comparison then stays unadjusted)."""
    pair = moments(kind, t, c, pt, pc)
    if pair is None:
        return None
    mt, mc = pair
    k = theta(mt, mc)
    mean_x = (mt.mean_x * mt.users + mc.mean_x * mc.users) / (mt.users + mc.users)
    at, ac = adjusted(mt, k, mean_x), adjusted(mc, k, mean_x)
    before = (mt.var_y / mt.users) + (mc.var_y / mc.users)
    after = (at.variance or 0.0) + (ac.variance or 0.0)
    reduction = 1 - after / before if before > 0 else 0.0
    return Adjusted(at, ac, k, reduction)
