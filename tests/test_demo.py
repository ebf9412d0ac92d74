"""The demo's measured lift lands near the true effect it simulates, and it
reports through the same per-user results as admin-experiment-results."""

from __future__ import annotations

import psycopg

from devstack import demo, migrate, postgres


def test_demo_measures_the_true_lift(pg_server: postgres.Server) -> None:
    plan = demo.Plan(users=1200, days=3, seed=11, lift=0.10, key="demo-test")
    with postgres.fresh_database(pg_server, "rec_demo") as url:
        migrate.migrate(url, seed=True)
        with psycopg.connect(url, autocommit=True) as conn:
            key = demo.play(conn, plan)
            answer = demo.measure(conn, key, plan)
            tagged_days = conn.execute(
                "select count(distinct day) from rec_variant_daily_metrics_v1 where experiment_key = %s",
                [key],
            ).fetchone()
    variants = {v["variant"]: v for v in answer["variants"]}
    assert set(variants) == {"control", "treatment"}
    assert answer["health"]["analysed_users"] == sum(v["users"] for v in variants.values()) == plan.users
    assert answer["health"]["srm"] is False and answer["warnings"] == []
    impressions = plan.users * plan.days * demo.IMPRESSIONS_PER_REQUEST
    assert sum(v["impressions"] for v in variants.values()) == impressions
    # Saves follow some clicks.
    assert all(v["outcomes"] > v["engaged_impressions"] > 0 for v in variants.values())
    assert tagged_days == (plan.days,)
    lift = demo.engagement_lift(answer)
    assert lift["lift_ci_low"] < plan.lift < lift["lift_ci_high"]  # the 95% interval covers the truth
    assert abs(lift["lift"] - plan.lift) < 0.06
    assert "95% interval of lift" in demo.report(plan, answer)
