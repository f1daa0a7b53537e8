"""The dispatcher on each channel, over real HTTP: SMS through the Twilio-compatible simulator (quiet hours in the
customer's timezone, the provider's STOP), a signed outbound webhook verified with the Standard Webhooks
reference library, and the customer's preferred channel."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request
from standardwebhooks import Webhook

from app import journeys as jr
from app import preferences
from app.bootstrap import Container
from app.channels.outbox import OutboxChannel
from app.channels.sms import SmsConfig, TwilioSmsChannel
from app.channels.webhook import WebhookChannel
from app.core import commands as cmd
from app.core.journeys import Channel
from app.dispatch import Dispatcher, webhook_secret
from app.simulator.server import SimulatedServer
from app.simulator.sms import SmsSimulator
from tests.fakes import FakeStorePlatform
from tests.journeys import T0, Clock, customer, journey_shop, messages, observe, order, read_outbox


@pytest.fixture
def sms_provider() -> Iterator[SmsSimulator]:
    provider = SmsSimulator()
    provider.start()
    yield provider
    provider.stop()


class Hook(SimulatedServer):
    def __init__(self) -> None:
        super().__init__()
        self.got: list[tuple[dict[str, str], bytes]] = []
        app = Flask(__name__)

        @app.post("/hook")
        def hook() -> Any:
            self.got.append(({k.lower(): v for k, v in request.headers.items()}, request.get_data()))
            return ""

        self.app = app


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    server.start()
    yield server
    server.stop()


def sms(provider: SmsSimulator) -> TwilioSmsChannel:
    return TwilioSmsChannel(SmsConfig(api_url=provider.api_url, account_sid=provider.account_sid,
                                      auth_token=provider.auth_token, sender="+15005550006", timeout_s=5))


def test_sms_waits_for_the_end_of_quiet_hours_in_the_customers_timezone(
        container: Container, sms_provider: SmsSimulator, tmp_path: Path) -> None:
    clock = Clock(T0.replace(hour=4))  # 23:00 the night before in New York
    shop = journey_shop(container, frozenset({"thank_you"}))
    d = Dispatcher(container, {"sms": sms(sms_provider), "email": OutboxChannel(tmp_path)}, now=clock.now)
    buyer = customer(phone="+12125550123", preferred_channel="sms")
    observe(container, clock, shop, cmd.ObserveOrder(shop, order(at=clock.at), buyer))
    d.run_once()
    [m] = messages(container, shop)
    assert (m["status"], m["deferred"]) == ("pending", "quiet hours")
    assert m["due_at"] == T0.replace(hour=14)  # 09:00 in New York
    assert sms_provider.messages == []
    clock.at = m["due_at"]
    d.run_once()
    [m] = messages(container, shop)
    assert (m["status"], m["channel"]) == ("sent", "sms")
    [text] = sms_provider.messages
    assert text.to == "+12125550123" and "#1001" in text.body


def test_a_recipient_who_replied_stop_is_skipped_with_that_reason(
        container: Container, sms_provider: SmsSimulator, tmp_path: Path) -> None:
    clock = Clock(T0)
    shop = journey_shop(container, frozenset({"thank_you"}))
    sms_provider.opted_out.add("+12125550123")
    d = Dispatcher(container, {"sms": sms(sms_provider), "email": OutboxChannel(tmp_path)}, now=clock.now)
    observe(container, clock, shop, cmd.ObserveOrder(shop, order(), customer(phone="+12125550123",
                                                                              preferred_channel="sms")))
    d.run_once()
    [m] = messages(container, shop)
    assert (m["status"], m["reason"]) == ("skipped", "unsubscribed")
    assert preferences.get(container, shop, "501").sms is False  # recorded: no more marketing texts


def test_preferred_sms_falls_back_to_email_when_sms_is_not_set_up(container: Container, tmp_path: Path) -> None:
    clock = Clock(T0)
    shop = journey_shop(container, frozenset({"thank_you"}))
    box = OutboxChannel(tmp_path)
    observe(container, clock, shop, cmd.ObserveOrder(shop, order(), customer(phone="+12125550123",
                                                                              preferred_channel="sms")))
    Dispatcher(container, {"email": box}, now=clock.now).run_once()
    [m] = messages(container, shop)
    assert (m["status"], m["channel"]) == ("sent", "email") and len(read_outbox(box)) == 1


def test_a_webhook_step_is_signed_and_verifies_with_the_reference_library(
        container: Container, hook: Hook, tmp_path: Path) -> None:
    clock = Clock(T0)
    shop = journey_shop(container, frozenset({"thank_you"}))
    jr.save_messaging(container, shop, {"webhook_url": f"{hook.origin}/hook"})
    version = jr.live_version(container, shop, "thank_you")
    jr.save_version(container, shop, "thank_you", replace(version.journey, steps=(
        replace(version.journey.steps[0], channel=Channel.WEBHOOK),)), version.templates)
    secret = webhook_secret(container, shop)
    channel = WebhookChannel(lambda m: webhook_secret(container, m.shop_id), timeout_s=5, allow_private=True)
    d = Dispatcher(container, {"webhook": channel, "email": OutboxChannel(tmp_path)},
                   platform_for=lambda _: FakeStorePlatform(), now=clock.now)
    observe(container, clock, shop, cmd.ObserveOrder(shop, order(), customer()))
    d.run_once()
    [(headers, body)] = hook.got
    payload = Webhook(secret).verify(body, headers)  # raises unless the signature is right
    assert payload["type"] == "journey.thank_you"
    assert json.loads(body)["data"]["metadata"]["order_id"] == "1001"
    [m] = messages(container, shop)
    assert (m["status"], m["channel"]) == ("sent", "webhook")
    assert headers["webhook-id"]  # the same id on every retry: receivers fold duplicates
    clock.advance(minutes=1)
    assert d.run_once().claimed == 0 and len(hook.got) == 1


def test_no_webhook_destination_is_a_skip_with_the_reason(container: Container, tmp_path: Path) -> None:
    clock = Clock(T0)
    shop = journey_shop(container, frozenset({"thank_you"}))
    version = jr.live_version(container, shop, "thank_you")
    jr.save_version(container, shop, "thank_you", replace(version.journey, steps=(
        replace(version.journey.steps[0], channel=Channel.WEBHOOK),)), version.templates)
    channel = WebhookChannel(lambda m: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", allow_private=True)
    d = Dispatcher(container, {"webhook": channel}, now=clock.now)
    observe(container, clock, shop, cmd.ObserveOrder(shop, order(), customer()))
    d.run_once()
    assert [(m["status"], m["reason"]) for m in messages(container, shop)] == [("skipped", "no webhook destination")]
