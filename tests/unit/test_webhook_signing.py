"""Outbound webhook signing on the Standard Webhooks example vector, the id, secrets, destinations and answers."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import replace

import pytest

from app.channels.webhook import (
    UnsafeDestination,
    check_destination,
    classify_response,
    new_secret,
    sign,
    webhook_id,
)
from app.core.ports import OutboundMessage

# The example vector of the Standard Webhooks reference library: standard-webhooks/standard-webhooks,
# libraries/python/tests/test_webhooks.py (test_sign_function).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_PAYLOAD = '{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_spec_example_vector() -> None:
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_PAYLOAD) == SPEC_SIGNATURE


def test_the_signature_is_hmac_sha256_of_id_timestamp_body() -> None:
    """Computed here from the spec's text (spec/standard-webhooks.md, "Signature scheme"), not by the library."""
    key = base64.b64decode(SPEC_SECRET.removeprefix("whsec_"))
    body = '{"type":"journey.message","data":{"text":"배송 시작"}}'
    expected = base64.b64encode(hmac.new(key, f"{SPEC_ID}.{SPEC_TIMESTAMP}.{body}".encode(), hashlib.sha256).digest())
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, body) == "v1," + expected.decode()


def test_two_secrets_during_a_rotation_give_two_signatures() -> None:
    other = new_secret()
    both = sign([other, SPEC_SECRET], SPEC_ID, SPEC_TIMESTAMP, SPEC_PAYLOAD)
    first, second = both.split(" ")
    assert second == SPEC_SIGNATURE and first.startswith("v1,") and first != second


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_c2hvcnQ=", "whsec_not base64!", "plain-password"])
def test_weak_or_malformed_secrets_are_refused(secret: str) -> None:
    with pytest.raises(ValueError):
        sign(secret, SPEC_ID, SPEC_TIMESTAMP, SPEC_PAYLOAD)


def test_new_secrets_follow_the_spec_format() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    assert secret != new_secret()


def test_the_webhook_id_is_the_idempotency_key_when_it_can_be() -> None:
    message = OutboundMessage(shop_id=1, key="order-1:shipped", channel="webhook", to="https://hooks.example/in")
    assert webhook_id(message) == "order-1:shipped"
    dotted = replace(message, key="order.1 shipped")  # "." delimits the signed content: never in the id
    assert webhook_id(dotted).startswith("msg_") and "." not in webhook_id(dotted)
    assert webhook_id(dotted) == webhook_id(replace(dotted))
    assert webhook_id(dotted) != webhook_id(replace(dotted, shop_id=2))


@pytest.mark.parametrize("url", ["http://hooks.example/in", "https://127.0.0.1/in", "https://10.0.0.8/in",
                                 "https://169.254.169.254/latest", "https://[::1]/in", "https://user:pw@hooks.example/",
                                 "ftp://hooks.example/", "https:///nohost"])
def test_outside_development_only_public_https_destinations(url: str) -> None:
    with pytest.raises(UnsafeDestination):
        check_destination(url, allow_private=False)


def test_development_allows_loopback_http() -> None:
    assert check_destination("http://127.0.0.1:8080/in", allow_private=True) == "http://127.0.0.1:8080/in"
    with pytest.raises(UnsafeDestination):
        check_destination("http://u:p@127.0.0.1/in", allow_private=True)


@pytest.mark.parametrize("status, outcome, reason", [
    (200, "sent", None), (202, "sent", None), (204, "sent", None),
    (429, "retry", "rate_limited"), (500, "retry", "unavailable"), (502, "retry", "unavailable"),
    (503, "retry", "unavailable"), (504, "retry", "unavailable"), (408, "retry", "unavailable"),
    (410, "failed", "gone"), (400, "failed", "rejected"), (401, "failed", "rejected"), (404, "failed", "rejected"),
    (301, "failed", "rejected"), (307, "failed", "rejected"),
])
def test_answers(status: int, outcome: str, reason: str | None) -> None:
    result = classify_response(status)
    assert (result.outcome, result.reason) == (outcome, reason)
