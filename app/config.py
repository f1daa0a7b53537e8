"""Settings read from the environment once and passed in; never a module global."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

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
    env: str = "development"
    database_url: str = "sqlite:///instance/encore.db"
    redis_url: str | None = None
    secret_key: str = ""
    encryption_keys: tuple[str, ...] = ()
    app_url: str = "http://127.0.0.1:8000"
    log_level: str = "INFO"
    queue_name: str = "encore"
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
    inbox_max_attempts: int = 5

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
            webhook_max_bytes=int(env.get("ENCORE_WEBHOOK_MAX_BYTES", cls.webhook_max_bytes)),
            shopify_api_key=need("SHOPIFY_API_KEY", DEV_API_KEY),
            shopify_api_secrets=(api_secrets, old) if old else (api_secrets,),
            shopify_scopes=env.get("SHOPIFY_SCOPES", cls.shopify_scopes),
            shopify_shop_origin=env.get("SHOPIFY_SHOP_ORIGIN", cls.shopify_shop_origin),
            shopify_admin_origin=env.get("SHOPIFY_ADMIN_ORIGIN", cls.shopify_admin_origin),
            app_bridge_url=env.get("SHOPIFY_APP_BRIDGE_URL", cls.app_bridge_url),
            sweep_interval_s=float(env.get("ENCORE_SWEEP_INTERVAL", cls.sweep_interval_s)),
        )
