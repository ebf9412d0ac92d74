"""Per-variant metrics and their variances from sufficient statistics over
analysed users (the unit of randomisation).

Every kind reduces to one of two shapes: a mean of a per-user value a
(``per_user_count``, ``per_user_value``, ``user_rate``) or a ratio of sums
Σa/Σn (``impression_rate``, ``value_per_impression``), whose variance is the
delta method's for a ratio of user means. Capping happens in the database,
before the sums.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Number = int | float

MIN_USERS = 2  # per variant, for any variance
RATIO_KINDS = ("impression_rate", "value_per_impression")
MEAN_KINDS = ("per_user_count", "per_user_value", "user_rate")
KINDS = RATIO_KINDS + MEAN_KINDS


def _number(value: Any) -> Number:
    """A JSON number as it came: ints stay ints (exact sums), others float."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    as_float = float(value)
    return int(as_float) if as_float.is_integer() and abs(as_float) < 2**53 else as_float


@dataclass(frozen=True)
class MetricStats:
    """Sums over one variant's analysed users for one metric: n = the user's
    tagged impressions, a = the metric's per-user value (for ratio kinds,
    its numerator), both after capping."""

    users: int = 0
    sum_n: Number = 0
    sum_nn: Number = 0
    sum_a: Number = 0
    sum_aa: Number = 0
    sum_an: Number = 0

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> MetricStats:
        sums = {name: _number(row.get(name)) for name in cls.__dataclass_fields__ if name != "users"}
        return cls(int(row.get("users") or 0), **sums)


@dataclass(frozen=True)
class Estimate:
    value: float | None
    variance: float | None
    users: int = 0

    @property
    def std_error(self) -> float | None:
        return None if self.variance is None else math.sqrt(self.variance)


def covariance(n: int, sum_x: Number, sum_y: Number, sum_xy: Number) -> float:
    """Sample covariance (N - 1) from sums; an exact numerator for integer sums."""
    if isinstance(sum_x, int) and isinstance(sum_y, int) and isinstance(sum_xy, int):
        return (n * sum_xy - sum_x * sum_y) / (n * (n - 1))
    return (sum_xy - sum_x * sum_y / n) / (n - 1)


def ratio(s: MetricStats) -> Estimate:
    """Σa/Σn, variance (s²_a - 2R·s_an + R²·s²_n) / (N·n̄²) (delta method)."""
    if s.users == 0 or s.sum_n == 0:
        return Estimate(None, None, s.users)
    rate = s.sum_a / s.sum_n
    if s.users < MIN_USERS:
        return Estimate(rate, None, s.users)
    var_a = covariance(s.users, s.sum_a, s.sum_a, s.sum_aa)
    var_n = covariance(s.users, s.sum_n, s.sum_n, s.sum_nn)
    cov_an = covariance(s.users, s.sum_a, s.sum_n, s.sum_an)
    mean_n = s.sum_n / s.users
    variance = (var_a - 2 * rate * cov_an + rate * rate * var_n) / (s.users * mean_n * mean_n)
    return Estimate(rate, max(variance, 0.0), s.users)


def mean(s: MetricStats) -> Estimate:
    """Σa/N, variance s²_a/N."""
    if s.users == 0:
        return Estimate(None, None, 0)
    value = s.sum_a / s.users
    if s.users < MIN_USERS:
        return Estimate(value, None, s.users)
    return Estimate(value, max(covariance(s.users, s.sum_a, s.sum_a, s.sum_aa), 0.0) / s.users, s.users)


def estimate(kind: str, s: MetricStats) -> Estimate:
    """The metric of one variant, by kind."""
    if kind in RATIO_KINDS:
        return ratio(s)
    if kind in MEAN_KINDS:
        return mean(s)
    raise ValueError(f"unknown metric kind {kind!r}")
