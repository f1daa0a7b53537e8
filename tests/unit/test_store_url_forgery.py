"""Request forgery through URLs a merchant types: the WooCommerce store URL (`app.net.check_store_url`), the
outbound webhook channel's destination and the feedback alert webhook (`check_destination`, which the feedback
settings call). Every address that would let a caller reach Encore's own network is refused, however it is
spelled, and a DNS name is judged by every address it resolves to (the resolver is replaced here, so no test
depends on the network)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest

from app.channels.webhook import UnsafeDestination, check_destination
from app.net import UnsafeStoreUrl, check_store_url

PUBLIC = "93.184.215.14"

FORGED_HOSTS = [
    "127.0.0.1", "127.1", "0.0.0.0", "0", "localhost",  # loopback and "this host"
    "10.0.0.5", "172.16.3.4", "192.168.1.1", "100.64.0.1",  # private and carrier-grade NAT
    "169.254.169.254",  # link-local: the cloud metadata service
    "[::1]", "[fe80::1]", "[fc00::1]", "[::ffff:127.0.0.1]", "[::ffff:169.254.169.254]", "[::ffff:7f00:1]",
    "[::]", "[64:ff9b::7f00:1]", "[64:ff9b::a00:1]", "[2002:a00:1::1]",  # NAT64 and 6to4 around 10.0.0.1
    "2130706433", "0x7f000001", "0177.0.0.1", "017700000001", "0x7f.0.0.1",  # decimal, hex and octal forms
    "224.0.0.1", "240.0.0.1", "255.255.255.255",  # multicast, reserved, broadcast
]

SCHEMES = ["file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO", "ftp://example.com/", "dict://127.0.0.1:11211/",
           "javascript:alert(1)", "data:text/html,<script>alert(1)</script>", "//example.com/", "example.com",
           "https:///nohost", ""]

USERINFO = ["https://example.com@127.0.0.1/", "https://user:pass@example.com/", "https://example.com:443@10.0.0.1/",
            "https://%65xample.com@169.254.169.254/"]


def resolver(answers: dict[str, list[str]]) -> Callable[..., list[Any]]:
    """A getaddrinfo that knows only `answers`; IP literals are still resolved by the real one (no network)."""
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host in answers:
            return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                    for a in answers[host]]
        try:
            return real(host, port, *args, **(kwargs | {"flags": socket.AI_NUMERICHOST}))
        except socket.gaierror:
            if host == "localhost":
                return real(host, port, *args, **kwargs)
            raise

    return getaddrinfo


@pytest.fixture(autouse=True)
def dns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", resolver({
        "shop.example.com": [PUBLIC],
        "rebound.example.com": ["127.0.0.1"],
        "metadata.example.com": ["169.254.169.254"],
        "mixed.example.com": [PUBLIC, "10.1.2.3"],
        "v6.example.com": ["::ffff:10.0.0.1"],
    }))


def both_refuse(url: str) -> None:
    with pytest.raises(UnsafeStoreUrl):
        check_store_url(url, development=False)
    with pytest.raises(UnsafeDestination):
        check_destination(url, allow_private=False)


@pytest.mark.parametrize("host", FORGED_HOSTS)
def test_non_public_addresses_in_any_spelling_are_refused(host: str) -> None:
    both_refuse(f"https://{host}/")
    both_refuse(f"https://{host}:8443/wp-json")


@pytest.mark.parametrize("host", ["rebound.example.com", "metadata.example.com", "mixed.example.com",
                                  "v6.example.com", "unknown.invalid"])
def test_a_name_resolving_to_any_non_public_address_or_to_nothing_is_refused(host: str) -> None:
    both_refuse(f"https://{host}/")


@pytest.mark.parametrize("url", SCHEMES + USERINFO)
def test_other_schemes_missing_hosts_and_userinfo_are_refused(url: str) -> None:
    both_refuse(url)
    with pytest.raises(UnsafeStoreUrl):  # not even in development: these are never a store
        check_store_url(url, development=True)
    with pytest.raises(UnsafeDestination):
        check_destination(url, allow_private=True)


def test_plain_http_is_refused_outside_development() -> None:
    both_refuse("http://shop.example.com/")


def test_a_public_store_is_accepted_and_normalized() -> None:
    assert check_store_url("https://shop.example.com/", development=False) == "https://shop.example.com"
    assert check_destination("https://shop.example.com/hook", allow_private=False) == "https://shop.example.com/hook"
    assert check_store_url(f"https://{PUBLIC}/", development=False) == f"https://{PUBLIC}"


def test_the_refusal_says_why() -> None:
    with pytest.raises(UnsafeStoreUrl, match=r"non-public address \(127\.0\.0\.1\)"):
        check_store_url("https://rebound.example.com/", development=False)
    with pytest.raises(UnsafeDestination, match="169.254.169.254"):
        check_destination("https://metadata.example.com/", allow_private=False)
