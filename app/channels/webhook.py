"""The outbound webhook channel: a message POSTed as JSON to a merchant's URL, signed per Standard Webhooks.

Headers (the Standard Webhooks specification, `spec/standard-webhooks.md` of the standard-webhooks project):
`webhook-id` (the message's idempotency key, the same on every retry, so the receiver can drop duplicates),
`webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature`: "v1," + base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}" under the destination's secret ("whsec_" + base64 of at least 24 random bytes). During
a secret rotation give both secrets: the header then carries both signatures, space-separated. The signing is
the `standardwebhooks` package's own (`Webhook.sign`).

Answers: 2xx is sent; 429, 5xx, 408, a refused or reset connection or a timeout is retried (honouring
Retry-After); 410 is failed with reason "gone" (the receiver wants no more: disable the endpoint); any other
answer, redirects included (never followed: the merchant should update the URL), is failed.

The destination is the merchant's to choose, so outside development it must be https and its host must resolve
to public addresses only (no request to Encore's own network). The check happens before the request; a host
whose DNS answer changes in between is not caught (that needs an egress proxy).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
import structlog
from standardwebhooks import Webhook

from app.core.ports import OutboundMessage, SendResult
from app.net import guarded_session, public_address_problem
from connectors.payload import retry_after

log = structlog.get_logger(__name__)

SECRET_PREFIX = "whsec_"
USER_AGENT = "Encore-Webhooks/1"
_SAFE_ID = re.compile(r"^[A-Za-z0-9_:\-]{1,200}$")

SecretLookup = Callable[[OutboundMessage], str | Sequence[str] | None]


class UnsafeDestination(ValueError):
    pass


def new_secret() -> str:
    """A fresh destination secret: "whsec_" + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _check_secret(secret: str) -> str:
    raw = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a webhook secret is 'whsec_' followed by base64") from exc
    if len(key) < 24:
        raise ValueError("a webhook secret needs at least 24 random bytes")
    return secret


def webhook_id(message: OutboundMessage) -> str:
    """The idempotency key itself, when it is made of [A-Za-z0-9_:-]; otherwise a digest of it. The spec wants
    no "." in the id (it delimits the signed content)."""
    if _SAFE_ID.match(message.key):
        return message.key
    return "msg_" + hashlib.sha256(f"{message.shop_id}:{message.key}".encode()).hexdigest()[:32]


def sign(secrets_: str | Sequence[str], msg_id: str, timestamp: int, body: str) -> str:
    """The webhook-signature header: one "v1,<base64>" per secret, space-separated."""
    at = datetime.fromtimestamp(timestamp, UTC)
    keys = [secrets_] if isinstance(secrets_, str) else list(secrets_)
    return " ".join(Webhook(_check_secret(k)).sign(msg_id=msg_id, timestamp=at, data=body) for k in keys)


def payload(message: OutboundMessage, now: float) -> dict[str, Any]:
    occurred = message.metadata.get("occurred_at")
    return {
        "type": str(message.metadata.get("event_type") or "journey.message"),
        "timestamp": occurred if isinstance(occurred, str) else datetime.fromtimestamp(now, UTC).isoformat(),
        "data": {
            "shop_id": message.shop_id, "key": message.key, "category": message.category,
            "subject": message.subject, "text": message.text, "html": message.html,
            "metadata": dict(message.metadata),
        },
    }


def check_destination(url: str, *, allow_private: bool) -> str:
    """The URL, or UnsafeDestination: https to a host with public addresses only, unless `allow_private`."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UnsafeDestination(f"not an http(s) URL: {url!r}")
    if parts.username or parts.password:
        raise UnsafeDestination("the webhook URL must not carry a user name or password")
    if allow_private:
        return url.strip()
    if parts.scheme != "https":
        raise UnsafeDestination("the webhook URL must use https")
    problem = public_address_problem(parts.hostname, parts.port or 443)
    if problem:
        raise UnsafeDestination(f"the webhook host {problem}")
    return url.strip()


def classify_response(status: int, retry_after_header: str | None = None) -> SendResult:
    wait = retry_after(retry_after_header) or None
    if 200 <= status < 300:
        return SendResult.sent()
    if status == 429:
        return SendResult.retry("HTTP 429", reason="rate_limited", code="429", retry_after=wait)
    if status >= 500 or status == 408:
        return SendResult.retry(f"HTTP {status}", reason="unavailable", code=str(status), retry_after=wait)
    if status == 410:
        return SendResult.failed("HTTP 410: the endpoint is gone", reason="gone", code="410")
    if 300 <= status < 400:
        return SendResult.failed(f"HTTP {status}: redirects are not followed, update the URL", code=str(status))
    return SendResult.failed(f"HTTP {status}", code=str(status))


class WebhookChannel:
    """POSTs messages to `message.to`, signed with the destination's secret from `secret_for`."""

    name = "webhook"

    def __init__(self, secret_for: SecretLookup, *, timeout_s: float = 15.0, allow_private: bool = False,
                 session: requests.Session | None = None, clock: Callable[[], float] = time.time) -> None:
        self.secret_for = secret_for
        self.timeout_s = timeout_s
        self.allow_private = allow_private
        # Outside development, connections go only to addresses checked when each is opened (DNS rebinding).
        self.session = session or (requests.Session() if allow_private else guarded_session())
        self.clock = clock

    def send(self, message: OutboundMessage) -> SendResult:
        try:
            url = check_destination(message.to, allow_private=self.allow_private)
        except UnsafeDestination as exc:
            return self._log(message, SendResult.failed(str(exc), reason="config"))
        secret = self.secret_for(message)
        if not secret:
            return self._log(message, SendResult.failed("no secret for this webhook destination", reason="config"))
        msg_id = webhook_id(message)
        timestamp = int(self.clock())
        body = json.dumps(payload(message, timestamp), ensure_ascii=False, separators=(",", ":"), default=str)
        try:
            signature = sign(secret, msg_id, timestamp, body)
        except ValueError as exc:
            return self._log(message, SendResult.failed(str(exc), reason="config"))
        headers = {"content-type": "application/json", "user-agent": USER_AGENT, "webhook-id": msg_id,
                   "webhook-timestamp": str(timestamp), "webhook-signature": signature}
        try:
            with self.session.post(url, data=body.encode(), headers=headers, timeout=self.timeout_s,
                                   allow_redirects=False, stream=True) as response:  # the answer's body is not read
                result = classify_response(response.status_code, response.headers.get("Retry-After"))
        except requests.ConnectionError as exc:
            return self._log(message, SendResult.retry(f"webhook unreachable: {type(exc).__name__}"))
        except requests.Timeout:
            return self._log(message, SendResult.retry("webhook timed out"))
        except requests.RequestException as exc:
            return self._log(message, SendResult.failed(f"webhook request: {type(exc).__name__}", reason="config"))
        if result.outcome == "sent":
            result = SendResult.sent(msg_id)
        return self._log(message, result)

    def _log(self, message: OutboundMessage, result: SendResult) -> SendResult:
        log.info("webhook.send", shop_id=message.shop_id, idempotency=message.key, outcome=result.outcome,
                 code=result.code, reason=result.reason)
        return result
