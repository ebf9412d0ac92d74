"""admin-set-user-variant: pin a user to a variant (a manual override).

The RPC answers a variant the experiment does not have with 22023; here that
is a 404 like an unknown experiment: the request names something that does
not exist, it is not malformed (any valid name may be a variant).
"""

from typing import Any

from shared.client import Runtime, call_rpc
from shared.errors import ApiError
from shared.models import SetUserVariant, rpc_args
from shared.rpcs import rpc


async def call(runtime: Runtime, body: SetUserVariant) -> Any:
    try:
        return await call_rpc(runtime, rpc("rec_set_user_variant"), rpc_args(body, key="experiment_key"))
    except ApiError as exc:
        if exc.code == "22023":  # every other argument is checked by the body model
            raise ApiError(404, exc.code, exc.message, exc.details) from None
        raise
