"""ShopifyPlatform: the core's StorePlatform port, on the GraphQL Admin API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.core.ports import DiscountRequest, ShopProfile
from connectors.shopify.client import ShopifyClient, ShopifyUserErrors

SHOP_PROFILE = """
query ShopProfile { shop { name currencyCode ianaTimezone } shopLocales { locale primary } }
"""

DISCOUNT_CREATE = """
mutation DiscountCreate($discount: DiscountCodeBasicInput!) {
  discountCodeBasicCreate(basicCodeDiscount: $discount) {
    codeDiscountNode { id }
    userErrors { field code message }
  }
}
"""

DISCOUNT_BY_CODE = """
query DiscountByCode($code: String!) { codeDiscountNodeByCode(code: $code) { id } }
"""


class ShopifyPlatform:
    def __init__(self, client: ShopifyClient, shop: str, access_token: Callable[[], str]) -> None:
        self.client, self.shop, self._token = client, shop, access_token

    def _query(self, query: str, variables: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        return self.client.graphql(self.shop, self._token(), query, variables, **kw)

    def shop_profile(self) -> ShopProfile:
        data = self._query(SHOP_PROFILE)
        locales = data.get("shopLocales") or []
        primary = next((x["locale"] for x in locales if x.get("primary")), "en")
        shop = data["shop"]
        return ShopProfile(name=shop["name"], currency=shop["currencyCode"], timezone=shop["ianaTimezone"],
                           locale=primary)

    def create_discount(self, request: DiscountRequest) -> str:
        if (request.percent_off is None) == (request.amount_off is None):
            # Neither would send the amount "None" to Shopify; both would silently drop the amount.
            raise ValueError("a discount takes exactly one of percent_off and amount_off")
        value: dict[str, Any]
        if request.percent_off is not None:
            value = {"percentage": float(request.percent_off / 100)}
        else:
            value = {"discountAmount": {"amount": str(request.amount_off), "appliesOnEachItem": False}}
        customers: dict[str, Any] = {"all": True}
        if request.customer_id:
            customers = {"customers": {"add": [f"gid://shopify/Customer/{request.customer_id}"]}}
        discount = {
            "title": request.title, "code": request.code, "startsAt": None,
            "endsAt": request.ends_at.isoformat() if request.ends_at else None,
            "usageLimit": request.usage_limit, "appliesOncePerCustomer": True,
            "customerSelection": customers,
            "customerGets": {"value": value, "items": {"all": True}},
        }
        try:
            data = self._query(DISCOUNT_CREATE, {"discount": discount}, user_errors_at="discountCodeBasicCreate")
        except ShopifyUserErrors as exc:
            if not any(e.get("code") == "TAKEN" for e in exc.errors):
                raise
            # Written already (a retried job): the same code is the same discount.
            found = self._query(DISCOUNT_BY_CODE, {"code": request.code})["codeDiscountNodeByCode"]
            if not found:
                raise
            return str(found["id"])
        return str(data["discountCodeBasicCreate"]["codeDiscountNode"]["id"])
