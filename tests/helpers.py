"""Small helpers shared by tests: an installed shop row, signed deliveries and the admin pages' catalogs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po
from sqlalchemy import delete, select

from app.bootstrap import Container
from app.db import models as t
from app.i18n import ROOT
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


# --- an admin page's catalog --------------------------------------------------------------------------------------

APP = Path(__file__).resolve().parents[1] / "app"


def page_msgids(templates: Iterable[str] = (), python: Iterable[str] = (), extra: Iterable[str] = ()) -> set[str]:
    """The texts a page's catalog needs: those of its templates (names under app/templates, `_`), of its Python
    modules (paths under app, gettext's keywords) and any others (`extra`, such as the admin header's link)."""
    found = {str(m) for m in extra}
    sources = [("jinja2", APP / "templates" / name, {"_": None}) for name in templates]
    sources += [("python", APP / path, None) for path in python]
    for method, path, keywords in sources:
        options: dict[str, Any] = {"keywords": keywords} if keywords else {}
        found.update(str(message) for _lineno, message, _comments, _context in
                     extract_from_file(method, str(path), **options))
    return found


def assert_catalog_complete(domain: str, wanted: set[str], language: str, *, untranslated: int,
                            placeholders: str = r"\{\w+\}") -> None:
    """app/translations/<language>/LC_MESSAGES/<domain>.po holds exactly the `wanted` texts, each translated,
    keeping the values the page fills in (`placeholders`); in another language than English at most
    `untranslated` texts are the same as in English (names such as "NPS")."""
    with (ROOT / language / "LC_MESSAGES" / f"{domain}.po").open("rb") as f:
        catalog = read_po(f, locale=language)
    messages = {str(m.id): str(m.string) for m in catalog if m.id}
    assert set(messages) == wanted, f"add the page's new texts to {domain}.po (and drop the old ones)"
    assert all(messages.values())
    for msgid, text in messages.items():
        assert sorted(re.findall(placeholders, text)) == sorted(re.findall(placeholders, msgid)), msgid
    if language != "en":
        assert sum(text != msgid for msgid, text in messages.items()) >= len(messages) - untranslated
