"""README's function recipe for salt rotation, called exactly as pg_net's
`net.http_post` sends it: POST, `Content-Type: application/json` and
`apikey: <secret key>` (no Authorization), pg_net's User-Agent, and the
jsonb body as Postgres prints it. A due salt rotates, with an audit row
marked scheduled and no actor; the same call with a wrong key changes nothing."""

from __future__ import annotations

import uuid

import httpx

from tests.stack.conftest import ADMIN, Stack

PG_NET_BODY = b'{"due": true}'  # select '{"due": true}'::jsonb::text


def pg_net_headers(key: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "apikey": key, "User-Agent": "pg_net/0.14.0"}


def due_experiment(stack: Stack) -> tuple[str, str]:
    key = f"pgnet-{uuid.uuid4().hex[:8]}"
    stack.sql(
        "select public.rec_create_experiment(experiment_key => %s, variants => %s::jsonb, admin_id => %s,"
        " salt_rotation_interval => '1 day')",
        [key, '[{"name": "a", "weight": 1}]', ADMIN],
    )
    stack.sql("select public.rec_activate_experiment(%s, %s)", [key, ADMIN])
    stack.sql(
        "update public.rec_experiments set salt_rotated_at = now() - interval '2 days' where key = %s", [key]
    )
    return key, salt_of(stack, key)


def salt_of(stack: Stack, key: str) -> str:
    return str(stack.sql("select salt from public.rec_experiments where key = %s", [key])[0][0])


async def test_pg_net_call_rotates_a_due_salt(client: httpx.AsyncClient, stack: Stack) -> None:
    key, salt = due_experiment(stack)
    response = await client.post(
        "/functions/v1/admin-rotate-salt", content=PG_NET_BODY, headers=pg_net_headers(stack.keys.secret)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert key in body["data"]["rotated"], body
    assert salt_of(stack, key) != salt
    [(actor, details)] = stack.sql(
        "select l.actor_id, l.details from public.rec_audit_log l join public.rec_experiments e"
        " on e.id = l.experiment_id where e.key = %s and l.action = 'rotate_salt'",
        [key],
    )
    assert actor is None and details["scheduled"] is True and details["reassign"] is False


async def test_pg_net_call_with_a_wrong_key_changes_nothing(client: httpx.AsyncClient, stack: Stack) -> None:
    key, salt = due_experiment(stack)
    for wrong in ("sb_secret_wrong-key-of-a-plausible-length", stack.keys.publishable, ""):
        response = await client.post(
            "/functions/v1/admin-rotate-salt", content=PG_NET_BODY, headers=pg_net_headers(wrong)
        )
        assert response.status_code in (401, 403), (wrong[:10], response.status_code, response.text)
        assert "data" not in response.json()
    assert salt_of(stack, key) == salt
    assert stack.sql(
        "select count(*) from public.rec_audit_log l join public.rec_experiments e on e.id = l.experiment_id"
        " where e.key = %s and l.action = 'rotate_salt'",
        [key],
    ) == [(0,)]
