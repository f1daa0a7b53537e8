"""Installing a shop, keeping its access token fresh, and rotating the key its tokens are sealed with."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import delete, select

from app.core.ports import ShopProfile, StorePlatform
from app.db.engine import rowcount
from app.db.models import InstallNonce, Shop
from app.journeys import install_defaults
from connectors.shopify.client import ShopifyAuthError, TokenSet
from connectors.shopify.platform import ShopifyPlatform
from connectors.woocommerce.platform import WooCommercePlatform

if TYPE_CHECKING:
    from app.bootstrap import Container

log = structlog.get_logger(__name__)
REFRESH_AHEAD = timedelta(minutes=5)
KEEP_ALIVE = timedelta(days=7)
_local_locks: dict[int, threading.Lock] = {}
_guard = threading.Lock()


class NotInstalled(Exception):
    pass


def _seal(c: Container, shop: Shop, tokens: TokenSet) -> None:
    """Save all four token values together; the caller commits them in one transaction."""
    shop.access_token = c.vault.seal(tokens.access_token)
    shop.access_expires_at = tokens.expires_at
    shop.refresh_token = c.vault.seal(tokens.refresh_token)
    shop.refresh_expires_at = tokens.refresh_expires_at
    if tokens.scope:
        shop.scopes = tokens.scope


def install_shopify(c: Container, domain: str, tokens: TokenSet) -> int:
    """Record an install (or a re-install) with fresh tokens, then fill the shop's profile from the store."""
    now = datetime.now(UTC)
    with c.sessions() as s, s.begin():
        shop = s.scalars(select(Shop).where(Shop.platform == "shopify", Shop.domain == domain).with_for_update()).first()
        if shop is None:
            shop = Shop(platform="shopify", domain=domain)
            s.add(shop)
        fresh = not shop.installed
        if fresh:
            shop.installed_at, shop.uninstalled_at = now, None
        _seal(c, shop, tokens)
        s.flush()
        shop_id = shop.id
        install_defaults(s, shop_id)  # the journey library, ready to switch on
    c.shops.forget("shopify", domain)
    try:
        profile = platform_for(c, shop_id).shop_profile()
    except Exception as exc:  # the install stands; the profile is filled on the next visit
        log.warning("shop_profile_failed", shop_id=shop_id, error=str(exc))
    else:
        save_profile(c, shop_id, profile)
    if fresh:  # a new install (or a return): bring in the store's past customers and orders
        from app import imports

        imports.start(c, shop_id)
    log.info("shop_installed", shop_id=shop_id, platform="shopify")
    return shop_id


def save_profile(c: Container, shop_id: int, profile: ShopProfile) -> None:
    with c.sessions() as s, s.begin():
        shop = s.get(Shop, shop_id)
        if shop is not None:
            shop.name, shop.currency, shop.timezone = profile.name, profile.currency, profile.timezone
            shop.locale = profile.locale


def _lock_for(shop_id: int) -> threading.Lock:
    with _guard:
        return _local_locks.setdefault(shop_id, threading.Lock())


def access_token(c: Container, shop_id: int, *, now: datetime | None = None, force: bool = False) -> str:
    """The shop's offline access token, refreshed first when it expires within five minutes.

    One refresh at a time per shop: a thread lock in this process, and the shop row locked FOR UPDATE
    across processes (PostgreSQL), re-checked after the lock so a second caller uses the first's result.
    """
    def fresh(shop: Shop, at: datetime) -> bool:
        if force and shop.refresh_expires_at is not None and shop.refresh_expires_at - at < KEEP_ALIVE:
            return False
        return shop.access_expires_at is None or shop.access_expires_at - at > REFRESH_AHEAD

    at = now or datetime.now(UTC)
    with c.sessions() as s:
        shop = s.get(Shop, shop_id)
        if shop is None or not shop.installed or shop.access_token is None:
            raise NotInstalled(shop_id)
        if fresh(shop, at):
            return c.vault.open(shop.access_token) or ""
    with _lock_for(shop_id), c.sessions() as s, s.begin():
        shop = s.scalars(select(Shop).where(Shop.id == shop_id).with_for_update()).one()
        if fresh(shop, at):
            return c.vault.open(shop.access_token) or ""
        refresh = c.vault.open(shop.refresh_token)
        if not refresh:
            raise NotInstalled(shop_id)
        try:
            tokens = c.shopify.refresh(shop.domain, refresh)
        except ShopifyAuthError:
            log.warning("token_refresh_refused", shop_id=shop_id)
            raise
        _seal(c, shop, tokens)
        log.info("token_refreshed", shop_id=shop_id)
        return tokens.access_token


def keep_alive(c: Container, *, now: datetime | None = None) -> int:
    """Refresh the tokens of installed shops whose refresh token lapses within a week, so that a shop with
    no activity for months never has to authorise Encore again. Returns how many were refreshed."""
    at = now or datetime.now(UTC)
    with c.sessions() as s:
        due = list(s.scalars(select(Shop.id).where(
            Shop.uninstalled_at.is_(None), Shop.refresh_token.is_not(None), Shop.refresh_expires_at < at + KEEP_ALIVE)))
    done = 0
    for shop_id in due:
        try:
            access_token(c, shop_id, now=at, force=True)
            done += 1
        except (ShopifyAuthError, NotInstalled) as exc:
            log.warning("token_keep_alive_failed", shop_id=shop_id, error=type(exc).__name__)
    return done


def platform_for(c: Container, shop_id: int) -> ShopifyPlatform:
    with c.sessions() as s:
        shop = s.get(Shop, shop_id)
        if shop is None:
            raise NotInstalled(shop_id)
        domain = shop.domain
    return ShopifyPlatform(c.shopify, domain, lambda: access_token(c, shop_id))


def store_platform(c: Container, shop_id: int) -> StorePlatform:
    """The shop's store, whichever platform it runs on: Shopify (GraphQL, with a fresh access token each call)
    or WooCommerce (REST, with the keys the store gave)."""
    with c.sessions() as s:
        platform = s.scalar(select(Shop.platform).where(Shop.id == shop_id))
    if platform is None:
        raise NotInstalled(shop_id)
    if platform == "woocommerce":
        from app.connections import ConnectRefused, store_client  # connections imports what imports this

        try:
            client, _ = store_client(c, shop_id)
        except ConnectRefused as exc:
            raise NotInstalled(shop_id) from exc
        return WooCommercePlatform(client)
    return platform_for(c, shop_id)


def rotate_keys(c: Container) -> int:
    """Re-seal every encrypted column (Shopify's tokens, WooCommerce's keys and webhook secret) under the first
    configured key; returns how many shops were touched. Running it again only re-seals under the same key."""
    count = 0
    with c.sessions() as s, s.begin():
        for shop in s.scalars(select(Shop).with_for_update()):
            shop.access_token = c.vault.reseal(shop.access_token)
            shop.refresh_token = c.vault.reseal(shop.refresh_token)
            shop.api_key, shop.api_secret = c.vault.reseal(shop.api_key), c.vault.reseal(shop.api_secret)
            shop.webhook_secret = c.vault.reseal(shop.webhook_secret)
            count += 1
    return count


def forget_spent_nonces(c: Container, *, now: datetime | None = None) -> int:
    """Delete install, connect and sign-in nonces a day past their expiry: an expired one is refused anyway
    (every check compares expires_at), so keeping it proves nothing. Returns how many went."""
    at = now or datetime.now(UTC)
    with c.sessions() as s, s.begin():
        return rowcount(s.execute(delete(InstallNonce).where(InstallNonce.expires_at < at - timedelta(days=1))))
