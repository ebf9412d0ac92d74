"""POST/GET /rest/v1/rpc/<fn>: arguments, result shapes, errors and
transactions, against PostgREST's documented behaviour."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.stack.conftest import ADMIN, Stack, error, key_headers, rpc

VARIANTS = [{"name": "control", "weight": 50}, {"name": "treatment", "weight": 50}]


def new_key() -> str:
    return f"stack-{uuid.uuid4().hex[:12]}"


async def create(
    client: httpx.AsyncClient, stack: Stack, *, active: bool = False, **extra: Any
) -> dict[str, Any]:
    key = new_key()
    r = await rpc(
        client,
        stack,
        "rec_create_experiment",
        {"experiment_key": key, "variants": VARIANTS, "admin_id": ADMIN, **extra},
    )
    assert r.status_code == 200, r.text
    if active:
        r = await rpc(client, stack, "rec_activate_experiment", {"experiment_key": key, "admin_id": ADMIN})
        assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


# --- result shapes -------------------------------------------------------


async def test_single_composite_is_one_object_in_column_order(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    # rec_activate_experiment returns the table row (create answers a jsonb object)
    row = await create(client, stack, active=True, name="Blend", salt_rotation_interval="1 day 36 hours")
    assert list(row)[:5] == ["id", "key", "name", "description", "status"]
    assert row["status"] == "active" and row["name"] == "Blend"
    assert row["variants"] == VARIANTS
    uuid.UUID(row["id"])  # uuids are strings
    assert row["salt_rotation_interval"] == "1 day 36:00:00"  # intervals as Postgres text
    assert row["created_at"].endswith("+00:00") and "T" in row["created_at"]
    assert row["ended_at"] is None


async def test_scalar_is_a_bare_json_value(client: httpx.AsyncClient, stack: Stack) -> None:
    key = (await create(client, stack, active=True))["key"]
    r = await rpc(client, stack, "rec_assign_variant", {"experiment_key": key, "user_id": str(uuid.uuid4())})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert r.json() in ("control", "treatment")


async def test_null_scalar_is_json_null(client: httpx.AsyncClient, stack: Stack) -> None:
    key = (await create(client, stack))["key"]  # a draft assigns nobody
    r = await rpc(client, stack, "rec_assign_variant", {"experiment_key": key, "user_id": str(uuid.uuid4())})
    assert r.status_code == 200 and r.content == b"null"


async def test_jsonb_scalar_is_the_json_itself(client: httpx.AsyncClient, stack: Stack) -> None:
    key = (await create(client, stack, active=True))["key"]
    r = await rpc(client, stack, "rec_assign_variants", {"user_id": str(uuid.uuid4())})
    assert r.status_code == 200 and r.json()[key] in ("control", "treatment")


async def test_setof_composite_is_an_array_of_objects(client: httpx.AsyncClient, stack: Stack) -> None:
    key = (await create(client, stack))["key"]
    r = await rpc(client, stack, "rec_list_experiments", {"status": "draft"})
    rows = r.json()
    assert r.status_code == 200
    assert {row["status"] for row in rows} == {"draft"}
    [mine] = [row for row in rows if row["key"] == key]
    assert (mine["status"], mine["assigned_users"]) == ("draft", 0)


async def test_empty_set_is_an_empty_array(client: httpx.AsyncClient, stack: Stack) -> None:
    r = await rpc(client, stack, "rec_user_assignments", {"user_id": str(uuid.uuid4())})
    assert r.status_code == 200 and r.json() == []


async def test_setof_scalar_is_an_array_of_values(client: httpx.AsyncClient, stack: Stack) -> None:
    key = (await create(client, stack, salt_rotation_interval="1 day"))["key"]
    stack.sql("update rec_experiments set created_at = now() - interval '2 days' where key = %s", [key])
    r = await rpc(client, stack, "rec_rotate_due_salts", {"admin_id": ADMIN})
    assert r.status_code == 200 and r.json() == [key]
    assert (await rpc(client, stack, "rec_rotate_due_salts")).json() == []


async def test_void_is_204_with_no_body(client: httpx.AsyncClient, stack: Stack) -> None:
    r = await rpc(client, stack, "stack_void", {"note": "x"})
    assert r.status_code == 204 and r.content == b""


async def test_null_row_is_an_object_of_nulls_as_in_postgrest(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    body = (await rpc(client, stack, "stack_null_row")).json()
    assert body["id"] is None and body["action"] is None


async def test_unnamed_json_parameter_receives_the_whole_body(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    assert (await rpc(client, stack, "stack_echo", {"any": ["thing"]})).json() == {"any": ["thing"]}
    assert (await rpc(client, stack, "stack_echo", [1, "two"])).json() == [1, "two"]


# --- arguments -----------------------------------------------------------


async def test_defaulted_arguments_may_be_left_out(client: httpx.AsyncClient, stack: Stack) -> None:
    r = await rpc(client, stack, "rec_list_experiments", {})
    assert r.status_code == 200
    assert sorted(row["key"] for row in r.json()) == sorted(
        k for (k,) in stack.sql("select key from rec_experiments")
    )


async def test_missing_required_argument_is_pgrst202(client: httpx.AsyncClient, stack: Stack) -> None:
    r = await rpc(client, stack, "rec_assign_variant", {"user_id": str(uuid.uuid4())})
    assert r.status_code == 404
    assert error(r) == {
        "code": "PGRST202",
        "message": "Could not find the function public.rec_assign_variant(user_id) in the schema cache",
        "details": "Searched for the function public.rec_assign_variant with parameter user_id "
        "or with a single unnamed json/jsonb parameter, but no matches were found "
        "in the schema cache.",
        "hint": "Perhaps you meant to call the function public.rec_assign_variant(experiment_key, user_id)",
    }


async def test_unknown_argument_is_pgrst202_with_sorted_names(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    r = await rpc(client, stack, "rec_get_experiment", {"experiment_key": "x", "bogus": 1})
    body = error(r)
    assert r.status_code == 404 and body["code"] == "PGRST202"
    assert body["message"] == (
        "Could not find the function public.rec_get_experiment(bogus, experiment_key) in the schema cache"
    )
    assert "with parameters bogus, experiment_key or" in body["details"]


async def test_unknown_function_is_pgrst202(client: httpx.AsyncClient, stack: Stack) -> None:
    r = await rpc(client, stack, "rec_no_such_function")
    body = error(r)
    assert r.status_code == 404
    assert body["message"] == (
        "Could not find the function public.rec_no_such_function without parameters in the schema cache"
    )


async def test_function_created_later_is_found_after_one_reload(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    assert (await rpc(client, stack, "rec_list_experiments")).status_code == 200  # cache loaded
    name = f"stack_late_{uuid.uuid4().hex[:8]}"
    stack.sql(
        f"create function public.{name}(x integer) returns integer language sql "
        f"as $$ select x * 2 $$; grant execute on function public.{name}(integer) "
        "to service_role"
    )
    assert (await rpc(client, stack, name, {"x": 21})).json() == 42


async def test_ambiguous_overload_is_pgrst203(client: httpx.AsyncClient, stack: Stack) -> None:
    r = await rpc(client, stack, "stack_overloaded", {"a": 1})
    assert r.status_code == 300 and error(r)["code"] == "PGRST203"


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"42"])
async def test_body_that_is_not_an_object_is_pgrst102(
    client: httpx.AsyncClient, stack: Stack, body: bytes
) -> None:
    r = await client.post(
        "/rest/v1/rpc/rec_list_experiments", content=body, headers=key_headers(stack.keys.secret)
    )
    assert r.status_code == 400 and error(r)["code"] == "PGRST102"


@pytest.mark.parametrize(
    "body", [b"{not json", b"[" * 100_000 + b"]" * 100_000], ids=["malformed", "too-deep"]
)
async def test_invalid_json_is_pgrst102(client: httpx.AsyncClient, stack: Stack, body: bytes) -> None:
    r = await client.post(
        "/rest/v1/rpc/rec_list_experiments", content=body, headers=key_headers(stack.keys.secret)
    )
    assert r.status_code == 400 and error(r)["code"] == "PGRST102"


async def test_non_object_body_to_an_unknown_function_is_pgrst202(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    r = await rpc(client, stack, "rec_no_such_function", [1])
    assert r.status_code == 404 and error(r)["code"] == "PGRST202"


async def test_casts_are_postgres_own(client: httpx.AsyncClient, stack: Stack) -> None:
    bad_interval = await rpc(
        client,
        stack,
        "rec_create_experiment",
        {
            "experiment_key": new_key(),
            "variants": VARIANTS,
            "admin_id": ADMIN,
            "salt_rotation_interval": "every tuesday",
        },
    )
    assert bad_interval.status_code == 400
    assert error(bad_interval)["code"] == "22007"
    assert "every tuesday" in bad_interval.json()["message"]
    bad_uuid = await rpc(
        client, stack, "rec_assign_variant", {"experiment_key": "x", "user_id": "not-a-uuid"}
    )
    assert bad_uuid.status_code == 400 and error(bad_uuid)["code"] == "22P02"


async def test_get_takes_query_string_arguments(client: httpx.AsyncClient, stack: Stack) -> None:
    key = (await create(client, stack))["key"]
    r = await client.get(
        "/rest/v1/rpc/rec_get_experiment",
        params={"experiment_key": key},
        headers=key_headers(stack.keys.secret),
    )
    assert r.status_code == 200 and r.json()["key"] == key


async def test_get_runs_read_only_so_writes_are_405(client: httpx.AsyncClient, stack: Stack) -> None:
    key = (await create(client, stack))["key"]
    r = await client.get(
        "/rest/v1/rpc/rec_activate_experiment",
        params={"experiment_key": key, "admin_id": ADMIN},
        headers=key_headers(stack.keys.secret),
    )
    assert r.status_code == 405 and error(r)["code"] == "25006"
    still = await rpc(client, stack, "rec_get_experiment", {"experiment_key": key})
    assert still.json()["status"] == "draft"


async def test_other_methods_are_pgrst101(client: httpx.AsyncClient, stack: Stack) -> None:
    r = await client.put("/rest/v1/rpc/rec_list_experiments", json={}, headers=key_headers(stack.keys.secret))
    assert r.status_code == 405 and error(r)["code"] == "PGRST101"


async def test_other_paths_are_pgrst125(client: httpx.AsyncClient, stack: Stack) -> None:
    r = await client.get("/rest/v1/rec_experiments/extra", headers=key_headers(stack.keys.secret))
    assert r.status_code == 404 and error(r)["code"] == "PGRST125"


async def test_oversized_body_is_413(client: httpx.AsyncClient, stack: Stack) -> None:
    r = await client.post(
        "/rest/v1/rpc/stack_echo",
        content=b"[" + b"1," * 600_000 + b"1]",
        headers=key_headers(stack.keys.secret),
    )
    assert r.status_code == 413


# --- errors: SQLSTATE -> HTTP, as PostgREST maps them ---------------------


async def test_sqlstates_of_the_contract(client: httpx.AsyncClient, stack: Stack) -> None:
    key = (await create(client, stack, active=True))["key"]
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        # PostgREST sends 500 for the P0 class except P0001, and for class 55.
        ("rec_get_experiment", {"experiment_key": "stack-missing"}, 500, "P0002"),
        (
            "rec_create_experiment",
            {"experiment_key": "Bad Key!", "variants": VARIANTS, "admin_id": ADMIN},
            400,
            "22023",
        ),
        (
            "rec_create_experiment",
            {"experiment_key": key, "variants": VARIANTS, "admin_id": ADMIN},
            409,
            "23505",
        ),
        ("rec_activate_experiment", {"experiment_key": key, "admin_id": ADMIN}, 500, "55000"),
    ]
    for fn, args, status, code in cases:
        r = await rpc(client, stack, fn, args)
        body = error(r)
        assert (r.status_code, body["code"]) == (status, code), (fn, r.text)
        assert body["message"]


async def test_error_body_carries_detail_and_hint(client: httpx.AsyncClient, stack: Stack) -> None:
    body = error(await rpc(client, stack, "rec_get_experiment", {"experiment_key": "stack-nope"}))
    assert body["message"] == "experiment 'stack-nope' does not exist"
    assert body["hint"] == "Check the key with rec_list_experiments()."
    assert body["details"] is None


@pytest.mark.parametrize(
    ("code", "status"), [("P0001", 400), ("PT402", 402), ("23503", 409), ("22023", 400), ("40001", 500)]
)
async def test_an_error_rolls_back_the_whole_call(
    client: httpx.AsyncClient, stack: Stack, code: str, status: int
) -> None:
    before = stack.sql("select count(*) from rec_audit_log where action = 'stack-test'")
    r = await rpc(client, stack, "stack_fail_after_write", {"code": code})
    assert (r.status_code, error(r)["code"]) == (status, code)
    assert stack.sql("select count(*) from rec_audit_log where action = 'stack-test'") == before


async def test_success_commits(client: httpx.AsyncClient, stack: Stack) -> None:
    key = (await create(client, stack))["key"]
    audit = stack.sql(
        "select action from rec_audit_log l join rec_experiments x "
        "on x.id = l.experiment_id where x.key = %s",
        [key],
    )
    assert audit == [("create_experiment",)]


# --- the session a call runs in ------------------------------------------


async def test_request_settings_are_set_per_transaction(client: httpx.AsyncClient, stack: Stack) -> None:
    r = await client.post(
        "/rest/v1/rpc/stack_session",
        json={},
        headers={**key_headers(stack.keys.secret), "User-Agent": "stack-test"},
    )
    [row] = r.json()
    assert row["acting_role"] == "service_role"
    assert row["claims"] == {"role": "service_role"}
    assert (row["method"], row["path"]) == ("POST", "/rpc/stack_session")
    assert row["read_only"] == "off" and row["search_path"] == "public, extensions"
    assert row["user_agent"] == "stack-test"
    got = await client.get("/rest/v1/rpc/stack_session", headers=key_headers(stack.keys.secret))
    assert got.json()[0]["read_only"] == "on" and got.json()[0]["method"] == "GET"


async def test_logs_in_as_authenticator_not_a_superuser(client: httpx.AsyncClient, stack: Stack) -> None:
    if stack.rest.login_role != "authenticator":
        pytest.skip(f"authenticator cannot log in on this server (using {stack.rest.login_role})")
    [row] = (await rpc(client, stack, "stack_session")).json()
    assert row["login_role"] == "authenticator"


async def test_head_runs_the_call_without_a_body(client: httpx.AsyncClient, stack: Stack) -> None:
    r = await client.head("/rest/v1/rpc/rec_list_experiments", headers=key_headers(stack.keys.secret))
    assert r.status_code == 200 and r.content == b""


async def test_browser_preflight_is_answered(client: httpx.AsyncClient, stack: Stack) -> None:
    r = await client.options(
        "/rest/v1/rpc/rec_assign_variant",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "apikey, authorization, content-type",
        },
    )
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
