"""The referral program end to end over real HTTP, against the Shopify and WooCommerce simulators: the friend's
first-order code is written into the store and checked there (its value, single use, and who may use it: on
Shopify the friend's customer account, since Shopify's code discounts cannot name an email; on WooCommerce the
friend's address), an order placed with it arrives by signed webhook and marks the referral, and once the
return window has passed the referrer gets their points."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import requests
from sqlalchemy import select

from app import loyalty, referrals
from app.bootstrap import Container
from app.core.loyalty import Account
from app.db import models as t
from app.shops import store_platform
from app.simulator.woocommerce import WooCommerceSimulator
from connectors.shopify.proxy import sign
from connectors.woocommerce import proxy as woocommerce_proxy
from tests.conftest import API_SECRET

SHOP = "referral-store.myshopify.com"
FRIEND = "fred@example.com"
_ids = itertools.count(int(time.time()) * 10 + 5)


def _configure(c: Container, shop_id: int) -> None:
    with c.sessions() as s, s.begin():
        referrals.configure(s, shop_id, enabled=True, friend_kind="percent", friend_value=Decimal("15"),
                            friend_valid_days=21, referrer_points=250, wait_days=14, cap_per_referrer=None,
                            cap_window_days=30, now=datetime.now(UTC))


def _code(c: Container, shop_id: int, customer_id: str) -> str:
    with c.sessions() as s, s.begin():
        return referrals.code_for(s, shop_id, customer_id, datetime.now(UTC))


def _referral(c: Container) -> t.Referral:
    with c.sessions() as s:
        return s.scalars(select(t.Referral)).one()


def _rewarded_after_the_window(c: Container, shop_id: int, referrer: str) -> None:
    """Nothing before the window has passed; the points after, once; the ledger balanced."""
    now = datetime.now(UTC)
    platform = lambda sid: store_platform(c, sid)  # noqa: E731
    assert referrals.sweep(c, now + timedelta(days=13), platform) == 0
    assert referrals.sweep(c, now + timedelta(days=15), platform) == 1
    assert referrals.sweep(c, now + timedelta(days=16), platform) == 0
    assert _referral(c).status == "rewarded"
    with c.sessions() as s:
        assert loyalty.balance(s, shop_id, referrer) == Account(available=250) and loyalty.mismatches(s) == []


def _signed() -> str:
    params = [("shop", SHOP), ("logged_in_customer_id", ""), ("path_prefix", "/apps/encore"),
              ("timestamp", str(int(time.time())))]
    return urlencode([*params, ("signature", sign(params, API_SECRET))])


def _shopify_order(customer: dict[str, Any], code: str) -> dict[str, Any]:
    oid, at = next(_ids), datetime.now(UTC).isoformat()
    return {
        "id": oid, "admin_graphql_api_id": f"gid://shopify/Order/{oid}", "name": "#2001", "email": customer["email"],
        "created_at": at, "updated_at": at, "processed_at": at, "cancelled_at": None, "currency": "USD",
        "subtotal_price": "50.00", "total_tax": "0.00", "total_discounts": "7.50", "total_price": "42.50",
        "financial_status": "paid", "fulfillment_status": None, "customer": customer,
        "discount_codes": [{"code": code, "amount": "7.50", "type": "percentage"}],
        "shipping_address": {"address1": "9 Elm Rd", "address2": "", "city": "Busan", "zip": "48058",
                             "country_code": "KR"},
        "line_items": [{"id": oid * 10, "title": "Cold brew concentrate", "quantity": 2, "price": "25.00",
                        "total_discount": "7.50", "product_id": 900, "variant_id": 9900, "sku": "SKU-0"}],
        "fulfillments": [], "refunds": [],
    }


def test_a_shopify_friend_gets_a_code_in_the_store_orders_with_it_and_the_referrer_is_rewarded(live: Any) -> None:
    server, sim, c = live
    sim.add_store(SHOP, name="Referral Store", currency="USD", timezone="UTC", locale="en")
    assert requests.get(sim.embedded_app_url(SHOP), timeout=10).status_code == 200
    referrer = sim.place_order(SHOP, customer=1)["customer"]
    assert c.queue.drain(20)
    with c.sessions() as s, s.begin():
        shop_id = s.scalars(select(t.Shop.id).where(t.Shop.domain == SHOP)).one()
        # The friend has an account in the store already (no orders): their code can be limited to it.
        s.add(t.Customer(shop_id=shop_id, external_id="7999", email=FRIEND, external_updated_at=datetime.now(UTC)))
    _configure(c, shop_id)
    code = _code(c, shop_id, str(referrer["id"]))

    landing = f"{server.url}/proxy/r/{code}"
    assert "Get 15% off your first order." in requests.get(f"{landing}?{_signed()}", timeout=10).text
    claimed = requests.post(f"{landing}?{_signed()}", data={"email": FRIEND}, timeout=20)
    friend_code = _referral(c).friend_code
    assert claimed.status_code == 200 and f"https://{SHOP}/discount/{friend_code}" in claimed.text
    held = sim.stores[SHOP].discounts[friend_code.lower()]
    assert (held["code"], held["usageLimit"], held["appliesOncePerCustomer"]) == (friend_code, 1, True)
    assert held["customerGets"]["value"]["percentage"] == 0.15
    assert held["customerSelection"] == {"customers": {"add": ["gid://shopify/Customer/7999"]}}
    assert datetime.fromisoformat(held["endsAt"]) == _referral(c).created_at + timedelta(days=21)

    friend = {"id": 7999, "email": FRIEND, "first_name": "Fred", "last_name": "Kim", "phone": "+82105550999",
              "created_at": datetime.now(UTC).isoformat(), "updated_at": datetime.now(UTC).isoformat()}
    assert sim.send(SHOP, "orders/paid", _shopify_order(friend, friend_code)).status_code == 200
    assert c.queue.drain(20)
    marked = _referral(c)
    assert (marked.status, marked.friend_customer_external_id, marked.blocked_reason) == ("ordered", "7999", None)
    _rewarded_after_the_window(c, shop_id, str(referrer["id"]))


def _connect(server: Any, woo: WooCommerceSimulator) -> None:
    start = requests.get(f"{server.url}/woocommerce/connect", params={"store_url": woo.home_url},
                         allow_redirects=False, timeout=10)
    assert requests.get(start.headers["Location"], timeout=20).status_code == 200


def _plugin(secret: str, woo: WooCommerceSimulator, method: str, path: str, body: bytes) -> dict[str, str]:
    """The headers the WordPress plugin adds to a logged-out shopper's request it forwards."""
    stamp = str(int(time.time()))
    return {"X-Encore-Store": woo.home_url, "X-Encore-Customer": "", "X-Encore-Timestamp": stamp,
            "X-Encore-Signature": woocommerce_proxy.sign(secret, method, path, b"", stamp, woo.home_url, "", body)}


def test_a_woocommerce_friend_gets_a_coupon_for_their_address_orders_with_it_and_the_referrer_is_rewarded(
        live: Any, woocommerce_store: WooCommerceSimulator) -> None:
    server, _, c = live
    woo = woocommerce_store
    _connect(server, woo)
    assert c.queue.drain(20)
    rita = woo.add_customer("rita@example.com", "Rita", "Park")
    assert c.queue.drain(20)
    with c.sessions() as s:
        shop_id = s.scalars(select(t.Shop.id).where(t.Shop.platform == "woocommerce")).one()
    _configure(c, shop_id)
    code = _code(c, shop_id, str(rita["id"]))
    with c.sessions() as s:
        shop = s.get(t.Shop, shop_id)
        assert shop is not None and referrals.link(shop, code) == f"{woo.origin}/?encore_ref={code}"

    # The friend follows the link: the plugin forwards Encore's landing page, signed with the store's key.
    [key] = woo.keys.values()
    path, form = f"/proxy/r/{code}", urlencode({"email": " Fred@Example.com"}).encode()
    assert "Get 15% off your first order." in requests.get(
        f"{server.url}{path}", headers=_plugin(key.consumer_secret, woo, "GET", path, b""), timeout=10).text
    headers = {**_plugin(key.consumer_secret, woo, "POST", path, form),
               "Content-Type": "application/x-www-form-urlencoded"}
    claimed = requests.post(f"{server.url}{path}", data=form, headers=headers, timeout=20)
    got = _referral(c)
    assert claimed.status_code == 200 and f"{woo.origin}/?coupon={got.friend_code}" in claimed.text
    coupon = next(x for x in woo.coupons.values() if x["code"] == got.friend_code.lower())
    assert (coupon["discount_type"], Decimal(coupon["amount"]), coupon["usage_limit"], coupon["email_restrictions"]) \
        == ("percent", Decimal("15"), 1, [FRIEND])

    # The friend checks out with the coupon: the order is paid with it (order.updated, signed).
    placed = woo.place_order(email=FRIEND, status="pending", lines=[("Beans", 2, "18.00")])
    woo.orders[placed["id"]]["coupon_lines"] = [{"id": 1, "code": got.friend_code.lower(), "discount": "5.40",
                                                 "discount_tax": "0.00", "meta_data": []}]
    woo.update_order(placed["id"], status="processing")
    assert c.queue.drain(20)
    marked = _referral(c)
    assert (marked.status, marked.order_external_id, marked.blocked_reason) == ("ordered", str(placed["id"]), None)
    _rewarded_after_the_window(c, shop_id, str(rita["id"]))
