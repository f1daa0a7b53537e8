"""WooCommerce payloads -> commands, on a real WooCommerce 9.4 capture and variations of it.

Sources:

* CAPTURE = shared/samples/woocommerce/order-created.body.json: the order.created body a WooCommerce 9.4.0
  store sent (shared/samples/README.md). Every other order here is that body with the fields a test names
  changed.
* Field shapes not in the capture (refunds, completion, customers) follow woocommerce/woocommerce
  plugins/woocommerce/includes/rest-api/Controllers/Version2/class-wc-rest-orders-v2-controller.php
  (`refunds` as {id, reason, total: '-' . amount}; line `price` = total / quantity) and
  class-wc-rest-customers-v2-controller.php (the customer's fields; date_modified may be null).
* Shipment-tracking entries follow zorem's Advanced Shipment Tracking as stored in
  helloteababy/woocommerce-shipment-tracking @ 3dc2e392c88606239da137b97b421f3b7b1020e2,
  includes/class-wc-advanced-shipment-tracking.php: `add_tracking_item()` appends to the order meta
  `_wc_shipment_tracking_items`; the formatted item shows `custom_tracking_provider` / `custom_tracking_link`
  when set, else the predefined `tracking_provider` slug; includes/api/v1/...-rest-api-controller.php
  names the same fields.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.core import commands as c
from app.core import model as m
from app.core.model import OrderStatus, PaymentStatus
from connectors.base import MalformedPayload
from connectors.woocommerce.translate import TOPICS, translate

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "woocommerce"  # copies of shared/samples/woocommerce
ORDER: dict[str, Any] = json.loads((SAMPLES / "order-created.body.json").read_bytes())
CAPTURED_AT = datetime(2026, 11, 23, 8, 0, 54, tzinfo=UTC)  # CAPTURE: date_created_gmt = date_modified_gmt
MODIFIED_GMT, MODIFIED = "2026-11-24T09:30:00", datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
COMPLETED_GMT, COMPLETED = "2026-11-24T09:00:00", datetime(2026, 11, 24, 9, 0, tzinfo=UTC)

# Entries as the shipment-tracking plug-ins store them (see the module docstring).
PREDEFINED = {"tracking_provider": "postnord-se", "custom_tracking_provider": "", "custom_tracking_link": "",
              "tracking_number": "PN123456789SE", "date_shipped": "1700000000", "tracking_id": "a1"}
CUSTOM = {"tracking_provider": "", "custom_tracking_provider": "Dropp",
          "custom_tracking_link": "https://dropp.is/track/DR157XBLJS584", "tracking_number": "DR157XBLJS584",
          "date_shipped": "1700003600", "tracking_id": "b2"}

# A registered customer, with the fields WC_REST_Customers_V2_Controller::get_formatted_item_data returns.
CUSTOMER: dict[str, Any] = {
    "id": 5, "date_created": "2026-11-20T10:00:00", "date_created_gmt": "2026-11-20T10:00:00",
    "date_modified": "2026-11-22T12:30:00", "date_modified_gmt": "2026-11-22T12:30:00",
    "email": "ann@example.com", "first_name": "Ann", "last_name": "Lee", "role": "customer", "username": "ann",
    "billing": {"first_name": "Ann", "last_name": "Lee", "company": "", "address_1": "", "address_2": "", "city": "",
                "state": "", "postcode": "", "country": "", "email": "ann@example.com", "phone": "+15555550100"},
    "shipping": {"first_name": "", "last_name": "", "company": "", "address_1": "", "address_2": "", "city": "",
                 "state": "", "postcode": "", "country": "", "phone": ""},
    "is_paying_customer": True, "orders_count": 1, "total_spent": "25.00", "avatar_url": "", "meta_data": [],
}


def variant(**changes: Any) -> dict[str, Any]:
    """The captured order with some fields changed (a later version: modified at MODIFIED unless given)."""
    return {**copy.deepcopy(ORDER), "date_modified_gmt": MODIFIED_GMT, **changes}


def observed(payload: Any, topic: str = "order.updated") -> m.OrderRecord:
    [cmd] = translate(3, topic, payload)
    assert isinstance(cmd, c.ObserveOrder) and cmd.customer is None
    return cmd.order


def tracked(*entries: Any) -> list[dict[str, Any]]:
    return [{"id": 90, "key": "_wc_shipment_tracking_items", "value": list(entries)}]


def test_the_captured_order_becomes_an_observed_order_with_its_exact_values() -> None:
    assert translate(3, "order.created", ORDER) == [c.ObserveOrder(3, m.OrderRecord(
        external_id="11", name="#11", currency="USD",
        created_at=CAPTURED_AT, updated_at=CAPTURED_AT, processed_at=CAPTURED_AT, cancelled_at=None,
        total=Decimal("25.00"), subtotal=Decimal("25.00"), total_tax=Decimal("0.00"),
        total_shipping=Decimal("0.00"), total_discounts=Decimal("0.00"),
        payment=PaymentStatus.PAID, customer_id=None, email="ann@example.com",
        lines=(m.OrderLine(external_id="1", title="Mug", quantity=2, price=Decimal("12.50"),
                           total_discount=Decimal("0.00"), product_id="10", variant_id=None, sku=None),),
        fulfillments=(), refunds=(),
    ), customer=None)]


def test_the_captured_order_reads_as_paid_at_utc_times() -> None:
    o = observed(ORDER, "order.created")
    assert o.status is OrderStatus.PAID
    assert o.created_at.utcoffset() is not None and o.created_at.isoformat() == "2026-11-23T08:00:54+00:00"
    # The capture's own unit price (a PHP float, after discounts) agrees for this undiscounted line.
    assert o.lines[0].price == Decimal(str(ORDER["line_items"][0]["price"])) == Decimal("12.5")


@pytest.mark.parametrize("stamp", ["2026-11-24T10:30:00+01:00", "2026-11-24T09:30:00Z", "2026-11-24T09:30:00"])
def test_every_time_is_utc_and_an_explicit_offset_is_converted(stamp: str) -> None:
    o = observed(variant(date_modified_gmt=stamp))
    assert o.updated_at.isoformat() == "2026-11-24T09:30:00+00:00" and o.updated_at.tzinfo is UTC


def test_a_registered_buyer_is_named_by_id_and_a_guest_is_not() -> None:
    assert observed(variant(customer_id=5)).customer_id == "5"
    assert observed(variant(customer_id=0)).customer_id is None
    assert observed(variant(billing={**ORDER["billing"], "email": ""})).email is None


def test_a_discounted_line_keeps_its_price_before_discount_and_its_discount() -> None:
    mug = {**ORDER["line_items"][0], "id": 2, "quantity": 3, "subtotal": "30.00", "total": "24.00", "price": 8,
           "variation_id": 14, "sku": "MUG-RED"}
    o = observed(variant(line_items=[ORDER["line_items"][0], mug], discount_total="6.00", total="49.00"))
    assert [(x.external_id, x.quantity, x.price, x.total_discount, x.variant_id, x.sku) for x in o.lines] == [
        ("1", 2, Decimal("12.50"), Decimal("0.00"), None, None),
        ("2", 3, Decimal("10"), Decimal("6.00"), "14", "MUG-RED"),
    ]
    assert (o.subtotal, o.total_discounts, o.total) == (Decimal("55.00"), Decimal("6.00"), Decimal("49.00"))


def test_a_unit_price_that_does_not_divide_evenly_is_kept_to_four_places() -> None:
    pens = {**ORDER["line_items"][0], "quantity": 3, "subtotal": "10.00", "total": "10.00"}
    [line] = observed(variant(line_items=[pens])).lines
    assert line.price == Decimal("3.3333")


@pytest.mark.parametrize(("status", "payment", "order_status"), [
    ("pending", PaymentStatus.PENDING, OrderStatus.PLACED),
    ("on-hold", PaymentStatus.AUTHORIZED, OrderStatus.PLACED),
    ("processing", PaymentStatus.PAID, OrderStatus.PAID),
    ("completed", PaymentStatus.PAID, OrderStatus.FULFILLED),
    ("cancelled", PaymentStatus.VOIDED, OrderStatus.CANCELLED),
    ("refunded", PaymentStatus.REFUNDED, OrderStatus.REFUNDED),
    ("failed", PaymentStatus.VOIDED, OrderStatus.PLACED),
])
def test_every_status_maps_to_a_payment_status(status: str, payment: PaymentStatus, order_status: OrderStatus) -> None:
    o = observed(variant(status=status, date_completed_gmt=COMPLETED_GMT if status == "completed" else None))
    assert (o.payment, o.status) == (payment, order_status)
    assert o.cancelled_at == (MODIFIED if status == "cancelled" else None)
    assert len(o.fulfillments) == (1 if status == "completed" else 0)


@pytest.mark.parametrize(("date_paid_gmt", "payment"), [
    ("2026-11-23T08:00:54", PaymentStatus.PAID), (None, PaymentStatus.PENDING),
])
def test_a_plugins_own_status_falls_back_on_whether_the_order_was_paid(date_paid_gmt: str | None, payment: PaymentStatus) -> None:
    assert observed(variant(status="shipped", date_paid_gmt=date_paid_gmt)).payment is payment


def test_completed_stands_for_one_shipment_without_tracking() -> None:
    o = observed(variant(status="completed", date_completed_gmt=COMPLETED_GMT))
    assert o.fulfillments == (m.Fulfillment(
        external_id="completed-11", created_at=COMPLETED, updated_at=MODIFIED, status="success",
        shipment_status=None, tracking=m.Tracking(company=None, number=None, url=None),
    ),)


@pytest.mark.parametrize(("entries", "tracking"), [
    ([PREDEFINED, CUSTOM], m.Tracking("Dropp", "DR157XBLJS584", "https://dropp.is/track/DR157XBLJS584")),
    ([CUSTOM, PREDEFINED], m.Tracking("postnord-se", "PN123456789SE", None)),  # the latest entry wins
    ([{**CUSTOM, "custom_tracking_link": "javascript:alert(1)"}], m.Tracking("Dropp", "DR157XBLJS584", None)),
])
def test_completed_with_shipment_tracking_meta_carries_that_tracking(entries: list[Any], tracking: m.Tracking) -> None:
    o = observed(variant(status="completed", date_completed_gmt=COMPLETED_GMT, meta_data=tracked(*entries)))
    [f] = o.fulfillments
    assert (f.external_id, f.created_at, f.status, f.tracking) == ("completed-11", COMPLETED, "success", tracking)


@pytest.mark.parametrize("meta", [[{"id": 1, "key": "_wc_shipment_tracking_items", "value": "a:0:{}"}],
                                  [{"id": 1, "key": "_wc_shipment_tracking_items", "value": ["x", 3]}], "oops"])
def test_odd_tracking_meta_is_ignored_not_parked(meta: Any) -> None:
    [f] = observed(variant(status="completed", date_completed_gmt=COMPLETED_GMT, meta_data=meta)).fulfillments
    assert f.tracking == m.Tracking()


def test_tracking_added_after_completion_wins_in_either_order_of_arrival() -> None:
    bare = observed(variant(status="completed", date_completed_gmt=COMPLETED_GMT, date_modified_gmt=COMPLETED_GMT))
    later = observed(variant(status="completed", date_completed_gmt=COMPLETED_GMT, meta_data=tracked(CUSTOM)))
    for first, second in ((bare, later), (later, bare)):
        [f] = m.merge_order(m.merge_order(None, first), second).fulfillments
        assert f.tracking.number == "DR157XBLJS584"


def test_completed_without_a_completion_time_uses_the_modification_time() -> None:
    [f] = observed(variant(status="completed", date_completed_gmt=None)).fulfillments
    assert (f.created_at, f.updated_at) == (MODIFIED, MODIFIED)


def test_refunded_carries_a_refund_per_entry_with_positive_amounts() -> None:
    refunds = [{"id": 21, "reason": "damaged", "total": "-5.00"}, {"id": 20, "reason": "", "total": "-20.00"}]
    o = observed(variant(status="refunded", refunds=refunds))
    # The summary has no date: each refund is dated by the order version that shows it.
    assert o.refunds == (m.Refund("20", MODIFIED, Decimal("20.00")), m.Refund("21", MODIFIED, Decimal("5.00")))
    assert (o.payment, o.status, o.refunded_amount) == (PaymentStatus.REFUNDED, OrderStatus.REFUNDED, Decimal("25.00"))


def test_a_partial_refund_of_a_processing_order_reads_as_partially_refunded() -> None:
    o = observed(variant(refunds=[{"id": 30, "reason": "", "total": "-5.00"}]))
    assert (o.payment, o.status, o.refunds) == (
        PaymentStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, (m.Refund("30", MODIFIED, Decimal("5.00")),))


@pytest.mark.parametrize("topic", ["order.created", "order.updated"])
def test_a_checkout_draft_is_ignored(topic: str) -> None:
    assert translate(3, topic, variant(status="checkout-draft")) == []


def test_a_deleted_order_does_nothing_yet() -> None:
    assert translate(3, "order.deleted", {"id": 11}) == []
    with pytest.raises(MalformedPayload, match="missing or invalid 'id'"):
        translate(3, "order.deleted", {"id": None})


def test_a_customer_becomes_an_observed_customer() -> None:
    assert translate(3, "customer.updated", CUSTOMER) == [c.ObserveCustomer(3, m.CustomerRecord(
        external_id="5", updated_at=datetime(2026, 11, 22, 12, 30, tzinfo=UTC), email="ann@example.com",
        phone="+15555550100", first_name="Ann", last_name="Lee", created_at=datetime(2026, 11, 20, 10, 0, tzinfo=UTC),
    ))]


def test_an_empty_billing_encoded_by_php_as_a_list_is_empty() -> None:
    # PHP's json_encode writes an empty array as [], whatever it stands for.
    [cmd] = translate(3, "customer.updated", {**CUSTOMER, "billing": []})
    assert isinstance(cmd, c.ObserveCustomer) and cmd.customer.phone is None
    assert observed(variant(billing=[])).email is None


def test_a_customer_never_modified_is_dated_by_its_creation() -> None:
    [cmd] = translate(3, "customer.created", {**CUSTOMER, "date_modified_gmt": None, "last_name": "",
                                              "billing": {**CUSTOMER["billing"], "phone": ""}})
    assert isinstance(cmd, c.ObserveCustomer)
    assert (cmd.customer.updated_at, cmd.customer.last_name, cmd.customer.phone) == (
        datetime(2026, 11, 20, 10, 0, tzinfo=UTC), None, None)


@pytest.mark.parametrize(("mutate", "reason"), [
    (lambda o: o.pop("id"), "missing or invalid 'id'"),
    (lambda o: o.update(id=0), "missing or invalid 'id'"),
    (lambda o: o.update(id=True), "missing or invalid 'id'"),
    (lambda o: o.update(total="abc"), "'total' is not an amount: 'abc'"),
    (lambda o: o.update(total="NaN"), "'total' is not an amount: 'NaN'"),
    (lambda o: o.update(total={"amount": 1}), "'total' is not an amount"),
    (lambda o: o.update(total=None), "missing 'total'"),
    (lambda o: o.update(shipping_total="free"), "'shipping_total' is not an amount"),
    (lambda o: o.update(date_modified_gmt="yesterday"), "'date_modified_gmt' is not an ISO 8601 time: 'yesterday'"),
    (lambda o: o.update(date_created_gmt=1700000000), "'date_created_gmt' is not an ISO 8601 time"),
    (lambda o: o.pop("date_created_gmt"), "missing 'date_created_gmt'"),
    (lambda o: o.update(date_paid_gmt="2026-13-01T00:00:00"), "'date_paid_gmt' is not an ISO 8601 time"),
    (lambda o: o.update(currency=None), "missing or invalid 'currency'"),
    (lambda o: o.update(status=None), "missing or invalid 'status'"),
    (lambda o: o.update(customer_id={"id": 5}), "invalid 'customer_id'"),
    (lambda o: o.update(billing="ann@example.com"), "'billing' is not a JSON object"),
    (lambda o: o.update(line_items="nope"), "'line_items' is not a list"),
    (lambda o: o.update(line_items=["nope"]), "a line item is not a JSON object"),
    (lambda o: o.update(line_items=[{"id": 1, "quantity": 1}]), "missing 'subtotal'"),
    (lambda o: o.update(line_items=[{"id": 1, "quantity": "two", "subtotal": "1"}]), "line quantity is not a whole number"),
    (lambda o: o.update(line_items=[{"quantity": 1, "subtotal": "1"}]), "missing or invalid 'id'"),
    (lambda o: o.update(refunds="none"), "'refunds' is not a list"),
    (lambda o: o.update(refunds=[{"id": 3, "total": "-x"}]), "'total' is not an amount: '-x'"),
    (lambda o: o.update(refunds=[7]), "a refund is not a JSON object"),
])
def test_malformed_orders_say_what_is_wrong(mutate: Callable[[dict[str, Any]], object], reason: str) -> None:
    payload = copy.deepcopy(ORDER)
    mutate(payload)
    with pytest.raises(MalformedPayload, match=re.escape(reason)):
        translate(3, "order.updated", payload)


@pytest.mark.parametrize(("payload", "reason"), [
    ({**CUSTOMER, "id": ""}, "missing or invalid 'id'"),
    ({**CUSTOMER, "date_modified_gmt": None, "date_created_gmt": None}, "missing 'date_created_gmt'"),
    ({**CUSTOMER, "date_modified_gmt": "soon"}, "'date_modified_gmt' is not an ISO 8601 time"),
    ({**CUSTOMER, "billing": "ann"}, "'billing' is not a JSON object"),
    (ORDER, "not a customer"),  # a signed order body replayed under a customer topic
])
def test_malformed_customers_say_what_is_wrong(payload: dict[str, Any], reason: str) -> None:
    with pytest.raises(MalformedPayload, match=reason):
        translate(3, "customer.updated", payload)


def test_a_customer_body_under_an_order_topic_is_malformed() -> None:
    with pytest.raises(MalformedPayload, match="missing or invalid 'currency'"):
        translate(3, "order.updated", CUSTOMER)


@pytest.mark.parametrize("topic", sorted(TOPICS))
@pytest.mark.parametrize("body", [["not", "an", "object"], "text", None, 11])
def test_a_non_object_body_is_malformed_for_every_topic(topic: str, body: Any) -> None:
    with pytest.raises(MalformedPayload, match="the body is not a JSON object"):
        translate(3, topic, body)


def test_the_topics_are_exactly_the_five_handled() -> None:
    assert sorted(TOPICS) == ["customer.created", "customer.updated", "order.created", "order.deleted", "order.updated"]
    with pytest.raises(MalformedPayload, match="'product.created': not a WooCommerce topic Encore handles"):
        translate(3, "product.created", {"id": 1})
