"""The Shopify connector."""

from __future__ import annotations

from typing import Any

from app.core.commands import Command
from connectors.base import Delivery, Headers, Rejection
from connectors.shopify import translate, verify


class ShopifyConnector:
    name = "shopify"
    topics = frozenset(translate.TOPICS)
    secret_scope = "app"

    def shop_of(self, headers: Headers) -> str | None:
        return verify.sanitize_shop(verify.header(headers, "Shop-Domain"))

    def parse_ping(self, body: bytes, content_type: str | None) -> int | None:
        return None  # Shopify sends no ping

    def verify_webhook(self, body: bytes, headers: Headers, secrets: tuple[str, ...]) -> Delivery | Rejection:
        return verify.verify_webhook(body, headers, secrets)

    def translate(self, shop_id: int, topic: str, payload: Any) -> list[Command]:
        return translate.translate(shop_id, topic, payload)


SHOPIFY = ShopifyConnector()
