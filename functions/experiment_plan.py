"""admin-experiment-plan: how small an effect runs of some days would detect.

One RPC returns recent traffic and the goal metrics' per-user sums
(P0002 → 404, days out of range 22023 → 422); shared.results.plan does the maths.
"""

from typing import Any

from shared.client import Runtime, call_rpc
from shared.errors import ApiError
from shared.models import ExperimentPlan, rpc_args
from shared.results.plan import plan
from shared.rpcs import rpc


async def call(runtime: Runtime, body: ExperimentPlan) -> Any:
    args = rpc_args(body, key="p_experiment_key", days="p_days")
    raw = await call_rpc(runtime, rpc("rec_experiment_plan_stats"), args)
    if not isinstance(raw, dict):
        raise ApiError(404, "P0002", f"No experiment with key {body.key!r}.")
    return plan(raw)
