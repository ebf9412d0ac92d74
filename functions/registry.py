"""The admin functions by URL name: what the app routes and the OpenAPI doc lists."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from functions import (
    admin_activate_experiment,
    admin_audit_log,
    admin_create_experiment,
    admin_end_experiment,
    admin_get_experiment,
    admin_list_experiments,
    admin_reset_user_variant,
    admin_rotate_salt,
    admin_search_users,
    admin_set_user_variant,
    admin_update_experiment,
    admin_user_assignments,
)
from shared.client import Runtime

Handler = Callable[[Request, Runtime], Awaitable[Response]]


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    body: type[BaseModel]
    handle: Handler
    summary: str


def _spec(module: ModuleType) -> FunctionSpec:
    doc = (module.__doc__ or "").strip()
    return FunctionSpec(module.NAME, module.Body, module.handle, doc.split("\n")[0])


FUNCTIONS: dict[str, FunctionSpec] = {
    spec.name: spec
    for spec in map(
        _spec,
        (
            admin_create_experiment,
            admin_update_experiment,
            admin_activate_experiment,
            admin_end_experiment,
            admin_rotate_salt,
            admin_set_user_variant,
            admin_reset_user_variant,
            admin_list_experiments,
            admin_get_experiment,
            admin_search_users,
            admin_user_assignments,
            admin_audit_log,
        ),
    )
}
