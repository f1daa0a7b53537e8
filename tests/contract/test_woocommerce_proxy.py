"""Contract tests for connectors/woocommerce/proxy.py: the signature the WordPress plugin puts on the storefront
requests it forwards (connectors/woocommerce/wordpress/encore/proxy.php) and Encore's verdict on them.

Sources of the expected values, none of them Encore's code:

* VECTORS: computed once with PHP 8.2's own hash() and hash_hmac() from the scheme in the module docstring, by
  `php -r` (the commands are in each vector's comment), and pasted here.
* `documented_signature`: the same scheme written out again with Python's hmac and hashlib.
* `plugin_signature`: the plugin's own `encore_proxy_signature`, run by php-cli (skipped without php).

Every refusal is checked against a request that passes, so each case fails only for what it changes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from connectors.woocommerce import proxy
from connectors.woocommerce.proxy import ProxyRejected, StoreKey, UnknownStore

PLUGIN = Path(__file__).resolve().parents[2] / "connectors" / "woocommerce" / "wordpress" / "encore" / "proxy.php"
SECRET = "cs_" + "b2" * 20
STORE = "https://shop.example"
NOW = 1_700_000_000
BODY = b'{"reward_id":7,"request_key":"click-0001"}'

# (method, path, query, timestamp, store, customer, body, signature). Computed with
# php -r 'echo hash_hmac("sha256", implode("\n", array("encore-proxy-v1", METHOD, PATH, QUERY, TIMESTAMP, STORE,
#         CUSTOMER, hash("sha256", BODY)))), "cs_" . str_repeat("b2", 20));'
VECTORS = [
    ("POST", "/proxy/loyalty/redeem", b"locale=ko&x=%2F1", "1700000000", STORE, "42", BODY,
     "5ed0a2969c5739991a5757a41bbdb5c010f5cf8541b30b0c31cf056113548331"),
    ("GET", "/proxy/loyalty", b"", "1700000000", STORE, "", b"",
     "fd192f59e39c75bfed86c244449edc639699dbd3a6da7ba9fdf5231461c3f7d7"),
]

KEYS = {STORE: StoreKey(5, STORE, SECRET), "https://other.example": StoreKey(6, "https://other.example", "cs_other")}
looked_up: list[str] = []


def find(domain: str) -> StoreKey | None:
    looked_up.append(domain)
    return KEYS.get(domain)


def documented_signature(secret: str, method: str, path: str, query: bytes, timestamp: str, store: str,
                         customer: str, body: bytes) -> str:
    message = b"\n".join([b"encore-proxy-v1", method.encode(), path.encode(), query, timestamp.encode(),
                          store.encode(), customer.encode(), hashlib.sha256(body).hexdigest().encode()])
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def headers(method: str = "POST", path: str = "/proxy/loyalty/redeem", query: bytes = b"locale=ko",
            body: bytes = BODY, *, customer: str = "42", timestamp: int = NOW, store: str = STORE,
            secret: str = SECRET) -> dict[str, str]:
    stamp = str(timestamp)
    return {"X-Encore-Store": store, "X-Encore-Customer": customer, "X-Encore-Timestamp": stamp,
            "X-Encore-Signature": documented_signature(secret, method, path, query, stamp, store, customer, body)}


def verify(method: str = "POST", path: str = "/proxy/loyalty/redeem", query: bytes = b"locale=ko",
           body: bytes = BODY, sent: dict[str, str] | None = None, now: float = NOW) -> proxy.ProxyRequest:
    return proxy.verify(method, path, query, body, sent if sent is not None else headers(), find, now)


@pytest.mark.parametrize("vector", VECTORS, ids=["post", "get-logged-out"])
def test_the_signature_matches_vectors_computed_by_php(vector: tuple[Any, ...]) -> None:
    *fields, expected = vector
    assert proxy.sign(SECRET, *fields) == expected
    assert documented_signature(SECRET, *fields) == expected


def _plugin_signature(php: str, fields: tuple[Any, ...]) -> str:
    """`encore_proxy_signature` from the plugin, outside WordPress: the hooks it registers are stubbed."""
    method, path, query, timestamp, store, customer, body = fields
    script = (
        "define( 'ABSPATH', '/' ); function add_action() {} function add_filter() {}"
        f" require {json.dumps(str(PLUGIN))};"
        " $a = json_decode( stream_get_contents( STDIN ), true );"
        " echo encore_proxy_signature( $a[0], $a[1], $a[2], $a[3], $a[4], $a[5], $a[6], base64_decode( $a[7] ) );"
    )
    args = [SECRET, method, path, query.decode(), timestamp, store, customer, base64.b64encode(body).decode()]
    done = subprocess.run([php, "-r", script], input=json.dumps(args), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("vector", VECTORS, ids=["post", "get-logged-out"])
def test_the_plugin_signs_as_encore_verifies(vector: tuple[Any, ...]) -> None:
    php = shutil.which("php")
    if php is None:
        pytest.skip("php is absent: install php-cli (make system-deps) to run the plugin's signing code")
    *fields, expected = vector
    assert _plugin_signature(php, tuple(fields)) == expected


def test_a_signed_request_names_the_store_and_the_customer() -> None:
    looked_up.clear()
    assert verify() == proxy.ProxyRequest(5, STORE, "42")
    logged_out = headers("GET", "/proxy/loyalty", b"", b"", customer="")
    assert verify("GET", "/proxy/loyalty", b"", b"", logged_out) == proxy.ProxyRequest(5, STORE, None)
    # The store is looked up by its normalized URL; the signature covers the header as sent.
    odd = headers(store="HTTPS://Shop.Example/")
    assert verify(sent=odd).shop_id == 5 and looked_up[-1] == STORE


@pytest.mark.parametrize("skew", [-90, 90])
def test_a_clock_up_to_90_seconds_off_either_way_passes(skew: int) -> None:
    assert verify(sent=headers(timestamp=NOW + skew)).customer_id == "42"


def _altered(name: str) -> dict[str, Any]:
    """What to verify instead of the signed request: one thing changed after signing."""
    signed = headers()
    return {
        "forged with another secret": {"sent": headers(secret="cs_" + "00" * 20)},
        "signed for another store": {"sent": {**headers(store="https://other.example"), "X-Encore-Store": STORE}},
        "stale": {"sent": headers(timestamp=NOW - 91)},
        "from the future": {"sent": headers(timestamp=NOW + 91)},
        "altered body": {"body": BODY.replace(b"7", b"8")},
        "altered query": {"query": b"locale=ja"},
        "query added": {"query": b"locale=ko&x=1"},
        "altered path": {"path": "/proxy/loyalty"},
        "altered method": {"method": "PUT"},
        "altered customer": {"sent": {**signed, "X-Encore-Customer": "43"}},
        "customer removed": {"sent": {**signed, "X-Encore-Customer": ""}},
        "altered timestamp": {"sent": {**signed, "X-Encore-Timestamp": str(NOW + 1)}},
        "signature missing": {"sent": {k: v for k, v in signed.items() if k != "X-Encore-Signature"}},
        "customer header missing": {"sent": {k: v for k, v in signed.items() if k != "X-Encore-Customer"}},
        "upper-case hex": {"sent": {**signed, "X-Encore-Signature": signed["X-Encore-Signature"].upper()}},
        "not hex": {"sent": {**signed, "X-Encore-Signature": "é" * 64}},
        "customer not a user id": {"sent": headers(customer="guest")},
        "customer zero": {"sent": headers(customer="0")},
        "timestamp not a number": {"sent": {**signed, "X-Encore-Timestamp": "soon"}},
        "path outside the API": {"path": "/proxy/../admin", "sent": headers(path="/proxy/../admin")},
    }[name]


@pytest.mark.parametrize("case", [
    "forged with another secret", "signed for another store", "stale", "from the future", "altered body",
    "altered query", "query added", "altered path", "altered method", "altered customer", "customer removed",
    "altered timestamp", "signature missing", "customer header missing", "upper-case hex", "not hex",
    "customer not a user id", "customer zero", "timestamp not a number", "path outside the API",
])
def test_anything_changed_after_signing_is_refused(case: str) -> None:
    with pytest.raises(ProxyRejected):
        verify(**_altered(case))


@pytest.mark.parametrize("store", ["https://nobody.example", "not a url", "ftp://shop.example"])
def test_a_store_encore_does_not_know_is_unknown(store: str) -> None:
    with pytest.raises(UnknownStore):
        verify(sent=headers(store=store))


def test_only_requests_with_the_plugins_headers_are_verified_as_the_plugins() -> None:
    assert proxy.signed_by_plugin({"x-encore-signature": "00"})
    assert proxy.signed_by_plugin({"X-Encore-Customer": ""})
    assert not proxy.signed_by_plugin({"X-Shopify-Shop-Domain": "shop-a.myshopify.com", "Accept": "*/*"})
