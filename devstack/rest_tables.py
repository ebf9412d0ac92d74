"""Inserts into tables, PostgREST's way: `POST /rest/v1/<table>` with a JSON
object or an array of objects, for the rows a recommender writes
(`rec_impressions`, `rec_outcomes`) and any other table or view of `public`.

- The columns are the keys of the (first) object, or the `columns=` query
  parameter (supabase-js and supabase-py send it for arrays; keys outside it
  are ignored); a later object missing a key inserts NULL there, other
  columns get their defaults, as PostgREST's default `Prefer: missing=null`
  does. With `Prefer: missing=default` a missing key gets the column's
  default instead (supabase-py: `insert(rows, default_to_null=False)`).
  Postgres casts every value (`json_populate_recordset`), so a bad uuid is
  its own 22P02.
- `Prefer: return=representation` answers 201 with the inserted rows as an
  array, only the `select=` columns if given (plain names and `*`; an
  unknown one is Postgres's 42703 `column <table>.<name> does not exist`);
  `return=minimal` (the default) and `headers-only` answer 201 with no body.
- `Accept: application/vnd.pgrst.object+json` (supabase-js `.single()`)
  answers the one row as an object; zero or several rows are 406 PGRST116
  and nothing is inserted.
- The insert runs as the caller's role, so grants and row level security
  decide, as on Supabase.
- Errors: unknown table 404 PGRST205, unknown column 400 PGRST204, a body
  that is not an object or an array of objects 400 PGRST102; upsert
  (`on_conflict`, `Prefer: resolution=...`), filters and ordering are
  400 PGRST127 (devstack/rest_request.py).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from devstack.rest_errors import RestError
from devstack.rest_request import Prefer, column_list, not_implemented, select_list

SCHEMA = "public"

_TABLES_SQL = """
select c.relname, array_agg(a.attname::text order by a.attnum)
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
 where n.nspname = %s and c.relkind in ('r', 'p', 'v', 'f')
 group by c.relname
"""


_INSERT_PARAMS = {"select", "columns"}


@dataclass(frozen=True)
class Insert:
    """One parsed insert: the table, its columns and the rows as a JSON array;
    `answer` the columns to answer with (None: all), or no answer at all."""

    table: str
    columns: tuple[str, ...]
    rows_json: str
    representation: bool
    answer: tuple[str, ...] | None = None

    def query(self) -> sql.Composed:
        """One row: how many rows were inserted, and (with representation)
        them as a JSON array, else NULL."""
        table = sql.Identifier(SCHEMA, self.table)
        if self.columns:
            names = sql.SQL(", ").join(sql.Identifier(c) for c in self.columns)
            insert = sql.SQL(
                "insert into {t} ({cols}) select {cols}"
                " from pg_catalog.json_populate_recordset(null::{t}, %s::json)"
            ).format(t=table, cols=names)
        else:  # objects without keys: rows of defaults only
            defaults = "insert into {} select from pg_catalog.json_array_elements(%s::json)"
            insert = sql.SQL(defaults).format(table)
        # The CTE is named after the table, so an unknown select column reads
        # "column <table>.<name> does not exist", as in PostgREST.
        ins = sql.Identifier(self.table)
        if not self.representation:
            body: sql.Composable = sql.SQL("null::text")
        elif self.answer is None:
            body = sql.SQL("(select coalesce(pg_catalog.json_agg({i}), '[]')::text from {i})").format(i=ins)
        else:
            cols = sql.SQL(", ").join(sql.SQL("{}.{}").format(ins, sql.Identifier(c)) for c in self.answer)
            body = sql.SQL(
                "(select coalesce(pg_catalog.json_agg(_sel), '[]')::text from (select {c} from {i}) _sel)"
            ).format(c=cols, i=ins)
        return sql.SQL("with {i} as ({q} returning *) select (select count(*) from {i}), {b}").format(
            i=ins, q=insert, b=body
        )


def check_params(params: dict[str, str]) -> None:
    """Query parameters an insert may carry; upsert, filters and the rest are PGRST127."""
    if "on_conflict" in params:
        raise not_implemented("on_conflict=... (upsert)")
    others = sorted(set(params) - _INSERT_PARAMS)
    if others:
        raise not_implemented(
            f"query parameters {', '.join(others)} on an insert (filters, ordering, paging)"
        )


def parse_rows(text: str) -> tuple[list[dict[str, Any]], str]:
    """The body as a list of objects, and that list as JSON text."""
    try:
        value = json.loads(text) if text.strip() else None
    except (ValueError, RecursionError) as exc:
        raise RestError(400, "PGRST102", f"Invalid JSON body: {exc}") from None
    if isinstance(value, dict):
        return [value], f"[{text}]"
    if isinstance(value, list) and all(isinstance(row, dict) for row in value):
        return value, text
    raise RestError(400, "PGRST102", "Empty or invalid json: expected an object or an array of objects")


def _keys(row: dict[str, Any], wanted: tuple[str, ...] | None) -> tuple[str, ...]:
    return tuple(row) if wanted is None else tuple(k for k in wanted if k in row)


class Tables:
    """Column names of `public`'s tables and views; reloaded once on a miss."""

    def __init__(self) -> None:
        self._columns: dict[str, tuple[str, ...]] | None = None

    async def inserts(
        self,
        conn: psycopg.AsyncConnection[Any],
        table: str,
        text: str,
        prefer: Prefer,
        params: dict[str, str],
    ) -> list[Insert]:
        """The statements for one request: one, or with `missing=default` one
        per distinct set of keys (so each leaves out exactly its missing columns)."""
        check_params(params)
        wanted = column_list(params["columns"]) if "columns" in params else None
        rows, rows_json = parse_rows(text)
        if prefer.missing_default and rows:
            groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for row in rows:
                groups.setdefault(_keys(row, wanted), []).append(row)
            batches = [(keys, json.dumps(group)) for keys, group in groups.items()]
        else:
            first = wanted if wanted is not None else tuple(rows[0]) if rows else ()
            batches = [(first, rows_json)]
        keys = tuple(dict.fromkeys(k for batch, _ in batches for k in batch))
        columns = await self._columns_of(conn, table, keys)
        unknown = [k for k in keys if k not in columns]
        if unknown:
            raise RestError(
                400,
                "PGRST204",
                f"Could not find the '{unknown[0]}' column of '{table}' in the schema cache",
            )
        answer = select_list(params.get("select"), columns)
        return [
            Insert(table, batch, batch_json, prefer.representation, answer) for batch, batch_json in batches
        ]

    async def _columns_of(
        self, conn: psycopg.AsyncConnection[Any], table: str, keys: tuple[str, ...]
    ) -> tuple[str, ...]:
        if self._columns is None or table not in self._columns or not set(keys) <= set(self._columns[table]):
            await self.reload(conn)  # the table or column may be newer than the cache
        assert self._columns is not None
        if table not in self._columns:
            close = difflib.get_close_matches(table, list(self._columns), n=1, cutoff=0.6)
            raise RestError(
                404,
                "PGRST205",
                f"Could not find the table '{SCHEMA}.{table}' in the schema cache",
                hint=f"Perhaps you meant the table '{SCHEMA}.{close[0]}'" if close else None,
            )
        return self._columns[table]

    async def reload(self, conn: psycopg.AsyncConnection[Any]) -> None:
        rows = await (await conn.execute(_TABLES_SQL, [SCHEMA])).fetchall()
        self._columns = {name: tuple(cols) for name, cols in rows}
