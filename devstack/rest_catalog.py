"""The schema cache for RPC: functions of schema `public` read from
pg_catalog, PostgREST's rules for picking one from the JSON keys, and the
SQL that calls it and shapes the result as JSON.

Arguments travel the PostgREST way: the body goes to Postgres as one json
value, `json_to_record` turns it into a typed row and the call uses named
notation (`name := _.name`), so every cast, and every cast error, is
Postgres's own (a bad interval is 22007, a bad uuid 22P02).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import sql

from devstack.rest_errors import RestError

SCHEMA = "public"
Kind = Literal["void", "scalar", "composite"]

# search_path '' makes format_type qualify every type outside pg_catalog, so
# the type names are valid whatever search_path a request later runs with.
_CATALOG_SQL = """
select p.proname,
       p.proretset,
       case when p.prorettype = 'pg_catalog.void'::pg_catalog.regtype then 'void'
            when t.typtype = 'c' then 'composite'
            when p.prorettype = 'pg_catalog.record'::pg_catalog.regtype
                 and p.proallargtypes is not null then 'composite'  -- OUT / TABLE columns
            else 'scalar' end,
       p.pronargdefaults,
       coalesce(p.proargnames, '{}'),
       coalesce(p.proargmodes::text[], '{}'),
       array(select pg_catalog.format_type(u.typ, null)
               from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]))
                    with ordinality u(typ, ord) order by u.ord)
  from pg_catalog.pg_proc p
  join pg_catalog.pg_namespace n on n.oid = p.pronamespace
  join pg_catalog.pg_type t on t.oid = p.prorettype
 where n.nspname = %s and p.prokind = 'f'
"""
_INPUT_MODES = {"i", "b", "v"}


@dataclass(frozen=True)
class Param:
    name: str  # "" for an unnamed parameter
    type: str  # format_type() text, schema-qualified where needed
    required: bool  # no default
    variadic: bool


@dataclass(frozen=True)
class Routine:
    name: str
    params: tuple[Param, ...]
    returns_set: bool
    kind: Kind

    def takes(self, keys: frozenset[str]) -> bool:
        """PostgREST's match: every key a parameter, every required parameter a key."""
        names = {p.name for p in self.params}
        required = {p.name for p in self.params if p.required}
        return keys <= names and required <= keys

    @property
    def takes_whole_body(self) -> bool:
        """One unnamed json/jsonb parameter: it receives the request body as is."""
        return len(self.params) == 1 and not self.params[0].name and self.params[0].type in ("json", "jsonb")

    def signature(self) -> str:
        args = ", ".join(f"{p.name} => {p.type}" for p in self.params)
        return f"{SCHEMA}.{self.name}({args})"


@dataclass(frozen=True)
class Call:
    """The chosen function and how it gets its arguments."""

    routine: Routine
    arg_names: tuple[str, ...]  # the body's keys, in parameter order
    whole_body: bool  # pass the body itself to the one unnamed json parameter

    def query(self, text_args: bool) -> sql.Composed:
        """One row, one column: the response body as JSON text (NULL for void).

        The single query parameter is the JSON text of the arguments (or of
        the whole body). `text_args`: values are query-string text, cast with
        the type's input function rather than read as JSON.
        """
        source, args = self._arguments(text_args)
        fn = sql.SQL("{}({})").format(sql.Identifier(SCHEMA, self.routine.name), sql.SQL(", ").join(args))
        return _shaped(self.routine, fn, source)

    def _arguments(self, text_args: bool) -> tuple[sql.Composable | None, list[sql.Composable]]:
        if self.whole_body:
            return None, [sql.SQL("%s::{}").format(sql.SQL(self.routine.params[0].type))]
        if not self.arg_names:
            return None, []
        params = {p.name: p for p in self.routine.params}
        columns: list[sql.Composable] = []
        args: list[sql.Composable] = []
        for name in self.arg_names:
            p, ident = params[name], sql.Identifier(name)
            columns.append(sql.SQL("{} {}").format(ident, sql.SQL("text" if text_args else p.type)))
            value = sql.SQL("_.{}").format(ident)
            if text_args:
                value = sql.SQL("{}::{}").format(value, sql.SQL(p.type))
            variadic = sql.SQL("variadic ") if p.variadic else sql.SQL("")
            args.append(sql.SQL("{}{} := {}").format(variadic, ident, value))
        source = sql.SQL("pg_catalog.json_to_record(%s::json) as _({})").format(sql.SQL(", ").join(columns))
        return source, args


def _shaped(routine: Routine, fn: sql.Composable, source: sql.Composable | None) -> sql.Composed:
    """PostgREST's result shapes, serialized by Postgres (json keeps column order)."""
    select_from = sql.SQL(" from {}").format(source) if source else sql.SQL("")
    if routine.kind == "void":
        return sql.SQL("select {}::text{}").format(fn, select_from)
    if routine.kind == "scalar" and not routine.returns_set:
        return sql.SQL("select pg_catalog.to_json({})::text{}").format(fn, select_from)
    lateral = sql.SQL("{}, lateral ").format(source) if source else sql.SQL("")
    if routine.kind == "scalar":
        return sql.SQL("select coalesce(pg_catalog.json_agg(_t.v), '[]')::text from {}{} as _t(v)").format(
            lateral, fn
        )
    if routine.returns_set:
        return sql.SQL("select coalesce(pg_catalog.json_agg(_t), '[]')::text from {}{} as _t").format(
            lateral, fn
        )
    # A single composite is one object; a NULL row comes back as an object of
    # nulls, exactly as PostgREST returns it (PostgREST issue #3694).
    return sql.SQL("select (pg_catalog.json_agg(_t) -> 0)::text from {}{} as _t").format(lateral, fn)


class Catalog:
    """Functions of `public` by name; loaded once, reloaded once on a miss."""

    def __init__(self) -> None:
        self._routines: dict[str, list[Routine]] | None = None

    async def resolve(
        self, conn: psycopg.AsyncConnection[Any], name: str, keys: frozenset[str] | None, post: bool
    ) -> Call:
        """`keys` None: the body is not an object, only a whole-body function fits."""
        if self._routines is None:
            await self.reload(conn)
        try:
            return self._choose(name, keys, post)
        except RestError as exc:
            if exc.code != "PGRST202":
                raise
        await self.reload(conn)  # the function may be newer than the cache
        return self._choose(name, keys, post)

    async def reload(self, conn: psycopg.AsyncConnection[Any]) -> None:
        async with conn.transaction():
            await conn.execute("set local search_path = ''")
            rows = await (await conn.execute(_CATALOG_SQL, [SCHEMA])).fetchall()
        routines: dict[str, list[Routine]] = {}
        for row in rows:
            routine = _routine(*row)
            routines.setdefault(routine.name, []).append(routine)
        self._routines = routines

    def _choose(self, name: str, keys: frozenset[str] | None, post: bool) -> Call:
        """Named matches first; else a function taking the whole body (POST only)."""
        overloads = (self._routines or {}).get(name, [])
        named = [r for r in overloads if keys is not None and r.takes(keys)]
        whole = [r for r in overloads if post and r.takes_whole_body]
        candidates, whole_body = (named, False) if named else (whole, True)
        if len(candidates) > 1:
            raise RestError(
                300,
                "PGRST203",
                "Could not choose the best candidate function between: "
                + ", ".join(r.signature() for r in candidates),
                hint="Try renaming the parameters or the function itself in the "
                "database so function overloading can be resolved",
            )
        if not candidates:
            if keys is None and overloads:
                raise RestError(
                    400,
                    "PGRST102",
                    "The request body must be a JSON object whose keys are the function's argument names",
                )
            raise self._not_found(name, keys or frozenset(), post)
        routine = candidates[0]
        order = [p.name for p in routine.params if keys and p.name in keys]
        return Call(routine, tuple(order), whole_body)

    def _not_found(self, name: str, keys: frozenset[str], post: bool) -> RestError:
        """PGRST202 in PostgREST's words, with its kind of "perhaps you meant" hint."""
        func = f"{SCHEMA}.{name}"
        listed = ", ".join(sorted(keys))
        searched = f"with parameter{'s' if len(keys) > 1 else ''} {listed}" if keys else "without parameters"
        if post:
            searched += " or with a single unnamed json/jsonb parameter"
        return RestError(
            404,
            "PGRST202",
            f"Could not find the function {func}({listed}) in the schema cache"
            if keys
            else f"Could not find the function {func} without parameters in the schema cache",
            details=f"Searched for the function {func} {searched}, but no matches were found "
            "in the schema cache.",
            hint=self._hint(name, keys),
        )

    def _hint(self, name: str, keys: frozenset[str]) -> str | None:
        routines = self._routines or {}
        if name in routines:
            lists = sorted({"(" + ", ".join(sorted(p.name for p in r.params)) + ")" for r in routines[name]})
            wanted = "(" + ", ".join(sorted(keys)) + ")"
            best = difflib.get_close_matches(wanted, lists, n=1, cutoff=0.0)
            return f"Perhaps you meant to call the function {SCHEMA}.{name}{best[0]}" if best else None
        close = difflib.get_close_matches(name, list(routines), n=1, cutoff=0.75)
        return f"Perhaps you meant to call the function {SCHEMA}.{close[0]}" if close else None


def _routine(
    name: str,
    returns_set: bool,
    kind: Kind,
    n_defaults: int,
    names: list[str],
    modes: list[str],
    types: list[str],
) -> Routine:
    modes = modes or ["i"] * len(types)  # no modes recorded: all are IN
    names = names + [""] * (len(types) - len(names))  # unnamed parameters
    inputs = [(n, t, m == "v") for n, t, m in zip(names, types, modes, strict=True) if m in _INPUT_MODES]
    first_default = len(inputs) - n_defaults  # defaults are always the trailing inputs
    params = tuple(Param(n, t, i < first_default, variadic) for i, (n, t, variadic) in enumerate(inputs))
    return Routine(name, params, returns_set, kind)
