"""`recsys-exp` with bad arguments or an unusable setup: one line on stderr
(`recsys-exp: error: …`), exit 2 for usage and 1 for failures, never a
traceback. Each case is a real subprocess, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.keys import DEFAULT_JWT_SECRET


def recsys_exp(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "RECSYS_"))}
    return subprocess.run(
        [sys.executable, "-m", "devstack.cli", *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=60,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], status: int, *needles: str) -> None:
    assert result.returncode == status, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("recsys-exp: error: "), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    "args, needles",
    [
        (["migrate", "--database-url", "garbage"], ["--database-url", "postgresql://"]),
        (["dev", "--database-url", "host=x port"], ["--database-url"]),
        (["dev", "--port", "eighty"], ["--port", "eighty"]),
        (["dev", "--port", "70000"], ["--port", "0-65535"]),
        (["demo", "--users", "0"], ["--users"]),
        (["demo", "--days", "-3"], ["--days"]),
        (["migrate", "--regime", "sometimes"], ["--regime"]),
        (["migrate", "--no-such-flag"], ["--no-such-flag"]),
        (["nonsense"], ["nonsense"]),
        ([], ["command"]),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args: list[str], needles: list[str]) -> None:
    assert_one_line_error(recsys_exp(*args), 2, *needles)


def test_a_garbage_database_url_from_the_environment_is_a_usage_error_too() -> None:
    assert_one_line_error(recsys_exp("migrate", env={"DATABASE_URL": "garbage"}), 2, "--database-url")


def test_an_unreachable_database_is_one_line_and_exit_1() -> None:
    result = recsys_exp("migrate", "--database-url", "postgresql://postgres@127.0.0.1:1/postgres")
    assert_one_line_error(result, 1, "cannot connect", "127.0.0.1")


def test_a_database_url_libpq_refuses_is_one_line_and_exit_1() -> None:
    result = recsys_exp("migrate", "--database-url", "postgresql://u@127.0.0.1:notaport/db")
    assert_one_line_error(result, 1, "notaport")


def test_a_data_dir_that_cannot_exist_is_one_line_and_exit_1(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert_one_line_error(recsys_exp("migrate", "--data-dir", str(blocker / "pg")), 1, str(blocker))


def test_dev_beyond_loopback_with_the_default_keys_is_refused() -> None:
    result = recsys_exp("dev", "--host", "0.0.0.0", "--port", "0")
    assert_one_line_error(result, 1, "refusing to listen on 0.0.0.0", "RECSYS_SECRET_KEY", "--host 127.0.0.1")


def test_dev_refuses_a_short_secret_key() -> None:
    result = recsys_exp("dev", "--port", "0", env={"RECSYS_SECRET_KEY": "sb_secret_12345"})
    assert_one_line_error(result, 1, "RECSYS_SECRET_KEY", "32")


def test_dev_beyond_loopback_with_only_the_default_jwt_secret_is_refused() -> None:
    env = {"RECSYS_SECRET_KEY": "sb_secret_" + "s" * 32, "RECSYS_JWT_SECRET": DEFAULT_JWT_SECRET}
    result = recsys_exp("dev", "--host", "0.0.0.0", "--port", "0", env=env)
    assert_one_line_error(result, 1, "RECSYS_JWT_SECRET")
    assert "RECSYS_SECRET_KEY" not in result.stderr


def test_dev_refuses_an_unusable_body_timeout_before_starting_anything(tmp_path: Path) -> None:
    env = {"RECSYS_BODY_TIMEOUT": "soon"}
    result = recsys_exp("dev", "--port", "0", "--data-dir", str(tmp_path), env=env)
    assert_one_line_error(result, 1, "RECSYS_BODY_TIMEOUT")
    assert list(tmp_path.iterdir()) == []


def test_functions_server_refuses_a_bad_port_in_one_line() -> None:
    env = {"SUPABASE_URL": "http://127.0.0.1:1", "SUPABASE_SERVICE_ROLE_KEY": "x" * 40, "PORT": "http"}
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "RECSYS_"))}
    result = subprocess.run(
        [sys.executable, "-m", "functions"], capture_output=True, text=True, env={**clean, **env}, timeout=60
    )
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        "functions: PORT must be a TCP port number (0-65535), got 'http'"
    ]
