"""Bulk writes (COPY on PostgreSQL, multi-row INSERT on SQLite) behave like any INSERT: a taken key is
SQLAlchemy's IntegrityError on both paths (so the import retries its page), and insert_new skips taken keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest
from sqlalchemy import Table, func, select
from sqlalchemy.exc import IntegrityError

from app.db import bulk
from app.db.models import EventRow
from tests.helpers import add_shop


def _event(shop_id: int, key: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"shop_id": shop_id, "key": key, "type": "OrderPlaced", "payload": {"total": "1.00", "lines": [1]},
            "occurred_at": now, "recorded_at": now}


def test_a_taken_key_is_an_integrity_error_and_insert_new_skips_it(container: Any) -> None:
    shop_id = add_shop(container)
    table = cast(Table, EventRow.__table__)
    with container.sessions() as s, s.begin():
        bulk.insert_rows(s, table, [_event(shop_id, "a"), _event(shop_id, "b")])
    with container.sessions() as s, pytest.raises(IntegrityError):
        with s.begin():
            bulk.insert_rows(s, table, [_event(shop_id, "c"), _event(shop_id, "a")])
    with container.sessions() as s, s.begin():
        new = bulk.insert_new(s, table, [_event(shop_id, k) for k in ("a", "d", "b", "e")], ("shop_id", "key"), ("key",))
        again = bulk.insert_new(s, table, [_event(shop_id, "e")], ("shop_id", "key"), ("key",))  # same transaction
    assert sorted(k for (k,) in new) == ["d", "e"] and again == []
    with container.sessions() as s:
        rows = s.execute(select(EventRow.key, EventRow.payload).order_by(EventRow.key)).all()
        assert [k for k, _ in rows] == ["a", "b", "d", "e"] and rows[0].payload == {"total": "1.00", "lines": [1]}
        assert s.scalar(select(func.count()).select_from(EventRow).where(EventRow.key == "c")) == 0  # rolled back
