"""The assignment rule of docs/reference.md §2, written from the contract text
alone, so the SQL can be checked against an independent implementation:

    x = (first 4 bytes of SHA-256(utf8(salt || user_id::text)), big-endian unsigned) / 2^32
    W = sum of weights
    variant = the first variant, in array order and with weight > 0,
              whose running sum of weights r satisfies x * W < r
"""

from __future__ import annotations

import hashlib
import json
import math
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


# --- the extended rule: layers and coverage ----------------------------------
#
#     eligible = no layer, or from <= floor(y * 10000) < to, where
#                y = (first 4 bytes of SHA-256(utf8('layer:' || layer_salt || user_id::text))) / 2^32
#     x as above; r0 = 0, ri = r(i-1) + weight_i (array order, IEEE double,
#     weights parsed from their JSON text); W = the last ri
#     variant = the i with weight_i > 0 and r(i-1) <= x*W < r(i-1) + coverage*weight_i
#     none, or not eligible: not in the experiment (None)


def layer_bucket(layer_salt: str, user_id: uuid.UUID | str) -> int:
    """The user's bucket of a layer, 0..9999."""
    return math.floor(unit_interval("layer:" + layer_salt, user_id) * 10000)


def assign_extended(
    salt: str,
    user_id: uuid.UUID | str,
    variants_json: str,
    coverage: float = 1.0,
    layer_salt: str | None = None,
    layer_range: tuple[int, int] | None = None,
) -> str | None:
    if layer_salt is not None:
        assert layer_range is not None
        low, high = layer_range
        if not low <= layer_bucket(layer_salt, user_id) < high:
            return None
    # Parsed from the JSON text, as the database parses each number's text.
    variants = json.loads(variants_json, parse_int=float, parse_float=float)
    x = unit_interval(salt, user_id)
    total = 0.0
    for v in variants:
        total += v["weight"]
    point = x * total
    running = 0.0
    for v in variants:
        weight = v["weight"]
        share = coverage * weight  # rounded to double before the addition
        if weight > 0 and running <= point < running + share:
            return str(v["name"])
        running += weight
    return None
