"""`recsys-exp audit anchor` / `audit verify` against tampering by the
owner (the migration role), who can rewrite rows, recompute every hash and
the head: inside the database that is invisible (rec_verify_audit_chain()
stays empty), but every row at or before a recorded anchor that changed or
vanished is reported, by id (docs/audit.md)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg
import pytest

from devstack import audit, cli
from tests.sql.conftest import ADMIN, acting_as, create_experiment

AB = [{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}]

# What a determined owner does after editing: re-link and re-hash every row
# in chain order, and move the head to match.
RECOMPUTE = """
do $$
declare
  r public.rec_audit_log;
  prev text := null;
begin
  for r in select * from public.rec_audit_log l order by l.chain_seq loop
    r.prev_hash := prev;
    r.row_hash := rec_internal.audit_row_hash(r);
    update public.rec_audit_log l set prev_hash = r.prev_hash, row_hash = r.row_hash where l.id = r.id;
    prev := r.row_hash;
  end loop;
  update rec_internal.audit_chain_head
     set seq = coalesce((select max(chain_seq) from public.rec_audit_log), 0), hash = prev;
end
$$
"""


@pytest.fixture
def ids(db: psycopg.Connection) -> list[int]:
    """Six audit rows; their ids in chain order."""
    create_experiment(db, "exp", AB)
    for _ in range(3):
        db.execute("select rec_set_user_variant('exp', %s, 'control', %s)", [uuid.uuid4(), ADMIN])
    db.execute("select rec_end_experiment('exp', %s)", [ADMIN])
    return [r[0] for r in db.execute("select id from rec_audit_log order by chain_seq")]


def run(db_url: str, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    status = cli.main(["audit", *argv, "--database-url", db_url])
    out = capsys.readouterr()
    return status, out.out.splitlines(), out.err


def anchor(db_url: str, capsys: pytest.CaptureFixture[str], path: Path) -> None:
    status, out, err = run(db_url, capsys, "anchor", "--anchors", str(path))
    assert status == 0, (out, err)
    assert out[0].startswith("anchored chain_seq ")


def in_database(db: psycopg.Connection) -> list[tuple[int, str]]:
    with acting_as(db, "service_role"):
        return [(r[0], r[1]) for r in db.execute("select id, problem from rec_verify_audit_chain()")]


def test_an_intact_chain_verifies_with_and_without_anchors(
    db: psycopg.Connection, db_url: str, ids: list[int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    anchors = tmp_path / "anchors.jsonl"
    status, out, _ = run(db_url, capsys, "verify")
    assert status == 0
    assert out == ["audit chain intact: 6 row(s), head chain_seq 6" + out[0].split("head chain_seq 6")[1]]
    anchor(db_url, capsys, anchors)
    db.execute("select rec_update_experiment('exp', %s, description => 'later')", [ADMIN])
    anchor(db_url, capsys, anchors)
    lines = [json.loads(line) for line in anchors.read_text().splitlines()]
    assert [(a["chain_seq"], len(a["rows"])) for a in lines] == [(6, 6), (7, 1)]
    assert {"chain_seq", "row_hash", "recorded_at", "rows"} <= set(lines[0])
    status, out, _ = run(db_url, capsys, "verify", "--anchors", str(anchors))
    assert status == 0
    assert out[0].endswith("2 anchor(s) checked")


def test_owner_rewrite_with_recomputed_chain_is_reported_by_id(
    db: psycopg.Connection, db_url: str, ids: list[int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    anchors = tmp_path / "anchors.jsonl"
    anchor(db_url, capsys, anchors)
    db.execute("update rec_audit_log set actor_id = gen_random_uuid() where id = %s", [ids[1]])
    db.execute(RECOMPUTE)
    assert in_database(db) == []  # the database alone cannot tell
    assert run(db_url, capsys, "verify")[0] == 0  # nor can a verifier without anchors
    status, out, err = run(db_url, capsys, "verify", "--anchors", str(anchors))
    assert status == 1
    assert f"row id {ids[1]} (chain_seq 2) was rewritten since the anchor" in "\n".join(out)
    assert any("chain_seq 3..6: 4 row(s) with unchanged content were re-hashed" in line for line in out)
    assert any("no longer has the anchored hash" in line for line in out)
    assert len(out) == 3, out
    assert "3 problem(s)" in err


def test_dropped_newest_rows_and_a_rewound_head_are_reported(
    db: psycopg.Connection, db_url: str, ids: list[int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    anchors = tmp_path / "anchors.jsonl"
    anchor(db_url, capsys, anchors)
    db.execute("delete from rec_audit_log where id = any(%s)", [ids[-2:]])
    db.execute(RECOMPUTE)  # rewinds the head to chain_seq 4
    assert in_database(db) == []
    status, out, _ = run(db_url, capsys, "verify", "--anchors", str(anchors))
    assert status == 1
    assert out == [
        out[0],
        f"row id {ids[4]} (chain_seq 5) is gone since the {out[0].split(': ')[0]}",
        f"row id {ids[5]} (chain_seq 6) is gone since the {out[0].split(': ')[0]}",
    ]
    assert "the chain has no chain_seq 6 (it ends at 4): rows were dropped" in out[0]


def test_dropped_rows_replaced_by_new_ones_are_reported(
    db: psycopg.Connection, db_url: str, ids: list[int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rewind, then let new audit rows take the dropped positions."""
    anchors = tmp_path / "anchors.jsonl"
    anchor(db_url, capsys, anchors)
    db.execute("delete from rec_audit_log where id = any(%s)", [ids[-2:]])
    db.execute(RECOMPUTE)
    for name in ("a", "b", "c"):
        db.execute("select rec_update_experiment('exp', %s, description => %s)", [ADMIN, name])
    status, out, _ = run(db_url, capsys, "verify", "--anchors", str(anchors))
    assert status == 1
    text = "\n".join(out)
    assert "no longer has the anchored hash" in text
    for gone in ids[-2:]:
        assert f"row id {gone} " in text


def test_a_dropped_middle_row_renumbered_away_is_reported(
    db: psycopg.Connection, db_url: str, ids: list[int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    anchors = tmp_path / "anchors.jsonl"
    anchor(db_url, capsys, anchors)
    with db.transaction():
        db.execute("delete from rec_audit_log where id = %s", [ids[2]])
        db.execute("update rec_audit_log set chain_seq = -chain_seq where chain_seq > 3")
        db.execute("update rec_audit_log set chain_seq = -chain_seq - 1 where chain_seq < 0")
    db.execute(RECOMPUTE)
    assert in_database(db) == []
    status, out, _ = run(db_url, capsys, "verify", "--anchors", str(anchors))
    assert status == 1
    text = "\n".join(out)
    assert f"row id {ids[2]} (chain_seq 3) is gone" in text
    for moved, seq in zip(ids[3:], (4, 5, 6), strict=True):
        assert f"row id {moved} moved from chain_seq {seq} to {seq - 1}" in text


def test_tampering_without_recomputing_needs_no_anchor(
    db: psycopg.Connection, db_url: str, ids: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    db.execute("update rec_audit_log set details = '{\"forged\": true}' where id = %s", [ids[3]])
    db.execute("delete from rec_audit_log where id = %s", [ids[1]])
    status, out, _ = run(db_url, capsys, "verify")
    assert status == 1
    assert out == [
        f"chain_seq 2 missing before row id {ids[2]} (chain_seq 3): 1 row(s) dropped",
        f"row id {ids[3]} (chain_seq 4): row_hash is not the SHA-256 of its fields (rewritten)",
    ]


def test_a_head_rewound_alone_is_reported(
    db: psycopg.Connection, db_url: str, ids: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    db.execute("update rec_internal.audit_chain_head set seq = 4")
    status, out, _ = run(db_url, capsys, "verify")
    assert status == 1
    assert len(out) == 1 and out[0].startswith("the chain head is chain_seq 4")


def test_anchor_refuses_a_chain_that_does_not_verify(
    db: psycopg.Connection, db_url: str, ids: list[int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    anchors = tmp_path / "anchors.jsonl"
    anchor(db_url, capsys, anchors)
    before = anchors.read_text()
    db.execute("update rec_audit_log set action = 'forged' where id = %s", [ids[0]])
    status, out, err = run(db_url, capsys, "anchor", "--anchors", str(anchors))
    assert status == 1
    assert "not anchoring a chain that does not verify" in err
    assert out and all(f"row id {ids[0]}" in line for line in out)
    assert anchors.read_text() == before


@pytest.mark.parametrize(
    "content",
    [
        "not json\n",
        "[1, 2]\n",
        '{"chain_seq": -1, "row_hash": null, "recorded_at": "x"}\n',
        '{"chain_seq": 3, "row_hash": "short", "recorded_at": "x"}\n',
        '{"chain_seq": "3", "row_hash": null, "recorded_at": "x"}\n',
        '{"chain_seq": 0, "row_hash": null, "recorded_at": "x", "rows": [[1, 2, "h", "h"]]}\n',
        '{"chain_seq": 0, "row_hash": null}\n',
    ],
)
def test_a_malformed_anchors_file_is_one_line_and_changes_nothing(
    db: psycopg.Connection,
    db_url: str,
    ids: list[int],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
) -> None:
    anchors = tmp_path / "anchors.jsonl"
    anchors.write_text('{"chain_seq": 0, "row_hash": null, "recorded_at": "t"}\n' + content)
    for action in ("verify", "anchor"):
        status, out, err = run(db_url, capsys, action, "--anchors", str(anchors))
        assert status == 1
        assert out == []
        assert err.count("\n") == 1 and "line 2: not an audit anchor" in err, err
    assert anchors.read_text().endswith(content)


def test_verify_with_a_missing_anchors_file_is_one_line(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(db_url, capsys, "verify", "--anchors", str(tmp_path / "nope.jsonl"))
    assert (status, out) == (1, [])
    assert "no anchors file" in err and err.count("\n") == 1


def test_binary_anchors_file_is_one_line(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    anchors = tmp_path / "anchors.jsonl"
    anchors.write_bytes(b"\xff\xfe\x00garbage")
    status, _, err = run(db_url, capsys, "verify", "--anchors", str(anchors))
    assert status == 1 and "not a text file of audit anchors" in err


def test_the_dev_job_anchors_when_the_head_moves(
    db: psycopg.Connection, db_url: str, ids: list[int], tmp_path: Path
) -> None:
    path = tmp_path / audit.DEV_ANCHORS
    first, problems = audit.anchor_once(db_url, path, only_if_moved=True)
    assert problems == [] and first is not None and first.chain_seq == 6
    assert audit.anchor_once(db_url, path, only_if_moved=True) == (None, [])  # head unchanged: no line
    db.execute("select rec_update_experiment('exp', %s, description => 'x')", [ADMIN])
    with audit.anchoring(db_url, path, every=3600):
        pass  # the first run happens at once; leaving the block waits for it
    assert [json.loads(line)["chain_seq"] for line in path.read_text().splitlines()] == [6, 7]
