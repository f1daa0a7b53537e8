"""The baseline for bench/widget.py: the least work that still answers "what is my balance" correctly.

A plain WSGI app (no framework) for `GET /proxy/loyalty` as Shopify's app proxy forwards it: it checks the
proxy signature inline (hex HMAC-SHA256 under the app secret of the sorted `key=value` query parameters but
`signature`, repeated keys' values joined by commas, compared in constant time) and the timestamp (at most 90 s
either way), then reads the logged-in customer's account row with ONE statement that also resolves the
installed shop, on an autocommit psycopg connection reused per worker thread (psycopg prepares it after a few
uses). It answers `{"points": {"available": N, "pending": N}}` (0 and 0 for a customer without an account),
401 for a bad or stale signature or nobody logged in, 404 for a shop without Encore installed. No labels, tier,
rewards, codes or history; no ORM, no logging.

Configured by the environment: BENCH_DSN (a libpq conninfo/URL, search_path included), BENCH_SECRET.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

import psycopg

SECRET = os.environ["BENCH_SECRET"].encode()
DSN = os.environ["BENCH_DSN"]
MAX_SKEW = 90
SHOP = re.compile(r"[a-z0-9][a-z0-9-]*\.myshopify\.com")
CUSTOMER = re.compile(r"\d{1,20}")

READ = (
    "SELECT s.id, a.available, a.pending FROM shops s "
    "LEFT JOIN loyalty_accounts a ON a.shop_id = s.id AND a.customer_external_id = %(customer)s "
    "WHERE s.platform = 'shopify' AND s.domain = %(shop)s AND s.installed_at IS NOT NULL "
    "AND s.uninstalled_at IS NULL"
)

_local = threading.local()


def _conn() -> psycopg.Connection[Any]:
    conn: psycopg.Connection[Any] | None = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = _local.conn = psycopg.connect(DSN, autocommit=True)
    return conn


def _answer(start_response: Callable[..., Any], status: str, body: dict[str, Any]) -> Iterable[bytes]:
    data = json.dumps(body, separators=(",", ":")).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def _verified(query: str) -> dict[str, str] | None:
    """The query's single-valued parameters when the signature and the timestamp check out, else None."""
    params = parse_qsl(query, keep_blank_values=True)
    given = [v for k, v in params if k == "signature"]
    grouped: dict[str, list[str]] = {}
    for key, value in params:
        if key != "signature":
            grouped.setdefault(key, []).append(value)
    message = "".join(f"{key}={','.join(values)}" for key, values in sorted(grouped.items()))
    expected = hmac.new(SECRET, message.encode(), hashlib.sha256).hexdigest()
    if len(given) != 1 or not hmac.compare_digest(expected, given[0]):
        return None
    one = {k: v[0] for k, v in grouped.items() if len(v) == 1}
    try:
        if abs(time.time() - int(one.get("timestamp", ""))) > MAX_SKEW:
            return None
    except ValueError:
        return None
    return one


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    if path == "/healthz":
        return _answer(start_response, "200 OK", {"ok": True})
    if path not in ("/proxy/loyalty", "/proxy/loyalty/balance") or environ.get("REQUEST_METHOD") != "GET":
        return _answer(start_response, "404 Not Found", {"error": "not_found"})
    one = _verified(environ.get("QUERY_STRING", ""))
    if one is None or not SHOP.fullmatch(one.get("shop", "")):
        return _answer(start_response, "401 Unauthorized", {"error": "unauthorized"})
    customer = one.get("logged_in_customer_id", "")
    if not customer:
        return _answer(start_response, "401 Unauthorized", {"error": "log_in"})
    if not CUSTOMER.fullmatch(customer):
        return _answer(start_response, "401 Unauthorized", {"error": "unauthorized"})
    row = _conn().execute(READ, {"customer": customer, "shop": one["shop"]}).fetchone()
    if row is None:
        return _answer(start_response, "404 Not Found", {"error": "unknown_shop"})
    return _answer(start_response, "200 OK", {"points": {"available": int(row[1] or 0), "pending": int(row[2] or 0)}})
