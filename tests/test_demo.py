"""The demo's measured lift lands near the true effect it simulates."""

from __future__ import annotations

import psycopg

from devstack import demo, migrate, postgres


def test_demo_measures_the_true_lift(pg_server: postgres.Server) -> None:
    plan = demo.Plan(users=1200, days=3, seed=11, lift=0.10, key="demo-test")
    with postgres.fresh_database(pg_server, "rec_demo") as url:
        migrate.migrate(url, seed=True)
        with psycopg.connect(url, autocommit=True) as conn:
            key = demo.play(conn, plan)
            results = demo.measure(conn, key)
            tagged_days = conn.execute(
                "select count(distinct day) from rec_variant_daily_metrics_v1 where experiment_key = %s",
                [key],
            ).fetchone()
    by_variant = {r.variant: r for r in results}
    assert set(by_variant) == {"control", "treatment"}
    assert sum(r.users for r in results) == plan.users
    assert sum(r.impressions for r in results) == plan.users * plan.days * demo.IMPRESSIONS_PER_REQUEST
    assert all(r.outcomes > r.engaged > 0 for r in results)  # saves follow some clicks
    assert tagged_days == (plan.days,)
    measured, half_width, _ = demo.lift(results)
    assert abs(measured - plan.lift) < half_width  # the 95% CI covers the truth
    assert abs(measured - plan.lift) < 0.06
    assert "measured lift" in demo.report(key, plan, results)
