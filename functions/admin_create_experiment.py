"""admin-create-experiment: create a draft experiment."""

from starlette.requests import Request
from starlette.responses import Response

from shared.auth import check_caller
from shared.client import Runtime, call_rpc
from shared.http import ok, read_model
from shared.models import CreateExperiment, rpc_args

NAME = "admin-create-experiment"
Body = CreateExperiment


async def handle(request: Request, runtime: Runtime) -> Response:
    settings = runtime.settings
    check_caller(request.headers, settings)
    body = await read_model(request, Body, settings.max_body_bytes)
    data = await call_rpc(runtime, "rec_create_experiment", rpc_args(body, key="experiment_key"))
    return ok(data)
