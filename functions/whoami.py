"""admin-whoami: who the caller is, for a dashboard's header.

A signed-in admin gets ``{"user_id", "email", "role"}`` with role ``viewer``
or ``admin``; a service-level key gets ``role: "service"`` and no user.
"""

from typing import Any

from shared.auth import Caller
from shared.client import Runtime
from shared.models import WhoAmI


async def call(runtime: Runtime, body: WhoAmI, caller: Caller) -> Any:
    return {"user_id": caller.user_id, "email": caller.email, "role": caller.role}
