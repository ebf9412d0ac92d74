"""The real supabase client against the stand-in, as a dashboard's
supabase-js would use it: sign in, read claims via the JWKS, call functions
with the session, refresh, sign out."""

from __future__ import annotations

import pytest
from supabase import AuthApiError, acreate_client

from tests.sessions.conftest import PASSWORD, Person
from tests.stack.conftest import Stack


async def test_sign_in_call_refresh_sign_out(stack: Stack, people: dict[str, Person]) -> None:
    client = await acreate_client(stack.url, stack.keys.publishable)
    signed_in = await client.auth.sign_in_with_password(
        {"email": people["viewer"].email, "password": PASSWORD}
    )
    assert signed_in.user is not None and signed_in.session is not None
    assert signed_in.user.id == people["viewer"].user_id
    claims = await client.auth.get_claims()
    assert claims is not None and claims["claims"]["sub"] == people["viewer"].user_id

    whoami = await client.functions.invoke("admin-whoami", {"body": {}})
    assert b'"role":"viewer"' in whoami

    refreshed = await client.auth.refresh_session()
    assert refreshed.session is not None
    assert refreshed.session.access_token != signed_in.session.access_token
    await client.auth.sign_out()
    assert await client.auth.get_session() is None

    with pytest.raises(AuthApiError, match="Invalid login credentials"):
        await client.auth.sign_in_with_password({"email": people["viewer"].email, "password": "nope-nope"})
