"""Points that follow the order: what an order earns when it is paid, made available when it is fulfilled,
and taken back, exactly, when it is refunded or cancelled. Runs in the same transaction as the order's own
events (`handlers._commit`), so an order and its points are committed together or not at all.

Every posting's key says what it is about, so the same event seen twice posts once:

    order:<id>:line:<line>                 earned (pending)
    order:<id>:confirm:out / :in           pending -> available (once)
    order:<id>:line:<line>:refund:<refund> taken back for that refund
    order:<id>:line:<line>:cancel          taken back for a cancellation

Refunds converge rather than accumulate: a line keeps `left(refunded so far)` points, the refunded amount read
from the order itself (all its refunds, whatever order their webhooks came in), and a refund takes back what
the line holds above that. What a fully refunded or cancelled order earned is therefore taken back to the
point, never more, under the rate stored with the earning.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from app.core import lift
from app.core.events import CustomerUpserted, DomainEvent, OrderCancelled, OrderFulfilled, OrderPaid, OrderRefunded
from app.core.loyalty import Balance, Entry, Line, LineEarning, Posting, Reason, confirm, earn
from app.core.model import OrderRecord
from app.core.ports import LoyaltyProgram, OrderPoints, UnitOfWork

_ORDER_EVENTS = (OrderPaid, OrderFulfilled, OrderRefunded, OrderCancelled)


def react(uow: UnitOfWork, events: list[DomainEvent], now: datetime) -> list[DomainEvent]:
    """Apply the new events to points; returns the events that follows (a VIP tier change), recorded."""
    programs: dict[int, LoyaltyProgram | None] = {}
    touched: set[tuple[int, str]] = set()
    for event in events:
        if isinstance(event, (*_ORDER_EVENTS, CustomerUpserted)):
            uow.loyalty.follow(event, now)
        if not isinstance(event, _ORDER_EVENTS) or event.customer_id is None:
            continue  # guests have no account
        if event.shop_id not in programs:
            programs[event.shop_id] = uow.loyalty.program(event.shop_id)
        program = programs[event.shop_id]
        if program is None:
            continue
        order = uow.orders.get(event.shop_id, event.order_id)
        if order is None:
            continue
        held_out = lift.held_out(event.shop_id, lift.LOYALTY, event.customer_id, program.holdout_percent)
        if not held_out:  # the program's holdout earns nothing and has no tier (what they earned before stays)
            touched.add((event.shop_id, event.customer_id))
        if isinstance(event, OrderPaid):
            if not held_out:
                _earn(uow, program, order, event, now)
        elif isinstance(event, OrderFulfilled):
            if program.confirm_after is None:
                confirm_order(uow, event.shop_id, event.customer_id, order.external_id, now)
        elif isinstance(event, OrderRefunded):
            _take_back(uow, event.shop_id, event.customer_id, order, f"refund:{event.refund_id}", now)
        else:
            _take_back(uow, event.shop_id, event.customer_id, order, "cancel", now)
    changes: list[DomainEvent] = []
    for shop_id, customer_id in sorted(touched):
        change = uow.loyalty.evaluate_tier(shop_id, customer_id, now)
        if change is not None and uow.events.record(change):
            changes.append(change)
    return changes


def lines_of(order: OrderRecord) -> list[Line]:
    return [Line(x.external_id, x.product_id, x.price, x.quantity, x.total_discount) for x in order.lines]


def _earn(uow: UnitOfWork, program: LoyaltyProgram, order: OrderRecord, event: OrderPaid, now: datetime) -> None:
    if order.created_at < program.started_at or order.cancelled_at is not None:
        return  # placed before the program began (an imported history), or already cancelled
    customer_id = event.customer_id
    assert customer_id is not None
    earned = earn(program.rule, lines_of(order), order.created_at, uow.loyalty.multiplier(event.shop_id, customer_id))
    oid = order.external_id
    uow.loyalty.post(event.shop_id, customer_id, [
        Posting(Entry(e.points, Balance.PENDING, Reason.EARNED, f"order:{oid}:line:{e.line_id}"),
                rule_version=e.rule_version, order_id=oid, line_id=e.line_id,
                detail={"amount": str(e.amount), "rate": str(e.rate)}) for e in earned], now)
    if order.refunds:  # the refund came in the same delivery as the payment
        _take_back(uow, event.shop_id, customer_id, order, "refund:" + order.refunds[-1].external_id, now)
    if program.confirm_after is None and any(f.status == "success" for f in order.fulfillments):
        confirm_order(uow, event.shop_id, customer_id, oid, now)  # fulfilled before it was paid


def confirm_order(uow: UnitOfWork, shop_id: int, customer_id: str, order_id: str, now: datetime) -> None:
    """The order's pending points become available (once; what refunds left of them)."""
    held = uow.loyalty.order_points(shop_id, order_id)
    if held.confirmed or not held.earned:
        return
    pending = sum(held.held(e.line_id) for e in held.earned)
    if pending > 0:
        uow.loyalty.post(shop_id, customer_id, [Posting(e, order_id=order_id)
                                                for e in confirm(pending, f"order:{order_id}:confirm")], now)


def refunded_by_line(order: OrderRecord) -> dict[str, Decimal]:
    """The eligible amount refunded on each line so far. A refund that names its lines (Shopify) counts as it
    says. One that names none (WooCommerce's webhooks carry only each refund's total) counts as the same share of
    every line as of the order's total: refunding a quarter of what was paid takes back a quarter of each line's
    eligible amount, all of it once everything is refunded. The share is of all such refunds together, so
    however they were split, and in whatever order they arrived, the result is the same."""
    refunded: dict[str, Decimal] = defaultdict(Decimal)
    unlined = Decimal("0")
    for r in order.refunds:
        if r.lines:
            for line in r.lines:
                refunded[line.line_id] += line.amount
        else:
            unlined += r.amount
    if unlined > 0 and order.total > 0:
        share = min(Decimal(1), unlined / order.total)
        for x in order.lines:
            eligible = max(Decimal(0), x.price * x.quantity - x.total_discount)
            refunded[x.external_id] += eligible * share
    return refunded


def _take_back(uow: UnitOfWork, shop_id: int, customer_id: str, order: OrderRecord, why: str, now: datetime
               ) -> None:
    held = uow.loyalty.order_points(shop_id, order.external_id)
    if not held.earned:
        return
    cancelled = why == "cancel" or order.cancelled_at is not None
    refunded = refunded_by_line(order)
    balance = Balance.AVAILABLE if held.confirmed else Balance.PENDING
    postings = []
    for e in held.earned:
        keep = 0 if cancelled else e.left(refunded.get(e.line_id, Decimal("0")))
        back = held.held(e.line_id) - keep
        if back > 0:
            postings.append(Posting(Entry(-back, balance, Reason.REVERSED,
                                          f"order:{order.external_id}:line:{e.line_id}:{why}"),
                                    rule_version=e.rule_version, order_id=order.external_id, line_id=e.line_id))
    if postings:
        uow.loyalty.post(shop_id, customer_id, postings, now)


__all__ = ["LineEarning", "OrderPoints", "confirm_order", "lines_of", "react", "refunded_by_line"]
