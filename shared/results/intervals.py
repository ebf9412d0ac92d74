"""Tests and intervals of one comparison (treatment t against control c).

The p-value is the two-sided normal test of M_t - M_c with SE = √(Var_t +
Var_c); the interval of the lift M_t/M_c - 1 is Fieller's for a ratio of
independent means, the set of θ with (M_t - θ·M_c)² ≤ q²·(Var_t + θ²·Var_c).
θ = 1 is in it exactly when |z| ≤ q, so the interval excludes 0 exactly
when p < 0.05. The sequential versions replace q by the confidence
sequence's radius (Waudby-Smith et al., as GrowthBook).
"""

from __future__ import annotations

import math

Q_95 = 1.959963984540054  # two-sided 95 % normal quantile
ALPHA = 0.05


def normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2))


def two_sided_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def fieller(mt: float, mc: float, vt: float, vc: float, q: float = Q_95) -> tuple[float, float] | None:
    """Interval of θ = M_t/M_c at radius q, or None when it is unbounded
    (a = M_c² - q²·Var_c ≤ 0: the baseline is not clearly away from 0)."""
    a = mc * mc - q * q * vc
    if a <= 0:
        return None
    b = mt * mc
    # b² - a·c rewritten as a sum of non-negative terms: no cancellation
    disc = q * q * vt * a + q * q * mt * mt * vc
    root = math.sqrt(disc)
    return (b - root) / a, (b + root) / a


def sequential_rho2(tuning: int, alpha: float = ALPHA) -> float:
    """r² of the asymptotic confidence sequence, tuned for `tuning` users."""
    return (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning


def sequential_radius(users: float, tuning: int, alpha: float = ALPHA) -> float:
    """q_seq = √(2(Nr²+1)/(Nr²) · ln(√(Nr²+1)/alpha)) for N users of both variants."""
    nr = users * sequential_rho2(tuning, alpha)
    return math.sqrt(2 * (nr + 1) / nr * math.log(math.sqrt(nr + 1) / alpha))


def sequential_p(z: float, users: float, tuning: int, alpha: float = ALPHA) -> float:
    """min(1, √(Nr²+1) · exp(-Nr²·z² / (2(Nr²+1))))."""
    nr = users * sequential_rho2(tuning, alpha)
    return min(1.0, math.sqrt(nr + 1) * math.exp(-nr * z * z / (2 * (nr + 1))))
