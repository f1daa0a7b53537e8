"""Products' collections for journey conditions, read from the Shopify simulator over real HTTP with the GraphQL
Admin API's `nodes(ids:)`, and `store_platform` choosing ShopifyPlatform for a Shopify shop."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from app.config import Settings
from app.core.ports import DiscountRequest
from app.db import models as t
from app.shops import store_platform
from app.simulator.shopify import ShopifySimulator
from connectors.shopify.client import ShopifyClient, TokenSet
from connectors.shopify.platform import COLLECTIONS_BATCH, ShopifyPlatform
from tests.conftest import API_KEY, API_SECRET

SHOP = "collections-store.myshopify.com"


@pytest.fixture
def sim(shopify_store: ShopifySimulator) -> Iterator[ShopifySimulator]:
    shopify_store.stores.pop(SHOP, None)
    shopify_store.faults.clear()
    shopify_store.add_store(SHOP, name="Collections Store")
    yield shopify_store
    shopify_store.stores.pop(SHOP, None)


@pytest.fixture
def tokens(sim: ShopifySimulator) -> TokenSet:
    client = ShopifyClient(api_key=API_KEY, api_secret=API_SECRET, shop_origin=sim.shop_origin_template,
                           sleep=lambda s: None)
    return client.exchange_id_token(SHOP, sim.session_token(SHOP))


@pytest.fixture
def platform(sim: ShopifySimulator, tokens: TokenSet) -> ShopifyPlatform:
    client = ShopifyClient(api_key=API_KEY, api_secret=API_SECRET, shop_origin=sim.shop_origin_template,
                           sleep=lambda s: None)
    return ShopifyPlatform(client, SHOP, lambda: tokens.access_token)


def test_each_products_collection_handles_and_every_id_answered(sim: ShopifySimulator,
                                                                platform: ShopifyPlatform) -> None:
    sim.add_product(SHOP, 4242, "Gift card", collections=["gifts", "all"])
    before = len(sim.graphql_calls)
    found = platform.product_collections(["900", "901", "4242", "31337", "gid://shopify/Product/900"])
    assert found == {
        "900": frozenset({"coffee", "subscriptions"}),  # the simulator's default products, named by its orders
        "901": frozenset({"brewing-gear"}),
        "4242": frozenset({"gifts", "all"}),
        "31337": frozenset(),  # not in the store: a null node
        "gid://shopify/Product/900": frozenset({"coffee", "subscriptions"}),
    }
    assert len(sim.graphql_calls) == before + 1
    assert "nodes(ids: $ids)" in sim.graphql_calls[-1] and "collections(first: 50)" in sim.graphql_calls[-1]
    assert platform.product_collections([]) == {}


def test_many_products_are_read_in_batches_that_fit_the_query_cost_limit(sim: ShopifySimulator,
                                                                         platform: ShopifyPlatform) -> None:
    ids = [str(5000 + n) for n in range(40)]
    for n, pid in enumerate(ids):
        sim.add_product(SHOP, int(pid), f"Tea {n}", collections=["tea", f"tea-{n % 3}"])
    before = len(sim.graphql_calls)
    found = platform.product_collections(ids)
    assert found == {pid: frozenset({"tea", f"tea-{n % 3}"}) for n, pid in enumerate(ids)}
    assert len(sim.graphql_calls) - before == -(-len(ids) // COLLECTIONS_BATCH) == 3


def test_store_platform_gives_a_shopify_shop_its_graphql_platform(sim: ShopifySimulator, tokens: TokenSet,
                                                                  settings: Settings, make_container: Any) -> None:
    c = make_container(settings.with_(shopify_shop_origin=sim.shop_origin_template))
    with c.sessions() as s, s.begin():
        shop = t.Shop(platform="shopify", domain=SHOP, installed_at=datetime.now(UTC),
                      access_token=c.vault.seal(tokens.access_token),
                      access_expires_at=datetime.now(UTC) + timedelta(hours=1))
        s.add(shop)
        s.flush()
        shop_id = shop.id
    platform = store_platform(c, shop_id)
    assert isinstance(platform, ShopifyPlatform)
    assert platform.product_collections(["901"]) == {"901": frozenset({"brewing-gear"})}
    made = platform.create_discount(DiscountRequest(code="WIRE-2", title="w", percent_off=Decimal("2")))
    assert sim.stores[SHOP].discounts["wire-2"]["id"] == made


def test_a_free_shipping_code_is_a_free_shipping_discount_and_written_once(sim: ShopifySimulator,
                                                                          platform: ShopifyPlatform) -> None:
    """Not collections, but the other new use of the port: DiscountRequest.free_shipping on Shopify."""
    request = DiscountRequest(code="SHIPFREE-1", title="Free shipping", free_shipping=True, customer_id="7001")
    first = platform.create_discount(request)
    assert platform.create_discount(request) == first
    held = sim.stores[SHOP].discounts["shipfree-1"]
    assert (held["id"], held["destination"], held["customerSelection"], held["usageLimit"]) == (
        first, {"all": True}, {"customers": {"add": ["gid://shopify/Customer/7001"]}}, 1)
    assert "discountCodeFreeShippingCreate" in sim.graphql_calls[-2]
