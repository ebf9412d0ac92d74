"""Verifying a Supabase Auth access token, as the project's own gateway would.

Two kinds of signature, both used by Supabase projects:

- HS256 with the project's (legacy) JWT secret, ``SUPABASE_JWT_SECRET``;
- ES256 or RS256 with the project's signing keys, whose public halves are at
  ``$SUPABASE_URL/auth/v1/.well-known/jwks.json``. The key set is cached for
  ten minutes; a token naming a key id (``kid``) not in the cache refetches
  it once (at most every 30 s, so junk tokens cannot hammer the endpoint).

The algorithm is taken from the token's header only to pick which key to
try: an HS256 token is only ever checked against the secret and an ES256 or
RS256 token only against a public key of that type, so no token can choose
its own key. ``alg: none`` and every other algorithm are refused. ``exp`` must
be an integer no further ahead than a session can last (``MAX_LIFETIME``),
``aud`` must be ``authenticated`` and, when the verifier knows the project's
Auth URL, ``iss`` must be it. A ``session_id``, when present, must be a uuid:
callers use it to refuse tokens of sessions that have been signed out. Error
messages never repeat the token.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import jwt
from jwt import PyJWK

from shared.errors import ApiError

ALGORITHMS = ("HS256", "ES256", "RS256")
AUDIENCE = "authenticated"
JWKS_TTL = 600.0
REFETCH_GAP = 30.0
MAX_TOKEN_LENGTH = 16 * 1024  # Supabase's access tokens are about 1 KiB
CLOCK_SKEW = 10  # seconds of clock difference tolerated on exp/iat
# Supabase Auth's longest configurable access-token lifetime (one week): a
# token claiming to live longer was not issued by it.
MAX_LIFETIME = 7 * 24 * 3600
_KEY_TYPES = {"ES256": "EC", "RS256": "RSA"}

MALFORMED = "The access token is malformed: send the access_token from a Supabase Auth sign-in."
EXPIRED = "The access token has expired: refresh the session or sign in again."
BAD_SIGNATURE = "The access token's signature does not verify with this project's keys."
WRONG_AUDIENCE = f"The access token is not a user session: its audience (aud) must be '{AUDIENCE}'."
UNKNOWN_KID = "The access token was signed with a key (kid) this project does not publish in its JWKS."
NO_SECRET = (
    "This server cannot verify HS256 access tokens: set SUPABASE_JWT_SECRET, "
    "or sign tokens with the project's signing keys (JWKS)."
)
NO_EXPIRY = "The access token has no expiry (exp): sign in with Supabase Auth to get a session token."
NO_SUBJECT = "The access token names no user: its sub claim must be the user's id."
INVALID = "The access token is not valid: sign in again."
BAD_EXPIRY = "The access token's expiry (exp) is not a plausible time: sign in again."
WRONG_ISSUER = "The access token was not issued by this project's Supabase Auth (iss): sign in again."
BAD_SESSION = "The access token's session_id is not a session id: sign in again."
JWKS_UNAVAILABLE = "The project's signing keys (JWKS) could not be fetched; try again shortly."

Fetch = Callable[[str], Awaitable[Any]]


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "invalid_token", message)


def _bad_algorithm(alg: object) -> ApiError:
    shown = alg if isinstance(alg, str) and alg.isascii() and len(alg) <= 16 else "?"
    return _unauthorized(f"Access tokens signed with '{shown}' are not accepted: use HS256, ES256 or RS256.")


@dataclass(frozen=True)
class Session:
    """A verified access token: who signed in."""

    user_id: str
    email: str | None
    claims: dict[str, Any] = field(repr=False)
    session_id: str | None = None  # the Auth session the token belongs to, when it names one


class TokenVerifier:
    """Verifies access tokens; one per process, so the key set is cached across requests."""

    def __init__(
        self,
        jwks_url: str,
        jwt_secret: str | None,
        fetch: Fetch,
        *,
        ttl: float = JWKS_TTL,
        refetch_gap: float = REFETCH_GAP,
        clock: Callable[[], float] = time.monotonic,
        issuer: str | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        """``issuer`` (e.g. ``$SUPABASE_URL/auth/v1``): tokens must name it as ``iss``;
        ``None`` accepts any issuer. ``now`` is the wall clock ``exp`` is judged by."""
        self.jwks_url = jwks_url
        self.issuer = issuer
        self._now = now
        self._secret = jwt_secret
        self._fetch = fetch
        self._ttl = ttl
        self._refetch_gap = refetch_gap
        self._clock = clock
        self._keys: dict[str | None, PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def verify(self, token: str) -> Session:
        """The token's user, or a 401 ApiError saying what is wrong with it."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise _unauthorized(MALFORMED)
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, RecursionError):
            raise _unauthorized(MALFORMED) from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise _bad_algorithm(alg)
        key: Any
        if alg == "HS256":
            if not self._secret:
                raise _unauthorized(NO_SECRET)
            key = self._secret
        else:
            key = (await self._public_key(header.get("kid"), alg)).key
        claims = _decode(token, key, alg, self.issuer)
        _check_times(claims, self._now())
        subject = claims.get("sub")
        if not isinstance(subject, str) or not _is_uuid(subject):
            raise _unauthorized(NO_SUBJECT)
        email = claims.get("email")
        return Session(
            subject.lower(), email if isinstance(email, str) and email else None, claims, _session_id(claims)
        )

    async def _public_key(self, kid: object, alg: str) -> PyJWK:
        if kid is not None and not isinstance(kid, str):
            raise _unauthorized(MALFORMED)
        keys = await self._key_set(refresh=False)
        if kid not in keys and self._may_refetch():
            keys = await self._key_set(refresh=True)
        found = keys.get(kid)
        if found is None:
            raise _unauthorized(UNKNOWN_KID)
        if found.algorithm_name != alg:
            raise _unauthorized(BAD_SIGNATURE)
        return found

    def _may_refetch(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= self._refetch_gap

    async def _key_set(self, *, refresh: bool) -> dict[str | None, PyJWK]:
        async with self._lock:
            fresh = self._fetched_at is not None and self._clock() - self._fetched_at < self._ttl
            if fresh and not refresh:
                return self._keys
            if refresh and self._fetched_at is not None and not self._may_refetch():
                return self._keys  # another request refetched meanwhile
            try:
                document = await self._fetch(self.jwks_url)
            except Exception:
                if self._keys:  # keep serving the keys we have
                    return self._keys
                raise ApiError(503, "auth_unavailable", JWKS_UNAVAILABLE) from None
            self._keys = _parse_key_set(document)
            self._fetched_at = self._clock()
            return self._keys


def _decode(token: str, key: Any, alg: str, issuer: str | None) -> dict[str, Any]:
    required = ["exp", "sub", "aud", *(["iss"] if issuer else [])]
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=AUDIENCE,
            issuer=issuer,
            options={"require": required},
            leeway=CLOCK_SKEW,
        )
    except jwt.ExpiredSignatureError:
        raise _unauthorized(EXPIRED) from None
    except jwt.InvalidAudienceError:
        raise _unauthorized(WRONG_AUDIENCE) from None
    except jwt.InvalidIssuerError:
        raise _unauthorized(WRONG_ISSUER) from None
    except jwt.MissingRequiredClaimError as exc:
        missing = {"sub": NO_SUBJECT, "aud": WRONG_AUDIENCE, "iss": WRONG_ISSUER}
        raise _unauthorized(missing.get(exc.claim, NO_EXPIRY)) from None
    except jwt.InvalidSignatureError:
        raise _unauthorized(BAD_SIGNATURE) from None
    except (jwt.DecodeError, RecursionError):
        raise _unauthorized(MALFORMED) from None
    except jwt.PyJWTError:
        raise _unauthorized(INVALID) from None
    return dict(claims)


def _check_times(claims: dict[str, Any], now: float) -> None:
    """``exp`` (and ``iat`` if present) are integers, and the token cannot outlive
    the longest session Supabase Auth issues. PyJWT alone accepts numeric
    strings, floats and any far future."""
    exp, iat = claims.get("exp"), claims.get("iat")
    if not _is_int(exp) or exp > now + MAX_LIFETIME + CLOCK_SKEW:
        raise _unauthorized(BAD_EXPIRY)
    if "iat" in claims and not (_is_int(iat) and exp - iat <= MAX_LIFETIME):
        raise _unauthorized(BAD_EXPIRY)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _session_id(claims: dict[str, Any]) -> str | None:
    value = claims.get("session_id")
    if value is None:
        return None
    if not isinstance(value, str) or not _is_uuid(value):
        raise _unauthorized(BAD_SESSION)
    return value.lower()


def _parse_key_set(document: Any) -> dict[str | None, PyJWK]:
    """The usable signing keys of a JWKS document, by kid; unusable entries are skipped."""
    entries = document.get("keys") if isinstance(document, dict) else None
    keys: dict[str | None, PyJWK] = {}
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        alg = entry.get("alg") or {"EC": "ES256", "RSA": "RS256"}.get(entry.get("kty", ""))
        if alg not in _KEY_TYPES or entry.get("kty") != _KEY_TYPES[alg]:
            continue
        try:
            keys[entry.get("kid")] = PyJWK(entry, algorithm=alg)
        except jwt.PyJWTError:
            continue
    return keys


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
