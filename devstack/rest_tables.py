"""Inserts into tables, PostgREST's way: `POST /rest/v1/<table>` with a JSON
object or an array of objects, for the rows a recommender writes
(`rec_impressions`, `rec_outcomes`) and any other table or view of `public`.

- The columns are the keys of the (first) object; a later object missing a
  key inserts NULL there, other columns get their defaults, as PostgREST's
  default `Prefer: missing=null` does. With `Prefer: missing=default` a
  missing key gets the column's default instead (supabase-py:
  `insert(rows, default_to_null=False)`). Postgres casts every value
  (`json_populate_recordset`), so a bad uuid is its own 22P02.
- `Prefer: return=representation` answers 201 with the inserted rows as an
  array; `return=minimal` (the default) and `headers-only` answer 201 with
  no body.
- The insert runs as the caller's role, so grants and row level security
  decide, as on Supabase.
- Errors: unknown table 404 PGRST205, unknown column 400 PGRST204, a body
  that is not an object or an array of objects 400 PGRST102.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from devstack.rest_errors import RestError

SCHEMA = "public"

_TABLES_SQL = """
select c.relname, array_agg(a.attname::text order by a.attnum)
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
 where n.nspname = %s and c.relkind in ('r', 'p', 'v', 'f')
 group by c.relname
"""


@dataclass(frozen=True)
class Insert:
    """One parsed insert: the table, its columns and the rows as a JSON array."""

    table: str
    columns: tuple[str, ...]
    rows_json: str
    representation: bool

    def query(self) -> sql.Composed:
        """One row, one column: the inserted rows as a JSON array (or NULL for minimal)."""
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
        if not self.representation:
            return sql.SQL("with _ins as ({}) select null::text").format(insert)
        return sql.SQL(
            "with _ins as ({} returning *) select coalesce(pg_catalog.json_agg(_ins), '[]')::text from _ins"
        ).format(insert)


def preferences(prefer: str) -> set[str]:
    """The `Prefer` header's comma-separated preferences."""
    return {p.strip().replace(" ", "") for p in prefer.split(",")}


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


class Tables:
    """Column names of `public`'s tables and views; reloaded once on a miss."""

    def __init__(self) -> None:
        self._columns: dict[str, tuple[str, ...]] | None = None

    async def inserts(
        self, conn: psycopg.AsyncConnection[Any], table: str, text: str, prefer: set[str]
    ) -> list[Insert]:
        """The statements for one request: one, or with `missing=default` one
        per distinct set of keys (so each leaves out exactly its missing columns)."""
        representation = "return=representation" in prefer
        rows, rows_json = parse_rows(text)
        if "missing=default" in prefer and rows:
            groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for row in rows:
                groups.setdefault(tuple(row), []).append(row)
            batches = [(keys, json.dumps(group)) for keys, group in groups.items()]
        else:
            batches = [(tuple(rows[0]) if rows else (), rows_json)]
        keys = tuple(dict.fromkeys(k for batch, _ in batches for k in batch))
        columns = await self._columns_of(conn, table, keys)
        unknown = [k for k in keys if k not in columns]
        if unknown:
            raise RestError(
                400,
                "PGRST204",
                f"Could not find the '{unknown[0]}' column of '{table}' in the schema cache",
            )
        return [Insert(table, batch, batch_json, representation) for batch, batch_json in batches]

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
