"""Planning: the smallest effect a run of d days would detect (80 % power,
two-sided 5 %), from the users the experiment would see and each goal
metric's per-user standard deviation s over the last 28 days.

    MDE_abs = (q + z_0.8) · s · √(1/n_t + 1/n_c)

for the smallest-weight non-baseline variant t against the baseline c, with
n_v = users(d) · w_v / W. q is the fixed test's 1.96, or the sequential
radius q_seq(n_t + n_c) when the experiment is sequential (one final look).
No CUPED, no Holm: a plan errs on the safe side.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from shared.results.estimators import MIN_USERS, RATIO_KINDS, MetricStats, covariance
from shared.results.intervals import Q_95, sequential_radius

Z_POWER = 0.841621  # the 80 % quantile of the standard normal
DEFAULT_DAYS = (7, 14, 28)


def spread(kind: str, s: MetricStats) -> tuple[float | None, float | None]:
    """(the metric, the per-user standard deviation): of the value for mean
    kinds, of the linearised value (a - R·n)/n̄ for ratio kinds."""
    if s.users == 0 or (kind in RATIO_KINDS and s.sum_n == 0):
        return None, None
    if kind not in RATIO_KINDS:
        value = s.sum_a / s.users
        if s.users < MIN_USERS:
            return value, None
        return value, math.sqrt(max(covariance(s.users, s.sum_a, s.sum_a, s.sum_aa), 0.0))
    rate, n_bar = s.sum_a / s.sum_n, s.sum_n / s.users
    if s.users < MIN_USERS:
        return rate, None
    var = (
        covariance(s.users, s.sum_a, s.sum_a, s.sum_aa)
        - 2 * rate * covariance(s.users, s.sum_a, s.sum_n, s.sum_an)
        + rate * rate * covariance(s.users, s.sum_n, s.sum_n, s.sum_nn)
    )
    return rate, math.sqrt(max(var, 0.0)) / n_bar


def mde(sd: float, n_t: float, n_c: float, sequential: bool = False, tuning: int = 5000) -> float:
    """The absolute effect detected with 80 % power at one look."""
    q = sequential_radius(n_t + n_c, tuning) if sequential else Q_95
    return (q + Z_POWER) * sd * math.sqrt(1 / n_t + 1 / n_c)


def arms(users: float, weights: list[float]) -> tuple[float, float] | None:
    """(n_t, n_c): the smallest-weight non-baseline variant and the baseline."""
    total = sum(weights)
    if len(weights) < 2 or total <= 0:
        return None
    n_t, n_c = users * min(weights[1:]) / total, users * weights[0] / total
    return (n_t, n_c) if n_t > 0 and n_c > 0 else None


def plan(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The answer of admin-experiment-plan from what rec_experiment_plan_stats returned."""
    share = float(raw["eligible_share"])
    weights = [float(v["weight"]) for v in raw["variants"]]
    settings = raw["settings"]
    sequential, tuning = bool(settings["sequential"]), int(settings["sequential_tuning"])
    stats = {str(r["metric"]): MetricStats.from_row(r) for r in raw.get("metric_stats") or []}
    runs = [(int(u["days"]), int(u["users"]) * share) for u in raw["users"]]
    metrics = []
    for d in raw["metric_definitions"]:
        baseline, sd = spread(d["kind"], stats.get(d["metric"], MetricStats()))
        rows = []
        for days, users in runs:
            pair = arms(users, weights)
            relative = None
            if pair is not None and sd is not None and baseline:
                relative = mde(sd, *pair, sequential, tuning) / baseline
            rows.append({"days": days, "users": users, "mde_relative": relative})
        metrics.append({"metric": d["metric"], "baseline": baseline, "std_dev": sd, "mde": rows})
    return {"key": raw["key"], "eligible_share": share, "metrics": metrics}
