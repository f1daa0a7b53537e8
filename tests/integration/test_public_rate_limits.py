"""Rate limits on the public endpoints, with the real limits (`Settings` defaults: 60 requests and 10 POSTs a
minute): the limit triggers with 429, Retry-After and a page or JSON in the endpoint's shape, resets when its
minute is over (on a fake clock inside the limits library: never a sleep), counts each address apart and each
store's shopper apart; webhooks and the admin API are never limited."""

from __future__ import annotations

import time
import types
from datetime import UTC, datetime
from typing import Any

import limits.storage.memory
import pytest
from flask.testing import FlaskClient

from app import create_app
from app.bootstrap import Container
from app.config import Settings
from app.db import models as t
from app.links import preferences_url, unsubscribe_url
from app.web.auth import issue_admin_token
from tests.helpers import add_shop, delivery
from tests.integration.test_preferences import path
from tests.integration.test_storefront_proxy import signed

PAGES, WRITES = 60, 10  # Settings' defaults, read back below so a change there is seen here


@pytest.fixture
def client(settings: Settings, container: Container) -> FlaskClient:
    """The app with the real limits (the shared fixtures raise them for the other tests)."""
    real = settings.with_(rate_limit_pages=Settings.rate_limit_pages, rate_limit_writes=Settings.rate_limit_writes)
    return create_app(real, container=container).test_client()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The limits library's memory storage reads time through this: `now[0] += 61` ends a minute."""
    now = [time.time()]
    monkeypatch.setattr(limits.storage.memory, "time", types.SimpleNamespace(time=lambda: now[0]))
    return now


@pytest.fixture
def shop(container: Container) -> int:
    shop_id = add_shop(container)
    with container.sessions() as s, s.begin():
        s.add(t.Customer(shop_id=shop_id, external_id="501", email="ana@example.com",
                         external_updated_at=datetime.now(UTC)))
    return shop_id


def test_the_defaults_are_the_documented_limits() -> None:
    assert (Settings.rate_limit_pages, Settings.rate_limit_writes) == (f"{PAGES}/minute", f"{WRITES}/minute")


def test_a_page_is_limited_per_address_and_the_limit_resets(
        client: FlaskClient, container: Container, shop: int, clock: list[float]) -> None:
    page = path(preferences_url(container.settings, shop, "501"))
    here, there = {"REMOTE_ADDR": "203.0.113.5"}, {"REMOTE_ADDR": "203.0.113.6"}
    assert [client.get(page, environ_base=here).status_code for _ in range(PAGES)] == [200] * PAGES
    refused = client.get(page, environ_base=here, headers={"Accept-Language": "ko"})
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert refused.mimetype == "text/html" and "요청이 너무 많습니다" in refused.text
    assert refused.headers["Cache-Control"] == "no-store"
    # Another address is not affected... (the token's own limit is also 60, so a second address uses another link)
    other = path(preferences_url(container.settings, shop, "501", "en"))
    assert client.get(other, environ_base=there).status_code == 200
    clock[0] += 61  # ...and the first one may come back after the minute
    assert client.get(page, environ_base=here).status_code == 200


def test_one_link_is_limited_whatever_the_address(client: FlaskClient, container: Container, shop: int,
                                                 clock: list[float]) -> None:
    page = path(preferences_url(container.settings, shop, "501"))
    for i in range(PAGES):
        assert client.get(page, environ_base={"REMOTE_ADDR": f"198.51.100.{i + 1}"}).status_code == 200
    assert client.get(page, environ_base={"REMOTE_ADDR": "192.0.2.1"}).status_code == 429
    fresh = path(preferences_url(container.settings, shop, "501", "ja"))
    assert client.get(fresh, environ_base={"REMOTE_ADDR": "192.0.2.1"}).status_code == 200


def test_writes_have_their_own_lower_limit(client: FlaskClient, container: Container, shop: int,
                                          clock: list[float]) -> None:
    link = path(unsubscribe_url(container.settings, shop, "501"))
    post: dict[str, Any] = {"data": {"List-Unsubscribe": "One-Click"}, "environ_base": {"REMOTE_ADDR": "203.0.113.9"}}
    assert [client.post(link, **post).status_code for _ in range(WRITES)] == [200] * WRITES
    assert client.post(link, **post).status_code == 429
    assert client.get(link, environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 200  # reading still works
    clock[0] += 61
    assert client.post(link, **post).status_code == 200


def test_the_storefront_api_is_counted_per_shopper_and_answers_json(
        client: FlaskClient, container: Container, shop: int, clock: list[float]) -> None:
    # Every app proxy request comes from the platform's servers: one address for all shoppers.
    shopify = {"REMOTE_ADDR": "23.227.38.1"}
    for _ in range(PAGES):
        assert client.get(f"/proxy/loyalty?{signed('501')}", environ_base=shopify).status_code != 429
    refused = client.get(f"/proxy/loyalty?{signed('501')}&locale=ja", environ_base=shopify)
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert refused.json is not None and refused.json["error"] == "rate_limited"
    assert "リクエストが多すぎます" in refused.json["message"]
    assert client.get(f"/proxy/loyalty?{signed('502')}", environ_base=shopify).status_code != 429
    landing = client.get(f"/proxy/r/NOPE?{signed(None)}", environ_base=shopify)
    assert landing.status_code == 200


def test_webhooks_and_the_admin_api_are_not_limited(client: FlaskClient, container: Container, shop: int,
                                                   clock: list[float]) -> None:
    token = issue_admin_token(container, shop, "shop-a.myshopify.com")
    for i in range(PAGES + 5):
        body, headers = delivery("customers/update", {"id": 501, "email": "ana@example.com"}, event_id=f"e{i}")
        assert client.post("/webhooks/shopify", data=body, headers=headers).status_code == 200
        assert client.get("/api/admin/overview", headers={"Authorization": f"Bearer {token}"}).status_code == 200


@pytest.mark.parametrize("bad", ["", "sixty a minute", "60/fortnight"])
def test_a_limit_that_does_not_parse_stops_the_start(settings: Settings, container: Container, bad: str) -> None:
    with pytest.raises(ValueError, match="ENCORE_RATE_LIMIT_WRITES"):
        create_app(settings.with_(rate_limit_writes=bad), container=container)
