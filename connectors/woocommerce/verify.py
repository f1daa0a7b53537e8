"""WooCommerce webhook signatures: bytes and headers in, a verdict out. Pure; no exception crosses the boundary.

What WooCommerce sends is fixed by `WC_Webhook` (woocommerce/woocommerce,
plugins/woocommerce/includes/class-wc-webhook.php, read @ 77ab3bf50fd31885bc32cc7b557f8114406734e2):

* `deliver()` POSTs `trim( wp_json_encode( $payload ) )` with the headers X-WC-Webhook-Source (`home_url( '/' )`),
  -Topic, -Resource, -Event, -Signature, -ID and -Delivery-ID.
* `generate_signature()` is `base64_encode( hash_hmac( 'sha256', $payload, wp_specialchars_decode( $secret,
  ENT_QUOTES ), true ) )`: the base64 of the raw 32-byte digest, over the body exactly as sent. PHP escapes
  "/" as "\\/", so a body re-encoded by Python does not verify; only the raw bytes do. The key goes through
  `wp_specialchars_decode`, so Encore's webhook secrets must be URL-safe tokens (no & < > " '), for which that
  decoding changes nothing.
* Only the body is signed, not the headers. The source is bound anyway because each store has its own
  secret (a body signed for one store does not verify under another's); the topic is not, so a signed body
  replayed under another topic of the same store still verifies, and `translate` checks the body's shape.
* `get_new_delivery_id()` is `wp_hash( $webhook_id . strtotime( 'now' ) )`: one value per webhook per second,
  so two different deliveries in the same second share it. It cannot be the dedupe key (see `event_id`).
* `deliver_ping()` POSTs the unsigned form body `webhook_id=N`, with no X-WC-* header, when a webhook is
  created, and reports an error unless the answer is exactly 200 (see `parse_ping`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from connectors import payload
from connectors.base import Delivery, Headers, Rejection

_TOPIC = re.compile(r"[a-z0-9_-]{1,50}\.[a-z0-9_-]{1,100}")
_PING = re.compile(rb"webhook_id=([1-9][0-9]{0,18})")
_FORM = "application/x-www-form-urlencoded"


def header(headers: Headers, name: str) -> str | None:
    """Read X-WC-Webhook-<name>, case-insensitively, whether `headers` is a dict or the framework's headers."""
    return payload.header(headers, f"X-WC-Webhook-{name}")


# What `WC_Webhook::generate_signature` sends: base64 of the raw HMAC-SHA256 digest of the raw body.
webhook_signature = payload.b64_hmac
valid_signature = payload.valid_b64_hmac  # constant time, every given secret, an empty one never verifies


def normalize_store_url(url: str | None) -> str | None:
    """The store's base URL as Encore keys it: lower-case scheme and host, no default port, no trailing slash.

    X-WC-Webhook-Source is `home_url( '/' )`, e.g. "https://Shop.Example.com/" -> "https://shop.example.com".
    The path is kept: a WordPress in a subdirectory (or a subdirectory multisite) is a different store from
    its neighbour on the same host. Returns None for anything that is not a plain http(s) URL.
    """
    if not url or any(ch.isspace() or ord(ch) < 32 or ch == "\\" for ch in url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if scheme not in ("http", "https") or not host or parts.username is not None or parts.password is not None:
        return None
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


@dataclass(frozen=True)
class Envelope:
    """The X-WC-Webhook-* headers of one delivery, read but not trusted until the body's signature is."""

    source: str | None
    topic: str | None
    resource: str | None
    event: str | None
    webhook_id: str | None
    delivery_id: str | None


def envelope(headers: Headers) -> Envelope:
    source = header(headers, "Source")
    return Envelope(
        source=normalize_store_url(source.strip() if source else None),
        topic=(header(headers, "Topic") or "").strip().lower() or None,
        resource=(header(headers, "Resource") or "").strip().lower() or None,
        event=(header(headers, "Event") or "").strip().lower() or None,
        webhook_id=(header(headers, "ID") or "").strip() or None,
        delivery_id=(header(headers, "Delivery-ID") or "").strip() or None,
    )


def _resource_version(body: bytes) -> tuple[str, str] | None:
    try:
        data: Any = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    rid, modified = data.get("id"), data.get("date_modified_gmt")
    if isinstance(rid, bool) or not isinstance(rid, int | str) or not str(rid).strip():
        return None
    if not isinstance(modified, str) or not modified.strip():
        return None
    return str(rid).strip(), modified.strip()


def event_id(topic: str, body: bytes) -> str:
    """The dedupe key of one delivery (the inbox is unique on shop, topic and this).

    X-WC-Webhook-Delivery-ID cannot serve: it is a hash of the webhook id and the current second, shared by
    every delivery of that webhook within the second. WooCommerce never retries, so duplicates are the same
    resource delivered twice (several hooks of one topic firing in different requests, a resource saved
    twice). The key names the resource version: "<topic>:<id>:<date_modified_gmt>:<16 hex of the body's
    SHA-256>". The digest matters because `date_modified_gmt` has one-second resolution and asynchronous
    deliveries carry the resource as it is when sent: two real changes within one second would otherwise
    share a key, and the second, newer body would be dropped as a duplicate. Bodies without an id and a
    modification time (`*.deleted` sends only {"id": N}) fall back to "<topic>:sha256:<hex of the body>";
    the topic is part of it because order 7 and customer 7 deleted have the same body.
    """
    digest = hashlib.sha256(body).hexdigest()
    version = _resource_version(body)
    if version is None:
        return f"{topic}:sha256:{digest}"[:128]
    rid, modified = version
    return f"{topic}:{rid[:40]}:{modified[:40]}:{digest[:16]}"[:128]


def verify_webhook(body: bytes, headers: Headers, secret: str | tuple[str, ...]) -> Delivery | Rejection:
    """401 unless the body is signed with the store's secret; 400 unless the topic and source headers make sense.

    The caller finds the store, and so its secret, by `envelope(headers).source` first. A tuple of secrets
    covers a rotation (WooCommerce keeps one secret a webhook).
    """
    secrets = (secret,) if isinstance(secret, str) else secret
    if not valid_signature(body, header(headers, "Signature"), secrets):
        return Rejection(401, "invalid or missing X-WC-Webhook-Signature")
    env = envelope(headers)
    topic = env.topic or (f"{env.resource}.{env.event}" if env.resource and env.event else None)
    if env.source is None or topic is None or not _TOPIC.fullmatch(topic):
        return Rejection(400, "missing or invalid X-WC-Webhook-Source or X-WC-Webhook-Topic")
    if env.resource and env.event and topic != f"{env.resource}.{env.event}":
        return Rejection(400, "X-WC-Webhook-Topic disagrees with X-WC-Webhook-Resource and -Event")
    return Delivery(shop_domain=env.source, topic=topic, event_id=event_id(topic, body))


def parse_ping(body: bytes, content_type: str | None) -> int | None:
    """The webhook id of WooCommerce's creation ping (form body exactly `webhook_id=N`), else None (answer 400)."""
    if (content_type or "").split(";")[0].strip().lower() != _FORM:
        return None
    match = _PING.fullmatch(body)
    return int(match.group(1)) if match else None
