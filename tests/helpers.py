"""Small helpers shared by tests: an installed shop row and signed deliveries."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select

from app.bootstrap import Container
from app.db import models as t
from app.simulator.shopify import sign
from tests.conftest import API_SECRET


def add_shop(c: Container, domain: str = "shop-a.myshopify.com", installed: bool = True) -> int:
    with c.sessions() as s, s.begin():
        shop = t.Shop(platform="shopify", domain=domain, installed_at=datetime.now(UTC) if installed else None,
                      access_token=c.vault.seal("shpat_x"), access_expires_at=None)
        s.add(shop)
        s.flush()
        return shop.id


def delivery(topic: str, payload: Any, *, shop: str = "shop-a.myshopify.com", event_id: str = "e1",
             body: bytes | None = None, secret: str = API_SECRET) -> tuple[bytes, dict[str, str]]:
    raw = body if body is not None else json.dumps(payload).encode()
    return raw, {"X-Shopify-Topic": topic, "X-Shopify-Shop-Domain": shop, "X-Shopify-Event-Id": event_id,
                 "X-Shopify-Hmac-Sha256": sign(raw, secret), "Content-Type": "application/json"}


def state(c: Container, shop_id: int) -> dict[str, Any]:
    """Everything the processing of a shop's deliveries produced, in a comparable form."""
    def rows(model: Any, *cols: str) -> list[tuple[Any, ...]]:
        with c.sessions() as s:
            found = s.scalars(select(model).where(model.shop_id == shop_id)).all()
            return sorted(tuple(getattr(r, col) for col in cols) for r in found)

    return {
        "orders": rows(t.Order, "external_id", "status", "payment_status", "total", "refunded_amount", "email",
                       "external_updated_at", "cancelled_at"),
        "lines": rows(t.OrderLine, "external_id", "quantity", "price"),
        "fulfillments": rows(t.Fulfillment, "external_id", "status", "shipment_status", "tracking_number",
                             "external_updated_at"),
        "refunds": rows(t.Refund, "external_id", "amount"),
        "customers": rows(t.Customer, "external_id", "email", "accepts_email_marketing", "external_updated_at"),
        "events": rows(t.EventRow, "key", "type"),
    }


def wipe_shop_data(c: Container, shop_id: int) -> None:
    with c.sessions() as s, s.begin():
        for model in t.SHOP_TABLES:
            s.execute(delete(model).where(model.shop_id == shop_id))
