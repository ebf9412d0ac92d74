"""admin-user-assignments: every experiment one user is in, and why."""

from starlette.requests import Request
from starlette.responses import Response

from shared.auth import check_caller
from shared.client import Runtime, call_rpc
from shared.http import ok, read_model
from shared.models import UserAssignments, rpc_args

NAME = "admin-user-assignments"
Body = UserAssignments


async def handle(request: Request, runtime: Runtime) -> Response:
    settings = runtime.settings
    check_caller(request.headers, settings)
    body = await read_model(request, Body, settings.max_body_bytes)
    data = await call_rpc(runtime, "rec_user_assignments", rpc_args(body))
    return ok(data)
