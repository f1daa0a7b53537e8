"""ShopifyClient against the store simulator over real HTTP: retries, pacing, errors, timeouts, tokens.

No test waits for real: every client gets an injected sleep that records what it was asked to wait.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from app.simulator.shopify import ShopifySimulator
from connectors.shopify.client import (
    API_VERSION,
    ShopifyApiError,
    ShopifyAuthError,
    ShopifyClient,
    ShopifyRetryable,
    ShopifyUserErrors,
    TokenSet,
)
from connectors.shopify.platform import DISCOUNT_CREATE, SHOP_PROFILE
from tests.conftest import API_KEY, API_SECRET

SHOP = "client-store.myshopify.com"
OTHER = "other-store.myshopify.com"


def canned(status: int, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers.update({"Content-Type": "application/json", **(headers or {})})
    response.encoding = "utf-8"
    return response


class RecordingSession(requests.Session):
    """A real session that records every request's keyword arguments, and can answer from a script first."""

    def __init__(self, events: list[tuple[str, Any]] | None = None) -> None:
        super().__init__()
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.script: list[requests.Response] = []
        self.events = events if events is not None else []

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        self.calls.append((str(method), str(url), kwargs))
        self.events.append(("request", str(url)))
        if self.script:
            return self.script.pop(0)
        return super().request(method, url, *args, **kwargs)


@pytest.fixture(scope="module")
def simulator(shopify_store: ShopifySimulator) -> ShopifySimulator:
    return shopify_store


@pytest.fixture
def sim(simulator: ShopifySimulator) -> Iterator[ShopifySimulator]:
    simulator.stores.clear()
    simulator.faults.clear()
    simulator.graphql_calls.clear()
    simulator.token_calls.clear()
    simulator.add_store(SHOP, name="Client Store", currency="EUR", timezone="Europe/Paris", locale="fr")
    simulator.add_store(OTHER, name="Other Store")
    yield simulator
    simulator.faults.clear()


class Harness:
    def __init__(self, sim: ShopifySimulator, **kw: Any) -> None:
        self.events: list[tuple[str, Any]] = []
        self.http = RecordingSession(self.events)
        self.sleeps: list[float] = []
        self.client = ShopifyClient(api_key=API_KEY, api_secret=API_SECRET, shop_origin=sim.shop_origin_template,
                                    session=self.http, sleep=self.sleep, **kw)
        self.sim = sim

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.events.append(("sleep", seconds))

    def token(self, shop: str = SHOP) -> str:
        access = self.client.exchange_id_token(shop, self.sim.session_token(shop)).access_token
        self.http.calls.clear()
        self.events.clear()
        return access

    def graphql_posts(self) -> int:
        return sum(1 for _, url, _ in self.http.calls if url.endswith("/graphql.json"))


@pytest.fixture
def h(sim: ShopifySimulator) -> Harness:
    return Harness(sim)


PROFILE_DATA = {"shop": {"name": "Client Store", "currencyCode": "EUR", "ianaTimezone": "Europe/Paris"},
                "shopLocales": [{"locale": "fr", "primary": True}]}


# --- retries -------------------------------------------------------------------------------------------


def test_throttled_answers_are_retried_with_backoff_until_the_query_succeeds(sim: ShopifySimulator, h: Harness) -> None:
    token = h.token()
    sim.faults.extend([("throttle", 0), ("throttle", 0)])
    assert h.client.graphql(SHOP, token, SHOP_PROFILE) == PROFILE_DATA
    assert sim.faults == []  # both throttled answers were served...
    assert len(sim.graphql_calls) == 1  # ...and the query ran once, on the third request
    assert h.graphql_posts() == 3
    assert h.sleeps == [0.25, 0.5]  # exponential backoff between the attempts


@pytest.mark.parametrize("status", [429, 503])
def test_429_and_503_are_retried(sim: ShopifySimulator, h: Harness, status: int) -> None:
    token = h.token()
    sim.faults.append(("http", status))
    assert h.client.graphql(SHOP, token, SHOP_PROFILE)["shop"]["name"] == "Client Store"
    assert (sim.faults, len(sim.graphql_calls), h.graphql_posts(), h.sleeps) == ([], 1, 2, [0.25])


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured_when_longer_than_the_backoff(sim: ShopifySimulator, h: Harness, status: int) -> None:
    token = h.token()
    h.http.script.append(canned(status, {"errors": "slow down"}, {"Retry-After": "7.5"}))
    assert h.client.graphql(SHOP, token, SHOP_PROFILE) == PROFILE_DATA
    assert h.sleeps == [7.5]
    assert (h.graphql_posts(), len(sim.graphql_calls)) == (2, 1)


def test_retry_after_as_an_http_date_is_waited_for_not_a_crash(sim: ShopifySimulator, h: Harness) -> None:
    token = h.token()
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    h.http.script.append(canned(503, {"errors": "maintenance"}, {"Retry-After": when}))
    assert h.client.graphql(SHOP, token, SHOP_PROFILE) == PROFILE_DATA
    assert len(h.sleeps) == 1 and 25 <= h.sleeps[0] <= 30


def test_a_persistent_503_raises_after_the_attempt_limit(sim: ShopifySimulator) -> None:
    h = Harness(sim, attempts=3)
    token = h.token()
    sim.faults.extend([("http", 503)] * 10)
    with pytest.raises(ShopifyRetryable, match="HTTP 503"):
        h.client.graphql(SHOP, token, SHOP_PROFILE)
    assert len(sim.faults) == 7  # exactly three attempts reached the store
    assert (h.graphql_posts(), len(sim.graphql_calls), h.sleeps) == (3, 0, [0.25, 0.5])


def test_network_errors_are_retried_then_raised(sim: ShopifySimulator) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps: list[float] = []
    client = ShopifyClient(api_key=API_KEY, api_secret=API_SECRET, shop_origin=f"http://127.0.0.1:{port}/{{shop}}",
                           attempts=3, sleep=sleeps.append)
    with pytest.raises(requests.ConnectionError):
        client.graphql(SHOP, "shpat_x", SHOP_PROFILE)
    assert sleeps == [0.25, 0.5]


# --- errors that are not retried ------------------------------------------------------------------------


def test_user_errors_raise_shopify_user_errors_with_the_messages(sim: ShopifySimulator, h: Harness) -> None:
    token = h.token()
    discount = {"title": "t", "code": "DUP", "customerSelection": {"all": True},
                "customerGets": {"value": {"percentage": 0.1}, "items": {"all": True}}}
    first = h.client.graphql(SHOP, token, DISCOUNT_CREATE, {"discount": discount},
                             user_errors_at="discountCodeBasicCreate")
    assert first["discountCodeBasicCreate"]["codeDiscountNode"]["id"].startswith("gid://shopify/DiscountCodeNode/")
    with pytest.raises(ShopifyUserErrors) as caught:
        h.client.graphql(SHOP, token, DISCOUNT_CREATE, {"discount": discount}, user_errors_at="discountCodeBasicCreate")
    assert str(caught.value) == "Code must be unique."
    assert caught.value.errors == [{"field": ["basicCodeDiscount", "code"], "code": "TAKEN",
                                    "message": "Code must be unique."}]
    assert h.graphql_posts() == 2 and h.sleeps == []  # a user error is an answer, not retried
    assert list(sim.stores[SHOP].discounts) == ["dup"]


def test_user_errors_are_ignored_unless_asked_for(sim: ShopifySimulator, h: Harness) -> None:
    token = h.token()
    discount = {"title": "t", "code": "DUP2", "customerSelection": {"all": True},
                "customerGets": {"value": {"percentage": 0.1}, "items": {"all": True}}}
    h.client.graphql(SHOP, token, DISCOUNT_CREATE, {"discount": discount})
    data = h.client.graphql(SHOP, token, DISCOUNT_CREATE, {"discount": discount})
    assert data["discountCodeBasicCreate"]["userErrors"][0]["code"] == "TAKEN"


def test_an_invalid_token_raises_auth_error_without_retrying(sim: ShopifySimulator, h: Harness) -> None:
    h.token()
    with pytest.raises(ShopifyAuthError, match="HTTP 401"):
        h.client.graphql(SHOP, "shpat_" + "0" * 32, SHOP_PROFILE)
    assert (h.graphql_posts(), h.sleeps, sim.graphql_calls) == (1, [], [])


def test_top_level_graphql_errors_raise_api_error(sim: ShopifySimulator, h: Harness) -> None:
    token = h.token()
    with pytest.raises(ShopifyApiError, match="query not supported by the simulator") as caught:
        h.client.graphql(SHOP, token, "query { products(first: 1) { nodes { id } } }")
    assert type(caught.value) is ShopifyApiError and h.graphql_posts() == 1


# --- cost-based pacing ---------------------------------------------------------------------------------


def _low_bucket(available: float, restore: float) -> requests.Response:
    return canned(200, {"data": PROFILE_DATA, "extensions": {"cost": {
        "requestedQueryCost": 50, "actualQueryCost": 40,
        "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": available, "restoreRate": restore}}}})


def test_after_a_low_bucket_the_next_query_waits_for_it_to_refill(sim: ShopifySimulator, h: Harness) -> None:
    token = h.token()
    h.http.script.append(_low_bucket(available=10.0, restore=50.0))
    h.client.graphql(SHOP, token, SHOP_PROFILE)
    assert h.sleeps == []  # nothing was known about the bucket before the first answer
    assert h.client.graphql(SHOP, token, SHOP_PROFILE, expected_cost=60.0) == PROFILE_DATA
    # (60 needed - 10 available) / 50 restored per second = 1 s, less the moments between the calls
    assert len(h.sleeps) == 1 and 0.8 < h.sleeps[0] <= 1.0
    kinds = [kind for kind, _ in h.events]
    assert kinds == ["request", "sleep", "request"]  # the wait comes before the second request


def test_a_full_bucket_or_another_shop_does_not_wait(sim: ShopifySimulator, h: Harness) -> None:
    token, other = h.token(), h.token(OTHER)
    h.http.script.append(_low_bucket(available=10.0, restore=50.0))
    h.client.graphql(SHOP, token, SHOP_PROFILE)
    h.client.graphql(OTHER, other, SHOP_PROFILE, expected_cost=60.0)  # each shop has its own bucket
    assert h.sleeps == []
    h.client.graphql(SHOP, token, SHOP_PROFILE, expected_cost=5.0)  # 10 available covers a cost of 5
    assert h.sleeps == []
    h.client.graphql(SHOP, token, SHOP_PROFILE, expected_cost=60.0)  # the simulator reported 1990 left
    assert h.sleeps == []


# --- timeouts ------------------------------------------------------------------------------------------


def test_every_request_has_a_timeout(sim: ShopifySimulator) -> None:
    h = Harness(sim, timeout=(1.5, 9.0))
    tokens = h.client.exchange_id_token(SHOP, sim.session_token(SHOP))
    h.client.graphql(SHOP, tokens.access_token, SHOP_PROFILE)
    assert tokens.refresh_token is not None
    h.client.refresh(SHOP, tokens.refresh_token)
    with pytest.raises(ShopifyAuthError):
        h.client.exchange_code(SHOP, "no-such-code")
    assert [urlsplit(url).path.rsplit("/", 1)[-1] for _, url, _ in h.http.calls] == [
        "access_token", "graphql.json", "access_token", "access_token"]
    assert [kw.get("timeout") for _, _, kw in h.http.calls] == [(1.5, 9.0)] * 4


def test_the_default_timeout_is_finite() -> None:
    client = ShopifyClient(api_key=API_KEY, api_secret=API_SECRET)
    connect, read = client.timeout
    assert 0 < connect <= 10 and 0 < read <= 60


# --- tokens --------------------------------------------------------------------------------------------


def _assert_tokens(tokens: TokenSet, sim: ShopifySimulator, before: float) -> None:
    held = sim.stores[SHOP].tokens
    assert held is not None
    assert (tokens.access_token, tokens.refresh_token) == (held.access, held.refresh)
    assert tokens.scope == "read_orders,read_customers,read_products,write_discounts"
    assert tokens.expires_at is not None and tokens.refresh_expires_at is not None
    issued = datetime.fromtimestamp(before, UTC)
    assert timedelta(seconds=3599) <= tokens.expires_at - issued <= timedelta(seconds=3605)
    assert timedelta(days=90) - timedelta(seconds=1) <= tokens.refresh_expires_at - issued <= timedelta(days=90, seconds=5)
    for text in (repr(tokens), str(tokens), f"{tokens}", f"{[tokens]}"):
        assert held.access not in text and held.refresh not in text
        assert "TokenSet(" in text


def test_token_exchange_gives_an_expiring_token_that_repr_never_shows(sim: ShopifySimulator, h: Harness) -> None:
    before = time.time()
    tokens = h.client.exchange_id_token(SHOP, sim.session_token(SHOP))
    _assert_tokens(tokens, sim, before)
    sent = h.http.calls[0][2]["json"]
    assert (sent["grant_type"], sent["requested_token_type"], sent["expiring"]) == (
        "urn:ietf:params:oauth:grant-type:token-exchange", "urn:shopify:params:oauth:token-type:offline-access-token", 1)
    assert sim.token_calls == ["urn:ietf:params:oauth:grant-type:token-exchange"]


def test_a_refused_id_token_raises_auth_error(sim: ShopifySimulator, h: Harness) -> None:
    with pytest.raises(ShopifyAuthError, match="token request refused for client-store.myshopify.com"):
        h.client.exchange_id_token(SHOP, sim.session_token(SHOP, secret="shpss_not_the_app_secret_0123456789abcdef"))
    assert sim.stores[SHOP].tokens is None and h.sleeps == []


def test_authorization_code_gives_a_token_set(sim: ShopifySimulator, h: Harness) -> None:
    query = urlencode({"client_id": API_KEY, "redirect_uri": "http://127.0.0.1:1/shopify/callback", "state": "s1"})
    answer = requests.get(f"{sim.origin}/shops/{SHOP}/admin/oauth/authorize?{query}", allow_redirects=False, timeout=5)
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    before = time.time()
    tokens = h.client.exchange_code(SHOP, code)
    _assert_tokens(tokens, sim, before)
    assert sim.token_calls == ["authorization_code"]
    with pytest.raises(ShopifyAuthError):  # a code is good once
        h.client.exchange_code(SHOP, code)


def test_refresh_rotates_the_refresh_token_and_spends_the_old_one(sim: ShopifySimulator, h: Harness) -> None:
    first = h.client.exchange_id_token(SHOP, sim.session_token(SHOP))
    assert first.refresh_token is not None
    before = time.time()
    second = h.client.refresh(SHOP, first.refresh_token)
    _assert_tokens(second, sim, before)
    assert second.access_token != first.access_token and second.refresh_token != first.refresh_token
    with pytest.raises(ShopifyAuthError):
        h.client.refresh(SHOP, first.refresh_token)
    assert sim.token_calls == ["urn:ietf:params:oauth:grant-type:token-exchange", "refresh_token", "refresh_token"]


def test_a_rejected_token_request_is_not_retried_but_a_503_is(sim: ShopifySimulator, h: Harness) -> None:
    h.http.script.append(canned(503, {"errors": "down"}, {"Retry-After": "0"}))
    tokens = h.client.exchange_id_token(SHOP, sim.session_token(SHOP))
    assert tokens.access_token == sim.stores[SHOP].tokens.access  # type: ignore[union-attr]
    assert (len(h.http.calls), h.sleeps) == (2, [0.25])
    wrong = ShopifyClient(api_key=API_KEY, api_secret="shpss_wrong", shop_origin=sim.shop_origin_template,
                          session=h.http, sleep=h.sleep)
    with pytest.raises(ShopifyAuthError):
        wrong.exchange_id_token(SHOP, sim.session_token(SHOP))
    assert (len(h.http.calls), h.sleeps) == (3, [0.25])


def test_graphql_goes_to_the_pinned_api_version(sim: ShopifySimulator, h: Harness) -> None:
    token = h.token()
    h.client.graphql(SHOP, token, SHOP_PROFILE)
    method, url, kw = h.http.calls[0]
    assert (method, url) == ("POST", f"{sim.origin}/shops/{SHOP}/admin/api/{API_VERSION}/graphql.json")
    assert kw["headers"]["X-Shopify-Access-Token"] == token
