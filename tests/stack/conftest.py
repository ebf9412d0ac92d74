"""The whole local stack over real HTTP: one migrated database and one
uvicorn server (tests/support/stack.py) per session.

The database also gets a few throwaway functions, created as superuser,
that pin endpoint behaviours our own RPCs do not exercise (void, a whole-
body json parameter, overloads, a null row, what the session looks like).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import psycopg
import pytest

from devstack import migrate, postgres
from tests.support.stack import Stack, key_headers, serve_stack

__all__ = ["ADMIN", "Stack", "error", "key_headers", "rpc"]

ADMIN = "00000000-0000-4000-8000-00000000ad01"

TEST_FUNCTIONS = """
create function public.stack_void(note text default null) returns void
  language sql as $$ select $$;
create function public.stack_echo(json) returns json
  language sql as $$ select $1 $$;
create function public.stack_overloaded(a integer) returns integer
  language sql as $$ select a $$;
create function public.stack_overloaded(a text) returns text
  language sql as $$ select a $$;
create function public.stack_null_row() returns public.rec_audit_entry
  language sql as $$ select null::public.rec_audit_entry $$;
create function public.stack_session()
  returns table (login_role text, acting_role text, claims jsonb, method text,
                 path text, read_only text, search_path text, user_agent text)
  language sql stable as $$
  select session_user::text, current_user::text,
         current_setting('request.jwt.claims', true)::jsonb,
         current_setting('request.method', true), current_setting('request.path', true),
         current_setting('transaction_read_only'), current_setting('search_path'),
         current_setting('request.headers', true)::jsonb ->> 'user-agent'
$$;
-- Writes, then fails with the SQLSTATE it is given: nothing may remain.
create function public.stack_fail_after_write(code text) returns void
  language plpgsql security definer set search_path = '' as $$
begin
  insert into public.rec_audit_log (action, details) values ('stack-test', '{}');
  raise exception 'refused after writing' using errcode = code;
end
$$;
grant execute on function public.stack_void(text), public.stack_echo(json),
  public.stack_overloaded(integer), public.stack_overloaded(text), public.stack_null_row(),
  public.stack_fail_after_write(text) to service_role;
grant execute on function public.stack_session() to anon, authenticated, service_role;
"""


@pytest.fixture(scope="session")
def stack_db(pg_server: postgres.Server) -> Iterator[str]:
    with postgres.fresh_database(pg_server, prefix="rec_stack") as url:
        migrate.migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(TEST_FUNCTIONS.encode())
        yield url


@pytest.fixture(scope="session")
def stack(stack_db: str) -> Iterator[Stack]:
    with serve_stack(stack_db) as served:
        yield served


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
        yield http


async def rpc(
    client: httpx.AsyncClient,
    stack: Stack,
    fn: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST /rest/v1/rpc/<fn>, as the secret key unless headers say otherwise."""
    sent = key_headers(stack.keys.secret) if headers is None else headers
    return await client.post(f"/rest/v1/rpc/{fn}", json={} if body is None else body, headers=sent)


def error(response: httpx.Response) -> dict[str, Any]:
    """A PostgREST error body: exactly the four keys."""
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "details", "hint"}, body
    return body
