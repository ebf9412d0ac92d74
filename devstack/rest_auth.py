"""Who a request runs as: Supabase's API gateway (which key was sent) and
PostgREST's JWT step (which role the token names), in one function.

- `apikey: <secret key>` → service_role; `apikey: <publishable key>` → anon.
- A JWT, in `Authorization: Bearer` or else in `apikey`, verified HS256 with
  the JWT secret → its `role` claim (anon when absent), claims passed on.
  An ES256/RS256 token (what the Auth stand-in issues, as Supabase Auth does
  with signing keys) is checked by the functions' own verifier
  (shared.tokens.TokenVerifier, against the Auth stand-in's JWKS), so
  /rest/v1 and the functions accept and refuse exactly the same sessions;
  its refusals are answered with PostgREST's JWT codes, the verifier's
  sentence in `details`.
  A JWT in Authorization wins over the apikey, as on Supabase, where a
  signed-in user's token rides along with the project's publishable key.
- `Authorization: Bearer <key>` without an apikey counts as the apikey.
- Nothing at all → 401 "No API key found in request"; an unknown key → 401
  "Invalid API key" (the gateway's own two-field bodies); a bad JWT → 401
  PGRST301 (undecodable, bad signature) or PGRST303 (expired, not yet valid).
- A role other than anon/authenticated/service_role → 403 42501, which is
  what Postgres answers when authenticator may not switch to that role.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from devstack.keys import LocalKeys
from devstack.rest_errors import GatewayError, RestError
from shared import tokens
from shared.auth import bearer_token, is_jwt
from shared.errors import ApiError

API_ROLES = frozenset({"anon", "authenticated", "service_role"})
ANON = "anon"
CLOCK_SKEW_SECONDS = 30  # PostgREST tolerates this much on exp/nbf/iat


@dataclass(frozen=True)
class Caller:
    role: str
    claims: dict[str, Any]

    @property
    def authenticated(self) -> bool:
        """PostgREST's notion: any role but the anonymous one (42501 → 403, not 401)."""
        return self.role != ANON

    def claims_json(self) -> str:
        return json.dumps(self.claims, separators=(",", ":"))


async def authenticate(
    headers: Mapping[str, str], keys: LocalKeys, verifier: tokens.TokenVerifier | None = None
) -> Caller:
    apikey = headers.get("apikey", "").strip()
    bearer = bearer_token(headers.get("authorization", ""))
    if not apikey and not bearer:
        raise GatewayError(
            401, None, "No API key found in request", hint="No `apikey` request header was found."
        )
    if bearer and is_jwt(bearer):
        if apikey:
            await _from_key(apikey, keys, verifier)  # still has to be one of this project's keys
        return await _from_jwt(bearer, keys, verifier)
    if apikey and bearer and not hmac.compare_digest(apikey.encode(), bearer.encode()):
        raise _invalid_key()
    return await _from_key(apikey or bearer, keys, verifier)


async def _from_key(key: str, keys: LocalKeys, verifier: tokens.TokenVerifier | None) -> Caller:
    # Compare against both keys every time: no early exit to time.
    is_secret = hmac.compare_digest(key.encode(), keys.secret.encode())
    is_publishable = hmac.compare_digest(key.encode(), keys.publishable.encode())
    if is_secret:
        return Caller("service_role", {"role": "service_role"})
    if is_publishable:
        return Caller(ANON, {"role": ANON})
    if is_jwt(key):
        return await _from_jwt(key, keys, verifier)
    raise _invalid_key()


def _invalid_key() -> GatewayError:
    return GatewayError(
        401, None, "Invalid API key", hint="Double check your Supabase `anon` or `service_role` API key."
    )


async def _from_jwt(token: str, keys: LocalKeys, verifier: tokens.TokenVerifier | None) -> Caller:
    if verifier is not None and _algorithm(token) in _SIGNING_KEY_ALGORITHMS:
        claims = await _verified_session(token, verifier)
    else:
        claims = _hs256_claims(token, keys)
    return _caller(claims)


def _algorithm(token: str) -> object:
    try:
        return jwt.get_unverified_header(token).get("alg")
    except (jwt.PyJWTError, RecursionError):
        return None  # the HS256 path reports it as undecodable


async def _verified_session(token: str, verifier: tokens.TokenVerifier) -> dict[str, Any]:
    try:
        return (await verifier.verify(token)).claims
    except ApiError as exc:
        raise _session_error(exc) from None


def _hs256_claims(token: str, keys: LocalKeys) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            keys.jwt_secret,
            algorithms=["HS256"],
            leeway=CLOCK_SKEW_SECONDS,
            # PostgREST checks aud only when configured to; Supabase does not.
            options={"verify_aud": False},
        )
    except jwt.PyJWTError as exc:
        raise _jwt_error(exc) from None
    return claims


def _caller(claims: dict[str, Any]) -> Caller:
    role = claims.get("role", ANON)
    if not isinstance(role, str):
        # PostgREST: a claim of the wrong type is a claims check that failed.
        message = f"JWT claim 'role' must be a string, not {_json_type(role)}"
        header = f'Bearer error="invalid_token", error_description="{message}"'
        raise RestError(401, "PGRST303", message, headers={"WWW-Authenticate": header})
    if role not in API_ROLES:
        raise RestError(403, "42501", f'permission denied to set role "{role}"')
    return Caller(str(role), claims)


def _json_type(value: object) -> str:
    """The JSON name of a decoded claim's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    return "an object"


_SIGNING_KEY_ALGORITHMS = ("ES256", "RS256")

# The verifier's refusals → PostgREST's code and message for the same problem.
_SESSION_ERRORS = {
    tokens.EXPIRED: ("PGRST303", "JWT expired"),
    tokens.WRONG_AUDIENCE: ("PGRST303", "JWT not in audience"),
    tokens.BAD_SIGNATURE: ("PGRST301", "JWT cryptographic operation failed"),
    tokens.UNKNOWN_KID: ("PGRST301", "No suitable key or wrong key type"),
    tokens.MALFORMED: ("PGRST301", "JWT couldn't be decoded"),
}


def _session_error(exc: ApiError) -> RestError:
    """A refusal of shared.tokens as PostgREST words it; its own sentence in
    `details`. A claim check it adds later reads as PostgREST's claims error."""
    if exc.status != 401:  # the key set could not be fetched
        return RestError(503, "PGRST000", "Database connection error. Retrying the connection.", exc.message)
    code, message = _SESSION_ERRORS.get(exc.message, ("PGRST303", "Parsing claims failed"))
    header = f'Bearer error="invalid_token", error_description="{message}"'
    return RestError(401, code, message, details=exc.message, headers={"WWW-Authenticate": header})


def _jwt_error(exc: jwt.PyJWTError) -> RestError:
    """PostgREST's wording: decoding problems are PGRST301, claim checks PGRST303."""
    code, message = "PGRST301", "JWT couldn't be decoded"
    if isinstance(exc, jwt.ExpiredSignatureError):
        code, message = "PGRST303", "JWT expired"
    elif isinstance(exc, jwt.ImmatureSignatureError):
        iat = "(iat)" in str(exc)
        code, message = "PGRST303", "JWT issued at future" if iat else "JWT not yet valid"
    elif isinstance(exc, jwt.InvalidAlgorithmError):
        message = "Wrong or unsupported encoding algorithm"
    elif isinstance(exc, jwt.InvalidSignatureError):
        message = "JWT cryptographic operation failed"
    header = f'Bearer error="invalid_token", error_description="{message}"'
    return RestError(401, code, message, headers={"WWW-Authenticate": header})
