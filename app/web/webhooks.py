"""POST /webhooks/<platform>: verify the raw body, store it in the inbox, answer at once."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from app import inbox
from app.bootstrap import Container
from connectors import REGISTRY
from connectors.base import Rejection

bp = Blueprint("webhooks", __name__)


def _answer(status: int, text: str = "") -> Response:
    return Response(text, status=status, mimetype="text/plain")


@bp.post("/webhooks/<platform>")
def receive(platform: str) -> Response:
    c: Container = current_app.extensions["encore"]
    connector = REGISTRY.get(platform)
    if connector is None:
        return _answer(404, "unknown platform")
    if (request.content_length or 0) > c.settings.webhook_max_bytes:
        return _answer(413, "body too large")
    body = request.get_data(cache=False)
    if len(body) > c.settings.webhook_max_bytes:
        return _answer(413, "body too large")
    if connector.parse_ping(body, request.content_type) is not None:
        return _answer(200, "pong")  # a new webhook checking its URL: unsigned, nothing to store
    if request.mimetype == "application/x-www-form-urlencoded":
        return _answer(400, "a form body must be a ping: webhook_id=N")
    shop = None
    secrets = c.settings.shopify_api_secrets
    if connector.secret_scope == "shop":  # the store's own secret signs: find the store first
        claimed = connector.shop_of(request.headers)
        shop = c.shops.find(platform, claimed) if claimed else None
        if shop is None or not shop.webhook_secret:
            return _answer(401, "unknown shop")
        secrets = (shop.webhook_secret,)
    verdict = connector.verify_webhook(body, request.headers, secrets)
    if isinstance(verdict, Rejection):
        return _answer(verdict.status, verdict.reason)
    shop = shop or c.shops.find(platform, verdict.shop_domain)
    if shop is None:
        return _answer(401, "unknown shop")
    if verdict.topic not in connector.topics:
        inbox.record_unknown_topic(platform, verdict.topic)
        return _answer(200, "topic ignored")
    inbox.store(c, shop_id=shop.id, platform=platform, topic=verdict.topic, event_id=verdict.event_id, body=body)
    return _answer(200)
