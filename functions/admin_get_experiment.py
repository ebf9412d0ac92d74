"""admin-get-experiment: one experiment with its counts and daily metrics series.

Two RPCs, in order: an unknown key stops at the first (P0002 → 404).
"""

from starlette.requests import Request
from starlette.responses import Response

from shared.auth import check_caller
from shared.client import Runtime, call_rpc
from shared.errors import ApiError
from shared.http import ok, read_model
from shared.models import GetExperiment, rpc_args

NAME = "admin-get-experiment"
Body = GetExperiment


async def handle(request: Request, runtime: Runtime) -> Response:
    settings = runtime.settings
    check_caller(request.headers, settings)
    body = await read_model(request, Body, settings.max_body_bytes)
    experiment = await call_rpc(runtime, "rec_get_experiment", {"experiment_key": body.key})
    if not isinstance(experiment, dict):
        raise ApiError(404, "P0002", f"No experiment with key {body.key!r}.")
    metrics_args = rpc_args(body, key="experiment_key")
    daily = await call_rpc(runtime, "rec_experiment_daily_metrics", metrics_args)
    return ok({**experiment, "daily_metrics": daily})
