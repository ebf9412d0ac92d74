"""A small stand-in for Supabase Auth (GoTrue) in the local stack: the part
a dashboard's sign-in uses, with GoTrue's request and answer shapes.

    POST /auth/v1/token?grant_type=password       {"email", "password"}
    POST /auth/v1/token?grant_type=refresh_token  {"refresh_token"}
         → {"access_token", "token_type": "bearer", "expires_in", "expires_at",
            "refresh_token", "user"}
    GET  /auth/v1/user                  the signed-in user (Bearer access token)
    POST /auth/v1/logout[?scope=local]  ends the session (default: all of the user's)
    GET  /auth/v1/.well-known/jwks.json the public key that signs access tokens

Users live in auth.users with a bcrypt ``encrypted_password``; sessions and
single-use refresh tokens in auth.sessions / auth.refresh_tokens
(devstack/auth_users.py). A spent refresh token presented again ends its
session (GoTrue's reuse detection). Request bodies are bounded before they
are read (413), and failed password sign-ins are limited per e-mail and per
client address (429 with ``Retry-After``, devstack/auth_limits.py).
Access tokens are signed ES256 with the stack's key (devstack/auth_keys.py)
and carry Supabase's claims; like a project that moved off its legacy secret,
/auth/v1/user also accepts HS256 tokens signed with the stack's JWT secret.
Every request needs a project key in ``apikey``, as Supabase's gateway demands.

Not implemented: sign-up, magic links, OTP, OAuth, MFA, password recovery,
admin user endpoints, rate limits other than password sign-in's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devstack import auth_users as users
from devstack.auth_keys import SigningKey
from devstack.auth_limits import SignInLimiter
from devstack.keys import LocalKeys
from shared.errors import ApiError
from shared.http import read_body
from shared.tokens import TokenVerifier

log = logging.getLogger("devstack.auth")

ACCESS_TOKEN_SECONDS = 3600
MAX_BODY_BYTES = 64 * 1024
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": (
        "authorization, x-client-info, apikey, content-type, x-supabase-api-version"
    ),
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
}
_READ = ["GET", "HEAD", "OPTIONS"]
_ANY = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
T = TypeVar("T")


def _json(body: Any, status: int = 200) -> Response:
    return JSONResponse(body, status_code=status, headers=_CORS)


def _error(status: int, error_code: str, msg: str, **extra: Any) -> Response:
    """GoTrue's error body (newer fields plus the OAuth-style ones older clients read)."""
    return _json({"code": status, "error_code": error_code, "msg": msg, **extra}, status)


def _invalid_grant(error_code: str, description: str) -> Response:
    return _error(400, error_code, description, error="invalid_grant", error_description=description)


class _Refused(Exception):
    """Stops a request with this answer (raised from inside body reading)."""

    def __init__(self, response: Response) -> None:
        self.response = response


def _too_large(limit: int) -> Exception:
    return _Refused(_error(413, "request_too_large", f"Request body larger than {limit} bytes"))


def _bad_length() -> Exception:
    return _Refused(_error(400, "bad_json", "Content-Length is not a number"))


class AuthApi:
    """The endpoints. ``app`` serves ``/auth/v1/...`` (full paths)."""

    def __init__(
        self,
        database_url: str,
        keys: LocalKeys,
        public_url: str,
        signing_key: SigningKey,
        *,
        limiter: SignInLimiter | None = None,
        reuse_interval: float = users.REUSE_INTERVAL,
    ) -> None:
        self.database_url = database_url
        self.keys = keys
        self.signing_key = signing_key
        self.limiter = limiter or SignInLimiter()
        self.reuse_interval = reuse_interval
        self.issuer = f"{public_url.rstrip('/')}/auth/v1"
        self.verifier = TokenVerifier(
            f"{self.issuer}/.well-known/jwks.json", keys.jwt_secret, self._jwks, issuer=self.issuer
        )
        self.app = Starlette(
            routes=[
                Route("/auth/v1/token", self._token, methods=["POST", "OPTIONS"]),
                Route("/auth/v1/user", self._user, methods=["GET", "OPTIONS"]),
                Route("/auth/v1/logout", self._logout, methods=["POST", "OPTIONS"]),
                Route(
                    "/auth/v1/.well-known/jwks.json", self._jwks_endpoint, methods=["GET", "HEAD", "OPTIONS"]
                ),
                Route(
                    "/auth/v1/{path:path}",
                    self._not_found,
                    methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
                ),
            ]
        )

    async def _jwks(self, url: str) -> Any:
        return self.signing_key.jwks()

    # --- endpoints ---------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            return _json("ok")
        refused = self._refuse_apikey(request)
        if refused:
            return refused
        try:
            body = _parse_json(await read_body(request, MAX_BODY_BYTES, _too_large, _bad_length))
        except _Refused as stop:
            return stop.response
        if body is None:
            return _error(400, "bad_json", "Could not parse request body as JSON")
        grant = request.query_params.get("grant_type", "")
        if grant == "password":
            return await self._password_grant(body, request.client.host if request.client else "")
        if grant == "refresh_token":
            return await self._refresh_grant(body)
        return _error(
            400,
            "unsupported_grant_type",
            "unsupported_grant_type",
            error="unsupported_grant_type",
            error_description="grant_type must be password or refresh_token",
        )

    async def _password_grant(self, body: dict[str, Any], address: str) -> Response:
        email, password = body.get("email"), body.get("password")
        if not isinstance(email, str) or not email.strip():
            return _error(400, "validation_failed", "missing email or phone")
        if not isinstance(password, str):
            return _error(400, "validation_failed", "missing password")
        wait = self.limiter.attempt(email, address)
        if wait is not None:
            response = _error(429, "over_request_rate_limit", "Request rate limit reached")
            response.headers["Retry-After"] = str(wait)
            return response

        def sign_in(conn: psycopg.Connection) -> dict[str, Any] | None:
            user = users.find_by_email(conn, email)
            if not users.check_password(user, password) or user is None:
                return None
            session_id, refresh = users.start_session(conn, str(user["id"]))
            fresh = users.find_by_id(conn, str(user["id"]))
            assert fresh is not None
            return self._session(fresh, session_id, refresh)

        session = await self._db(sign_in)
        if session is None:
            return _invalid_grant("invalid_credentials", "Invalid login credentials")
        self.limiter.succeeded(email, address)
        return _json(session)

    async def _refresh_grant(self, body: dict[str, Any]) -> Response:
        token = body.get("refresh_token")
        if not isinstance(token, str) or not token:
            return _error(400, "validation_failed", "refresh_token required")

        def refresh(conn: psycopg.Connection) -> dict[str, Any] | str:
            rotated = users.rotate_refresh_token(conn, token, self.reuse_interval)
            if isinstance(rotated, str):
                return rotated
            user_id, session_id, new = rotated
            user = users.find_by_id(conn, user_id)
            return self._session(user, session_id, new) if user else users.NOT_FOUND

        session = await self._db(refresh)
        if session == users.ALREADY_USED:
            return _invalid_grant(users.ALREADY_USED, "Invalid Refresh Token: Already Used")
        if isinstance(session, str):
            return _invalid_grant(users.NOT_FOUND, "Invalid Refresh Token: Refresh Token Not Found")
        return _json(session)

    async def _signed_in(self, request: Request) -> dict[str, Any] | Response:
        """The caller's verified claims, or the answer to give instead (a
        preflight, a missing project key, a bad token)."""
        if request.method == "OPTIONS":
            return _json("ok")
        refused = self._refuse_apikey(request)
        if refused:
            return refused
        try:  # neither endpoint takes a body: bound what may come anyway
            await read_body(request, MAX_BODY_BYTES, _too_large, _bad_length)
        except _Refused as stop:
            return stop.response
        return await self._claims(request)

    async def _user(self, request: Request) -> Response:
        claims = await self._signed_in(request)
        if isinstance(claims, Response):
            return claims
        user = await self._db(lambda conn: users.find_by_id(conn, claims["sub"]))
        if user is None:
            return _error(403, "user_not_found", "User from sub claim in JWT does not exist")
        return _json(users.user_json(user))

    async def _logout(self, request: Request) -> Response:
        claims = await self._signed_in(request)
        if isinstance(claims, Response):
            return claims
        scope = request.query_params.get("scope", "global")
        if scope not in ("global", "local", "others"):
            return _error(400, "validation_failed", "scope must be global, local or others")
        session_id = claims.get("session_id")
        user_id = claims["sub"]

        def logout(conn: psycopg.Connection) -> None:
            if scope == "local" and isinstance(session_id, str):
                users.end_sessions(conn, user_id, session_id)
            elif scope == "others":
                conn.execute(
                    "delete from auth.sessions where user_id = %s and id is distinct from %s",
                    [user_id, session_id],
                )
            else:
                users.end_sessions(conn, user_id, None)

        await self._db(logout)
        return Response(status_code=204, headers=_CORS)

    async def _jwks_endpoint(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            return _json("ok")
        return _json(self.signing_key.jwks())

    async def _not_found(self, request: Request) -> Response:
        return _error(404, "not_found", f"{request.url.path} is not served by the local Auth stand-in")

    # --- helpers ---------------------------------------------------------------------

    def _session(self, user: dict[str, Any], session_id: str, refresh_token: str) -> dict[str, Any]:
        now = int(time.time())
        expires_at = now + ACCESS_TOKEN_SECONDS
        profile = users.user_json(user)
        claims = {
            "iss": self.issuer,
            "sub": profile["id"],
            "aud": "authenticated",
            "exp": expires_at,
            "iat": now,
            "email": profile["email"],
            "phone": "",
            "app_metadata": profile["app_metadata"],
            "user_metadata": profile["user_metadata"],
            "role": "authenticated",
            "aal": "aal1",
            "amr": [{"method": "password", "timestamp": now}],
            "session_id": session_id,
            "is_anonymous": False,
        }
        return {
            "access_token": self.signing_key.sign(claims),
            "token_type": "bearer",
            "expires_in": ACCESS_TOKEN_SECONDS,
            "expires_at": expires_at,
            "refresh_token": refresh_token,
            "user": profile,
        }

    def _refuse_apikey(self, request: Request) -> Response | None:
        apikey = request.headers.get("apikey", "")
        known = (self.keys.publishable, self.keys.secret, self.keys.anon_jwt, self.keys.service_role_jwt)
        if not apikey:
            return _json({"message": "No API key found in request"}, 401)
        if apikey not in known:
            return _json({"message": "Invalid API key"}, 401)
        return None

    async def _claims(self, request: Request) -> dict[str, Any] | Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _error(401, "no_authorization", "This endpoint requires a valid Bearer token")
        try:
            session = await self.verifier.verify(token.strip())
        except ApiError as exc:
            return _error(403, "bad_jwt", f"invalid JWT: {exc.message}")
        session_id = session.claims.get("session_id")
        if isinstance(session_id, str):
            alive = await self._db(lambda conn: users.session_exists(conn, session_id))
            if not alive:
                return _error(403, "session_not_found", "Session from session_id claim in JWT does not exist")
        return session.claims

    async def _db(self, work: Callable[[psycopg.Connection], T]) -> T:
        """One short transaction on its own connection, off the event loop."""

        def run() -> T:
            with psycopg.connect(self.database_url) as conn:
                result = work(conn)
                conn.commit()
                return result

        return await asyncio.to_thread(run)


def _parse_json(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw or b"{}")
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
