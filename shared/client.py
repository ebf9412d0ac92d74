"""One supabase client per process, and the RPC call every function makes.

The client is created once (at startup, or lazily on the first request when
the app is mounted somewhere that does not run its lifespan) and reused: a
client per request would open a new connection pool every time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from postgrest.exceptions import APIError
from supabase import AsyncClient, AsyncClientOptions, acreate_client

from shared.config import Settings
from shared.errors import from_postgrest_error, from_transport_error
from shared.rpcs import rpc
from shared.tokens import TokenVerifier

ClientFactory = Callable[[Settings], Awaitable[AsyncClient]]


async def create_client(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> AsyncClient:
    """A supabase client sending the service-level key, with a bounded timeout.

    ``transport`` lets a host route the client's HTTP somewhere other than the
    network (e.g. ``httpx.ASGITransport`` to an in-process PostgREST stand-in).
    """
    http = httpx.AsyncClient(timeout=httpx.Timeout(settings.rpc_timeout), transport=transport)
    options = AsyncClientOptions(
        httpx_client=http,
        auto_refresh_token=False,  # no user sessions here: only the service key
        persist_session=False,
    )
    return await acreate_client(settings.supabase_url, settings.client_key, options)


TransportFactory = Callable[[], httpx.AsyncBaseTransport]


class Runtime:
    """Settings, the shared client and the token verifier; settings come from the env unless given.

    ``auth_transport`` routes the verifier's JWKS requests somewhere other
    than the network (the local stack serves them in-process).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        client_factory: ClientFactory | None = None,
        auth_transport: TransportFactory | None = None,
    ) -> None:
        self._settings = settings
        self._factory = client_factory or create_client
        self._client: AsyncClient | None = None
        self._lock = asyncio.Lock()
        self._auth_transport = auth_transport
        self._auth_http: httpx.AsyncClient | None = None
        self._tokens: TokenVerifier | None = None

    @property
    def settings(self) -> Settings:
        """Read the env on first use, so importing the app needs no env. Raises ConfigError."""
        if self._settings is None:
            self._settings = Settings.from_env()
        return self._settings

    async def client(self) -> AsyncClient:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = await self._factory(self.settings)
        return self._client

    @property
    def tokens(self) -> TokenVerifier:
        """Verifies session tokens; one per process, so the JWKS cache is shared."""
        if self._tokens is None:
            settings = self.settings
            self._tokens = TokenVerifier(
                settings.jwks_url, settings.jwt_secret, self._fetch_json, issuer=settings.auth_issuer
            )
        return self._tokens

    async def _fetch_json(self, url: str) -> Any:
        if self._auth_http is None:
            transport = self._auth_transport() if self._auth_transport else None
            timeout = httpx.Timeout(self.settings.rpc_timeout)
            self._auth_http = httpx.AsyncClient(timeout=timeout, transport=transport)
        response = await self._auth_http.get(url)
        response.raise_for_status()
        return response.json()

    async def admin_role(self, user_id: str, session_id: str | None = None) -> str | None:
        """The user's role in rec_admins ("viewer", "admin"), or None; with a
        session id, None too once that Auth session has ended (one round trip)."""
        params = {"user_id": user_id}
        if session_id is not None:
            params["session_id"] = session_id
        role = await call_rpc(self, rpc("rec_admin_role"), params)
        return role if isinstance(role, str) else None

    async def start(self) -> None:
        """Fail fast on bad config and build the client before the first request."""
        await self.client()

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.postgrest.aclose()  # closes the shared httpx client
        auth_http, self._auth_http = self._auth_http, None
        if auth_http is not None:
            await auth_http.aclose()


async def call_rpc(runtime: Runtime, fn: str, params: dict[str, Any]) -> Any:
    """POST /rest/v1/rpc/<fn>; the parsed JSON result, or an ApiError."""
    client = await runtime.client()
    try:
        response = await client.rpc(fn, params).execute()
    except APIError as exc:
        raise from_postgrest_error(exc, fn) from None
    except httpx.HTTPError as exc:
        raise from_transport_error(exc, fn) from None
    return response.data
