"""admin-end-experiment: stop an experiment (active → ended)."""

from starlette.requests import Request
from starlette.responses import Response

from shared.auth import check_caller
from shared.client import Runtime, call_rpc
from shared.http import ok, read_model
from shared.models import ExperimentAction, rpc_args

NAME = "admin-end-experiment"
Body = ExperimentAction


async def handle(request: Request, runtime: Runtime) -> Response:
    settings = runtime.settings
    check_caller(request.headers, settings)
    body = await read_model(request, Body, settings.max_body_bytes)
    data = await call_rpc(runtime, "rec_end_experiment", rpc_args(body, key="experiment_key"))
    return ok(data)
