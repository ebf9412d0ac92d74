"""The verdict per variant, and one sentence for all of them.

- ``srm``: the sample-ratio check failed, so nothing else is trusted;
- ``worse``: a goal (by its Holm-adjusted p) or a guardrail (unadjusted)
  is significantly worse, in the metric's own direction;
- ``better``: a goal is significantly better by its adjusted p;
- ``inconclusive`` otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.results.intervals import ALPHA

Row = Mapping[str, Any]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:+.1%}"


def _interval(c: Row, sequential: bool) -> str:
    low, high = (
        (c["sequential_ci_low"], c["sequential_ci_high"])
        if sequential
        else (c["lift_ci_low"], c["lift_ci_high"])
    )
    if low is None or c["lift"] is None:
        return f"difference {c['difference']:+.4g}"
    return f"{_pct(c['lift'])}, 95% interval {_pct(low)} .. {_pct(high)}"


def decision_p(c: Row, sequential: bool) -> float | None:
    """The p-value a guardrail is judged by (goals use adjusted_p_value)."""
    p: float | None = c["sequential_p_value"] if sequential else c["p_value"]
    return p


def _better(c: Row) -> bool:
    d = c["difference"]
    return d is not None and (d > 0 if c["direction"] == "increase" else d < 0)


def _worse(c: Row) -> bool:
    d = c["difference"]
    return d is not None and (d < 0 if c["direction"] == "increase" else d > 0)


def _reason(c: Row, word: str, p_name: str, p: float, sequential: bool) -> str:
    return f"{c['role']} {c['metric']} is {word}: {_interval(c, sequential)}, {p_name} = {p:.3g}"


def verdict(comparisons: Sequence[Row], srm: bool, sequential: bool) -> tuple[str, list[str]]:
    """(verdict, reasons) of one variant from its comparisons."""
    if srm:
        return "srm", ["the users' split does not match the weights (sample ratio mismatch)"]
    worse, better = [], []
    for c in comparisons:
        if c["role"] == "goal":
            p, name = c["adjusted_p_value"], "adjusted p"
        elif c["role"] == "guardrail":
            p, name = decision_p(c, sequential), "p"
        else:
            continue
        if p is None or p >= ALPHA:
            continue
        if _worse(c):
            worse.append(_reason(c, "worse", name, p, sequential))
        elif _better(c) and c["role"] == "goal":
            better.append(_reason(c, "better", name, p, sequential))
    if worse:
        return "worse", worse
    if better:
        return "better", better
    return "inconclusive", ["no goal moved significantly and no guardrail got worse"]


def verdicts(
    comparisons: Sequence[Row], variants: Sequence[str], srm: bool, sequential: bool
) -> list[dict[str, Any]]:
    out = []
    for name in variants:
        v, reasons = verdict([c for c in comparisons if c["variant"] == name], srm, sequential)
        out.append({"variant": name, "verdict": v, "reasons": reasons})
    return out


def summary(verdicts_: Sequence[Row], baseline: str) -> str:
    """One sentence a person can act on."""
    if not verdicts_:
        return f"Only the baseline {baseline} is in this experiment: there is nothing to compare."
    if any(v["verdict"] == "srm" for v in verdicts_):
        return (
            "Sample ratio mismatch: assignment or logging is broken, so no verdict; "
            "find the cause before trusting any number."
        )
    parts = []
    for v in verdicts_:
        if v["verdict"] == "inconclusive":
            parts.append(f"{v['variant']} is inconclusive against {baseline} (no goal moved significantly)")
        else:
            parts.append(f"{v['variant']} is {v['verdict']} than {baseline} ({v['reasons'][0]})")
    return "; ".join(parts) + "."
