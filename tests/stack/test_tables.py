"""`POST /rest/v1/<table>`: the inserts a recommender makes, with PostgREST's
answers (status, body, `Prefer: return=...`, errors) and the caller's grants."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.stack.conftest import Stack, error, key_headers

REPRESENTATION = {"Prefer": "return=representation"}


def _impression(user: str, **extra: Any) -> dict[str, Any]:
    return {"user_id": user, "item_id": "item-1", "request_context": {"experiments": {"x": "a"}}, **extra}


async def _insert(
    client: httpx.AsyncClient,
    stack: Stack,
    table: str,
    body: Any,
    *,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
) -> httpx.Response:
    sent = {**key_headers(stack.keys.secret), **(headers or {})}
    if content is not None:
        sent["content-type"] = "application/json"
        return await client.post(f"/rest/v1/{table}", content=content, headers=sent)
    return await client.post(f"/rest/v1/{table}", json=body, headers=sent)


async def test_one_object_with_representation_returns_the_row(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    user = str(uuid.uuid4())
    response = await _insert(client, stack, "rec_impressions", _impression(user), headers=REPRESENTATION)
    assert response.status_code == 201
    assert response.headers["content-type"].startswith("application/json")
    [row] = response.json()
    assert set(row) == {"id", "user_id", "item_id", "request_context", "created_at"}
    assert (row["user_id"], row["item_id"], row["request_context"]) == (
        user,
        "item-1",
        {"experiments": {"x": "a"}},
    )
    assert stack.sql("select user_id::text from rec_impressions where id = %s", [row["id"]]) == [(user,)]


async def test_array_with_minimal_returns_no_body(client: httpx.AsyncClient, stack: Stack) -> None:
    user = str(uuid.uuid4())
    rows = [_impression(user, item_id=f"item-{i}") for i in range(3)]
    for prefer in ({"Prefer": "return=minimal"}, {}):  # minimal is also the default
        response = await _insert(client, stack, "rec_impressions", rows, headers=prefer)
        assert (response.status_code, response.content) == (201, b"")
    stored = stack.sql("select item_id from rec_impressions where user_id = %s order by item_id", [user])
    assert stored == [("item-0",), ("item-0",), ("item-1",), ("item-1",), ("item-2",), ("item-2",)]


async def test_later_objects_missing_a_key_insert_null(client: httpx.AsyncClient, stack: Stack) -> None:
    user = str(uuid.uuid4())
    rows = [_impression(user), {"user_id": user, "request_context": {}}]
    response = await _insert(client, stack, "rec_impressions", rows, headers=REPRESENTATION)
    assert response.status_code == 201
    assert [r["item_id"] for r in response.json()] == ["item-1", None]


async def test_outcome_for_an_impression(client: httpx.AsyncClient, stack: Stack) -> None:
    user = str(uuid.uuid4())
    [imp] = (
        await _insert(client, stack, "rec_impressions", _impression(user), headers=REPRESENTATION)
    ).json()
    outcome = {"impression_id": imp["id"], "user_id": user, "outcome": "click"}
    response = await _insert(client, stack, "rec_outcomes", outcome, headers=REPRESENTATION)
    assert response.status_code == 201
    [row] = response.json()
    assert (row["impression_id"], row["outcome"], row["value"]) == (imp["id"], "click", 1)


async def test_unknown_table_is_404_pgrst205(client: httpx.AsyncClient, stack: Stack) -> None:
    response = await _insert(client, stack, "rec_impression", _impression(str(uuid.uuid4())))
    assert response.status_code == 404
    assert error(response) == {
        "code": "PGRST205",
        "message": "Could not find the table 'public.rec_impression' in the schema cache",
        "details": None,
        "hint": "Perhaps you meant the table 'public.rec_impressions'",
    }


async def test_unknown_column_is_400_pgrst204(client: httpx.AsyncClient, stack: Stack) -> None:
    response = await _insert(client, stack, "rec_impressions", _impression(str(uuid.uuid4()), item="x"))
    assert response.status_code == 400
    body = error(response)
    assert (body["code"], body["message"]) == (
        "PGRST204",
        "Could not find the 'item' column of 'rec_impressions' in the schema cache",
    )


async def test_bad_json_is_400_pgrst102(client: httpx.AsyncClient, stack: Stack) -> None:
    for content in (b'{"user_id": ', b"42", b"[1, 2]"):
        response = await _insert(client, stack, "rec_impressions", None, content=content)
        assert response.status_code == 400, content
        assert error(response)["code"] == "PGRST102"


async def test_unknown_impression_is_409_23503_and_nothing_is_kept(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    user = str(uuid.uuid4())
    [imp] = (
        await _insert(client, stack, "rec_impressions", _impression(user), headers=REPRESENTATION)
    ).json()
    rows = [
        {"impression_id": imp["id"], "user_id": user, "outcome": "click"},
        {"impression_id": str(uuid.uuid4()), "user_id": user, "outcome": "click"},
    ]
    response = await _insert(client, stack, "rec_outcomes", rows)
    assert response.status_code == 409
    assert error(response)["code"] == "23503"
    assert stack.sql("select count(*) from rec_outcomes where user_id = %s", [user]) == [(0,)]


async def test_bad_value_is_postgres_own_error(client: httpx.AsyncClient, stack: Stack) -> None:
    response = await _insert(client, stack, "rec_impressions", {"user_id": "not-a-uuid"})
    assert response.status_code == 400
    assert error(response)["code"] == "22P02"


async def test_grants_decide_anon_401_and_users_403(client: httpx.AsyncClient, stack: Stack) -> None:
    user = str(uuid.uuid4())
    anon = await _insert(
        client, stack, "rec_impressions", _impression(user), headers=key_headers(stack.keys.publishable)
    )
    assert anon.status_code == 401
    assert error(anon)["code"] == "42501"
    signed_in = key_headers(stack.keys.publishable, stack.keys.user_jwt(user))
    response = await _insert(client, stack, "rec_impressions", _impression(user), headers=signed_in)
    assert response.status_code == 403
    assert error(response)["code"] == "42501"
    assert stack.sql("select count(*) from rec_impressions where user_id = %s", [user]) == [(0,)]
