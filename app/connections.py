"""Connecting a WooCommerce store: the wc-auth request Encore starts, the keys it accepts, its webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import structlog
from sqlalchemy import select, update

from app import imports, inbox
from app.core import commands as cmd
from app.core import model as m
from app.core.messagebus import handle
from app.db.engine import rowcount
from app.db.models import Fulfillment, InstallNonce, Order, Shop
from app.db.uow import SqlUnitOfWork
from app.journeys import install_defaults
from connectors.woocommerce import WEBHOOK_TOPICS, verify
from connectors.woocommerce.client import WooCommerceClient, WooCommerceError

if TYPE_CHECKING:
    from app.bootstrap import Container

log = structlog.get_logger(__name__)
CONNECT_TTL = timedelta(minutes=15)


class ConnectRefused(Exception):
    """The keys cannot be accepted; the message says why (and WooCommerce deletes them on a non-200)."""


def _sign(c: Container, nonce: str, store_url: str) -> str:
    return hmac.new(c.settings.secret_key.encode(), f"{nonce}|{store_url}".encode(), hashlib.sha256).hexdigest()[:32]


def start(c: Container, store_url: str) -> str:
    """Record a connect request for a checked store URL; return the store's wc-auth address to send the
    merchant to. Its user_id is Encore's own single-use, expiring, signed token, since WooCommerce's
    callback names neither the store nor the request."""
    nonce = secrets.token_urlsafe(24)
    with c.sessions() as s, s.begin():
        s.add(InstallNonce(nonce=nonce, platform="woocommerce", shop_domain=store_url,
                           expires_at=datetime.now(UTC) + CONNECT_TTL))
    query = urlencode({"app_name": "Encore", "scope": "read_write", "user_id": f"{nonce}.{_sign(c, nonce, store_url)}",
                       "return_url": f"{c.settings.app_url}/woocommerce/connected",
                       "callback_url": f"{c.settings.app_url}/woocommerce/callback"})
    return f"{store_url}/wc-auth/v1/authorize?{query}"


def client_for(c: Container, store_url: str, key: str, secret: str) -> WooCommerceClient:
    return WooCommerceClient(store_url, key, secret, allow_private=c.settings.development)


def _claim(c: Container, user_id: str) -> str:
    """The store URL of the pending request this callback answers; the request is spent from now on."""
    nonce, _, signature = user_id.partition(".")
    with c.sessions() as s, s.begin():
        pending = s.get(InstallNonce, nonce)
        if pending is None or pending.platform != "woocommerce" or not hmac.compare_digest(
                _sign(c, nonce, pending.shop_domain).encode(), signature.encode("utf-8", "replace")):
            raise ConnectRefused("no connect request of Encore's matches this callback")
        now = datetime.now(UTC)
        spent = rowcount(s.execute(update(InstallNonce).where(
            InstallNonce.nonce == nonce, InstallNonce.used_at.is_(None), InstallNonce.expires_at > now
        ).values(used_at=now)))
        if not spent:
            raise ConnectRefused("this connect request has expired or was used already")
        return pending.shop_domain


def accept_keys(c: Container, payload: Any) -> int:
    """Keep the keys of a callback Encore asked for, once a REST call with them succeeds; returns the shop id."""
    if not isinstance(payload, dict) or not all(isinstance(payload.get(k), str) and payload.get(k)
                                                for k in ("user_id", "consumer_key", "consumer_secret")):
        raise ConnectRefused("the callback must carry user_id, consumer_key and consumer_secret")
    store_url = _claim(c, payload["user_id"])
    key, secret = payload["consumer_key"], payload["consumer_secret"]
    try:
        client_for(c, store_url, key, secret).system_status()  # the keys work, for this store
    except WooCommerceError as exc:
        raise ConnectRefused(f"the store refused the keys: {exc}") from exc
    now = datetime.now(UTC)
    with c.sessions() as s, s.begin():
        shop = s.scalars(select(Shop).where(Shop.platform == "woocommerce", Shop.domain == store_url)).first()
        if shop is None:
            shop = Shop(platform="woocommerce", domain=store_url)
            s.add(shop)
        shop.api_key, shop.api_secret = c.vault.seal(key), c.vault.seal(secret)
        shop.webhook_secret = shop.webhook_secret or c.vault.seal(secrets.token_urlsafe(32))
        fresh = not shop.installed
        shop.installed_at, shop.uninstalled_at = shop.installed_at if shop.installed else now, None
        s.flush()
        shop_id = shop.id
        install_defaults(s, shop_id)  # the journey library, ready to switch on
    c.shops.forget("woocommerce", store_url)
    c.queue.enqueue("ensure_woocommerce_webhooks", shop_id)  # after the 200: the store waits on this answer
    if fresh:
        imports.start(c, shop_id)  # the store's past customers and orders, in the background
    log.info("store_connected", shop_id=shop_id, platform="woocommerce")
    return shop_id


def store_client(c: Container, shop_id: int) -> tuple[WooCommerceClient, Shop]:
    with c.sessions() as s:
        shop = s.get(Shop, shop_id)
        if shop is None or not shop.installed:
            raise ConnectRefused(f"shop {shop_id} is not connected")
        key, secret = c.vault.open(shop.api_key), c.vault.open(shop.api_secret)
        if not key or not secret:
            raise ConnectRefused(f"shop {shop_id} has no keys")
        return client_for(c, shop.domain, key, secret), shop


def ensure_webhooks(c: Container, shop_id: int) -> dict[str, int]:
    """Every topic Encore needs has an active webhook to Encore: create what is missing, re-activate what
    WooCommerce disabled after failed deliveries. Safe to run again and again."""
    client, shop = store_client(c, shop_id)
    secret = c.vault.open(shop.webhook_secret) or ""
    url = f"{c.settings.app_url}/webhooks/woocommerce"
    ours = {w["topic"]: w for w in client.webhooks() if w.get("delivery_url") == url}
    counts = {"created": 0, "reactivated": 0, "healthy": 0}
    found: dict[str, str] = {}  # topic -> what Encore found: active, or the status WooCommerce left, or missing
    for topic in WEBHOOK_TOPICS:
        existing = ours.get(topic)
        if existing is None:
            client.create_webhook(topic, url, secret, name=f"Encore {topic}")
            counts["created"] += 1
            found[topic] = "missing"
        elif existing.get("status") != "active":
            client.update_webhook(int(existing["id"]), status="active", secret=secret)
            counts["reactivated"] += 1
            found[topic] = str(existing.get("status") or "unknown")
        else:
            counts["healthy"] += 1
            found[topic] = "active"
    with c.sessions() as s, s.begin():  # what the admin shows as the store's webhook health
        s.execute(update(Shop).where(Shop.id == shop_id).values(
            webhooks_health={"found": found, **counts}, webhooks_checked_at=datetime.now(UTC)))
    log.info("woocommerce_webhooks", shop_id=shop_id, **counts)
    return counts


RECONCILE_EVERY = timedelta(minutes=10)
RECONCILE_OVERLAP = timedelta(minutes=5)  # clocks differ; reading a little twice costs nothing


def reconcile(c: Container, shop_id: int, *, now: datetime | None = None) -> int:
    """Close any gap webhooks left: WooCommerce never retries a failed delivery and disables a webhook after
    a run of them. Pull every order modified since the last pass into the inbox (the same path a webhook
    takes, so handling stays idempotent on each order's modification time), then repair the webhooks.
    Returns how many orders were read."""
    at = now or datetime.now(UTC)
    client, shop = store_client(c, shop_id)
    since = (shop.reconciled_at or shop.installed_at or at) - RECONCILE_OVERLAP
    count = 0
    for order in client.orders_modified_after(since):
        body = json.dumps(order).encode()
        inbox.store(c, shop_id=shop_id, platform="woocommerce", topic="order.updated",
                    event_id=verify.event_id("order.updated", body), body=body)
        count += 1
    ensure_webhooks(c, shop_id)
    with c.sessions() as s, s.begin():
        s.execute(update(Shop).where(Shop.id == shop_id).values(reconciled_at=at))
    log.info("woocommerce_reconciled", shop_id=shop_id, orders=count)
    return count


def estimate_deliveries(c: Container, shop_id: int, *, now: datetime | None = None) -> int:
    """For a store without carrier data: an order completed N days ago (the shop's rule) counts as delivered,
    marked estimated. Returns how many deliveries were estimated."""
    at = now or datetime.now(UTC)
    with c.sessions() as s:
        days = s.scalar(select(Shop.delivered_after_days).where(Shop.id == shop_id))
        if not days:
            return 0
        due = s.execute(select(Order.external_id, Fulfillment).join(Order, Order.id == Fulfillment.order_id).where(
            Fulfillment.shop_id == shop_id, Fulfillment.status == "success", Fulfillment.shipment_status.is_(None),
            Fulfillment.created_at <= at - timedelta(days=days))).all()
    for order_id, f in due:
        delivered_at = f.created_at + timedelta(days=days)
        estimate = m.Fulfillment(
            external_id=f.external_id, created_at=f.created_at, updated_at=delivered_at, status=f.status,
            shipment_status="delivered", estimated=True,
            tracking=m.Tracking(f.tracking_company, f.tracking_number, f.tracking_url))
        handle(cmd.ObserveFulfillment(shop_id, order_id, estimate), SqlUnitOfWork(c.sessions), c.clock)
    return len(due)


def due_for_reconciling(c: Container, *, now: datetime | None = None) -> list[int]:
    at = now or datetime.now(UTC)
    with c.sessions() as s:
        return list(s.scalars(select(Shop.id).where(
            Shop.platform == "woocommerce", Shop.installed_at.is_not(None), Shop.uninstalled_at.is_(None),
            (Shop.reconciled_at.is_(None)) | (Shop.reconciled_at < at - RECONCILE_EVERY))))
