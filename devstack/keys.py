"""The local stack's API keys: LOCAL DEVELOPMENT ONLY.

The defaults are the Supabase CLI's well-known local keys (published in its
docs and printed by `supabase start`), so anything that already works
against `supabase start` works against `recsys-exp dev` unchanged. They are
public knowledge: never use them for a database anyone else can reach.

Override them with RECSYS_PUBLISHABLE_KEY, RECSYS_SECRET_KEY and
RECSYS_JWT_SECRET. The legacy anon and service_role keys are JWTs minted
from the JWT secret exactly as the CLI mints them (HS256, iss
"supabase-demo", the same far-off expiry), so with the default secret they
are the CLI's own tokens, byte for byte.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

DEFAULT_PUBLISHABLE_KEY = "sb_publishable_ACJWlzQHlZjBrEguHvfOxg_3BJgxAaH"
DEFAULT_SECRET_KEY = "sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz"
DEFAULT_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"

LEGACY_ISSUER = "supabase-demo"
LEGACY_EXPIRY = 1983812996  # 2032-11-11, the expiry the CLI's demo tokens carry
MIN_JWT_SECRET_LENGTH = 32  # Supabase refuses shorter JWT secrets
MIN_SECRET_KEY_LENGTH = 32  # a guessable secret key is an admin password anyone can try


class InvalidKeys(ValueError):
    """A configured key is unusable; the message names the variable."""


@dataclass(frozen=True, repr=False)
class LocalKeys:
    """The keys one local stack accepts. `repr` never shows them."""

    publishable: str = DEFAULT_PUBLISHABLE_KEY
    secret: str = DEFAULT_SECRET_KEY
    jwt_secret: str = DEFAULT_JWT_SECRET
    anon_jwt: str = field(init=False)
    service_role_jwt: str = field(init=False)

    def __post_init__(self) -> None:
        if len(self.jwt_secret) < MIN_JWT_SECRET_LENGTH:
            raise InvalidKeys(f"RECSYS_JWT_SECRET must be at least {MIN_JWT_SECRET_LENGTH} characters")
        if not self.publishable or not self.secret or self.publishable == self.secret:
            raise InvalidKeys("RECSYS_PUBLISHABLE_KEY and RECSYS_SECRET_KEY must be set and differ")
        if len(self.secret) < MIN_SECRET_KEY_LENGTH:
            raise InvalidKeys(
                f"RECSYS_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters "
                "(e.g. sb_secret_ followed by the output of `openssl rand -hex 24`)"
            )
        object.__setattr__(self, "anon_jwt", self.legacy_jwt("anon"))
        object.__setattr__(self, "service_role_jwt", self.legacy_jwt("service_role"))

    def __repr__(self) -> str:
        return "LocalKeys(<local development keys>)"

    def public_defaults(self) -> list[str]:
        """The variables still at their published default, whose value anyone knows."""
        defaults = [("RECSYS_SECRET_KEY", self.secret, DEFAULT_SECRET_KEY)]
        defaults.append(("RECSYS_JWT_SECRET", self.jwt_secret, DEFAULT_JWT_SECRET))
        return [name for name, value, default in defaults if value == default]

    def legacy_jwt(self, role: str) -> str:
        """The CLI's legacy API-key JWT for `role` (claim order matters for byte equality)."""
        return self.sign({"iss": LEGACY_ISSUER, "role": role, "exp": LEGACY_EXPIRY})

    def sign(self, claims: Mapping[str, Any]) -> str:
        return jwt.encode(dict(claims), self.jwt_secret, algorithm="HS256")

    def user_jwt(self, user_id: str, *, expires_in: int = 3600, **extra: Any) -> str:
        """A signed-in user's access token, shaped like Supabase Auth's."""
        now = int(time.time())
        claims = {
            "sub": user_id,
            "role": "authenticated",
            "aud": "authenticated",
            "iat": now,
            "exp": now + expires_in,
            **extra,
        }
        return self.sign(claims)


def from_env(environ: Mapping[str, str] | None = None) -> LocalKeys:
    """The defaults, overridden by RECSYS_* variables that are set and non-empty."""
    env = os.environ if environ is None else environ
    return LocalKeys(
        publishable=env.get("RECSYS_PUBLISHABLE_KEY") or DEFAULT_PUBLISHABLE_KEY,
        secret=env.get("RECSYS_SECRET_KEY") or DEFAULT_SECRET_KEY,
        jwt_secret=env.get("RECSYS_JWT_SECRET") or DEFAULT_JWT_SECRET,
    )


def check_exposure(host: str, keys: LocalKeys) -> None:
    """Refuse to listen beyond loopback while the secret key or the JWT
    secret is the published default: anyone who can reach the port could
    act as service_role. Raises InvalidKeys with a one-line reason."""
    defaults = keys.public_defaults()
    if not defaults or is_loopback(host):
        return
    raise InvalidKeys(
        f"refusing to listen on {host or 'every interface'} with the public default "
        f"{' and '.join(defaults)} (anyone who can reach the port would be an admin); "
        f"set {' and '.join(defaults)} to your own values of at least 32 characters, "
        "or keep --host 127.0.0.1"
    )


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address) is reachable only from this machine."""
    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    return all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in found)
