"""supabase-js (the JavaScript client nobody here wrote) drives the local
stack as `recsys-exp dev` serves it: tests/clients/supabase_js.test.mjs,
run with node's test runner against a migrated and seeded database with an
admin, a viewer and a signed-in non-admin.

The npm packages are pinned in tests/clients/package.json and installed by
`.ci/run` into .tools/node (git-ignored). Without node or those packages the
run is skipped with one line, except under CI=true, where it fails.

Every function of functions/registry.py is invoked; the example bodies
below are the only per-function knowledge, and a function without one
fails `test_every_function_has_an_example` (add its body here).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from devstack import auth_users, migrate, postgres
from functions.registry import FUNCTIONS
from tests.support.stack import Stack, serve_stack

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / ".tools" / "node" / "node_modules"
SUITE = Path(__file__).with_name("supabase_js.test.mjs")
PACKAGES = json.loads(Path(__file__).with_name("package.json").read_text())["dependencies"]
PASSWORD = "correct horse battery staple"
NODE_TIMEOUT = 300  # seconds: bounded, generous for a busy machine
VARIANTS = [{"name": "control", "weight": 50}, {"name": "treatment", "weight": 50}]

# One valid body per function, as a signed-in admin sends it (the session
# names the admin, so no admin_id). "$key" is the experiment the writes make,
# "$metric" a metric they define, "$user" a user they pin. Writes run in this
# order; reads after them.
EXAMPLES: dict[str, dict[str, Any]] = {
    "admin-create-experiment": {"key": "$key", "variants": VARIANTS, "name": "supabase-js"},
    "admin-create-layer": {"key": "$key", "name": "supabase-js"},
    "admin-create-metric": {"key": "$metric", "kind": "impression_rate", "outcome": "click"},
    "admin-update-metric": {"key": "$metric", "description": "changed through supabase-js"},
    "admin-set-experiment-metrics": {"key": "$key", "metrics": [{"metric": "$metric", "role": "goal"}]},
    "admin-update-experiment": {"key": "$key", "description": "changed through supabase-js"},
    "admin-activate-experiment": {"key": "$key"},
    "admin-set-user-variant": {"key": "$key", "user_id": "$user", "variant": "treatment"},
    "admin-reset-user-variant": {"key": "$key", "user_id": "$user"},
    "admin-rotate-salt": {"key": "$key"},
    "admin-end-experiment": {"key": "$key"},
    "admin-record-decision": {
        "key": "$key",
        "decision": "shipped",
        "winner": "treatment",
        "notes": "via supabase-js",
    },
    "admin-list-experiments": {},
    "admin-get-experiment": {"key": "$key"},
    "admin-experiment-results": {"key": "$key"},
    "admin-experiment-plan": {"key": "$key", "days": [7]},
    "admin-search-users": {"query": "viewer@"},
    "admin-user-assignments": {"user_id": "$user"},
    "admin-audit-log": {"key": "$key"},
    "admin-whoami": {},
    "admin-list-metrics": {},
    "admin-list-layers": {},
}


def _filled(body: Any, values: dict[str, str]) -> Any:
    """The body with its placeholders ("$key", ...) replaced, also inside lists and objects."""
    if isinstance(body, dict):
        return {k: _filled(v, values) for k, v in body.items()}
    if isinstance(body, list):
        return [_filled(v, values) for v in body]
    return values.get(body, body) if isinstance(body, str) else body


def cases(values: dict[str, str]) -> list[dict[str, Any]]:
    """Every registry function with its body: writes first (in EXAMPLES' order), then reads."""
    ordered = sorted(FUNCTIONS, key=lambda n: (not FUNCTIONS[n].writes, list(EXAMPLES).index(n)))
    return [{"name": n, "writes": FUNCTIONS[n].writes, "body": _filled(EXAMPLES[n], values)} for n in ordered]


def test_every_function_has_an_example() -> None:
    missing = sorted(set(FUNCTIONS) - set(EXAMPLES))
    assert not missing, (
        f"functions without an example body for the supabase-js suite: {missing}; "
        "add one to EXAMPLES in tests/clients/test_supabase_js.py"
    )
    assert not set(EXAMPLES) - set(FUNCTIONS), "EXAMPLES names functions the registry no longer has"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_examples_are_valid_bodies(name: str) -> None:
    """Each example is a body its function accepts (the session fills admin_id)."""
    if name not in FUNCTIONS:
        pytest.fail(f"{name} is not in functions/registry.py")
    model = FUNCTIONS[name].body
    body = _filled(EXAMPLES[name], {"$key": "js-example", "$metric": "js-metric", "$user": str(uuid.uuid4())})
    if "admin_id" in model.model_fields:
        body["admin_id"] = str(uuid.uuid4())
    model.model_validate_json(json.dumps(body))


def _node() -> str:
    """The node binary, once the pinned packages are installed; else skip (fail under CI)."""
    node = shutil.which("node")
    installed = all((NODE_MODULES / name / "package.json").is_file() for name in PACKAGES)
    if node and installed:
        return node
    reason = "node is not installed" if not node else f"npm packages missing in {NODE_MODULES} (.ci/run)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"supabase-js suite: {reason}")
    pytest.skip(f"supabase-js suite: {reason}")


@pytest.fixture(scope="module")
def node() -> str:
    return _node()


def test_installed_versions_are_the_pinned_ones(node: str) -> None:
    for name, version in PACKAGES.items():
        installed = json.loads((NODE_MODULES / name / "package.json").read_text())["version"]
        assert installed == version, f"{name} {installed} installed, {version} pinned; run .ci/run"


@pytest.fixture(scope="module")
def js_stack(pg_server: postgres.Server) -> Iterator[Stack]:
    """A database migrated and seeded as `recsys-exp dev` does, served over HTTP."""
    with postgres.fresh_database(pg_server, prefix="rec_js") as url:
        migrate.migrate(url, seed=True)
        with serve_stack(url) as stack:
            yield stack


def _people(stack: Stack) -> dict[str, tuple[str, str]]:
    """email and user id of an admin, a viewer and a signed-in non-admin."""
    found = {}
    tag = uuid.uuid4().hex[:8]
    with psycopg.connect(stack.db_url) as conn:
        for name in ("admin", "viewer", "nobody"):
            email = f"{name}-{tag}@supabase-js.test"
            user_id, _ = auth_users.put_user(conn, email, PASSWORD)
            found[name] = (email, user_id)
            if name != "nobody":
                conn.execute(
                    "select rec_grant_admin(%s, %s, %s)",
                    [user_id, name, "00000000-0000-0000-0000-000000000000"],
                )
        conn.commit()
    return found


def test_supabase_js_drives_the_stack(node: str, js_stack: Stack) -> None:
    people = _people(js_stack)
    key = f"js-{uuid.uuid4().hex[:10]}"
    insert_user = str(uuid.uuid4())
    env = {
        **os.environ,
        "STACK_URL": js_stack.url,
        "PUBLISHABLE_KEY": js_stack.keys.publishable,
        "SECRET_KEY": js_stack.keys.secret,
        "CLIENTS_NODE_MODULES": str(NODE_MODULES),
        "PASSWORD": PASSWORD,
        "ADMIN_EMAIL": people["admin"][0],
        "ADMIN_ID": people["admin"][1],
        "VIEWER_EMAIL": people["viewer"][0],
        "NOBODY_EMAIL": people["nobody"][0],
        "NOBODY_ID": people["nobody"][1],
        "CASES": json.dumps(cases({"$key": key, "$metric": f"{key}-metric", "$user": str(uuid.uuid4())})),
        "INSERT_USER": insert_user,
    }
    run = subprocess.run(
        [node, "--test", "--test-reporter=spec", str(SUITE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT,
        check=False,
    )
    assert run.returncode == 0, f"supabase-js suite failed:\n{run.stdout}\n{run.stderr}"
    # What the inserts left, seen from the database: refused ones left nothing.
    items = js_stack.sql(
        "select item_id from rec_impressions where user_id = %s order by item_id", [insert_user]
    )
    assert [i for (i,) in items] == ["ids-1", "ids-2", "plain", "select-all", "single"]
    outcomes = js_stack.sql(
        "select outcome from rec_outcomes where user_id = %s order by outcome", [insert_user]
    )
    assert outcomes == [("click",), ("save",)]
    audited = js_stack.sql("select count(*) from rec_audit_log where actor_id = %s", [people["admin"][1]])[0][
        0
    ]
    assert audited >= sum(1 for f in FUNCTIONS.values() if f.writes)
    assert js_stack.sql("select status from rec_experiments where key = %s", [key]) == [("ended",)]
