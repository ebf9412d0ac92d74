"""Layers, coverage and the experiment settings through the RPCs: creating and
listing layers, ranges that never overlap (also under concurrent creates),
what may change in which state, bad input refused with nothing changed, and
the migration's defaults for experiments that existed before it."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from devstack import migrate, postgres
from tests.sql.conftest import (
    ADMIN,
    connect_as_owner,
    create_experiment,
    experiment,
    last_audit,
    raises_sqlstate,
    scalar,
    snapshot,
)

AB = json.dumps([{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}])


def create(conn: psycopg.Connection, key: str, **kw: Any) -> dict[str, Any]:
    named = "".join(f", {k} => %({k})s" for k in kw)
    query = f"select rec_create_experiment(%(key)s, %(v)s::jsonb, %(admin)s{named})"
    return dict(scalar(conn, query, {"key": key, "v": AB, "admin": ADMIN, **kw}))


def update(conn: psycopg.Connection, key: str, **kw: Any) -> dict[str, Any]:
    named = "".join(f", {k} => %({k})s" for k in kw)
    return dict(
        scalar(
            conn,
            f"select rec_update_experiment(%(key)s, %(admin)s{named})",
            {"key": key, "admin": ADMIN, **kw},
        )
    )


def layers(conn: psycopg.Connection) -> dict[str, dict[str, Any]]:
    rows = conn.execute("select to_jsonb(l) from rec_list_layers() l").fetchall()
    return {r[0]["key"]: r[0] for r in rows}


@pytest.fixture
def feed(db: psycopg.Connection) -> psycopg.Connection:
    db.execute("select rec_create_layer('feed', %s, name => 'Home feed', description => 'ranking')", [ADMIN])
    return db


# --- layers ------------------------------------------------------------------


def test_create_layer_returns_the_row_and_is_audited(db: psycopg.Connection) -> None:
    layer = scalar(db, "select rec_create_layer('feed', %s, name => 'Feed')", [ADMIN])
    assert layer["key"] == "feed" and layer["name"] == "Feed" and layer["description"] is None
    assert isinstance(layer["salt"], str) and len(layer["salt"]) >= 32
    entry = last_audit(db)
    assert entry["action"] == "create_layer" and entry["actor_id"] == ADMIN
    assert entry["experiment_id"] is None and entry["details"]["after"]["salt"] == layer["salt"]
    other = scalar(db, "select rec_create_layer('other', %s)", [ADMIN])
    assert other["salt"] != layer["salt"]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("select rec_create_layer('Feed', %(a)s)", "22023"),
        ("select rec_create_layer('', %(a)s)", "22023"),
        ("select rec_create_layer(null, %(a)s)", "22023"),
        ("select rec_create_layer('x' || repeat('y', 64), %(a)s)", "22023"),
        ("select rec_create_layer('feed', null)", "22023"),
        ("select rec_create_layer('feed', %(a)s)", "23505"),
    ],
)
def test_bad_layers_are_refused_and_change_nothing(feed: psycopg.Connection, query: str, code: str) -> None:
    before = snapshot(feed), layers(feed)
    with raises_sqlstate(feed, code):
        feed.execute(query, {"a": ADMIN})
    assert (snapshot(feed), layers(feed)) == before


def test_layer_salt_never_changes(feed: psycopg.Connection) -> None:
    with raises_sqlstate(feed, "55000"):
        feed.execute("update rec_layers set salt = 'mine'")
    feed.execute("update rec_layers set name = 'renamed'")  # the owner may still fix a name


def test_list_layers_shows_experiments_and_free_ranges(feed: psycopg.Connection) -> None:
    assert layers(feed)["feed"]["experiments"] == [] and layers(feed)["feed"]["free"] == [[0, 10000]]
    create(feed, "a", layer_key="feed", layer_from=1000, layer_to=2000)
    create(feed, "b", layer_key="feed", layer_from=5000, layer_to=10000)
    create(feed, "c", layer_key="feed", layer_from=2000, layer_to=3000)
    feed.execute("select rec_activate_experiment('c', %s)", [ADMIN])
    feed.execute("select rec_end_experiment('c', %s)", [ADMIN])
    got = layers(feed)["feed"]
    assert got["name"] == "Home feed" and got["description"] == "ranking" and got["salt"]
    assert got["experiments"] == [
        {"key": "a", "status": "draft", "layer_range": [1000, 2000]},
        {"key": "c", "status": "ended", "layer_range": [2000, 3000]},
        {"key": "b", "status": "draft", "layer_range": [5000, 10000]},
    ]
    assert got["free"] == [[0, 1000], [2000, 5000]]  # the ended one freed its range


# --- creating experiments in a layer ------------------------------------------


def test_create_in_a_layer_reports_layer_key_and_range(feed: psycopg.Connection) -> None:
    e = create(feed, "a", layer_key="feed", layer_from=0, layer_to=2500, coverage=0.25)
    assert e["layer"] == "feed" and e["layer_range"] == [0, 2500] and e["coverage"] == 0.25
    assert "layer_id" not in e
    got = scalar(feed, "select rec_get_experiment('a')")
    assert got["layer"] == "feed" and got["layer_range"] == [0, 2500] and got["coverage"] == 0.25
    assert last_audit(feed)["details"]["after"]["layer_range"] == [0, 2500]


def test_no_range_means_the_whole_layer(feed: psycopg.Connection) -> None:
    assert create(feed, "all", layer_key="feed")["layer_range"] == [0, 10000]
    with raises_sqlstate(feed, "23P01"):
        create(feed, "more", layer_key="feed", layer_from=9999, layer_to=10000)


def test_overlap_is_23p01_naming_the_holder(feed: psycopg.Connection) -> None:
    create(feed, "holder", layer_key="feed", layer_from=2000, layer_to=4000)
    before = snapshot(feed)
    for low, high in ((3999, 5000), (0, 2001), (2500, 2600), (0, 10000)):
        with pytest.raises(psycopg.Error) as info, feed.transaction():
            create(feed, "new", layer_key="feed", layer_from=low, layer_to=high)
        assert info.value.sqlstate == "23P01"
        assert "'holder'" in str(info.value) and "[2000, 4000)" in str(info.value)
    assert snapshot(feed) == before
    # adjacent ranges do not overlap (half-open), and another layer is another space
    create(feed, "left", layer_key="feed", layer_from=0, layer_to=2000)
    create(feed, "right", layer_key="feed", layer_from=4000, layer_to=10000)
    feed.execute("select rec_create_layer('other', %s)", [ADMIN])
    create(feed, "elsewhere", layer_key="other")


def test_ending_frees_the_range_and_drafts_hold_it(feed: psycopg.Connection) -> None:
    create(feed, "old", layer_key="feed")
    feed.execute("select rec_activate_experiment('old', %s)", [ADMIN])
    with raises_sqlstate(feed, "23P01"):
        create(feed, "next", layer_key="feed")
    feed.execute("select rec_end_experiment('old', %s)", [ADMIN])
    create(feed, "next", layer_key="feed")  # a draft now holds the whole layer
    with raises_sqlstate(feed, "23P01"):
        create(feed, "third", layer_key="feed", layer_from=0, layer_to=1)


BAD_CREATE: dict[str, tuple[dict[str, Any], str]] = {
    "coverage-negative": ({"coverage": -0.01}, "22023"),
    "coverage-above-one": ({"coverage": 1.5}, "22023"),
    "coverage-nan": ({"coverage": float("nan")}, "22023"),
    "range-negative": ({"layer_key": "feed", "layer_from": -1, "layer_to": 10}, "22023"),
    "range-past-end": ({"layer_key": "feed", "layer_from": 10, "layer_to": 10001}, "22023"),
    "range-reversed": ({"layer_key": "feed", "layer_from": 20, "layer_to": 10}, "22023"),
    "range-empty": ({"layer_key": "feed", "layer_from": 10, "layer_to": 10}, "22023"),
    "from-only": ({"layer_key": "feed", "layer_from": 10}, "22023"),
    "to-only": ({"layer_key": "feed", "layer_to": 10}, "22023"),
    "range-without-layer": ({"layer_from": 0, "layer_to": 10}, "22023"),
    "unknown-layer": ({"layer_key": "nope"}, "P0002"),
    "tuning-low": ({"sequential_tuning": 99}, "22023"),
    "tuning-high": ({"sequential_tuning": 10_000_001}, "22023"),
    "cuped-negative": ({"cuped_days": -1}, "22023"),
    "cuped-high": ({"cuped_days": 61}, "22023"),
}


@pytest.mark.parametrize("case", sorted(BAD_CREATE))
def test_bad_create_arguments_change_nothing(feed: psycopg.Connection, case: str) -> None:
    args, code = BAD_CREATE[case]
    before = snapshot(feed), layers(feed)
    with raises_sqlstate(feed, code):
        create(feed, "bad", **args)
    assert (snapshot(feed), layers(feed)) == before


def test_settings_default_and_given(db: psycopg.Connection) -> None:
    e = create(db, "defaults")
    assert (e["sequential"], e["sequential_tuning"], e["cuped_days"], e["coverage"]) == (True, 5000, 14, 1)
    e = create(db, "given", sequential=False, sequential_tuning=100, cuped_days=0)
    assert (e["sequential"], e["sequential_tuning"], e["cuped_days"]) == (False, 100, 0)
    e = create(db, "edges", sequential_tuning=10_000_000, cuped_days=60, coverage=0)
    assert (e["sequential_tuning"], e["cuped_days"], e["coverage"]) == (10_000_000, 60, 0)
    assert last_audit(db)["details"]["after"]["cuped_days"] == 60


def test_old_positional_and_named_calls_still_work(db: psycopg.Connection) -> None:
    e = scalar(
        db, "select rec_create_experiment('old', %s::jsonb, %s, 'Old', 'd', 's', '1 day')", [AB, ADMIN]
    )
    assert e["name"] == "Old" and e["salt"] == "s" and e["layer"] is None and e["coverage"] == 1
    e = scalar(db, "select rec_update_experiment('old', %s, 'New', null, null, '2 days')", [ADMIN])
    assert e["name"] == "New" and e["salt_rotation_interval"] == "2 days"
    assert (
        scalar(
            db,
            "select count(*) from pg_proc"
            " where proname in ('rec_create_experiment', 'rec_update_experiment')",
        )
        == 2
    )


# --- updating ------------------------------------------------------------------


def test_ramp_coverage_while_active_is_audited(feed: psycopg.Connection) -> None:
    create(feed, "ramp", layer_key="feed", layer_from=0, layer_to=5000, coverage=0.01)
    feed.execute("select rec_activate_experiment('ramp', %s)", [ADMIN])
    e = update(feed, "ramp", coverage=0.5)
    assert e["coverage"] == 0.5 and e["layer_range"] == [0, 5000]
    assert last_audit(feed)["details"]["changes"] == {"coverage": {"before": 0.01, "after": 0.5}}
    e = update(feed, "ramp", sequential=False, cuped_days=7)
    changes = last_audit(feed)["details"]["changes"]
    assert changes == {
        "sequential": {"before": True, "after": False},
        "cuped_days": {"before": 14, "after": 7},
    }


def test_layer_and_range_change_only_while_draft(feed: psycopg.Connection) -> None:
    create(feed, "exp", layer_key="feed", layer_from=0, layer_to=100)
    e = update(feed, "exp", layer_from=100, layer_to=300)
    assert e["layer"] == "feed" and e["layer_range"] == [100, 300]
    changes = last_audit(feed)["details"]["changes"]
    assert changes == {"layer_range": {"before": [0, 100], "after": [100, 300]}}
    feed.execute("select rec_create_layer('other', %s)", [ADMIN])
    e = update(feed, "exp", layer_key="other")
    assert e["layer"] == "other" and e["layer_range"] == [0, 10000]
    e = update(feed, "exp", layer_key="")
    assert e["layer"] is None and e["layer_range"] is None
    e = update(feed, "exp", layer_key="feed", layer_from=0, layer_to=10)
    feed.execute("select rec_activate_experiment('exp', %s)", [ADMIN])
    before = snapshot(feed)
    for args in (
        {"layer_key": ""},
        {"layer_key": "other"},
        {"layer_from": 0, "layer_to": 20},
        {"layer_key": "feed"},
    ):
        with raises_sqlstate(feed, "55000"):
            update(feed, "exp", **args)
    assert snapshot(feed) == before


def test_update_into_an_overlap_names_the_holder(feed: psycopg.Connection) -> None:
    create(feed, "a", layer_key="feed", layer_from=0, layer_to=100)
    create(feed, "b", layer_key="feed", layer_from=100, layer_to=200)
    before = snapshot(feed)
    with pytest.raises(psycopg.Error) as info, feed.transaction():
        update(feed, "b", layer_from=50, layer_to=150)
    assert info.value.sqlstate == "23P01" and "'a'" in str(info.value)
    assert snapshot(feed) == before
    update(feed, "a", layer_from=0, layer_to=50)  # its own range may shrink or move
    update(feed, "b", layer_from=50, layer_to=150)


BAD_UPDATE: dict[str, tuple[dict[str, Any], str]] = {
    "coverage-negative": ({"coverage": -1}, "22023"),
    "coverage-above-one": ({"coverage": 1.0000001}, "22023"),
    "range-reversed": ({"layer_from": 50, "layer_to": 10}, "22023"),
    "range-past-end": ({"layer_from": 0, "layer_to": 10001}, "22023"),
    "from-only": ({"layer_from": 5}, "22023"),
    "leave-with-range": ({"layer_key": "", "layer_from": 0, "layer_to": 5}, "22023"),
    "unknown-layer": ({"layer_key": "nope"}, "P0002"),
    "tuning": ({"sequential_tuning": 0}, "22023"),
    "cuped": ({"cuped_days": 100}, "22023"),
}


@pytest.mark.parametrize("case", sorted(BAD_UPDATE))
def test_bad_update_arguments_change_nothing(feed: psycopg.Connection, case: str) -> None:
    create(feed, "exp", layer_key="feed", layer_from=0, layer_to=100)
    args, code = BAD_UPDATE[case]
    before = snapshot(feed)
    with raises_sqlstate(feed, code):
        update(feed, "exp", **args)
    assert snapshot(feed) == before


def test_range_needs_a_layer_on_update(db: psycopg.Connection) -> None:
    create(db, "plain")
    with raises_sqlstate(db, "22023"):
        update(db, "plain", layer_from=0, layer_to=10)


def test_ended_experiments_keep_coverage_and_settings(db: psycopg.Connection) -> None:
    create_experiment(db, "done", json.loads(AB))
    db.execute("select rec_end_experiment('done', %s)", [ADMIN])
    before = snapshot(db)
    for args in ({"coverage": 0.5}, {"sequential": False}, {"sequential_tuning": 200}, {"cuped_days": 1}):
        with raises_sqlstate(db, "55000"):
            update(db, "done", **args)
    assert snapshot(db) == before
    assert update(db, "done", name="still editable")["name"] == "still editable"


def test_lowering_coverage_keeps_everyone_stored(db: psycopg.Connection) -> None:
    create(db, "down", coverage=1)
    db.execute("select rec_activate_experiment('down', %s)", [ADMIN])
    users = [r[0] for r in db.execute("select gen_random_uuid() from generate_series(1, 300)").fetchall()]
    db.execute("select rec_assign_variants(u) from unnest(%s::uuid[]) u", [users])
    stored = db.execute("select user_id, variant from rec_user_experiment_assignments order by 1").fetchall()
    update(db, "down", coverage=0)
    got = db.execute("select u, rec_assign_variant('down', u) from unnest(%s::uuid[]) u", [users]).fetchall()
    assert sorted(got) == stored
    assert experiment(db, "down")["coverage"] == 0


# --- concurrency -----------------------------------------------------------------


def test_eight_overlapping_creates_at_once_exactly_one_wins(db_url: str, feed: psycopg.Connection) -> None:
    """Each session creates and holds its transaction open a moment, so the
    others' inserts meet an uncommitted range and must wait for it."""
    n = 8
    barrier = threading.Barrier(n)
    outcomes: list[str | None] = [None] * n

    def go(i: int) -> None:
        with connect_as_owner(db_url) as conn:
            conn.autocommit = False
            try:
                barrier.wait(timeout=30)
                conn.execute(
                    "select rec_create_experiment(%s, %s::jsonb, %s, layer_key => 'feed',"
                    " layer_from => %s, layer_to => %s)",
                    [f"racer-{i}", AB, ADMIN, 1000 * i % 4000, 5000 + 100 * i],
                )
                conn.execute("select pg_sleep(0.2)")
                conn.commit()
                outcomes[i] = "ok"
            except psycopg.Error as exc:
                outcomes[i] = f"{exc.sqlstate} {exc}"

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    winners = [i for i, o in enumerate(outcomes) if o == "ok"]
    assert len(winners) == 1, outcomes
    losers = [o for o in outcomes if o != "ok"]
    assert all(o is not None and o.startswith("23P01") and f"'racer-{winners[0]}'" in o for o in losers), (
        outcomes
    )
    assert [e["key"] for e in layers(feed)["feed"]["experiments"]] == [f"racer-{winners[0]}"]


# --- the migration ------------------------------------------------------------------


@pytest.fixture
def before_layers(pg_server: postgres.Server, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A database migrated up to, not including, the layers migrations."""
    early = tmp_path / "migrations"
    early.mkdir()
    for m in migrate.discover():
        if m.version < "20261208500000":
            shutil.copy(m.path, early / m.path.name)
    with postgres.fresh_database(pg_server) as url:
        migrate.migrate(url, directory=early)
        yield url, early


def test_existing_experiments_keep_their_analysis(before_layers: tuple[str, Path]) -> None:
    url, _ = before_layers
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "insert into rec_experiments (key, status, variants, salt)"
            " values ('running', 'active', %s::jsonb, 's')",
            [AB],
        )
    migrate.migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "select coverage, layer_id, layer_range, sequential, sequential_tuning, cuped_days"
            "  from rec_experiments where key = 'running'"
        ).fetchone()
        assert row == (1.0, None, None, False, 5000, 0)
        conn.execute(
            "insert into rec_experiments (key, status, variants, salt)"
            " values ('later', 'draft', %s::jsonb, 's')",
            [AB],
        )
        row = conn.execute(
            "select coverage, sequential, sequential_tuning, cuped_days"
            "  from rec_experiments where key = 'later'"
        ).fetchone()
        assert row == (1.0, True, 5000, 14)
