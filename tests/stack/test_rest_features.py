"""What `/rest/v1` answers as PostgREST does beyond plain inserts and RPCs:
`select=` on inserts, `columns=`, `Accept: ...object+json` (`.single()`),
and PostgREST's own refusal (PGRST127) for what the local stack does not
serve, with nothing changed."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.stack.conftest import Stack, error, key_headers, rpc

OBJECT = "application/vnd.pgrst.object+json"
REPRESENTATION = "return=representation"


def _impression(user: str, item: str = "item-1") -> dict[str, Any]:
    return {"user_id": user, "item_id": item, "request_context": {"experiments": {}}}


async def _post(
    client: httpx.AsyncClient,
    stack: Stack,
    body: Any,
    *,
    params: dict[str, str] | None = None,
    prefer: str = REPRESENTATION,
    accept: str | None = None,
    table: str = "rec_impressions",
) -> httpx.Response:
    headers = {**key_headers(stack.keys.secret), "Prefer": prefer}
    if accept:
        headers["Accept"] = accept
    return await client.post(f"/rest/v1/{table}", json=body, params=params, headers=headers)


def _count(stack: Stack, user: str) -> int:
    return int(stack.sql("select count(*) from rec_impressions where user_id = %s", [user])[0][0])


async def test_select_names_only_those_columns(client: httpx.AsyncClient, stack: Stack) -> None:
    user = str(uuid.uuid4())
    response = await _post(client, stack, [_impression(user)], params={"select": "id"})
    assert response.status_code == 201
    [row] = response.json()
    assert list(row) == ["id"]
    response = await _post(client, stack, _impression(user), params={"select": ' item_id , "user_id",id'})
    [row] = response.json()
    assert list(row) == ["item_id", "user_id", "id"] and row["user_id"] == user


async def test_select_star_is_every_column(client: httpx.AsyncClient, stack: Stack) -> None:
    response = await _post(client, stack, _impression(str(uuid.uuid4())), params={"select": "*"})
    [row] = response.json()
    assert set(row) == {"id", "user_id", "item_id", "request_context", "created_at"}


async def test_unknown_select_column_is_42703_and_nothing_is_kept(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    user = str(uuid.uuid4())
    response = await _post(client, stack, _impression(user), params={"select": "id,banana"})
    assert response.status_code == 400
    assert error(response) == {
        "code": "42703",
        "message": "column rec_impressions.banana does not exist",
        "details": None,
        "hint": None,
    }
    assert _count(stack, user) == 0


async def test_single_answers_one_object(client: httpx.AsyncClient, stack: Stack) -> None:
    user = str(uuid.uuid4())
    response = await _post(client, stack, _impression(user), params={"select": "id,user_id"}, accept=OBJECT)
    assert response.status_code == 201
    assert response.headers["content-type"] == f"{OBJECT}; charset=utf-8"
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"id", "user_id"} and body["user_id"] == user


@pytest.mark.parametrize("rows", [0, 2])
async def test_single_with_zero_or_many_rows_is_406_pgrst116_and_undone(
    client: httpx.AsyncClient, stack: Stack, rows: int
) -> None:
    user = str(uuid.uuid4())
    body = [_impression(user, f"item-{i}") for i in range(rows)]
    for prefer in (REPRESENTATION, "return=minimal"):
        response = await _post(client, stack, body, prefer=prefer, accept=OBJECT)
        assert response.status_code == 406
        assert error(response) == {
            "code": "PGRST116",
            "message": "Cannot coerce the result to a single JSON object",
            "details": f"The result contains {rows} rows",
            "hint": None,
        }
    assert _count(stack, user) == 0


async def test_columns_param_picks_the_keys_inserted(client: httpx.AsyncClient, stack: Stack) -> None:
    """supabase-js and supabase-py send `columns` for arrays; keys outside it are ignored."""
    user = str(uuid.uuid4())
    rows = [{**_impression(user), "ignored_key": 1}, {"user_id": user, "request_context": {}}]
    response = await _post(client, stack, rows, params={"columns": '"user_id","item_id","request_context"'})
    assert response.status_code == 201, response.text
    assert [r["item_id"] for r in response.json()] == ["item-1", None]
    unknown = await _post(client, stack, rows, params={"columns": "user_id,itemid"})
    assert (unknown.status_code, error(unknown)["code"]) == (400, "PGRST204")


async def _refused(response: httpx.Response, stack: Stack, user: str, feature: str) -> None:
    assert response.status_code == 400, response.text
    body = error(response)
    assert (body["code"], body["message"]) == ("PGRST127", "Feature not implemented")
    assert feature in body["details"]
    assert _count(stack, user) == 0


@pytest.mark.parametrize(
    ("params", "prefer", "feature"),
    [
        ({"on_conflict": "id"}, REPRESENTATION, "on_conflict"),
        ({}, "resolution=merge-duplicates", "resolution=merge-duplicates"),
        ({}, "return=minimal,resolution=ignore-duplicates", "resolution=ignore-duplicates"),
        ({}, "count=exact", "count=exact"),
        ({}, "tx=rollback", "tx=rollback"),
        ({"user_id": "eq.x"}, REPRESENTATION, "user_id"),
        ({"order": "id"}, REPRESENTATION, "order"),
        ({"select": "id,alias:item_id"}, REPRESENTATION, "select="),
        ({"select": "id::text"}, REPRESENTATION, "select="),
        ({"select": "rec_outcomes(*)"}, REPRESENTATION, "select="),
        ({"select": "request_context->experiments"}, REPRESENTATION, "select="),
    ],
    ids=[
        "on-conflict",
        "merge-duplicates",
        "ignore-duplicates",
        "count",
        "tx",
        "filter",
        "order",
        "alias",
        "cast",
        "embed",
        "json-path",
    ],
)
async def test_what_the_stack_does_not_serve_is_pgrst127(
    client: httpx.AsyncClient, stack: Stack, params: dict[str, str], prefer: str, feature: str
) -> None:
    user = str(uuid.uuid4())
    response = await _post(client, stack, _impression(user), params=params, prefer=prefer)
    await _refused(response, stack, user, feature)


@pytest.mark.parametrize("method", ["GET", "HEAD", "PATCH", "DELETE", "PUT"])
async def test_other_table_methods_are_pgrst127(client: httpx.AsyncClient, stack: Stack, method: str) -> None:
    user = str(uuid.uuid4())
    stack.sql("insert into rec_impressions (user_id, item_id) values (%s, 'kept')", [user])
    response = await client.request(
        method,
        "/rest/v1/rec_impressions",
        params={"user_id": f"eq.{user}"},
        json=None if method in ("GET", "HEAD", "DELETE") else {"item_id": "changed"},
        headers=key_headers(stack.keys.secret),
    )
    assert response.status_code == 400
    if method != "HEAD":
        body = error(response)
        assert (body["code"], body["message"]) == ("PGRST127", "Feature not implemented")
        assert method in body["details"]
    assert stack.sql("select item_id from rec_impressions where user_id = %s", [user]) == [("kept",)]


async def test_unknown_method_is_pgrst117(client: httpx.AsyncClient, stack: Stack) -> None:
    response = await client.request(
        "TRACE", "/rest/v1/rec_impressions", headers=key_headers(stack.keys.secret)
    )
    assert response.status_code == 405
    assert error(response)["code"] == "PGRST117"


async def test_table_refusal_still_needs_a_key(client: httpx.AsyncClient) -> None:
    response = await client.get("/rest/v1/rec_impressions")
    assert response.status_code == 401


async def test_strict_handling_refuses_unknown_preferences(client: httpx.AsyncClient, stack: Stack) -> None:
    user = str(uuid.uuid4())
    lenient = await _post(client, stack, _impression(user), prefer="return=minimal, something-else")
    assert lenient.status_code == 201  # PostgREST's default handling ignores it
    strict = await _post(
        client, stack, _impression(user), prefer="handling=strict, something-else, return=nope"
    )
    assert strict.status_code == 400
    assert error(strict) == {
        "code": "PGRST122",
        "message": "Invalid preferences given with handling=strict",
        "details": "Invalid preferences: something-else, return=nope",
        "hint": None,
    }
    assert _count(stack, user) == 1


@pytest.mark.parametrize(
    ("accept", "status", "code"),
    [
        ("text/csv", 400, "PGRST127"),
        ("image/png", 406, "PGRST107"),
        (f"{OBJECT};nulls=stripped", 400, "PGRST127"),
    ],
)
async def test_accept_types_not_served(
    client: httpx.AsyncClient, stack: Stack, accept: str, status: int, code: str
) -> None:
    user = str(uuid.uuid4())
    response = await _post(client, stack, _impression(user), accept=accept)
    assert (response.status_code, error(response)["code"]) == (status, code)
    assert _count(stack, user) == 0


async def test_accept_lists_pick_the_first_served(client: httpx.AsyncClient, stack: Stack) -> None:
    response = await _post(
        client, stack, _impression(str(uuid.uuid4())), accept="image/png, application/json"
    )
    assert response.status_code == 201 and isinstance(response.json(), list)


@pytest.mark.parametrize(
    ("select", "code"),
    [("id,,item_id", "PGRST100"), ('"id', "PGRST100"), ("id;drop", "PGRST100")],
)
async def test_unreadable_select_is_pgrst100(
    client: httpx.AsyncClient, stack: Stack, select: str, code: str
) -> None:
    user = str(uuid.uuid4())
    response = await _post(client, stack, _impression(user), params={"select": select})
    assert response.status_code == 400
    body = error(response)
    assert body["code"] == code and body["message"] == f'"failed to parse select parameter ({select})"'
    assert _count(stack, user) == 0


SET_FUNCTION = """
create table if not exists public.stack_single_log (id serial primary key, n integer);
create or replace function public.stack_rows(n integer) returns setof public.stack_single_log
  language sql as $$
  insert into public.stack_single_log (n) select g from pg_catalog.generate_series(1, n) g returning *
$$;
grant select, insert on public.stack_single_log to service_role;
grant usage on sequence public.stack_single_log_id_seq to service_role;
grant execute on function public.stack_rows(integer) to service_role;
"""


@pytest.fixture(scope="module")
def set_function(stack: Stack) -> None:
    stack.sql(SET_FUNCTION)


@pytest.mark.usefixtures("set_function")
async def test_rpc_single_on_a_set_answers_one_object(client: httpx.AsyncClient, stack: Stack) -> None:
    headers = {**key_headers(stack.keys.secret), "Accept": OBJECT}
    response = await rpc(client, stack, "stack_rows", {"n": 1}, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == f"{OBJECT}; charset=utf-8"
    body = response.json()
    assert isinstance(body, dict) and body["n"] == 1


@pytest.mark.usefixtures("set_function")
@pytest.mark.parametrize("n", [0, 3])
async def test_rpc_single_on_zero_or_many_rows_is_pgrst116_and_undone(
    client: httpx.AsyncClient, stack: Stack, n: int
) -> None:
    before = stack.sql("select count(*) from public.stack_single_log")
    headers = {**key_headers(stack.keys.secret), "Accept": OBJECT}
    response = await rpc(client, stack, "stack_rows", {"n": n}, headers=headers)
    assert response.status_code == 406
    assert error(response)["details"] == f"The result contains {n} rows"
    assert stack.sql("select count(*) from public.stack_single_log") == before


@pytest.mark.parametrize(
    ("method", "params"),
    [("POST", {"select": "login_role"}), ("POST", {"login_role": "eq.x"}), ("GET", {"order": "path"})],
)
async def test_rpc_result_filters_are_pgrst127(
    client: httpx.AsyncClient, stack: Stack, method: str, params: dict[str, str]
) -> None:
    response = await client.request(
        method, "/rest/v1/rpc/stack_session", params=params, headers=key_headers(stack.keys.secret)
    )
    assert response.status_code == 400
    assert error(response)["code"] == "PGRST127"


async def test_rpc_count_preference_is_pgrst127(client: httpx.AsyncClient, stack: Stack) -> None:
    headers = {**key_headers(stack.keys.secret), "Prefer": "count=exact"}
    response = await rpc(client, stack, "stack_session", headers=headers)
    assert (response.status_code, error(response)["code"]) == (400, "PGRST127")
