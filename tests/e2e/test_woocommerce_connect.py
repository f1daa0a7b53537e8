"""Connecting a WooCommerce store end to end over HTTP: wc-auth, keys confirmed, webhooks registered and
pinged, signed deliveries stored once and applied; and the bad inputs of the connect flow."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from app import connections
from app.db.models import EventRow, InboxRow, InstallNonce, Order, Shop
from app.net import UnsafeStoreUrl, check_store_url
from app.simulator.woocommerce import WooCommerceSimulator
from app.web.auth import issue_admin_token


def connect(server: Any, woo: WooCommerceSimulator) -> requests.Response:
    start = requests.get(f"{server.url}/woocommerce/connect", params={"store_url": woo.home_url},
                         allow_redirects=False, timeout=10)
    assert start.status_code == 302 and start.headers["Location"].startswith(f"{woo.origin}/wc-auth/v1/authorize?")
    return requests.get(start.headers["Location"], timeout=20)  # the merchant approves; the store calls back


def test_a_store_connects_registers_its_webhooks_and_its_orders_flow_in(live: Any,
                                                                         woocommerce_store: WooCommerceSimulator) -> None:
    server, _, c = live
    woo = woocommerce_store
    landed = connect(server, woo)
    assert landed.status_code == 200 and landed.text == "Your store is connected to Encore."
    assert c.queue.drain(20)
    with c.sessions() as s:
        shop = s.scalars(select(Shop).where(Shop.platform == "woocommerce")).one()
        assert shop.domain == woo.home_url.rstrip("/") and shop.installed
        [key] = woo.keys.values()
        assert c.vault.open(shop.api_key) == key.consumer_key and key.consumer_key.encode() not in (shop.api_key or b"")
    hooks = sorted(woo.webhooks.values(), key=lambda w: w.topic)
    assert [(w.topic, w.status, w.delivery_url) for w in hooks] == [
        (t, "active", f"{server.url}/webhooks/woocommerce") for t in sorted(
            ["customer.created", "customer.updated", "order.created", "order.deleted", "order.updated"])]
    assert all(w.pinged for w in hooks)  # each ping was answered 200
    order = woo.place_order(status="processing")
    assert c.queue.drain(20)
    with c.sessions() as s:
        stored = s.scalars(select(Order)).one()
        assert (stored.external_id, stored.status) == (str(order["id"]), "paid")
        assert s.scalar(select(func.count()).select_from(InboxRow).where(InboxRow.status != "done")) == 0
    # Connecting again re-uses the shop and finds every webhook healthy.
    assert connect(server, woo).status_code == 200 and c.queue.drain(20)
    assert connections.ensure_webhooks(c, shop.id) == {"created": 0, "reactivated": 0, "healthy": 5}


def test_a_disabled_webhook_is_reactivated(live: Any, woocommerce_store: WooCommerceSimulator) -> None:
    server, _, c = live
    connect(server, woocommerce_store)
    assert c.queue.drain(20)
    hook = next(w for w in woocommerce_store.webhooks.values() if w.topic == "order.updated")
    hook.status = "disabled"
    with c.sessions() as s:
        shop_id = s.scalars(select(Shop.id).where(Shop.platform == "woocommerce")).one()
    assert connections.ensure_webhooks(c, shop_id) == {"created": 0, "reactivated": 1, "healthy": 4}
    assert hook.status == "active"
    # The admin shows what the check found and repaired.
    with c.sessions() as s:
        domain = s.scalars(select(Shop.domain).where(Shop.id == shop_id)).one()
    token = issue_admin_token(c, shop_id, domain)
    overview = requests.get(f"{server.url}/api/admin/overview", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    webhooks = overview.json()["webhooks"]
    assert (webhooks["reactivated"], webhooks["healthy"], webhooks["found"]["order.updated"]) == (1, 4, "disabled")
    assert overview.json()["history"]["status"] == "done"


def test_webhook_intake_refuses_what_it_cannot_verify(live: Any, woocommerce_store: WooCommerceSimulator) -> None:
    server, _, c = live
    url = f"{server.url}/webhooks/woocommerce"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert requests.post(url, data=b"webhook_id=12", headers=form, timeout=5).status_code == 200
    assert requests.post(url, data=b"webhook_id=abc", headers=form, timeout=5).status_code == 400
    stranger = {"X-WC-Webhook-Source": "https://stranger.example/", "X-WC-Webhook-Topic": "order.created",
                "X-WC-Webhook-Signature": "AAAA", "Content-Type": "application/json"}
    assert requests.post(url, data=b"{}", headers=stranger, timeout=5).status_code == 401
    connect(server, woocommerce_store)
    assert c.queue.drain(20)
    forged = {**stranger, "X-WC-Webhook-Source": woocommerce_store.home_url}
    assert requests.post(url, data=b'{"id": 1}', headers=forged, timeout=5).status_code == 401
    with c.sessions() as s:
        assert s.scalar(select(func.count()).select_from(InboxRow)) == 0


def test_a_callback_without_a_matching_request_is_refused_and_stores_nothing(live: Any) -> None:
    server, _, c = live
    keys = {"key_id": 1, "user_id": "made-up.0000", "consumer_key": "ck_x", "consumer_secret": "cs_x",
            "key_permissions": "read_write"}
    answer = requests.post(f"{server.url}/woocommerce/callback", json=keys, timeout=5)
    assert (answer.status_code, answer.text) == (401, "no connect request of Encore's matches this callback")
    with c.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Shop)) == 0


def test_keys_the_store_refuses_are_not_kept(live: Any, woocommerce_store: WooCommerceSimulator) -> None:
    server, _, c = live
    location = requests.get(f"{server.url}/woocommerce/connect", params={"store_url": woocommerce_store.home_url},
                            allow_redirects=False, timeout=5).headers["Location"]
    user_id = requests.utils.urlparse(location).query.split("user_id=")[1].split("&")[0]
    fake = {"user_id": requests.utils.unquote(user_id), "consumer_key": "ck_forged", "consumer_secret": "cs_forged"}
    answer = requests.post(f"{server.url}/woocommerce/callback", json=fake, timeout=10)
    assert answer.status_code == 401 and answer.text.startswith("the store refused the keys")
    replay = requests.post(f"{server.url}/woocommerce/callback", json=fake, timeout=10)
    assert replay.text == "this connect request has expired or was used already"  # single use
    with c.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Shop)) == 0
        assert s.scalars(select(InstallNonce.used_at)).one() is not None


@pytest.mark.parametrize(("url", "development", "reason"), [
    ("ftp://shop.example", True, "must start with https://"),
    ("javascript:alert(1)", True, "must start with https://"),
    ("http://shop.example", False, "must use https"),
    ("https://user:pw@shop.example", False, "user name or password"),
    ("https://127.0.0.1", False, "non-public address (127.0.0.1)"),
    ("https://10.1.2.3", False, "non-public address (10.1.2.3)"),
    ("https://169.254.169.254", False, "non-public address (169.254.169.254)"),
    ("https://[::1]", False, "non-public address (::1)"),
    ("https://localhost", False, "non-public address"),
])
def test_store_urls_that_would_forge_requests_are_refused(url: str, development: bool, reason: str) -> None:
    with pytest.raises(UnsafeStoreUrl, match=reason.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        check_store_url(url, development=development)


def test_a_public_https_store_url_is_normalized() -> None:
    assert check_store_url("https://93.184.215.14/shop/", development=False) == "https://93.184.215.14/shop"
    assert check_store_url("http://127.0.0.1:8080/", development=True) == "http://127.0.0.1:8080"


def test_reconcile_pulls_what_webhooks_missed_and_repairs_them(live: Any,
                                                                woocommerce_store: WooCommerceSimulator) -> None:
    server, _, c = live
    woo = woocommerce_store
    connect(server, woo)
    assert c.queue.drain(20)
    for hook in woo.webhooks.values():
        hook.status = "disabled"  # as after a run of failed deliveries: the store sends nothing
    missed = [woo.place_order(status="processing") for _ in range(3)]
    assert c.queue.drain(20)
    with c.sessions() as s:
        shop_id = s.scalars(select(Shop.id).where(Shop.platform == "woocommerce")).one()
        assert s.scalar(select(func.count()).select_from(Order)) == 0
    assert connections.reconcile(c, shop_id) == 3
    assert c.queue.drain(20)
    with c.sessions() as s:
        assert sorted(s.scalars(select(Order.external_id))) == sorted(str(o["id"]) for o in missed)
        assert s.scalars(select(Shop.reconciled_at)).one() is not None
    assert {w.status for w in woo.webhooks.values()} == {"active"}
    assert connections.reconcile(c, shop_id) == 3  # the overlap reads the same versions again ...
    assert c.queue.drain(20)
    with c.sessions() as s:  # ... which change nothing
        assert s.scalar(select(func.count()).select_from(Order)) == 3
        assert s.scalar(select(func.count()).select_from(EventRow).where(EventRow.type == "OrderPlaced")) == 3


def test_a_completed_order_counts_as_delivered_after_the_shops_rule(live: Any,
                                                                     woocommerce_store: WooCommerceSimulator) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from app.db.models import Fulfillment

    server, _, c = live
    connect(server, woocommerce_store)
    assert c.queue.drain(20)
    order = woocommerce_store.place_order(status="completed")
    assert c.queue.drain(20)
    with c.sessions() as s, s.begin():
        shop_id = s.scalars(select(Shop.id).where(Shop.platform == "woocommerce")).one()
        s.execute(update(Shop).values(delivered_after_days=4))
        completed = s.scalars(select(Fulfillment)).one()
        assert completed.shipment_status is None
    now = datetime.now(UTC)
    assert connections.estimate_deliveries(c, shop_id, now=now + timedelta(days=3)) == 0
    assert connections.estimate_deliveries(c, shop_id, now=now + timedelta(days=5)) == 1
    assert connections.estimate_deliveries(c, shop_id, now=now + timedelta(days=6)) == 0  # once
    with c.sessions() as s:
        f = s.scalars(select(Fulfillment)).one()
        assert (f.shipment_status, f.estimated) == ("delivered", True)
        assert s.scalars(select(Order.status)).one() == "delivered"
        delivered = s.scalars(select(EventRow).where(EventRow.type == "OrderDelivered")).one()
        assert delivered.payload["estimated"] is True and delivered.key.startswith(f"order:{order['id']}:delivered")
