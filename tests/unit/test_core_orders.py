"""The core's order logic with a fake unit of work: newest wins, events once, any arrival order."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core import commands as c
from app.core.handlers import OrderNotYetKnown
from app.core.messagebus import handle
from app.core.model import (
    CustomerRecord,
    Fulfillment,
    OrderRecord,
    OrderStatus,
    PaymentStatus,
    Refund,
    RefundLine,
    Tracking,
)
from app.core.ports import ShopState
from tests.unit.fake_uow import FakeClock, FakeUnitOfWork

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
CLOCK = FakeClock(T0 + timedelta(days=30))


def order(minutes: int = 0, **kw: object) -> OrderRecord:
    base = OrderRecord(external_id="1001", updated_at=T0 + timedelta(minutes=minutes), created_at=T0, currency="USD",
                       total=Decimal("50.00"), subtotal=Decimal("45.00"), customer_id="c1", email="a@example.com")
    return replace(base, **kw)  # type: ignore[arg-type]


SHIPPED = Fulfillment("f1", updated_at=T0 + timedelta(hours=1), created_at=T0 + timedelta(hours=1),
                      tracking=Tracking("UPS", "1Z", "https://ups.example/1Z"))
DELIVERED = replace(SHIPPED, updated_at=T0 + timedelta(days=2), shipment_status="delivered")
REFUND = Refund("r1", created_at=T0 + timedelta(days=3), amount=Decimal("20.00"), lines=(RefundLine("l1", 1, Decimal("20.00")),))


def keys(uow: FakeUnitOfWork) -> set[str]:
    return {k for _, k in uow.events.recorded}


def test_status_follows_the_order_lifecycle() -> None:
    assert order().status is OrderStatus.PLACED
    assert order(payment=PaymentStatus.PAID).status is OrderStatus.PAID
    assert order(payment=PaymentStatus.PAID, fulfillments=(SHIPPED,)).status is OrderStatus.FULFILLED
    assert order(payment=PaymentStatus.PAID, fulfillments=(DELIVERED,)).status is OrderStatus.DELIVERED
    assert order(fulfillments=(replace(SHIPPED, status="failure"),)).status is OrderStatus.PLACED
    assert order(refunds=(REFUND,)).status is OrderStatus.PARTIALLY_REFUNDED
    assert order(refunds=(replace(REFUND, amount=Decimal("50.00")),)).status is OrderStatus.REFUNDED
    assert order(cancelled_at=T0, refunds=(REFUND,)).status is OrderStatus.CANCELLED


def test_a_stale_retry_never_overwrites_newer_data() -> None:
    uow = FakeUnitOfWork()
    handle(c.ObserveOrder(1, order(5, payment=PaymentStatus.PAID, email="new@example.com")), uow, CLOCK)
    handle(c.ObserveOrder(1, order(0, email="old@example.com")), uow, CLOCK)
    stored = uow.orders.get(1, "1001")
    assert stored is not None and (stored.email, stored.payment) == ("new@example.com", PaymentStatus.PAID)


def test_each_milestone_is_recorded_once_however_often_it_is_seen() -> None:
    uow = FakeUnitOfWork()
    paid = order(1, payment=PaymentStatus.PAID)
    for _ in range(3):
        handle(c.ObserveOrder(1, paid), uow, CLOCK)
    handle(c.ObserveFulfillment(1, "1001", SHIPPED), uow, CLOCK)
    handle(c.ObserveFulfillment(1, "1001", DELIVERED), uow, CLOCK)
    handle(c.ObserveRefund(1, "1001", REFUND), uow, CLOCK)
    handle(c.ObserveRefund(1, "1001", REFUND), uow, CLOCK)
    assert keys(uow) == {"order:1001:placed", "order:1001:paid", "order:1001:fulfilled:f1",
                         "order:1001:delivered:f1", "order:1001:refund:r1"}
    stored = uow.orders.get(1, "1001")
    assert stored is not None and stored.refunded_amount == Decimal("20.00") and len(stored.fulfillments) == 1


def test_a_fulfillment_before_its_order_waits_and_changes_nothing() -> None:
    uow = FakeUnitOfWork()
    with pytest.raises(OrderNotYetKnown):
        handle(c.ObserveFulfillment(1, "1001", SHIPPED), uow, CLOCK)
    assert uow.orders.rows == {} and uow.events.recorded == {}


def test_an_erased_customer_stays_erased_when_a_late_update_arrives() -> None:
    uow = FakeUnitOfWork()
    bob = CustomerRecord("c1", T0, email="bob@example.com", first_name="Bob")
    handle(c.ObserveOrder(1, order(), bob), uow, CLOCK)
    handle(c.RedactCustomer(1, "c1", ("1001",)), uow, CLOCK)
    handle(c.ObserveCustomer(1, replace(bob, updated_at=T0 + timedelta(days=1))), uow, CLOCK)
    handle(c.ObserveOrder(1, order(9)), uow, CLOCK)
    customer = uow.customers.get(1, "c1")
    stored = uow.orders.get(1, "1001")
    assert customer is not None and customer.redacted and customer.email is None and customer.first_name is None
    assert stored is not None and stored.email is None and stored.total == Decimal("50.00")  # aggregates stay


def test_uninstall_twice_is_recorded_once_and_data_request_exports_the_orders() -> None:
    uow = FakeUnitOfWork()
    uow.shops.rows[1] = ShopState(1, "a.myshopify.com", True, T0)
    handle(c.ObserveOrder(1, order(), CustomerRecord("c1", T0, email="a@example.com")), uow, CLOCK)
    handle(c.ExportCustomerData(1, "req-1", "c1", "a@example.com", ("1001",)), uow, CLOCK)
    export = uow.exports.rows[(1, "req-1")]
    assert [o.external_id for o in export["orders"]] == ["1001"] and export["customer"].email == "a@example.com"
    assert handle(c.UninstallApp(1), uow, CLOCK) and not handle(c.UninstallApp(1), uow, CLOCK)
    assert not uow.shops.rows[1].installed


# Any stream of observations, shuffled and with duplicates, ends in the state of the clean stream.
STREAM = [
    c.ObserveOrder(1, order(0), CustomerRecord("c1", T0, email="a@example.com")),
    c.ObserveOrder(1, order(1, payment=PaymentStatus.PAID)),
    c.ObserveFulfillment(1, "1001", SHIPPED),
    c.ObserveOrder(1, order(61, payment=PaymentStatus.PAID, fulfillments=(SHIPPED,))),
    c.ObserveFulfillment(1, "1001", DELIVERED),
    c.ObserveRefund(1, "1001", REFUND),
    c.ObserveOrder(1, order(4400, payment=PaymentStatus.PARTIALLY_REFUNDED, fulfillments=(DELIVERED,), refunds=(REFUND,))),
    c.ObserveCustomer(1, CustomerRecord("c1", T0 + timedelta(days=1), email="b@example.com")),
]


def run(stream: list[c.Command]) -> FakeUnitOfWork:
    """Apply commands as the inbox does: one that comes too early is retried after the others."""
    uow, waiting = FakeUnitOfWork(), list(stream)
    while waiting:
        later = []
        for cmd in waiting:
            try:
                handle(cmd, uow, CLOCK)
            except OrderNotYetKnown:
                later.append(cmd)
        assert len(later) < len(waiting), "no progress"
        waiting = later
    return uow


@settings(max_examples=200, deadline=None)
@given(st.permutations(STREAM), st.lists(st.sampled_from(STREAM), max_size=8))
def test_shuffled_and_duplicated_streams_converge(shuffled: list[c.Command], dupes: list[c.Command]) -> None:
    clean, messy = run(STREAM), run(shuffled + dupes)
    assert messy.orders.rows == clean.orders.rows
    assert messy.customers.rows == clean.customers.rows
    assert keys(messy) == keys(clean)


SNAPSHOTS = [cmd for cmd in STREAM if isinstance(cmd, c.ObserveOrder | c.ObserveCustomer)]


def _as_import(cmd: c.Command) -> c.ImportHistory:
    """What a history import reads of the store at some moment: one of the versions its webhooks told."""
    if isinstance(cmd, c.ObserveOrder):
        return c.ImportHistory(cmd.shop_id, orders=((cmd.order, cmd.customer),))
    assert isinstance(cmd, c.ObserveCustomer)
    return c.ImportHistory(cmd.shop_id, customers=(cmd.customer,))


@settings(max_examples=200, deadline=None)
@given(st.permutations(STREAM), st.lists(st.tuples(st.integers(0, len(STREAM)), st.sampled_from(SNAPSHOTS)), max_size=6))
def test_history_imports_anywhere_in_the_stream_end_as_the_webhooks_alone(
        shuffled: list[c.Command], imports: list[tuple[int, c.Command]]) -> None:
    stream: list[c.Command] = list(shuffled)
    for at, snapshot in sorted(imports, key=lambda x: -x[0]):
        stream.insert(at, _as_import(snapshot))
    clean, mixed = run(STREAM), run(stream)
    assert mixed.orders.rows == clean.orders.rows
    assert mixed.customers.rows == clean.customers.rows
    assert keys(mixed) == keys(clean)


def test_an_import_batch_merges_like_the_webhooks_and_never_overwrites_newer_data() -> None:
    uow = FakeUnitOfWork()
    newer = CustomerRecord("c1", T0 + timedelta(days=2), email="new@example.com")
    handle(c.ObserveCustomer(1, newer), uow, CLOCK)
    handle(c.ObserveOrder(1, order(30, fulfillments=(SHIPPED,))), uow, CLOCK)
    old = CustomerRecord("c1", T0, email="old@example.com")
    new = handle(c.ImportHistory(1, customers=(old,), orders=((order(10), old), (order(5, external_id="1002"), None))),
                 uow, CLOCK)
    assert uow.customers.rows[(1, "c1")] == newer  # the stale copy in the import changed nothing
    assert uow.orders.rows[(1, "1001")].updated_at == T0 + timedelta(minutes=30)
    assert uow.orders.rows[(1, "1001")].fulfillments == (SHIPPED,)  # kept: parts merge, never vanish
    assert (1, "1002") in uow.orders.rows
    assert sorted(e.name for e in new) == ["CustomerUpserted", "OrderPlaced"]  # c1's old version, order 1002


def test_an_imported_order_of_an_erased_customer_keeps_no_email() -> None:
    uow = FakeUnitOfWork()
    handle(c.ObserveCustomer(1, CustomerRecord("c1", T0, email="a@example.com")), uow, CLOCK)
    handle(c.RedactCustomer(1, "c1"), uow, CLOCK)
    handle(c.ImportHistory(1, orders=((order(5), None),)), uow, CLOCK)  # the order names c1 by id only
    assert uow.orders.rows[(1, "1001")].email is None
