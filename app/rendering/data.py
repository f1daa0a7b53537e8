"""The render context as the plain data a template sees: dicts, lists, strings, numbers, aware datetimes.

Money becomes `Amount` (a Decimal that carries its currency); a URL that is not http(s) becomes None, so a
`javascript:` or `data:` link from a platform payload never reaches an href. Everything a template may use is
listed here; `VARIABLES` is what validation accepts as top-level names.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from app.rendering.context import Category, LineItem, RenderContext
from app.rendering.formatting import Amount, Formatter, display_name

VARIABLES = frozenset(
    {"shop", "customer", "order", "checkout", "code", "recommendations", "links", "points", "tier", "message"}
)


def safe_url(url: str | None) -> str | None:
    return _safe_url(url) if url else None


@lru_cache(maxsize=4096)  # a shop's product, image and store links come up in message after message
def _safe_url(url: str) -> str | None:
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or any(c in url for c in "\r\n\t "):
        return None
    return url


def default_currency(context: RenderContext) -> str:
    if context.order is not None:
        return context.order.currency
    if context.checkout is not None and context.checkout.currency:
        return context.checkout.currency
    return context.shop.currency


def _money(value: Decimal | None, currency: str) -> Amount | None:
    return None if value is None else Amount(value, currency)


def _lines(lines: tuple[LineItem, ...], currency: str) -> list[dict[str, Any]]:
    return [
        {
            "title": line.title,
            "variant": line.variant,
            "quantity": line.quantity,
            "unit_price": Amount(line.unit_price, currency),
            "total": Amount(line.total, currency),
            "product_url": safe_url(line.product_url),
            "image_url": safe_url(line.image_url),
            "guide_url": safe_url(line.guide_url),
        }
        for line in lines
    ]


def template_data(
    context: RenderContext, fmt: Formatter, *, category: Category = "transactional", journey: str = "", subject: str = ""
) -> dict[str, Any]:
    shop, customer = context.shop, context.customer
    data: dict[str, Any] = {
        "shop": {
            "name": shop.name,
            "currency": shop.currency,
            "support_email": shop.support_email,
            "url": safe_url(shop.url),
            "logo_url": safe_url(shop.logo_url),
            "address": shop.address,
        },
        "customer": {
            "first_name": customer.first_name,
            "last_name": customer.last_name,
            "display_name": display_name(customer.first_name, customer.last_name, fmt.language),
            "email": customer.email,
            "locale": str(fmt.locale),
            "timezone": str(fmt.tz.key),
        },
        "order": None,
        "checkout": None,
        "code": None,
        "recommendations": [
            {
                "title": r.title,
                "url": safe_url(r.url),
                "image_url": safe_url(r.image_url),
                "price": _money(r.price, r.currency or shop.currency),
            }
            for r in context.recommendations
            if safe_url(r.url)  # a recommendation is a link; without a usable one it is left out
        ],
        "links": {
            "survey": safe_url(context.links.survey),
            "review": safe_url(context.links.review),
            "preferences": safe_url(context.links.preferences),
            "unsubscribe": safe_url(context.links.unsubscribe),
            "referral": safe_url(context.links.referral),
        },
        "points": None,
        "tier": None,
        "message": {"category": category, "language": fmt.language, "journey": journey, "subject": subject},
    }
    if (order := context.order) is not None:
        tracking = order.tracking
        data["order"] = {
            "name": order.name,
            "total": Amount(order.total, order.currency),
            "subtotal": Amount(order.subtotal, order.currency),
            "currency": order.currency,
            "created_at": order.created_at,
            "status_url": safe_url(order.status_url),
            "lines": _lines(order.lines, order.currency),
            "tracking": None
            if tracking is None
            else {"company": tracking.company, "number": tracking.number, "url": safe_url(tracking.url)},
        }
    if (checkout := context.checkout) is not None:
        currency = checkout.currency or shop.currency
        data["checkout"] = {
            "lines": _lines(checkout.lines, currency),
            "recovery_url": safe_url(checkout.recovery_url),
            "currency": currency,
            "total": _money(checkout.total, currency),
        }
    if (code := context.code) is not None:
        currency = code.currency or shop.currency
        value: Decimal | None = code.value
        if code.kind == "amount" and value is not None:
            value = Amount(value, currency)
        data["code"] = {
            "code": code.code,
            "kind": code.kind,
            "value": value,
            "description": fmt.offer(code.kind, code.value, currency),
            "expires_at": code.expires_at,
        }
    if (points := context.points) is not None:
        data["points"] = {"balance": points.balance, "expiring": points.expiring, "expires_at": points.expires_at}
    if (tier := context.tier) is not None:
        data["tier"] = {"old": tier.old, "new": tier.new, "upgraded": tier.upgraded, "perks": list(tier.perks)}
    return data
