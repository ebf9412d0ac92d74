"""Any-outcome counts per variant (the answer's ``variants`` table), the
sample-ratio check, and the built-in metrics as sums of those counts."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scipy import stats

from shared.results.estimators import MetricStats

SRM_ALPHA = 0.001
BUILTINS = {
    "engagement_rate": "impression_rate",
    "outcomes_per_user": "per_user_count",
    "engaged_user_rate": "user_rate",
}


@dataclass(frozen=True)
class VariantStats:
    """Sums over one variant's analysed users; n = tagged impressions,
    e = engaged impressions, o = outcomes, per user."""

    users: int = 0
    sum_n: int = 0
    sum_e: int = 0
    sum_o: int = 0
    sum_nn: int = 0
    sum_ee: int = 0
    sum_oo: int = 0
    sum_ne: int = 0
    engaged_users: int = 0

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> VariantStats:
        return cls(**{name: int(row.get(name) or 0) for name in cls.__dataclass_fields__})


def builtin_stats(metric: str, s: VariantStats) -> MetricStats:
    """A built-in metric's sums from the any-outcome counts (uncapped)."""
    if metric == "engagement_rate":
        return MetricStats(s.users, s.sum_n, s.sum_nn, s.sum_e, s.sum_ee, s.sum_ne)
    if metric == "outcomes_per_user":
        return MetricStats(s.users, s.sum_n, s.sum_nn, s.sum_o, s.sum_oo, 0)
    if metric == "engaged_user_rate":
        return MetricStats(s.users, s.sum_n, s.sum_nn, s.engaged_users, s.engaged_users, 0)
    raise ValueError(f"{metric!r} is not a built-in metric")


def srm_p_value(users: Sequence[int], weights: Sequence[float]) -> float | None:
    """Pearson chi-square goodness of fit of users per variant against the
    weights (variants of weight > 0 only, df = k - 1). None when it cannot
    be computed (no users, fewer than two weighted variants)."""
    pairs = [(u, w) for u, w in zip(users, weights, strict=True) if w > 0]
    total = sum(u for u, _ in pairs)
    if total == 0 or len(pairs) < 2:
        return None
    weight_sum = sum(w for _, w in pairs)
    statistic = sum((u - total * w / weight_sum) ** 2 / (total * w / weight_sum) for u, w in pairs)
    return float(stats.chi2.sf(statistic, len(pairs) - 1))


def per_impression_p_value(control: VariantStats, treatment: VariantStats) -> float | None:
    """The two-proportion z-test on impressions: what an analysis that treats
    impressions as independent reports. Kept for the calibration tests, which
    show its false-positive rate; never used in an answer."""
    if control.sum_n == 0 or treatment.sum_n == 0:
        return None
    pooled = (control.sum_e + treatment.sum_e) / (control.sum_n + treatment.sum_n)
    se = math.sqrt(pooled * (1 - pooled) * (1 / control.sum_n + 1 / treatment.sum_n))
    if se == 0:
        return None
    diff = treatment.sum_e / treatment.sum_n - control.sum_e / control.sum_n
    return float(2 * stats.norm.sf(abs(diff) / se))
