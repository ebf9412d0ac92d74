"""admin-audit-log: audit entries, newest first, optionally for one experiment."""

from starlette.requests import Request
from starlette.responses import Response

from shared.auth import check_caller
from shared.client import Runtime, call_rpc
from shared.http import ok, read_model
from shared.models import AuditLog, rpc_args

NAME = "admin-audit-log"
Body = AuditLog


async def handle(request: Request, runtime: Runtime) -> Response:
    settings = runtime.settings
    check_caller(request.headers, settings)
    body = await read_model(request, Body, settings.max_body_bytes)
    data = await call_rpc(runtime, "rec_audit_entries", rpc_args(body, key="experiment_key"))
    return ok(data)
