"""Every admin function: its URL name, body model, whether it writes, and
what it calls. The app routes these, the OpenAPI document lists them, and
tests derive their cases from them.

A plain action is one registry line: the body's fields become the RPC's
arguments (``key`` → ``experiment_key``). Functions with more logic than
that live in their own module and are registered the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from functions import (
    experiment_plan,
    experiment_results,
    get_experiment,
    rotate_salt,
    set_user_variant,
    whoami,
)
from shared import models
from shared.client import Runtime, call_rpc
from shared.models import rpc_args
from shared.rpcs import rpc

Call = Callable[..., Awaitable[Any]]  # (runtime, body) or, with_caller, (runtime, body, caller)


@dataclass(frozen=True)
class Function:
    name: str
    body: type[BaseModel]
    call: Call
    writes: bool  # changes state (and is audited); a read-only admin may not call it
    summary: str
    with_caller: bool = False  # `call` also receives the shared.auth.Caller


def calls(rpc_name: str, key: str = "experiment_key") -> Call:
    """A plain action: the body as the arguments of one RPC (``key`` renamed
    to `key`), its result as the answer."""
    name = rpc(rpc_name)

    async def call(runtime: Runtime, body: BaseModel) -> Any:
        return await call_rpc(runtime, name, rpc_args(body, key=key))

    return call


def _registry(*functions: Function) -> dict[str, Function]:
    return {function.name: function for function in functions}


FUNCTIONS: dict[str, Function] = _registry(
    Function(
        "admin-create-experiment",
        models.CreateExperiment,
        calls("rec_create_experiment"),
        writes=True,
        summary="Create a draft experiment (random salt unless given; coverage, layer range, settings).",
    ),
    Function(
        "admin-update-experiment",
        models.UpdateExperiment,
        calls("rec_update_experiment"),
        writes=True,
        summary="Change an experiment: variants and layer while draft; coverage and settings until it ends.",
    ),
    Function(
        "admin-activate-experiment",
        models.ExperimentAction,
        calls("rec_activate_experiment"),
        writes=True,
        summary="Start a draft experiment: draft → active.",
    ),
    Function(
        "admin-end-experiment",
        models.EndExperiment,
        calls("rec_end_experiment"),
        writes=True,
        summary="Stop an active experiment (active → ended), optionally with its decision, winner and notes.",
    ),
    Function(
        "admin-record-decision",
        models.RecordDecision,
        calls("rec_record_decision"),
        writes=True,
        summary="Record or change the decision of an ended experiment: shipped (with winner), "
        "rolled_back or inconclusive.",
    ),
    Function(
        "admin-rotate-salt",
        models.RotateSalt,
        rotate_salt.call,
        writes=True,
        summary="New salt for one experiment, or for every one whose rotation is due.",
    ),
    Function(
        "admin-set-user-variant",
        models.SetUserVariant,
        set_user_variant.call,
        writes=True,
        summary="Pin a user to a variant (a manual override).",
    ),
    Function(
        "admin-reset-user-variant",
        models.ResetUserVariant,
        calls("rec_reset_user_variant"),
        writes=True,
        summary="Remove a user's manual override; the assignment rule applies again.",
    ),
    Function(
        "admin-list-experiments",
        models.ListExperiments,
        calls("rec_list_experiments"),
        writes=False,
        summary="Experiments with assignment counts, newest first; filter by status and search, "
        "page with max_rows and offset_rows.",
    ),
    Function(
        "admin-get-experiment",
        models.GetExperiment,
        get_experiment.call,
        writes=False,
        summary="One experiment with its assignment counts and daily metrics series.",
    ),
    Function(
        "admin-experiment-results",
        models.ExperimentResults,
        experiment_results.call,
        writes=False,
        summary="Per-user statistics of an experiment: metrics, comparisons, health, warnings.",
    ),
    Function(
        "admin-experiment-plan",
        models.ExperimentPlan,
        experiment_plan.call,
        writes=False,
        summary="The smallest effect runs of some days would detect (80 % power), per goal metric.",
    ),
    Function(
        "admin-create-metric",
        models.CreateMetric,
        calls("rec_create_metric", key="metric_key"),
        writes=True,
        summary="Define a metric: kind, outcome name (or any), direction, capping.",
    ),
    Function(
        "admin-update-metric",
        models.UpdateMetric,
        calls("rec_update_metric", key="metric_key"),
        writes=True,
        summary="Change a metric's name, description, direction or capping (built-ins are fixed).",
    ),
    Function(
        "admin-list-metrics",
        models.ListMetrics,
        calls("rec_list_metrics"),
        writes=False,
        summary="Every metric definition, built-ins first.",
    ),
    Function(
        "admin-set-experiment-metrics",
        models.SetExperimentMetrics,
        calls("rec_set_experiment_metrics"),
        writes=True,
        summary="Choose an experiment's goals, guardrails and secondary metrics (not once ended).",
    ),
    Function(
        "admin-search-users",
        models.SearchUsers,
        calls("rec_search_users"),
        writes=False,
        summary="Users by exact uuid or e-mail prefix.",
    ),
    Function(
        "admin-user-assignments",
        models.UserAssignments,
        calls("rec_user_assignments"),
        writes=False,
        summary="Every experiment a user is in, and what the rule would give.",
    ),
    Function(
        "admin-audit-log",
        models.AuditLog,
        calls("rec_audit_entries"),
        writes=False,
        summary="Audit entries, newest first, optionally for one experiment.",
    ),
    Function(
        "admin-create-layer",
        models.CreateLayer,
        calls("rec_create_layer", key="layer_key"),
        writes=True,
        summary="Create a layer: experiments in it take disjoint ranges and never share a user.",
    ),
    Function(
        "admin-list-layers",
        models.ListLayers,
        calls("rec_list_layers"),
        writes=False,
        summary="Layers with their salt, their experiments' ranges and the free ranges.",
    ),
    Function(
        "admin-whoami",
        models.WhoAmI,
        whoami.call,
        writes=False,
        summary="Who is calling: the signed-in user's id, e-mail and role (or the service key).",
        with_caller=True,
    ),
)
