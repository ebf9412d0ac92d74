"""admin-experiment-results: whether a variant beat the baseline.

One RPC returns per-variant sums over analysed users and the health counts
(P0002 → 404, a reversed window 22023 → 422); shared.results does the maths.
"""

from typing import Any

from shared import results
from shared.client import Runtime, call_rpc
from shared.errors import ApiError
from shared.models import ExperimentResults, rpc_args
from shared.rpcs import rpc


async def call(runtime: Runtime, body: ExperimentResults) -> Any:
    args = rpc_args(body, key="p_experiment_key", from_day="p_from", to_day="p_to")
    raw = await call_rpc(runtime, rpc("rec_experiment_results_stats"), args)
    if not isinstance(raw, dict):
        raise ApiError(404, "P0002", f"No experiment with key {body.key!r}.")
    return results.analyse(raw)
