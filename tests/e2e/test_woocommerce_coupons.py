"""WooCommercePlatform against the WooCommerce simulator over real HTTP (OAuth 1.0a-signed REST calls): the
shop's profile, discount codes written as coupons (idempotent on the code, lower-cased as WooCommerce keeps
them), products' categories for journey conditions, and `store_platform` choosing it for a WooCommerce shop."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from app.bootstrap import Container
from app.core.ports import DiscountRequest, ShopProfile
from app.db import models as t
from app.shops import store_platform
from app.simulator.woocommerce import WooCommerceSimulator
from connectors.woocommerce.client import WooCommerceClient, WooCommerceError
from connectors.woocommerce.platform import WooCommercePlatform, timezone_of

ENDS = datetime(2031, 5, 1, 12, 30, tzinfo=UTC)


@pytest.fixture
def sim(woocommerce_store: WooCommerceSimulator) -> WooCommerceSimulator:
    return woocommerce_store


@pytest.fixture
def platform(sim: WooCommerceSimulator) -> WooCommercePlatform:
    key = sim.add_key()
    return WooCommercePlatform(WooCommerceClient(sim.origin, key.consumer_key, key.consumer_secret,
                                                 sleep=lambda s: None, allow_private=True))


def coupons(sim: WooCommerceSimulator) -> dict[str, dict[str, object]]:
    return {c["code"]: c for c in sim.coupons.values()}


def calls(sim: WooCommerceSimulator, path: str) -> list[tuple[str, dict[str, str]]]:
    return [(method, query) for method, p, query in sim.requests if p == path]


# --- the profile ------------------------------------------------------------------------------------------


def test_the_profile_is_the_sites_name_zone_and_language_with_the_stores_currency(
        sim: WooCommerceSimulator, platform: WooCommercePlatform) -> None:
    sim.name, sim.currency, sim.timezone, sim.language = "Seoul Beans", "KRW", "Asia/Seoul", "ko_KR"
    assert platform.shop_profile() == ShopProfile(name="Seoul Beans", currency="KRW", timezone="Asia/Seoul",
                                                  locale="ko-KR")
    sim.timezone, sim.gmt_offset = "", 9  # WordPress's "UTC+9" choice: no zone name, an offset
    assert platform.shop_profile().timezone == "Etc/GMT-9"


def test_bare_offsets_become_etc_zones_and_what_has_none_is_utc() -> None:
    assert timezone_of({"timezone_string": "Europe/Paris", "gmt_offset": 1}) == "Europe/Paris"
    assert timezone_of({"timezone_string": "", "gmt_offset": -5}) == "Etc/GMT+5"
    assert timezone_of({"timezone_string": "", "gmt_offset": "5.5"}) == "UTC"  # no IANA name holds it
    assert timezone_of({}) == "UTC"


def test_a_site_that_hides_its_rest_index_still_has_a_profile(sim: WooCommerceSimulator) -> None:
    key = sim.add_key()
    client = WooCommerceClient(sim.origin, key.consumer_key, key.consumer_secret, sleep=lambda s: None, allow_private=True)
    profile = WooCommercePlatform(client, index=lambda url: {}).shop_profile()
    assert profile == ShopProfile(name=sim.origin.split("://")[1], currency="USD", timezone="UTC", locale="en-US")


# --- coupons ------------------------------------------------------------------------------------------------


def test_a_percent_code_is_a_lower_cased_single_use_coupon_for_the_customers_address(
        sim: WooCommerceSimulator, platform: WooCommercePlatform) -> None:
    found = platform.create_discount(DiscountRequest(
        code="COMEBACK-15", title="Come back: 15% off", percent_off=Decimal("15"), usage_limit=1, ends_at=ENDS,
        email="Ann@Example.com"))
    coupon = coupons(sim)["comeback-15"]
    assert found == str(coupon["id"])
    assert {k: coupon[k] for k in ("discount_type", "amount", "usage_limit", "individual_use", "date_expires_gmt",
                                   "email_restrictions", "free_shipping", "description")} == {
        "discount_type": "percent", "amount": "15", "usage_limit": 1, "individual_use": True,
        "date_expires_gmt": "2031-05-01T12:30:00", "email_restrictions": ["ann@example.com"],
        "free_shipping": False, "description": "Come back: 15% off"}
    assert calls(sim, "coupons") == [("POST", {})]


def test_an_amount_code_is_fixed_cart_and_free_shipping_is_asked_for(sim: WooCommerceSimulator,
                                                                     platform: WooCommercePlatform) -> None:
    platform.create_discount(DiscountRequest(code="TENOFF", title="10,000 won off", amount_off=Decimal("10000.00"),
                                             currency="KRW", usage_limit=3, free_shipping=True))
    platform.create_discount(DiscountRequest(code="SHIPFREE", title="Free shipping", free_shipping=True))
    held = coupons(sim)
    assert (held["tenoff"]["discount_type"], held["tenoff"]["amount"], held["tenoff"]["usage_limit"],
            held["tenoff"]["free_shipping"], held["tenoff"]["email_restrictions"],
            held["tenoff"]["date_expires_gmt"]) == ("fixed_cart", "10000.00", 3, True, [], None)
    assert (held["shipfree"]["discount_type"], held["shipfree"]["amount"], held["shipfree"]["free_shipping"]) == (
        "fixed_cart", "0", True)


def test_the_same_code_again_in_any_case_returns_the_coupon_already_there(sim: WooCommerceSimulator,
                                                                         platform: WooCommercePlatform) -> None:
    first = platform.create_discount(DiscountRequest(code="Summer20", title="first", percent_off=Decimal("20")))
    again = platform.create_discount(DiscountRequest(code="SUMMER20", title="retried", percent_off=Decimal("30")))
    assert again == first
    assert list(coupons(sim)) == ["summer20"]
    assert (coupons(sim)["summer20"]["amount"], coupons(sim)["summer20"]["description"]) == ("20", "first")
    assert calls(sim, "coupons") == [("POST", {}), ("POST", {}), ("GET", {"code": "summer20"})]


def test_different_codes_are_different_coupons(sim: WooCommerceSimulator, platform: WooCommercePlatform) -> None:
    a = platform.create_discount(DiscountRequest(code="A-1", title="a", percent_off=Decimal("10")))
    b = platform.create_discount(DiscountRequest(code="B-1", title="b", amount_off=Decimal("4.50")))
    assert a != b
    assert {k: str(v["id"]) for k, v in coupons(sim).items()} == {"a-1": a, "b-1": b}


def test_a_registered_customers_code_is_restricted_to_their_address(sim: WooCommerceSimulator,
                                                                   platform: WooCommercePlatform) -> None:
    mina = sim.add_customer("mina@example.com", "Mina", "Park")
    platform.create_discount(DiscountRequest(code="MINA-5", title="For Mina", percent_off=Decimal("5"),
                                             customer_id=str(mina["id"])))
    platform.create_discount(DiscountRequest(code="NOBODY-5", title="Unknown", percent_off=Decimal("5"),
                                             customer_id="999999"))
    platform.create_discount(DiscountRequest(code="GUEST-5", title="Guest", percent_off=Decimal("5"),
                                             customer_id="0"))
    held = coupons(sim)
    assert held["mina-5"]["email_restrictions"] == ["mina@example.com"]
    assert held["nobody-5"]["email_restrictions"] == [] and held["guest-5"]["email_restrictions"] == []
    assert [m for m, _ in calls(sim, f"customers/{mina['id']}")] == ["GET"]


@pytest.mark.parametrize("percent, amount", [(None, None), (Decimal("10"), Decimal("5.00"))])
def test_a_discount_needs_exactly_one_of_percent_and_amount(sim: WooCommerceSimulator, platform: WooCommercePlatform,
                                                            percent: Decimal | None, amount: Decimal | None) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        platform.create_discount(DiscountRequest(code="BAD", title="bad", percent_off=percent, amount_off=amount))
    assert coupons(sim) == {}


def test_other_errors_are_raised(sim: WooCommerceSimulator, platform: WooCommercePlatform) -> None:
    with pytest.raises(WooCommerceError) as caught:
        platform.create_discount(DiscountRequest(code="   ", title="empty", percent_off=Decimal("5")))
    assert caught.value.code == "woocommerce_rest_empty_coupon_code"


# --- categories -----------------------------------------------------------------------------------------------


def test_product_categories_are_read_as_slugs_and_every_id_is_answered(sim: WooCommerceSimulator,
                                                                       platform: WooCommercePlatform) -> None:
    papers = sim.add_product("Filter papers", categories=["Brewing Gear", "Coffee"])
    pid = str(papers["id"])
    assert platform.product_collections(["10", "11", pid, "424242", "not-woo"]) == {
        "10": frozenset({"kitchen"}), "11": frozenset({"coffee", "subscriptions"}),
        pid: frozenset({"brewing-gear", "coffee"}), "424242": frozenset(), "not-woo": frozenset()}
    assert [q["include"] for _, q in calls(sim, "products")] == [f"10,11,{pid},424242"]
    assert platform.product_collections([]) == {}


def test_many_products_are_read_a_hundred_at_a_time(sim: WooCommerceSimulator, platform: WooCommercePlatform) -> None:
    ids = [str(sim.add_product(f"Tea {n}", categories=["Tea"])["id"]) for n in range(130)]
    found = platform.product_collections(ids)
    assert found == dict.fromkeys(ids, frozenset({"tea"}))
    assert [len(q["include"].split(",")) for _, q in calls(sim, "products")] == [100, 30]


# --- the shop's platform ------------------------------------------------------------------------------------


def test_store_platform_gives_a_woocommerce_shop_its_rest_platform(container: Container,
                                                                   sim: WooCommerceSimulator) -> None:
    key = sim.add_key()
    with container.sessions() as s, s.begin():
        shop = t.Shop(platform="woocommerce", domain=sim.origin, installed_at=datetime.now(UTC),
                      api_key=container.vault.seal(key.consumer_key), api_secret=container.vault.seal(key.consumer_secret))
        s.add(shop)
        s.flush()
        shop_id = shop.id
    platform = store_platform(container, shop_id)
    assert isinstance(platform, WooCommercePlatform)
    made = platform.create_discount(DiscountRequest(code="WIRE-1", title="w", percent_off=Decimal("1")))
    assert coupons(sim)["wire-1"]["id"] == int(made)
    assert platform.product_collections(["11"]) == {"11": frozenset({"coffee", "subscriptions"})}
