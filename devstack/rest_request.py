"""What a `/rest/v1` request asks for beyond its path and body: the `Prefer`
header, the `Accept` header, and the `select` / `columns` query parameters,
read as PostgREST reads them.

The local stack serves a part of PostgREST. Whatever PostgREST would do and
this stack does not (upsert, counts, filters, ordering, embedding, aliases,
casts, CSV...) is refused with PostgREST's own "not implemented" error,
400 `PGRST127` "Feature not implemented", its `details` naming the feature,
so a client can branch on the code instead of getting a different answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from devstack.rest_errors import RestError

OBJECT_TYPE = "application/vnd.pgrst.object+json"

# Preferences PostgREST knows; the ones marked False this stack does not implement.
_KNOWN_PREFERENCES = {
    "return": True,
    "missing": True,
    "handling": True,
    "resolution": False,
    "count": False,
    "tx": False,
    "max-affected": False,
    "timezone": False,
    "params": False,
}
_VALUES = {
    "return": {"minimal", "representation", "headers-only"},
    "missing": {"default", "null"},
    "handling": {"lenient", "strict"},
}
_ARRAY_TYPES = {"*/*", "application/*", "application/json", "application/vnd.pgrst.array+json"}
# Media types PostgREST serves that this stack does not.
_OTHER_PGRST_TYPES = {
    "text/csv",
    "text/plain",
    "text/xml",
    "application/geo+json",
    "application/octet-stream",
    "application/openapi+json",
    "application/vnd.pgrst.plan",
    "application/vnd.pgrst.plan+json",
    "application/vnd.pgrst.plan+text",
}
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_$ ]+(?:-[A-Za-z0-9_$ ]+)*")
_FEATURE_MARKS = ("(", ")", ":", "->", "...", "!")


def not_implemented(feature: str) -> RestError:
    """PostgREST's PGRST127, for something it serves and this stack does not."""
    return RestError(
        400,
        "PGRST127",
        "Feature not implemented",
        details=feature,
        hint="The local stack's /rest/v1 serves RPCs and plain inserts; see README.md.",
    )


class Shape(Enum):
    ARRAY = "array"
    OBJECT = "object"  # exactly one row as one object, else 406 PGRST116


@dataclass(frozen=True)
class Prefer:
    values: dict[str, str]

    @property
    def representation(self) -> bool:
        return self.values.get("return") == "representation"

    @property
    def missing_default(self) -> bool:
        return self.values.get("missing") == "default"


def preferences(header: str) -> Prefer:
    """The `Prefer` header. Unknown preferences are ignored, as PostgREST does,
    unless `handling=strict` asks for 400 PGRST122."""
    found: dict[str, str] = {}
    invalid: list[str] = []
    for raw in header.split(","):
        pref = raw.strip()
        if not pref:
            continue
        name, _, value = pref.partition("=")
        name, value = name.strip(), value.strip()
        if name not in _KNOWN_PREFERENCES or (name in _VALUES and value not in _VALUES[name]):
            invalid.append(pref)
        elif not _KNOWN_PREFERENCES[name]:
            raise not_implemented(f"Prefer: {name}={value} (upsert, counts and transaction control)")
        else:
            found.setdefault(name, value)  # the first one wins, as in PostgREST
    if found.get("handling") == "strict" and invalid:
        raise RestError(
            400,
            "PGRST122",
            "Invalid preferences given with handling=strict",
            details="Invalid preferences: " + ", ".join(invalid),
        )
    return Prefer(found)


def response_shape(accept: str) -> Shape:
    """What `Accept` asks for: the first media type, in the client's order,
    that PostgREST knows. One it knows and this stack does not serve is
    PGRST127; none it knows is PostgREST's 406 PGRST107."""
    offered = [part.strip() for part in accept.split(",") if part.strip()] or ["*/*"]
    for entry in offered:
        kind, *params = [p.strip() for p in entry.split(";")]
        kind = kind.lower()
        extra = [p for p in params if not p.lower().startswith(("q=", "charset="))]
        if kind in _ARRAY_TYPES and not extra:
            return Shape.ARRAY
        if kind == OBJECT_TYPE and not extra:
            return Shape.OBJECT
        if kind in _ARRAY_TYPES or kind == OBJECT_TYPE or kind in _OTHER_PGRST_TYPES:
            raise not_implemented(f"Accept: {entry}")
    raise RestError(406, "PGRST107", "None of these media types are available: " + ", ".join(offered))


def singular(rows: int) -> RestError:
    """PostgREST's answer when `.single()` finds zero or many rows."""
    return RestError(
        406,
        "PGRST116",
        "Cannot coerce the result to a single JSON object",
        details=f"The result contains {rows} rows",
    )


def select_list(raw: str | None, table_columns: tuple[str, ...]) -> tuple[str, ...] | None:
    """`select=`: the columns to answer with, `*` expanded (None: every column).
    Plain and quoted column names only; aliases, casts, JSON paths, embedding,
    spreads and aggregates are PGRST127."""
    if raw is None or raw.strip() == "*":
        return None
    names: list[str] = []
    for item in _items(raw, "select"):
        if item == "*":
            names += table_columns
        else:
            names.append(_column(item, raw, "select"))
    return tuple(names)


def column_list(raw: str) -> tuple[str, ...]:
    """`columns=`: the keys of each object to insert (others are ignored)."""
    names = tuple(dict.fromkeys(_column(item, raw, "columns") for item in _items(raw, "columns")))
    if not names:
        raise _parse_error("columns", raw, "expected at least one column name")
    return names


def _items(raw: str, param: str) -> list[str]:
    """Comma-separated items, commas inside double quotes kept."""
    items, current, quoted = [], "", False
    for char in raw:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            items.append(current.strip())
            current = ""
        else:
            current += char
    if quoted:
        raise _parse_error(param, raw, "a double quote is not closed")
    items.append(current.strip())
    if items == [""]:
        return []
    return items


def _column(item: str, raw: str, param: str) -> str:
    if len(item) >= 2 and item[0] == item[-1] == '"' and '"' not in item[1:-1]:
        return item[1:-1]
    if _PLAIN_NAME.fullmatch(item):
        return item.strip()
    if any(mark in item for mark in _FEATURE_MARKS):
        raise not_implemented(
            f"{param}={raw}: only plain column names and * (no aliases, casts, JSON paths, "
            "embedded resources, spreads or aggregates)"
        )
    raise _parse_error(param, raw, f"unexpected {item!r}: expected a column name")


def _parse_error(param: str, raw: str, details: str) -> RestError:
    """PostgREST's PGRST100 for a query parameter it cannot parse."""
    return RestError(400, "PGRST100", f'"failed to parse {param} parameter ({raw})"', details=details)
