"""admin-experiment-results: whether a variant beat the baseline.

One RPC returns per-variant sums over analysed users and the health counts
(P0002 → 404, a reversed window 22023 → 422); shared.results does the maths.
With ``series``, one more RPC returns every prefix [from_day, d] of the
uncapped metrics in one pass; capped metrics take one results call per day.
"""

import asyncio
from typing import Any

from shared import results
from shared.client import Runtime, call_rpc
from shared.errors import ApiError
from shared.models import ExperimentResults, rpc_args
from shared.results.series import capped_metrics, series, window_days
from shared.rpcs import rpc


async def call(runtime: Runtime, body: ExperimentResults) -> Any:
    args = rpc_args(body, key="p_experiment_key", from_day="p_from", to_day="p_to")
    args.pop("series", None)
    raw = await call_rpc(runtime, rpc("rec_experiment_results_stats"), args)
    if not isinstance(raw, dict):
        raise ApiError(404, "P0002", f"No experiment with key {body.key!r}.")
    answer = results.analyse(raw)
    if body.series:
        answer["series"] = await _series(runtime, raw)
    return answer


async def _series(runtime: Runtime, raw: dict[str, Any]) -> list[dict[str, Any]]:
    window = {"p_experiment_key": raw["key"], "p_from": raw["from_day"], "p_to": raw["to_day"]}
    per_day = await call_rpc(runtime, rpc("rec_experiment_results_series_stats"), window)
    prefixes: dict[str, Any] = {}
    if capped_metrics(raw):
        days = window_days(raw)
        found = await asyncio.gather(
            *(call_rpc(runtime, rpc("rec_experiment_results_stats"), {**window, "p_to": d}) for d in days)
        )
        prefixes = dict(zip(days, found, strict=True))
    return series(raw, per_day, prefixes)
