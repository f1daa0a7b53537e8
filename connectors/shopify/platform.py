"""ShopifyPlatform: the core's StorePlatform port, on the GraphQL Admin API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.core.ports import DiscountRequest, ShopProfile
from connectors.shopify.client import ShopifyClient, ShopifyUserErrors

# Tries per discount write: rewards and referrals retry a busy store on their own schedule (app/core/backoff.py).
WRITE_ATTEMPTS = 2

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

FREE_SHIPPING_CREATE = """
mutation FreeShippingCreate($discount: DiscountCodeFreeShippingInput!) {
  discountCodeFreeShippingCreate(freeShippingCodeDiscount: $discount) {
    codeDiscountNode { id }
    userErrors { field code message }
  }
}
"""

DISCOUNT_BY_CODE = """
query DiscountByCode($code: String!) { codeDiscountNodeByCode(code: $code) { id } }
"""

PRODUCT_COLLECTIONS = """
query ProductCollections($ids: [ID!]!) {
  nodes(ids: $ids) { ... on Product { id collections(first: 50) { nodes { handle } } } }
}
"""
# A product with its first 50 collections costs about 1 + (2 + 50) points: 15 of them stay well under the
# 1,000-point ceiling of a single query.
COLLECTIONS_BATCH = 15
PRODUCT_COST = 53
PRODUCT_GID = "gid://shopify/Product/"


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
        """A basic code discount (percent or amount off), or a free-shipping one for a request with free
        shipping and neither. Shopify holds free shipping as a discount of its own kind: a request for an
        amount off *and* free shipping is written as the amount off only."""
        if request.free_shipping and request.percent_off is None and request.amount_off is None:
            return self._free_shipping(request)
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
        items: dict[str, Any] = {"all": True}
        if request.product_id:  # a free product: one unit's price off, on that product only
            items = {"products": {"productsToAdd": [f"gid://shopify/Product/{request.product_id}"]}}
        discount = {
            "title": request.title, "code": request.code, "startsAt": None,
            "endsAt": request.ends_at.isoformat() if request.ends_at else None,
            "usageLimit": request.usage_limit, "appliesOncePerCustomer": True,
            "customerSelection": customers,
            "customerGets": {"value": value, "items": items},
        }
        return self._write(DISCOUNT_CREATE, "discountCodeBasicCreate", discount, request.code)

    def _free_shipping(self, request: DiscountRequest) -> str:
        customers: dict[str, Any] = {"all": True}
        if request.customer_id:
            customers = {"customers": {"add": [f"gid://shopify/Customer/{request.customer_id}"]}}
        discount = {
            "title": request.title, "code": request.code, "startsAt": None,
            "endsAt": request.ends_at.isoformat() if request.ends_at else None,
            "usageLimit": request.usage_limit, "appliesOncePerCustomer": True,
            "customerSelection": customers, "destination": {"all": True},
        }
        return self._write(FREE_SHIPPING_CREATE, "discountCodeFreeShippingCreate", discount, request.code)

    def _write(self, mutation: str, field: str, discount: dict[str, Any], code: str) -> str:
        try:
            # Two tries here: a busy store is asked again on the caller's own schedule (app/core/backoff.py).
            data = self._query(mutation, {"discount": discount}, user_errors_at=field, attempts=WRITE_ATTEMPTS)
        except ShopifyUserErrors as exc:
            if not any(e.get("code") == "TAKEN" for e in exc.errors):
                raise
            # Written already (a retried job): the same code is the same discount.
            found = self._query(DISCOUNT_BY_CODE, {"code": code})["codeDiscountNodeByCode"]
            if not found:
                raise
            return str(found["id"])
        return str(data[field]["codeDiscountNode"]["id"])

    def product_collections(self, product_ids: list[str]) -> dict[str, frozenset[str]]:
        """Each product's collection handles, read with `nodes(ids:)` in batches; ids are the numeric ones Encore
        stores (a full gid is accepted too) and answered under the id given. A product the store does not have
        (a null node) is in no collection."""
        def gid(pid: str) -> str:
            return pid if pid.startswith("gid://") else f"{PRODUCT_GID}{pid}"

        found: dict[str, frozenset[str]] = {}
        asked = list(dict.fromkeys(gid(pid) for pid in product_ids))
        for start in range(0, len(asked), COLLECTIONS_BATCH):
            batch = asked[start:start + COLLECTIONS_BATCH]
            data = self._query(PRODUCT_COLLECTIONS, {"ids": batch}, expected_cost=len(batch) * PRODUCT_COST)
            for node in data.get("nodes") or []:
                if not node or not node.get("id"):
                    continue
                handles = (node.get("collections") or {}).get("nodes") or []
                found[str(node["id"])] = frozenset(str(c["handle"]) for c in handles if c and c.get("handle"))
        return {pid: found.get(gid(pid), frozenset()) for pid in product_ids}
