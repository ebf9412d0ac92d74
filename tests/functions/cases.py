"""One valid call per function: the body, the RPC it must make, and the answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared import results
from shared.results.plan import plan
from tests.functions.conftest import ADMIN_ID, USER_ID

VARIANTS = [{"name": "control", "weight": 50}, {"name": "treatment", "weight": 50}]
# What rec_experiment_results_stats answers: sums per variant over analysed users.
RESULTS_STATS = {
    "key": "home-feed",
    "from_day": "2026-01-10",
    "to_day": "2026-01-11",
    "variants": VARIANTS,
    "stats": [
        {
            "variant": "control",
            "users": 3,
            "sum_n": 6,
            "sum_e": 3,
            "sum_o": 4,
            "sum_nn": 14,
            "sum_ee": 5,
            "sum_oo": 8,
            "sum_ne": 7,
            "engaged_users": 2,
        },
        {
            "variant": "treatment",
            "users": 2,
            "sum_n": 6,
            "sum_e": 4,
            "sum_o": 5,
            "sum_nn": 20,
            "sum_ee": 10,
            "sum_oo": 17,
            "sum_ne": 14,
            "engaged_users": 2,
        },
    ],
    "health": {
        "assigned_users": 8,
        "exposed_users": 7,
        "analysed_users": 5,
        "overridden_users": 1,
        "crossover_users": 1,
        "untagged_impressions": 2,
    },
}
# What rec_experiment_plan_stats answers: recent users and goal metrics' sums.
PLAN_STATS = {
    "key": "home-feed",
    "variants": VARIANTS,
    "last_day": "2026-01-11",
    "settings": {"sequential": False, "sequential_tuning": 5000, "cuped_days": 0},
    "eligible_share": 0.5,
    "users": [{"days": 7, "users": 4000}, {"days": 14, "users": 6000}],
    "metric_definitions": [
        {
            "metric": "outcomes_per_user",
            "kind": "per_user_count",
            "outcome": None,
            "direction": "increase",
            "capping": None,
            "role": "goal",
        }
    ],
    "metric_stats": [
        {
            "metric": "outcomes_per_user",
            "users": 8000,
            "sum_n": 40000,
            "sum_nn": 400000,
            "sum_a": 4000,
            "sum_aa": 12000,
            "sum_an": 30000,
        }
    ],
}
LAYER = {"key": "feed", "name": "Home feed", "description": None, "salt": "layer-salt"}
METRIC = {
    "key": "likes",
    "kind": "per_user_count",
    "outcome": "like",
    "direction": "increase",
    "capping": 0.999,
}
EXPERIMENT = {
    "id": "0d6f5c1e-3b2a-4f19-8e7d-6c5b4a392817",
    "key": "home-feed",
    "status": "draft",
    "variants": VARIANTS,
}


@dataclass(frozen=True)
class Case:
    name: str
    body: dict[str, Any]
    rpc: str
    args: dict[str, Any]
    result: Any  # what PostgREST answers
    data: Any  # what the function answers under "data"

    @property
    def id(self) -> str:
        return self.name


CASES = [
    Case(
        "admin-create-experiment",
        {"key": "home-feed", "variants": VARIANTS, "admin_id": ADMIN_ID},
        "rec_create_experiment",
        {"experiment_key": "home-feed", "variants": VARIANTS, "admin_id": ADMIN_ID},
        EXPERIMENT,
        EXPERIMENT,
    ),
    Case(
        "admin-update-experiment",
        {"key": "home-feed", "admin_id": ADMIN_ID, "name": "Home feed"},
        "rec_update_experiment",
        {"experiment_key": "home-feed", "admin_id": ADMIN_ID, "name": "Home feed"},
        {**EXPERIMENT, "name": "Home feed"},
        {**EXPERIMENT, "name": "Home feed"},
    ),
    Case(
        "admin-activate-experiment",
        {"key": "home-feed", "admin_id": ADMIN_ID},
        "rec_activate_experiment",
        {"experiment_key": "home-feed", "admin_id": ADMIN_ID},
        {**EXPERIMENT, "status": "active"},
        {**EXPERIMENT, "status": "active"},
    ),
    Case(
        "admin-end-experiment",
        {
            "key": "home-feed",
            "admin_id": ADMIN_ID,
            "decision": "shipped",
            "winner": "treatment",
            "notes": "+3%",
        },
        "rec_end_experiment",
        {
            "experiment_key": "home-feed",
            "admin_id": ADMIN_ID,
            "decision": "shipped",
            "winner": "treatment",
            "notes": "+3%",
        },
        {**EXPERIMENT, "status": "ended", "decision": "shipped", "winner": "treatment"},
        {**EXPERIMENT, "status": "ended", "decision": "shipped", "winner": "treatment"},
    ),
    Case(
        "admin-record-decision",
        {"key": "home-feed", "admin_id": ADMIN_ID, "decision": "rolled_back", "notes": "guardrail"},
        "rec_record_decision",
        {
            "experiment_key": "home-feed",
            "admin_id": ADMIN_ID,
            "decision": "rolled_back",
            "notes": "guardrail",
        },
        {**EXPERIMENT, "status": "ended", "decision": "rolled_back"},
        {**EXPERIMENT, "status": "ended", "decision": "rolled_back"},
    ),
    Case(
        "admin-rotate-salt",
        {"key": "home-feed", "admin_id": ADMIN_ID},
        "rec_rotate_salt",
        {"experiment_key": "home-feed", "admin_id": ADMIN_ID, "reassign": False},
        "n3w-salt",
        {"key": "home-feed", "salt": "n3w-salt"},
    ),
    Case(
        "admin-set-user-variant",
        {"key": "home-feed", "user_id": USER_ID, "variant": "treatment", "admin_id": ADMIN_ID},
        "rec_set_user_variant",
        {
            "experiment_key": "home-feed",
            "user_id": USER_ID,
            "variant": "treatment",
            "admin_id": ADMIN_ID,
        },
        "treatment",
        "treatment",
    ),
    Case(
        "admin-reset-user-variant",
        {"key": "home-feed", "user_id": USER_ID, "admin_id": ADMIN_ID},
        "rec_reset_user_variant",
        {"experiment_key": "home-feed", "user_id": USER_ID, "admin_id": ADMIN_ID},
        "control",
        "control",
    ),
    Case(
        "admin-list-experiments",
        {"status": "active", "search": "feed", "max_rows": 20, "offset_rows": 40},
        "rec_list_experiments",
        {"status": "active", "search": "feed", "max_rows": 20, "offset_rows": 40},
        [EXPERIMENT],
        [EXPERIMENT],
    ),
    Case(
        "admin-get-experiment",
        {"key": "home-feed"},
        "rec_get_experiment",
        {"experiment_key": "home-feed"},
        EXPERIMENT,
        None,  # two RPCs: checked in its own test
    ),
    Case(
        "admin-experiment-results",
        {"key": "home-feed", "from_day": "2026-01-10", "to_day": "2026-01-11"},
        "rec_experiment_results_stats",
        {"p_experiment_key": "home-feed", "p_from": "2026-01-10", "p_to": "2026-01-11"},
        RESULTS_STATS,
        results.analyse(RESULTS_STATS),
    ),
    Case(
        "admin-experiment-plan",
        {"key": "home-feed", "days": [7, 14]},
        "rec_experiment_plan_stats",
        {"p_experiment_key": "home-feed", "p_days": [7, 14]},
        PLAN_STATS,
        plan(PLAN_STATS),
    ),
    Case(
        "admin-create-metric",
        {"key": "likes", "kind": "per_user_count", "admin_id": ADMIN_ID, "outcome": "like", "capping": 0.999},
        "rec_create_metric",
        {
            "metric_key": "likes",
            "kind": "per_user_count",
            "admin_id": ADMIN_ID,
            "outcome": "like",
            "capping": 0.999,
        },
        METRIC,
        METRIC,
    ),
    Case(
        "admin-update-metric",
        {"key": "likes", "admin_id": ADMIN_ID, "direction": "decrease", "capping": 0},
        "rec_update_metric",
        {"metric_key": "likes", "admin_id": ADMIN_ID, "direction": "decrease", "capping": 0},
        METRIC,
        METRIC,
    ),
    Case("admin-list-metrics", {}, "rec_list_metrics", {}, [METRIC], [METRIC]),
    Case(
        "admin-set-experiment-metrics",
        {"key": "home-feed", "metrics": [{"metric": "likes", "role": "goal"}], "admin_id": ADMIN_ID},
        "rec_set_experiment_metrics",
        {
            "experiment_key": "home-feed",
            "metrics": [{"metric": "likes", "role": "goal"}],
            "admin_id": ADMIN_ID,
        },
        {"experiment_key": "home-feed", "metrics": [{"metric": "likes", "role": "goal"}]},
        {"experiment_key": "home-feed", "metrics": [{"metric": "likes", "role": "goal"}]},
    ),
    Case(
        "admin-search-users",
        {"query": "ann@", "max_rows": 5},
        "rec_search_users",
        {"query": "ann@", "max_rows": 5},
        [{"user_id": USER_ID, "email": "ann@example.com"}],
        [{"user_id": USER_ID, "email": "ann@example.com"}],
    ),
    Case(
        "admin-user-assignments",
        {"user_id": USER_ID},
        "rec_user_assignments",
        {"user_id": USER_ID},
        [{"experiment_key": "home-feed", "variant": "control"}],
        [{"experiment_key": "home-feed", "variant": "control"}],
    ),
    Case(
        "admin-create-layer",
        {"key": "feed", "admin_id": ADMIN_ID, "name": "Home feed"},
        "rec_create_layer",
        {"layer_key": "feed", "admin_id": ADMIN_ID, "name": "Home feed"},
        LAYER,
        LAYER,
    ),
    Case(
        "admin-list-layers",
        {},
        "rec_list_layers",
        {},
        [{**LAYER, "experiments": [], "free": [[0, 10000]]}],
        [{**LAYER, "experiments": [], "free": [[0, 10000]]}],
    ),
    Case(
        "admin-audit-log",
        {"key": "home-feed", "max_rows": 10},
        "rec_audit_entries",
        {"experiment_key": "home-feed", "max_rows": 10},
        [{"action": "create", "actor_id": ADMIN_ID}],
        [{"action": "create", "actor_id": ADMIN_ID}],
    ),
]
NAMES = [case.name for case in CASES]
