"""The service layer: one handler a command, each opening the unit of work, acting, committing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC

from app.core import commands as c
from app.core import points
from app.core.enrollment import react
from app.core.events import (
    AppUninstalled,
    CheckoutUpdated,
    CustomerDataRequested,
    CustomerRedacted,
    CustomerUpserted,
    DomainEvent,
)
from app.core.model import CustomerRecord, OrderRecord, merge_checkout, merge_customer, merge_order, redact
from app.core.orders import fulfillment_events, order_events, refund_events
from app.core.ports import Clock, UnitOfWork


class OrderNotYetKnown(Exception):
    """A fulfillment or refund came before its order; the delivery is retried later."""


def _record(uow: UnitOfWork, events: list[DomainEvent]) -> list[DomainEvent]:
    return [e for e in events if uow.events.record(e)]


def _commit(uow: UnitOfWork, new: list[DomainEvent], clock: Clock) -> None:
    """Points (earned, confirmed, taken back) and journeys (enrollments, exits, attribution) react to the new
    events in the same transaction: the order and what it set in motion are committed together, or neither is."""
    new += points.react(uow, new, clock.now())  # a tier change is an event journeys react to as well
    react(uow, new, clock.now())
    uow.commit()


def _observe_customer(uow: UnitOfWork, shop_id: int, incoming: CustomerRecord) -> list[DomainEvent]:
    current = uow.customers.get(shop_id, incoming.external_id)
    if current is not None and current.redacted:
        return []  # erased for good: nothing that arrives late brings personal data back
    merged = merge_customer(current, incoming)
    if merged is not current:
        uow.customers.save(shop_id, merged)
    # Recorded for every version seen, stale or not, so the event set never depends on arrival order.
    version = incoming.updated_at.astimezone(UTC).isoformat()
    return _record(uow, [CustomerUpserted(shop_id, incoming.updated_at, incoming.external_id, version)])


def observe_order(cmd: c.ObserveOrder, uow: UnitOfWork, clock: Clock) -> list[DomainEvent]:
    with uow:
        new = _observe_customer(uow, cmd.shop_id, cmd.customer) if cmd.customer else []
        order = cmd.order
        customer = uow.customers.get(cmd.shop_id, order.customer_id) if order.customer_id else None
        if customer is not None and customer.redacted:
            order = replace(order, email=None)
        uow.orders.save(cmd.shop_id, merge_order(uow.orders.get(cmd.shop_id, order.external_id), order))
        new += _record(uow, list(order_events(cmd.shop_id, order)))
        _commit(uow, new, clock)
    return new


def _fold_customers(shop_id: int, stored: dict[str, CustomerRecord], people: list[CustomerRecord]
                    ) -> tuple[dict[str, CustomerRecord], list[DomainEvent]]:
    customers: dict[str, CustomerRecord] = dict(stored)
    events: list[DomainEvent] = []
    for incoming in people:
        current = customers.get(incoming.external_id)
        if current is not None and current.redacted:
            continue  # erased for good, as in _observe_customer
        customers[incoming.external_id] = merge_customer(current, incoming)
        seen = stored.get(incoming.external_id)
        if seen is not None and seen.updated_at == incoming.updated_at:
            continue  # this very version was stored before, and its event recorded with it
        version = incoming.updated_at.astimezone(UTC).isoformat()
        events.append(CustomerUpserted(shop_id, incoming.updated_at, incoming.external_id, version))
    return customers, events


def _fold_orders(stored: dict[str, OrderRecord], incoming: tuple[tuple[OrderRecord, CustomerRecord | None], ...],
                 erased: set[str]) -> dict[str, OrderRecord]:
    orders = dict(stored)
    for order, _ in incoming:
        if order.customer_id in erased:
            order = replace(order, email=None)
        orders[order.external_id] = merge_order(orders.get(order.external_id), order)
    return orders


def import_history(cmd: c.ImportHistory, uow: UnitOfWork, clock: Clock) -> list[DomainEvent]:
    """A batch of past customers and orders: the same merge rules and the same events as their webhooks,
    read and written a batch at a time (the import of a big store is thousands of orders a second).

    Rows are read without locks; only those about to change are read again under lock and merged afresh,
    so a webhook that changed one meanwhile is never overwritten, and a re-import that changes nothing
    locks nothing. A row a webhook inserts meanwhile makes the batch's insert fail; the caller retries."""
    with uow:
        shop_id = cmd.shop_id
        people = list(cmd.customers) + [buyer for _, buyer in cmd.orders if buyer is not None]
        stored = uow.customers.get_many(shop_id, sorted({p.external_id for p in people}))
        customers, events = _fold_customers(shop_id, stored, people)
        stale = [k for k, v in customers.items() if k in stored and stored[k] != v]
        if stale:
            stored.update(uow.customers.get_many(shop_id, stale, lock=True))
            customers, events = _fold_customers(shop_id, stored, people)
        uow.customers.save_many(shop_id, [v for k, v in customers.items() if stored.get(k) != v])
        buyers = sorted({o.customer_id for o, _ in cmd.orders if o.customer_id})
        erased = {k for k, v in customers.items() if v.redacted} | uow.customers.redacted_among(shop_id, buyers)
        before = uow.orders.get_many(shop_id, sorted({o.external_id for o, _ in cmd.orders}))
        orders = _fold_orders(before, cmd.orders, erased)
        stale = [k for k, v in orders.items() if k in before and before[k] != v]
        if stale:
            before.update(uow.orders.get_many(shop_id, stale, lock=True))
            orders = _fold_orders(before, cmd.orders, erased)
        uow.orders.save_many(shop_id, [v for k, v in orders.items() if before.get(k) != v])
        events.extend(e for order, _ in cmd.orders for e in order_events(shop_id, order))
        new = uow.events.record_many(events)
        uow.commit()
    return new


def observe_fulfillment(cmd: c.ObserveFulfillment, uow: UnitOfWork, clock: Clock) -> list[DomainEvent]:
    with uow:
        current = uow.orders.get(cmd.shop_id, cmd.order_id)
        if current is None:
            raise OrderNotYetKnown(cmd.order_id)
        uow.orders.save(cmd.shop_id, merge_order(current, replace(current, fulfillments=(cmd.fulfillment,))))
        new = _record(uow, list(fulfillment_events(cmd.shop_id, cmd.order_id, current.customer_id, cmd.fulfillment)))
        _commit(uow, new, clock)
    return new


def observe_refund(cmd: c.ObserveRefund, uow: UnitOfWork, clock: Clock) -> list[DomainEvent]:
    with uow:
        current = uow.orders.get(cmd.shop_id, cmd.order_id)
        if current is None:
            raise OrderNotYetKnown(cmd.order_id)
        uow.orders.save(cmd.shop_id, merge_order(current, replace(current, refunds=(cmd.refund,))))
        events = refund_events(cmd.shop_id, cmd.order_id, current.customer_id, current.currency, cmd.refund)
        new = _record(uow, list(events))
        _commit(uow, new, clock)
    return new


def observe_customer(cmd: c.ObserveCustomer, uow: UnitOfWork, clock: Clock) -> list[DomainEvent]:
    with uow:
        new = _observe_customer(uow, cmd.shop_id, cmd.customer)
        _commit(uow, new, clock)
    return new


def observe_checkout(cmd: c.ObserveCheckout, uow: UnitOfWork, clock: Clock) -> list[DomainEvent]:
    with uow:
        new = _observe_customer(uow, cmd.shop_id, cmd.customer) if cmd.customer else []
        checkout = cmd.checkout
        uow.checkouts.save(cmd.shop_id, merge_checkout(uow.checkouts.get(cmd.shop_id, checkout.external_id), checkout))
        event = CheckoutUpdated(
            cmd.shop_id, checkout.updated_at, checkout.external_id, checkout.customer_id, checkout.completed_at is not None
        )
        new += _record(uow, [event])
        _commit(uow, new, clock)
    return new


def export_customer_data(cmd: c.ExportCustomerData, uow: UnitOfWork, clock: Clock) -> list[DomainEvent]:
    with uow:
        customer = uow.customers.get(cmd.shop_id, cmd.customer_id)
        orders = uow.orders.of_customer(cmd.shop_id, cmd.customer_id)
        wanted = set(cmd.order_ids)
        orders += [o for i in wanted - {o.external_id for o in orders} if (o := uow.orders.get(cmd.shop_id, i))]
        content = {"customer": customer, "orders": sorted(orders, key=lambda o: o.external_id)}
        uow.exports.add(cmd.shop_id, cmd.request_id, cmd.customer_id, content)
        new = _record(uow, [CustomerDataRequested(cmd.shop_id, clock.now(), cmd.request_id, cmd.customer_id)])
        uow.commit()
    return new


def redact_customer(cmd: c.RedactCustomer, uow: UnitOfWork, clock: Clock) -> list[DomainEvent]:
    with uow:
        now = clock.now()
        current = uow.customers.get(cmd.shop_id, cmd.customer_id)
        uow.customers.save(cmd.shop_id, redact(current or CustomerRecord(cmd.customer_id, now)))
        uow.orders.forget_email(cmd.shop_id, cmd.customer_id, cmd.order_ids)
        uow.checkouts.forget_customer(cmd.shop_id, cmd.customer_id)
        uow.journeys.forget_customer(cmd.shop_id, cmd.customer_id, now)
        new = _record(uow, [CustomerRedacted(cmd.shop_id, now, cmd.customer_id)])
        uow.commit()
    return new


def redact_shop(cmd: c.RedactShop, uow: UnitOfWork, clock: Clock) -> list[DomainEvent]:
    with uow:
        uow.shops.delete_everything(cmd.shop_id)
        uow.commit()
    return []


def uninstall_app(cmd: c.UninstallApp, uow: UnitOfWork, clock: Clock) -> list[DomainEvent]:
    with uow:
        shop = uow.shops.get(cmd.shop_id)
        if shop is None or not shop.installed:
            return []
        now = clock.now()
        uow.shops.mark_uninstalled(cmd.shop_id, now)
        new = _record(uow, [AppUninstalled(cmd.shop_id, now, shop.installed_at or now)])
        uow.commit()
    return new
