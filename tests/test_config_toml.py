"""supabase/config.toml lists every function the registry serves, each with
`verify_jwt = false` (the functions check the key or session themselves;
the gateway's JWT check would refuse the secret key), and nothing else."""

from __future__ import annotations

import tomllib
from pathlib import Path

from functions.registry import FUNCTIONS

CONFIG = Path(__file__).resolve().parent.parent / "supabase" / "config.toml"


def test_config_toml_lists_every_function_without_gateway_jwt_check() -> None:
    config = tomllib.loads(CONFIG.read_text())
    listed = config.get("functions", {})
    assert sorted(listed) == sorted(FUNCTIONS), (
        "supabase/config.toml [functions.*] differs from functions/registry.py"
    )
    assert {name: entry for name, entry in listed.items() if entry != {"verify_jwt": False}} == {}
