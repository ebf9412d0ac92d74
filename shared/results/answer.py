"""The answer of ``admin-experiment-results`` from what
``rec_experiment_results_stats`` returned: per metric of the experiment and
variant, the value; per non-baseline variant, the comparison with the
baseline (Holm-adjusted over goals); the health checks, verdicts, one
summary sentence and warnings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from shared.results.compare import FEW_USERS, NO_SPREAD, UNBOUNDED, ZERO_BASELINE, Comparison, compare
from shared.results.corrections import holm
from shared.results.counts import BUILTINS, SRM_ALPHA, VariantStats, builtin_stats, srm_p_value
from shared.results.cuped import PreStats, cuped
from shared.results.estimators import MIN_USERS, Estimate, MetricStats, estimate
from shared.results.verdict import summary, verdicts

HEAVY_SHARE = 0.10  # top 0.1 % of users holding more than this of a numerator
DEFAULT_SETTINGS = {"sequential": False, "sequential_tuning": 5000, "cuped_days": 0}


def _definitions(raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    defs = raw.get("metric_definitions")
    if defs is None:  # the built-ins as goals
        return [
            {
                "metric": m,
                "kind": k,
                "outcome": None,
                "direction": "increase",
                "capping": None,
                "role": "goal",
            }
            for m, k in BUILTINS.items()
        ]
    return [dict(d) for d in defs]


def _metric_stats(
    raw: Mapping[str, Any], defs: Sequence[Mapping[str, Any]], counts: Mapping[str, VariantStats]
) -> dict[tuple[str, str], MetricStats]:
    rows = raw.get("metric_stats")
    if rows is None:
        return {(d["metric"], v): builtin_stats(d["metric"], s) for d in defs for v, s in counts.items()}
    return {(str(r["metric"]), str(r["variant"])): MetricStats.from_row(r) for r in rows}


def _pre_stats(raw: Mapping[str, Any]) -> dict[tuple[str, str], PreStats] | None:
    """Pre-period sums per (metric, variant), or None when CUPED is off."""
    if raw.get("cuped_window") is None:
        return None
    rows = raw.get("metric_stats") or []
    return {(str(r["metric"]), str(r["variant"])): PreStats.from_row(r) for r in rows}


@dataclass(frozen=True)
class Compared:
    definition: Mapping[str, Any]
    variant: str
    comparison: Comparison  # of the adjusted estimates (the measured ones without CUPED)
    baseline_value: float | None  # measured, unadjusted
    value: float | None
    variance_reduction: float = 0.0


def _compare(
    d: Mapping[str, Any],
    variant: str,
    baseline: str,
    estimates: Mapping[tuple[str, str], Estimate],
    sums: Mapping[tuple[str, str], MetricStats],
    pre: Mapping[tuple[str, str], PreStats] | None,
    tuning: int,
) -> Compared:
    """One comparison, CUPED-adjusted when on and computable."""
    t, c = estimates[d["metric"], variant], estimates[d["metric"], baseline]
    adj = None
    if pre is not None:
        key_t, key_c = (d["metric"], variant), (d["metric"], baseline)
        adj = cuped(
            d["kind"],
            sums.get(key_t, MetricStats()),
            sums.get(key_c, MetricStats()),
            pre.get(key_t, PreStats()),
            pre.get(key_c, PreStats()),
        )
    if adj is None:
        return Compared(d, variant, compare(t, c, d["direction"], tuning), c.value, t.value)
    found = compare(adj.treatment, adj.control, d["direction"], tuning)
    return Compared(d, variant, found, c.value, t.value, adj.variance_reduction)


def _comparison_row(x: Compared) -> dict[str, Any]:
    fields = asdict(x.comparison)
    fields.pop("nulls")
    return {
        "metric": x.definition["metric"],
        "role": x.definition["role"],
        "direction": x.definition["direction"],
        "variant": x.variant,
        "baseline_value": x.baseline_value,
        "value": x.value,
        "adjusted_baseline_value": fields.pop("baseline_value"),
        "adjusted_value": fields.pop("value"),
        "difference": fields.pop("difference"),
        "p_value": fields.pop("p_value"),
        "adjusted_p_value": None,
        **fields,
        "cuped_variance_reduction": x.variance_reduction,
    }


def _adjust(rows: list[dict[str, Any]], sequential: bool) -> None:
    """Holm over every goal comparison, of the decision p-values."""
    goals = [r for r in rows if r["role"] == "goal"]
    ps = [r["sequential_p_value"] if sequential else r["p_value"] for r in goals]
    for r, p in zip(goals, holm(ps), strict=True):
        r["adjusted_p_value"] = p


def _health(
    raw: Mapping[str, Any], names: list[str], weights: Mapping[str, float], counts: Mapping[str, VariantStats]
) -> dict[str, Any]:
    weighted = [name for name in names if weights[name] > 0]
    p_srm = srm_p_value([counts[n].users for n in weighted], [weights[n] for n in weighted])
    zero_weight_users = sum(counts[n].users for n in names if weights[n] <= 0)
    if zero_weight_users:
        p_srm = 0.0
    h = raw["health"]
    return {
        **{k: int(h[k]) for k in ("assigned_users", "exposed_users", "analysed_users")},
        **{k: int(h[k]) for k in ("overridden_users", "crossover_users", "untagged_impressions")},
        "srm_p_value": p_srm,
        "srm": bool(zero_weight_users) or (p_srm is not None and p_srm < SRM_ALPHA),
    }


def analyse(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The whole answer from the RPC's sums."""
    declared = [(str(v["name"]), v["weight"]) for v in raw["variants"]]
    by_variant = {str(row["variant"]): VariantStats.from_row(row) for row in raw["stats"]}
    names = [name for name, _ in declared]
    weights: dict[str, float] = dict(declared)
    # A tag naming no declared variant: listed last, as a variant of weight 0.
    for name in sorted(set(by_variant) - set(names)):
        names.append(name)
        weights[name] = 0
    baseline = names[0]
    counts = {name: by_variant.get(name, VariantStats()) for name in names}
    settings = {**DEFAULT_SETTINGS, **(raw.get("settings") or {})}
    defs = _definitions(raw)
    sums = _metric_stats(raw, defs, counts)
    estimates: dict[tuple[str, str], Estimate] = {
        (d["metric"], v): estimate(d["kind"], sums.get((d["metric"], v), MetricStats()))
        for d in defs
        for v in names
    }
    metrics = [
        {
            "metric": d["metric"],
            "role": d["role"],
            "direction": d["direction"],
            "variant": v,
            "value": estimates[d["metric"], v].value,
            "std_error": estimates[d["metric"], v].std_error,
        }
        for d in defs
        for v in names
    ]
    pre = _pre_stats(raw)
    tuning = int(settings["sequential_tuning"])
    found_all = [_compare(d, v, baseline, estimates, sums, pre, tuning) for d in defs for v in names[1:]]
    compared = [(x.definition, x.variant, x.comparison) for x in found_all]
    comparisons = [_comparison_row(x) for x in found_all]
    sequential = bool(settings["sequential"])
    _adjust(comparisons, sequential)
    health = _health(raw, names, weights, counts)
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
    found = verdicts(comparisons, names[1:], health["srm"], sequential)
    answer: dict[str, Any] = {
        "key": raw["key"],
        "from_day": raw["from_day"],
        "to_day": raw["to_day"],
        "baseline": baseline,
        "settings": settings,
        "variants": variants,
        "metrics": metrics,
        "comparisons": comparisons,
        "health": health,
        "verdicts": found,
        "summary": summary(found, baseline),
    }
    answer["warnings"] = warnings(answer) + metric_warnings(raw, compared)
    return answer


def metric_warnings(
    raw: Mapping[str, Any], compared: Sequence[tuple[Mapping[str, Any], str, Comparison]]
) -> list[str]:
    """Why numbers are null, heavy users, goals changed after the start."""
    out: list[str] = []
    if raw.get("goals_changed_after_start"):
        out.append(
            "The goals changed after the start: a goal chosen after seeing data is a forking path; "
            "judge on the goals set before the start (see the audit log)."
        )
    for d, v, c in compared:
        what = f"{d['metric']} ({v} against the baseline)"
        if NO_SPREAD in c.nulls:
            out.append(
                f"{what}: no spread in a variant (every user has the same value): too few events to "
                "compare, so no p-value or interval; collect more traffic."
            )
        if ZERO_BASELINE in c.nulls:
            out.append(f"{what}: the baseline is 0, so there is no lift or interval of lift.")
        if UNBOUNDED in c.nulls:
            out.append(
                f"{what}: the interval of lift is unbounded (the baseline is not clearly away from 0); "
                "collect more traffic."
            )
    for h in raw.get("heavy_users") or []:
        share = h.get("top_share")
        if share is not None and float(share) > HEAVY_SHARE:
            out.append(
                f"A few heavy users dominate {h['metric']}: the top 0.1 % of analysed users "
                f"({int(h['top_users'])}) hold {float(share):.0%} of it: use a capped metric "
                "(capping 0.999, say) to decide on."
            )
    return out


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


__all__ = ["FEW_USERS", "analyse", "metric_warnings", "warnings"]
