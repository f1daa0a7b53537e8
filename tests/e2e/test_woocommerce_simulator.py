"""The WooCommerce simulator end to end over real HTTP: the wc-auth key flow against a test callback server, and
webhooks as WooCommerce sends them (ping first, then signed deliveries Encore's own verify/translate accept;
no retries; disabled after a run of failures)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask, request
from werkzeug.datastructures import Headers
from werkzeug.serving import make_server

from app.core import commands as c
from app.simulator.woocommerce import WooCommerceSimulator
from connectors.base import Delivery, Rejection
from connectors.woocommerce.client import WooCommerceAuthError, WooCommerceClient
from connectors.woocommerce.translate import translate
from connectors.woocommerce.verify import normalize_store_url, parse_ping, verify_webhook

SECRET = "hook-secret-5a9d1f0c7e"


@dataclass
class Received:
    path: str
    body: bytes
    headers: Headers  # case-insensitive, as Encore's endpoint sees them


@dataclass
class Receiver:
    """A tiny stand-in for Encore's endpoints: records every request and answers `status[path]`."""

    origin: str = ""
    status: dict[str, int] = field(default_factory=dict)
    got: list[Received] = field(default_factory=list)

    def on(self, path: str) -> list[Received]:
        return [r for r in self.got if r.path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    app = Flask("receiver")

    @app.route("/<path:path>", methods=["GET", "POST"])
    def anything(path: str) -> tuple[str, int]:
        rec.got.append(Received(f"/{path}", request.get_data(), Headers(request.headers)))
        return "ok", rec.status.get(f"/{path}", 200)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    rec.origin = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield rec
    server.shutdown()
    server.server_close()


@pytest.fixture
def sim(woocommerce_store: WooCommerceSimulator) -> WooCommerceSimulator:
    return woocommerce_store


def authorize(sim: WooCommerceSimulator, receiver: Receiver, user_id: str) -> requests.Response:
    url = sim.authorize_url(app_name="Encore", scope="read_write", user_id=user_id,
                            return_url=f"{receiver.origin}/return?x=1", callback_url=f"{receiver.origin}/callback")
    return requests.get(url, allow_redirects=False, timeout=10)


# --- wc-auth --------------------------------------------------------------------------------------------------


def test_wc_auth_keeps_the_key_when_the_callback_answers_200(sim: WooCommerceSimulator, receiver: Receiver) -> None:
    answer = authorize(sim, receiver, "nonce-42")
    assert answer.status_code == 302
    target = urlsplit(answer.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{receiver.origin}/return"
    assert parse_qs(target.query) == {"x": ["1"], "success": ["1"], "user_id": ["nonce-42"]}
    [callback] = receiver.on("/callback")
    assert callback.headers["Content-Type"] == "application/json;charset=UTF-8"
    data = json.loads(callback.body)
    assert sorted(data) == ["consumer_key", "consumer_secret", "key_id", "key_permissions", "user_id"]
    assert (data["user_id"], data["key_permissions"]) == ("nonce-42", "read_write")
    assert data["consumer_key"].startswith("ck_") and data["consumer_secret"].startswith("cs_")
    assert list(sim.keys) == [data["consumer_key"]]
    client = WooCommerceClient(sim.origin, data["consumer_key"], data["consumer_secret"], sleep=lambda s: None,
                               allow_private=True)
    assert normalize_store_url(client.system_status()["environment"]["home_url"]) == normalize_store_url(sim.origin)


@pytest.mark.parametrize("status", [500, 201])
def test_wc_auth_deletes_the_key_unless_the_callback_answers_exactly_200(sim: WooCommerceSimulator,
                                                                         receiver: Receiver, status: int) -> None:
    receiver.status["/callback"] = status
    answer = authorize(sim, receiver, "nonce-43")
    assert answer.status_code == 401
    assert "unable to send the consumer data" in answer.text
    assert receiver.on("/return") == [] and "Location" not in answer.headers
    data = json.loads(receiver.on("/callback")[0].body)
    assert sim.keys == {}
    assert [k.consumer_key for k in sim.deleted_keys] == [data["consumer_key"]]
    client = WooCommerceClient(sim.origin, data["consumer_key"], data["consumer_secret"], sleep=lambda s: None,
                               allow_private=True)
    with pytest.raises(WooCommerceAuthError, match="Consumer key is invalid"):
        client.system_status()


def test_wc_auth_refuses_a_bad_scope(sim: WooCommerceSimulator, receiver: Receiver) -> None:
    url = sim.authorize_url(app_name="Encore", scope="admin", user_id="u", return_url=f"{receiver.origin}/r",
                            callback_url=f"{receiver.origin}/callback")
    assert requests.get(url, allow_redirects=False, timeout=10).status_code == 400
    assert receiver.got == [] and sim.keys == {}


# --- webhooks -------------------------------------------------------------------------------------------------


@pytest.fixture
def client(sim: WooCommerceSimulator) -> WooCommerceClient:
    key = sim.add_key()
    return WooCommerceClient(sim.origin, key.consumer_key, key.consumer_secret, sleep=lambda s: None, allow_private=True)


def hook(client: WooCommerceClient, receiver: Receiver, topic: str) -> dict[str, Any]:
    return client.create_webhook(topic, f"{receiver.origin}/webhooks/woocommerce", SECRET)


def accepted(received: Received) -> tuple[Delivery, list[c.Command]]:
    delivery = verify_webhook(received.body, received.headers, SECRET)
    assert isinstance(delivery, Delivery), delivery
    return delivery, translate(1, delivery.topic, json.loads(received.body))


def test_a_new_webhook_pings_first_then_sends_signed_deliveries(sim: WooCommerceSimulator, receiver: Receiver,
                                                                client: WooCommerceClient) -> None:
    created = hook(client, receiver, "order.created")
    updated = hook(client, receiver, "order.updated")
    ping = receiver.got[0]
    assert ping.body == f"webhook_id={created['id']}".encode()
    assert ping.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert not any(k.lower().startswith("x-wc-") for k in ping.headers.keys())
    assert parse_ping(ping.body, ping.headers["Content-Type"]) == created["id"]
    assert parse_ping(receiver.got[1].body, receiver.got[1].headers["Content-Type"]) == updated["id"]

    order = sim.place_order(email="mina@example.com", lines=[("Mug", 2, "12.50"), ("Beans", 1, "18.00")])
    first = receiver.got[2]
    assert first.headers["X-WC-Webhook-Topic"] == "order.created"
    assert first.headers["X-WC-Webhook-ID"] == str(created["id"])
    assert (first.headers["X-WC-Webhook-Resource"], first.headers["X-WC-Webhook-Event"]) == ("order", "created")
    assert first.headers["X-WC-Webhook-Source"] == f"{sim.origin}/"
    assert len(first.headers["X-WC-Webhook-Delivery-ID"]) == 32
    delivery, commands = accepted(first)
    assert (delivery.shop_domain, delivery.topic) == (sim.origin, "order.created")
    [observe] = commands
    assert isinstance(observe, c.ObserveOrder)
    record = observe.order
    assert (record.external_id, record.total, record.currency) == (str(order["id"]), Decimal("43.00"), "USD")
    assert record.email == "mina@example.com"
    assert [(x.title, x.quantity, x.price) for x in record.lines] == [("Mug", 2, Decimal("12.50")),
                                                                       ("Beans", 1, Decimal("18.00"))]
    assert json.loads(first.body)["date_created_gmt"] == order["date_created_gmt"]
    assert "+" not in order["date_created_gmt"] and not order["date_created_gmt"].endswith("Z")

    wrong = verify_webhook(first.body, first.headers, "another-secret")
    assert isinstance(wrong, Rejection) and wrong.status == 401

    sim.complete_order(order["id"], tracking="1Z999AA10123456784")
    done = receiver.got[3]
    assert done.headers["X-WC-Webhook-Topic"] == "order.updated"
    _, [shipped] = accepted(done)
    assert isinstance(shipped, c.ObserveOrder)
    [fulfillment] = shipped.order.fulfillments
    assert (fulfillment.tracking.company, fulfillment.tracking.number) == ("UPS", "1Z999AA10123456784")
    assert shipped.order.updated_at > record.updated_at

    sim.refund_order(order["id"], "18.00", reason="broken")
    _, [refunded] = accepted(receiver.got[4])
    assert isinstance(refunded, c.ObserveOrder)
    assert [r.amount for r in refunded.order.refunds] == [Decimal("18.00")]

    sim.delete_order(order["id"])  # no order.deleted webhook: nothing is sent
    assert len(receiver.got) == 5
    assert [s.status for s in sim.sent] == [200] * 5


def test_customer_and_deleted_deliveries(sim: WooCommerceSimulator, receiver: Receiver,
                                         client: WooCommerceClient) -> None:
    hook(client, receiver, "customer.created")
    hook(client, receiver, "order.deleted")
    customer = sim.add_customer("yuki@example.com", "Yuki", "Tanaka", phone="+81 90 0000")
    _, [observe] = accepted(receiver.got[2])
    assert isinstance(observe, c.ObserveCustomer)
    assert (observe.customer.external_id, observe.customer.email, observe.customer.phone) == (
        str(customer["id"]), "yuki@example.com", "+81 90 0000")
    order = sim.place_order()
    sim.delete_order(order["id"])
    deleted = receiver.got[3]
    assert deleted.body == json.dumps({"id": order["id"]}).replace(" ", "").encode()
    delivery, commands = accepted(deleted)
    assert (delivery.topic, commands) == ("order.deleted", [])


def test_failed_deliveries_are_not_retried_and_disable_the_webhook(sim: WooCommerceSimulator, receiver: Receiver,
                                                                   client: WooCommerceClient) -> None:
    path = "/webhooks/woocommerce"
    made = hook(client, receiver, "order.created")
    receiver.status[path] = 500
    for _ in range(3):
        sim.place_order()
    assert client.get(f"webhooks/{made['id']}")["failure_count"] == 3
    receiver.status[path] = 202
    sim.place_order()
    assert client.get(f"webhooks/{made['id']}")["failure_count"] == 0  # a 2xx ends the run
    receiver.status[path] = 500
    for _ in range(6):
        sim.place_order()
    state = client.get(f"webhooks/{made['id']}")
    assert (state["status"], state["failure_count"]) == ("active", 6)  # WC disables only once the count is > 5
    sim.place_order()
    state = client.get(f"webhooks/{made['id']}")
    assert (state["status"], state["failure_count"]) == ("disabled", 6)
    sent = len(receiver.on(path))
    assert sent == 1 + 3 + 1 + 6 + 1  # ping, each delivery once: no retries
    receiver.status[path] = 200
    sim.place_order()
    sim.update_order(max(sim.orders), status="completed")
    assert len(receiver.on(path)) == sent  # disabled: nothing more is sent
