"""Settings read from the environment Supabase gives its functions.

Keys never appear in ``repr`` or in error messages: a settings object may end
up in a log line or a traceback.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_RPC_TIMEOUT = 10.0
DEFAULT_MAX_BODY_BYTES = 64 * 1024


class ConfigError(RuntimeError):
    """The functions cannot run with this configuration (one-line message)."""


@dataclass(frozen=True, repr=False)
class Settings:
    """Where PostgREST is and which keys are service level."""

    supabase_url: str
    secret_keys: tuple[str, ...] = ()
    service_role_key: str | None = None
    publishable_keys: tuple[str, ...] = ()
    anon_key: str | None = None
    jwt_secret: str | None = None  # verifies HS256 session tokens; ES256/RS256 use the JWKS
    # The ``iss`` of session tokens; default ``$SUPABASE_URL/auth/v1`` (``auth_issuer``).
    jwt_issuer: str | None = None
    rpc_timeout: float = DEFAULT_RPC_TIMEOUT
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    def __post_init__(self) -> None:
        if not self.supabase_url:
            raise ConfigError("SUPABASE_URL is not set: point it at the project API URL")
        if not self.supabase_url.startswith(("http://", "https://")):
            raise ConfigError("SUPABASE_URL must start with http:// or https://")
        if not self.service_keys:
            raise ConfigError(
                "no service-level key: set SUPABASE_SECRET_KEYS "
                '(e.g. {"default": "sb_secret_..."}) or SUPABASE_SERVICE_ROLE_KEY'
            )
        if self.rpc_timeout <= 0 or self.max_body_bytes <= 0:
            raise ConfigError("rpc_timeout and max_body_bytes must be positive")

    def __repr__(self) -> str:
        return (
            f"Settings(supabase_url={self.supabase_url!r}, "
            f"secret_keys=<{len(self.secret_keys)}>, "
            f"service_role_key={'<set>' if self.service_role_key else None}, "
            f"jwt_secret={'<set>' if self.jwt_secret else None})"
        )

    @property
    def service_keys(self) -> tuple[str, ...]:
        """Every key that grants admin access to the functions."""
        legacy = (self.service_role_key,) if self.service_role_key else ()
        return (*self.secret_keys, *legacy)

    @property
    def low_privilege_keys(self) -> tuple[str, ...]:
        """Keys known to be public; only used to explain a refusal."""
        anon = (self.anon_key,) if self.anon_key else ()
        return (*self.publishable_keys, *anon)

    @property
    def jwks_url(self) -> str:
        """Where Supabase Auth publishes the public keys that sign access tokens."""
        return f"{self.supabase_url}/auth/v1/.well-known/jwks.json"

    @property
    def auth_issuer(self) -> str:
        """The ``iss`` Supabase Auth puts in this project's access tokens."""
        return self.jwt_issuer or f"{self.supabase_url}/auth/v1"

    @property
    def client_key(self) -> str:
        """The key the functions' own client sends to PostgREST."""
        return self.service_keys[0]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            supabase_url=env.get("SUPABASE_URL", "").strip().rstrip("/"),
            secret_keys=_key_dict(env, "SUPABASE_SECRET_KEYS"),
            service_role_key=env.get("SUPABASE_SERVICE_ROLE_KEY", "").strip() or None,
            publishable_keys=_key_dict(env, "SUPABASE_PUBLISHABLE_KEYS"),
            anon_key=env.get("SUPABASE_ANON_KEY", "").strip() or None,
            jwt_secret=env.get("SUPABASE_JWT_SECRET", "").strip() or None,
            jwt_issuer=env.get("SUPABASE_JWT_ISSUER", "").strip().rstrip("/") or None,
        )


def _key_dict(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Values of a ``{"name": "key"}`` JSON object, in order; never echoes the value."""
    raw = env.get(name, "").strip()
    if not raw:
        return ()
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise ConfigError(f'{name} is not valid JSON: expected {{"default": "<key>"}}') from None
    if not isinstance(parsed, dict) or not all(isinstance(value, str) and value for value in parsed.values()):
        raise ConfigError(f"{name} must be a JSON object of non-empty key strings")
    return tuple(parsed.values())
