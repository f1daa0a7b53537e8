"""Shopify signatures: bytes and headers in, a verdict out. Pure; no exception crosses the boundary.

Checked against the vectors published in Shopify's own libraries (tests/contract/test_shopify_vectors.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import jwt
import shopify
from shopify import session_token
from shopify.utils import shop_url

from connectors import payload
from connectors.base import Delivery, Headers, Rejection


def header(headers: Headers, name: str) -> str | None:
    """A Shopify header under either spelling: X-Shopify-* (webhooks) or Shopify-* (Events), any case."""
    return payload.header(headers, f"X-Shopify-{name}", f"Shopify-{name}")


webhook_hmac = payload.b64_hmac
valid_webhook_hmac = payload.valid_b64_hmac  # constant time, current and old secret


def sanitize_shop(domain: str | None) -> str | None:
    """Return the shop's *.myshopify.com host, or None for anything else (ShopifyAPI's own check)."""
    if not domain or any(ch in domain for ch in "/?#@:\\ \t\r\n"):
        return None
    result: str | None = shop_url.sanitize_shop_domain(domain)
    return result


def verify_webhook(body: bytes, headers: Headers, secrets: tuple[str, ...]) -> Delivery | Rejection:
    if not valid_webhook_hmac(body, header(headers, "Hmac-Sha256"), secrets):
        return Rejection(401, "invalid or missing HMAC signature")
    shop = sanitize_shop(header(headers, "Shop-Domain"))
    topic = header(headers, "Topic")
    if shop is None or not topic:
        return Rejection(400, "missing shop domain or topic header")
    event_id = header(headers, "Event-Id") or header(headers, "Webhook-Id")
    if not event_id:
        event_id = "body:" + hashlib.sha256(body).hexdigest()
    return Delivery(shop_domain=shop, topic=topic, event_id=event_id[:128])


def _canonical_hmac(params: Mapping[str, Any], secret: str) -> str:
    """Shopify's canonical query signature, computed by ShopifyAPI's own Session.calculate_hmac."""
    signer: Any = type("Signer", (shopify.Session,), {"secret": secret})
    result: str = signer.calculate_hmac(dict(params))
    return result


def _encoded_hmac(params: Mapping[str, Any], secret: str) -> str:
    """The same signature over percent-encoded values (spaces as %20), as Shopify's JavaScript library
    computes it since its fix for values with spaces (shopify-app-js #2701)."""
    pairs = []
    for key, value in params.items():
        if key == "hmac":
            continue
        if key.endswith("[]"):
            key, value = key[:-2], json.dumps([str(v) for v in value])
        pairs.append(f"{quote(str(key), safe=_JS_SAFE)}={quote(str(value), safe=_JS_SAFE)}")
    return hmac.new(secret.encode(), "&".join(sorted(pairs)).encode(), hashlib.sha256).hexdigest()


_JS_SAFE = "!'()*"  # what encodeURIComponent leaves alone besides letters, digits and -_.~


def _signed(params: Mapping[str, Any], given: str, secrets: tuple[str, ...]) -> bool:
    """Shopify's libraries disagree on how values are escaped before signing; accept either form."""
    raw = given.encode("utf-8", "replace")  # compare_digest raises TypeError on non-ASCII text
    return any(hmac.compare_digest(sign(params, s).encode(), raw) for s in secrets for sign in (_canonical_hmac, _encoded_hmac))


def verify_query(params: Mapping[str, Any], secrets: tuple[str, ...], *, now: float | None = None,
                 window_s: int = 600) -> str | None:
    """Check an OAuth redirect's query: HMAC in canonical form, a fresh timestamp, a valid shop.

    Returns the shop domain when every check passes, else None.
    """
    given = str(params.get("hmac", ""))
    if not given or not _signed(params, given, secrets):
        return None
    try:
        stamp = int(params.get("timestamp", ""))
    except ValueError:
        return None
    if abs((time.time() if now is None else now) - stamp) > window_s:
        return None
    return sanitize_shop(str(params.get("shop", "")))


class SessionTokenError(Exception):
    pass


def decode_session_token(token: str, api_key: str, secrets: tuple[str, ...]) -> dict[str, Any]:
    """Decode an App Bridge session (ID) token: HS256 only, audience = our key, iss and dest the same shop.

    ShopifyAPI's decode_from_header does the checks (10 s leeway for App Bridge's early nbf).
    """
    last: Exception | None = None
    for secret in secrets:
        try:
            claims: dict[str, Any] = session_token.decode_from_header(f"Bearer {token}", api_key, secret)
            return claims
        except (session_token.SessionTokenError, jwt.PyJWTError) as exc:
            last = exc
    raise SessionTokenError(str(last))


def shop_from_claims(claims: Mapping[str, Any]) -> str | None:
    dest = str(claims.get("dest", ""))
    return sanitize_shop(dest.removeprefix("https://"))
