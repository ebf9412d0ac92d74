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
  request, in the same lookup that checks the token's Auth session is still
  live, so a revoke or a sign-out takes effect on the next request.

A bad token is 401 whatever key comes with it: with the publishable key in
``apikey`` (a browser) any other Bearer value is taken as an access token.
Messages to a browser's caller never mention secret keys.
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
from shared.tokens import Session, TokenVerifier

_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")

MISSING = "Missing API key: send a secret key (sb_secret_...) in the apikey header."
SECRET_IN_AUTHORIZATION = "Secret keys go in the apikey header, not in Authorization: Bearer."
PUBLIC_KEY = (
    "The publishable (anon) key alone cannot call admin functions: sign in and send your "
    "access token (Authorization: Bearer <access_token>)."
)
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
SESSION_ENDED = "Your session has ended (signed out, or refreshed elsewhere after a replay): sign in again."

# (user id, session id or None) → the role while the session is live, else None.
RoleLookup = Callable[[str, str | None], Awaitable[str | None]]


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
    who = await authenticate(headers, settings, tokens)
    return who if isinstance(who, Caller) else await admit(who, role_of)


async def authenticate(
    headers: Mapping[str, str], settings: Settings, tokens: TokenVerifier
) -> Caller | Session:
    """Step one, with no round trip to the database: ``SERVICE`` for a
    service-level key, the verified token of a person (whose role ``admit``
    looks up), or a 401/403 ApiError."""
    if _is_service_level(headers, settings):
        return SERVICE
    bearer = bearer_token(headers.get("authorization", ""))
    if bearer and _is_access_token(bearer, headers.get("apikey", ""), settings):
        return await tokens.verify(bearer)
    check_caller(headers, settings)  # raises: no service-level key was presented
    return SERVICE


async def admit(session: Session, role_of: RoleLookup) -> Caller:
    """Step two: the person's role, one lookup that also requires their session to be live."""
    role = await role_of(session.user_id, session.session_id)
    if role in ("viewer", "admin"):
        return Caller(role, session.user_id, session.email)
    # Refusal path only: tell a signed-out admin apart from someone never granted access.
    if session.session_id is not None and await role_of(session.user_id, None) in ("viewer", "admin"):
        raise ApiError(401, "invalid_token", SESSION_ENDED)
    raise ApiError(403, "forbidden", NOT_AN_ADMIN)


def _is_service_level(headers: Mapping[str, str], settings: Settings) -> bool:
    apikey = headers.get("apikey", "")
    presented = _credentials(apikey, bearer_token(headers.get("authorization", "")))
    return _matches_any(presented, settings.service_keys)


def _is_access_token(bearer: str, apikey: str, settings: Settings) -> bool:
    """Whether a Bearer value is meant as a person's access token (and so is
    verified, 401 when bad) rather than as a key (403 when not service level).

    Project keys are keys. Anything else is a token when it names a user, or
    when it comes with the publishable key, as supabase-js sends tokens.
    """
    if bearer == apikey or _matches_any([bearer], (*settings.service_keys, *settings.low_privilege_keys)):
        return False
    return _looks_like_session(bearer) or _is_public_key(apikey, settings)


def _is_public_key(apikey: str, settings: Settings) -> bool:
    return bool(apikey) and (
        apikey.startswith("sb_publishable_") or _matches_any([apikey], settings.low_privilege_keys)
    )


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
