"""The life of one experiment, as its users live it, over real HTTP.

An admin creates, edits and starts it through the functions; a recommender
assigns users through the RPCs with supabase-py and writes tagged
impressions and outcomes through /rest/v1 with it; the admin pins a user, unpins them,
rotates salts (plain, re-bucketing, and the scheduler's "due" call), ends it,
and reads back counts, metrics, the audit trail, lists and user searches.
Expected variants come from tests/sql/reference.py (docs/reference.md §2 from the
contract text alone), not from the database.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import date
from typing import Any

import httpx
import psycopg
from supabase import AsyncClient

from tests.e2e.conftest import (
    ADMIN,
    KEYS,
    audit_count,
    call,
    new_key,
    rpc,
    supabase_client,
    user_ids,
)
from tests.sql.reference import assign
from tests.stack.conftest import Stack

DRAFT_VARIANTS = [{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}]
VARIANTS = [{"name": "control", "weight": 1}, {"name": "ranker_v2", "weight": 1}]
USERS = 120


async def assign_all(client: AsyncClient, users: list[str]) -> dict[str, dict[str, str]]:
    """rec_assign_variants for every user (a few requests at a time): user → map."""
    maps: dict[str, dict[str, str]] = {}
    for start in range(0, len(users), 10):
        chunk = users[start : start + 10]
        results = await asyncio.gather(*(rpc(client, "rec_assign_variants", {"user_id": u}) for u in chunk))
        maps.update(zip(chunk, results, strict=True))
    return maps


async def variant_of(client: AsyncClient, key: str, user: str) -> str | None:
    result: str | None = await rpc(client, "rec_assign_variant", {"experiment_key": key, "user_id": user})
    return result


async def write_traffic(
    client: AsyncClient, stack: Stack, maps: dict[str, dict[str, str]]
) -> tuple[date, list[dict[str, Any]]]:
    """One impression per user tagged with its map, clicks for every third
    user, a save (value 2.5) for every fifth, plus one untagged impression;
    written as the recommender backend writes them (supabase-py, secret key,
    POST /rest/v1/<table>). Returns the UTC day and the rows the metrics must show."""
    expected: dict[str, Counter[str]] = {}
    values: dict[str, float] = {}
    shown = [
        {"user_id": user, "item_id": f"item-{i}", "request_context": {"experiments": m, "surface": "home"}}
        for i, (user, m) in enumerate(maps.items())
    ]
    shown.append({"user_id": str(uuid.uuid4()), "item_id": "untagged"})
    # missing=default: the untagged impression gets the column default '{}'
    logged = (await client.table("rec_impressions").insert(shown, default_to_null=False).execute()).data
    impression_of = {row["item_id"]: row["id"] for row in logged}
    assert len(impression_of) == len(shown)
    done: list[dict[str, Any]] = []
    for i, (user, experiments) in enumerate(maps.items()):
        outcomes = []
        if i % 3 == 0:
            outcomes.append(("click", 1.0))
        if i % 5 == 0:
            outcomes.append(("save", 2.5))
        done += [
            {"impression_id": impression_of[f"item-{i}"], "user_id": user, "outcome": o, "value": v}
            for o, v in outcomes
        ]
        for exp_key, variant in experiments.items():
            tally = expected.setdefault(f"{exp_key}\0{variant}", Counter())
            tally["impressions"] += 1
            tally["outcomes"] += len(outcomes)
            tally["engaged_impressions"] += bool(outcomes)
            values[f"{exp_key}\0{variant}"] = values.get(f"{exp_key}\0{variant}", 0.0) + sum(
                v for _, v in outcomes
            )
    await client.table("rec_outcomes").insert(done).execute()
    with psycopg.connect(stack.db_url) as conn:
        row = conn.execute("select (now() at time zone 'UTC')::date").fetchone()
        assert row is not None
        day: date = row[0]
    rows = []
    for tag, tally in sorted(expected.items()):
        exp_key, variant = tag.split("\0")
        rows.append(
            {
                "day": day.isoformat(),
                "experiment_key": exp_key,
                "variant": variant,
                "impressions": tally["impressions"],
                "users": tally["impressions"],
                "outcomes": tally["outcomes"],
                "engaged_impressions": tally["engaged_impressions"],
                "outcome_value": values[tag],
            }
        )
    return day, rows


async def test_experiment_story(http: httpx.AsyncClient, e2e_stack: Stack) -> None:
    stack = e2e_stack
    key = new_key("e2e-story")
    audit_start = audit_count(stack)
    users = user_ids(USERS)

    async with supabase_client(stack.url, KEYS.secret) as admin:
        # -- create (through supabase-py's functions.invoke), edit while draft, start
        created = await admin.functions.invoke(
            "admin-create-experiment",
            invoke_options={
                "responseType": "json",
                "body": {
                    "key": key,
                    "admin_id": ADMIN,
                    "name": "E2E story",
                    "variants": DRAFT_VARIANTS,
                    "description": "end to end",
                    "salt_rotation_interval": "7 days",
                },
            },
        )
        assert isinstance(created, dict)
        experiment = created["data"]
        assert experiment["key"] == key and experiment["status"] == "draft"
        assert experiment["variants"] == DRAFT_VARIANTS and experiment["started_at"] is None
        assert experiment["salt_rotation_interval"] in ("7 days", "P7D")

        updated = await call(
            http,
            "admin-update-experiment",
            {"key": key, "admin_id": ADMIN, "name": "E2E story (renamed)", "variants": VARIANTS},
        )
        assert updated["name"] == "E2E story (renamed)" and updated["variants"] == VARIANTS
        assert updated["description"] == "end to end" and updated["status"] == "draft"

        activated = await call(http, "admin-activate-experiment", {"key": key, "admin_id": ADMIN})
        assert activated["status"] == "active" and activated["started_at"] is not None
        salt = activated["salt"]
        assert salt == experiment["salt"]

        # -- the recommender assigns: the rule of §2, sticky, one map per request
        active = await call(http, "admin-list-experiments", {"status": "active"})
        active_keys = {row["key"] for row in active}
        assert key in active_keys and "swipe-blend" in active_keys  # ours and the seed's
        maps = await assign_all(admin, users)
        for user, experiments in maps.items():
            assert set(experiments) == active_keys
            assert experiments[key] == assign(salt, user, VARIANTS), user
        first = {user: m[key] for user, m in maps.items()}
        assert set(first.values()) == {"control", "ranker_v2"}
        for user in users[:10]:
            assert await variant_of(admin, key, user) == first[user]  # sticky
        assert await assign_all(admin, users[:10]) == {u: maps[u] for u in users[:10]}

        # -- impressions and outcomes, tagged with the maps
        day, metrics = await write_traffic(admin, stack, maps)
        metrics = [row for row in metrics if row["experiment_key"] == key]

        # -- override, and back to the rule
        pinned = next(u for u in users if first[u] == "control")
        assert (
            await call(
                http,
                "admin-set-user-variant",
                {"key": key, "user_id": pinned, "variant": "ranker_v2", "admin_id": ADMIN},
            )
            == "ranker_v2"
        )
        assert await variant_of(admin, key, pinned) == "ranker_v2"
        assert (await rpc(admin, "rec_assign_variants", {"user_id": pinned}))[key] == "ranker_v2"
        assert (
            await call(http, "admin-reset-user-variant", {"key": key, "user_id": pinned, "admin_id": ADMIN})
            == "control"
        )
        assert await variant_of(admin, key, pinned) == "control"
        assert (
            await call(
                http,
                "admin-set-user-variant",
                {  # pinned again, for the rotations
                    "key": key,
                    "user_id": pinned,
                    "variant": "ranker_v2",
                    "admin_id": ADMIN,
                },
            )
            == "ranker_v2"
        )
        current = {**first, pinned: "ranker_v2"}

        # -- rotate without reassign: every stored user keeps their variant
        rotated = await call(http, "admin-rotate-salt", {"key": key, "admin_id": ADMIN})
        assert rotated["key"] == key and rotated["salt"] != salt
        assert {u: m[key] for u, m in (await assign_all(admin, users)).items()} == current
        newcomer = str(uuid.uuid4())  # a user never seen gets the new salt's variant
        assert await variant_of(admin, key, newcomer) == assign(rotated["salt"], newcomer, VARIANTS)
        users.append(newcomer)
        current[newcomer] = str(assign(rotated["salt"], newcomer, VARIANTS))

        # -- rotate with reassign: auto rows re-bucketed, the manual row survives
        rebucket = await call(http, "admin-rotate-salt", {"key": key, "admin_id": ADMIN, "reassign": True})
        salt = rebucket["salt"]
        assert salt != rotated["salt"]
        counts = (await call(http, "admin-get-experiment", {"key": key}))["assignment_counts"]
        assert counts == [
            {"variant": "control", "auto": 0, "manual": 0, "total": 0},
            {"variant": "ranker_v2", "auto": 0, "manual": 1, "total": 1},
        ]
        after = {u: m[key] for u, m in (await assign_all(admin, users)).items()}
        for user in users:
            assert after[user] == ("ranker_v2" if user == pinned else assign(salt, user, VARIANTS)), user
        assert any(after[u] != current[u] for u in users)  # 120 coin flips did not all repeat
        current = after

        # -- the scheduler's call: only what is due rotates, and nobody moves
        stack.sql(
            "update public.rec_experiments set salt_rotated_at = now() - interval '8 days' where key = %s",
            [key],
        )
        assert await call(http, "admin-rotate-salt", {"due": True}) == {"rotated": [key]}
        assert await call(http, "admin-rotate-salt", {"due": True}) == {"rotated": []}
        scheduled_salt = (await call(http, "admin-get-experiment", {"key": key}))["salt"]
        assert scheduled_salt != salt
        assert {u: m[key] for u, m in (await assign_all(admin, users)).items()} == current

        # -- end: assignment stops; only the manual override still answers (QA preview)
        ended = await call(http, "admin-end-experiment", {"key": key, "admin_id": ADMIN})
        assert ended["status"] == "ended" and ended["ended_at"] is not None
        assert await variant_of(admin, key, pinned) == "ranker_v2"
        assert await variant_of(admin, key, users[1] if users[1] != pinned else users[2]) is None
        assert key not in await rpc(admin, "rec_assign_variants", {"user_id": users[0]})

    # -- the experiment as the dashboard reads it
    got = await call(http, "admin-get-experiment", {"key": key})
    tally = Counter(current.values())
    assert got["status"] == "ended" and got["name"] == "E2E story (renamed)"
    assert got["assignment_counts"] == [
        {"variant": "control", "auto": tally["control"], "manual": 0, "total": tally["control"]},
        {"variant": "ranker_v2", "auto": tally["ranker_v2"] - 1, "manual": 1, "total": tally["ranker_v2"]},
    ]
    assert got["daily_metrics"] == metrics
    assert sum(row["impressions"] for row in metrics) == USERS  # the untagged one counts nowhere
    ranged = await call(
        http, "admin-get-experiment", {"key": key, "from_day": day.isoformat(), "to_day": day.isoformat()}
    )
    assert ranged["daily_metrics"] == metrics
    later = date.fromordinal(day.toordinal() + 1).isoformat()
    assert (await call(http, "admin-get-experiment", {"key": key, "from_day": later}))["daily_metrics"] == []

    # -- the audit trail: every action, in order, with its actor
    entries = await call(http, "admin-audit-log", {"key": key})
    assert audit_count(stack) - audit_start == len(entries) == 10
    trail = list(reversed(entries))
    assert [e["action"] for e in trail] == [
        "create_experiment",
        "update_experiment",
        "activate_experiment",
        "set_user_variant",
        "reset_user_variant",
        "set_user_variant",
        "rotate_salt",
        "rotate_salt",
        "rotate_salt",
        "end_experiment",
    ]
    assert [e["id"] for e in trail] == sorted(e["id"] for e in trail)
    assert all(e["experiment_key"] == key for e in trail)
    assert [e["actor_id"] for e in trail] == [ADMIN] * 8 + [None, ADMIN]  # the scheduler has none
    assert set(trail[1]["details"]["changes"]) == {"name", "variants"}
    assert trail[1]["details"]["changes"]["name"] == {"before": "E2E story", "after": "E2E story (renamed)"}
    assert trail[3]["details"]["user_id"] == pinned
    assert [
        (e["details"]["reassign"], e["details"]["scheduled"], e["details"]["auto_assignments_removed"])
        for e in trail[6:9]
    ] == [(False, False, 0), (True, False, USERS), (False, True, 0)]
    assert trail[9]["details"]["before"] == {"status": "active"}
    newest = await call(http, "admin-audit-log", {"max_rows": 1})
    assert newest == [entries[0]]

    # -- lists by status
    ended_rows = await call(http, "admin-list-experiments", {"status": "ended"})
    mine = [row for row in ended_rows if row["key"] == key]
    assert len(mine) == 1 and mine[0]["assigned_users"] == len(users) and mine[0]["manual_users"] == 1
    for status in ("active", "draft"):
        assert key not in {
            row["key"] for row in await call(http, "admin-list-experiments", {"status": status})
        }
    assert key in {row["key"] for row in await call(http, "admin-list-experiments")}

    # -- users: by uuid (assignment-only), then by e-mail prefix once they have accounts
    found = await call(http, "admin-search-users", {"query": pinned})
    assert found == [
        {"user_id": pinned, "email": None, "created_at": None, "assignments": len(active_keys)}
    ]  # every experiment active when assigned
    tag = uuid.uuid4().hex[:8]
    other = str(uuid.uuid4())
    stack.sql(
        "insert into auth.users (id, email) values (%s, %s), (%s, %s)",
        [pinned, f"e2e-{tag}-ann@example.com", other, f"e2e-{tag}-bob@example.com"],
    )
    by_prefix = await call(http, "admin-search-users", {"query": f"E2E-{tag}-"})
    assert [(r["user_id"], r["email"], r["assignments"]) for r in by_prefix] == [
        (pinned, f"e2e-{tag}-ann@example.com", len(active_keys)),
        (other, f"e2e-{tag}-bob@example.com", 0),
    ]
    assert len(await call(http, "admin-search-users", {"query": f"e2e-{tag}-", "max_rows": 1})) == 1
    assert (await call(http, "admin-search-users", {"query": pinned}))[0][
        "email"
    ] == f"e2e-{tag}-ann@example.com"

    rows = {r["key"]: r for r in await call(http, "admin-user-assignments", {"user_id": pinned})}
    assert set(rows) == active_keys
    assert {k: rows[key][k] for k in ("status", "variant", "assignment_mode", "assigned_by")} == {
        "status": "ended",
        "variant": "ranker_v2",
        "assignment_mode": "manual",
        "assigned_by": ADMIN,
    }
    assert rows[key]["rule_variant"] == assign(scheduled_salt, pinned, VARIANTS)
    auto_user = next(u for u in users if u != pinned)
    auto_row = next(
        r for r in await call(http, "admin-user-assignments", {"user_id": auto_user}) if r["key"] == key
    )
    assert auto_row["assignment_mode"] == "auto" and auto_row["assigned_by"] is None
    assert auto_row["variant"] == current[auto_user]
