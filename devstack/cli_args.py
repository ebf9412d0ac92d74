"""How `recsys-exp` reports bad arguments and failures: one line on stderr,
never a traceback.

    recsys-exp: error: <what is wrong and what to do>

Exit status 2 for a usage error (argparse's convention), 1 for a failure
while running. `RECSYS_DEBUG=1` adds the traceback of an unexpected error.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import NoReturn

PROG = "recsys-exp"
USAGE_ERROR = 2
RUNTIME_ERROR = 1


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and subcommands inherit it)."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix(PROG).strip()
        where = f"{command}: " if command else ""
        hint = f" (see `{self.prog} --help`)"
        self.exit(USAGE_ERROR, f"{PROG}: error: {where}{one_line(message)}{hint}\n")


def database_url(value: str) -> str:
    """A libpq connection string or postgresql:// URL that libpq can parse."""
    try:
        import psycopg  # the dev extra: without it, the command says what to install
    except ModuleNotFoundError:
        return value
    try:
        psycopg.conninfo.conninfo_to_dict(value)
    except psycopg.Error as exc:
        raise argparse.ArgumentTypeError(
            f"not a Postgres connection string ({one_line(exc)}); "
            "expected e.g. postgresql://postgres@127.0.0.1:5432/postgres"
        ) from None
    if not value.strip():
        raise argparse.ArgumentTypeError("empty; expected e.g. postgresql://postgres@127.0.0.1:5432/postgres")
    return value


def port(value: str) -> int:
    number = _int(value)
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (0-65535; 0 picks a free one)")
    return number


def positive_int(value: str) -> int:
    number = _int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return number


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None


def one_line(message: object) -> str:
    """The first non-empty line of a message (library errors can span several)."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return lines[0] if lines else type(message).__name__


def fail(message: object) -> int:
    """Print a runtime failure as one line; the exit status to return."""
    print(f"{PROG}: error: {one_line(message)}", file=sys.stderr)
    return RUNTIME_ERROR


def unexpected(exc: BaseException) -> int:
    """An error nobody anticipated: still one line, the traceback on request."""
    if os.environ.get("RECSYS_DEBUG"):
        traceback.print_exception(exc)
    return fail(f"unexpected {type(exc).__name__}: {one_line(exc)} (set RECSYS_DEBUG=1 to see the traceback)")
