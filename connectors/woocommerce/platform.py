"""WooCommercePlatform: the core's StorePlatform port, on the WooCommerce REST API (wc/v3).

The shop's profile comes from two places, since wc/v3 names neither the site nor its time zone: the currency and
language from `system_status`, the site's name and time zone from WordPress's public REST index (`/wp-json/`,
WP_REST_Server::get_index: `name`, `timezone_string`, `gmt_offset`). Discounts are coupons; WooCommerce keeps a
coupon's code lower-cased (wc_format_coupon_code + wc_strtolower) and unique, so a code written twice is found
again by its code and the first coupon stands.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Any

import requests
import structlog

from app.core.ports import DiscountRequest, ShopProfile
from connectors.woocommerce.client import (
    PER_PAGE,
    WooCommerceClient,
    WooCommerceError,
    WooCommerceNotFound,
    WooCommerceRetryable,
)

log = structlog.get_logger(__name__)
CODE_EXISTS = "woocommerce_rest_coupon_code_already_exists"


def site_index(store_url: str, timeout: tuple[float, float] = (3.05, 30.0)) -> dict[str, Any]:
    """WordPress's REST index: public (no keys), outside the wc/v3 namespace the client is bound to. A site that
    hides it (401/403/404, or no JSON) answers {}; a network error or a 5xx is worth another try."""
    try:
        response = requests.get(f"{store_url.rstrip('/')}/wp-json/", timeout=timeout,
                                headers={"Accept": "application/json"})
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise WooCommerceRetryable(f"GET /wp-json/: {type(exc).__name__}") from None
    if response.status_code == 429 or response.status_code >= 500:
        raise WooCommerceRetryable(f"GET /wp-json/: HTTP {response.status_code}", status=response.status_code)
    if response.status_code >= 400:
        log.warning("woocommerce.site_index_hidden", status=response.status_code)
        return {}
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def timezone_of(index: dict[str, Any]) -> str:
    """The site's IANA zone; a bare UTC offset (WordPress's "UTC+9" choice) as the Etc zone of that offset, UTC
    when the offset is not whole hours (no IANA name holds it)."""
    name = index.get("timezone_string")
    if isinstance(name, str) and name.strip():
        return name.strip()
    try:
        hours = float(index.get("gmt_offset") or 0)
    except (TypeError, ValueError):
        return "UTC"
    if hours == 0 or hours != int(hours) or not -12 <= hours <= 14:
        return "UTC"
    return f"Etc/GMT{-int(hours):+d}"  # POSIX signs: Etc/GMT-9 is nine hours ahead of UTC


def locale_of(language: object) -> str:
    """get_locale()'s "ko_KR" as "ko-KR"; English when the store does not say."""
    return str(language).replace("_", "-") if isinstance(language, str) and language.strip() else "en"


def _number(value: Any) -> str:
    return format(value, "f")


class WooCommercePlatform:
    def __init__(self, client: WooCommerceClient, *,
                 index: Callable[[str], dict[str, Any]] | None = None) -> None:
        self.client = client
        self._index = index or (lambda url: site_index(url, client.timeout))

    def shop_profile(self) -> ShopProfile:
        status = self.client.system_status()
        index = self._index(self.client.store_url)
        environment, settings = status.get("environment") or {}, status.get("settings") or {}
        name = index.get("name")
        return ShopProfile(
            name=name if isinstance(name, str) and name else self.client.store_url.split("://", 1)[-1],
            currency=str(settings.get("currency") or "USD"), timezone=timezone_of(index),
            locale=locale_of(environment.get("language")))

    def _email_of(self, customer_id: str | None) -> str | None:
        """A registered customer's address, for a code only they may use; None for a guest or an unknown id."""
        if not customer_id or not customer_id.isdigit() or customer_id == "0":
            return None
        try:
            customer = self.client.get(f"customers/{customer_id}")
        except WooCommerceNotFound:
            return None
        email = customer.get("email") if isinstance(customer, dict) else None
        return str(email) if email else None

    def create_discount(self, request: DiscountRequest) -> str:
        """A coupon: percent or fixed_cart (fixed_product on one item for a free product), usable `usage_limit`
        times, on its own (individual_use), until `ends_at`, only by the customer's address when known, with free
        shipping when asked. The code as WooCommerce stores it (lower case); the same code again returns the
        coupon already there."""
        both = request.percent_off is not None and request.amount_off is not None
        neither = request.percent_off is None and request.amount_off is None
        if both or (neither and not request.free_shipping):
            raise ValueError("a discount takes exactly one of percent_off and amount_off")
        code = request.code.strip().lower()
        if request.percent_off is not None:
            discount_type, amount = "percent", _number(request.percent_off)
        else:
            discount_type, amount = "fixed_cart", _number(request.amount_off) if request.amount_off is not None else "0"
        extra: dict[str, Any] = {"description": request.title}
        if request.product_id:  # a free product: its price off one unit of it (fixed_product, one item)
            discount_type = "fixed_product"
            extra.update(product_ids=[int(request.product_id)], limit_usage_to_x_items=1)
        if request.free_shipping:
            extra["free_shipping"] = True
        email = request.email or self._email_of(request.customer_id)
        expires = request.ends_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") if request.ends_at else None
        try:
            made = self.client.create_coupon(code, amount=amount, discount_type=discount_type,
                                             usage_limit=request.usage_limit, individual_use=True,
                                             email_restrictions=[email.strip().lower()] if email else None,
                                             date_expires_gmt=expires, **extra)
        except WooCommerceError as exc:
            if exc.code != CODE_EXISTS:
                raise
            # Written already (a retried job): the same code is the same coupon.
            found = self.client.find_coupon(code)
            if not found:
                raise
            return str(found["id"])
        return str(made["id"])

    def product_collections(self, product_ids: list[str]) -> dict[str, frozenset[str]]:
        """Each product's category slugs, read with products?include= a hundred at a time. Every id asked is
        answered: a product the store lacks (or an id that is not WooCommerce's) is in no category."""
        asked = list(dict.fromkeys(p for p in product_ids if p.isdigit()))
        found: dict[str, frozenset[str]] = {}
        for start in range(0, len(asked), PER_PAGE):
            batch = asked[start:start + PER_PAGE]
            for page in self.client.pages("products", {"include": ",".join(batch), "per_page": PER_PAGE}):
                for product in page:
                    slugs = frozenset(str(c["slug"]) for c in product.get("categories") or [] if c.get("slug"))
                    found[str(product["id"])] = slugs
        return {pid: found.get(pid, frozenset()) for pid in product_ids}
