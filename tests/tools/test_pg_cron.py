"""README's two pure-SQL schedules, run by pg_cron for real (Debian's
postgresql-15-cron, preloaded in a throwaway cluster): within about 90 s a
due salt is rotated with a `scheduled` audit row, and yesterday's rollups
are built. pg_cron 1.4 has no seconds syntax, so both run every minute."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import psycopg
import pytest

from devstack import migrate
from devstack.platform import OWNER
from tests.tools.cluster import throwaway_cluster
from tests.tools.conftest import missing

# As README schedules them (at the smallest interval pg_cron 1.4 has).
JOBS = {
    "rotate-salts": "select public.rec_rotate_due_salts()",
    "refresh-rollups": "call public.rec_refresh_daily_rollups_by_day()",
}
LIMIT = 150.0  # seconds: the next minute boundary (about 60 s), with room for a busy machine


@pytest.fixture(scope="module")
def cron_db() -> Iterator[str]:
    from tests.tools.conftest import PG_BIN

    if not (PG_BIN.parent / "lib" / "pg_cron.so").exists():
        missing("pg_cron is not installed for PostgreSQL 15 (Debian: postgresql-15-cron)")
    settings = {
        "shared_preload_libraries": "'pg_cron'",
        "cron.database_name": "'postgres'",
        "cron.host": "'127.0.0.1'",
    }
    with throwaway_cluster(settings) as url:
        migrate.migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("create extension pg_cron")
            # as on Supabase: the owner logs in and schedules its own jobs
            conn.execute(f"alter role {OWNER} login")
            conn.execute(f"grant usage on schema cron to {OWNER}")
        yield url


def test_readme_schedules_rotate_a_due_salt_and_refresh_rollups(cron_db: str) -> None:
    with psycopg.connect(cron_db, autocommit=True) as conn:
        conn.execute(f"set role {OWNER}")
        conn.execute(
            "select public.rec_create_experiment(experiment_key => 'cron-due',"
            ' variants => \'[{"name": "a", "weight": 1}]\', admin_id => %s,'
            " salt_rotation_interval => '1 day')",
            ["00000000-0000-4000-8000-00000000ad01"],
        )
        conn.execute(
            "select public.rec_activate_experiment('cron-due', '00000000-0000-4000-8000-00000000ad01')"
        )
        # set the clock back as the owner may: the salt is two days old, so due
        conn.execute("update public.rec_experiments set salt_rotated_at = now() - interval '2 days'")
        [salt] = (
            conn.execute("select salt from public.rec_experiments where key = 'cron-due'").fetchone() or []
        )
        conn.execute(
            "insert into public.rec_impressions (user_id, item_id, request_context, created_at)"
            " values (gen_random_uuid(), 'item', %s, now() - interval '1 day')",
            [json.dumps({"experiments": {"cron-due": "a"}})],
        )
        for name, command in JOBS.items():
            conn.execute("select cron.schedule(%s, '* * * * *', %s)", [name, command])
        runs = wait_for_runs(conn)
        assert runs == {name: "succeeded" for name in JOBS}, runs

        [new_salt] = (
            conn.execute("select salt from public.rec_experiments where key = 'cron-due'").fetchone() or []
        )
        assert new_salt != salt
        audit = conn.execute(
            "select actor_id, details from public.rec_audit_log where action = 'rotate_salt' order by id"
        ).fetchall()
        assert len(audit) == 1 and audit[0][0] is None and audit[0][1]["scheduled"] is True, audit
        rolled = conn.execute(
            "select r.day, r.impressions from rec_internal.rollup_variant_day r"
            " join rec_internal.rollup_arms a using (arm_id) where a.experiment_key = 'cron-due'"
        ).fetchall()
        assert [n for _, n in rolled] == [1], rolled
        assert conn.execute(
            "select count(*) from rec_internal.rollup_dirty_days where day < current_date"
        ).fetchone() == (0,)


def wait_for_runs(conn: psycopg.Connection) -> dict[str, str]:
    """Each job's first finished run (status), polling cron.job_run_details."""
    deadline = time.monotonic() + LIMIT
    while True:
        rows = conn.execute(
            "select distinct on (j.jobname) j.jobname, d.status, d.return_message"
            "  from cron.job_run_details d join cron.job j using (jobid)"
            " where d.status in ('succeeded', 'failed') order by j.jobname, d.runid"
        ).fetchall()
        if len(rows) == len(JOBS) or time.monotonic() > deadline:
            failed = [f"{name}: {message}" for name, status, message in rows if status != "succeeded"]
            assert not failed, failed
            return {name: status for name, status, _ in rows}
        time.sleep(1)
