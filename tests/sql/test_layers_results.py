"""Results stay valid with coverage: the covered users split by the weights,
so the sample-ratio check holds, before and after a ramp."""

from __future__ import annotations

import datetime as dt
import json

import psycopg

from devstack import results_report
from shared.results import SRM_ALPHA
from tests.sql.conftest import ADMIN, uuids

KEY = "cov"
VARIANTS = [{"name": "control", "weight": 1}, {"name": "treatment", "weight": 3}]
DAY = dt.date(2026, 1, 10)


def serve(conn: psycopg.Connection, users: list[object], at: str) -> None:
    """Assign each user and log one impression tagged with the map it got."""
    conn.execute(
        "insert into rec_impressions (user_id, request_context, created_at)"
        " select u, jsonb_build_object('experiments', rec_assign_variants(u)), %s::timestamptz"
        "   from unnest(%s::uuid[]) u",
        [at, users],
    )


def test_covered_users_split_by_weights_before_and_after_a_ramp(db: psycopg.Connection) -> None:
    db.execute(
        "select rec_create_experiment(%s, %s::jsonb, %s, salt => 'cov-salt', coverage => 0.2)",
        [KEY, json.dumps(VARIANTS), ADMIN],
    )
    db.execute("select rec_activate_experiment(%s, %s)", [KEY, ADMIN])
    db.execute("update rec_experiments set started_at = '2026-01-10T00:00:00Z' where key = %s", [KEY])
    users = uuids(6000, seed=2301)
    serve(db, users, "2026-01-10T08:00:00Z")
    early = results_report.fetch(db, KEY, DAY, DAY)
    assigned = early["health"]["assigned_users"]
    assert 0.17 * len(users) < assigned < 0.23 * len(users)
    assert early["health"]["exposed_users"] == assigned  # the uncovered were tagged with nothing
    assert early["health"]["srm"] is False and early["health"]["srm_p_value"] > SRM_ALPHA
    assert early["health"]["untagged_impressions"] == 0

    db.execute("select rec_update_experiment(%s, %s, coverage => 0.6)", [KEY, ADMIN])
    serve(db, users, "2026-01-10T20:00:00Z")
    late = results_report.fetch(db, KEY, DAY, DAY)
    grown = late["health"]["assigned_users"]
    assert 0.56 * len(users) < grown < 0.64 * len(users)
    assert late["health"]["srm"] is False and late["health"]["srm_p_value"] > SRM_ALPHA
    users_by_variant = {v["variant"]: v["users"] for v in late["variants"]}
    assert sum(users_by_variant.values()) == grown
    assert abs(users_by_variant["treatment"] / grown - 0.75) < 0.03
