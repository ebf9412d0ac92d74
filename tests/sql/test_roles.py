"""docs/reference.md §5 under both privilege regimes: anon gets nothing,
authenticated only its own assignment, service_role everything. Functions
are listed from pg_proc, so a new public rec_* function is covered without
touching this file."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql

from shared.rpcs import RPCS
from tests.sql.conftest import (
    ADMIN,
    acting_as,
    create_experiment,
    raises_sqlstate,
    scalar,
    sqlstate_of,
    uuids,
)
from tests.sql.reference import assign

# a column of each table, for update statements
TIME_COLUMN = {
    "rec_experiments": "created_at",
    "rec_user_experiment_assignments": "assigned_at",
    "rec_impressions": "created_at",
    "rec_outcomes": "created_at",
    "rec_audit_log": "created_at",
}
TABLES = [
    "rec_experiments",
    "rec_user_experiment_assignments",
    "rec_impressions",
    "rec_outcomes",
    "rec_audit_log",
]
VIEWS = ["rec_variant_daily_metrics_v1", "rec_variant_daily_outcomes_v1"]
AB = [{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}]
USER_FACING = {name for name, rpc in RPCS.items() if "authenticated" in rpc.callers}

# The SQL API as the project catalogues it: name -> argument names, callers.
CATALOGUED = {name: list(rpc.args) for name, rpc in RPCS.items()}


def public_functions(conn: psycopg.Connection) -> list[tuple[str, str, list[str]]]:
    """(signature, name, argument types) of every public function named rec_*."""
    rows = conn.execute(r"""
        select p.oid::regprocedure::text, p.proname,
               array(select format_type(t.oid, null)
                       from unnest(p.proargtypes::oid[]) with ordinality t(oid, n) order by n)
          from pg_proc p
         where p.pronamespace = 'public'::regnamespace and p.proname like 'rec\_%'
           and p.prorettype <> 'trigger'::regtype
         order by 1""").fetchall()
    assert rows, "no public rec_* functions found"
    return [(r[0], r[1], list(r[2])) for r in rows]


PROCEDURES = {"rec_refresh_daily_rollups_by_day"}


def null_call(name: str, types: list[str]) -> sql.Composed:
    args = sql.SQL(", ").join(sql.SQL("null::{}").format(sql.SQL(t)) for t in types)
    if name in PROCEDURES:  # called, not selected from
        return sql.SQL("call public.{}({})").format(sql.Identifier(name), args)
    return sql.SQL("select * from public.{}({})").format(sql.Identifier(name), args)


def relations() -> list[str]:
    return TABLES + VIEWS


# --- the surface exists as the contract names it ----------------------------


def test_contract_functions_exist_with_their_argument_names(db: psycopg.Connection) -> None:
    rows = db.execute(r"""
        select p.proname, coalesce(p.proargnames[1:p.pronargs], '{}')
          from pg_proc p
         where p.pronamespace = 'public'::regnamespace and p.proname like 'rec\_%'""").fetchall()
    found: dict[str, list[list[str]]] = {}
    for name, args in rows:
        found.setdefault(name, []).append(list(args))
    for name, args in CATALOGUED.items():
        assert found.get(name) == [args], f"{name}: {found.get(name)}"


def test_every_public_function_is_catalogued(db: psycopg.Connection) -> None:
    """A new RPC must be added to shared.rpcs.RPCS, which the grants checks read."""
    names = {name for _, name, _ in public_functions(db)}
    assert names == set(RPCS)


def test_api_roles_may_execute_exactly_what_the_catalogue_says(db: psycopg.Connection) -> None:
    rows = db.execute(r"""
        select p.proname, array(select r from unnest(array['anon', 'authenticated', 'service_role']) r
                                 where has_function_privilege(r, p.oid, 'execute') order by r)
          from pg_proc p
         where p.pronamespace = 'public'::regnamespace and p.proname like 'rec\_%'
           and p.prorettype <> 'trigger'::regtype""").fetchall()
    granted = {name: set(roles) for name, roles in rows}
    assert granted == {name: set(rpc.callers) for name, rpc in RPCS.items()}


def test_tables_have_rls_and_views_run_as_the_caller(db: psycopg.Connection) -> None:
    rls: dict[str, bool] = dict(
        db.execute(
            "select relname, relrowsecurity from pg_class"
            " where relnamespace = 'public'::regnamespace and relname = any(%s)",
            [TABLES],
        ).fetchall()
    )
    assert rls == dict.fromkeys(TABLES, True)
    for view in VIEWS:
        options = scalar(db, "select reloptions from pg_class where oid = %s::regclass", [view])
        assert options and "security_invoker=true" in options, view


# No SET clause on purpose, neither security definer: uuid_v7 stays inlinable
# (every name in it is pg_catalog-qualified), and a procedure that commits
# may have no SET clause.
UNPINNED = ["rec_internal.uuid_v7()", "rec_refresh_daily_rollups_by_day(date,integer)"]


def test_security_definer_functions_pin_search_path(db: psycopg.Connection) -> None:
    rows = db.execute(r"""
        select p.oid::regprocedure::text, p.prosecdef from pg_proc p
         where p.pronamespace in ('public'::regnamespace, 'rec_internal'::regnamespace)
           and (p.proname like 'rec\_%' or p.pronamespace = 'rec_internal'::regnamespace)
           and not exists (select 1 from unnest(coalesce(p.proconfig, '{}')) c
                            where c like 'search\_path=%')
         order by 1""").fetchall()
    assert rows == [(name, False) for name in UNPINNED]


# --- anon: nothing ----------------------------------------------------------------


def test_anon_cannot_touch_tables_or_views(db: psycopg.Connection) -> None:
    with acting_as(db, "anon"):
        for rel in relations():
            with raises_sqlstate(db, "42501"):
                db.execute(sql.SQL("select * from {} limit 1").format(sql.Identifier(rel)))
        for table in TABLES:
            with raises_sqlstate(db, "42501"):
                db.execute(sql.SQL("delete from {}").format(sql.Identifier(table)))
            with raises_sqlstate(db, "42501"):
                db.execute(
                    sql.SQL("update {} set {} = now()").format(
                        sql.Identifier(table), sql.Identifier(TIME_COLUMN[table])
                    )
                )
        with raises_sqlstate(db, "42501"):
            db.execute("insert into rec_impressions (user_id) values (%s)", [uuid.uuid4()])
        with raises_sqlstate(db, "42501"):
            db.execute("insert into rec_experiments (key, variants) values ('x', %s)", [json.dumps(AB)])


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_api_roles_cannot_execute_admin_functions(db: psycopg.Connection, role: str) -> None:
    functions = public_functions(db)
    assert set(CATALOGUED) <= {name for _, name, _ in functions}
    refused = [f for f in functions if role == "anon" or f[1] not in USER_FACING]
    with acting_as(db, role, str(uuid.uuid4())):
        for signature, name, types in refused:
            code = sqlstate_of(lambda n=name, t=types: _in_savepoint(db, null_call(n, t)))
            assert code == "42501", f"{role} could call {signature} (got {code})"


def _in_savepoint(conn: psycopg.Connection, query: sql.Composed) -> None:
    with conn.transaction():
        conn.execute(query)


def test_anon_cannot_assign(db: psycopg.Connection) -> None:
    create_experiment(db, "exp", AB)
    user = uuid.uuid4()
    with acting_as(db, "anon", str(user)):
        with raises_sqlstate(db, "42501"):
            db.execute("select rec_assign_variant('exp', %s)", [user])
        with raises_sqlstate(db, "42501"):
            db.execute("select rec_assign_variants(%s)", [user])
        with raises_sqlstate(db, "42501"):
            db.execute('select rec_internal.bucket(\'s\', %s, \'[{"name": "a", "weight": 1}]\')', [user])
    assert scalar(db, "select count(*) from rec_user_experiment_assignments") == 0


# --- authenticated: its own assignment only ----------------------------------


def test_authenticated_assigns_itself(db: psycopg.Connection) -> None:
    create_experiment(db, "exp", AB, salt="s")
    me, someone = uuids(2, seed=60)
    with acting_as(db, "authenticated", str(me)):
        assert scalar(db, "select rec_assign_variant('exp', %s)", [me]) == assign("s", me, AB)
        assert scalar(db, "select rec_assign_variants(%s)", [me]) == {"exp": assign("s", me, AB)}
        with raises_sqlstate(db, "42501"):
            db.execute("select rec_assign_variant('exp', %s)", [someone])
        with raises_sqlstate(db, "42501"):
            db.execute("select rec_assign_variants(%s)", [someone])
        for rel in relations():
            with raises_sqlstate(db, "42501"):
                db.execute(sql.SQL("select * from {} limit 1").format(sql.Identifier(rel)))
        with raises_sqlstate(db, "42501"):
            db.execute("insert into rec_impressions (user_id) values (%s)", [me])
        with raises_sqlstate(db, "42501"):
            db.execute("update rec_user_experiment_assignments set variant = 'treatment'")


def test_authenticated_writes_nothing_for_someone_else(db: psycopg.Connection) -> None:
    create_experiment(db, "exp", AB)
    me, someone = uuids(2, seed=61)
    with acting_as(db, "authenticated", str(me)), raises_sqlstate(db, "42501"):
        db.execute("select rec_assign_variants(%s)", [someone])
    # a token without sub is nobody
    with acting_as(db, "authenticated"), raises_sqlstate(db, "42501"):
        db.execute("select rec_assign_variant('exp', %s)", [me])
    assert scalar(db, "select count(*) from rec_user_experiment_assignments") == 0


def test_authenticated_assignment_is_stored(db: psycopg.Connection) -> None:
    """What a signed-in user got through the API is the sticky row later calls see."""
    create_experiment(db, "exp", AB)
    me = uuid.uuid4()
    # acting_as rolls back: do it in a committed PostgREST-like transaction instead
    db.execute("reset role")
    with db.transaction():
        db.execute("set local role authenticated")
        db.execute(
            "select set_config('request.jwt.claims', %s, true)",
            [json.dumps({"role": "authenticated", "sub": str(me)})],
        )
        got = scalar(db, "select rec_assign_variant('exp', %s)", [me])
    db.execute("set role rec_migrator")
    assert scalar(db, "select variant from rec_user_experiment_assignments where user_id = %s", [me]) == got


# --- service_role: everything --------------------------------------------------


def test_service_role_reads_every_table_and_logs_impressions(db: psycopg.Connection) -> None:
    """service_role reads everything and inserts what the recommender logs;
    experiments and assignments it changes only through the RPCs
    (the refusals are in tests/sql/test_append_only.py)."""
    user = uuid.uuid4()
    with acting_as(db, "service_role"):
        db.execute("select rec_create_experiment('svc', %s::jsonb, %s)", [json.dumps(AB), ADMIN])
        db.execute("select rec_activate_experiment('svc', %s)", [ADMIN])
        variant = scalar(db, "select rec_assign_variant('svc', %s)", [user])
        imp = scalar(
            db,
            "insert into rec_impressions (user_id, request_context)"
            " values (%s, jsonb_build_object('experiments', jsonb_build_object('svc', %s::text)))"
            " returning id",
            [user, variant],
        )
        db.execute(
            "insert into rec_outcomes (impression_id, user_id, outcome) values (%s, %s, 'click')", [imp, user]
        )
        expected = {
            "rec_experiments": 1,
            "rec_user_experiment_assignments": 1,
            "rec_impressions": 1,
            "rec_outcomes": 1,
            "rec_audit_log": 2,
        }
        for table in TABLES:
            count = scalar(db, sql.SQL("select count(*) from {}").format(sql.Identifier(table)))
            assert count == expected[table], table
        for table in ("rec_impressions", "rec_outcomes"):
            db.execute(
                sql.SQL("update {} set {} = now()").format(
                    sql.Identifier(table), sql.Identifier(TIME_COLUMN[table])
                )
            )
        for view in VIEWS:
            assert scalar(db, sql.SQL("select count(*) from {}").format(sql.Identifier(view))) == 1
        for table in ("rec_outcomes", "rec_impressions"):
            db.execute(sql.SQL("delete from {}").format(sql.Identifier(table)))
        assert scalar(db, "select count(*) from rec_impressions") == 0


def test_service_role_may_execute_every_function(db: psycopg.Connection) -> None:
    """Null arguments: whatever the function says about them, it is not 42501."""
    with acting_as(db, "service_role"):
        for signature, name, types in public_functions(db):
            code = sqlstate_of(lambda n=name, t=types: _in_savepoint(db, null_call(n, t)))
            assert code != "42501", f"service_role may not call {signature}"


def test_service_role_runs_the_whole_api(db: psycopg.Connection) -> None:
    user = uuid.uuid4()
    v = json.dumps(AB)
    calls: list[tuple[str, list[Any]]] = [
        ("select rec_create_layer('svc-layer', %s)", [ADMIN]),
        (
            "select rec_create_experiment('svc', %s::jsonb, %s, salt_rotation_interval => '1 hour',"
            " layer_key => 'svc-layer', coverage => 0.5)",
            [v, ADMIN],
        ),
        ("select rec_update_experiment('svc', %s, name => 'Svc')", [ADMIN]),
        ("select rec_activate_experiment('svc', %s)", [ADMIN]),
        ("select rec_create_metric('svc_likes', 'per_user_count', %s, outcome => 'like')", [ADMIN]),
        ("select rec_update_metric('svc_likes', %s, capping => 0.999)", [ADMIN]),
        ("select * from rec_list_metrics()", []),
        (
            'select rec_set_experiment_metrics(\'svc\', \'[{"metric": "svc_likes", "role": "goal"}]\', %s)',
            [ADMIN],
        ),
        ("select rec_assign_variant('svc', %s)", [user]),
        ("select rec_assign_variants(%s)", [user]),
        ("select rec_set_user_variant('svc', %s, 'control', %s)", [user, ADMIN]),
        ("select rec_reset_user_variant('svc', %s, %s)", [user, ADMIN]),
        ("select * from rec_active_experiments()", []),
        ("select * from rec_list_experiments()", []),
        ("select rec_get_experiment('svc')", []),
        ("select * from rec_experiment_daily_metrics('svc')", []),
        ("select rec_experiment_results_stats('svc', null, null)", []),
        ("select rec_experiment_results_series_stats('svc', null, null)", []),
        ("select rec_experiment_plan_stats('svc', array[7])", []),
        ("select * from rec_search_users(%s)", [str(user)]),
        ("select * from rec_user_assignments(%s)", [user]),
        ("select * from rec_audit_entries('svc')", []),
        ("select rec_rotate_salt('svc', %s)", [ADMIN]),
        ("select * from rec_rotate_due_salts()", []),
        ("select rec_refresh_daily_rollups()", []),
        ("call rec_refresh_daily_rollups_by_day()", []),  # nothing dirty: no commit inside acting_as
        ("select rec_end_experiment('svc', %s)", [ADMIN]),
        ("select rec_record_decision('svc', %s, 'inconclusive')", [ADMIN]),
        ("select rec_grant_admin(%s, 'viewer', %s)", [user, ADMIN]),
        ("select rec_admin_role(%s)", [user]),
        ("select * from rec_list_admins()", []),
        ("select rec_revoke_admin(%s, %s)", [user, ADMIN]),
        ("select * from rec_verify_audit_chain()", []),
        ("select * from rec_audit_chain_head()", []),
        ("select * from rec_audit_chain_rows()", []),
        ("select * from rec_list_layers()", []),
    ]
    assert {c.split("rec_")[1].split("(")[0] for c, _ in calls} == {
        n.removeprefix("rec_") for n in CATALOGUED
    }
    db.execute("insert into auth.users (id, email) values (%s, 'svc@example.com')", [user])
    with acting_as(db, "service_role"):
        for query, params in calls:
            db.execute(query, params)
        assert scalar(db, "select count(*) from rec_audit_log") == 14
        assert scalar(db, "select status from rec_experiments") == "ended"


# --- the catalog's view of the same rules ----------------------------------------

PRIVILEGES = ["select", "insert", "update", "delete", "truncate", "references", "trigger"]


def test_catalog_privileges(db: psycopg.Connection) -> None:
    functions = [sig for sig, _, _ in public_functions(db)]
    assert not scalar(db, "select has_sequence_privilege('service_role', 'rec_audit_log_id_seq', 'usage')")
    for role in ("anon", "authenticated"):
        for rel in relations():
            for priv in PRIVILEGES:
                assert not scalar(db, "select has_table_privilege(%s, %s, %s)", [role, rel, priv]), (
                    role,
                    rel,
                    priv,
                )
        assert not scalar(db, "select has_sequence_privilege(%s, 'rec_audit_log_id_seq', 'usage')", [role])
        assert not scalar(db, "select has_schema_privilege(%s, 'rec_internal', 'usage')", [role])
        for sig in functions:
            allowed = role == "authenticated" and sig.split("(")[0] in USER_FACING
            assert scalar(db, "select has_function_privilege(%s, %s, 'execute')", [role, sig]) == allowed, (
                role,
                sig,
            )
    # service_role: reads everything; writes what the recommender logs; the
    # audit log and experiments and assignments it only reads
    service_role = {
        "rec_experiments": {"select"},
        "rec_user_experiment_assignments": {"select"},
        "rec_impressions": {"select", "insert", "update", "delete", "truncate", "references", "trigger"},
        "rec_outcomes": {"select", "insert", "update", "delete", "truncate", "references", "trigger"},
        "rec_audit_log": {"select"},
    }
    for rel in TABLES:
        for priv in PRIVILEGES:
            granted = scalar(db, "select has_table_privilege('service_role', %s, %s)", [rel, priv])
            assert granted == (priv in service_role[rel]), (rel, priv)
    for view in VIEWS:
        assert scalar(db, "select has_table_privilege('service_role', %s, 'select')", [view])
    for sig in functions:
        assert scalar(db, "select has_function_privilege('service_role', %s, 'execute')", [sig]), sig
