"""admin-set-user-variant: pin a user to a variant (manual override)."""

from starlette.requests import Request
from starlette.responses import Response

from shared.auth import check_caller
from shared.client import Runtime, call_rpc
from shared.http import ok, read_model
from shared.models import SetUserVariant, rpc_args

NAME = "admin-set-user-variant"
Body = SetUserVariant


async def handle(request: Request, runtime: Runtime) -> Response:
    settings = runtime.settings
    check_caller(request.headers, settings)
    body = await read_model(request, Body, settings.max_body_bytes)
    data = await call_rpc(runtime, "rec_set_user_variant", rpc_args(body, key="experiment_key"))
    return ok(data)
