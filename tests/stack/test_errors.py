"""PostgREST's SQLSTATE → HTTP status table (src/PostgREST/Error.hs)."""

from __future__ import annotations

import pytest

from devstack.rest_errors import http_status


@pytest.mark.parametrize(
    ("sqlstate", "status"),
    [
        ("P0001", 400),
        ("P0002", 500),
        ("P0004", 500),
        ("23505", 409),
        ("23503", 409),
        ("23502", 400),
        ("23514", 400),
        ("22P02", 400),
        ("22023", 400),
        ("22007", 400),
        ("42883", 404),
        ("42P01", 404),
        ("42P17", 500),
        ("42703", 400),
        ("25006", 405),
        ("25001", 500),
        ("08006", 503),
        ("08000", 503),
        ("57P01", 503),
        ("57014", 500),
        ("55000", 500),
        ("55P03", 500),
        ("40001", 500),
        ("40P01", 500),
        ("53300", 503),
        ("53400", 500),
        ("28000", 403),
        ("0P000", 403),
        ("XX000", 500),
        ("PT402", 402),
        ("PT418", 418),
        ("PTabc", 500),
        ("PT999", 500),
    ],
)
def test_status_for_sqlstate(sqlstate: str, status: int) -> None:
    assert http_status(sqlstate, "message", authenticated=True) == status


def test_insufficient_privilege_depends_on_the_role() -> None:
    assert http_status("42501", "permission denied", authenticated=False) == 401
    assert http_status("42501", "permission denied", authenticated=True) == 403


def test_special_messages() -> None:
    assert http_status("22023", 'role "nobody" does not exist', authenticated=True) == 401
    assert http_status("21000", "DELETE requires a WHERE clause", authenticated=True) == 400
    assert http_status("21000", "more than one row returned", authenticated=True) == 500
