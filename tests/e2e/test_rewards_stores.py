"""Reward codes written into the store simulators over real HTTP and checked there: on Shopify a basic code
discount through GraphQL, limited to the customer, single use, with its amount and end; on WooCommerce a
coupon with the customer's address as its restriction and a usage limit of one. A Shopify store that keeps
answering 503 gets the code later, once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from app import loyalty, rewards
from app.bootstrap import Container
from app.core.loyalty import Account, Balance, Entry, LoyaltyError, Posting, Reason
from app.core.ports import StorePlatform
from app.db import models as t
from app.shops import store_platform
from app.simulator.shopify import ShopifySimulator
from app.simulator.woocommerce import WooCommerceSimulator
from connectors.shopify.client import ShopifyClient
from connectors.shopify.platform import ShopifyPlatform
from tests.conftest import API_KEY, API_SECRET

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
SHOP = "rewards-store.myshopify.com"


def member(c: Container, shop_id: int, points: int = 1000) -> None:
    with c.sessions() as s, s.begin():
        s.add(t.Customer(shop_id=shop_id, external_id="7001", email="mina@example.com", external_updated_at=NOW))
        loyalty.post(s, shop_id, "7001", [Posting(Entry(points, Balance.AVAILABLE, Reason.ACTION, "signup"))], NOW)


@pytest.fixture
def shopify(shopify_store: ShopifySimulator) -> Iterator[tuple[ShopifySimulator, StorePlatform]]:
    sim = shopify_store
    sim.stores.pop(SHOP, None)
    sim.faults.clear()
    sim.add_store(SHOP, name="Rewards Store", currency="USD", timezone="UTC", locale="en")
    client = ShopifyClient(api_key=API_KEY, api_secret=API_SECRET, shop_origin=sim.shop_origin_template,
                           sleep=lambda s: None)
    tokens = client.exchange_id_token(SHOP, sim.session_token(SHOP))
    yield sim, ShopifyPlatform(client, SHOP, lambda: tokens.access_token)
    sim.faults.clear()
    sim.stores.pop(SHOP, None)


def shopify_shop(c: Container) -> int:
    with c.sessions() as s, s.begin():
        shop = t.Shop(platform="shopify", domain=SHOP, currency="USD", installed_at=NOW)
        s.add(shop)
        s.flush()
        return shop.id


def test_a_reward_is_a_customer_limited_single_use_code_in_shopify(
        container: Container, shopify: tuple[ShopifySimulator, StorePlatform]) -> None:
    sim, platform = shopify
    shop_id = shopify_shop(container)
    member(container, shop_id)
    with container.sessions() as s, s.begin():
        five_off = rewards.add_reward(s, shop_id, "$5 off", "amount", Decimal("5.00"), 400, NOW, valid_days=60)
    got = rewards.redeem(container, shop_id, "7001", five_off, "widget:1", NOW, lambda _: platform)
    assert got.status == "issued"
    held = sim.stores[SHOP].discounts[got.code.lower()]
    assert held["code"] == got.code and held["usageLimit"] == 1
    assert Decimal(held["customerGets"]["value"]["discountAmount"]["amount"]) == Decimal("5.00")
    assert held["customerSelection"]["customers"]["add"] == ["gid://shopify/Customer/7001"]
    assert datetime.fromisoformat(held["endsAt"]) == NOW + timedelta(days=60)
    with container.sessions() as s:
        assert loyalty.balance(s, shop_id, "7001") == Account(600, 0)


def test_a_shopify_store_answering_503_gets_the_code_later_once(
        container: Container, shopify: tuple[ShopifySimulator, StorePlatform]) -> None:
    sim, platform = shopify
    shop_id = shopify_shop(container)
    member(container, shop_id)
    with container.sessions() as s, s.begin():
        ship = rewards.add_reward(s, shop_id, "Free shipping", "free_shipping", None, 200, NOW)
    sim.faults.extend([("http", 503)] * 20)  # more than the client's own retries
    got = rewards.redeem(container, shop_id, "7001", ship, "widget:2", NOW, lambda _: platform)
    assert got.status == "issuing" and got.code.lower() not in sim.stores[SHOP].discounts
    sim.faults.clear()
    assert rewards.issue_due(container, NOW + timedelta(minutes=5), lambda _: platform) == 1
    assert rewards.issue_due(container, NOW + timedelta(minutes=10), lambda _: platform) == 0
    assert [c for c in sim.stores[SHOP].discounts] == [got.code.lower()]
    with container.sessions() as s:
        assert s.scalars(select(t.Redemption.status)).one() == "issued"
        assert loyalty.balance(s, shop_id, "7001") == Account(800, 0)


def test_a_reward_is_a_single_use_coupon_for_the_customers_address_in_woocommerce(
        container: Container, woocommerce_store: WooCommerceSimulator) -> None:
    sim = woocommerce_store
    key = sim.add_key()
    with container.sessions() as s, s.begin():
        shop = t.Shop(platform="woocommerce", domain=sim.origin, currency="USD", installed_at=NOW,
                      api_key=container.vault.seal(key.consumer_key),
                      api_secret=container.vault.seal(key.consumer_secret))
        s.add(shop)
        s.flush()
        shop_id = shop.id
    member(container, shop_id)
    with container.sessions() as s, s.begin():
        tenth = rewards.add_reward(s, shop_id, "10% off", "percent", Decimal("10"), 300, NOW, valid_days=30)
    got = rewards.redeem(container, shop_id, "7001", tenth, "widget:3", NOW,
                         lambda sid: store_platform(container, sid))
    assert got.status == "issued"
    coupon = next(c for c in sim.coupons.values() if c["code"] == got.code.lower())
    assert (coupon["discount_type"], Decimal(str(coupon["amount"])), coupon["usage_limit"],
            coupon["email_restrictions"]) == ("percent", Decimal("10"), 1, ["mina@example.com"])
    with container.sessions() as s:
        assert loyalty.balance(s, shop_id, "7001") == Account(700, 0)


def test_a_free_product_is_its_price_off_that_product_only_in_both_stores(
        container: Container, shopify: tuple[ShopifySimulator, StorePlatform],
        woocommerce_store: WooCommerceSimulator) -> None:
    sim, platform = shopify
    shop_id = shopify_shop(container)
    member(container, shop_id)
    with container.sessions() as s, s.begin():
        mug = rewards.add_reward(s, shop_id, "Free mug", "free_product", Decimal("18.00"), 500, NOW, product_id="632910392")
        with pytest.raises(LoyaltyError, match="names its product"):
            rewards.add_reward(s, shop_id, "Free what?", "free_product", Decimal("18.00"), 500, NOW)
    got = rewards.redeem(container, shop_id, "7001", mug, "widget:mug", NOW, lambda _: platform)
    held = sim.stores[SHOP].discounts[got.code.lower()]
    assert held["customerGets"]["items"] == {"products": {"productsToAdd": ["gid://shopify/Product/632910392"]}}
    assert Decimal(held["customerGets"]["value"]["discountAmount"]["amount"]) == Decimal("18.00")
    assert held["customerGets"]["value"]["discountAmount"]["appliesOnEachItem"] is False and held["usageLimit"] == 1

    woo = woocommerce_store
    key = woo.add_key()
    with container.sessions() as s, s.begin():
        shop = t.Shop(platform="woocommerce", domain=woo.origin, currency="USD", installed_at=NOW,
                      api_key=container.vault.seal(key.consumer_key), api_secret=container.vault.seal(key.consumer_secret))
        s.add(shop)
        s.flush()
        woo_id = shop.id
    member(container, woo_id)
    with container.sessions() as s, s.begin():
        cup = rewards.add_reward(s, woo_id, "Free cup", "free_product", Decimal("12.50"), 500, NOW, product_id="93")
    got = rewards.redeem(container, woo_id, "7001", cup, "widget:cup", NOW, lambda sid: store_platform(container, sid))
    coupon = next(c for c in woo.coupons.values() if c["code"] == got.code.lower())
    assert (coupon["discount_type"], Decimal(coupon["amount"]), coupon["product_ids"], coupon["limit_usage_to_x_items"],
            coupon["usage_limit"], coupon["email_restrictions"]) == (
        "fixed_product", Decimal("12.5"), [93], 1, 1, ["mina@example.com"])
