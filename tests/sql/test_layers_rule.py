"""The extended assignment rule (layers and coverage): the SQL function agrees
exactly with the independent Python version (tests/sql/reference.py) over
many random users, weights, coverages and ranges; with coverage 1 and no
layer it is the original rule; ramps move nobody; disjoint ranges of one
layer never share a user; shares follow coverage and range widths."""

from __future__ import annotations

import json
import math
import random
import uuid
from typing import Any

import psycopg
import pytest

from tests.sql.conftest import ADMIN, assignments, create_experiment, scalar, uuids
from tests.sql.reference import assign, assign_extended, hash_prefix, layer_bucket
from tests.sql.test_assignment_rule import N_USERS, SALTS, VARIANT_SETS

RULE_SQL = """
select t.i, rec_internal.rule_variant(t.salt, t.u, t.v::jsonb, t.c, t.ls, int4range(t.lo, t.hi))
  from unnest(%s::int[], %s::text[], %s::uuid[], %s::text[], %s::float8[], %s::text[], %s::int[], %s::int[])
       t(i, salt, u, v, c, ls, lo, hi)"""


def sql_rule(conn: psycopg.Connection, cases: list[dict[str, Any]]) -> list[str | None]:
    """rec_internal.rule_variant for each case, in one statement."""
    columns = [
        list(range(len(cases))),
        [c["salt"] for c in cases],
        [c["user"] for c in cases],
        [c["variants"] for c in cases],
        [c["coverage"] for c in cases],
        [c["layer_salt"] for c in cases],
        [c["range"][0] if c["range"] else None for c in cases],
        [c["range"][1] if c["range"] else None for c in cases],
    ]
    got: list[str | None] = [None] * len(cases)
    for i, variant in conn.execute(RULE_SQL, columns).fetchall():
        got[i] = variant
    return got


def py_rule(case: dict[str, Any]) -> str | None:
    return assign_extended(
        case["salt"], case["user"], case["variants"], case["coverage"], case["layer_salt"], case["range"]
    )


def random_weight(rng: random.Random) -> str:
    """A weight as JSON text: integers, short and long decimals, exponents, zeros."""
    kind = rng.randrange(6)
    if kind == 0:
        return "0"
    if kind == 1:
        return str(rng.randint(1, 1000))
    if kind == 2:
        return f"{rng.uniform(0, 100):.{rng.randint(1, 17)}f}"
    if kind == 3:
        return repr(rng.uniform(1e-6, 1e6))
    if kind == 4:
        return f"{rng.randint(1, 999)}e-{rng.randint(1, 6)}"
    return "0.1"


def random_case(rng: random.Random, user: uuid.UUID) -> dict[str, Any]:
    n = rng.randint(1, 8)
    weights = [random_weight(rng) for _ in range(n)]
    if all(float(w) == 0 for w in weights):
        weights[-1] = "1"
    variants = "[" + ", ".join(f'{{"name": "v{i}", "weight": {w}}}' for i, w in enumerate(weights)) + "]"
    coverage = rng.choice([0.0, 1.0, 0.5, 0.01, 0.1, 0.3333333333333333, rng.random(), rng.random()])
    layered = rng.random() < 0.6
    low = rng.choice([0, rng.randrange(10000), 9999])
    high = rng.choice([10000, rng.randint(low + 1, 10000), low + 1])
    return {
        "salt": rng.choice(["s", "ünïcødé ✓", f"salt-{rng.randrange(10**9)}"]),
        "user": user,
        "variants": variants,
        "coverage": coverage,
        "layer_salt": f"layer-{rng.randrange(50)}" if layered else None,
        "range": (low, high) if layered else None,
    }


def test_sql_and_python_agree_on_random_users_weights_coverages_and_ranges(db: psycopg.Connection) -> None:
    """40,000 random cases, each its own salt, variants, coverage and range."""
    rng = random.Random(2208)
    cases = [random_case(rng, u) for u in uuids(40_000, seed=2209)]
    got = sql_rule(db, cases)
    mismatches = [(c, g) for c, g in zip(cases, got, strict=True) if g != py_rule(c)]
    assert not mismatches, f"{len(mismatches)} cases differ, e.g. {mismatches[:2]}"
    # the cases really cover in, out by coverage, and out by layer
    outcomes = {
        "in": sum(g is not None for g in got),
        "uncovered": sum(g is None and c["layer_salt"] is None for c, g in zip(cases, got, strict=True)),
        "outside": sum(
            c["layer_salt"] is not None
            and not c["range"][0] <= layer_bucket(c["layer_salt"], c["user"]) < c["range"][1]
            for c in cases
        ),
    }
    assert all(count > 1000 for count in outcomes.values()), outcomes


@pytest.mark.parametrize("name", sorted(VARIANT_SETS))
def test_coverage_one_without_layer_is_the_original_rule(db: psycopg.Connection, name: str) -> None:
    """Every user of the original rule's tests, each salt of them."""
    variants = VARIANT_SETS[name]
    users = uuids(N_USERS, seed=sum(map(ord, name)))
    for salt in SALTS:
        rows = db.execute(
            "select u, rec_internal.rule_variant(%s, u, %s::jsonb, 1, null, null) from unnest(%s::uuid[]) u",
            [salt, json.dumps(variants), users],
        ).fetchall()
        assert {u: v for u, v in rows} == {u: assign(salt, u, variants) for u in users}


def test_coverage_boundary_is_exclusive(db: psycopg.Connection) -> None:
    """x*W exactly at r0 + coverage*w1 is out (not in the next variant
    either); one bucket above it is in. Weights are exact binary fractions."""
    user = next(u for u in uuids(50, seed=31) if 0 < hash_prefix("edge", u) < 2**31)
    k = hash_prefix("edge", user)  # x * 2^19 = k / 2^13, with W = 2^19
    on_edge = json.dumps([{"name": "a", "weight": k / 2**12}, {"name": "b", "weight": 2**19 - k / 2**12}])
    inside = json.dumps(
        [{"name": "a", "weight": (k + 1) / 2**12}, {"name": "b", "weight": 2**19 - (k + 1) / 2**12}]
    )
    cases = [
        {"salt": "edge", "user": user, "variants": v, "coverage": 0.5, "layer_salt": None, "range": None}
        for v in (on_edge, inside)
    ]
    assert [py_rule(c) for c in cases] == [None, "a"]
    assert sql_rule(db, cases) == [None, "a"]


def test_layer_range_bounds_are_half_open(db: psycopg.Connection) -> None:
    users = uuids(200, seed=41)
    cases = []
    for u in users:
        b = layer_bucket("L", u)
        for low, high in ((b, b + 1), (b + 1, min(b + 2, 10000)), (max(b - 1, 0), b), (0, 10000)):
            if low < high:
                cases.append(
                    {
                        "salt": "s",
                        "user": u,
                        "variants": '[{"name": "a", "weight": 1}]',
                        "coverage": 1.0,
                        "layer_salt": "L",
                        "range": (low, high),
                    }
                )
    got = sql_rule(db, cases)
    assert got == [py_rule(c) for c in cases]
    assert got == [
        "a" if c["range"][0] <= layer_bucket("L", c["user"]) < c["range"][1] else None for c in cases
    ]


def within_3_se(count: int, n: int, p: float) -> bool:
    return abs(count / n - p) <= 3 * math.sqrt(p * (1 - p) / n)


def test_ramp_from_10_to_50_percent_moves_nobody(db: psycopg.Connection) -> None:
    n = 20_000
    users = uuids(n, seed=51)
    variants = [{"name": "control", "weight": 1}, {"name": "treatment", "weight": 3}]
    db.execute(
        "select rec_create_experiment('ramp', %s::jsonb, %s, salt => 'ramp-salt', coverage => 0.1)",
        [json.dumps(variants), ADMIN],
    )
    db.execute("select rec_activate_experiment('ramp', %s)", [ADMIN])
    assign_sql = "select count(*) from unnest(%s::uuid[]) u where rec_assign_variants(u) ? 'ramp'"
    first = scalar(db, assign_sql, [users])
    before = {
        r[0]: r[1:]
        for r in db.execute(
            "select user_id, variant, assignment_mode, assigned_at from rec_user_experiment_assignments"
        ).fetchall()
    }
    assert first == len(before) and within_3_se(first, n, 0.1)
    text = json.dumps(variants)
    assert {u for u in users if assign_extended("ramp-salt", u, text, 0.1)} == set(before)

    db.execute("select rec_update_experiment('ramp', %s, coverage => 0.5)", [ADMIN])
    changes = scalar(db, "select details->'changes' from rec_audit_log order by id desc limit 1")
    assert changes == {"coverage": {"before": 0.1, "after": 0.5}}
    second = scalar(db, assign_sql, [users])
    after = {
        r[0]: r[1:]
        for r in db.execute(
            "select user_id, variant, assignment_mode, assigned_at from rec_user_experiment_assignments"
        ).fetchall()
    }
    assert within_3_se(second, n, 0.5) and second == len(after)
    assert {u: after[u] for u in before} == before  # same variant, same row: nobody moved
    assert {u: a[0] for u, a in after.items()} == {
        u: assign_extended("ramp-salt", u, text, 0.5) for u in after
    }
    # covered users split by the weights (1:3) at either coverage
    treated = sum(a[0] == "treatment" for a in after.values())
    assert within_3_se(treated, len(after), 0.75)


def layered_feed(db: psycopg.Connection) -> str:
    """Layer 'feed': a [0, 3000), b [3000, 8000), c [8000, 10000) at coverage
    0.5, [8000, 10000) otherwise free; 'free' is in no layer. All active."""
    # Fixed salts (the owner may insert a layer directly), so the share checks
    # below are deterministic rather than flaky.
    db.execute("insert into rec_layers (key, salt) values ('feed', 'feed-layer-salt')")
    ab = json.dumps([{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}])
    for key, low, high, coverage in (("a", 0, 3000, 1), ("b", 3000, 8000, 1), ("c", 8000, 10000, 0.5)):
        db.execute(
            "select rec_create_experiment(%s, %s::jsonb, %s, layer_key => 'feed', layer_from => %s,"
            " layer_to => %s, coverage => %s, salt => %s)",
            [key, ab, ADMIN, low, high, coverage, f"{key}-salt"],
        )
        db.execute("select rec_activate_experiment(%s, %s)", [key, ADMIN])
    create_experiment(db, "free", json.loads(ab), salt="free-salt")
    return ab


def test_disjoint_ranges_share_no_user_over_100k_users(db: psycopg.Connection) -> None:
    """The rule set-wise in SQL: 100,000 users x the three layered experiments."""
    layered_feed(db)
    n = 100_000
    row = db.execute(
        """
        with e as (
          select x.key, x.salt, x.variants, x.coverage, l.salt as layer_salt, x.layer_range
            from rec_experiments x join rec_layers l on l.id = x.layer_id),
        r as (
          select u, count(*) filter (where e.key = 'a') > 0 as in_a,
                 count(*) filter (where e.key = 'b') > 0 as in_b,
                 count(*) filter (where e.key = 'c') > 0 as in_c
            from unnest(%s::uuid[]) users(u)
           cross join e
           where rec_internal.rule_variant(e.salt, u, e.variants, e.coverage, e.layer_salt, e.layer_range)
                 is not null
           group by u)
        select count(*) filter (where in_a), count(*) filter (where in_b), count(*) filter (where in_c),
               count(*) filter (where in_a::int + in_b::int + in_c::int > 1)
          from r""",
        [uuids(n, seed=101)],
    ).fetchone()
    assert row is not None
    a, b, c, shared = row
    assert shared == 0  # (users in none are not in r at all)
    # each range's share is its width (times coverage)
    assert within_3_se(a, n, 0.3) and within_3_se(b, n, 0.5) and within_3_se(c, n, 0.1)


def test_layered_assignments_through_the_rpc(db: psycopg.Connection) -> None:
    """rec_assign_variants stores what the rule says and no user twice in a layer."""
    ab = layered_feed(db)
    layer_salt = scalar(db, "select salt from rec_layers where key = 'feed'")
    salts = dict(db.execute("select key, salt from rec_experiments").fetchall())
    users = uuids(5000, seed=91)
    rows = db.execute("select u, rec_assign_variants(u) from unnest(%s::uuid[]) u", [users]).fetchall()
    ranges = {"a": (0, 3000, 1.0), "b": (3000, 8000, 1.0), "c": (8000, 10000, 0.5)}
    for u, got in rows:
        want = {"free": assign(salts["free"], u, json.loads(ab))}
        for key, (low, high, coverage) in ranges.items():
            v = assign_extended(salts[key], u, ab, coverage, layer_salt, (low, high))
            if v is not None:
                want[key] = v
        assert got == want
        assert len(got) == 2 or (len(got) == 1 and layer_bucket(layer_salt, u) >= 8000)
    stored = {key: assignments(db, key) for key in (*ranges, "free")}
    assert sum(len(v) for v in stored.values()) == sum(len(m) for _, m in rows)


def test_draft_and_ended_layered_experiments_assign_nobody(db: psycopg.Connection) -> None:
    db.execute("select rec_create_layer('l', %s)", [ADMIN])
    db.execute(
        "select rec_create_experiment('d', %s::jsonb, %s, layer_key => 'l')",
        ['[{"name": "a", "weight": 1}]', ADMIN],
    )
    users = uuids(50, seed=61)
    got = db.execute("select rec_assign_variants(u) from unnest(%s::uuid[]) u", [users]).fetchall()
    assert all(r[0] == {} for r in got)
    assert scalar(db, "select count(*) from rec_user_experiment_assignments") == 0


def test_rotation_with_reassign_redraws_coverage_but_not_eligibility(db: psycopg.Connection) -> None:
    db.execute("select rec_create_layer('rot', %s)", [ADMIN])
    ab = json.dumps([{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}])
    db.execute(
        "select rec_create_experiment('r', %s::jsonb, %s, layer_key => 'rot', layer_from => 0,"
        " layer_to => 5000, coverage => 0.5)",
        [ab, ADMIN],
    )
    db.execute("select rec_activate_experiment('r', %s)", [ADMIN])
    layer_salt = scalar(db, "select salt from rec_layers where key = 'rot'")
    users = uuids(4000, seed=71)
    db.execute("select rec_assign_variants(u) from unnest(%s::uuid[]) u", [users])
    first = set(assignments(db, "r"))
    new_salt = scalar(db, "select rec_rotate_salt('r', %s, reassign => true)", [ADMIN])
    db.execute("select rec_assign_variants(u) from unnest(%s::uuid[]) u", [users])
    second = assignments(db, "r")
    assert second == {
        u: (v, "auto", None)
        for u in users
        if (v := assign_extended(new_salt, u, ab, 0.5, layer_salt, (0, 5000))) is not None
    }
    eligible = {u for u in users if layer_bucket(layer_salt, u) < 5000}
    assert first <= eligible and set(second) <= eligible
    assert first != set(second)  # coverage was drawn again
    # what the admin view says the rule gives agrees, null where left out
    for u in users[:200]:
        rows = db.execute("select key, rule_variant from rec_user_assignments(%s)", [u]).fetchall()
        for key, rule in rows:
            assert key == "r" and rule == assign_extended(new_salt, u, ab, 0.5, layer_salt, (0, 5000))


def test_manual_override_needs_neither_eligibility_nor_coverage(db: psycopg.Connection) -> None:
    db.execute("select rec_create_layer('m', %s)", [ADMIN])
    db.execute(
        "select rec_create_experiment('o', %s::jsonb, %s, layer_key => 'm', layer_from => 0,"
        " layer_to => 1, coverage => 0)",
        ['[{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]', ADMIN],
    )
    db.execute("select rec_activate_experiment('o', %s)", [ADMIN])
    user = uuids(1, seed=81)[0]
    assert scalar(db, "select rec_assign_variant('o', %s)", [user]) is None
    db.execute("select rec_set_user_variant('o', %s, 'b', %s)", [user, ADMIN])
    assert scalar(db, "select rec_assign_variants(%s)", [user]) == {"o": "b"}
    rows = db.execute("select variant, rule_variant from rec_user_assignments(%s)", [user]).fetchall()
    assert rows == [("b", None)]
    assert scalar(db, "select rec_reset_user_variant('o', %s, %s)", [user, ADMIN]) is None
    assert assignments(db, "o") == {}
