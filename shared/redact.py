"""What a viewer may not see: experiment salts.

Whoever knows an experiment's salt can compute every user's variant (the
assignment rule is public), so salts are shown only to admins and
service-level keys. The redaction is by key name anywhere in an answer, so
it covers every place a salt appears (experiment rows, audit details' before
and after, layers) without each function having to know.
"""

from __future__ import annotations

from typing import Any

REDACTED = "[redacted]"


def is_salt_key(key: str) -> bool:
    """``salt``, ``new_salt``, ``layer_salt``, …; not ``salt_rotated_at`` and the like."""
    return key == "salt" or key.endswith("_salt")


def redact_salts(value: Any) -> Any:
    """A copy of a JSON value with every salt (a non-null value under a salt
    key, at any depth) replaced by ``REDACTED``; null stays null."""
    if isinstance(value, dict):
        return {
            key: REDACTED if is_salt_key(key) and item is not None else redact_salts(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_salts(item) for item in value]
    return value
