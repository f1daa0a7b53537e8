"""The storefront widget's API for WooCommerce stores, through the WordPress companion plugin.

WooCommerce has no app proxy, so the plugin plays that part (connectors/woocommerce/wordpress/encore/proxy.php):
the widget calls the store's REST route `encore/v1/proxy/<path>`, WordPress names the logged-in user from its
own cookie (with the `wp_rest` nonce), and the plugin forwards the request server to server to Encore's
`/proxy/<path>`, signed with the secret the store and Encore already share: the consumer secret of the REST key
WooCommerce's wc-auth created for Encore (`encore_key()` in the plugin, `Shop.api_secret` here, the secret
`app/wordpress.py` signs the admin's sign-in tokens with). A request is only as good as its signature: the
browser never reaches Encore this way, and the headers the browser sends the store are not forwarded.

The signing scheme (the plugin and Encore must agree byte for byte):

* Headers: `X-Encore-Store` = the store's home URL without a trailing slash (`untrailingslashit( home_url() )`),
  `X-Encore-Customer` = the logged-in WordPress user id (WooCommerce's customer id) in decimal, or empty when
  nobody is logged in, `X-Encore-Timestamp` = Unix seconds in decimal, `X-Encore-Signature` = lower-case hex of
  HMAC-SHA256 keyed with the consumer secret (its UTF-8 bytes) over the message below.
* Message: these eight fields, joined by one "\\n" (no trailing newline):
  `encore-proxy-v1`, the method in upper case, the path below Encore's address (`/proxy/loyalty`; each segment
  only of A-Z a-z 0-9 . _ ~ -, so it reads the same encoded or decoded), the query string exactly as sent after
  "?" (empty when none), the timestamp, the store, the customer, and lower-case hex SHA-256 of the body's bytes
  (of the empty string for a body-less GET).
* Encore refuses (401) a signature that does not match, a timestamp more than `MAX_SKEW` seconds away from its
  clock either way (a replayed request), or malformed headers; a store that is unknown, not connected or not
  WooCommerce is 404. Headers cannot carry "\\n", so no field can stand in for another.

The first field names the purpose, so nothing else signed with the same secret (the admin's JWTs) can pass for a
proxy request. `verify` is pure: the store's secret comes from the lookup it is given (`store_keys` reads the
database).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from app.db.models import Shop
from connectors import payload
from connectors.base import Headers
from connectors.woocommerce.verify import normalize_store_url

if TYPE_CHECKING:
    from app.bootstrap import Container

MAX_SKEW = 90  # seconds either way, as for Shopify's app proxy
PURPOSE = "encore-proxy-v1"
STORE, CUSTOMER, TIMESTAMP, SIGNATURE = "X-Encore-Store", "X-Encore-Customer", "X-Encore-Timestamp", "X-Encore-Signature"
_CUSTOMER = re.compile(r"[1-9][0-9]{0,19}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")


class ProxyRejected(Exception):
    """The request is not the store's plugin's (or no longer is): answered 401."""


class UnknownStore(Exception):
    """No connected WooCommerce store by that address: answered 404."""


@dataclass(frozen=True)
class StoreKey:
    """A connected WooCommerce store and the secret it signs with."""

    shop_id: int
    domain: str
    secret: str


@dataclass(frozen=True)
class ProxyRequest:
    shop_id: int
    domain: str
    customer_id: str | None  # None: nobody is logged in on the storefront


def signed_by_plugin(headers: Headers) -> bool:
    """Whether a request claims to come through the plugin (any of its headers), so it is verified that way."""
    return any(payload.header(headers, name) is not None for name in (STORE, CUSTOMER, TIMESTAMP, SIGNATURE))


def signing_message(method: str, path: str, query: bytes, timestamp: str, store: str, customer: str,
                    body: bytes) -> bytes:
    fields = [PURPOSE.encode(), method.encode(), path.encode(), query, timestamp.encode(), store.encode(),
              customer.encode(), hashlib.sha256(body).hexdigest().encode()]
    return b"\n".join(fields)


def sign(secret: str, method: str, path: str, query: bytes, timestamp: str, store: str, customer: str,
         body: bytes) -> str:
    message = signing_message(method, path, query, timestamp, store, customer, body)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _headers(headers: Headers) -> tuple[str, str, str, str]:
    """(store, customer, timestamp, signature) as sent, or ProxyRejected when one is missing or malformed."""
    store, customer = payload.header(headers, STORE), payload.header(headers, CUSTOMER)
    timestamp, signature = payload.header(headers, TIMESTAMP), payload.header(headers, SIGNATURE)
    if store is None or customer is None or timestamp is None or signature is None:
        raise ProxyRejected(f"a request through the plugin carries {STORE}, {CUSTOMER}, {TIMESTAMP} and {SIGNATURE}")
    if not _SIGNATURE.fullmatch(signature):
        raise ProxyRejected("malformed signature")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise ProxyRejected("malformed timestamp")
    if customer and not _CUSTOMER.fullmatch(customer):
        raise ProxyRejected("bad customer id")
    return store, customer, timestamp, signature


def _plain_path(path: str) -> bool:
    """"/a/b": segments of unreserved characters, none of them "." or ".." (the plugin forwards no other)."""
    segments = path.split("/")
    return segments[0] == "" and len(segments) > 1 and all(
        _SEGMENT.fullmatch(seg) and seg not in (".", "..") for seg in segments[1:])


def verify(method: str, path: str, query: bytes, body: bytes, headers: Headers,
           find: Callable[[str], StoreKey | None], now: float) -> ProxyRequest:
    """The verified request, or ProxyRejected / UnknownStore saying why. `find` takes a normalized store URL."""
    store, customer, timestamp, signature = _headers(headers)
    if abs(now - int(timestamp)) > MAX_SKEW:
        raise ProxyRejected("stale request")
    if not _plain_path(path) or b"\n" in query:
        raise ProxyRejected("malformed path or query")
    domain = normalize_store_url(store)
    key = find(domain) if domain is not None else None
    if key is None:
        raise UnknownStore("Encore is not installed on this store")
    expected = sign(key.secret, method.upper(), path, query, timestamp, store, customer, body)
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise ProxyRejected("bad signature")
    return ProxyRequest(key.shop_id, key.domain, customer or None)


def store_keys(c: Container) -> Callable[[str], StoreKey | None]:
    """The lookup `verify` needs: the installed WooCommerce store at a normalized URL and its consumer secret."""
    def find(domain: str) -> StoreKey | None:
        with c.sessions() as s:
            shop = s.scalars(select(Shop).where(Shop.platform == "woocommerce", Shop.domain == domain)).first()
            if shop is None or not shop.installed:
                return None
            secret = c.vault.open(shop.api_secret)
            return StoreKey(shop.id, shop.domain, secret) if secret else None

    return find
