"""`recsys-exp demo` over the supabase client against a running stack: the
measured lift lands near the true effect it simulates, and the experiment
ends afterwards unless --keep-active."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from supabase import acreate_client

from devstack import cli, demo, migrate, postgres
from tests.support.stack import Stack, serve_stack


@pytest.fixture(scope="module")
def demo_stack(pg_server: postgres.Server) -> Iterator[Stack]:
    """A stack of its own: the demo's active experiment must not show up in
    other tests' rec_assign_variants answers."""
    with postgres.fresh_database(pg_server, "rec_demo") as url:
        migrate.migrate(url)
        with serve_stack(url) as stack:
            yield stack


async def test_demo_measures_the_true_lift(demo_stack: Stack) -> None:
    plan = demo.Plan(users=1000, days=3, seed=11, lift=0.10, key="demo-test")
    sb = await acreate_client(demo_stack.url, demo_stack.keys.secret)
    key, served = await demo.play(sb, plan)
    results = await demo.measure(sb, key, served)
    by_variant = {r.variant: r for r in results}
    assert set(by_variant) == {"control", "treatment"}
    assert sum(r.users for r in results) == plan.users
    assert sum(r.impressions for r in results) == plan.users * plan.days * demo.IMPRESSIONS_PER_REQUEST
    assert all(r.outcomes > r.engaged > 0 for r in results)  # saves follow some clicks
    assigned = demo_stack.sql(
        """select a.variant, count(*) from rec_user_experiment_assignments a
             join rec_experiments e on e.id = a.experiment_id where e.key = %s group by 1""",
        [key],
    )
    assert dict(assigned) == {v: r.users for v, r in by_variant.items()}
    tagged_days = demo_stack.sql(
        "select count(distinct day) from rec_variant_daily_metrics_v1 where experiment_key = %s", [key]
    )
    assert tagged_days == [(plan.days,)]
    measured, half_width, _ = demo.lift(results)
    assert abs(measured - plan.lift) < half_width  # the 95% CI covers the truth
    assert abs(measured - plan.lift) < 0.06
    await demo.end(sb, key)
    assert demo_stack.sql("select status from rec_experiments where key = %s", [key]) == [("ended",)]


@pytest.mark.parametrize("keep_active", [False, True])
def test_demo_command_reports_and_ends_its_experiment(
    demo_stack: Stack, keep_active: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["demo", "--url", demo_stack.url, "--key", demo_stack.keys.secret, "--users", "40", "--days", "1"]
    assert cli.main(argv + (["--keep-active"] if keep_active else [])) == 0
    out = capsys.readouterr().out
    assert "measured lift" in out
    key = out.split("experiment ", 1)[1].split(":", 1)[0]
    status = demo_stack.sql("select status from rec_experiments where key = %s", [key])
    assert status == [("active",)] if keep_active else [("ended",)]
    assert f"experiment {key} {'left active (--keep-active)' if keep_active else 'ended'}" in out
