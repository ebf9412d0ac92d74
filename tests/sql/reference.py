"""The assignment rule of docs/reference.md §2, written from the contract text
alone, so the SQL can be checked against an independent implementation:

    x = (first 4 bytes of SHA-256(utf8(salt || user_id::text)), big-endian unsigned) / 2^32
    W = sum of weights
    variant = the first variant, in array order and with weight > 0,
              whose running sum of weights r satisfies x * W < r
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from typing import Any


def unit_interval(salt: str, user_id: uuid.UUID | str) -> float:
    """x in [0, 1). str(UUID) is PostgreSQL's canonical lower-case hyphenated form."""
    text = salt + str(uuid.UUID(str(user_id)))
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def hash_prefix(salt: str, user_id: uuid.UUID | str) -> int:
    """The first 4 bytes of the hash as an unsigned integer (x * 2^32)."""
    text = salt + str(uuid.UUID(str(user_id)))
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big")


def assign(salt: str, user_id: uuid.UUID | str, variants: Sequence[Mapping[str, Any]]) -> str | None:
    x = unit_interval(salt, user_id)
    # Running float sums in array order: not sum()/math.fsum, which round differently.
    total = 0.0
    for v in variants:
        total += float(v["weight"])
    running = 0.0
    for v in variants:
        weight = float(v["weight"])
        running += weight
        if weight > 0 and x * total < running:
            return str(v["name"])
    return None
