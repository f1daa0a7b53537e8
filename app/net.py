"""Store URLs a merchant types in: checked before Encore sends anything there (no request forgery)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
import structlog
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from connectors.woocommerce.verify import normalize_store_url

log = structlog.get_logger(__name__)


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
    return _resolve(host, port, is_public)[1]


def _resolve(host: str, port: int, allowed: AddressRule) -> tuple[str | None, str | None]:
    """(an address of `host` to connect to, None) when every address it resolves to is allowed, else (None, why)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return None, f"{host!r} does not resolve"
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        if not allowed(address):
            return None, f"resolves to a non-public address ({address})"
    return (str(addresses[0]), None) if addresses else (None, f"{host!r} does not resolve")


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


# --- calling a checked host: the address checked is the address called ------------------------------------------
#
# Checking a URL's host when it is saved is not enough: a host under an attacker's control can answer the check with
# a public address and the request, moments later, with 127.0.0.1 (DNS rebinding). `guarded_session()` resolves the
# host itself at each new connection, refuses it unless every address is allowed, and connects to an address it
# checked. TLS still verifies the certificate against the host name (urllib3 uses `host` for SNI and matching;
# only the socket goes to the checked address). An egress proxy from the environment would resolve the host
# itself: put the same rule on the proxy.


AddressRule = Callable[[ipaddress.IPv4Address | ipaddress.IPv6Address], bool]


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return all(a.is_global and not a.is_multicast for a in (address, *_embedded_ipv4(address)))


def vetted_address(host: str, port: int, allowed: AddressRule = is_public) -> str:
    """One address of `host` to connect to, when every address it resolves to is allowed; else UnsafeStoreUrl."""
    address, problem = _resolve(host, port, allowed)
    if address is None:
        raise UnsafeStoreUrl(f"{host!r}: {problem}")
    return address


class _Guard:
    """Mixed into urllib3's connections: resolve, check, then open the socket to the checked address."""

    allowed: AddressRule = staticmethod(is_public)

    def _new_conn(self) -> socket.socket:
        conn: Any = self  # an HTTP(S)Connection: urllib3 keeps the host to resolve in _dns_host
        try:
            address = vetted_address(conn._dns_host, conn.port, self.allowed)
        except UnsafeStoreUrl as exc:
            log.warning("outbound_address_refused", host=conn.host, reason=str(exc))
            raise NewConnectionError(conn, f"refused: {exc}") from None
        resolved, conn._dns_host = conn._dns_host, address
        try:
            sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        finally:
            conn._dns_host = resolved
        return sock


class _GuardedHTTP(_Guard, HTTPConnection):
    pass


class _GuardedHTTPS(_Guard, HTTPSConnection):
    pass


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose connections go only to addresses `allowed` accepts (public ones by default)."""

    def __init__(self, allowed: AddressRule = is_public, **kwargs: Any) -> None:
        self.allowed = allowed
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        rule = staticmethod(self.allowed)
        http = type("GuardedHTTPPool", (HTTPConnectionPool,),
                    {"ConnectionCls": type("Conn", (_GuardedHTTP,), {"allowed": rule})})
        https = type("GuardedHTTPSPool", (HTTPSConnectionPool,),
                     {"ConnectionCls": type("Conn", (_GuardedHTTPS,), {"allowed": rule})})
        self.poolmanager.pool_classes_by_scheme = {"http": http, "https": https}


def guarded_session(allowed: AddressRule = is_public) -> requests.Session:
    session = requests.Session()
    adapter = GuardedAdapter(allowed)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
