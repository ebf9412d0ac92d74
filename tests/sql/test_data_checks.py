"""Impressions and outcomes are checked on write (docs/reference.md §5):
23514 with a message naming the field, nothing of the statement kept, for
the recommender (service_role) and the owner alike; rows stored before the
checks existed stay, untouched."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from devstack import migrate, postgres
from tests.sql.conftest import acting_as, connect_as_owner, raises_sqlstate, scalar

CHECKS_MIGRATION = "20261208200100"


def impression(conn: psycopg.Connection, user: uuid.UUID, created_at: str = "now()") -> tuple[uuid.UUID, Any]:
    row = conn.execute(
        f"insert into rec_impressions (user_id, request_context, created_at)"
        f' values (%s, \'{{"experiments": {{"e": "a"}}}}\', {created_at}) returning id, created_at',
        [user],
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def counts(conn: psycopg.Connection) -> tuple[int, int]:
    return (
        scalar(conn, "select count(*) from rec_impressions"),
        scalar(conn, "select count(*) from rec_outcomes"),
    )


BAD_TAGS = [
    ({"experiments": {"e": 1}}, "request_context.experiments.e must be a string"),
    ({"experiments": {"ok": "a", "e": None}}, "request_context.experiments.e must be a string"),
    ({"experiments": {"e": {"v": "a"}}}, "request_context.experiments.e must be a string"),
    ({"experiments": {"e": ["a"]}}, "request_context.experiments.e must be a string"),
    ({"experiments": {"e": True}}, "request_context.experiments.e must be a string"),
]


@pytest.mark.parametrize("role", ["service_role", None])
@pytest.mark.parametrize("context, message", BAD_TAGS)
def test_tag_values_must_be_strings(
    db: psycopg.Connection, role: str | None, context: Any, message: str
) -> None:
    user = uuid.uuid4()
    good = json.dumps({"experiments": {"e": "a"}})
    with acting_as(db, role or "service_role") if role else db.transaction():
        with pytest.raises(psycopg.errors.CheckViolation) as info, db.transaction():
            db.execute(
                "insert into rec_impressions (user_id, request_context) values (%s, %s), (%s, %s)",
                [user, good, user, json.dumps(context)],
            )
        assert message in str(info.value)
        assert str(info.value).startswith("rec_impressions.")
        assert counts(db) == (0, 0)


def test_good_tags_and_untagged_impressions_pass(db: psycopg.Connection) -> None:
    user = uuid.uuid4()
    with acting_as(db, "service_role"):
        for context in (
            {},
            {"experiments": {}},
            {"experiments": {"a": "x", "b": ""}, "page": 1},
            {"page": [1]},
        ):
            db.execute(
                "insert into rec_impressions (user_id, request_context) values (%s, %s)",
                [user, json.dumps(context)],
            )
        assert counts(db) == (4, 0)


def test_impressions_at_most_a_day_ahead(db: psycopg.Connection) -> None:
    user = uuid.uuid4()
    with acting_as(db, "service_role"):
        impression(db, user, "now() + interval '23 hours'")
        impression(db, user, "now() - interval '3 years'")  # late logging is fine
        for ahead in ("1 day 1 minute", "5 years"):
            with pytest.raises(psycopg.errors.CheckViolation) as info, db.transaction():
                impression(db, user, f"now() + interval '{ahead}'")
            assert "rec_impressions.created_at must be at most one day ahead" in str(info.value)
        assert counts(db) == (2, 0)
        assert (
            scalar(db, "select count(*) from rec_internal.rollup_dirty_days where day > current_date + 1")
            == 0
        )


def test_an_update_is_checked_too(db: psycopg.Connection) -> None:
    user = uuid.uuid4()
    with acting_as(db, "service_role"):
        imp, _ = impression(db, user)
        with raises_sqlstate(db, "23514"):
            db.execute(
                'update rec_impressions set request_context = \'{"experiments": {"e": 2}}\' where id = %s',
                [imp],
            )
        with raises_sqlstate(db, "23514"):
            db.execute(
                "update rec_impressions set created_at = now() + interval '2 days' where id = %s", [imp]
            )
        assert scalar(db, "select request_context->'experiments'->>'e' from rec_impressions") == "a"


OUTCOME = (
    "insert into rec_outcomes (impression_id, user_id, outcome, value, created_at)"
    " values (%s, %s, 'click', %s, {})"
)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_outcome_values_are_finite(db: psycopg.Connection, value: str) -> None:
    user = uuid.uuid4()
    with acting_as(db, "service_role"):
        imp, _ = impression(db, user)
        with pytest.raises(psycopg.errors.CheckViolation) as info, db.transaction():
            db.execute(OUTCOME.format("now()"), [imp, user, float(value)])
        assert f"rec_outcomes.value must be a finite number, not {value}" in str(info.value)
        db.execute(OUTCOME.format("now()"), [imp, user, -2.5e300])
        assert counts(db) == (1, 1)


def test_an_outcome_is_its_impressions_users(db: psycopg.Connection) -> None:
    user, other = uuid.uuid4(), uuid.uuid4()
    with acting_as(db, "service_role"):
        imp, _ = impression(db, user)
        with pytest.raises(psycopg.errors.CheckViolation) as info, db.transaction():
            db.execute(OUTCOME.format("now()"), [imp, other, 1.0])
        assert "rec_outcomes.user_id must be the user_id of its impression" in str(info.value)
        assert str(other) in (info.value.diag.message_detail or "")
        assert counts(db) == (1, 0)


def test_an_outcome_does_not_predate_its_impression(db: psycopg.Connection) -> None:
    user = uuid.uuid4()
    with acting_as(db, "service_role"):
        imp, _ = impression(db, user, "now() - interval '1 hour'")
        with pytest.raises(psycopg.errors.CheckViolation) as info, db.transaction():
            db.execute(OUTCOME.format("now() - interval '2 hours'"), [imp, user, 1.0])
        assert "rec_outcomes.created_at must not be before its impression's created_at" in str(info.value)
        db.execute(OUTCOME.format("now() - interval '1 hour'"), [imp, user, 1.0])  # the same instant is fine
        assert counts(db) == (1, 1)


def test_one_bad_row_refuses_the_whole_batch(db: psycopg.Connection) -> None:
    users = [uuid.uuid4() for _ in range(50)]
    with acting_as(db, "service_role"):
        imps = [impression(db, u)[0] for u in users]
        rows = [(i, u) for i, u in zip(imps, users, strict=True)]
        rows[37] = (imps[37], users[0])
        with (
            raises_sqlstate(db, "23514"),
            db.cursor().copy("copy rec_outcomes (impression_id, user_id, outcome) from stdin") as cp,
        ):
            for imp, user in rows:
                cp.write_row((imp, user, "click"))
        assert counts(db) == (50, 0)


def test_outcome_updates_are_checked_and_so_are_impression_updates(db: psycopg.Connection) -> None:
    user, other = uuid.uuid4(), uuid.uuid4()
    with acting_as(db, "service_role"):
        imp, _ = impression(db, user)
        imp2, _ = impression(db, other)
        db.execute(OUTCOME.format("now()"), [imp, user, 1.0])
        for change, params in (
            ("value = 'NaN'", []),
            ("user_id = %s", [other]),
            ("impression_id = %s", [imp2]),
            ("created_at = created_at - interval '1 day'", []),
        ):
            with raises_sqlstate(db, "23514"):
                db.execute(f"update rec_outcomes set {change}", params)  # type: ignore[arg-type]
        for change, params in (
            ("user_id = %s", [other]),
            ("created_at = created_at + interval '1 hour'", []),
        ):
            with raises_sqlstate(db, "23514"):
                db.execute(f"update rec_impressions set {change} where id = %s", [*params, imp])  # type: ignore[arg-type]
        db.execute(
            "update rec_outcomes set impression_id = %s, user_id = %s", [imp2, other]
        )  # consistent: fine
        assert scalar(db, "select user_id from rec_outcomes") == other


def test_referential_integrity_and_the_cascade_are_unchanged(db: psycopg.Connection) -> None:
    user = uuid.uuid4()
    with acting_as(db, "service_role"):
        with raises_sqlstate(db, "23503"):
            db.execute(OUTCOME.format("now()"), [uuid.uuid4(), user, 1.0])
        imp, _ = impression(db, user)
        db.execute(OUTCOME.format("now()"), [imp, user, 1.0])
        db.execute("delete from rec_impressions where id = %s", [imp])
        assert counts(db) == (0, 0)


def test_rows_stored_before_the_checks_survive_the_migration(
    pg_server: postgres.Server, tmp_path: Path
) -> None:
    before = tmp_path / "before"
    before.mkdir()
    for path in migrate.discover():
        if path.version < CHECKS_MIGRATION:
            shutil.copy(path.path, before / path.path.name)
    with postgres.fresh_database(pg_server) as url:
        migrate.migrate(url, directory=before)
        with connect_as_owner(url) as conn:
            user, other = uuid.uuid4(), uuid.uuid4()
            imp = conn.execute(
                "insert into rec_impressions (user_id, request_context, created_at)"
                ' values (%s, \'{"experiments": {"e": 7, "f": null}}\', now() + interval \'3 years\')'
                " returning id",
                [user],
            ).fetchone()[0]  # type: ignore[index]
            conn.execute(
                "insert into rec_outcomes (impression_id, user_id, outcome, value, created_at)"
                " values (%s, %s, 'click', 'NaN', now()), (%s, %s, 'like', 'Infinity', now())",
                [imp, other, imp, user],
            )
        migrate.migrate(url)
        with connect_as_owner(url) as conn:
            assert counts(conn) == (1, 2)
            assert scalar(conn, "select count(*) from rec_outcomes where value = 'NaN'") == 1
            # new writes are checked (an update writes its row anew); old rows are not re-validated
            with raises_sqlstate(conn, "23514"):
                conn.execute(OUTCOME.format("now()"), [imp, other, 1.0])
            with raises_sqlstate(conn, "23514"):
                conn.execute("update rec_outcomes set outcome = 'save' where value = 'Infinity'")
            conn.execute(  # a repair is fine
                "update rec_outcomes set value = 1, created_at = (select created_at from rec_impressions)"
                " where value = 'Infinity'"
            )
            assert scalar(conn, "select count(*) from rec_outcomes where value = 1") == 1
