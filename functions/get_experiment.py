"""admin-get-experiment: one experiment with its counts and daily metrics series.

Two RPCs, in order: an unknown key stops at the first (P0002 → 404). A
from_day after to_day is an empty range, answered without the second.
"""

from typing import Any

from shared.client import Runtime, call_rpc
from shared.errors import ApiError
from shared.models import GetExperiment, rpc_args
from shared.rpcs import rpc


async def call(runtime: Runtime, body: GetExperiment) -> Any:
    experiment = await call_rpc(runtime, rpc("rec_get_experiment"), {"experiment_key": body.key})
    if not isinstance(experiment, dict):
        raise ApiError(404, "P0002", f"No experiment with key {body.key!r}.")
    if body.empty_range:
        return {**experiment, "daily_metrics": []}
    daily = await call_rpc(runtime, rpc("rec_experiment_daily_metrics"), rpc_args(body, key="experiment_key"))
    return {**experiment, "daily_metrics": daily}
