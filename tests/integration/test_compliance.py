"""customers/redact, shop/redact, customers/data_request and app/uninstalled against the real database."""

from __future__ import annotations

import json
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.bootstrap import Container
from app.db import models as t
from tests.helpers import add_shop, delivery
from tests.samples import shopify as sample


def send(client: FlaskClient, c: Container, topic: str, payload: Any, event_id: str, shop: str = "shop-a.myshopify.com") -> int:
    body, headers = delivery(topic, payload, event_id=event_id, shop=shop)
    status = client.post("/webhooks/shopify", data=body, headers=headers).status_code
    assert c.queue.drain(10)  # type: ignore[attr-defined]
    return status


def order_of(customer_id: int, order_id: int, email: str) -> dict[str, Any]:
    return dict(sample.ORDER, id=order_id, email=email, fulfillments=[],
                customer=dict(sample.BOB, id=customer_id, email=email, first_name="John", phone="555-625-1199"))


def test_customer_redact_erases_personal_data_and_keeps_aggregates(client: FlaskClient, container: Container) -> None:
    add_shop(container)
    send(client, container, "orders/create", order_of(191167, 299938, "john@example.com"), "o1")
    send(client, container, "orders/create", order_of(555, 111, "other@example.com"), "o2")
    assert send(client, container, "customers/redact", sample.CUSTOMER_REDACT, "r1") == 200
    with container.sessions() as s:
        john = s.scalars(select(t.Customer).where(t.Customer.external_id == "191167")).one()
        assert (john.email, john.first_name, john.phone) == (None, None, None) and john.redacted_at is not None
        orders = {o.external_id: o for o in s.scalars(select(t.Order))}
        assert orders["299938"].email is None and str(orders["299938"].total) == "409.9400"
        assert orders["111"].email == "other@example.com"  # nobody else is touched
    # A late, stale update for John never brings his data back.
    send(client, container, "customers/update", dict(sample.BOB, id=191167, updated_at="2030-01-01T00:00:00Z"), "u1")
    with container.sessions() as s:
        assert s.scalars(select(t.Customer.email).where(t.Customer.external_id == "191167")).one() is None


def test_data_request_produces_a_downloadable_export(client: FlaskClient, container: Container) -> None:
    add_shop(container)
    send(client, container, "orders/create", order_of(191167, 299938, "john@example.com"), "o1")
    assert send(client, container, "customers/data_request", sample.DATA_REQUEST, "d1") == 200
    with container.sessions() as s:
        export = s.scalars(select(t.DataExport)).one()
    assert export.request_id == "9999" and export.customer_external_id == "191167"
    assert export.content["customer"]["email"] == "john@example.com"
    assert [o["external_id"] for o in export.content["orders"]] == ["299938"]
    json.dumps(export.content)  # plain JSON, ready to download


def test_uninstall_twice_stops_activity_but_compliance_still_runs(client: FlaskClient, container: Container) -> None:
    shop_id = add_shop(container)
    assert send(client, container, "app/uninstalled", {"id": 1}, "u1") == 200
    assert send(client, container, "app/uninstalled", {"id": 1}, "u2") == 200  # may arrive twice
    with container.sessions() as s:
        shop = s.get(t.Shop, shop_id)
        assert shop is not None and not shop.installed and shop.access_token is None and shop.refresh_token is None
        assert s.scalar(select(func.count()).select_from(t.EventRow).where(t.EventRow.type == "AppUninstalled")) == 1
    # After uninstall: order events are acknowledged and ignored; privacy requests are still honoured.
    send(client, container, "orders/create", sample.ORDER, "o1")
    send(client, container, "customers/data_request", sample.DATA_REQUEST, "d1")
    with container.sessions() as s:
        statuses = dict(s.execute(select(t.InboxRow.topic, t.InboxRow.status)).all())
        assert s.scalar(select(func.count()).select_from(t.Order)) == 0
        assert s.scalar(select(func.count()).select_from(t.DataExport)) == 1
    assert statuses["orders/create"] == "ignored" and statuses["customers/data_request"] == "done"


def test_shop_redact_deletes_everything_of_that_shop_only(client: FlaskClient, container: Container) -> None:
    gone = add_shop(container)
    kept = add_shop(container, "shop-b.myshopify.com")
    send(client, container, "orders/create", sample.ORDER, "o1")
    send(client, container, "orders/create", sample.ORDER, "o1", shop="shop-b.myshopify.com")
    send(client, container, "app/uninstalled", {"id": 1}, "u1")
    assert send(client, container, "shop/redact", sample.SHOP_REDACT, "s1") == 200
    with container.sessions() as s:
        assert s.get(t.Shop, gone) is None
        for model in t.SHOP_TABLES:
            assert s.scalar(select(func.count()).select_from(model).where(model.shop_id == gone)) == 0, model
        assert s.scalar(select(func.count()).select_from(t.Order).where(t.Order.shop_id == kept)) == 1
    # The shop no longer exists for Encore: a late delivery is refused as from an unknown shop.
    assert send(client, container, "orders/create", sample.ORDER, "o9") == 401
