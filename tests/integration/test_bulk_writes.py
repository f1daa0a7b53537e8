"""Bulk writes (COPY on PostgreSQL, multi-row INSERT on SQLite) behave like any INSERT: a taken key is
SQLAlchemy's IntegrityError on both paths (so the import retries its page); `taken` finds keys already there;
ids drawn beforehand are the ids the rows get."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest
from sqlalchemy import Table, func, select
from sqlalchemy.exc import IntegrityError

from app.db import bulk
from app.db.models import EventRow, Order
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
    with container.sessions() as s:
        assert bulk.taken(s, table, shop_id, "key", ["a", "d", "b", "c"]) == {"a", "b"}
        assert bulk.taken(s, table, shop_id + 1, "key", ["a"]) == set() and bulk.taken(s, table, shop_id, "key", []) == set()
        rows = s.execute(select(EventRow.key, EventRow.payload).order_by(EventRow.key)).all()
        assert [k for k, _ in rows] == ["a", "b"] and rows[0].payload == {"total": "1.00", "lines": [1]}
        assert s.scalar(select(func.count()).select_from(EventRow).where(EventRow.key == "c")) == 0  # rolled back


def test_ids_drawn_beforehand_are_the_rows_ids(container: Any) -> None:
    shop_id = add_shop(container)
    table = cast(Table, Order.__table__)
    now = datetime.now(UTC)
    with container.sessions() as s, s.begin():
        ids = bulk.new_ids(s, table, 3)
        rows = [{"shop_id": shop_id, "external_id": f"o{n}", "name": "", "currency": "USD", "subtotal": 1, "total": 1,
                 "total_tax": 0, "total_shipping": 0, "total_discounts": 0, "refunded_amount": 0,
                 "payment_status": "paid", "status": "paid", "created_at": now, "external_updated_at": now}
                for n in range(3)]
        if ids is not None:  # PostgreSQL: the sequence hands them out; elsewhere the INSERT assigns them
            assert len(set(ids)) == 3
            rows = [{**r, "id": i} for r, i in zip(rows, ids, strict=True)]
        bulk.insert_rows(s, table, rows)
    with container.sessions() as s:
        stored = dict(s.execute(select(Order.external_id, Order.id)).all())
    assert sorted(stored) == ["o0", "o1", "o2"]
    if ids is not None:
        assert [stored[f"o{n}"] for n in range(3)] == ids
