"""Channels from Settings, and a channel behind its provider's token bucket."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.channels import ChannelNotConfigured, email_channel, sms_channel, webhook_channel
from app.channels.outbox import OutboxChannel
from app.channels.ratelimit import InProcessTokenBucket, Limit, RateLimitedChannel
from app.config import Settings
from app.core.ports import OutboundMessage, SendResult


class Recording:
    name = "sms"

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []

    def send(self, message: OutboundMessage) -> SendResult:
        self.sent.append(message)
        return SendResult.sent(f"id-{len(self.sent)}")


class Clock:
    at = 0.0

    def __call__(self) -> float:
        return self.at


def msg(key: str, to: str = "+15551230000") -> OutboundMessage:
    return OutboundMessage(shop_id=1, key=key, channel="sms", to=to, text="hi")


def test_over_the_rate_the_channel_answers_throttled_and_sends_nothing() -> None:
    inner, clock = Recording(), Clock()
    channel = RateLimitedChannel(inner, InProcessTokenBucket(clock=clock), Limit(rate=1.0, burst=2), "sms:AC1")
    assert channel.name == "sms"
    assert [channel.send(msg(str(i))).outcome for i in range(2)] == ["sent", "sent"]
    held = channel.send(msg("2"))
    assert (held.outcome, held.reason, held.retry_after) == ("retry", "throttled", pytest.approx(1.0))
    assert [m.key for m in inner.sent] == ["0", "1"]
    clock.at += 1.0
    assert channel.send(msg("2")).outcome == "sent"


def test_the_bucket_key_can_come_from_the_message() -> None:
    inner = Recording()
    channel = RateLimitedChannel(inner, InProcessTokenBucket(clock=Clock()), Limit(rate=1.0, burst=1),
                                 lambda m: m.to)
    assert [channel.send(msg("a", to)).outcome for to in ("+1", "+2", "+1")] == ["sent", "sent", "retry"]


def test_settings_read_the_channel_variables(tmp_path: Path) -> None:
    settings = Settings.from_env({
        "ENCORE_INSTANCE": str(tmp_path), "ENCORE_SMTP_HOST": "smtp.mail.internal", "ENCORE_SMTP_SECURITY": "ssl",
        "ENCORE_SMTP_USERNAME": "encore", "ENCORE_SMTP_PASSWORD": "pw", "ENCORE_SMS_API_URL": "http://127.0.0.1:9/",
        "ENCORE_SMS_ACCOUNT_SID": "AC1", "ENCORE_SMS_AUTH_TOKEN": "tok", "ENCORE_SMS_RATE": "3",
    })
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_security) == ("smtp.mail.internal", 465, "ssl")
    assert settings.sms_api_url == "http://127.0.0.1:9" and settings.sms_rate_per_s == 3.0
    assert settings.outbox_dir == str(tmp_path.resolve() / "outbox")
    defaults = Settings.from_env({"ENCORE_INSTANCE": str(tmp_path)})
    assert (defaults.smtp_host, defaults.smtp_port, defaults.smtp_security, defaults.sms_api_url) == (
        "", 587, "starttls", "")
    with pytest.raises(ValueError):
        Settings.from_env({"ENCORE_INSTANCE": str(tmp_path), "ENCORE_SMTP_SECURITY": "tls1.0"})


def test_development_without_smtp_captures_to_the_outbox_and_production_refuses(tmp_path: Path) -> None:
    limiter = InProcessTokenBucket()
    development = Settings(outbox_dir=str(tmp_path / "outbox"))
    channel = email_channel(development, limiter)
    assert isinstance(channel, OutboxChannel) and channel.directory == tmp_path / "outbox"
    with pytest.raises(ChannelNotConfigured):
        email_channel(Settings(env="production"), limiter)
    smtp = email_channel(Settings(env="production", smtp_host="127.0.0.1"), limiter)
    assert isinstance(smtp, RateLimitedChannel) and smtp.name == "email"


def test_sms_is_off_without_an_api_url_and_needs_credentials_with_one() -> None:
    limiter = InProcessTokenBucket()
    assert sms_channel(Settings(), limiter) is None
    with pytest.raises(ChannelNotConfigured):
        sms_channel(Settings(sms_api_url="http://127.0.0.1:9"), limiter)
    channel = sms_channel(Settings(sms_api_url="http://127.0.0.1:9", sms_account_sid="AC1", sms_auth_token="t"),
                          limiter)
    assert channel is not None and channel.name == "sms"


def test_webhooks_are_limited_per_destination_host() -> None:
    limiter = InProcessTokenBucket(clock=Clock())
    channel = webhook_channel(Settings(env="production", webhook_rate_per_s=1, webhook_burst=1), limiter,
                              lambda _m: None)
    hook = OutboundMessage(shop_id=1, key="k", channel="webhook", to="http://127.0.0.1:9/a")
    first = channel.send(hook)
    assert first.reason == "config"  # production refuses a plain-http loopback destination, after one token
    assert channel.send(hook).reason == "throttled"
