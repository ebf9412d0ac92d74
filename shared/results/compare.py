"""One comparison of a variant with the baseline on one metric, with the
nulls where a number cannot be computed (never NaN):

- fewer than 2 users in either variant: everything but the two values and
  the lift is null;
- no spread (variance 0) in either variant: p-values, intervals and chance
  to win are null (difference and lift stay): too few events, not certainty;
- a baseline of 0: lift and intervals are null (difference and p stay);
- an unbounded Fieller interval (baseline not clearly away from 0): the
  interval is null.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from shared.results import intervals
from shared.results.estimators import Estimate

FEW_USERS, NO_SPREAD, ZERO_BASELINE, UNBOUNDED = "few_users", "no_spread", "zero_baseline", "unbounded"


@dataclass(frozen=True)
class Comparison:
    baseline_value: float | None
    value: float | None
    difference: float | None
    p_value: float | None
    lift: float | None
    lift_ci_low: float | None
    lift_ci_high: float | None
    chance_to_win: float | None = None
    sequential_p_value: float | None = None
    sequential_ci_low: float | None = None
    sequential_ci_high: float | None = None
    # why fields are null (FEW_USERS, ...): for the warnings, not the answer
    nulls: tuple[str, ...] = field(default=(), compare=False)


def _lift_interval(mt: float, mc: float, vt: float, vc: float, q: float) -> tuple[float | None, float | None]:
    theta = intervals.fieller(mt, mc, vt, vc, q)
    return (None, None) if theta is None else (theta[0] - 1, theta[1] - 1)


def compare(
    treatment: Estimate, control: Estimate, direction: str = "increase", tuning: int = 5000
) -> Comparison:
    """Treatment against control: difference, normal-test p, lift with its
    Fieller interval, chance to win, and the sequential p and interval."""
    mt, mc, vt, vc = treatment.value, control.value, treatment.variance, control.variance
    if mt is None or mc is None:
        return Comparison(mc, mt, None, None, None, None, None, nulls=(FEW_USERS,))
    lift = mt / mc - 1 if mc != 0 else None
    nulls = () if mc != 0 else (ZERO_BASELINE,)
    if vt is None or vc is None:
        return Comparison(mc, mt, None, None, lift, None, None, nulls=(FEW_USERS, *nulls))
    difference = mt - mc
    if vt == 0 or vc == 0:
        return Comparison(mc, mt, difference, None, lift, None, None, nulls=(NO_SPREAD, *nulls))
    z = difference / math.sqrt(vt + vc)
    users = treatment.users + control.users
    win = intervals.normal_cdf(z if direction == "increase" else -z)
    p, p_seq = intervals.two_sided_p(z), intervals.sequential_p(z, users, tuning)
    if mc == 0:
        return Comparison(mc, mt, difference, p, None, None, None, win, p_seq, nulls=nulls)
    low, high = _lift_interval(mt, mc, vt, vc, intervals.Q_95)
    seq_low, seq_high = _lift_interval(mt, mc, vt, vc, intervals.sequential_radius(users, tuning))
    if low is None:
        nulls = (UNBOUNDED,)
    return Comparison(mc, mt, difference, p, lift, low, high, win, p_seq, seq_low, seq_high, nulls)
