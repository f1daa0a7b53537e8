"""Engines and sessions for the configured database."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

from sqlalchemy import ARRAY, CursorResult, Engine, Result, any_, create_engine, event, literal
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create the engine; SQLite gets WAL, a busy timeout and foreign keys, PostgreSQL a sized pool.

    A failed statement's error never carries its parameters (`hide_parameters`): they hold customers' emails,
    names and tokens, and the error goes to the log."""
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def make_intake_engine(url: str, engine: Engine, **kwargs: Any) -> Engine:
    """The engine the webhook intake stores through: each statement commits on its own, and on PostgreSQL a
    pool of its own without the pre-ping (the caller retries a dropped connection once), so storing a
    delivery is one round trip."""
    if engine.dialect.name != "postgresql":
        return engine  # SQLite: one writer at a time anyway; the caller commits
    return make_engine(url, isolation_level="AUTOCOMMIT", pool_pre_ping=False, **kwargs)


def insert_for(s: Session, model: Any) -> Any:
    """INSERT that takes ON CONFLICT DO NOTHING / RETURNING, for the session's backend (PostgreSQL or SQLite)."""
    if s.get_bind().dialect.name == "postgresql":
        return pg_insert(model)
    return sqlite_insert(model)


def among(s: Session, column: Any, values: Iterable[Any]) -> Any:
    """`column IN (values)`, which on PostgreSQL is `column = ANY(:array)`: one parameter, so the statement's text
    is the same whatever the number of values and both SQLAlchemy's and psycopg's caches of it hold (an IN list
    is a statement of its own for every length)."""
    wanted = list(values)
    if s.get_bind().dialect.name == "postgresql":
        return column == any_(literal(wanted, ARRAY(column.type)))
    return column.in_(wanted)


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE touched (SQLAlchemy types execute() results without it)."""
    return int(cast(CursorResult[Any], result).rowcount)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
