"""The local keys: the Supabase CLI's, byte for byte, unless overridden."""

from __future__ import annotations

import jwt
import pytest

from devstack import keys

# What `supabase start` prints for the default JWT secret.
CLI_ANON_KEY = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6ImFub24iLCJleHAi"
    "OjE5ODM4MTI5OTZ9.CRXP1A7WOeoJeXxjNni43kdQwgnWNReilDMblYTn_I0"
)
CLI_SERVICE_ROLE_KEY = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6InNlcnZpY2Vfcm9s"
    "ZSIsImV4cCI6MTk4MzgxMjk5Nn0.EGIM96RAZx35lJzdJsyH-qQwv8Hdp7fsn3W0YpN81IU"
)


MY_SECRET = "sb_secret_" + "m" * 32
MY_JWT_SECRET = "j" * 40


def test_defaults_are_the_cli_keys() -> None:
    k = keys.from_env({})
    assert k.publishable == "sb_publishable_ACJWlzQHlZjBrEguHvfOxg_3BJgxAaH"
    assert k.secret == "sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz"
    assert k.jwt_secret == "super-secret-jwt-token-with-at-least-32-characters-long"
    assert (k.anon_jwt, k.service_role_jwt) == (CLI_ANON_KEY, CLI_SERVICE_ROLE_KEY)


def test_environment_overrides_and_legacy_jwts_follow_the_secret() -> None:
    secret = "x" * 40
    k = keys.from_env(
        {
            "RECSYS_PUBLISHABLE_KEY": "sb_publishable_mine",
            "RECSYS_SECRET_KEY": MY_SECRET,
            "RECSYS_JWT_SECRET": secret,
        }
    )
    assert (k.publishable, k.secret) == ("sb_publishable_mine", MY_SECRET)
    claims = jwt.decode(k.service_role_jwt, secret, algorithms=["HS256"])
    assert claims == {"iss": "supabase-demo", "role": "service_role", "exp": keys.LEGACY_EXPIRY}


@pytest.mark.parametrize(
    "env",
    [
        {"RECSYS_JWT_SECRET": "too-short"},
        {"RECSYS_SECRET_KEY": keys.DEFAULT_PUBLISHABLE_KEY},
        {"RECSYS_SECRET_KEY": "sb_secret_12345"},  # a secret key anyone could guess
        {"RECSYS_SECRET_KEY": "x" * 31},
    ],
)
def test_unusable_keys_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(keys.InvalidKeys):
        keys.from_env(env)


def test_repr_never_shows_a_key() -> None:
    k = keys.LocalKeys()
    assert k.secret not in repr(k) and k.jwt_secret not in repr(k)


def test_user_jwt_looks_like_supabase_auth() -> None:
    k = keys.LocalKeys()
    claims = jwt.decode(
        k.user_jwt("00000000-0000-4000-8000-000000000001"),
        k.jwt_secret,
        algorithms=["HS256"],
        audience="authenticated",
    )
    assert claims["role"] == "authenticated" and claims["exp"] > claims["iat"]


def test_a_secret_key_of_32_characters_is_enough() -> None:
    assert keys.from_env({"RECSYS_SECRET_KEY": "x" * 32}).secret == "x" * 32


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"])
def test_loopback_with_the_default_keys_is_fine(host: str) -> None:
    keys.check_exposure(host, keys.from_env({}))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.0.2.10"])
@pytest.mark.parametrize(
    "env, named",
    [
        ({}, "RECSYS_SECRET_KEY and RECSYS_JWT_SECRET"),
        ({"RECSYS_SECRET_KEY": MY_SECRET}, "RECSYS_JWT_SECRET"),
        ({"RECSYS_JWT_SECRET": MY_JWT_SECRET}, "RECSYS_SECRET_KEY"),
    ],
)
def test_beyond_loopback_the_public_defaults_are_refused(host: str, env: dict[str, str], named: str) -> None:
    with pytest.raises(keys.InvalidKeys) as refused:
        keys.check_exposure(host, keys.from_env(env))
    message = str(refused.value)
    assert "\n" not in message and f"default {named} " in message and "--host 127.0.0.1" in message


def test_beyond_loopback_own_keys_are_accepted() -> None:
    own = keys.from_env({"RECSYS_SECRET_KEY": MY_SECRET, "RECSYS_JWT_SECRET": MY_JWT_SECRET})
    keys.check_exposure("0.0.0.0", own)
