"""admin-rotate-salt: one experiment, or every one that is due.

``{"key", "admin_id", "reassign"?}`` rotates one experiment and answers
``{"key", "salt"}``; the scheduler's ``{"due": true}`` rotates all whose
``salt_rotation_interval`` has elapsed and answers ``{"rotated": [keys]}``.
"""

from typing import Any

from shared.client import Runtime, call_rpc
from shared.models import RotateSalt, rpc_args
from shared.rpcs import rpc


async def call(runtime: Runtime, body: RotateSalt) -> Any:
    args = rpc_args(body, key="experiment_key")
    if args.pop("due", False):
        rotated = await call_rpc(runtime, rpc("rec_rotate_due_salts"), args)
        return {"rotated": rotated}
    salt = await call_rpc(runtime, rpc("rec_rotate_salt"), args)
    return {"key": body.key, "salt": salt}
