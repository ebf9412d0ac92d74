"""Experiment results from per-variant sufficient statistics (docs/reference.md §8).

The database returns, per variant, sums over analysed users (N, Σn, Σe, Σo,
Σn², Σe², Σo², Σne, Σ[e>0]); this module turns them into the three metrics,
their variances, the comparisons with the baseline, the sample-ratio check
and the warnings. The user is the unit: variances are over users, so heavy
users cannot make an interval look narrower than it is.

Anything that cannot be computed is ``None`` (JSON ``null``), never NaN.
The same functions serve the admin function, ``recsys-exp results``, the
demo and the calibration tests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from scipy import stats

METRICS = ("engagement_rate", "outcomes_per_user", "engaged_user_rate")
Z_95 = 1.959964
SRM_ALPHA = 0.001
MIN_USERS = 2  # per variant, for any variance


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


@dataclass(frozen=True)
class Estimate:
    value: float | None
    variance: float | None

    @property
    def std_error(self) -> float | None:
        return None if self.variance is None else math.sqrt(self.variance)


@dataclass(frozen=True)
class Comparison:
    baseline_value: float | None
    value: float | None
    difference: float | None
    p_value: float | None
    lift: float | None
    lift_ci_low: float | None
    lift_ci_high: float | None


def _covariance(n: int, sum_x: int, sum_y: int, sum_xy: int) -> float:
    """Sample covariance (N - 1) from sums; exact integer numerator."""
    return (n * sum_xy - sum_x * sum_y) / (n * (n - 1))


def engagement_rate(s: VariantStats) -> Estimate:
    """Σe/Σn, variance by the delta method for a ratio of user means."""
    if s.users == 0 or s.sum_n == 0:
        return Estimate(None, None)
    rate = s.sum_e / s.sum_n
    if s.users < MIN_USERS:
        return Estimate(rate, None)
    var_e = _covariance(s.users, s.sum_e, s.sum_e, s.sum_ee)
    var_n = _covariance(s.users, s.sum_n, s.sum_n, s.sum_nn)
    cov_en = _covariance(s.users, s.sum_e, s.sum_n, s.sum_ne)
    mean_n = s.sum_n / s.users
    variance = (var_e - 2 * rate * cov_en + rate * rate * var_n) / (s.users * mean_n * mean_n)
    return Estimate(rate, max(variance, 0.0))


def outcomes_per_user(s: VariantStats) -> Estimate:
    """Σo/N, variance s²_o/N."""
    if s.users == 0:
        return Estimate(None, None)
    value = s.sum_o / s.users
    if s.users < MIN_USERS:
        return Estimate(value, None)
    return Estimate(value, max(_covariance(s.users, s.sum_o, s.sum_o, s.sum_oo), 0.0) / s.users)


def engaged_user_rate(s: VariantStats) -> Estimate:
    """Share of users with at least one engaged impression, variance s²/N of that 0/1 value."""
    if s.users == 0:
        return Estimate(None, None)
    k = s.engaged_users
    value = k / s.users
    if s.users < MIN_USERS:
        return Estimate(value, None)
    return Estimate(value, max(_covariance(s.users, k, k, k), 0.0) / s.users)


ESTIMATORS = {
    "engagement_rate": engagement_rate,
    "outcomes_per_user": outcomes_per_user,
    "engaged_user_rate": engaged_user_rate,
}


def compare(treatment: Estimate, control: Estimate) -> Comparison:
    """Difference with a two-sided normal test, and the relative lift with its
    95% interval (delta method for a ratio of independent means)."""
    mt, mc = treatment.value, control.value
    difference = None if mt is None or mc is None else mt - mc
    p_value = None
    lift = low = high = None
    vt, vc = treatment.variance, control.variance
    if difference is not None and vt is not None and vc is not None:
        se = math.sqrt(vt + vc)
        if se > 0:
            p_value = float(2 * stats.norm.sf(abs(difference) / se))
    if mt is not None and mc is not None and mc != 0:
        lift = mt / mc - 1
        if vt is not None and vc is not None:
            half = Z_95 * math.sqrt(vt / mc**2 + mt**2 * vc / mc**4)
            low, high = lift - half, lift + half
    return Comparison(mc, mt, difference, p_value, lift, low, high)


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


def analyse(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The answer of ``admin-experiment-results`` from what
    ``rec_experiment_results_stats`` returned."""
    declared = [(str(v["name"]), v["weight"]) for v in raw["variants"]]
    by_variant = {str(row["variant"]): VariantStats.from_row(row) for row in raw["stats"]}
    names = [name for name, _ in declared]
    weights: dict[str, float] = {name: weight for name, weight in declared}
    # A tag naming no declared variant: listed last, as a variant of weight 0.
    for name in sorted(set(by_variant) - set(names)):
        names.append(name)
        weights[name] = 0
    baseline = names[0]
    counts = {name: by_variant.get(name, VariantStats()) for name in names}
    estimates = {name: {m: ESTIMATORS[m](counts[name]) for m in METRICS} for name in names}

    metrics = [
        {"metric": m, "variant": name, "value": est.value, "std_error": est.std_error}
        for m in METRICS
        for name, est in ((n, estimates[n][m]) for n in names)
    ]
    comparisons = []
    for m in METRICS:
        for name in names[1:]:
            c = compare(estimates[name][m], estimates[baseline][m])
            comparisons.append({"metric": m, "variant": name, **asdict(c)})

    weighted = [name for name in names if weights[name] > 0]
    p_srm = srm_p_value([counts[n].users for n in weighted], [weights[n] for n in weighted])
    zero_weight_users = sum(counts[n].users for n in names if weights[n] <= 0)
    if zero_weight_users:
        p_srm = 0.0
    health = {
        "assigned_users": int(raw["health"]["assigned_users"]),
        "exposed_users": int(raw["health"]["exposed_users"]),
        "analysed_users": int(raw["health"]["analysed_users"]),
        "overridden_users": int(raw["health"]["overridden_users"]),
        "crossover_users": int(raw["health"]["crossover_users"]),
        "untagged_impressions": int(raw["health"]["untagged_impressions"]),
        "srm_p_value": p_srm,
        "srm": bool(zero_weight_users) or (p_srm is not None and p_srm < SRM_ALPHA),
    }
    variants = [
        {
            "variant": name,
            "weight": weights[name],
            "users": counts[name].users,
            "impressions": counts[name].sum_n,
            "engaged_impressions": counts[name].sum_e,
            "outcomes": counts[name].sum_o,
        }
        for name in names
    ]
    answer = {
        "key": raw["key"],
        "from_day": raw["from_day"],
        "to_day": raw["to_day"],
        "baseline": baseline,
        "variants": variants,
        "metrics": metrics,
        "comparisons": comparisons,
        "health": health,
    }
    answer["warnings"] = warnings(answer)
    return answer


def warnings(answer: Mapping[str, Any]) -> list[str]:
    """Sentences a person can act on, most serious first."""
    health = answer["health"]
    variants = answer["variants"]
    out: list[str] = []
    if health["srm"]:
        total = sum(v["users"] for v in variants)
        weight_sum = sum(v["weight"] for v in variants if v["weight"] > 0) or 1
        observed = " / ".join(f"{v['variant']} {v['users'] / total:.1%}" for v in variants) if total else "-"
        expected = " / ".join(f"{v['variant']} {max(v['weight'], 0) / weight_sum:.1%}" for v in variants)
        p = health["srm_p_value"]
        out.append(
            f"Sample ratio mismatch (p = {p:.2g}): analysed users split {observed}, "
            f"but the weights expect {expected}. Do not trust these results until you find why "
            "(assignment bypassed, users dropped by variant, tags rewritten); see README."
        )
    if health["assigned_users"] == 0 and health["exposed_users"] == 0:
        out.append(
            f"No user is assigned to this experiment or exposed in {answer['from_day']} .. "
            f"{answer['to_day']} yet: there is nothing to analyse. Is it active, and does the "
            "recommender call rec_assign_variants? See README."
        )
    if health["assigned_users"] > 0 and health["exposed_users"] == 0:
        out.append(
            f"{health['assigned_users']} users are assigned but none has a tagged impression in "
            f"{answer['from_day']} .. {answer['to_day']}: the recommender is not tagging "
            "impressions: see README (request_context.experiments)."
        )
    if health["untagged_impressions"] > 0:
        out.append(
            f"{health['untagged_impressions']} impressions of assigned users while the experiment ran "
            "carry no tag for it: they are not analysed. Put the map from rec_assign_variants into "
            "request_context.experiments of every impression; see README."
        )
    small = [v["variant"] for v in variants if v["users"] < MIN_USERS]
    if small and health["exposed_users"] > 0:
        out.append(
            f"Too few analysed users for an interval in {', '.join(small)} (at least {MIN_USERS} "
            "needed): collect more traffic or widen the window."
        )
    left_out = []
    if health["overridden_users"]:
        left_out.append(f"{health['overridden_users']} with a manual override")
    if health["crossover_users"]:
        left_out.append(f"{health['crossover_users']} tagged with more than one variant")
    if left_out:
        out.append(
            f"Left out of the analysis: {' and '.join(left_out)} of {health['exposed_users']} exposed "
            "users. Overrides are for QA; crossover means tags changed mid-experiment (salt rotated "
            "with reassign, or a stale variant map) — check if it is more than a few."
        )
    return out
