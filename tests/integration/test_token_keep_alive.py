"""A quiet shop's refresh token is renewed before it lapses; a fresh one is left alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from sqlalchemy import select, update

from app import shops
from app.db.models import InstallNonce, Shop

SHOP = "quiet-shop.myshopify.com"


def test_keep_alive_refreshes_only_refresh_tokens_about_to_lapse(live: Any) -> None:
    server, sim, c = live
    sim.add_store(SHOP)
    assert requests.get(sim.embedded_app_url(SHOP), timeout=10).status_code == 200
    assert shops.keep_alive(c) == 0  # a refresh token good for 90 days needs nothing
    with c.sessions() as s, s.begin():
        s.execute(update(Shop).values(refresh_expires_at=datetime.now(UTC) + timedelta(days=2)))
    before = sim.stores[SHOP].tokens.refresh
    assert shops.keep_alive(c) == 1
    assert sim.token_calls[-1] == "refresh_token"
    with c.sessions() as s:
        shop = s.scalars(select(Shop)).one()
        assert shop.refresh_expires_at is not None and shop.refresh_expires_at > datetime.now(UTC) + timedelta(days=80)
        assert c.vault.open(shop.refresh_token) == sim.stores[SHOP].tokens.refresh != before


def test_spent_nonces_are_forgotten_a_day_after_they_expire(container: Any) -> None:
    now = datetime.now(UTC)
    with container.sessions() as s, s.begin():
        for name, expires in (("old", now - timedelta(days=2)), ("recent", now - timedelta(hours=2)),
                              ("live", now + timedelta(minutes=5))):
            s.add(InstallNonce(nonce=name, platform="wordpress", shop_domain="http://store.test", expires_at=expires,
                               used_at=now))
    assert shops.forget_spent_nonces(container, now=now) == 1
    with container.sessions() as s:
        assert sorted(s.scalars(select(InstallNonce.nonce))) == ["live", "recent"]
