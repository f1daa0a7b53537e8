"""Shared by the journeys tests: a controllable clock, a shop with the library installed, customers and orders
fed through the core handlers, and readers for what the engine scheduled and sent."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email import message_from_bytes, policy
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import journeys as jr
from app.bootstrap import Container
from app.channels.outbox import OutboxChannel
from app.core.messagebus import handle
from app.core.model import Consent, CustomerRecord, OrderLine, OrderRecord, PaymentStatus
from app.db import models as t
from app.db.uow import SqlUnitOfWork
from tests.helpers import add_shop

T0 = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)  # a Monday, 10:00 in New York


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, **kw: float) -> None:
        self.at += timedelta(**kw)


def journey_shop(c: Container, enabled: frozenset[str], timezone: str = "America/New_York") -> int:
    shop_id = add_shop(c)
    with c.sessions() as s, s.begin():
        row = s.get(t.Shop, shop_id)
        assert row is not None
        row.name, row.currency, row.timezone = "Bean There", "USD", timezone
        jr.install_defaults(s, shop_id, enabled=enabled)
    return shop_id


def customer(cid: str = "501", *, marketing: bool = True, email: str | None = "ana@example.com", **kw: Any
             ) -> CustomerRecord:
    return CustomerRecord(cid, T0 - timedelta(days=400), email=email, first_name="Ana",
                          consent=Consent(email_marketing=marketing, sms_marketing=marketing), **kw)


def order(oid: str = "1001", cid: str | None = "501", at: datetime = T0, **kw: Any) -> OrderRecord:
    lines = (OrderLine("1", "Ethiopia Guji 250 g", 2, Decimal("14.50"), product_id="p1"),
             OrderLine("2", "Paper filters", 1, Decimal("4.00"), product_id="p2"))
    base = OrderRecord(external_id=oid, updated_at=at, created_at=at, currency="USD", total=Decimal("33.00"),
                       subtotal=Decimal("33.00"), name=f"#{oid}", customer_id=cid, email="ana@example.com",
                       payment=PaymentStatus.PAID, processed_at=at, lines=lines)
    return replace(base, **kw)


def seed_enrollment(s: Session, shop_id: int, key: str, customer_id: str, at: datetime, *, trigger_type: str,
                    order_id: str | None = None) -> t.Enrollment:
    """A journey of `key` (switched on, an empty version 1) and one active enrollment in it for the customer,
    inserted directly: for tests of what hangs off an enrollment (preferences, surveys), not of enrolling."""
    journey = t.JourneyRow(shop_id=shop_id, key=key, enabled=True)
    s.add(journey)
    s.flush()
    version = t.JourneyVersion(shop_id=shop_id, journey_id=journey.id, version=1, definition={}, templates={})
    s.add(version)
    s.flush()
    enrollment = t.Enrollment(
        shop_id=shop_id, journey_id=journey.id, version_id=version.id, key=f"{key}:{customer_id}",
        trigger_type=trigger_type, trigger_key="order-1", trigger_at=at, customer_external_id=customer_id,
        email=f"{customer_id}@example.com", order_external_id=order_id, facts={}, created_at=at)
    s.add(enrollment)
    s.flush()
    return enrollment


def observe(c: Container, clock: Clock, shop_id: int, command: Any) -> None:
    handle(command, SqlUnitOfWork(c.sessions), clock)


def messages(c: Container, shop_id: int) -> list[dict[str, Any]]:
    with c.sessions() as s:
        rows = s.execute(select(t.Message, t.JourneyRow.key).join(t.JourneyRow, t.JourneyRow.id == t.Message.journey_id)
                         .where(t.Message.shop_id == shop_id).order_by(t.Message.id)).all()
        return [{"journey": key, "step": m.step, "status": m.status, "due_at": m.due_at, "sent_at": m.sent_at,
                 "channel": m.sent_channel, "reason": m.reason, "deferred": m.deferred, "code": m.code,
                 "customer": m.customer_external_id, "id": m.id} for m, key in rows]


def read_outbox(box: OutboxChannel) -> list[Any]:
    return [message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted(box.directory.glob("*.eml"))]
