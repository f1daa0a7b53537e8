"""In-memory stand-ins for the core's ports: fakes that record, never mocks.

FakeStorePlatform is held to the same contract as ShopifyPlatform (tests/contract/test_store_platform.py),
so it cannot drift from what the real store does.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from app.core.ports import DiscountRequest, ShopProfile


@dataclass(frozen=True)
class FakeDiscount:
    id: str
    request: DiscountRequest


class FakeStorePlatform:
    """A store that keeps its discount codes in a dict.

    Like Shopify, a code is unique per store regardless of case, and writing a code the store already
    holds is no error: the first discount stands and its id is returned again.
    """

    def __init__(self, profile: ShopProfile | None = None) -> None:
        self.profile = profile or ShopProfile(name="Fake Store", currency="USD", timezone="UTC", locale="en")
        self.discounts: dict[str, FakeDiscount] = {}  # by the code, lower-cased
        self.calls: list[str] = []
        self.collections: dict[str, frozenset[str]] = {}  # product id -> collection handles
        self._ids = itertools.count(1)

    def shop_profile(self) -> ShopProfile:
        self.calls.append("shop_profile")
        return self.profile

    def product_collections(self, product_ids: list[str]) -> dict[str, frozenset[str]]:
        self.calls.append("product_collections")
        return {p: self.collections.get(p, frozenset()) for p in product_ids}

    def create_discount(self, request: DiscountRequest) -> str:
        self.calls.append("create_discount")
        free_shipping_only = request.free_shipping and request.percent_off is None and request.amount_off is None
        if not free_shipping_only and (request.percent_off is None) == (request.amount_off is None):
            raise ValueError("a discount takes exactly one of percent_off and amount_off")
        key = request.code.lower()
        held = self.discounts.get(key)
        if held is None:
            held = self.discounts[key] = FakeDiscount(id=f"gid://fake/DiscountCodeNode/{next(self._ids)}",
                                                      request=request)
        return held.id
