"""Results over time: for each day d of the window, the comparisons of the
window [from_day, d]. The database returns each prefix's sums of the
uncapped metrics in one pass; capped metrics come from each prefix's own
results call (their quantiles differ per prefix). The comparisons are then
exactly what ``analyse`` gives for that prefix."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from shared.results.answer import analyse


def capped_metrics(raw: Mapping[str, Any]) -> list[str]:
    return [str(d["metric"]) for d in raw.get("metric_definitions") or [] if d.get("capping") is not None]


def window_days(raw: Mapping[str, Any]) -> list[str]:
    """Every day of the window, first to last (ISO dates)."""
    first, last = dt.date.fromisoformat(str(raw["from_day"])), dt.date.fromisoformat(str(raw["to_day"]))
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def series(
    raw: Mapping[str, Any], series_raw: Mapping[str, Any], prefixes: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """One point per day: ``raw`` is the whole window's stats, ``series_raw``
    the per-day sums of the uncapped metrics, ``prefixes`` each day's own
    stats (needed only when there are capped metrics)."""
    capped = set(capped_metrics(raw))
    by_day: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in series_raw.get("metric_stats") or []:
        by_day[str(row["day"])].append(row)
    points = []
    for day in window_days(raw):
        rows = list(by_day.get(day, []))
        if capped:
            rows += [r for r in prefixes[day].get("metric_stats") or [] if r["metric"] in capped]
        point = analyse({**raw, "to_day": day, "metric_stats": rows})
        points.append({"day": day, "comparisons": point["comparisons"]})
    return points
