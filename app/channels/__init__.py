"""The journeys engine's delivery channels (implementations of `app.core.ports.Channel`).

`email.py` SMTP, `outbox.py` the embedded default's captured email, `sms.py` a Twilio-compatible SMS API and
inbound STOP handling, `webhook.py` signed outbound webhooks, `ratelimit.py` a token bucket per provider. The
builders below turn Settings into channels, each behind its provider's rate limit; nothing here is a global.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from app.channels.email import EmailConfig, Security, SmtpEmailChannel
from app.channels.outbox import OutboxChannel
from app.channels.ratelimit import Limit, RateLimitedChannel, RateLimiter
from app.channels.sink import SinkChannel
from app.channels.sms import SmsConfig, TwilioSmsChannel
from app.channels.webhook import SecretLookup, WebhookChannel
from app.config import Settings
from app.core.ports import Channel, OutboundMessage

_SECURITY: dict[str, Security] = {"starttls": "starttls", "ssl": "ssl", "none": "none"}


class ChannelNotConfigured(RuntimeError):
    pass


def email_channel(settings: Settings, limiter: RateLimiter) -> Channel:
    """A journal sink when ENCORE_EMAIL_SINK is set (load tests); SMTP when ENCORE_SMTP_HOST is set; otherwise,
    in development, the local outbox (refused in production,
    where captured mail would silently never reach anyone)."""
    limit = Limit(settings.email_rate_per_s, settings.email_burst)
    if settings.email_sink:
        return SinkChannel(settings.email_sink)
    if not settings.smtp_host:
        if not settings.development:
            raise ChannelNotConfigured("ENCORE_SMTP_HOST must be set to send email when ENCORE_ENV is production")
        return OutboxChannel(settings.outbox_dir)
    security = _SECURITY.get(settings.smtp_security)
    if security is None:
        raise ChannelNotConfigured(f"unknown ENCORE_SMTP_SECURITY {settings.smtp_security!r}")
    config = EmailConfig(
        host=settings.smtp_host, port=settings.smtp_port, security=security, username=settings.smtp_username,
        password=settings.smtp_password, timeout_s=settings.smtp_timeout_s,
        bounce_address=settings.email_bounce_address, require_https_unsubscribe=not settings.development,
    )
    return RateLimitedChannel(SmtpEmailChannel(config), limiter, limit, f"smtp:{settings.smtp_host}")


def sms_channel(settings: Settings, limiter: RateLimiter) -> Channel | None:
    """The SMS channel, or None when ENCORE_SMS_API_URL is not set (SMS off)."""
    if not settings.sms_api_url:
        return None
    if not (settings.sms_account_sid and settings.sms_auth_token):
        raise ChannelNotConfigured("ENCORE_SMS_ACCOUNT_SID and ENCORE_SMS_AUTH_TOKEN are needed for SMS")
    config = SmsConfig(api_url=settings.sms_api_url, account_sid=settings.sms_account_sid,
                       auth_token=settings.sms_auth_token, sender=settings.sms_from,
                       status_callback_url=settings.sms_status_callback_url)
    limit = Limit(settings.sms_rate_per_s, settings.sms_burst)
    return RateLimitedChannel(TwilioSmsChannel(config), limiter, limit, f"sms:{settings.sms_account_sid}")


def _destination_host(message: OutboundMessage) -> str:
    return f"webhook:{(urlsplit(message.to).hostname or '').lower()}"


def webhook_channel(settings: Settings, limiter: RateLimiter, secret_for: SecretLookup) -> Channel:
    """Signed webhooks; one bucket per destination host. Private and plain-http destinations only in development."""
    channel = WebhookChannel(secret_for, timeout_s=settings.webhook_timeout_s, allow_private=settings.development)
    limit = Limit(settings.webhook_rate_per_s, settings.webhook_burst)
    key: Callable[[OutboundMessage], str] = _destination_host
    return RateLimitedChannel(channel, limiter, limit, key)
