"""What an observed order, fulfillment or refund means: the domain events it implies.

Events come from each observation alone, never from what was stored before, so the set of events
recorded is the same whatever order deliveries arrive in and however often they repeat.
"""

from __future__ import annotations

from collections.abc import Iterator

from app.core.events import (
    DomainEvent,
    OrderCancelled,
    OrderDelivered,
    OrderFulfilled,
    OrderPaid,
    OrderPlaced,
    OrderRefunded,
)
from app.core.model import WAS_PAID, Fulfillment, OrderRecord, Refund


def fulfillment_events(shop_id: int, order_id: str, customer_id: str | None, f: Fulfillment) -> Iterator[DomainEvent]:
    if f.status != "success":
        return
    yield OrderFulfilled(shop_id, f.created_at, order_id, customer_id, f.external_id, f.tracking)
    if f.delivered:
        yield OrderDelivered(shop_id, f.updated_at, order_id, customer_id, f.external_id, f.estimated)


def refund_events(shop_id: int, order_id: str, customer_id: str | None, currency: str, r: Refund) -> Iterator[DomainEvent]:
    yield OrderRefunded(shop_id, r.created_at, order_id, customer_id, r.external_id, r.amount, currency, r.lines)


def order_events(shop_id: int, order: OrderRecord) -> Iterator[DomainEvent]:
    oid, cid = order.external_id, order.customer_id
    yield OrderPlaced(shop_id, order.created_at, oid, cid, order.total, order.currency)
    if order.payment in WAS_PAID:
        yield OrderPaid(shop_id, order.processed_at or order.created_at, oid, cid, order.total, order.currency)
    for f in order.fulfillments:
        yield from fulfillment_events(shop_id, oid, cid, f)
    for r in order.refunds:
        yield from refund_events(shop_id, oid, cid, order.currency, r)
    if order.cancelled_at is not None:
        yield OrderCancelled(shop_id, order.cancelled_at, oid, cid)
