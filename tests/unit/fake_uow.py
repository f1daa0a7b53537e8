"""An in-memory unit of work for the core's unit tests: fakes that record, never mocks."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.core.enrollment import ORDER_SCOPED
from app.core.events import DomainEvent
from app.core.journeys import resume_from
from app.core.model import CheckoutRecord, CustomerRecord, OrderRecord
from app.core.ports import AttributionCandidate, LiveJourney, NewEnrollment, NewMessage, ShopState


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


class _Journeys:
    """Journeys in memory: the enrollments and messages the core asked for, kept as plain dicts."""

    def __init__(self) -> None:
        self.live_journeys: list[LiveJourney] = []
        self.enrollments: dict[tuple[int, str], dict[str, Any]] = {}
        self.messages: dict[tuple[int, str], dict[str, Any]] = {}
        self.attributions: dict[tuple[int, str], dict[str, Any]] = {}
        self.candidates: list[AttributionCandidate] = []
        self.codes: dict[str, frozenset[str]] = {}
        self.timezone = "UTC"

    def live(self, shop_id: int) -> list[LiveJourney]:
        return list(self.live_journeys)

    def email_of(self, shop_id: int, event: DomainEvent) -> str | None:
        return None

    def timezone_of(self, shop_id: int, customer_id: str | None) -> str | None:
        return self.timezone

    def facts_of(self, shop_id: int, customer_id: str | None, order_id: str | None, checkout_id: str | None
                 ) -> dict[str, Any]:
        return {"orders_before": 0}

    def enroll(self, shop_id: int, enrollment: NewEnrollment, messages: list[NewMessage]) -> bool:
        if (shop_id, enrollment.key) in self.enrollments:
            return False
        self.enrollments[(shop_id, enrollment.key)] = {"e": enrollment, "status": "active", "reason": None}
        for m in messages:
            self.messages[(shop_id, m.key)] = {"m": m, "status": m.status, "due_at": m.due_at,
                                               "enrollment": enrollment.key}
        return True

    def exit(self, shop_id: int, who: Any, event_type: str, reason: str, occurred_at: datetime, now: datetime) -> int:
        ended = 0
        for (s, key), row in self.enrollments.items():
            e: NewEnrollment = row["e"]
            journey = next(j.journey for j in self.live_journeys if j.journey_id == e.journey_id)
            mine = (e.order_id == who.order_id) if event_type in ORDER_SCOPED else (
                e.customer_id == who.customer_id or (who.checkout_id is not None and e.checkout_id == who.checkout_id))
            if s == shop_id and row["status"] == "active" and mine and e.trigger_at < occurred_at \
                    and event_type in journey.exits:
                row["status"], row["reason"] = "exited", reason
                ended += 1
                for m in self.messages.values():
                    if m["enrollment"] == key and m["status"] in ("pending", "waiting"):
                        m["status"] = "cancelled"
        return ended

    def resume(self, shop_id: int, order_id: str, event_type: str, occurred_at: datetime, now: datetime) -> int:
        woke = 0
        for key, row in self.enrollments.items():
            e: NewEnrollment = row["e"]
            if e.order_id != order_id or row["status"] != "active":
                continue
            journey = next(j.journey for j in self.live_journeys if j.journey_id == e.journey_id)
            for m in self.messages.values():
                if m["enrollment"] == key[1] and m["status"] == "waiting" and m["m"].waiting_for == event_type:
                    for step, due in resume_from(journey, m["m"].step, occurred_at, self.timezone):
                        target = self.messages[(shop_id, f"{key[1]}:{step}")]
                        target["status"], target["due_at"] = "pending", due
                        woke += 1
        return woke

    def attribution_candidates(self, shop_id: int, order_id: str, customer_id: str | None, since: datetime
                               ) -> tuple[frozenset[str], list[AttributionCandidate]]:
        return self.codes.get(order_id, frozenset()), list(self.candidates)

    def attribute(self, shop_id: int, order_id: str, chosen: AttributionCandidate, revenue: Decimal, currency: str,
                  at: datetime) -> bool:
        if (shop_id, order_id) in self.attributions:
            return False
        self.attributions[(shop_id, order_id)] = {"via": chosen.via, "message_id": chosen.message_id,
                                                  "revenue": revenue}
        return True

    def forget_customer(self, shop_id: int, customer_id: str, now: datetime) -> None:
        for row in self.enrollments.values():
            if row["e"].customer_id == customer_id:
                row["status"] = "exited"


class _Loyalty:
    """No loyalty program: the core's unit tests of orders and journeys earn nothing (the ledger is tested on
    the real database, tests/integration/test_points.py)."""

    def __init__(self) -> None:
        self.followed: list[DomainEvent] = []  # order events handed on to stamps, badges and referrals

    def program(self, shop_id: int) -> None:
        return None

    def follow(self, event: DomainEvent, now: datetime) -> None:
        self.followed.append(event)


class FakeUnitOfWork:
    """Changes become visible only on commit, like the real one: a handler that raises leaves nothing."""

    def __init__(self) -> None:
        self.orders, self.customers, self.checkouts = _Orders(), _Keyed(), _Keyed()
        self.events, self.shops, self.exports = _Events(), _Shops(), _Exports()
        self.journeys = _Journeys()
        self.loyalty = _Loyalty()
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
