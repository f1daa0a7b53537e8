"""WooCommerceClient against the WooCommerce simulator over real HTTP: paging, retries, errors, timeouts.

The simulator is an http:// store, so the `woocommerce` package signs every call with OAuth 1.0a in the query
string and the simulator checks that signature as WC_REST_Authentication does. No test waits for real: every
client gets an injected sleep that records what it was asked to wait.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import woocommerce.api

from app.simulator.woocommerce import ApiKey, WooCommerceSimulator
from connectors.woocommerce.client import (
    WooCommerceAuthError,
    WooCommerceClient,
    WooCommerceError,
    WooCommerceNotFound,
    WooCommerceRetryable,
)

START = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def sim(woocommerce_store: WooCommerceSimulator) -> WooCommerceSimulator:
    return woocommerce_store


@pytest.fixture
def key(sim: WooCommerceSimulator) -> ApiKey:
    return sim.add_key()


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def client(sim: WooCommerceSimulator, key: ApiKey, waits: list[float]) -> WooCommerceClient:
    return WooCommerceClient(sim.origin, key.consumer_key, key.consumer_secret, sleep=waits.append, attempts=4,
                             allow_private=True)


def place(sim: WooCommerceSimulator, n: int) -> list[int]:
    return [sim.place_order(at=START + timedelta(minutes=i), email=f"c{i}@example.com")["id"] for i in range(n)]


def order_pages(sim: WooCommerceSimulator) -> list[str]:
    return [q.get("page", "") for method, path, q in sim.requests if method == "GET" and path == "orders"]


def test_paging_follows_total_pages_and_returns_every_order_in_order(sim: WooCommerceSimulator,
                                                                      client: WooCommerceClient) -> None:
    ids = place(sim, 250)
    pages = list(client.pages("orders", {"orderby": "id", "order": "asc"}))
    assert [len(p) for p in pages] == [100, 100, 50]
    assert [o["id"] for p in pages for o in p] == ids
    assert order_pages(sim) == ["1", "2", "3"]
    assert all(q["per_page"] == "100" for _, path, q in sim.requests if path == "orders")


def test_orders_modified_after_filters_on_the_modification_time(sim: WooCommerceSimulator,
                                                                 client: WooCommerceClient) -> None:
    ids = place(sim, 5)
    got = [o["id"] for o in client.orders_modified_after(START + timedelta(minutes=2))]
    assert got == ids[3:]
    assert sim.requests[-1][2]["modified_after"] == "2026-11-01T00:02:00"
    assert sim.requests[-1][2]["orderby"] == "id"


def test_a_page_failing_once_is_retried_and_nothing_is_skipped(sim: WooCommerceSimulator, client: WooCommerceClient,
                                                              waits: list[float]) -> None:
    ids = place(sim, 250)
    sim.fail_page(2, status=503)
    got = [o["id"] for p in client.pages("orders", {"orderby": "id", "order": "asc"}) for o in p]
    assert got == ids
    assert order_pages(sim) == ["1", "2", "2", "3"]
    assert len(waits) == 1


def test_429_retry_after_is_honoured(sim: WooCommerceSimulator, client: WooCommerceClient,
                                     waits: list[float]) -> None:
    oid = place(sim, 1)[0]
    sim.faults.append(("http", 429, "7"))
    sim.faults.append(("http", 429, "3"))
    assert client.order(oid)["id"] == oid
    assert waits == [7.0, 3.0]  # Retry-After is longer than the backoff, so it wins


def test_persistent_503_raises_retryable_after_the_attempt_limit(sim: WooCommerceSimulator,
                                                                  client: WooCommerceClient,
                                                                  waits: list[float]) -> None:
    sim.faults.extend([("http", 503)] * 10)
    with pytest.raises(WooCommerceRetryable) as caught:
        client.get("orders")
    assert caught.value.status == 503
    assert caught.value.code == "simulated_fault"
    assert len(sim.requests) == 4 and len(waits) == 3
    assert len(sim.faults) == 6


def test_bad_keys_raise_auth_error_with_the_platform_code(sim: WooCommerceSimulator, key: ApiKey,
                                                         waits: list[float]) -> None:
    wrong_secret = WooCommerceClient(sim.origin, key.consumer_key, "cs_wrong", sleep=waits.append, allow_private=True)
    with pytest.raises(WooCommerceAuthError) as caught:
        wrong_secret.system_status()
    assert (caught.value.status, caught.value.code) == (401, "woocommerce_rest_authentication_error")
    assert "signature" in str(caught.value)
    unknown = WooCommerceClient(sim.origin, "ck_unknown", key.consumer_secret, sleep=waits.append, allow_private=True)
    with pytest.raises(WooCommerceAuthError, match="Consumer key is invalid"):
        unknown.get("orders")
    assert waits == []  # an auth error is not retried


def test_good_keys_confirm_with_system_status(sim: WooCommerceSimulator, client: WooCommerceClient) -> None:
    status = client.system_status()
    assert status["environment"]["home_url"] == f"{sim.origin}/"


def test_read_only_keys_cannot_write(sim: WooCommerceSimulator) -> None:
    read = sim.add_key(permissions="read")
    client = WooCommerceClient(sim.origin, read.consumer_key, read.consumer_secret, sleep=lambda s: None, allow_private=True)
    assert client.get("coupons") == []
    with pytest.raises(WooCommerceAuthError, match="write permissions"):
        client.create_coupon("X1", amount="10")


def test_unknown_order_raises_not_found(client: WooCommerceClient) -> None:
    with pytest.raises(WooCommerceNotFound) as caught:
        client.order(999999)
    assert caught.value.code == "woocommerce_rest_shop_order_invalid_id"


def test_coupon_codes_are_unique_in_any_case(sim: WooCommerceSimulator, client: WooCommerceClient) -> None:
    made = client.create_coupon("Thanks-10", amount="10", email_restrictions=["ann@example.com"])
    assert made["code"] == "thanks-10"
    with pytest.raises(WooCommerceError) as caught:
        client.create_coupon("THANKS-10", amount="5")
    assert type(caught.value) is WooCommerceError
    assert (caught.value.status, caught.value.code) == (400, "woocommerce_rest_coupon_code_already_exists")
    found = client.find_coupon("thanks-10")
    assert found is not None and found["id"] == made["id"]
    assert found["email_restrictions"] == ["ann@example.com"]
    assert client.find_coupon("nope") is None
    assert len(sim.coupons) == 1


def test_batch_of_more_than_100_is_refused_and_create_coupons_splits(sim: WooCommerceSimulator,
                                                                    client: WooCommerceClient) -> None:
    too_many = [{"code": f"b{i}", "amount": "5"} for i in range(101)]
    with pytest.raises(WooCommerceError) as caught:
        client.post("coupons/batch", {"create": too_many})
    assert (caught.value.status, caught.value.code) == (413, "woocommerce_rest_request_entity_too_large")
    assert sim.coupons == {}
    results = client.create_coupons([*too_many, {"code": "B0", "amount": "5"}])
    assert [r["code"] for r in results[:101]] == [f"b{i}" for i in range(101)]
    assert results[101]["error"]["code"] == "woocommerce_rest_coupon_code_already_exists"
    assert sum(1 for _, p, _ in sim.requests if p == "coupons/batch") == 3  # the refused one, then 100 + 2


def test_webhook_crud(sim: WooCommerceSimulator, client: WooCommerceClient) -> None:
    made = client.create_webhook("order.updated", "http://127.0.0.1:9/hook", "s3cret-token", status="paused")
    assert (made["status"], made["topic"], made["failure_count"]) == ("paused", "order.updated", 0)
    assert [w["id"] for w in client.webhooks()] == [made["id"]]
    assert client.update_webhook(made["id"], status="disabled")["status"] == "disabled"
    with pytest.raises(WooCommerceError) as caught:
        client.create_webhook("order.exploded", "http://127.0.0.1:9/hook", "x")
    assert caught.value.code == "woocommerce_rest_webhook_invalid_topic"
    assert client.delete_webhook(made["id"])["id"] == made["id"]
    assert client.webhooks() == []
    assert sim.sent == []  # never active, so never pinged


def test_every_request_has_a_timeout(monkeypatch: pytest.MonkeyPatch, sim: WooCommerceSimulator,
                                     key: ApiKey) -> None:
    """The package calls requests.request itself (no session can be injected): record what it passes."""
    calls: list[dict[str, Any]] = []
    real = woocommerce.api.request

    def recording(**kwargs: Any) -> requests.Response:
        calls.append(kwargs)
        response: requests.Response = real(**kwargs)
        return response

    monkeypatch.setattr(woocommerce.api, "request", recording)
    client = WooCommerceClient(sim.origin, key.consumer_key, key.consumer_secret, timeout=(2.0, 9.0),
                               sleep=lambda s: None, allow_private=True)
    place(sim, 3)
    client.system_status()
    list(client.pages("orders", {"per_page": 2}))
    client.create_coupon("t1", amount="1")
    client.delete_webhook(client.create_webhook("order.created", "http://127.0.0.1:9/x", "k", status="paused")["id"])
    assert [c["method"] for c in calls] == ["GET", "GET", "GET", "POST", "POST", "DELETE"]
    assert all(c["timeout"] == (2.0, 9.0) for c in calls)
    assert client.api.timeout == (2.0, 9.0)
    assert all(c["auth"] is None and "oauth_signature=" in c["url"] for c in calls)  # http: OAuth 1.0a


def test_connection_errors_are_retried_then_raised_without_the_url(key: ApiKey, waits: list[float]) -> None:
    dead = WooCommerceClient("http://127.0.0.1:9", key.consumer_key, key.consumer_secret, sleep=waits.append,
                             attempts=3, allow_private=True)
    with pytest.raises(WooCommerceRetryable) as caught:
        dead.get("orders")
    assert len(waits) == 2
    assert key.consumer_key not in str(caught.value) and "ConnectionError" in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_secrets_are_not_in_repr(key: ApiKey) -> None:
    client = WooCommerceClient("https://shop.example.com/", key.consumer_key, key.consumer_secret)
    text = repr(client)
    assert key.consumer_secret not in text and key.consumer_key not in text
    assert text == f"WooCommerceClient(store_url='https://shop.example.com', consumer_key='…{key.consumer_key[-4:]}')"


def test_https_store_gets_basic_auth(monkeypatch: pytest.MonkeyPatch, key: ApiKey) -> None:
    calls: list[dict[str, Any]] = []

    def fake(**kwargs: Any) -> requests.Response:
        calls.append(kwargs)
        response = requests.Response()
        response.status_code, response._content = 200, b"[]"
        response.headers["X-WP-TotalPages"] = "1"
        return response

    monkeypatch.setattr(woocommerce.api, "request", fake)
    client = WooCommerceClient("https://shop.example.com", key.consumer_key, key.consumer_secret)
    assert list(client.pages("customers")) == [[]]
    assert calls[0]["url"] == "https://shop.example.com/wp-json/wc/v3/customers"
    assert calls[0]["params"] == {"per_page": 100, "page": 1}
    assert (calls[0]["auth"].username, calls[0]["auth"].password) == (key.consumer_key, key.consumer_secret)


def test_per_page_above_100_is_a_typed_error_not_retried(client: WooCommerceClient, waits: list[float]) -> None:
    with pytest.raises(WooCommerceError) as caught:
        client.get("orders", {"per_page": 101})
    assert (caught.value.status, caught.value.code) == (400, "rest_invalid_param")
    assert waits == []


def test_fail_page_fails_only_that_page_once(sim: WooCommerceSimulator, client: WooCommerceClient) -> None:
    sim.fail_page(1, status=502)
    assert client.system_status()["settings"]["currency"] == "USD"  # no page asked: not affected
    with pytest.raises(WooCommerceRetryable):
        WooCommerceClient(sim.origin, "ck_x", "cs_x", attempts=1, allow_private=True).get("orders", {"page": 1})
    assert client.get("orders", {"page": 1}) == []
