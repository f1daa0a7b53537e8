"""Contract tests for connectors/woocommerce/verify.py on a real WooCommerce delivery and WooCommerce's own code.

Sources:

* CAPTURE = shared/samples/woocommerce/order-created.body.json and order-created.headers.json: an order.created
  delivery from WooCommerce 9.4.0 on WordPress 6.5.5, body byte for byte as sent, webhook secret
  `test-secret-123`; shared/samples/woocommerce/ping.json: the ping a new webhook sends (shared/samples/README.md).
* WC = woocommerce/woocommerce, plugins/woocommerce/includes/class-wc-webhook.php
  @ 77ab3bf50fd31885bc32cc7b557f8114406734e2 (the same code @ 00e1bc4da70f83469010330e589878684c73a921):
  `generate_signature( $payload )` is
  `base64_encode( hash_hmac( 'sha256', $payload, wp_specialchars_decode( $this->get_secret(), ENT_QUOTES ), true ) )`
  and `deliver()` signs `$http_args['body'] = trim( wp_json_encode( $payload ) )`, the bytes it sends;
  `get_new_delivery_id()` is `wp_hash( $this->get_id() . strtotime( 'now' ) )`; `deliver_ping()` posts
  `'webhook_id=' . $this->get_id()`.
* WC-TEST = woocommerce/woocommerce, plugins/woocommerce/tests/legacy/unit-tests/webhooks/crud.php
  @ 6147c5e685a97beb873ac2548044cf04d2a48a66, `test_generate_signature`: a new WC_Webhook (secret '') signs
  the payload 'secret' as 'GBDo00G55h6IiV+6CxqivQPLbI//KzaOZm747971tPs='.

Values no source publishes are computed here with independent stdlib code (`stdlib_signature`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from werkzeug.datastructures import Headers

from connectors.base import Delivery, Rejection
from connectors.woocommerce import verify

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "woocommerce"  # copies of shared/samples/woocommerce
BODY = (SAMPLES / "order-created.body.json").read_bytes()
CAPTURED = json.loads((SAMPLES / "order-created.headers.json").read_text())
HEADERS: dict[str, str] = CAPTURED["headers"]
SECRET = "test-secret-123"
SIGNATURE = "gbG1TUJIB5NPnqc6acPzETuvjndk5fmG18GJUMHd+Jk="  # CAPTURE: X-WC-Webhook-Signature
PING = json.loads((SAMPLES / "ping.json").read_text())

MODIFIED = b'"date_modified_gmt":"2026-11-23T08:00:54"'  # CAPTURE: the order version's modification time


def stdlib_signature(body: bytes, secret: str) -> str:
    """Independent stdlib HMAC (what `openssl dgst -sha256 -hmac SECRET -binary | base64` prints)."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def signed(body: bytes, **changes: str) -> dict[str, str]:
    """The captured headers, re-signed for `body` with the captured secret, with some headers changed."""
    return {**HEADERS, "X-WC-Webhook-Signature": stdlib_signature(body, SECRET), **changes}


def test_the_capture_is_what_the_sample_says() -> None:
    assert len(BODY) == int(HEADERS["Content-Length"]) == 1816  # exactly the bytes sent: trim()med, no newline
    assert HEADERS["X-WC-Webhook-Signature"] == SIGNATURE and CAPTURED["webhook_secret"] == SECRET


# ---------------------------------------------------------------------------------------------------------
# The signature: WooCommerce's generate_signature()
# ---------------------------------------------------------------------------------------------------------


def test_webhook_signature_reproduces_the_captured_header() -> None:
    assert verify.webhook_signature(BODY, SECRET) == SIGNATURE


def test_webhook_signature_matches_woocommerces_own_unit_test() -> None:
    # WC-TEST: hash_hmac( 'sha256', 'secret', '' ): the payload is the message and the secret the key.
    assert verify.webhook_signature(b"secret", "") == "GBDo00G55h6IiV+6CxqivQPLbI//KzaOZm747971tPs="
    assert verify.webhook_signature(b"", "secret") != "GBDo00G55h6IiV+6CxqivQPLbI//KzaOZm747971tPs="


def test_webhook_signature_is_base64_of_the_raw_digest_not_of_its_hex() -> None:
    # WC: hash_hmac( ..., true ) returns the raw 32 bytes, which base64_encode turns into 44 characters.
    raw = hmac.new(SECRET.encode(), BODY, hashlib.sha256).digest()
    assert base64.b64decode(verify.webhook_signature(BODY, SECRET)) == raw
    assert len(SIGNATURE) == 44
    hex_form = base64.b64encode(hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest().encode()).decode()
    assert verify.verify_webhook(BODY, {**HEADERS, "X-WC-Webhook-Signature": hex_form}, SECRET) == Rejection(
        401, "invalid or missing X-WC-Webhook-Signature")


def test_the_signature_covers_the_raw_bytes_not_the_json_they_encode() -> None:
    # WC: the signed string is wp_json_encode's output, which escapes "/" as "\/" (see payment_url in CAPTURE).
    # The same JSON re-encoded by Python has other bytes, and another signature.
    reencoded = json.dumps(json.loads(BODY), separators=(",", ":")).encode()
    assert json.loads(reencoded) == json.loads(BODY)
    assert b"http:\\/\\/127.0.0.1:8080\\/checkout" in BODY and b"\\/" not in reencoded
    assert verify.webhook_signature(reencoded, SECRET) != SIGNATURE
    assert isinstance(verify.verify_webhook(reencoded, HEADERS, SECRET), Rejection)


# ---------------------------------------------------------------------------------------------------------
# verify_webhook
# ---------------------------------------------------------------------------------------------------------


def test_the_captured_delivery_verifies() -> None:
    digest = hashlib.sha256(BODY).hexdigest()
    assert verify.verify_webhook(BODY, HEADERS, SECRET) == Delivery(
        shop_domain="http://127.0.0.1:8080", topic="order.created",
        event_id=f"order.created:11:2026-11-23T08:00:54:{digest[:16]}",
    )


@pytest.mark.parametrize("position", [0, 1, 900, len(BODY) - 1])
def test_one_changed_byte_is_rejected(position: int) -> None:
    body = bytearray(BODY)
    body[position] ^= 0x01
    assert verify.verify_webhook(bytes(body), HEADERS, SECRET) == Rejection(401, "invalid or missing X-WC-Webhook-Signature")


def test_a_trailing_newline_is_a_changed_body() -> None:
    assert verify.verify_webhook(BODY + b"\n", HEADERS, SECRET) == Rejection(401, "invalid or missing X-WC-Webhook-Signature")


@pytest.mark.parametrize("secret", ["test-secret-124", "Test-secret-123", "test-secret-123 ", "other"])
def test_a_wrong_secret_is_rejected(secret: str) -> None:
    assert verify.verify_webhook(BODY, HEADERS, secret) == Rejection(401, "invalid or missing X-WC-Webhook-Signature")


def test_an_empty_secret_never_verifies_even_a_body_signed_with_it() -> None:
    forged = {**HEADERS, "X-WC-Webhook-Signature": stdlib_signature(BODY, "")}
    assert verify.verify_webhook(BODY, forged, "") == Rejection(401, "invalid or missing X-WC-Webhook-Signature")


@pytest.mark.parametrize("value", [None, "", "   "])
def test_a_missing_or_empty_signature_header_is_rejected(value: str | None) -> None:
    headers = {k: v for k, v in HEADERS.items() if k != "X-WC-Webhook-Signature"}
    if value is not None:
        headers["X-WC-Webhook-Signature"] = value
    assert verify.verify_webhook(BODY, headers, SECRET) == Rejection(401, "invalid or missing X-WC-Webhook-Signature")


def test_the_ping_is_not_a_signed_delivery() -> None:
    # CAPTURE ping.json: no X-WC-* header at all; the route must try parse_ping for it.
    assert verify.verify_webhook(PING["body"].encode(), PING["headers"], SECRET) == Rejection(
        401, "invalid or missing X-WC-Webhook-Signature")


@pytest.mark.parametrize("case", [str.lower, str.upper])
def test_header_names_are_case_insensitive(case: Callable[[str], str]) -> None:
    headers = {case(k): v for k, v in HEADERS.items()}
    assert "X-WC-Webhook-Signature" not in headers
    delivery = verify.verify_webhook(BODY, headers, SECRET)
    assert isinstance(delivery, Delivery)
    assert (delivery.shop_domain, delivery.topic) == ("http://127.0.0.1:8080", "order.created")


def test_the_frameworks_headers_work_too() -> None:
    delivery = verify.verify_webhook(BODY, Headers(list(HEADERS.items())), SECRET)
    assert delivery == verify.verify_webhook(BODY, HEADERS, SECRET)
    assert isinstance(delivery, Delivery)


def test_the_old_secret_still_verifies_while_rotating() -> None:
    assert isinstance(verify.verify_webhook(BODY, HEADERS, ("new-secret-456", SECRET)), Delivery)
    assert isinstance(verify.verify_webhook(BODY, HEADERS, ("new-secret-456",)), Rejection)


@pytest.mark.parametrize("changes", [
    {"X-WC-Webhook-Source": ""},
    {"X-WC-Webhook-Source": "ftp://127.0.0.1/"},
    {"X-WC-Webhook-Source": "not a url"},
    {"X-WC-Webhook-Topic": "order", "X-WC-Webhook-Resource": "", "X-WC-Webhook-Event": ""},
    {"X-WC-Webhook-Topic": "order.updated"},  # disagrees with Resource "order" + Event "created"
])
def test_signed_but_unusable_headers_are_a_bad_request(changes: dict[str, str]) -> None:
    verdict = verify.verify_webhook(BODY, {**HEADERS, **changes}, SECRET)
    assert isinstance(verdict, Rejection) and verdict.status == 400


def test_a_missing_topic_is_rebuilt_from_resource_and_event() -> None:
    headers = {k: v for k, v in HEADERS.items() if k != "X-WC-Webhook-Topic"}
    delivery = verify.verify_webhook(BODY, headers, SECRET)
    assert isinstance(delivery, Delivery) and delivery.topic == "order.created"


@pytest.mark.parametrize(("source", "expected"), [
    ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),  # CAPTURE
    ("https://shop.example.com/", "https://shop.example.com"),
    ("HTTPS://Shop.Example.COM:443/", "https://shop.example.com"),
    ("http://shop.example.com:80", "http://shop.example.com"),
    ("https://example.com/store/", "https://example.com/store"),  # WordPress in a subdirectory
    ("https://shop.example.com/?utm=1#top", "https://shop.example.com"),
    ("https://user:pass@shop.example.com/", None),
    ("javascript:alert(1)", None),
    ("https://shop.example.com:99999/", None),
    ("https://shop .example.com/", None),
    ("", None),
    (None, None),
])
def test_the_store_url_is_normalized(source: str | None, expected: str | None) -> None:
    assert verify.normalize_store_url(source) == expected


def test_the_envelope_reads_every_header() -> None:
    assert verify.envelope({k.lower(): v for k, v in HEADERS.items()}) == verify.Envelope(
        source="http://127.0.0.1:8080", topic="order.created", resource="order", event="created",
        webhook_id="1", delivery_id="2c97b68af05e757a7fd320b848b13623",
    )


# ---------------------------------------------------------------------------------------------------------
# event_id: X-WC-Webhook-Delivery-ID is not unique (WC: a hash of the webhook id and the current second)
# ---------------------------------------------------------------------------------------------------------


def test_two_deliveries_of_one_order_version_share_an_event_id_whatever_their_delivery_ids() -> None:
    first = verify.verify_webhook(BODY, HEADERS, SECRET)
    again = verify.verify_webhook(BODY, {**HEADERS, "X-WC-Webhook-Delivery-ID": "ffffffffffffffffffffffffffffffff"}, SECRET)
    assert isinstance(first, Delivery) and isinstance(again, Delivery)
    assert first.event_id == again.event_id


def test_a_new_order_version_has_a_new_event_id() -> None:
    later = BODY.replace(MODIFIED, b'"date_modified_gmt":"2026-11-23T08:05:00"')
    assert later != BODY
    first = verify.verify_webhook(BODY, HEADERS, SECRET)
    second = verify.verify_webhook(later, signed(later), SECRET)
    assert isinstance(first, Delivery) and isinstance(second, Delivery)
    assert second.event_id.startswith("order.created:11:2026-11-23T08:05:00:")
    assert second.event_id != first.event_id


def test_two_changes_within_one_second_do_not_share_an_event_id() -> None:
    # date_modified_gmt has one-second resolution; the body digest keeps the newer body from being dropped.
    cancelled = BODY.replace(b'"status":"processing"', b'"status":"cancelled"')
    assert MODIFIED in cancelled
    assert verify.event_id("order.updated", cancelled) != verify.event_id("order.updated", BODY)


def test_the_same_resource_under_another_topic_has_another_event_id() -> None:
    assert verify.event_id("order.updated", BODY) == "order.updated" + verify.event_id("order.created", BODY)[13:]
    assert verify.event_id("order.updated", BODY) != verify.event_id("order.created", BODY)


def test_bodies_without_a_version_fall_back_on_topic_and_body_digest() -> None:
    deleted = b'{"id":7}'  # WC build_payload(): a deleted resource is only its id
    digest = hashlib.sha256(deleted).hexdigest()
    assert verify.event_id("order.deleted", deleted) == f"order.deleted:sha256:{digest}"
    assert verify.event_id("customer.deleted", deleted) == f"customer.deleted:sha256:{digest}"
    assert verify.event_id("order.updated", b"not json") == f"order.updated:sha256:{hashlib.sha256(b'not json').hexdigest()}"
    assert len(verify.event_id("order.deleted", deleted)) <= 128


# ---------------------------------------------------------------------------------------------------------
# parse_ping: WC deliver_ping() posts 'webhook_id=' . $id, unsigned
# ---------------------------------------------------------------------------------------------------------


def test_the_captured_ping_parses_to_its_webhook_id() -> None:
    assert PING["body"] == "webhook_id=1"
    assert verify.parse_ping(PING["body"].encode(), PING["headers"]["Content-Type"]) == 1
    assert verify.parse_ping(b"webhook_id=42", "application/x-www-form-urlencoded; charset=UTF-8") == 42


@pytest.mark.parametrize(("body", "content_type"), [
    (b"webhook_id=abc", "application/x-www-form-urlencoded"),
    (b"foo=1", "application/x-www-form-urlencoded"),
    (b"", "application/x-www-form-urlencoded"),
    (b"webhook_id=", "application/x-www-form-urlencoded"),
    (b"webhook_id=0", "application/x-www-form-urlencoded"),
    (b"webhook_id=-1", "application/x-www-form-urlencoded"),
    (b"webhook_id=1&foo=2", "application/x-www-form-urlencoded"),
    (b"webhook_id=1\n", "application/x-www-form-urlencoded"),
    (b"webhook_id=1", "application/json"),
    (b"webhook_id=1", ""),
    (b"webhook_id=1", None),
    (BODY, "application/json"),
])
def test_anything_else_is_not_a_ping(body: bytes, content_type: str | None) -> None:
    assert verify.parse_ping(body, content_type) is None
