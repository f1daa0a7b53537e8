"""The SMS channel against the Twilio-compatible simulator over real HTTP, and inbound STOP end to end."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask, request

from app.channels.sms import InboundSms, SmsConfig, TwilioSmsChannel, inbound_sms
from app.core.ports import OutboundMessage
from app.simulator.server import SimulatedServer
from app.simulator.sms import SmsSimulator
from tests.smtp import closed_port

MESSAGE = OutboundMessage(shop_id=4, key="order-9:shipped", channel="sms", to="+821055501234",
                          text="Seoul Coffee: 주문하신 상품이 발송되었습니다. Reply STOP to opt out.")


@pytest.fixture
def provider() -> Iterator[SmsSimulator]:
    simulator = SmsSimulator(landlines=("+14155550100",))
    simulator.start()
    yield simulator
    simulator.stop()


def channel(provider: SmsSimulator, **changes: Any) -> TwilioSmsChannel:
    config = SmsConfig(api_url=provider.api_url, account_sid=provider.account_sid, auth_token=provider.auth_token,
                       sender="+15005550006", timeout_s=5)
    return TwilioSmsChannel(replace(config, **changes))


def test_a_message_is_sent(provider: SmsSimulator) -> None:
    result = channel(provider, status_callback_url="https://encore.example/sms/status").send(MESSAGE)
    assert result.outcome == "sent"
    [sms] = provider.messages
    assert (result.provider_id, sms.to, sms.sender, sms.body) == (sms.sid, "+821055501234", "+15005550006", MESSAGE.text)
    assert sms.status_callback == "https://encore.example/sms/status"


def test_a_shops_own_sender_and_a_messaging_service(provider: SmsSimulator) -> None:
    assert channel(provider).send(replace(MESSAGE, sender_address="+15005550001")).outcome == "sent"
    assert channel(provider, sender="MG" + "0" * 32).send(MESSAGE).outcome == "sent"
    assert [m.sender for m in provider.messages] == ["+15005550001", "MG" + "0" * 32]


def test_429_is_retried_after_the_providers_retry_after(provider: SmsSimulator) -> None:
    provider.fail(429, times=1, retry_after=7)
    result = channel(provider).send(MESSAGE)
    assert (result.outcome, result.reason, result.retry_after, result.code) == ("retry", "rate_limited", 7.0, "20429")
    assert channel(provider).send(MESSAGE).outcome == "sent"  # the fault is spent
    assert len(provider.messages) == 1


def test_5xx_is_retried(provider: SmsSimulator) -> None:
    provider.fail(500, times=2)
    assert [channel(provider).send(MESSAGE).outcome for _ in range(3)] == ["retry", "retry", "sent"]


def test_a_recipient_who_replied_stop_fails_for_good_until_start(provider: SmsSimulator) -> None:
    provider.reply(MESSAGE.to, "STOP")
    result = channel(provider).send(MESSAGE)
    assert (result.outcome, result.reason, result.code) == ("failed", "unsubscribed", "21610")
    provider.reply(MESSAGE.to, "start")
    assert channel(provider).send(MESSAGE).outcome == "sent"


def test_invalid_numbers_fail_for_good(provider: SmsSimulator) -> None:
    landline = channel(provider).send(replace(MESSAGE, to="+14155550100"))
    assert (landline.outcome, landline.reason, landline.code) == ("failed", "invalid_recipient", "21614")
    before = provider.requests
    local = channel(provider).send(replace(MESSAGE, to="010-5550-1234"))  # not E.164: refused before any request
    assert (local.outcome, local.reason) == ("failed", "invalid_recipient")
    assert provider.requests == before


def test_wrong_credentials_fail_with_reason_auth(provider: SmsSimulator) -> None:
    result = channel(provider, auth_token="wrong").send(MESSAGE)
    assert (result.outcome, result.reason, result.code) == ("failed", "auth", "20003")
    assert provider.messages == []


def test_an_unreachable_provider_is_retried() -> None:
    config = SmsConfig(api_url=f"http://127.0.0.1:{closed_port()}", account_sid="AC1", auth_token="t",
                       sender="+15005550006", timeout_s=5)
    result = TwilioSmsChannel(config).send(MESSAGE)
    assert (result.outcome, result.reason) == ("retry", "unavailable")


class InboundReceiver(SimulatedServer):
    """Stands in for Encore's inbound SMS route (the web layer comes later): verify, decide, answer."""

    def __init__(self, auth_token: str) -> None:
        super().__init__()
        self.decisions: list[InboundSms | None] = []
        self._lock = threading.Lock()
        app = Flask(__name__)

        @app.post("/sms/inbound")
        def inbound() -> Any:
            decision = inbound_sms(auth_token, request.url, request.form.items(multi=True),
                                   request.headers.get("X-Twilio-Signature"))
            with self._lock:
                self.decisions.append(decision)
            return ("", 403) if decision is None else ("<Response/>", 200, {"Content-Type": "text/xml"})

        self.app = app


def test_an_inbound_stop_arrives_signed_and_is_read_as_an_opt_out(provider: SmsSimulator) -> None:
    receiver = InboundReceiver(provider.auth_token)
    receiver.start()
    try:
        url = f"{receiver.origin}/sms/inbound?shop=4"
        response = provider.reply("+821055501234", "Stop", webhook_url=url)
        assert response is not None and response.status_code == 200
        [decision] = receiver.decisions
        assert decision is not None
        assert (decision.action, decision.from_number, decision.account_sid) == (
            "opt_out", "+821055501234", provider.account_sid)
        impostor = SmsSimulator(account_sid=provider.account_sid, auth_token="not-the-token")
        response = impostor.reply("+821055501234", "START", webhook_url=url)
        assert response is not None and response.status_code == 403
        assert receiver.decisions[-1] is None
    finally:
        receiver.stop()
