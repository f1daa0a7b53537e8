"""Shopify payloads -> commands, on Shopify's own public sample records (see tests/samples/shopify.py)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from app.core import commands as c
from app.core.model import OrderStatus, PaymentStatus
from connectors.base import MalformedPayload
from connectors.shopify.translate import TOPICS, translate
from tests.samples import shopify as sample


def test_sample_order_becomes_an_observed_order_with_its_customer() -> None:
    [cmd] = translate(1, "orders/create", sample.ORDER)
    assert isinstance(cmd, c.ObserveOrder)
    o = cmd.order
    assert (o.external_id, o.name, o.currency) == ("450789469", "#1001", "USD")
    assert (o.total, o.subtotal, o.total_tax, o.total_shipping) == (
        Decimal("409.94"), Decimal("398.00"), Decimal("11.94"), Decimal("0.00"))
    assert o.payment is PaymentStatus.AUTHORIZED
    assert o.created_at == datetime(2008, 1, 10, 16, 0, tzinfo=UTC)
    assert [(x.external_id, x.sku, x.quantity, x.price) for x in o.lines] == [
        ("466157049", "IPOD2008GREEN", 1, Decimal("199.00")),
        ("518995019", "IPOD2008RED", 1, Decimal("199.00")),
        ("703073504", "IPOD2008BLACK", 1, Decimal("199.00")),
    ]
    [f] = o.fulfillments
    assert (f.external_id, f.status, f.tracking.number) == ("255858046", "failure", "1Z2345")
    # A failed fulfillment is not a shipment: the sample order is still only placed (authorized, not paid).
    assert o.status is OrderStatus.PLACED
    assert o.customer_id == "207119551" and cmd.customer is not None
    assert (cmd.customer.email, cmd.customer.consent.email_marketing) == ("bob.norman@hostmail.com", False)


def test_sample_fulfillment_and_refund_name_their_order() -> None:
    [ful] = translate(1, "fulfillments/update", sample.FULFILLMENT)
    assert isinstance(ful, c.ObserveFulfillment)
    assert (ful.order_id, ful.fulfillment.status, ful.fulfillment.tracking.url) == (
        "450789469", "pending", "http://www.google.com/search?q=1Z2345")
    [ref] = translate(1, "refunds/create", sample.REFUND)
    assert isinstance(ref, c.ObserveRefund)
    assert ref.order_id == "450789469" and ref.refund.amount == Decimal("209.00")
    assert [(x.line_id, x.quantity) for x in ref.refund.lines] == [("703073504", 1), ("466157049", 1)]


def test_sample_customer_and_compliance_payloads() -> None:
    [cust] = translate(1, "customers/update", sample.CUSTOMER)
    assert isinstance(cust, c.ObserveCustomer)
    assert cust.customer.updated_at == datetime(2015, 5, 27, 22, 11, 24, tzinfo=UTC)
    [req] = translate(1, "customers/data_request", sample.DATA_REQUEST)
    assert req == c.ExportCustomerData(1, "9999", "191167", "john@example.com", ("299938", "280263", "220458"))
    [red] = translate(1, "customers/redact", sample.CUSTOMER_REDACT)
    assert red == c.RedactCustomer(1, "191167", ("299938", "280263", "220458"))
    assert translate(1, "shop/redact", sample.SHOP_REDACT) == [c.RedactShop(1)]
    assert translate(1, "app/uninstalled", {"id": 1}) == [c.UninstallApp(1)]


def test_consent_follows_the_marketing_consent_objects() -> None:
    customer = dict(sample.CUSTOMER, email_marketing_consent={"state": "subscribed", "consent_updated_at": None},
                    sms_marketing_consent={"state": "subscribed"})
    [cmd] = translate(1, "customers/create", customer)
    assert isinstance(cmd, c.ObserveCustomer)
    assert (cmd.customer.consent.email_marketing, cmd.customer.consent.sms_marketing) == (True, True)


@pytest.mark.parametrize(("topic", "mutate", "reason"), [
    ("orders/create", lambda o: o.pop("id"), "missing or invalid 'id'"),
    ("orders/create", lambda o: o.update(total_price="abc"), "'total_price' is not an amount"),
    ("orders/create", lambda o: o.update(updated_at="yesterday"), "'updated_at' is not an ISO 8601 time"),
    ("orders/create", lambda o: o.update(updated_at="2008-01-10T11:00:00"), "has no time zone"),
    ("orders/create", lambda o: o.update(currency=None), "missing or invalid 'currency'"),
    ("orders/create", lambda o: o.update(line_items=[{"id": 1}]), "missing 'price'"),
    ("orders/create", lambda o: o.update(line_items="nope"), "a line item is not a JSON object"),
    ("orders/create", lambda o: o.update(line_items=7), "unexpected shape"),
])
def test_malformed_payloads_say_what_is_wrong(topic: str, mutate: object, reason: str) -> None:
    payload = copy.deepcopy(sample.ORDER)
    mutate(payload)  # type: ignore[operator]
    with pytest.raises(MalformedPayload, match=reason):
        translate(1, topic, payload)


@pytest.mark.parametrize("topic", sorted(set(TOPICS) - {"app/uninstalled", "shop/redact"}))  # these read no body
def test_a_non_object_body_is_malformed_for_every_topic(topic: str) -> None:
    with pytest.raises(MalformedPayload):
        translate(1, topic, ["not", "an", "object"])
