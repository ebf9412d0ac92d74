"""Over the local stack's /rest/v1 with the secret key: a forged audit row
is refused and never chained, the chain is readable, and the data checks
answer 400 with 23514 and keep nothing."""

from __future__ import annotations

import uuid

import httpx

from tests.stack.conftest import ADMIN, Stack, error, key_headers, rpc


async def test_a_forged_audit_row_is_refused(client: httpx.AsyncClient, stack: Stack) -> None:
    before = stack.sql("select count(*), max(id) from rec_audit_log")
    head = (await rpc(client, stack, "rec_audit_chain_head")).json()
    forged = {
        "action": "grant_admin",
        "actor_id": ADMIN,
        "details": {"role": "admin"},
        "created_at": "2020-01-01T00:00:00Z",
    }
    for body in (forged, [forged, forged]):
        response = await client.post(
            "/rest/v1/rec_audit_log", json=body, headers=key_headers(stack.keys.secret)
        )
        assert response.status_code in (401, 403), response.text
        assert error(response)["code"] == "42501"
    assert stack.sql("select count(*), max(id) from rec_audit_log") == before
    assert (await rpc(client, stack, "rec_audit_chain_head")).json() == head


async def test_the_chain_is_readable_with_the_secret_key(client: httpx.AsyncClient, stack: Stack) -> None:
    key = f"chain-{uuid.uuid4().hex[:8]}"
    created = await rpc(
        client,
        stack,
        "rec_create_experiment",
        {"experiment_key": key, "variants": [{"name": "a", "weight": 1}], "admin_id": ADMIN},
    )
    assert created.status_code == 200, created.text
    [head] = (await rpc(client, stack, "rec_audit_chain_head")).json()
    rows = (await rpc(client, stack, "rec_audit_chain_rows", {"after_seq": head["chain_seq"] - 1})).json()
    assert [(r["chain_seq"], r["row_hash"], r["action"]) for r in rows] == [
        (head["chain_seq"], head["row_hash"], "create_experiment")
    ]
    assert rows[0]["hashed_text"].startswith(f"{rows[0]['prev_hash'] or ''}\n[{head['chain_seq']}, ")
    refused = await rpc(client, stack, "rec_audit_chain_rows", {"max_rows": 0})
    assert refused.status_code == 400 and error(refused)["code"] == "22023"
    anon = await rpc(client, stack, "rec_audit_chain_head", headers=key_headers(stack.keys.publishable))
    assert anon.status_code == 401


async def test_data_checks_answer_23514_and_keep_nothing(client: httpx.AsyncClient, stack: Stack) -> None:
    user, other = str(uuid.uuid4()), str(uuid.uuid4())
    headers = {**key_headers(stack.keys.secret), "Prefer": "return=representation"}
    bad_tag = {"user_id": user, "request_context": {"experiments": {"e": 3}}}
    response = await client.post("/rest/v1/rec_impressions", json=bad_tag, headers=headers)
    assert response.status_code == 400 and error(response)["code"] == "23514"
    assert "request_context.experiments.e" in error(response)["message"]
    good = {"user_id": user, "request_context": {"experiments": {"e": "a"}}}
    [imp] = (await client.post("/rest/v1/rec_impressions", json=good, headers=headers)).json()
    outcome = {"impression_id": imp["id"], "user_id": other, "outcome": "click"}
    response = await client.post("/rest/v1/rec_outcomes", json=outcome, headers=headers)
    assert response.status_code == 400 and error(response)["code"] == "23514"
    assert "rec_outcomes.user_id" in error(response)["message"]
    assert stack.sql("select count(*) from rec_impressions where user_id = %s", [user]) == [(1,)]
    assert stack.sql("select count(*) from rec_outcomes where impression_id = %s", [imp["id"]]) == [(0,)]
