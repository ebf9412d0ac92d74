"""The pgTAP suite in supabase/tests (what `supabase test db` runs on a
Supabase stack) through Debian's pgTAP and pg_prove, on a freshly migrated
database of the PostgreSQL 15 at 127.0.0.1:5432, under both privilege
regimes, connected as the migration owner as the CLI would be."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from devstack import migrate, postgres
from devstack.platform import OWNER, Regime
from tests.sql.reference import assign
from tests.tools.conftest import PROJECT_ROOT, prepare_platform, require_extension, require_program

TESTS = PROJECT_ROOT / "supabase" / "tests"
KNOWN = TESTS / "00_assignment_rule.test.sql"


def prove(url: str, *files: Path) -> subprocess.CompletedProcess[str]:
    pg_prove = require_program("pg_prove", "libtap-parser-sourcehandler-pgtap-perl")
    params = conninfo_to_dict(url)
    command = [pg_prove, "-h", str(params["host"]), "-p", str(params["port"]), "-U", OWNER]
    return subprocess.run(
        [*command, "-d", str(params["dbname"]), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def migrated(system_pg: postgres.Server, url: str, regime: Regime) -> None:
    require_extension(system_pg, "pgtap", "postgresql-15-pgtap")
    prepare_platform(url, regime)
    migrate.migrate(url, regime=regime)
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:  # not a trusted extension: a superuser adds it
        conn.execute("create extension if not exists pgtap with schema extensions")


@pytest.mark.parametrize("regime", list(Regime), ids=lambda r: r.value)
def test_pgtap_suite_passes(system_pg: postgres.Server, regime: Regime) -> None:
    files = sorted(TESTS.glob("*.sql"))
    assert len(files) >= 4
    with postgres.fresh_database(system_pg, "rec_pgtap") as url:
        migrated(system_pg, url, regime)
        result = prove(url, *files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All tests successful." in result.stdout
    assert re.search(r"Files=\d+, Tests=\d+", result.stdout)


def test_a_failing_pgtap_file_fails_the_run(system_pg: postgres.Server, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.test.sql"
    wrong.write_text(
        KNOWN.read_text().replace(
            "('00000000-0000-4000-8000-000000000005', 'holdout')",
            "('00000000-0000-4000-8000-000000000005', 'control')",
        )
    )
    with postgres.fresh_database(system_pg, "rec_pgtap") as url:
        migrated(system_pg, url, Regime.NONE)
        result = prove(url, wrong)
    assert result.returncode != 0
    assert "rule: 00000000-0000-4000-8000-000000000005" in result.stdout + result.stderr


def test_known_users_match_the_python_rule() -> None:
    """The file's expected variants agree with the rule computed in Python."""
    text = KNOWN.read_text()
    variants = [
        {"name": "control", "weight": 1},
        {"name": "paused", "weight": 0},
        {"name": "treatment", "weight": 2},
        {"name": "holdout", "weight": 0.5},
    ]
    assert "'pgtap-known-salt'" in text and '"holdout", "weight": 0.5' in text
    known = re.findall(r"\('([0-9a-f-]{36})', '(\w+)'\)", text)
    assert len(known) == 12
    for user, expected in known:
        assert assign("pgtap-known-salt", user, variants) == expected, user
