"""Writing many rows at once: COPY on PostgreSQL, multi-row INSERT elsewhere (SQLite).

A history import writes tens of thousands of rows a second. On PostgreSQL the rows go through COPY, the
fastest way in, inside the session's own transaction, with ids taken from the table's sequence beforehand
when the caller needs to know them, and lookups of many keys are one query with an array. Elsewhere the same
results come from SQLAlchemy's multi-row INSERT and IN lists.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Json
from sqlalchemy import JSON, Table, exc, insert, select
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


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _json_columns(table: Table, columns: list[str]) -> set[int]:
    return {i for i, c in enumerate(columns) if table.c[c].type._type_affinity is JSON}


def _copy(conn: Any, table: Table, name: str, rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0])
    wrap = _json_columns(table, columns)
    with conn.cursor() as cur, cur.copy(f"COPY {name} ({', '.join(columns)}) FROM STDIN") as copy:
        if not wrap:
            for row in rows:
                copy.write_row([row[c] for c in columns])
            return
        for row in rows:
            copy.write_row([Json(row[c], dumps=_dumps) if i in wrap else row[c] for i, c in enumerate(columns)])


def new_ids(s: Session, table: Table, count: int) -> list[int] | None:
    """`count` ids from the table's own sequence (PostgreSQL), so that rows can be written with their ids
    known: no second query to learn them. None elsewhere: let the INSERT assign them."""
    conn = _pg(s)
    if conn is None or count == 0:
        return None
    with conn.cursor() as cur:
        cur.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", (table.name, count))
        return [int(r[0]) for r in cur.fetchall()]


def taken(s: Session, table: Table, shop_id: int, column: str, values: list[str]) -> set[str]:
    """Which of `values` the shop's rows already hold in `column`: one query, an array on PostgreSQL."""
    if not values:
        return set()
    conn = _pg(s)
    if conn is None:
        col = table.c[column]
        found: set[str] = set()
        for start in range(0, len(values), 500):
            q = select(col).where(table.c.shop_id == shop_id, col.in_(values[start:start + 500]))
            found.update(s.scalars(q))
        return found
    with conn.cursor() as cur:
        cur.execute(f"SELECT {column} FROM {table.name} WHERE shop_id = %s AND {column} = ANY(%s)", (shop_id, values))
        return {r[0] for r in cur.fetchall()}


def insert_rows(s: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert every row (all with the same keys); a duplicate key raises, as any INSERT would."""
    if not rows:
        return
    conn = _pg(s)
    if conn is None:
        s.execute(insert(table), rows)
        return
    with _as_sqlalchemy_errors(f"COPY {table.name}"):
        _copy(conn, table, table.name, rows)
