"""admin-rotate-salt: new salt for one experiment, or for every one that is due.

``{"key", "admin_id", "reassign"?}`` rotates one experiment and answers
``{"key", "salt"}``; the scheduler's ``{"due": true}`` rotates all whose
``salt_rotation_interval`` has elapsed and answers ``{"rotated": [keys]}``.
"""

from starlette.requests import Request
from starlette.responses import Response

from shared.auth import check_caller
from shared.client import Runtime, call_rpc
from shared.http import ok, read_model
from shared.models import RotateSalt, rpc_args

NAME = "admin-rotate-salt"
Body = RotateSalt


async def handle(request: Request, runtime: Runtime) -> Response:
    settings = runtime.settings
    check_caller(request.headers, settings)
    body = await read_model(request, Body, settings.max_body_bytes)
    args = rpc_args(body, key="experiment_key")
    if args.pop("due", False):
        rotated = await call_rpc(runtime, "rec_rotate_due_salts", args)
        return ok({"rotated": rotated})
    salt = await call_rpc(runtime, "rec_rotate_salt", args)
    return ok({"key": body.key, "salt": salt})
