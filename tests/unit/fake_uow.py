"""An in-memory unit of work for the core's unit tests: fakes that record, never mocks."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from app.core.events import DomainEvent
from app.core.model import CheckoutRecord, CustomerRecord, OrderRecord
from app.core.ports import ShopState


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at


class _Orders:
    def __init__(self) -> None:
        self.rows: dict[tuple[int, str], OrderRecord] = {}

    def get(self, shop_id: int, external_id: str) -> OrderRecord | None:
        return self.rows.get((shop_id, external_id))

    def save(self, shop_id: int, order: OrderRecord) -> None:
        self.rows[(shop_id, order.external_id)] = order

    def get_many(self, shop_id: int, external_ids: list[str], *, lock: bool = False) -> dict[str, OrderRecord]:
        return {i: o for i in external_ids if (o := self.rows.get((shop_id, i))) is not None}

    def save_many(self, shop_id: int, orders: list[OrderRecord]) -> None:
        for order in orders:
            self.save(shop_id, order)

    def of_customer(self, shop_id: int, customer_id: str) -> list[OrderRecord]:
        return [o for (s, _), o in self.rows.items() if s == shop_id and o.customer_id == customer_id]

    def forget_email(self, shop_id: int, customer_id: str, order_ids: tuple[str, ...]) -> None:
        for key, o in list(self.rows.items()):
            if key[0] == shop_id and (o.customer_id == customer_id or o.external_id in order_ids):
                self.rows[key] = replace(o, email=None)


class _Keyed:
    def __init__(self) -> None:
        self.rows: dict[tuple[int, str], Any] = {}

    def get(self, shop_id: int, external_id: str) -> Any:
        return self.rows.get((shop_id, external_id))

    def save(self, shop_id: int, record: CustomerRecord | CheckoutRecord) -> None:
        self.rows[(shop_id, record.external_id)] = record

    def get_many(self, shop_id: int, external_ids: list[str], *, lock: bool = False) -> dict[str, Any]:
        return {i: r for i in external_ids if (r := self.rows.get((shop_id, i))) is not None}

    def redacted_among(self, shop_id: int, external_ids: list[str]) -> set[str]:
        return {i for i in external_ids if (r := self.rows.get((shop_id, i))) is not None and r.redacted}

    def save_many(self, shop_id: int, records: list[CustomerRecord]) -> None:
        for record in records:
            self.save(shop_id, record)

    def forget_customer(self, shop_id: int, customer_id: str) -> None:
        for key, c in list(self.rows.items()):
            if key[0] == shop_id and c.customer_id == customer_id:
                self.rows[key] = replace(c, email=None, recovery_url=None)


class _Events:
    def __init__(self) -> None:
        self.recorded: dict[tuple[int, str], DomainEvent] = {}

    def record(self, event: DomainEvent) -> bool:
        if (event.shop_id, event.key) in self.recorded:
            return False
        self.recorded[(event.shop_id, event.key)] = event
        return True

    def record_many(self, events: list[DomainEvent]) -> list[DomainEvent]:
        return [e for e in events if self.record(e)]


class _Shops:
    def __init__(self) -> None:
        self.rows: dict[int, ShopState] = {}
        self.deleted: list[int] = []

    def get(self, shop_id: int) -> ShopState | None:
        return self.rows.get(shop_id)

    def mark_uninstalled(self, shop_id: int, at: datetime) -> None:
        self.rows[shop_id] = replace(self.rows[shop_id], installed=False)

    def delete_everything(self, shop_id: int) -> None:
        self.deleted.append(shop_id)
        self.rows.pop(shop_id, None)


class _Exports:
    def __init__(self) -> None:
        self.rows: dict[tuple[int, str], dict[str, Any]] = {}

    def add(self, shop_id: int, request_id: str, customer_id: str, content: dict[str, Any]) -> None:
        self.rows.setdefault((shop_id, request_id), content)


class FakeUnitOfWork:
    """Changes become visible only on commit, like the real one: a handler that raises leaves nothing."""

    def __init__(self) -> None:
        self.orders, self.customers, self.checkouts = _Orders(), _Keyed(), _Keyed()
        self.events, self.shops, self.exports = _Events(), _Shops(), _Exports()
        self.commits = 0
        self._saved: Any = None

    def _state(self) -> Any:
        return (dict(self.orders.rows), dict(self.customers.rows), dict(self.checkouts.rows),
                dict(self.events.recorded), dict(self.shops.rows), dict(self.exports.rows))

    def __enter__(self) -> FakeUnitOfWork:
        self._saved = self._state()
        return self

    def __exit__(self, *exc: object) -> None:
        self.rollback()

    def commit(self) -> None:
        self.commits += 1
        self._saved = self._state()

    def rollback(self) -> None:
        (self.orders.rows, self.customers.rows, self.checkouts.rows, self.events.recorded, self.shops.rows,
         self.exports.rows) = (dict(x) for x in self._saved)
