"""Settings read from the environment once and passed in; never a module global."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

DEV_API_KEY = "encore-dev-api-key"
DEV_API_SECRET = "shpss_encore_development_secret_0123456789"


def _instance_secret(instance: Path, name: str, make: str) -> str:
    """Read a development secret kept under instance/, creating it on first use."""
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / name
    if not path.exists():
        path.write_text(make)
        path.chmod(0o600)
    return path.read_text().strip()


def _normalise_db_url(url: str) -> str:
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


@dataclass(frozen=True)
class Settings:
    """Every setting; ENVIRONMENT below names the variable each is read from, what it means and its default."""

    env: str = "development"
    database_url: str = "sqlite:///instance/encore.db"
    redis_url: str | None = None
    secret_key: str = ""
    encryption_keys: tuple[str, ...] = ()
    app_url: str = "http://127.0.0.1:8000"
    log_level: str = "INFO"
    queue_name: str = "encore"
    # Inbox rows go to one of this many queues by shop (shop id modulo the count), so that a worker given a shard
    # (`encore worker --shard N`) processes a shop's events one at a time, in the order they arrived.
    queue_shards: int = 1
    webhook_max_bytes: int = 1_000_000
    shopify_api_key: str = DEV_API_KEY
    shopify_api_secrets: tuple[str, ...] = (DEV_API_SECRET,)
    shopify_scopes: str = "read_orders,read_customers,read_products,write_discounts"
    # Where a shop's admin API answers; {shop} is the myshopify domain. Tests and the demo point it at
    # the store simulator.
    shopify_shop_origin: str = "https://{shop}"
    shopify_admin_origin: str = "https://admin.shopify.com"
    app_bridge_url: str = "https://cdn.shopify.com/shopifycloud/app-bridge.js"
    sweep_interval_s: float = 15.0
    inbox_lease_s: int = 60
    # A row handed to the queue this long ago and still pending: its job was lost (Redis restarted empty).
    inbox_lost_after_s: float = 60.0
    inbox_max_attempts: int = 5
    # A history import works in slices of this many seconds, then queues its next slice, so a long import
    # never holds a worker (or the embedded worker thread) for long and never meets RQ's job timeout.
    import_slice_s: float = 20.0
    # Channels (journeys engine). No SMTP host: email is captured to `outbox_dir` (the embedded default;
    # refused outside development). No SMS API URL: SMS is off. Rates are per provider, in messages/second.
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "starttls"  # starttls | ssl | none
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_timeout_s: float = 15.0
    email_bounce_address: str = ""  # envelope sender; empty = the shop's From address
    email_rate_per_s: float = 10.0
    email_burst: int = 20
    outbox_dir: str = "instance/outbox"
    email_sink: str = ""  # a journal file: email goes nowhere, each send is one line (load tests, benchmarks)
    sms_api_url: str = ""  # base URL of a Twilio-compatible REST API
    sms_account_sid: str = ""
    sms_auth_token: str = ""
    sms_from: str = ""  # default sender number (E.164) or Messaging Service SID (MG...)
    sms_status_callback_url: str = ""
    sms_rate_per_s: float = 1.0
    sms_burst: int = 5
    webhook_timeout_s: float = 15.0
    webhook_rate_per_s: float = 5.0  # per destination host
    webhook_burst: int = 10
    # Rate limits on the public endpoints (app/web/ratelimit.py), per client address and per link or shopper:
    # every request, and POSTs (answers, claims, redemptions) apart. Flask-Limiter's notation.
    rate_limit_pages: str = "60/minute"
    rate_limit_writes: str = "10/minute"
    # Operations (app/web/ops.py): /metrics answers only a bearer of this token (404 while it is empty), and
    # /readyz gives each check this long before it calls the dependency down.
    metrics_token: str = ""
    ready_timeout_s: float = 2.0

    @property
    def development(self) -> bool:
        return self.env in ("development", "test")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ENCORE_* variables (and DATABASE_URL / REDIS_URL), with safe defaults.

        Outside development every secret must be given: a missing one raises ValueError at start-up.
        """
        env = dict(os.environ if environ is None else environ)
        mode = env.get("ENCORE_ENV", "development")
        instance = Path(env.get("ENCORE_INSTANCE", "instance")).resolve()
        development = mode in ("development", "test")

        def need(name: str, dev_default: str) -> str:
            value = env.get(name, "")
            if value:
                return value
            if not development:
                raise ValueError(f"{name} must be set when ENCORE_ENV={mode}")
            return dev_default

        secret_key = need("ENCORE_SECRET_KEY", "")
        if not secret_key:
            secret_key = _instance_secret(instance, "secret_key", secrets.token_urlsafe(32))
        keys = need("ENCORE_ENCRYPTION_KEYS", "")
        if not keys:
            keys = _instance_secret(instance, "encryption_key", Fernet.generate_key().decode())
        api_secrets = need("SHOPIFY_API_SECRET", DEV_API_SECRET)
        old = env.get("SHOPIFY_API_SECRET_OLD", "")
        sqlite_default = f"sqlite:///{instance / 'encore.db'}"
        return cls(
            env=mode,
            database_url=_normalise_db_url(env.get("DATABASE_URL") or sqlite_default),
            redis_url=env.get("REDIS_URL") or None,
            secret_key=secret_key,
            encryption_keys=tuple(k.strip() for k in keys.split(",") if k.strip()),
            app_url=env.get("ENCORE_APP_URL", cls.app_url).rstrip("/"),
            log_level=env.get("ENCORE_LOG_LEVEL", cls.log_level),
            queue_name=env.get("ENCORE_QUEUE", cls.queue_name),
            queue_shards=_positive_int(env, "ENCORE_QUEUE_SHARDS", cls.queue_shards),
            inbox_lease_s=_positive_int(env, "ENCORE_INBOX_LEASE", cls.inbox_lease_s),
            inbox_lost_after_s=float(env.get("ENCORE_INBOX_LOST_AFTER", cls.inbox_lost_after_s)),
            webhook_max_bytes=int(env.get("ENCORE_WEBHOOK_MAX_BYTES", cls.webhook_max_bytes)),
            shopify_api_key=need("SHOPIFY_API_KEY", DEV_API_KEY),
            shopify_api_secrets=(api_secrets, old) if old else (api_secrets,),
            shopify_scopes=env.get("SHOPIFY_SCOPES", cls.shopify_scopes),
            shopify_shop_origin=env.get("SHOPIFY_SHOP_ORIGIN", cls.shopify_shop_origin),
            shopify_admin_origin=env.get("SHOPIFY_ADMIN_ORIGIN", cls.shopify_admin_origin),
            app_bridge_url=env.get("SHOPIFY_APP_BRIDGE_URL", cls.app_bridge_url),
            sweep_interval_s=float(env.get("ENCORE_SWEEP_INTERVAL", cls.sweep_interval_s)),
            metrics_token=env.get("ENCORE_METRICS_TOKEN", cls.metrics_token),
            ready_timeout_s=float(env.get("ENCORE_READY_TIMEOUT", cls.ready_timeout_s)),
            rate_limit_pages=env.get("ENCORE_RATE_LIMIT_PAGES", cls.rate_limit_pages),
            rate_limit_writes=env.get("ENCORE_RATE_LIMIT_WRITES", cls.rate_limit_writes),
            **_channel_settings(env, instance),
        )


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = int(env.get(name, default))
    if value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, not {value}")
    return value


def _channel_settings(env: Mapping[str, str], instance: Path) -> dict[str, Any]:
    """The channels' settings (ENCORE_SMTP_*, ENCORE_EMAIL_*, ENCORE_OUTBOX_DIR, ENCORE_SMS_*, ENCORE_WEBHOOK_*)."""
    d = Settings
    security = env.get("ENCORE_SMTP_SECURITY", d.smtp_security).lower()
    if security not in ("starttls", "ssl", "none"):
        raise ValueError(f"ENCORE_SMTP_SECURITY must be starttls, ssl or none, not {security!r}")
    return {
        "smtp_host": env.get("ENCORE_SMTP_HOST", d.smtp_host),
        "smtp_port": int(env.get("ENCORE_SMTP_PORT", 465 if security == "ssl" else d.smtp_port)),
        "smtp_security": security,
        "smtp_username": env.get("ENCORE_SMTP_USERNAME", d.smtp_username),
        "smtp_password": env.get("ENCORE_SMTP_PASSWORD", d.smtp_password),
        "smtp_timeout_s": float(env.get("ENCORE_SMTP_TIMEOUT", d.smtp_timeout_s)),
        "email_bounce_address": env.get("ENCORE_EMAIL_BOUNCE_ADDRESS", d.email_bounce_address),
        "email_rate_per_s": float(env.get("ENCORE_EMAIL_RATE", d.email_rate_per_s)),
        "email_burst": int(env.get("ENCORE_EMAIL_BURST", d.email_burst)),
        "outbox_dir": env.get("ENCORE_OUTBOX_DIR") or str(instance / "outbox"),
        "email_sink": env.get("ENCORE_EMAIL_SINK", d.email_sink),
        "sms_api_url": env.get("ENCORE_SMS_API_URL", d.sms_api_url).rstrip("/"),
        "sms_account_sid": env.get("ENCORE_SMS_ACCOUNT_SID", d.sms_account_sid),
        "sms_auth_token": env.get("ENCORE_SMS_AUTH_TOKEN", d.sms_auth_token),
        "sms_from": env.get("ENCORE_SMS_FROM", d.sms_from),
        "sms_status_callback_url": env.get("ENCORE_SMS_STATUS_CALLBACK_URL", d.sms_status_callback_url),
        "sms_rate_per_s": float(env.get("ENCORE_SMS_RATE", d.sms_rate_per_s)),
        "sms_burst": int(env.get("ENCORE_SMS_BURST", d.sms_burst)),
        "webhook_timeout_s": float(env.get("ENCORE_WEBHOOK_TIMEOUT", d.webhook_timeout_s)),
        "webhook_rate_per_s": float(env.get("ENCORE_WEBHOOK_RATE", d.webhook_rate_per_s)),
        "webhook_burst": int(env.get("ENCORE_WEBHOOK_BURST", d.webhook_burst)),
    }


# Every variable Settings.from_env reads: the field it fills ("" when none) and what it means. The README's
# environment reference is rendered from this (environment_reference), and a unit test keeps the two in step.
ENVIRONMENT: dict[str, tuple[str, str]] = {
    "ENCORE_ENV": ("env", "development or test: dev secrets are made under the instance folder; anything else "
                          "(production) refuses to start without every secret"),
    "ENCORE_INSTANCE": ("", "the instance folder (default `instance`): SQLite file, dev secrets, captured email"),
    "DATABASE_URL": ("database_url", "SQLAlchemy URL; postgres:// and postgresql:// are read as psycopg 3 "
                                     "(default: a SQLite file in the instance folder)"),
    "REDIS_URL": ("redis_url", "set: jobs go to RQ on this Redis; unset: an in-process worker thread"),
    "ENCORE_SECRET_KEY": ("secret_key", "signs sessions and customer links; required in production"),
    "ENCORE_ENCRYPTION_KEYS": ("encryption_keys", "comma-separated Fernet keys; the first encrypts, all decrypt "
                                                  "(see key rotation); required in production"),
    "ENCORE_APP_URL": ("app_url", "Encore's public origin, as the stores and customers reach it"),
    "ENCORE_LOG_LEVEL": ("log_level", "DEBUG, INFO, WARNING or ERROR"),
    "ENCORE_QUEUE": ("queue_name", "the RQ queue's name"),
    "ENCORE_QUEUE_SHARDS": ("queue_shards", "how many queues inbox rows are split over by shop (see scaling out); "
                                            "every process must use the same number"),
    "ENCORE_INBOX_LEASE": ("inbox_lease_s", "seconds a worker holds an inbox row it is processing; a row whose "
                                            "lease ran out (its worker died) is handed out again"),
    "ENCORE_INBOX_LOST_AFTER": ("inbox_lost_after_s", "seconds after which a row handed to Redis and still "
                                                      "pending counts as lost and is handed over again"),
    "ENCORE_WEBHOOK_MAX_BYTES": ("webhook_max_bytes", "largest webhook body accepted, in bytes"),
    "SHOPIFY_API_KEY": ("shopify_api_key", "the Shopify app's client id; required in production"),
    "SHOPIFY_API_SECRET": ("shopify_api_secrets", "the Shopify app's client secret; required in production"),
    "SHOPIFY_API_SECRET_OLD": ("shopify_api_secrets", "the previous client secret while Shopify rotates it: "
                                                      "webhooks signed with either verify"),
    "SHOPIFY_SCOPES": ("shopify_scopes", "access scopes asked for at install"),
    "SHOPIFY_SHOP_ORIGIN": ("shopify_shop_origin", "where a shop's Admin API answers; {shop} is its domain"),
    "SHOPIFY_ADMIN_ORIGIN": ("shopify_admin_origin", "Shopify admin's origin (allowed to frame the app)"),
    "SHOPIFY_APP_BRIDGE_URL": ("app_bridge_url", "the App Bridge script the embedded admin loads"),
    "ENCORE_SWEEP_INTERVAL": ("sweep_interval_s", "seconds between the in-process worker's sweeps"),
    "ENCORE_RATE_LIMIT_PAGES": ("rate_limit_pages", "rate limit on every public request, per client"),
    "ENCORE_RATE_LIMIT_WRITES": ("rate_limit_writes", "rate limit on public POSTs, per client"),
    "ENCORE_METRICS_TOKEN": ("metrics_token", "bearer token /metrics requires; empty: /metrics answers 404"),
    "ENCORE_READY_TIMEOUT": ("ready_timeout_s", "seconds /readyz gives the database and Redis each"),
    "ENCORE_SMTP_HOST": ("smtp_host", "SMTP server; empty: email is captured to the outbox folder (development only)"),
    "ENCORE_SMTP_PORT": ("smtp_port", "SMTP port (465 when security is ssl)"),
    "ENCORE_SMTP_SECURITY": ("smtp_security", "starttls, ssl or none"),
    "ENCORE_SMTP_USERNAME": ("smtp_username", "the SMTP login name"),
    "ENCORE_SMTP_PASSWORD": ("smtp_password", "SMTP password"),
    "ENCORE_SMTP_TIMEOUT": ("smtp_timeout_s", "seconds before an SMTP call gives up"),
    "ENCORE_EMAIL_BOUNCE_ADDRESS": ("email_bounce_address", "envelope sender; empty: the shop's From address"),
    "ENCORE_EMAIL_RATE": ("email_rate_per_s", "emails per second, per provider"),
    "ENCORE_EMAIL_BURST": ("email_burst", "emails sent at once before the rate applies"),
    "ENCORE_OUTBOX_DIR": ("outbox_dir", "where captured email is written (default: outbox in the instance folder)"),
    "ENCORE_EMAIL_SINK": ("email_sink", "a journal file: email goes nowhere, one line per send (load tests)"),
    "ENCORE_SMS_API_URL": ("sms_api_url", "base URL of a Twilio-compatible REST API; empty: SMS is off"),
    "ENCORE_SMS_ACCOUNT_SID": ("sms_account_sid", "the SMS account's SID"),
    "ENCORE_SMS_AUTH_TOKEN": ("sms_auth_token", "the SMS account's auth token"),
    "ENCORE_SMS_FROM": ("sms_from", "default sender: an E.164 number or a Messaging Service SID (MG...)"),
    "ENCORE_SMS_STATUS_CALLBACK_URL": ("sms_status_callback_url", "where the SMS provider reports delivery"),
    "ENCORE_SMS_RATE": ("sms_rate_per_s", "SMS per second"),
    "ENCORE_SMS_BURST": ("sms_burst", "SMS sent at once before the rate applies"),
    "ENCORE_WEBHOOK_TIMEOUT": ("webhook_timeout_s", "seconds before an outbound webhook call gives up"),
    "ENCORE_WEBHOOK_RATE": ("webhook_rate_per_s", "outbound webhooks per second, per destination host"),
    "ENCORE_WEBHOOK_BURST": ("webhook_burst", "outbound webhooks sent at once before the rate applies"),
}


def environment_reference() -> str:
    """ENVIRONMENT as a Markdown table: variable, default (the field's, where it has a plain one), meaning."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, (field, meaning) in ENVIRONMENT.items():
        default = getattr(Settings, field, None) if field else None
        shown = f"`{default}`" if isinstance(default, str | int | float) and default != "" else ""
        rows.append(f"| `{name}` | {shown} | {meaning} |")
    return "\n".join(rows) + "\n"
