"""The outbound webhook channel over real HTTP: what the receiver gets verifies with the standardwebhooks
library's own Webhook.verify, and each kind of answer is classified."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
import requests
from flask import Flask, request
from standardwebhooks import Webhook, WebhookVerificationError

from app.channels.webhook import WebhookChannel, new_secret
from app.core.ports import OutboundMessage
from app.simulator.server import SimulatedServer
from tests.smtp import closed_port

SECRET = new_secret()


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes


class Receiver(SimulatedServer):
    """A merchant's endpoint: records deliveries and answers with the queued statuses (then 200)."""

    def __init__(self) -> None:
        super().__init__()
        self.deliveries: list[Delivery] = []
        self.answers: list[tuple[int, dict[str, str]]] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        app = Flask(__name__)

        @app.post("/hook")
        def hook() -> Any:
            with self._lock:
                self.deliveries.append(Delivery({k.lower(): v for k, v in request.headers.items()}, request.get_data()))
                status, headers = self.answers.pop(0) if self.answers else (200, {})
            return "", status, headers

        @app.post("/moved")
        def moved() -> Any:
            return "", 308, {"Location": "/hook"}

        @app.post("/slow")
        def slow() -> Any:
            self.release.wait(5)
            return ""

        self.app = app


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    yield server
    server.stop()


def message(receiver: Receiver, **changes: Any) -> OutboundMessage:
    base = OutboundMessage(shop_id=2, key="order-31:review-request", channel="webhook", to=f"{receiver.origin}/hook",
                           subject="리뷰를 남겨 주세요", text="How was it?", html="<p>How was it?</p>",
                           metadata={"event_type": "journey.review_request", "order": "#1031"})
    return replace(base, **changes)


def channel(clock: Any = time.time, **kwargs: Any) -> WebhookChannel:
    return WebhookChannel(lambda _message: SECRET, timeout_s=5, allow_private=True, clock=clock, **kwargs)


def test_a_delivery_verifies_with_the_reference_library(receiver: Receiver) -> None:
    sent = message(receiver)
    result = channel().send(sent)
    assert (result.outcome, result.provider_id) == ("sent", sent.key)
    [delivery] = receiver.deliveries
    assert delivery.headers["webhook-id"] == sent.key
    assert delivery.headers["content-type"] == "application/json"
    payload = Webhook(SECRET).verify(delivery.body, delivery.headers)
    assert payload["type"] == "journey.review_request"
    assert payload["data"]["subject"] == "리뷰를 남겨 주세요" and payload["data"]["metadata"]["order"] == "#1031"
    tampered = delivery.body.replace(b"#1031", b"#1032")
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(tampered, delivery.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(delivery.body, delivery.headers)


def test_a_retry_keeps_the_id_and_signs_its_own_timestamp(receiver: Receiver) -> None:
    now = [1_800_000_000.0]
    receiver.answers.append((503, {"Retry-After": "30"}))
    first = channel(lambda: now[0]).send(message(receiver))
    assert (first.outcome, first.retry_after, first.code) == ("retry", 30.0, "503")
    now[0] += 300
    assert channel(lambda: now[0]).send(message(receiver)).outcome == "sent"
    one, two = receiver.deliveries
    assert one.headers["webhook-id"] == two.headers["webhook-id"]
    assert (int(one.headers["webhook-timestamp"]), int(two.headers["webhook-timestamp"])) == (1_800_000_000, 1_800_000_300)
    assert one.headers["webhook-signature"] != two.headers["webhook-signature"]
    assert json.loads(one.body)["data"] == json.loads(two.body)["data"]


@pytest.mark.parametrize("status, headers, outcome, reason, retry_after", [
    (204, {}, "sent", None, None),
    (429, {"Retry-After": "12"}, "retry", "rate_limited", 12.0),
    (500, {}, "retry", "unavailable", None),
    (410, {}, "failed", "gone", None),
    (400, {}, "failed", "rejected", None),
    (403, {}, "failed", "rejected", None),
])
def test_answers_over_http(receiver: Receiver, status: int, headers: dict[str, str], outcome: str,
                           reason: str | None, retry_after: float | None) -> None:
    receiver.answers.append((status, headers))
    result = channel().send(message(receiver))
    assert (result.outcome, result.reason, result.retry_after) == (outcome, reason, retry_after)


def test_redirects_are_not_followed(receiver: Receiver) -> None:
    result = channel().send(message(receiver, to=f"{receiver.origin}/moved"))
    assert (result.outcome, result.code) == ("failed", "308")
    assert receiver.deliveries == []


def test_an_unreachable_endpoint_is_retried() -> None:
    result = channel().send(OutboundMessage(shop_id=1, key="k", channel="webhook", to=f"http://127.0.0.1:{closed_port()}/"))
    assert (result.outcome, result.reason) == ("retry", "unavailable")


def test_no_secret_or_an_unsafe_destination_fails_without_a_request(receiver: Receiver) -> None:
    no_secret = WebhookChannel(lambda _message: None, allow_private=True).send(message(receiver))
    assert (no_secret.outcome, no_secret.reason) == ("failed", "config")
    production = WebhookChannel(lambda _message: SECRET, allow_private=False).send(message(receiver))
    assert (production.outcome, production.reason) == ("failed", "config")  # plain http to loopback
    assert receiver.deliveries == []


def test_a_slow_endpoint_is_a_retry(receiver: Receiver) -> None:
    try:
        result = WebhookChannel(lambda _message: SECRET, timeout_s=0.2, allow_private=True,
                                session=requests.Session()).send(message(receiver, to=f"{receiver.origin}/slow"))
    finally:
        receiver.release.set()
    assert (result.outcome, result.reason) == ("retry", "unavailable")
