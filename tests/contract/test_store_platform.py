"""One contract for the StorePlatform port, held by the in-memory fake and by ShopifyPlatform over HTTP.

Every test lives in StorePlatformContract; each implementation only says how to build itself and how to
read back what the store holds. A behaviour the fake has and Shopify lacks (or the reverse) fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from app.core.ports import DiscountRequest, ShopProfile, StorePlatform
from app.simulator.shopify import ShopifySimulator
from connectors.shopify.client import ShopifyClient
from connectors.shopify.platform import ShopifyPlatform
from tests.conftest import API_KEY, API_SECRET
from tests.fakes import FakeStorePlatform

SHOP = "contract-store.myshopify.com"
PROFILE = ShopProfile(name="Contract Store", currency="KRW", timezone="Asia/Seoul", locale="ko")
ENDS = datetime(2031, 5, 1, 12, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Held:
    """A discount as the store holds it, in one shape for every platform."""

    id: str
    code: str
    title: str
    percent_off: Decimal | None
    amount_off: Decimal | None
    customers: tuple[str, ...] | None  # None: every customer
    usage_limit: int | None
    ends_at: datetime | None


class StorePlatformContract:
    """What the core may rely on from any store. Subclasses provide `platform` and `held`."""

    @pytest.fixture
    def platform(self) -> StorePlatform:
        raise NotImplementedError

    def held(self) -> dict[str, Held]:
        """Every discount the store holds, by lower-cased code."""
        raise NotImplementedError

    # --- the contract ------------------------------------------------------------------------------------

    def test_shop_profile_is_the_stores_name_currency_timezone_and_locale(self, platform: StorePlatform) -> None:
        assert platform.shop_profile() == PROFILE

    def test_a_percent_discount_is_held_by_the_store_under_the_returned_id(self, platform: StorePlatform) -> None:
        found = platform.create_discount(DiscountRequest(code="COMEBACK15", title="Come back: 15% off",
                                                         percent_off=Decimal("15"), usage_limit=1, ends_at=ENDS))
        assert isinstance(found, str) and found
        assert self.held() == {"comeback15": Held(id=found, code="COMEBACK15", title="Come back: 15% off",
                                                  percent_off=Decimal("15"), amount_off=None, customers=None,
                                                  usage_limit=1, ends_at=ENDS)}

    def test_an_amount_discount_is_held_with_its_amount(self, platform: StorePlatform) -> None:
        found = platform.create_discount(DiscountRequest(code="TENOFF", title="10,000 won off",
                                                         amount_off=Decimal("10000.00"), currency="KRW",
                                                         usage_limit=3))
        held = self.held()["tenoff"]
        assert (held.id, held.percent_off, held.amount_off, held.usage_limit, held.ends_at) == (
            found, None, Decimal("10000.00"), 3, None)

    def test_a_customer_limited_discount_names_the_customer(self, platform: StorePlatform) -> None:
        platform.create_discount(DiscountRequest(code="MINA-5", title="For Mina", percent_off=Decimal("5"),
                                                 customer_id="7001"))
        platform.create_discount(DiscountRequest(code="EVERYONE-5", title="For all", percent_off=Decimal("5")))
        held = self.held()
        assert held["mina-5"].customers == ("7001",)
        assert held["everyone-5"].customers is None

    def test_the_same_code_twice_returns_the_same_id_and_is_held_once(self, platform: StorePlatform) -> None:
        first = platform.create_discount(DiscountRequest(code="ONCE10", title="first", percent_off=Decimal("10")))
        again = platform.create_discount(DiscountRequest(code="ONCE10", title="retried", percent_off=Decimal("20")))
        assert again == first
        held = self.held()
        assert list(held) == ["once10"]
        assert (held["once10"].title, held["once10"].percent_off) == ("first", Decimal("10"))  # the first stands

    def test_codes_are_one_code_whatever_their_case(self, platform: StorePlatform) -> None:
        first = platform.create_discount(DiscountRequest(code="Summer20", title="s", percent_off=Decimal("20")))
        assert platform.create_discount(DiscountRequest(code="SUMMER20", title="s", percent_off=Decimal("20"))) == first
        assert list(self.held()) == ["summer20"]

    def test_different_codes_are_different_discounts(self, platform: StorePlatform) -> None:
        a = platform.create_discount(DiscountRequest(code="A-1", title="a", percent_off=Decimal("10")))
        b = platform.create_discount(DiscountRequest(code="B-1", title="b", amount_off=Decimal("4.50")))
        assert a != b
        assert {k: v.id for k, v in self.held().items()} == {"a-1": a, "b-1": b}

    @pytest.mark.parametrize("percent, amount", [(None, None), (Decimal("10"), Decimal("5.00"))])
    def test_a_discount_needs_exactly_one_of_percent_and_amount(self, platform: StorePlatform,
                                                                percent: Decimal | None,
                                                                amount: Decimal | None) -> None:
        with pytest.raises(ValueError, match="exactly one"):
            platform.create_discount(DiscountRequest(code="BAD", title="bad", percent_off=percent, amount_off=amount))
        assert self.held() == {}


# --- the fake ----------------------------------------------------------------------------------------------


class TestFakeStorePlatform(StorePlatformContract):
    @pytest.fixture
    def platform(self) -> StorePlatform:
        self.fake = FakeStorePlatform(PROFILE)
        return self.fake

    def held(self) -> dict[str, Held]:
        return {key: Held(id=d.id, code=d.request.code, title=d.request.title, percent_off=d.request.percent_off,
                          amount_off=d.request.amount_off,
                          customers=(d.request.customer_id,) if d.request.customer_id else None,
                          usage_limit=d.request.usage_limit, ends_at=d.request.ends_at)
                for key, d in self.fake.discounts.items()}


# --- Shopify, over HTTP against the store simulator ----------------------------------------------------


@pytest.fixture(scope="module")
def simulator(shopify_store: ShopifySimulator) -> ShopifySimulator:
    return shopify_store


def _held_from_simulator(raw: dict[str, Any]) -> Held:
    value = raw["customerGets"]["value"]
    percent = Decimal(str(value["percentage"])) * 100 if "percentage" in value else None
    amount = Decimal(value["discountAmount"]["amount"]) if "discountAmount" in value else None
    selection = raw["customerSelection"]
    customers = None if selection.get("all") else tuple(
        gid.removeprefix("gid://shopify/Customer/") for gid in selection["customers"]["add"])
    ends = datetime.fromisoformat(raw["endsAt"]) if raw.get("endsAt") else None
    return Held(id=raw["id"], code=raw["code"], title=raw["title"], percent_off=percent, amount_off=amount,
                customers=customers, usage_limit=raw.get("usageLimit"), ends_at=ends)


class TestShopifyPlatform(StorePlatformContract):
    @pytest.fixture
    def platform(self, simulator: ShopifySimulator) -> Iterator[StorePlatform]:
        simulator.stores.pop(SHOP, None)
        simulator.faults.clear()
        simulator.add_store(SHOP, name=PROFILE.name, currency=PROFILE.currency, timezone=PROFILE.timezone,
                            locale=PROFILE.locale)
        client = ShopifyClient(api_key=API_KEY, api_secret=API_SECRET, shop_origin=simulator.shop_origin_template,
                               sleep=lambda s: None)
        tokens = client.exchange_id_token(SHOP, simulator.session_token(SHOP))
        self.sim = simulator
        yield ShopifyPlatform(client, SHOP, lambda: tokens.access_token)
        simulator.stores.pop(SHOP, None)

    def held(self) -> dict[str, Held]:
        return {key: _held_from_simulator(raw) for key, raw in self.sim.stores[SHOP].discounts.items()}

    def test_the_store_is_reached_over_http(self, platform: StorePlatform) -> None:
        """Not part of the contract: proves this subclass really talks to the simulator."""
        before = len(self.sim.graphql_calls)
        platform.create_discount(DiscountRequest(code="WIRE", title="w", percent_off=Decimal("1")))
        assert len(self.sim.graphql_calls) == before + 1
        assert "discountCodeBasicCreate" in self.sim.graphql_calls[-1]
