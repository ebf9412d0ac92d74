"""The recommender's roles through /rest/v1/rpc with the real supabase client
(docs/reference.md §5): the publishable key (anon) reaches no rec_* RPC at all; a
signed-in user's JWT may assign exactly itself and call nothing else; the
secret key (service_role) sees what the user got."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from postgrest.exceptions import APIError
from supabase import AsyncClient

from tests.e2e.conftest import ADMIN, KEYS, audit_count, new_key, rpc, supabase_client
from tests.stack.conftest import Stack, key_headers

VARIANTS = [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]


@pytest.fixture(scope="module")
def keys(e2e_stack: Stack) -> Iterator[dict[str, str]]:
    """An active and a draft experiment, made through the functions."""
    made = {"active": new_key("e2e-roles"), "draft": new_key("e2e-roles-draft")}
    with httpx.Client(base_url=e2e_stack.url, timeout=30, headers=key_headers(KEYS.secret)) as http:
        for key in made.values():
            r = http.post(
                "/functions/v1/admin-create-experiment",
                json={"key": key, "variants": VARIANTS, "admin_id": ADMIN},
            )
            assert r.status_code == 200, r.text
        r = http.post(
            "/functions/v1/admin-activate-experiment", json={"key": made["active"], "admin_id": ADMIN}
        )
        assert r.status_code == 200, r.text
    yield made


def every_rpc(keys: dict[str, str], user: str) -> dict[str, dict[str, Any]]:
    """Valid arguments for every rec_* RPC of docs/reference.md §3."""
    active, draft = keys["active"], keys["draft"]
    return {
        "rec_assign_variant": {"experiment_key": active, "user_id": user},
        "rec_assign_variants": {"user_id": user},
        "rec_set_user_variant": {
            "experiment_key": active,
            "user_id": user,
            "variant": "a",
            "admin_id": ADMIN,
        },
        "rec_reset_user_variant": {"experiment_key": active, "user_id": user, "admin_id": ADMIN},
        "rec_active_experiments": {},
        "rec_create_experiment": {
            "experiment_key": new_key("e2e-roles-new"),
            "variants": VARIANTS,
            "admin_id": ADMIN,
        },
        "rec_update_experiment": {"experiment_key": active, "admin_id": ADMIN, "name": "taken over"},
        "rec_activate_experiment": {"experiment_key": draft, "admin_id": ADMIN},
        "rec_end_experiment": {"experiment_key": active, "admin_id": ADMIN},
        "rec_record_decision": {"experiment_key": active, "admin_id": ADMIN, "decision": "inconclusive"},
        "rec_rotate_salt": {"experiment_key": active, "admin_id": ADMIN, "reassign": True},
        "rec_rotate_due_salts": {},
        "rec_list_experiments": {},
        "rec_get_experiment": {"experiment_key": active},
        "rec_experiment_daily_metrics": {"experiment_key": active},
        "rec_experiment_results_stats": {"p_experiment_key": active},
        "rec_experiment_results_series_stats": {"p_experiment_key": active},
        "rec_experiment_plan_stats": {"p_experiment_key": active, "p_days": [7]},
        "rec_search_users": {"query": user},
        "rec_user_assignments": {"user_id": user},
        "rec_audit_entries": {},
        "rec_grant_admin": {"user_id": user, "role": "admin", "admin_id": user},
        "rec_revoke_admin": {"user_id": user, "admin_id": user},
        "rec_list_admins": {},
        "rec_admin_role": {"user_id": user},
        "rec_verify_audit_chain": {},
        "rec_audit_chain_head": {},
        "rec_audit_chain_rows": {"after_seq": 0, "max_rows": 10},
        "rec_refresh_daily_rollups": {},
        "rec_create_layer": {"layer_key": new_key("e2e-roles-layer"), "admin_id": ADMIN},
        "rec_list_layers": {},
        "rec_create_metric": {
            "metric_key": new_key("e2e-roles-metric"),
            "kind": "user_rate",
            "admin_id": ADMIN,
        },
        "rec_update_metric": {"metric_key": "engagement_rate", "admin_id": ADMIN, "name": "taken over"},
        "rec_list_metrics": {},
        "rec_set_experiment_metrics": {
            "experiment_key": active,
            "metrics": [{"metric": "engagement_rate", "role": "goal"}],
            "admin_id": ADMIN,
        },
    }


def state(stack: Stack) -> tuple[Any, ...]:
    return (
        audit_count(stack),
        stack.sql("select key, status, name, salt, updated_at from public.rec_experiments order by key"),
        stack.sql(
            "select experiment_id, user_id, variant, assignment_mode"
            " from public.rec_user_experiment_assignments order by 1, 2"
        ),
        stack.sql("select key, name, direction, capping from public.rec_metrics order by key"),
        stack.sql("select experiment_id, metric_id, role from public.rec_experiment_metrics order by 1, 2"),
    )


async def refused(client: AsyncClient, fn: str, args: dict[str, Any]) -> APIError:
    with pytest.raises(APIError) as raised:
        await client.rpc(fn, args).execute()
    return raised.value


def test_the_list_covers_every_rpc(e2e_stack: Stack, keys: dict[str, str]) -> None:
    in_db = {
        row[0]
        for row in e2e_stack.sql(
            "select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
            # procedures (CALL only) are not reachable through PostgREST
            "where n.nspname = 'public' and p.proname like 'rec\\_%' and p.prokind = 'f'"
        )
    }
    assert in_db == set(every_rpc(keys, str(uuid.uuid4())))


@pytest.mark.parametrize("key", ["publishable", "anon_jwt"])
async def test_anon_reaches_no_rpc(e2e_stack: Stack, keys: dict[str, str], key: str) -> None:
    before = state(e2e_stack)
    user = str(uuid.uuid4())
    async with supabase_client(e2e_stack.url, getattr(KEYS, key)) as anon:
        for fn, args in every_rpc(keys, user).items():
            error = await refused(anon, fn, args)
            assert error.code == "42501", (fn, error)
    assert state(e2e_stack) == before


async def test_user_assigns_only_themselves(e2e_stack: Stack, keys: dict[str, str]) -> None:
    me, someone_else = str(uuid.uuid4()), str(uuid.uuid4())
    async with (
        supabase_client(e2e_stack.url, KEYS.publishable, bearer=KEYS.user_jwt(me)) as user,
        supabase_client(e2e_stack.url, KEYS.secret) as service,
    ):
        mine = await rpc(user, "rec_assign_variants", {"user_id": me})
        active = {row["key"] for row in await rpc(service, "rec_active_experiments", {})}
        assert set(mine) == active and mine[keys["active"]] in ("a", "b")
        one = await rpc(user, "rec_assign_variant", {"experiment_key": keys["active"], "user_id": me})
        assert one == mine[keys["active"]]  # sticky, and the same through either RPC
        # the service role sees exactly what the user was given
        stored = await rpc(service, "rec_user_assignments", {"user_id": me})
        assert {r["key"]: r["variant"] for r in stored} == mine
        assert {r["assignment_mode"] for r in stored} == {"auto"}

        before = state(e2e_stack)
        for fn, args in (
            ("rec_assign_variants", {"user_id": someone_else}),
            ("rec_assign_variant", {"experiment_key": keys["active"], "user_id": someone_else}),
        ):
            error = await refused(user, fn, args)
            assert error.code == "42501" and "themselves" in (error.message or ""), error
        for fn, args in every_rpc(keys, me).items():
            if fn in ("rec_assign_variant", "rec_assign_variants"):
                continue
            error = await refused(user, fn, args)
            assert error.code == "42501", (fn, error)
        assert state(e2e_stack) == before


async def test_user_jwt_must_be_ours_and_current(e2e_stack: Stack, keys: dict[str, str]) -> None:
    me = str(uuid.uuid4())
    now = int(time.time())
    claims = {"sub": me, "role": "authenticated", "aud": "authenticated"}
    forged = jwt.encode({**claims, "iat": now, "exp": now + 600}, "x" * 40, algorithm="HS256")
    expired = KEYS.sign({**claims, "iat": now - 7200, "exp": now - 3600})
    for token, code in ((forged, "PGRST301"), (expired, "PGRST303")):
        async with supabase_client(e2e_stack.url, KEYS.publishable, bearer=token) as user:
            error = await refused(user, "rec_assign_variants", {"user_id": me})
            assert error.code == code, error
    assert e2e_stack.sql(
        "select count(*) from public.rec_user_experiment_assignments where user_id = %s", [me]
    ) == [(0,)]
