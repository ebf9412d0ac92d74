"""The audit hash chain, re-derived outside the database (docs/audit.md).

Each audit row's hash covers one text:

    prev_hash (or "" for the first row) + "\\n" + a JSON array
    [chain_seq, id, experiment_id, action, actor_id, details, created_at]

rendered the way PostgreSQL renders jsonb, with created_at in UTC as
YYYY-MM-DDTHH:MM:SS.ffffffZ; row_hash is the SHA-256 (hex) of its UTF-8.
Here that text is rebuilt from a row's fields, hashed, and linked to the
row before it; `check_anchor` compares the chain with a head (and the rows)
recorded earlier somewhere the database owner cannot write.

What this catches: any change to a row, a dropped or reordered row, a head
that does not match the rows. What it cannot catch on its own: the owner
rewriting rows and recomputing every hash and the head, which is
self-consistent. Only an anchor recorded before the rewrite exposes that,
and only for rows at or before the anchor.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

GENESIS_SEQ = 0  # the head of an empty chain: (0, None); the first row's prev_hash is None
UTC = dt.UTC


class JsonNumber(str):
    """A JSON number kept as the literal the database printed (jsonb prints
    numerics exactly, e.g. 1.50 stays 1.50), so re-rendering is byte-exact."""


def parse_jsonb_text(text: str) -> Any:
    """jsonb text as Python values, numbers kept as their literals."""
    return json.loads(text, parse_int=JsonNumber, parse_float=JsonNumber, parse_constant=JsonNumber)


def _key_order(key: str) -> tuple[int, bytes]:
    # jsonb keeps object keys sorted by byte length, then bytewise
    raw = key.encode("utf-8")
    return (len(raw), raw)


def jsonb_text(value: Any) -> str:
    """PostgreSQL's text rendering of a jsonb value: ", " between items,
    ": " after keys, keys in jsonb order, strings escaped as json.dumps
    does with ensure_ascii=False (the same set as PostgreSQL's escape_json)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, JsonNumber):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        items = sorted(value.items(), key=lambda kv: _key_order(kv[0]))
        return (
            "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)}: {jsonb_text(v)}" for k, v in items) + "}"
        )
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(jsonb_text(v) for v in value) + "]"
    raise TypeError(f"not a JSON value: {value!r}")


def utc_text(when: dt.datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class ChainRow:
    """One row as rec_audit_chain_rows returns it (details as jsonb text)."""

    chain_seq: int
    id: int
    experiment_id: uuid.UUID | None
    action: str
    actor_id: uuid.UUID | None
    details: str
    created_at: dt.datetime
    prev_hash: str | None
    row_hash: str | None
    hashed_text: str

    def content(self) -> str:
        """The row's own part of the hashed text, rebuilt from its fields."""
        return jsonb_text(
            [
                self.chain_seq,
                self.id,
                None if self.experiment_id is None else str(self.experiment_id),
                self.action,
                None if self.actor_id is None else str(self.actor_id),
                parse_jsonb_text(self.details),
                utc_text(self.created_at),
            ]
        )

    def expected_text(self) -> str:
        return (self.prev_hash or "") + "\n" + self.content()

    def where(self) -> str:
        return f"row id {self.id} (chain_seq {self.chain_seq})"


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_digest(row: ChainRow) -> str:
    """What an anchor records of a row's content (independent of prev_hash),
    so a later check tells a rewritten row from one merely re-hashed."""
    return sha256_hex(row.content())


def check_rows(rows: Sequence[ChainRow], head: tuple[int, str | None]) -> list[str]:
    """Every hash, link and position re-derived; one sentence per problem."""
    problems: list[str] = []
    expected_seq, prev = GENESIS_SEQ + 1, None
    for row in rows:
        gap = row.chain_seq > expected_seq
        if gap:
            first, last = expected_seq, row.chain_seq - 1
            span = f"chain_seq {first}" if first == last else f"chain_seq {first}..{last}"
            problems.append(f"{span} missing before {row.where()}: {last - first + 1} row(s) dropped")
        elif row.chain_seq < expected_seq:
            problems.append(f"{row.where()}: chain_seq out of order or repeated (expected {expected_seq})")
        problems += _check_row(row, prev, linked=not gap)  # after a gap the broken link is the gap
        expected_seq, prev = max(expected_seq, row.chain_seq + 1), row.row_hash
    last_seq = rows[-1].chain_seq if rows else GENESIS_SEQ
    if head != (last_seq, prev):
        problems.append(
            f"the chain head is chain_seq {head[0]} ({_short(head[1])}) but the chain ends at "
            f"chain_seq {last_seq} ({_short(prev)}): rows at its end were dropped or the head was moved"
        )
    return problems


def _check_row(row: ChainRow, prev: str | None, *, linked: bool) -> list[str]:
    problems = []
    text = row.expected_text()
    if text != row.hashed_text:
        problems.append(f"{row.where()}: its fields do not match the text its hash covers (rewritten)")
    if row.row_hash != sha256_hex(text):
        problems.append(f"{row.where()}: row_hash is not the SHA-256 of its fields (rewritten)")
    if linked and row.prev_hash != prev:
        problems.append(f"{row.where()}: prev_hash is not the row_hash of the row before it")
    return problems


def _short(h: str | None) -> str:
    return "no hash" if h is None else f"hash {h[:12]}…"


# --- anchors -------------------------------------------------------------------


class AnchorError(ValueError):
    """An anchors file line that is not an anchor."""


@dataclass(frozen=True)
class Anchor:
    """A head recorded outside the database, and the rows it covers that
    the previous anchor did not: (chain_seq, id, row_hash, content digest)."""

    chain_seq: int
    row_hash: str | None
    recorded_at: str
    rows: tuple[tuple[int, int, str, str], ...] = ()

    def to_json(self) -> str:
        return json.dumps(
            {
                "chain_seq": self.chain_seq,
                "row_hash": self.row_hash,
                "recorded_at": self.recorded_at,
                "rows": [list(r) for r in self.rows],
            },
            separators=(",", ":"),
        )


def new_anchor(
    rows: Sequence[ChainRow], head: tuple[int, str | None], after_seq: int, now: dt.datetime
) -> Anchor:
    covered = tuple(
        (r.chain_seq, r.id, r.row_hash or "", content_digest(r)) for r in rows if r.chain_seq > after_seq
    )
    return Anchor(head[0], head[1], utc_text(now), covered)


def parse_anchors(lines: Iterable[str]) -> list[Anchor]:
    """Anchors, one JSON object per non-blank line; AnchorError names the line."""
    anchors = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                anchors.append(_parse_anchor(json.loads(line)))
            except (ValueError, TypeError) as exc:
                raise AnchorError(f"line {number}: not an audit anchor ({exc})") from None
    return anchors


def _parse_anchor(obj: Any) -> Anchor:
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    seq, head_hash, when = obj.get("chain_seq"), obj.get("row_hash"), obj.get("recorded_at")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise ValueError("chain_seq must be a non-negative integer")
    if not (head_hash is None and seq == 0) and not _is_hash(head_hash):
        raise ValueError("row_hash must be 64 hex digits")
    if not isinstance(when, str):
        raise ValueError("recorded_at must be a string")
    rows = []
    for item in obj.get("rows", []):
        if not (isinstance(item, list) and len(item) == 4 and all(isinstance(i, int) for i in item[:2])):
            raise ValueError("rows must be [chain_seq, id, row_hash, content digest] lists")
        if not (_is_hash(item[2]) and _is_hash(item[3])):
            raise ValueError("rows must carry 64-hex-digit hashes")
        rows.append((item[0], item[1], item[2], item[3]))
    return Anchor(seq, head_hash, when, tuple(rows))


def _is_hash(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def check_anchor(anchor: Anchor, rows: Sequence[ChainRow]) -> list[str]:
    """What changed since the anchor was recorded: its head, and each row it
    recorded (rewritten, gone or moved by id; re-hashed ones as one range)."""
    by_seq = {r.chain_seq: r for r in rows}
    by_id = {r.id: r for r in rows}
    label = f"anchor of {anchor.recorded_at} (chain_seq {anchor.chain_seq})"
    problems = []
    end = rows[-1].chain_seq if rows else GENESIS_SEQ
    at = by_seq.get(anchor.chain_seq)
    if anchor.chain_seq > GENESIS_SEQ and at is None:
        problems.append(
            f"{label}: the chain has no chain_seq {anchor.chain_seq} (it ends at {end}): rows were dropped"
        )
    elif at is not None and at.row_hash != anchor.row_hash:
        problems.append(
            f"{label}: the row there no longer has the anchored hash: the chain was rewritten up to it"
        )
    rehashed: list[int] = []
    for seq, row_id, row_hash, digest in anchor.rows:
        now = by_id.get(row_id)
        if now is None:
            problems.append(f"row id {row_id} (chain_seq {seq}) is gone since the {label}")
        elif now.chain_seq != seq:
            problems.append(
                f"row id {row_id} moved from chain_seq {seq} to {now.chain_seq} since the {label}"
            )
        elif content_digest(now) != digest:
            problems.append(f"row id {row_id} (chain_seq {seq}) was rewritten since the {label}")
        elif now.row_hash != row_hash:
            rehashed.append(seq)
    if rehashed:
        problems.append(
            f"chain_seq {min(rehashed)}..{max(rehashed)}: {len(rehashed)} row(s) with unchanged content were "
            f"re-hashed since the {label} (the chain was recomputed after an earlier row changed)"
        )
    return problems
