"""The WooCommerce connector."""

from __future__ import annotations

from typing import Any

from app.core.commands import Command
from connectors.base import Delivery, Headers, Rejection
from connectors.woocommerce import translate, verify

WEBHOOK_TOPICS = ("order.created", "order.updated", "order.deleted", "customer.created", "customer.updated")


class WooCommerceConnector:
    name = "woocommerce"
    topics = frozenset(translate.TOPICS)
    secret_scope = "shop"

    def shop_of(self, headers: Headers) -> str | None:
        return verify.envelope(headers).source

    def parse_ping(self, body: bytes, content_type: str | None) -> int | None:
        return verify.parse_ping(body, content_type)

    def verify_webhook(self, body: bytes, headers: Headers, secrets: tuple[str, ...]) -> Delivery | Rejection:
        return verify.verify_webhook(body, headers, secrets)

    def translate(self, shop_id: int, topic: str, payload: Any) -> list[Command]:
        return translate.translate(shop_id, topic, payload)


WOOCOMMERCE = WooCommerceConnector()
