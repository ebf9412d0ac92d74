"""devstack.sql_split splits a file where the Supabase CLI does (its own
cases: quotes, dollar quotes, comments, escapes, parentheses, BEGIN ATOMIC)."""

from __future__ import annotations

import pytest

from devstack import migrate, sql_split

CASES = {
    "plain": ("select 1; select 2;", ["select 1", "select 2"]),
    "no final semicolon": ("select 1;\n\nselect 2\n", ["select 1", "select 2"]),
    "empty statements dropped": (";;  ;\nselect 1;;", ["select 1"]),
    "quoted semicolon": ("select 'a;b', \"c;d\"; select 2", ["select 'a;b', \"c;d\"", "select 2"]),
    "doubled quote": ("select 'it''s; fine'; select 2", ["select 'it''s; fine'", "select 2"]),
    "dollar quote": (
        "do $$ begin perform 1; end $$; select 2",
        ["do $$ begin perform 1; end $$", "select 2"],
    ),
    "tagged dollar quote": (
        "create function f() returns int language sql as $body$ select 1; $$ $body$; select 2",
        ["create function f() returns int language sql as $body$ select 1; $$ $body$", "select 2"],
    ),
    "line comment kept with the next statement": (
        "-- one; two\nselect 1; -- trailing; note\nselect 2;",
        ["-- one; two\nselect 1", "-- trailing; note\nselect 2"],
    ),
    "nested block comment": (
        "/* a; /* b; */ c; */ select 1; select 2",
        ["/* a; /* b; */ c; */ select 1", "select 2"],
    ),
    "parentheses": ("select (1; 2); select 3", ["select (1; 2)", "select 3"]),
    "begin atomic": (
        "create function f() returns int begin atomic select 1; select 2; end; select 3",
        ["create function f() returns int begin atomic select 1; select 2; end", "select 3"],
    ),
    "backslash escape": ("select \\; select 2", ["select \\; select 2"]),
    "unterminated quote keeps the rest": ("select 'open; select 2", ["select 'open; select 2"]),
    "empty": ("  \n-- nothing\n", ["-- nothing"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_split_as_the_cli(name: str) -> None:
    text, expected = CASES[name]
    assert sql_split.split(text) == expected


def test_every_migration_splits_into_statements_that_rejoin_to_the_file() -> None:
    for m in migrate.discover():
        text = m.path.read_text()
        statements = sql_split.split(text)
        assert statements, m.path.name
        rest = text
        for statement in statements:  # in order, nothing but separators between them
            before, found, rest = rest.partition(statement)
            assert found and before.strip(" \n;") == "", (m.path.name, before)
        assert rest.strip(" \n;") == ""
