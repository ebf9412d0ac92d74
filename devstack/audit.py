"""`recsys-exp audit anchor|verify`: check the audit hash chain from outside
the database (docs/audit.md), and the anchoring job of `recsys-exp dev`.

    recsys-exp audit anchor --anchors FILE   append the current head (JSON lines)
    recsys-exp audit verify [--anchors FILE] re-derive every hash and link, check the anchors

Both read the chain through rec_audit_chain_head() and rec_audit_chain_rows()
in one snapshot, over a direct database connection (--database-url, else
the embedded Postgres of --data-dir). Keep FILE where the database owner
cannot write: an anchor only protects rows written before it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from devstack import cli_args
from devstack.database import open_database
from shared import audit_chain
from shared.audit_chain import Anchor, ChainRow

PAGE = 1000
ANCHOR_EVERY = 300.0  # seconds, `recsys-exp dev --anchor-every`
DEV_ANCHORS = "audit-anchors.jsonl"  # in `recsys-exp dev`'s data dir

Head = tuple[int, str | None]


def read_chain(conn: psycopg.Connection) -> tuple[Head, list[ChainRow]]:
    """The head and every chained row, from one snapshot (so a commit
    in between cannot look like a broken head)."""
    with conn.transaction():
        conn.execute("set transaction isolation level repeatable read, read only")
        row = conn.execute("select chain_seq, row_hash from public.rec_audit_chain_head()").fetchone()
        head: Head = (int(row[0]), row[1]) if row else (audit_chain.GENESIS_SEQ, None)
        rows: list[ChainRow] = []
        while True:
            page = conn.execute(
                "select chain_seq, id, experiment_id, action, actor_id, details::text, created_at,"
                "       prev_hash, row_hash, hashed_text"
                "  from public.rec_audit_chain_rows(%s, %s)",
                [rows[-1].chain_seq if rows else 0, PAGE],
            ).fetchall()
            rows += [ChainRow(*r) for r in page]
            if len(page) < PAGE:
                return head, rows


def load_anchors(path: Path) -> list[Anchor]:
    """The file's anchors; AnchorError (with the file and line) if one is not."""
    try:
        with path.open(encoding="utf-8") as f:
            return audit_chain.parse_anchors(f)
    except audit_chain.AnchorError as exc:
        raise audit_chain.AnchorError(f"{path}: {exc}") from None
    except UnicodeDecodeError:
        raise audit_chain.AnchorError(f"{path}: not a text file of audit anchors") from None


def problems_of(head: Head, rows: list[ChainRow], anchors: list[Anchor]) -> list[str]:
    problems = audit_chain.check_rows(rows, head)
    for anchor in anchors:
        problems += audit_chain.check_anchor(anchor, rows)
    return problems


def append_anchor(path: Path, anchor: Anchor) -> None:
    """One line, synced, so a crash leaves whole lines only."""
    with path.open("a", encoding="utf-8") as f:
        f.write(anchor.to_json() + "\n")
        f.flush()
        os.fsync(f.fileno())


def anchor_once(url: str, path: Path, *, only_if_moved: bool = False) -> tuple[Anchor | None, list[str]]:
    """Verify the chain against the file's anchors and, if it holds, append
    the current head. (None, problems) when it does not verify; (None, [])
    when only_if_moved and the head is the last anchor's."""
    anchors = load_anchors(path) if path.exists() else []
    with psycopg.connect(url, autocommit=True) as conn:
        head, rows = read_chain(conn)
    problems = problems_of(head, rows, anchors)
    if problems:
        return None, problems
    last = anchors[-1] if anchors else None
    if only_if_moved and last is not None and (last.chain_seq, last.row_hash) == head:
        return None, []
    anchor = audit_chain.new_anchor(rows, head, last.chain_seq if last else 0, dt.datetime.now(dt.UTC))
    append_anchor(path, anchor)
    return anchor, []


def _report(command: str, problems: list[str]) -> int:
    for line in problems:
        print(line)
    print(f"recsys-exp audit {command}: {len(problems)} problem(s) in the audit chain", file=sys.stderr)
    return 1


def run_anchor(args: argparse.Namespace) -> int:
    server = open_database(args.database_url, args.data_dir)
    try:
        anchor, problems = anchor_once(server.url, args.anchors)
    except audit_chain.AnchorError as exc:
        return cli_args.fail(exc)
    finally:
        server.stop()
    if anchor is None:
        print("recsys-exp audit anchor: not anchoring a chain that does not verify", file=sys.stderr)
        return _report("anchor", problems)
    print(
        f"anchored chain_seq {anchor.chain_seq} ({anchor.row_hash}) at {anchor.recorded_at} in {args.anchors}"
    )
    return 0


def run_verify(args: argparse.Namespace) -> int:
    try:
        anchors = load_anchors(args.anchors) if args.anchors else []
    except FileNotFoundError:
        return cli_args.fail(f"no anchors file {args.anchors}")
    except audit_chain.AnchorError as exc:
        return cli_args.fail(exc)
    server = open_database(args.database_url, args.data_dir)
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            head, rows = read_chain(conn)
    finally:
        server.stop()
    problems = problems_of(head, rows, anchors)
    if problems:
        return _report("verify", problems)
    print(
        f"audit chain intact: {len(rows)} row(s), head chain_seq {head[0]}"
        f" ({head[1] or 'empty chain'}); {len(anchors)} anchor(s) checked"
    )
    return 0


# --- `recsys-exp dev`: anchor on a schedule ---------------------------------------


def _loop(url: str, path: Path, every: float, stop: threading.Event) -> None:
    while True:
        try:
            anchor, problems = anchor_once(url, path, only_if_moved=True)
            if problems:
                print(
                    f"recsys-exp dev: audit chain does not verify, not anchoring ({len(problems)} problem(s),"
                    f" first: {problems[0]}); run `recsys-exp audit verify --anchors {path}`",
                    file=sys.stderr,
                    flush=True,
                )
            elif anchor is not None:
                print(f"recsys-exp dev: anchored the audit chain at chain_seq {anchor.chain_seq}", flush=True)
        except (psycopg.Error, OSError, audit_chain.AnchorError) as exc:  # the next run retries
            print(f"recsys-exp dev: audit anchoring failed: {exc}", file=sys.stderr, flush=True)
        if stop.wait(every):
            return


@contextmanager
def anchoring(url: str, path: Path, every: float) -> Iterator[None]:
    """Anchor the audit chain into `path` now and every `every` seconds
    (when the head moved) until the block exits; `every` <= 0 disables it."""
    if every <= 0:
        yield
        return
    stop = threading.Event()
    thread = threading.Thread(target=_loop, args=(url, path, every, stop), name="audit-anchor", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)
