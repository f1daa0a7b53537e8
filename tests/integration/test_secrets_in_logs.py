"""Secrets never reach the logs: an install (OAuth with the store simulator), a webhook, a redemption through the
storefront proxy and a message send (a journey's test send) run over real HTTP with every log line captured (the
structured JSON on stderr and the standard logging records), and no access token, API secret, webhook secret,
encryption key, secret key, session token or customer email address appears in that text."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet
from sqlalchemy import select

from app import loyalty, rewards
from app.config import Settings
from app.core.loyalty import Balance, Entry, Posting, Reason
from app.db import models as t
from app.web.auth import issue_admin_token
from tests.conftest import API_SECRET
from tests.fakes import FakeStorePlatform
from tests.helpers import delivery
from tests.integration.test_shopify_auth import install
from tests.integration.test_storefront_proxy import signed

SHOP = "log-store.myshopify.com"
SHOPPER = "private.shopper+vip@example.com"
MERCHANT = "owner.private@example.com"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A secret key long enough to look for (the shared one is "test")."""
    return settings.with_(secret_key="sk-" + Fernet.generate_key().decode(), log_level="INFO")


def test_an_install_a_webhook_a_redemption_and_a_send_log_no_secret(
        live: Any, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    server, sim, c = live
    caplog.set_level(logging.DEBUG)
    store = FakeStorePlatform()
    monkeypatch.setattr("app.shops.store_platform", lambda c, shop_id: store)
    sim.add_store(SHOP, name="Log Store", currency="USD", timezone="UTC", locale="en")

    shop_id = install(server, sim, c, SHOP)
    c.queue.drain(30)
    with c.sessions() as s, s.begin():
        shop = s.get(t.Shop, shop_id)
        assert shop is not None and shop.access_token is not None
        access_token = c.vault.open(shop.access_token)
        webhook_secret = c.vault.open(shop.webhook_secret) if getattr(shop, "webhook_secret", None) else None
        s.add(t.Customer(shop_id=shop_id, external_id="8001", email=SHOPPER, external_updated_at=shop.installed_at))
        loyalty.switch_on(s, shop_id, shop.installed_at)
        loyalty.post(s, shop_id, "8001", [Posting(Entry(900, Balance.AVAILABLE, Reason.ACTION, "signup"))],
                     shop.installed_at)
        reward = rewards.add_reward(s, shop_id, "$5 off", "amount", Decimal("5"), 300, shop.installed_at)

    body, headers = delivery("customers/update", {"id": 8001, "email": SHOPPER, "first_name": "Private"},
                             shop=SHOP, event_id="log-1")
    assert requests.post(f"{server.url}/webhooks/shopify", data=body, headers=headers, timeout=10).status_code == 200
    redeemed = requests.post(f"{server.url}/proxy/loyalty/redeem?{signed('8001', shop=SHOP)}",
                             json={"reward_id": reward, "request_key": "log-redeem-1"}, timeout=10)
    assert redeemed.status_code == 201, redeemed.text
    session = issue_admin_token(c, shop_id, SHOP)
    shopify_session = sim.session_token(SHOP)
    for token in (session, shopify_session):
        sent = requests.post(f"{server.url}/api/admin/journeys/thank_you/test", json={"email": MERCHANT},
                             headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert sent.status_code == 200, sent.text
    c.queue.drain(30)
    with c.sessions() as s:
        assert s.scalars(select(t.Redemption).where(t.Redemption.shop_id == shop_id)).first() is not None

    out, err = capfd.readouterr()
    logged = out + err + "\n".join(r.getMessage() for r in caplog.records)
    assert '"event"' in logged  # the structured lines were captured, so the checks below can fail
    secrets = {"access token": access_token, "API secret": API_SECRET, "encryption key": c.settings.encryption_keys[0],
               "secret key": c.settings.secret_key, "admin session token": session,
               "Shopify session token": shopify_session, "customer email": SHOPPER, "merchant email": MERCHANT}
    if webhook_secret:
        secrets["webhook secret"] = webhook_secret
    found = {name for name, value in secrets.items() if value and value.lower() in logged.lower()}
    assert not found, f"in the logs: {sorted(found)}"


def test_a_failed_statement_does_not_carry_its_parameters_into_the_log(container: Any) -> None:
    """SQLAlchemy writes a failed statement's parameters into its error, and the error goes to the log (an inbox
    row that fails logs its traceback): the engine hides them, on SQLite and on PostgreSQL alike."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    with pytest.raises(DBAPIError) as failed, container.sessions() as s:
        s.execute(text("SELECT :email FROM no_such_table"), {"email": SHOPPER})
    assert SHOPPER not in str(failed.value) and "no_such_table" in str(failed.value)
    assert "parameters hidden" in str(failed.value)
