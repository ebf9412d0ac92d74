"""`recsys-exp demo` over the supabase client against a running stack: the
measured lift lands near the true effect it simulates, and the experiment
ends afterwards unless --keep-active."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from supabase import acreate_client

from devstack import cli, demo, migrate, postgres
from tests.support.stack import Stack, poll, serve_stack


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
    answer = await demo.measure(sb, key, plan)
    variants = {v["variant"]: v for v in answer["variants"]}
    assert set(variants) == {"control", "treatment"}
    assert answer["health"]["analysed_users"] == sum(v["users"] for v in variants.values()) == plan.users
    assert answer["health"]["srm"] is False and answer["warnings"] == []
    impressions = plan.users * plan.days * demo.IMPRESSIONS_PER_REQUEST
    assert sum(v["impressions"] for v in variants.values()) == impressions
    # Saves follow some clicks.
    assert all(v["outcomes"] > v["engaged_impressions"] > 0 for v in variants.values())
    assigned = demo_stack.sql(
        """select a.variant, count(*) from rec_user_experiment_assignments a
             join rec_experiments e on e.id = a.experiment_id where e.key = %s group by 1""",
        [key],
    )
    assert dict(assigned) == {v: len(users) for v, users in served.items()}
    assert {v: len(users) for v, users in served.items()} == {v: r["users"] for v, r in variants.items()}
    tagged_days = demo_stack.sql(
        "select count(distinct day) from rec_variant_daily_metrics_v1 where experiment_key = %s", [key]
    )
    assert tagged_days == [(plan.days,)]
    lift = demo.engagement_lift(answer)
    assert lift["lift_ci_low"] < plan.lift < lift["lift_ci_high"]  # the 95% interval covers the truth
    assert abs(lift["lift"] - plan.lift) < 0.06
    await demo.end(sb, key)
    assert demo_stack.sql("select status from rec_experiments where key = %s", [key]) == [("ended",)]


@pytest.mark.parametrize("keep_active", [False, True])
def test_demo_command_reports_and_ends_its_experiment(
    demo_stack: Stack, keep_active: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["demo", "--url", demo_stack.url, "--key", demo_stack.keys.secret, "--users", "40", "--days", "1"]
    assert cli.main(argv + (["--keep-active"] if keep_active else [])) == 0
    out = capsys.readouterr().out
    assert "engagement_rate" in out and "baseline control" in out
    key = out.split("experiment ", 1)[1].split(":", 1)[0]
    status = demo_stack.sql("select status from rec_experiments where key = %s", [key])
    assert status == [("active",)] if keep_active else [("ended",)]
    assert f"experiment {key} {'left active (--keep-active)' if keep_active else 'ended'}" in out


def _demo_argv(stack: Stack, users: int = 40, days: int = 1) -> list[str]:
    return [
        "demo",
        "--url",
        stack.url,
        "--key",
        stack.keys.secret,
        "--users",
        str(users),
        "--days",
        str(days),
    ]


def _demo_experiments(stack: Stack) -> dict[str, str]:
    return dict(stack.sql("select key, status from rec_experiments where key like 'demo-%'"))


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (httpx.ReadError(""), "a request to {url} failed: ReadError (no message)"),
        (
            httpx.RemoteProtocolError("Server disconnected"),
            "failed: RemoteProtocolError: Server disconnected",
        ),
        (RuntimeError("boom"), "unexpected RuntimeError: boom"),
    ],
    ids=["read-error", "protocol-error", "other"],
)
def test_a_failing_demo_ends_its_experiment_and_says_the_error(
    demo_stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: BaseException,
    said: str,
) -> None:
    before = _demo_experiments(demo_stack)

    async def failing(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(demo, "log_traffic", failing)
    for keep_active in (False, True):  # a failure ends it even with --keep-active
        argv = _demo_argv(demo_stack) + (["--keep-active"] if keep_active else [])
        assert cli.main(argv) == 1
        captured = capsys.readouterr()
        assert said.format(url=demo_stack.url) in captured.out + captured.err
        assert "cannot reach" not in captured.out
        [(key, status)] = [(k, s) for k, s in _demo_experiments(demo_stack).items() if k not in before]
        assert status == "ended"
        assert f"experiment {key} ended" in captured.err
        before[key] = status


def test_ctrl_c_ends_the_demos_experiment(demo_stack: Stack) -> None:
    """SIGINT while the demo plays traffic: exit 130, the experiment ended."""
    before = _demo_experiments(demo_stack)
    command = [sys.executable, "-m", "devstack.cli", *_demo_argv(demo_stack, users=2000, days=30)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        poll(
            lambda: "active" in [s for k, s in _demo_experiments(demo_stack).items() if k not in before],
            limit=60,
            what="the demo's experiment active",
        )
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, (out, err)
    [status] = [s for k, s in _demo_experiments(demo_stack).items() if k not in before]
    assert status == "ended"
    assert "interrupted" in err and "ended" in err
