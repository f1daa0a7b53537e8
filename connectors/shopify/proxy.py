"""Shopify app proxy requests: the storefront's calls to `/apps/<subpath>/...`, forwarded by Shopify with the
shop, the logged-in customer and a signature in the query string.

The signature (shopify.dev, "Authenticate app proxies") is the hex HMAC-SHA256, under the app's client secret,
of every query parameter but `signature`, each as `key=value` with repeated keys' values joined by commas,
sorted by key and concatenated with no separator. A request is refused when the signature does not match
under any of the app's secrets (a rotation keeps the old one for a while), or when its timestamp is more than
`MAX_SKEW` away from now (a replayed request).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass

MAX_SKEW = 90  # seconds either way, as Shopify's own libraries allow
_SHOP = re.compile(r"[a-z0-9][a-z0-9-]*\.myshopify\.com")
_CUSTOMER = re.compile(r"\d{1,20}")


class ProxyRejected(Exception):
    """Why a proxy request is not Shopify's (or no longer is): answered 401."""


@dataclass(frozen=True)
class ProxyRequest:
    shop: str
    customer_id: str | None  # None: nobody is logged in on the storefront
    path_prefix: str


def signing_message(params: Iterable[tuple[str, str]]) -> str:
    """What Shopify signs: each parameter as `key=value` (a repeated key's values joined by commas), these strings
    sorted, then concatenated. The finished strings are sorted, as Shopify's example does, not the keys: the two
    differ when one key is another plus a character below "=" (`a` and `a-b`)."""
    grouped: dict[str, list[str]] = {}
    for key, value in params:
        if key != "signature":
            grouped.setdefault(key, []).append(value)
    return "".join(sorted(f"{key}={','.join(values)}" for key, values in grouped.items()))


def sign(params: Iterable[tuple[str, str]], secret: str) -> str:
    return hmac.new(secret.encode(), signing_message(params).encode(), hashlib.sha256).hexdigest()


def verify(params: list[tuple[str, str]], secrets: tuple[str, ...], now: float) -> ProxyRequest:
    """The verified request, or ProxyRejected saying why."""
    given = [v for k, v in params if k == "signature"]
    if len(given) != 1 or not given[0]:
        raise ProxyRejected("no signature, or more than one")
    given_bytes = given[0].encode("utf-8", "replace")  # compare_digest raises TypeError on non-ASCII text
    if not any(hmac.compare_digest(sign(params, secret).encode(), given_bytes) for secret in secrets if secret):
        raise ProxyRejected("bad signature")
    values: dict[str, list[str]] = {}
    for key, value in params:
        values.setdefault(key, []).append(value)
    one = {k: v[0] for k, v in values.items() if len(v) == 1}
    try:
        stamp = int(one.get("timestamp", ""))
    except ValueError:
        raise ProxyRejected("no timestamp") from None
    if abs(now - stamp) > MAX_SKEW:
        raise ProxyRejected("stale request")
    shop = one.get("shop", "")
    if not _SHOP.fullmatch(shop):
        raise ProxyRejected("no shop")
    customer = one.get("logged_in_customer_id", "")
    if customer and not _CUSTOMER.fullmatch(customer):
        raise ProxyRejected("bad customer id")
    return ProxyRequest(shop, customer or None, one.get("path_prefix", ""))
