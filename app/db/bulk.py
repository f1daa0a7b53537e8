"""Writing many rows at once: COPY on PostgreSQL, multi-row INSERT elsewhere (SQLite).

A history import writes tens of thousands of rows a second. On PostgreSQL the rows go through COPY, the
fastest way in, inside the session's own transaction; events, which must skip keys already recorded and say
which rows were new, are copied into a temporary table and moved with one INSERT .. SELECT .. ON CONFLICT DO
NOTHING RETURNING. Elsewhere the same results come from SQLAlchemy's multi-row INSERT.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.types.json import Json
from sqlalchemy import Table, exc, insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session


def _pg(s: Session) -> Any | None:
    if s.get_bind().dialect.name != "postgresql":
        return None
    return s.connection().connection.driver_connection


@contextlib.contextmanager
def _as_sqlalchemy_errors(statement: str) -> Iterator[None]:
    """The raw driver's errors as SQLAlchemy's, so callers handle a lost race the same on every path."""
    try:
        yield
    except psycopg.IntegrityError as e:
        raise exc.IntegrityError(statement, None, e) from e
    except psycopg.OperationalError as e:
        raise exc.OperationalError(statement, None, e) from e


def _cells(row: dict[str, Any], columns: list[str]) -> list[Any]:
    return [Json(v) if isinstance(v, dict | list) else v for v in (row[c] for c in columns)]


def insert_rows(s: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert every row (all with the same keys); a duplicate key raises, as any INSERT would."""
    if not rows:
        return
    conn = _pg(s)
    if conn is None:
        s.execute(insert(table), rows)
        return
    columns = list(rows[0])
    statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
    with _as_sqlalchemy_errors(statement), conn.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(_cells(row, columns))


def insert_new(s: Session, table: Table, rows: list[dict[str, Any]], keys: tuple[str, ...],
               returning: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """Insert the rows whose `keys` (a unique constraint) are not taken yet; return `returning` of those."""
    if not rows:
        return []
    conn = _pg(s)
    if conn is None:
        stmt = sqlite_insert(table).on_conflict_do_nothing(index_elements=list(keys))
        return [tuple(r) for r in s.execute(stmt.returning(*[table.c[c] for c in returning]), rows)]
    columns = list(rows[0])
    cols = ", ".join(columns)
    load = f"encore_load_{table.name}"
    with _as_sqlalchemy_errors(f"INSERT INTO {table.name} .. ON CONFLICT DO NOTHING"), conn.cursor() as cur:
        cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {load} (LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
        with cur.copy(f"COPY {load} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(_cells(row, columns))
        cur.execute(f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {load} "
                    f"ON CONFLICT ({', '.join(keys)}) DO NOTHING RETURNING {', '.join(returning)}")
        found = [tuple(r) for r in cur.fetchall()]
        cur.execute(f"DELETE FROM {load}")
    return found
