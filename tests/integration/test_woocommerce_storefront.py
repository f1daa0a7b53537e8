"""The storefront widget's API for a WooCommerce store, as the WordPress plugin forwards and signs it
(connectors/woocommerce/proxy.py; the plugin's side is tests/e2e/test_wordpress_widget.py): a signed request
for the logged-in customer sees their points and redeems a reward in their store; a bad or stale signature is
401 and changes nothing; a store Encore does not have (or no longer has) is 404; nobody logged in is 401
log_in. Requests are signed here from the documented scheme, with hmac, not with Encore's own `sign`."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from app import loyalty, rewards
from app.bootstrap import Container
from app.core.loyalty import Balance, Entry, Posting, Reason
from app.db import models as t
from tests.fakes import FakeStorePlatform
from tests.helpers import add_shop

STORE, SECRET = "https://wp.shop.example", "cs_" + "e5" * 20
CUSTOMER = "12"


def signed(method: str, path: str, query: str = "", body: bytes = b"", *, customer: str = CUSTOMER,
           store: str = STORE, secret: str = SECRET, age: float = 0) -> dict[str, str]:
    """The plugin's headers for one request (the scheme in connectors/woocommerce/proxy.py's docstring)."""
    stamp = str(int(time.time() - age))
    message = "\n".join(["encore-proxy-v1", method, path, query, stamp, store, customer,
                         hashlib.sha256(body).hexdigest()]).encode()
    return {"X-Encore-Store": store, "X-Encore-Customer": customer, "X-Encore-Timestamp": stamp,
            "X-Encore-Signature": hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()}


@pytest.fixture
def shop(container: Container) -> Iterator[dict[str, int]]:
    now = datetime.now(UTC)
    add_shop(container)  # a Shopify shop beside it, whose customer 12 is someone else
    with container.sessions() as s, s.begin():
        woo = t.Shop(platform="woocommerce", domain=STORE, name="WP Shop", api_key=container.vault.seal("ck_" + "f6" * 20),
                     api_secret=container.vault.seal(SECRET), installed_at=now)
        s.add(woo)
        s.flush()
        loyalty.switch_on(s, woo.id, now - timedelta(days=1))
        s.add(t.Customer(shop_id=woo.id, external_id=CUSTOMER, email="ana@example.com", external_updated_at=now))
        loyalty.post(s, woo.id, CUSTOMER, [Posting(Entry(450, Balance.AVAILABLE, Reason.ACTION, "signup"))], now)
        five = rewards.add_reward(s, woo.id, "$5 off", "amount", Decimal("5"), 300, now)
        shop_id = woo.id
    yield {"id": shop_id, "five": five}


def entries(c: Container) -> int:
    with c.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(t.LedgerEntry)) or 0)


def test_the_logged_in_customer_sees_their_balance(client: FlaskClient, shop: dict[str, int]) -> None:
    got = client.get("/proxy/loyalty?locale=en", headers=signed("GET", "/proxy/loyalty", "locale=en"))
    assert got.status_code == 200, got.get_data(as_text=True)
    body: dict[str, Any] = got.get_json()
    assert body["points"] == {"available": 450, "pending": 0}
    assert [(r["title"], r["affordable"]) for r in body["rewards"]] == [("$5 off", True)]


def test_a_signed_redemption_writes_the_code_into_that_store(
        client: FlaskClient, container: Container, shop: dict[str, int], store: FakeStorePlatform) -> None:
    body = b'{"reward_id": %d, "request_key": "click-0001"}' % shop["five"]
    got = client.post("/proxy/loyalty/redeem", data=body, content_type="application/json",
                      headers=signed("POST", "/proxy/loyalty/redeem", body=body))
    assert got.status_code == 201, got.get_data(as_text=True)
    assert store.discounts[got.get_json()["code"].lower()].request.customer_id == CUSTOMER
    again = client.get("/proxy/loyalty", headers=signed("GET", "/proxy/loyalty"))
    assert again.get_json()["points"]["available"] == 150


GET = ("GET", "/proxy/loyalty?locale=en", b"")


def _case(name: str, redeem: bytes) -> tuple[str, str, bytes, dict[str, str]]:
    post = ("POST", "/proxy/loyalty/redeem", redeem)
    return {
        "forged": (*post, signed("POST", "/proxy/loyalty/redeem", body=redeem, secret="cs_" + "00" * 20)),
        "stale": (*post, signed("POST", "/proxy/loyalty/redeem", body=redeem, age=120)),
        "body altered": (*post, signed("POST", "/proxy/loyalty/redeem", body=redeem.replace(b"click", b"clack"))),
        "query altered": (*GET, signed("GET", "/proxy/loyalty", "locale=ja")),
        "customer altered": (*GET, {**signed("GET", "/proxy/loyalty", "locale=en"), "X-Encore-Customer": "13"}),
        "unsigned": (*GET, {"X-Encore-Store": STORE, "X-Encore-Customer": CUSTOMER}),
        "unknown store": (*GET, signed("GET", "/proxy/loyalty", "locale=en", store="https://nobody.example")),
        "logged out": (*GET, signed("GET", "/proxy/loyalty", "locale=en", customer="")),
        "logged out, redeeming": (*post, signed("POST", "/proxy/loyalty/redeem", body=redeem, customer="")),
    }[name]


@pytest.mark.parametrize(("case", "status", "error"), [
    ("forged", 401, "unauthorized"),
    ("stale", 401, "unauthorized"),
    ("body altered", 401, "unauthorized"),
    ("query altered", 401, "unauthorized"),
    ("customer altered", 401, "unauthorized"),
    ("unsigned", 401, "unauthorized"),
    ("unknown store", 404, "unknown_shop"),
    ("logged out", 401, "log_in"),
    ("logged out, redeeming", 401, "log_in"),
])
def test_requests_not_from_the_plugin_or_for_nobody_are_refused(
        client: FlaskClient, container: Container, shop: dict[str, int], store: FakeStorePlatform,
        case: str, status: int, error: str) -> None:
    before = entries(container)
    method, path, body, headers = _case(case, b'{"reward_id": %d, "request_key": "click-0002"}' % shop["five"])
    got = client.open(path, method=method, data=body, headers=headers, content_type="application/json")
    assert (got.status_code, got.get_json()["error"]) == (status, error)
    assert entries(container) == before and store.discounts == {}


def test_a_store_that_disconnected_is_unknown(client: FlaskClient, container: Container, shop: dict[str, int]) -> None:
    with container.sessions() as s, s.begin():
        s.execute(update(t.Shop).where(t.Shop.id == shop["id"]).values(uninstalled_at=datetime.now(UTC)))
    got = client.get("/proxy/loyalty", headers=signed("GET", "/proxy/loyalty"))
    assert (got.status_code, got.get_json()["error"]) == (404, "unknown_shop")
