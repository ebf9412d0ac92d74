"""The SQL API: every public RPC the migrations define, with its argument
names (PostgREST calls functions by argument name) and who may call it.

One list for the whole project: the functions' registry names its RPCs from
here, and the tests check the database's functions, argument names and
grants against it.
"""

from __future__ import annotations

from dataclasses import dataclass

SERVICE = frozenset({"service_role"})
USERS = frozenset({"authenticated", "service_role"})


@dataclass(frozen=True)
class Rpc:
    name: str
    args: tuple[str, ...]
    callers: frozenset[str] = SERVICE  # API roles granted EXECUTE


# Coverage, layer range and analysis settings, last on create and update.
EXPERIMENT_OPTIONS = (
    "coverage",
    "layer_key",
    "layer_from",
    "layer_to",
    "sequential",
    "sequential_tuning",
    "cuped_days",
)


def _rpcs(*rpcs: Rpc) -> dict[str, Rpc]:
    return {rpc.name: rpc for rpc in rpcs}


RPCS: dict[str, Rpc] = _rpcs(
    # The recommender's hot path; signed-in users only for their own id.
    Rpc("rec_assign_variant", ("experiment_key", "user_id"), USERS),
    Rpc("rec_assign_variants", ("user_id",), USERS),
    Rpc("rec_active_experiments", ()),
    # Admin actions: each writes its audit row in the same transaction.
    Rpc("rec_set_user_variant", ("experiment_key", "user_id", "variant", "admin_id")),
    Rpc("rec_reset_user_variant", ("experiment_key", "user_id", "admin_id")),
    Rpc(
        "rec_create_experiment",
        (
            "experiment_key",
            "variants",
            "admin_id",
            "name",
            "description",
            "salt",
            "salt_rotation_interval",
            *EXPERIMENT_OPTIONS,
        ),
    ),
    Rpc(
        "rec_update_experiment",
        (
            "experiment_key",
            "admin_id",
            "name",
            "description",
            "variants",
            "salt_rotation_interval",
            *EXPERIMENT_OPTIONS,
        ),
    ),
    # Layers: experiments in one layer never share a user.
    Rpc("rec_create_layer", ("layer_key", "admin_id", "name", "description")),
    Rpc("rec_list_layers", ()),
    Rpc("rec_activate_experiment", ("experiment_key", "admin_id")),
    Rpc("rec_end_experiment", ("experiment_key", "admin_id", "decision", "winner", "notes")),
    Rpc("rec_record_decision", ("experiment_key", "admin_id", "decision", "winner", "notes")),
    Rpc("rec_rotate_salt", ("experiment_key", "admin_id", "reassign")),
    Rpc("rec_rotate_due_salts", ("reassign", "admin_id")),
    # The metric catalogue and an experiment's goals / guardrails (audited writes).
    Rpc(
        "rec_create_metric",
        ("metric_key", "kind", "admin_id", "name", "description", "outcome", "direction", "capping"),
    ),
    Rpc("rec_update_metric", ("metric_key", "admin_id", "name", "description", "direction", "capping")),
    Rpc("rec_list_metrics", ()),
    Rpc("rec_set_experiment_metrics", ("experiment_key", "metrics", "admin_id")),
    # Admin reads.
    Rpc("rec_list_experiments", ("status", "search", "max_rows", "offset_rows")),
    Rpc("rec_get_experiment", ("experiment_key",)),
    Rpc("rec_experiment_daily_metrics", ("experiment_key", "from_day", "to_day")),
    Rpc("rec_search_users", ("query", "max_rows")),
    Rpc("rec_user_assignments", ("user_id",)),
    Rpc("rec_audit_entries", ("experiment_key", "max_rows")),
    # Who may sign in to the admin functions (rec_admins).
    Rpc("rec_grant_admin", ("user_id", "role", "admin_id")),
    Rpc("rec_revoke_admin", ("user_id", "admin_id")),
    Rpc("rec_list_admins", ()),
    Rpc("rec_admin_role", ("user_id", "session_id")),
    # The audit rows whose hash chain is broken; none when intact.
    Rpc("rec_verify_audit_chain", ()),
    # The chain read from outside: its head, and its rows with the text each hash covers.
    Rpc("rec_audit_chain_head", ()),
    Rpc("rec_audit_chain_rows", ("after_seq", "max_rows")),
    # Results: per-variant sufficient statistics; shared/results/ does the maths.
    Rpc("rec_experiment_results_stats", ("p_experiment_key", "p_from", "p_to")),
    # Results over time: every prefix of the window, uncapped metrics, one pass.
    Rpc("rec_experiment_results_series_stats", ("p_experiment_key", "p_from", "p_to")),
    # Planning: users per run length and goal metrics' per-user spread.
    Rpc("rec_experiment_plan_stats", ("p_experiment_key", "p_days")),
    # The scheduler: aggregates finished days for metrics and results.
    Rpc("rec_refresh_daily_rollups", ("through_day",)),
    # The same as a procedure committing day by day (CALL; pg_cron, recsys-exp dev).
    Rpc("rec_refresh_daily_rollups_by_day", ("through_day", "rebuilt")),
)


def rpc(name: str) -> str:
    """The name of a catalogued RPC; a typo fails at import, not at call time."""
    if name not in RPCS:
        raise KeyError(f"{name} is not in shared.rpcs.RPCS")
    return name
