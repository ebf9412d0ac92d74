"""Salts shown only to admins and service-level keys, over real HTTP with the
database's own answers: every read a viewer makes has them redacted."""

from __future__ import annotations

import uuid

import httpx

from shared.redact import REDACTED
from tests.stack.conftest import Stack


async def test_a_viewer_sees_no_salt_anywhere(
    http: httpx.AsyncClient, stack: Stack, tokens: dict[str, str]
) -> None:
    key = f"salted-{uuid.uuid4().hex[:8]}"
    secret = {"apikey": stack.keys.secret}
    first, admin_id = f"first-{uuid.uuid4().hex}", str(uuid.uuid4())
    created = await http.post(
        "/functions/v1/admin-create-experiment",
        json={"key": key, "variants": [{"name": "a", "weight": 1}], "salt": first, "admin_id": admin_id},
        headers=secret,
    )
    assert created.status_code == 200, created.text
    rotated = await http.post(
        "/functions/v1/admin-rotate-salt", json={"key": key, "admin_id": admin_id}, headers=secret
    )
    second = rotated.json()["data"]["salt"]
    reads = {
        "admin-get-experiment": {"key": key},
        "admin-list-experiments": {},
        "admin-audit-log": {"key": key},
    }
    for name, body in reads.items():
        for who in ("viewer", "admin"):
            headers = {"apikey": stack.keys.publishable, "authorization": f"Bearer {tokens[who]}"}
            response = await http.post(f"/functions/v1/{name}", json=body, headers=headers)
            assert response.status_code == 200, response.text
            shown = first in response.text or second in response.text
            assert shown == (who == "admin"), (name, who)
            assert (REDACTED in response.text) == (who == "viewer"), (name, who)
