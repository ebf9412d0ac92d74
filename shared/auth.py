"""The caller check: only service-level keys may call admin functions.

Mirrors Supabase's own server helper: the ``apikey`` header first; a Bearer
token counts only if it is a JWT (the legacy service-role key) or repeats
``apikey`` — so a secret key sent only as Bearer is refused, as Supabase's
gateway would. Keys are compared timing-safely and never echoed.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Mapping

from shared.config import Settings
from shared.errors import ApiError

_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")

MISSING = "Missing API key: send a secret key (sb_secret_...) in the apikey header."
SECRET_IN_AUTHORIZATION = "Secret keys go in the apikey header, not in Authorization: Bearer."
PUBLIC_KEY = "The publishable (anon) key cannot call admin functions: send a secret key in the apikey header."
OTHER_JWT = (
    "This JWT is not the project's service-role key: admin functions need a secret key in the apikey header."
)
UNKNOWN_KEY = "This API key is not one of the project's secret keys."


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
