"""Inputs the database must refuse (docs/reference.md §1), shared by the RPC
tests (22023) and the direct-write tests (23514)."""

from __future__ import annotations

import json

# id -> variants as JSON text
BAD_VARIANTS: dict[str, str] = {
    "object": '{"name": "a", "weight": 1}',
    "string": '"a"',
    "json-null": "null",
    "number": "1",
    "empty": "[]",
    "element-not-object": "[1]",
    "element-string": '["a"]',
    "name-missing": '[{"weight": 1}]',
    "name-empty": '[{"name": "", "weight": 1}]',
    "name-number": '[{"name": 1, "weight": 1}]',
    "name-null": '[{"name": null, "weight": 1}]',
    "name-duplicated": '[{"name": "a", "weight": 1}, {"name": "a", "weight": 2}]',
    "name-space": '[{"name": "a b", "weight": 1}]',
    "name-slash": '[{"name": "a/b", "weight": 1}]',
    "name-non-ascii": '[{"name": "\u00fc", "weight": 1}]',
    "name-trailing-newline": '[{"name": "a\\n", "weight": 1}]',
    "name-65-chars": json.dumps([{"name": "x" * 65, "weight": 1}]),
    "weight-missing": '[{"name": "a"}]',
    "weight-string": '[{"name": "a", "weight": "1"}]',
    "weight-bool": '[{"name": "a", "weight": true}]',
    "weight-null": '[{"name": "a", "weight": null}]',
    "weight-negative": '[{"name": "a", "weight": -1}, {"name": "b", "weight": 2}]',
    "weight-negative-fraction": '[{"name": "a", "weight": 3}, {"name": "b", "weight": -0.5}]',
    "all-zero": '[{"name": "a", "weight": 0}, {"name": "b", "weight": 0}]',
    # a positive weight too small for double precision: still a bad weight,
    # to be refused like the others, not an internal range error
    "weight-underflows": '[{"name": "a", "weight": 1e-400}, {"name": "b", "weight": 1}]',
}

GOOD_VARIANTS: dict[str, str] = {
    "one": '[{"name": "only", "weight": 1}]',
    "zero-and-positive": '[{"name": "off", "weight": 0}, {"name": "on", "weight": 0.5}]',
    "name-64-chars": json.dumps([{"name": "x" * 64, "weight": 1}]),
    "name-charset": '[{"name": "Az09_.-", "weight": 1e-3}]',
}

BAD_KEYS = ["", "Upper", "-lead", "_lead", ".lead", "a" * 65, "has space", "\u00fcml", "a\n", "semi;colon"]
GOOD_KEYS = ["a", "0", "a" * 64, "a.b-c_d9"]
