"""Store URLs a merchant types in: checked before Encore sends anything there (no request forgery)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from connectors.woocommerce.verify import normalize_store_url


class UnsafeStoreUrl(ValueError):
    """The URL is not one Encore will call; the message says why, for the merchant."""


def check_store_url(url: str, *, development: bool) -> str:
    """Return the normalized store URL, or raise UnsafeStoreUrl.

    Outside development the store must be https and its host must resolve only to public addresses: a
    private, loopback, link-local, reserved or multicast address would let a caller reach Encore's own
    network through it.
    """
    parts = urlsplit((url or "").strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeStoreUrl("the store URL must start with https:// and name a host")
    if parts.scheme != "https" and not development:
        raise UnsafeStoreUrl("the store URL must use https")
    if parts.username or parts.password:
        raise UnsafeStoreUrl("the store URL must not carry a user name or password")
    normalized = normalize_store_url(url.strip())
    if normalized is None:
        raise UnsafeStoreUrl("the store URL is not valid")
    if development:
        return normalized
    problem = public_address_problem(parts.hostname, parts.port or 443)
    if problem:
        raise UnsafeStoreUrl(f"the store's host {problem}")
    return normalized


def public_address_problem(host: str, port: int) -> str | None:
    """Why `host` is not one to call from Encore (it does not resolve, or one of its addresses is private,
    loopback, link-local, reserved or multicast), or None when every address it resolves to is public."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return f"{host!r} does not resolve"
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if any(not a.is_global or a.is_multicast for a in (address, *_embedded_ipv4(address))):
            return f"resolves to a non-public address ({address})"
    return None


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, NAT64, 6to4, Teredo): Python counts NAT64 and 6to4
    addresses as global whatever they embed, and a NAT64 gateway would forward `64:ff9b::a00:1` to 10.0.0.1."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    embedded = [address.ipv4_mapped, address.sixtofour, *(address.teredo or ())]
    if address in _NAT64:
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return [a for a in embedded if a is not None]
