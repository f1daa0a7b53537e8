"""DNS rebinding: a host that resolves to a public address when its URL is checked and to 127.0.0.1 when Encore
connects. Outside development every outbound call to a merchant-supplied host (WooCommerce store, alert and
journey webhooks) goes through `app.net.guarded_session()`, which checks the address it connects to, at connect
time. The control shows the hole it closes: a plain session reaches the loopback listener."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from app.channels.webhook import WebhookChannel, check_destination, new_secret
from app.core.ports import OutboundMessage
from app.net import GuardedAdapter, guarded_session
from connectors.woocommerce.client import WooCommerceClient, WooCommerceRetryable

PUBLIC = "93.184.216.34"  # a public address (never connected to: the check only reads it)
real_getaddrinfo = socket.getaddrinfo


class Listener:
    """A TCP listener that counts the connections it accepts (and answers HTTP 200 to what it can read)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.accepted = 0
        self.hosts: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def setup(self) -> None:
                outer.accepted += 1
                super().setup()

            def do_GET(self) -> None:  # noqa: N802
                outer.hosts.append(self.headers.get("Host", ""))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def resolver(monkeypatch: pytest.MonkeyPatch, host: str, answers: list[str]) -> list[str]:
    """`host` resolves to each of `answers` in turn (the last one from then on); every other name as usual."""
    asked: list[str] = []

    def fake(name: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if name != host:
            return real_getaddrinfo(name, port, *args, **kwargs)
        address = answers[min(len(asked), len(answers) - 1)]
        asked.append(address)
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port or 0)))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return asked


def message(to: str) -> OutboundMessage:
    return OutboundMessage(shop_id=1, key="feedback-alert:1", channel="webhook", to=to, category="transactional",
                           subject="s", text="t", html=None, metadata={})


def send_through(session: requests.Session, to: str) -> Any:
    channel = WebhookChannel(lambda m: new_secret(), allow_private=False, session=session)
    return channel.send(message(to))


def test_a_host_rebound_to_loopback_after_its_check_is_refused_at_connect(monkeypatch: pytest.MonkeyPatch,
                                                                         listener: Listener) -> None:
    url = f"https://rebind.test:{listener.port}/hook"
    asked = resolver(monkeypatch, "rebind.test", [PUBLIC, PUBLIC, "127.0.0.1"])
    assert check_destination(url, allow_private=False) == url  # when the merchant saves it: public
    result = send_through(guarded_session(), url)  # the send's own check: public; the connection: loopback
    assert result.outcome == "retry" and "unreachable" in (result.error or "")
    assert listener.accepted == 0
    assert asked == [PUBLIC, PUBLIC, "127.0.0.1"]  # the guard resolved for itself, and refused what it got


def test_control_a_plain_session_would_have_connected_to_loopback(monkeypatch: pytest.MonkeyPatch,
                                                                  listener: Listener) -> None:
    url = f"https://rebind.test:{listener.port}/hook"
    resolver(monkeypatch, "rebind.test", [PUBLIC, "127.0.0.1"])
    send_through(requests.Session(), url)  # the send's check: public; the connection: loopback (TLS then fails)
    assert listener.accepted == 1


def test_the_webhook_channel_uses_the_guard_outside_development() -> None:
    guarded = WebhookChannel(lambda m: None, allow_private=False).session
    assert isinstance(guarded.get_adapter("https://example.com"), GuardedAdapter)
    assert not isinstance(WebhookChannel(lambda m: None, allow_private=True).session.get_adapter("https://x"),
                          GuardedAdapter)


def test_the_guard_connects_to_the_address_it_checked_and_keeps_the_host_name(monkeypatch: pytest.MonkeyPatch
                                                                              ) -> None:
    allowed: Callable[[Any], bool] = lambda a: a == ipaddress.ip_address("127.0.0.2")  # noqa: E731
    server = Listener("127.0.0.2")
    try:
        session = requests.Session()
        session.mount("http://", GuardedAdapter(allowed))
        resolver(monkeypatch, "pinned.test", ["127.0.0.2"])
        response = session.get(f"http://pinned.test:{server.port}/", timeout=5)
        assert response.status_code == 200
        assert server.hosts == [f"pinned.test:{server.port}"]  # the Host header names the host, not the address
        resolver(monkeypatch, "pinned.test", ["127.0.0.3"])
        session.close()  # a new connection, a new check
        with pytest.raises(requests.ConnectionError, match="non-public"):
            session.get(f"http://pinned.test:{server.port}/", timeout=5)
        assert server.accepted == 1
    finally:
        server.close()


def test_a_woocommerce_client_outside_development_never_connects_to_a_private_store(listener: Listener) -> None:
    client = WooCommerceClient(f"http://127.0.0.1:{listener.port}", "ck_x", "cs_x", attempts=2, sleep=lambda s: None)
    with pytest.raises(WooCommerceRetryable):
        client.get("orders", {"page": 1})
    assert listener.accepted == 0
    dev = WooCommerceClient(f"http://127.0.0.1:{listener.port}", "ck_x", "cs_x", attempts=1, allow_private=True)
    with pytest.raises(Exception):  # noqa: B017,PT011  (the listener is not WooCommerce; it was reached)
        dev.get("orders", {"page": 1})
    assert listener.accepted == 1
