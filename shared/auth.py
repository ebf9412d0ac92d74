"""The caller check: who may call admin functions.

Two kinds of caller:

- a service-level key (servers, the scheduler). Mirrors Supabase's own server
  helper: the ``apikey`` header first; a Bearer token counts only if it is a
  JWT (the legacy service-role key) or repeats ``apikey`` — so a secret key
  sent only as Bearer is refused, as Supabase's gateway would. Keys are
  compared timing-safely and never echoed.
- a person signed in with Supabase Auth: ``Authorization: Bearer <access
  token>`` (with the publishable key in ``apikey``, as supabase-js sends it).
  The token is verified (shared.tokens) and the user must be in
  ``rec_admins``; their role (``viewer`` or ``admin``) is read on every
  request, so a revoke takes effect on the next one.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from shared.config import Settings
from shared.errors import ApiError
from shared.tokens import TokenVerifier

_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")

MISSING = "Missing API key: send a secret key (sb_secret_...) in the apikey header."
SECRET_IN_AUTHORIZATION = "Secret keys go in the apikey header, not in Authorization: Bearer."
PUBLIC_KEY = "The publishable (anon) key cannot call admin functions: send a secret key in the apikey header."
OTHER_JWT = (
    "This JWT is not the project's service-role key: admin functions need a secret key in the apikey header."
)
UNKNOWN_KEY = "This API key is not one of the project's secret keys."
NOT_AN_ADMIN = (
    "You are signed in, but not an admin of these experiments: "
    "an admin can grant you access (recsys-exp admin grant EMAIL)."
)
VIEWER_READS_ONLY = (
    "Your role is viewer: you may read but not change anything. Ask an admin for the admin role."
)

RoleLookup = Callable[[str], Awaitable[str | None]]


@dataclass(frozen=True)
class Caller:
    """Who is calling: a service-level key (no user) or a signed-in admin."""

    role: str  # "service", "admin" or "viewer"
    user_id: str | None = None
    email: str | None = None

    @property
    def may_write(self) -> bool:
        return self.role in ("service", "admin")


SERVICE = Caller("service")


async def authorize(
    headers: Mapping[str, str], settings: Settings, tokens: TokenVerifier, role_of: RoleLookup
) -> Caller:
    """The caller, or a 401/403 ApiError. A service-level key wins over a session token."""
    bearer = bearer_token(headers.get("authorization", ""))
    if _is_service_level(headers, settings) or not bearer or not _looks_like_session(bearer):
        check_caller(headers, settings)
        return SERVICE
    if _matches_any([bearer], settings.low_privilege_keys):
        raise ApiError(403, "forbidden", PUBLIC_KEY)
    session = await tokens.verify(bearer)
    role = await role_of(session.user_id)
    if role not in ("viewer", "admin"):
        raise ApiError(403, "forbidden", NOT_AN_ADMIN)
    return Caller(role, session.user_id, session.email)


def _is_service_level(headers: Mapping[str, str], settings: Settings) -> bool:
    apikey = headers.get("apikey", "")
    presented = _credentials(apikey, bearer_token(headers.get("authorization", "")))
    return _matches_any(presented, settings.service_keys)


def _looks_like_session(token: str) -> bool:
    """A JWT-shaped token (signature may be empty: ``alg: none``) whose payload names a user.

    Only decides which check applies; nothing here is trusted. The legacy
    anon and service-role keys carry no ``sub`` and keep the key check.
    """
    parts = token.split(".")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        return False
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        return False
    return isinstance(payload, dict) and "sub" in payload


def check_caller(headers: Mapping[str, str], settings: Settings) -> None:
    """Return if the caller presents a service-level key; raise 401/403 otherwise."""
    apikey = headers.get("apikey", "")
    bearer = bearer_token(headers.get("authorization", ""))
    presented = _credentials(apikey, bearer)
    if not presented:
        raise ApiError(401, "unauthorized", SECRET_IN_AUTHORIZATION if bearer else MISSING)
    if _matches_any(presented, settings.service_keys):
        return
    raise ApiError(403, "forbidden", _refusal(presented, settings))


def bearer_token(authorization: str) -> str:
    """The token of an `Authorization: Bearer <token>` header, else ""."""
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _credentials(apikey: str, bearer: str) -> list[str]:
    presented = [apikey] if apikey else []
    if bearer and (is_jwt(bearer) or bearer == apikey):
        presented.append(bearer)
    return presented


def is_jwt(value: str) -> bool:
    """Shaped like a JWT (three base64url parts); says nothing about its signature."""
    return _JWT.fullmatch(value) is not None


def _matches_any(presented: Iterable[str], keys: Iterable[str]) -> bool:
    """Timing-safe: compares every value against every key, no early exit."""
    matched = False
    for value in presented:
        for key in keys:
            matched |= hmac.compare_digest(value.encode(), key.encode())
    return matched


def _refusal(presented: list[str], settings: Settings) -> str:
    if _matches_any(presented, settings.low_privilege_keys) or any(
        value.startswith("sb_publishable_") for value in presented
    ):
        return PUBLIC_KEY
    if any(is_jwt(value) for value in presented):
        return OTHER_JWT
    return UNKNOWN_KEY
