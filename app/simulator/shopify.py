"""A Shopify store simulator over real HTTP.

It answers OAuth (authorize redirect, authorization code, token exchange, refresh with rotating refresh
tokens), serves the Admin GraphQL calls Encore makes (shop profile, discount codes, which it records,
products' collections), frames Encore in a stand-in admin with a stand-in App Bridge that mints real session
tokens, and places orders by sending webhooks signed exactly as Shopify signs them. Faults can be injected:
THROTTLED answers, 429s and 5xx.

It also plays a storefront: a page that loads Encore's widget the way a theme app extension does, and the app
proxy (`/apps/encore/...`) that forwards the widget's calls to Encore's `/proxy/...` signed as Shopify signs
them (its own implementation of the signature, so it checks Encore's rather than agreeing with it by import).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import html
import itertools
import json
import math
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import jwt
import requests
from flask import Flask, Response, jsonify, redirect, request, send_file

from app.simulator.server import SimulatedServer
from connectors.shopify.client import API_VERSION

ADMIN_HTML = """<!doctype html><html><head><meta charset="utf-8"><title>Shopify admin (simulated)</title>
<style>body{margin:0;font-family:sans-serif}header{background:#1a1a1a;color:#fff;padding:8px 16px}
iframe{border:0;width:100%;height:calc(100vh - 40px)}</style></head>
<body><header>Shopify admin · {shop} (simulated)</header>
<iframe id="app" name="app-iframe" src="{src}"></iframe></body></html>"""

APP_BRIDGE_JS = """// Stand-in for App Bridge: idToken() returns a session token minted by the simulated admin.
(function () {
  var origin = %s;
  function shop() { return new URLSearchParams(window.location.search).get("shop"); }
  window.shopify = {
    idToken: function () {
      return fetch(origin + "/session-token?shop=" + encodeURIComponent(shop())).then(function (r) { return r.text(); });
    }
  };
})();
"""


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def query_hmac(params: dict[str, str], secret: str) -> str:
    message = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "hmac")
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


STOREFRONT_HTML = """<!doctype html><html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{name} (simulated storefront)</title>
<link rel="stylesheet" href="{app}/static/widget/encore-widget.css">
<style>body{{margin:0;font-family:sans-serif}}header{{background:#f4f4f5;padding:16px}}main{{padding:16px}}</style>
</head><body><header><strong>{name}</strong> · {who}</header><main><h1>Cold brew concentrate</h1>
<p>A simulated product page.</p></main>
<script src="{app}/static/widget/encore-widget.js" data-endpoint="{endpoint}" data-locale="{lang}" defer></script>
</body></html>"""
PROXY_PREFIX = "/apps/encore"
PROXY_PARAMS = ("shop", "logged_in_customer_id", "path_prefix", "timestamp", "signature")
STOREFRONT_COOKIE = "_simulated_customer_session"
# Hop-by-hop and what the proxy sets itself; Cookie never crosses Shopify's app proxy.
_NOT_FORWARDED = {"cookie", "host", "content-length", "connection", "accept-encoding", "transfer-encoding"}


def proxy_signature(params: list[tuple[str, str]], secret: str) -> str:
    """Shopify's app proxy signature: hex HMAC-SHA256 of every parameter but `signature` as "key=value" (the
    values of a repeated key joined with ","), sorted, joined with nothing."""
    values: dict[str, list[str]] = {}
    for key, value in params:
        if key != "signature":
            values.setdefault(key, []).append(value)
    message = "".join(sorted(f"{key}={','.join(vals)}" for key, vals in values.items()))
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _iso(at: datetime) -> str:
    return at.isoformat()


@dataclass
class Tokens:
    access: str
    access_expires: float
    refresh: str


@dataclass
class StoreState:
    domain: str
    name: str
    currency: str = "USD"
    timezone: str = "America/New_York"
    locale: str = "en"
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    customers: dict[int, dict[str, Any]] = field(default_factory=dict)
    history: int = 0  # orders generated on the fly before the stored ones (seed_history), for big imports
    files: dict[str, str] = field(default_factory=dict)  # bulk results written ahead (prerender), by kind
    discounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    # product id -> {title, collections (handles)}: what orders' line items name (900, 901) by default
    products: dict[int, dict[str, Any]] = field(default_factory=lambda: {
        900: {"title": "Cold brew concentrate", "collections": ["coffee", "subscriptions"]},
        901: {"title": "Ceramic dripper", "collections": ["brewing-gear"]}})
    tokens: Tokens | None = None
    spent_refresh_tokens: set[str] = field(default_factory=set)


class ShopifySimulator(SimulatedServer):
    def __init__(self, *, api_key: str, api_secret: str, app_url: str, access_ttl: int = 3600) -> None:
        self.api_key, self.api_secret, self.app_url, self.access_ttl = api_key, api_secret, app_url.rstrip("/"), access_ttl
        self.stores: dict[str, StoreState] = {}
        self.codes: dict[str, str] = {}
        self.faults: list[tuple[str, int]] = []  # ("throttle"|"http", status)
        self.graphql_calls: list[str] = []
        self.bulk: dict[str, dict[str, Any]] = {}  # operation id -> {shop, kind, status, ids, ...}
        self.bulk_delay = 0.0  # seconds a bulk operation stays RUNNING
        self.bulk_range_requests: list[str] = []  # the Range headers of result downloads
        self.fail_bulk_download = 0  # answer this many result downloads with a 503
        self.token_calls: list[str] = []
        self.storefront_sessions: dict[str, tuple[str, str]] = {}  # session cookie -> (shop, customer id)
        self.proxied: list[dict[str, Any]] = []  # what the app proxy sent on: method, path, params, headers
        self._ids = itertools.count(int(time.time()) * 10)
        self._lock = threading.RLock()
        super().__init__()
        self.app = self._build()

    @property
    def shop_origin_template(self) -> str:
        return f"{self.origin}/shops/{{shop}}"

    def add_store(self, domain: str, name: str = "Demo Store", **kw: Any) -> StoreState:
        with self._lock:
            return self.stores.setdefault(domain, StoreState(domain=domain, name=name, **kw))

    def add_product(self, shop: str, product_id: int, title: str = "Product", *,
                    collections: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
        """A product in the store, in the collections with these handles (what `nodes(ids:)` reads back)."""
        with self._lock:
            product = {"title": title, "collections": list(collections)}
            self.stores[shop].products[product_id] = product
        return product

    def session_token(self, shop: str, *, ttl: int = 60, secret: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": f"https://{shop}/admin", "dest": f"https://{shop}", "aud": self.api_key, "sub": "42",
                   "exp": now + ttl, "nbf": now, "iat": now, "jti": uuid.uuid4().hex, "sid": uuid.uuid4().hex}
        payload.update(claims)
        return jwt.encode(payload, secret or self.api_secret, algorithm="HS256")

    def admin_url(self, shop: str) -> str:
        return f"{self.origin}/admin/{shop}"

    def storefront_url(self, shop: str, *, customer: str | int | None = None, locale: str | None = None) -> str:
        """The store's page with Encore's widget, as `customer` (logged in) or nobody, in `locale`."""
        query = urlencode({k: str(v) for k, v in (("customer", customer), ("locale", locale)) if v is not None})
        return f"{self.origin}/storefront/{shop}/" + (f"?{query}" if query else "")

    def embedded_app_url(self, shop: str) -> str:
        host = base64.urlsafe_b64encode(f"admin.shopify.com/store/{shop.split('.')[0]}".encode()).decode().rstrip("=")
        query = urlencode({"embedded": "1", "shop": shop, "host": host, "id_token": self.session_token(shop)})
        return f"{self.app_url}/shopify/app?{query}"

    # --- webhooks --------------------------------------------------------------------------------------

    def delivery(self, shop: str, topic: str, payload: Any, *, event_id: str | None = None,
                 secret: str | None = None) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json", "X-Shopify-Topic": topic, "X-Shopify-Shop-Domain": shop,
            "X-Shopify-Hmac-Sha256": sign(body, secret or self.api_secret), "X-Shopify-API-Version": API_VERSION,
            "X-Shopify-Webhook-Id": str(uuid.uuid4()), "X-Shopify-Event-Id": event_id or str(uuid.uuid4()),
            "X-Shopify-Triggered-At": _iso(_now()),
        }
        return body, headers

    def send(self, shop: str, topic: str, payload: Any, **kw: Any) -> requests.Response:
        body, headers = self.delivery(shop, topic, payload, **kw)
        return requests.post(f"{self.app_url}/webhooks/shopify", data=body, headers=headers, timeout=5)

    # --- store activity --------------------------------------------------------------------------------

    def _customer(self, store: StoreState, n: int, at: datetime) -> dict[str, Any]:
        names = [("Mina", "Park", "ko"), ("Yuki", "Tanaka", "ja"), ("Ada", "Lovelace", "en"), ("Jo", "Kim", "ko")]
        first, last, locale = names[n % len(names)]
        return {"id": 7000 + n, "email": f"{first.lower()}.{last.lower()}{n}@example.com", "first_name": first,
                "last_name": last, "phone": f"+8210555{n:04d}", "locale": locale, "created_at": _iso(at),
                "updated_at": _iso(at), "email_marketing_consent": {
                    "state": "subscribed" if n % 3 else "not_subscribed", "opt_in_level": "single_opt_in",
                    "consent_updated_at": _iso(at)}, "sms_marketing_consent": None}

    def place_order(self, shop: str, *, customer: int | None = None, paid: bool = True,
                    lines: list[tuple[str, int, str]] | None = None) -> dict[str, Any]:
        store = self.stores[shop]
        with self._lock:
            oid = next(self._ids)
            number = 1001 + len(store.orders)
        at = _now()
        lines = lines or [("Cold brew concentrate", 2, "18.00"), ("Ceramic dripper", 1, "32.50")]
        items = [{"id": oid * 10 + i, "title": t, "name": t, "quantity": q, "price": p, "total_discount": "0.00",
                  "product_id": 900 + i, "variant_id": 9900 + i, "sku": f"SKU-{i}"} for i, (t, q, p) in enumerate(lines)]
        subtotal = sum(Decimal(p) * q for _, q, p in lines)
        shipping, tax = Decimal("5.00"), (subtotal * Decimal("0.1")).quantize(Decimal("0.01"))
        order: dict[str, Any] = {
            "id": oid, "admin_graphql_api_id": f"gid://shopify/Order/{oid}", "name": f"#{number}",
            "order_number": number, "email": None, "created_at": _iso(at), "updated_at": _iso(at),
            "processed_at": _iso(at), "cancelled_at": None, "currency": store.currency,
            "presentment_currency": store.currency, "subtotal_price": str(subtotal), "total_tax": str(tax),
            "total_discounts": "0.00", "total_price": str(subtotal + shipping + tax),
            "total_shipping_price_set": {"shop_money": {"amount": str(shipping), "currency_code": store.currency}},
            "financial_status": "pending", "fulfillment_status": None,
            "customer": self._customer(store, customer if customer is not None else number, at),
            "line_items": items, "fulfillments": [], "refunds": [],
        }
        order["email"] = order["customer"]["email"]
        store.orders[oid] = order
        store.customers.setdefault(order["customer"]["id"], order["customer"])
        self.send(shop, "orders/create", order)
        if paid:
            self._touch(order, financial_status="paid")
            self.send(shop, "orders/paid", order)
        return order

    def _touch(self, order: dict[str, Any], **changes: Any) -> None:
        previous = datetime.fromisoformat(order["updated_at"])
        order.update(changes)
        order["updated_at"] = _iso(max(_now(), previous + timedelta(seconds=1)))

    def fulfill(self, shop: str, order_id: int) -> dict[str, Any]:
        order = self.stores[shop].orders[order_id]
        fid = next(self._ids)
        at = _now()
        number = f"1Z999AA1{fid % 10**10:010d}"
        fulfillment = {"id": fid, "order_id": order_id, "status": "success", "shipment_status": None,
                       "tracking_company": "UPS", "tracking_number": number, "tracking_numbers": [number],
                       "tracking_url": f"https://www.ups.com/track?tracknum={number}",
                       "tracking_urls": [f"https://www.ups.com/track?tracknum={number}"],
                       "created_at": _iso(at), "updated_at": _iso(at)}
        order["fulfillments"].append(fulfillment)
        self._touch(order, fulfillment_status="fulfilled")
        self.send(shop, "fulfillments/create", fulfillment)
        self.send(shop, "orders/fulfilled", order)
        return fulfillment

    def deliver(self, shop: str, order_id: int) -> None:
        order = self.stores[shop].orders[order_id]
        for f in order["fulfillments"]:
            previous = datetime.fromisoformat(f["updated_at"])
            f.update(shipment_status="delivered", updated_at=_iso(max(_now(), previous + timedelta(seconds=1))))
            self.send(shop, "fulfillments/update", f)
        self._touch(order)
        self.send(shop, "orders/updated", order)

    def refund(self, shop: str, order_id: int, amount: str | None = None) -> dict[str, Any]:
        order = self.stores[shop].orders[order_id]
        item = order["line_items"][0]
        value = amount or item["price"]
        refund = {"id": next(self._ids), "order_id": order_id, "created_at": _iso(_now()),
                  "refund_line_items": [{"line_item_id": item["id"], "quantity": 1, "subtotal": value}],
                  "transactions": [{"kind": "refund", "status": "success", "amount": value}]}
        order["refunds"].append(refund)
        refunded = sum(Decimal(t["amount"]) for r in order["refunds"] for t in r["transactions"])
        status = "refunded" if refunded >= Decimal(order["total_price"]) else "partially_refunded"
        self._touch(order, financial_status=status)
        self.send(shop, "refunds/create", refund)
        self.send(shop, "orders/updated", order)
        return refund

    def cancel(self, shop: str, order_id: int) -> None:
        order = self.stores[shop].orders[order_id]
        # Cancelling voids an authorization that was never captured; a paid order keeps its payment status
        # (the money goes back through a refund, a separate step).
        paid = order["financial_status"] in ("paid", "partially_refunded", "refunded")
        self._touch(order, cancelled_at=_iso(_now()), financial_status=order["financial_status"] if paid else "voided")
        self.send(shop, "orders/cancelled", order)

    # --- history: what a bulk operation reads ----------------------------------------------------------

    def seed_history(self, shop: str, orders: int) -> None:
        """`orders` past orders made on the fly when a bulk operation reads them (no webhooks, no memory):
        a mix of paid, fulfilled, delivered, refunded and cancelled orders over ~900 customers a 1,000."""
        self.stores[shop].history = orders

    def prerender(self, shop: str, directory: str) -> None:
        """Write the store's bulk results (customers, orders) to files now, as Shopify has them ready when an
        operation completes; they are then served as files (with Range), not made while being read. Only
        for a store that changes no more (a benchmark's)."""
        store = self.stores[shop]
        for kind in ("customers", "orders"):
            path = f"{directory}/{shop}-{kind}.jsonl"
            with open(path, "wb") as out:
                for chunk in self._jsonl({"shop": shop, "kind": kind}):
                    out.write(chunk)
            store.files[kind] = path

    def history_order(self, store: StoreState, i: int) -> dict[str, Any]:
        """The i-th generated past order, always the same, as the REST Admin API would show it."""
        at = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=7 * i)
        oid, cust = 5_000_000_000 + i, (i * 7919) % max(1, (store.history * 9) // 10)
        lines = [("Cold brew concentrate", 1 + i % 3, "18.00"), ("Ceramic dripper", 1, "32.50")][: 1 + i % 2]
        items = [{"id": oid * 10 + k, "title": t, "name": t, "quantity": q, "price": p,
                  "total_discount": "1.00" if i % 5 == 0 else "0.00", "product_id": 900 + k, "variant_id": 9900 + k,
                  "sku": f"SKU-{k}"} for k, (t, q, p) in enumerate(lines)]
        subtotal = sum(Decimal(p) * q for _, q, p in lines)
        shipping, tax = Decimal("5.00"), (subtotal * Decimal("0.1")).quantize(Decimal("0.01"))
        total = subtotal + shipping + tax
        updated = at + timedelta(days=3)
        fulfillments, refunds, status = [], [], "paid"
        if i % 10 != 9:
            number = f"1Z{oid:016d}"
            fulfillments.append({"id": oid + 1, "order_id": oid, "status": "success",
                                 "shipment_status": "delivered" if i % 4 else "in_transit",
                                 "tracking_company": "UPS", "tracking_number": number, "tracking_numbers": [number],
                                 "tracking_url": f"https://www.ups.com/track?tracknum={number}", "tracking_urls": [],
                                 "created_at": _iso(at + timedelta(days=1)), "updated_at": _iso(updated)})
        if i % 17 == 0:
            amount = lines[0][2]
            refunds.append({"id": oid + 2, "order_id": oid, "created_at": _iso(updated),
                            "refund_line_items": [{"line_item_id": items[0]["id"], "quantity": 1, "subtotal": amount}],
                            "transactions": [{"kind": "refund", "status": "success", "amount": amount}]})
            status = "partially_refunded"
        customer = self._history_customer(store, cust)
        return {"id": oid, "admin_graphql_api_id": f"gid://shopify/Order/{oid}", "name": f"#H{i + 1}",
                "email": customer["email"], "created_at": _iso(at), "updated_at": _iso(updated), "processed_at": _iso(at),
                "cancelled_at": _iso(updated) if i % 23 == 0 else None, "currency": store.currency,
                "subtotal_price": str(subtotal), "total_tax": str(tax), "total_discounts": "0.00",
                "total_price": str(total), "financial_status": "voided" if i % 23 == 0 else status,
                "total_shipping_price_set": {"shop_money": {"amount": str(shipping), "currency_code": store.currency}},
                "customer": customer, "line_items": items, "fulfillments": fulfillments, "refunds": refunds}

    def _history_customer(self, store: StoreState, n: int) -> dict[str, Any]:
        customer = self._customer(store, n, datetime(2023, 6, 1, tzinfo=UTC) + timedelta(minutes=n))
        customer["id"] = 8_000_000 + n
        return customer

    def _history_customer_numbers(self, store: StoreState) -> range:
        """The customers the generated orders name: i * 7919 mod m over every i covers the multiples of
        gcd(7919, m) below m."""
        m = max(1, (store.history * 9) // 10)
        return range(0, m, math.gcd(7919, m)) if store.history else range(0)

    def _all_orders(self, store: StoreState) -> Any:
        for i in range(store.history):
            yield self.history_order(store, i)
        with self._lock:
            stored = [copy.deepcopy(o) for o in store.orders.values()]
        yield from stored

    def _all_customers(self, store: StoreState) -> Any:
        for n in self._history_customer_numbers(store):
            yield self._history_customer(store, n)
        with self._lock:
            stored = [copy.deepcopy(c) for c in store.customers.values()]
        yield from stored

    def order_payload(self, shop: str, order_id: int) -> dict[str, Any]:
        return copy.deepcopy(self.stores[shop].orders[order_id])

    def uninstall(self, shop: str) -> requests.Response:
        store = self.stores[shop]
        store.tokens = None  # Shopify revokes the token before telling the app
        return self.send(shop, "app/uninstalled", {"id": 1, "name": store.name, "domain": shop,
                                                   "myshopify_domain": shop})

    # --- HTTP ------------------------------------------------------------------------------------------

    def _issue(self, store: StoreState) -> dict[str, Any]:
        store.tokens = Tokens(access="shpat_" + secrets.token_hex(16), access_expires=time.time() + self.access_ttl,
                              refresh="shprt_" + secrets.token_hex(16))
        return {"access_token": store.tokens.access, "expires_in": self.access_ttl,
                "refresh_token": store.tokens.refresh, "refresh_token_expires_in": 7776000,
                "scope": "read_orders,read_customers,read_products,write_discounts"}

    def _authorized(self, shop: str) -> StoreState | None:
        store = self.stores.get(shop)
        token = request.headers.get("X-Shopify-Access-Token", "")
        if store is None or store.tokens is None or not hmac.compare_digest(token, store.tokens.access):
            return None
        if store.tokens.access_expires < time.time():
            return None
        return store

    def _build(self) -> Flask:
        app = Flask("shopify-simulator")
        sim = self

        @app.get("/admin/<shop>")
        def admin(shop: str) -> Response:
            html = ADMIN_HTML.replace("{shop}", shop).replace("{src}", sim.embedded_app_url(shop))
            return Response(html, mimetype="text/html")

        @app.get("/app-bridge.js")
        def app_bridge() -> Response:
            return Response(APP_BRIDGE_JS % json.dumps(sim.origin), mimetype="application/javascript")

        _storefront(app, sim)

        @app.get("/session-token")
        def session_token() -> Response:
            response = Response(sim.session_token(request.args.get("shop", "")), mimetype="text/plain")
            response.headers["Access-Control-Allow-Origin"] = "*"
            return response

        @app.get("/shops/<shop>/admin/oauth/authorize")
        def authorize(shop: str) -> Response:
            if request.args.get("client_id") != sim.api_key:
                return Response("unknown client_id", status=400)
            code = secrets.token_hex(12)
            sim.codes[code] = shop
            params = {"code": code, "shop": shop, "state": request.args.get("state", ""),
                      "timestamp": str(int(time.time())), "host": "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvZGVtbw"}
            params["hmac"] = query_hmac(params, sim.api_secret)
            return redirect(f"{request.args['redirect_uri']}?{urlencode(params)}")  # type: ignore[return-value]

        @app.post("/shops/<shop>/admin/oauth/access_token")
        def access_token(shop: str) -> tuple[Response, int] | Response:
            form = request.get_json(silent=True) or request.form.to_dict()
            store = sim.stores.get(shop)
            sim.token_calls.append(str(form.get("grant_type", "authorization_code")))
            if store is None or form.get("client_id") != sim.api_key or form.get("client_secret") != sim.api_secret:
                return jsonify(error="invalid_client"), 401
            grant = form.get("grant_type")
            with sim._lock:
                if grant == "urn:ietf:params:oauth:grant-type:token-exchange":
                    try:
                        claims = jwt.decode(form.get("subject_token", ""), sim.api_secret, algorithms=["HS256"],
                                            audience=sim.api_key)
                    except jwt.PyJWTError:
                        return jsonify(error="invalid_subject_token"), 400
                    if claims.get("dest") != f"https://{shop}":
                        return jsonify(error="invalid_subject_token"), 400
                    return jsonify(sim._issue(store))
                if grant == "refresh_token":
                    token = form.get("refresh_token", "")
                    if store.tokens is None or token != store.tokens.refresh or token in store.spent_refresh_tokens:
                        return jsonify(error="invalid_grant"), 400
                    store.spent_refresh_tokens.add(token)
                    return jsonify(sim._issue(store))
                if sim.codes.pop(form.get("code", ""), None) == shop:
                    return jsonify(sim._issue(store))
            return jsonify(error="invalid_grant"), 400

        @app.post(f"/shops/<shop>/admin/api/{API_VERSION}/graphql.json")
        def graphql(shop: str) -> tuple[Response, int] | Response:
            if sim.faults:
                kind, status = sim.faults.pop(0)
                if kind == "http":
                    response = jsonify(errors="simulated outage")
                    response.headers["Retry-After"] = "0"
                    return response, status
                return jsonify(errors=[{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                               extensions=_cost(0)), 200
            store = sim._authorized(shop)
            if store is None:
                return jsonify(errors="[API] Invalid API key or access token"), 401
            body = request.get_json(force=True)
            query, variables = body.get("query", ""), body.get("variables") or {}
            sim.graphql_calls.append(query)
            if "ordersCount" in query or "customersCount" in query:
                data = sim._counts(store)
            elif "bulkOperationRunQuery" in query:
                data = sim._run_bulk(store, variables.get("query", ""))
            elif "BulkOperation" in query and "node(" in query:
                data = {"node": sim._bulk_status(store, variables["id"])}
            elif "nodes(" in query and "Refund" in query:
                data = {"nodes": [sim._refund_node(store, gid) for gid in variables.get("ids", [])]}
            elif "nodes(" in query and "collections" in query:
                data = {"nodes": [sim._product_node(store, gid) for gid in variables.get("ids", [])]}
            elif "discountCodeBasicCreate" in query:
                data = sim._create_discount(store, variables["discount"])
            elif "discountCodeFreeShippingCreate" in query:
                data = sim._create_discount(store, variables["discount"], field="discountCodeFreeShippingCreate")
            elif "codeDiscountNodeByCode" in query:
                found = store.discounts.get(variables["code"].lower())
                data = {"codeDiscountNodeByCode": {"id": found["id"]} if found else None}
            elif "shop" in query:
                data = {"shop": {"name": store.name, "currencyCode": store.currency, "ianaTimezone": store.timezone},
                        "shopLocales": [{"locale": store.locale, "primary": True}]}
            else:
                return jsonify(errors=[{"message": "query not supported by the simulator"}]), 200
            return jsonify(data=data, extensions=_cost(10))

        @app.get("/bulk/<operation>.jsonl")
        def bulk_result(operation: str) -> Response:
            op = sim.bulk.get(f"gid://shopify/BulkOperation/{operation}")
            if op is None or op["status"] != "COMPLETED":
                return Response("NoSuchKey", status=404)
            if sim.fail_bulk_download > 0:
                sim.fail_bulk_download -= 1
                return Response("try again", status=503)
            ranged = request.headers.get("Range", "")
            sim.bulk_range_requests.append(ranged)
            ready = sim.stores[op["shop"]].files.get(op["kind"])
            if ready:
                return send_file(ready, mimetype="application/jsonl", conditional=True)
            start = int(ranged[len("bytes="):].split("-")[0]) if ranged.startswith("bytes=") else 0

            def lines() -> Any:  # the file is made again on each read, the same each time, and streamed
                skip = start
                for chunk in sim._jsonl(op):
                    if skip >= len(chunk):
                        skip -= len(chunk)
                        continue
                    yield chunk[skip:]
                    skip = 0

            response = Response(lines(), status=206 if start else 200, mimetype="application/jsonl")
            if start:
                response.headers["Content-Range"] = f"bytes {start}-*/*"
            return response

        return app

    # --- bulk operations -----------------------------------------------------------------------------------

    def _run_bulk(self, store: StoreState, query: str) -> dict[str, Any]:
        with self._lock:
            running = [o for o in self.bulk.values() if o["shop"] == store.domain and o["status"] in ("CREATED", "RUNNING")
                       and time.time() < o["ready_at"]]
            if running:
                return {"bulkOperationRunQuery": {"bulkOperation": None, "userErrors": [
                    {"field": None, "message": "A bulk query operation for this app and shop is already in progress: "
                                               f"{running[0]['id']}."}]}}
            kind = "orders" if "orders" in query.split("{")[1] else "customers" if "customers" in query else ""
            if not kind:
                return {"bulkOperationRunQuery": {"bulkOperation": None, "userErrors": [
                    {"field": ["query"], "message": "The simulator reads orders or customers only."}]}}
            gid = f"gid://shopify/BulkOperation/{next(self._ids)}"
            self.bulk[gid] = {"id": gid, "shop": store.domain, "kind": kind, "status": "RUNNING",
                              "ready_at": time.time() + self.bulk_delay}
        return {"bulkOperationRunQuery": {"bulkOperation": {"id": gid, "status": "CREATED"}, "userErrors": []}}

    def _bulk_status(self, store: StoreState, gid: str) -> dict[str, Any] | None:
        op = self.bulk.get(gid)
        if op is None or op["shop"] != store.domain:
            return None
        if op["status"] == "RUNNING" and time.time() >= op["ready_at"]:
            op["status"] = "COMPLETED"
        done = op["status"] == "COMPLETED"
        return {"id": gid, "status": op["status"], "errorCode": None, "objectCount": "0",
                "url": f"{self.origin}/bulk/{gid.rsplit('/', 1)[-1]}.jsonl" if done else None}

    def _jsonl(self, op: dict[str, Any]) -> Any:
        store = self.stores[op["shop"]]
        if op["kind"] == "customers":
            for customer in self._all_customers(store):
                yield (json.dumps(_gql_customer(customer)) + "\n").encode()
            return
        for order in self._all_orders(store):
            node, children = _gql_order(order)
            yield ("".join(json.dumps(x) + "\n" for x in [node, *children])).encode()

    def _refund_node(self, store: StoreState, gid: str) -> dict[str, Any] | None:
        rid = int(gid.rsplit("/", 1)[-1])
        generated = 0 <= rid - 2 - 5_000_000_000 < store.history
        with self._lock:
            orders = [self.history_order(store, rid - 2 - 5_000_000_000)] if generated else list(store.orders.values())
        for order in orders:
            for refund in order["refunds"]:
                if refund["id"] == rid:
                    return {"id": gid, "refundLineItems": {"nodes": [
                        {"lineItem": {"id": f"gid://shopify/LineItem/{x['line_item_id']}"}, "quantity": x["quantity"],
                         "subtotalSet": {"shopMoney": {"amount": x["subtotal"]}}} for x in refund["refund_line_items"]]}}
        return None

    def _counts(self, store: StoreState) -> dict[str, Any]:
        with self._lock:
            stored_customers = len(store.customers)
            stored_orders = len(store.orders)
        customers = len(self._history_customer_numbers(store)) + stored_customers
        return {"ordersCount": {"count": store.history + stored_orders, "precision": "EXACT"},
                "customersCount": {"count": customers, "precision": "EXACT"}}

    def _product_node(self, store: StoreState, gid: str) -> dict[str, Any] | None:
        """A Product node with its collections' handles; null for an id the store does not have, as Shopify."""
        prefix = "gid://shopify/Product/"
        tail = gid[len(prefix):] if isinstance(gid, str) and gid.startswith(prefix) else ""
        with self._lock:
            product = store.products.get(int(tail)) if tail.isdigit() else None
            if product is None:
                return None
            return {"id": gid, "collections": {"nodes": [{"handle": h} for h in product["collections"][:50]]}}

    def _create_discount(self, store: StoreState, discount: dict[str, Any], field: str = "discountCodeBasicCreate"
                         ) -> dict[str, Any]:
        code = str(discount["code"])
        with self._lock:
            if code.lower() in store.discounts:
                return {field: {"codeDiscountNode": None, "userErrors": [
                    {"field": ["basicCodeDiscount", "code"], "code": "TAKEN", "message": "Code must be unique."}]}}
            node = f"gid://shopify/DiscountCodeNode/{next(self._ids)}"
            store.discounts[code.lower()] = {"id": node, **discount}
        return {field: {"codeDiscountNode": {"id": node}, "userErrors": []}}


def _money(amount: Any) -> dict[str, Any]:
    return {"shopMoney": {"amount": str(amount)}}


def _gql_customer(c: dict[str, Any]) -> dict[str, Any]:
    """A REST customer as the GraphQL Admin API's Customer node reads in a bulk result."""
    def consent(value: dict[str, Any] | None) -> dict[str, Any] | None:
        if not value:
            return None
        return {"marketingState": str(value.get("state", "not_subscribed")).upper(),
                "consentUpdatedAt": value.get("consent_updated_at")}

    return {"id": f"gid://shopify/Customer/{c['id']}", "email": c.get("email"), "phone": c.get("phone"),
            "firstName": c.get("first_name"), "lastName": c.get("last_name"), "locale": c.get("locale"),
            "createdAt": c.get("created_at"), "updatedAt": c.get("updated_at"),
            "emailMarketingConsent": consent(c.get("email_marketing_consent")),
            "smsMarketingConsent": consent(c.get("sms_marketing_consent"))}


def _gql_order(o: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A REST order as a bulk result has it: the order's line, then a line per line item (`__parentId`)."""
    gid = f"gid://shopify/Order/{o['id']}"
    node = {
        "id": gid, "name": o["name"], "email": o.get("email"), "createdAt": o["created_at"], "updatedAt": o["updated_at"],
        "processedAt": o.get("processed_at"), "cancelledAt": o.get("cancelled_at"), "currencyCode": o["currency"],
        "displayFinancialStatus": str(o.get("financial_status") or "pending").upper(),
        "subtotalPriceSet": _money(o["subtotal_price"]), "totalPriceSet": _money(o["total_price"]),
        "totalTaxSet": _money(o["total_tax"]), "totalDiscountsSet": _money(o["total_discounts"]),
        "discountCodes": [d["code"] for d in o.get("discount_codes") or []],
        "totalShippingPriceSet": _money(o["total_shipping_price_set"]["shop_money"]["amount"]),
        "customer": {"id": f"gid://shopify/Customer/{o['customer']['id']}"} if o.get("customer") else None,  # as asked
        "fulfillments": [{"id": f"gid://shopify/Fulfillment/{f['id']}", "status": str(f["status"]).upper(),
                          "displayStatus": str(f.get("shipment_status") or "fulfilled").upper(),
                          "createdAt": f["created_at"], "updatedAt": f["updated_at"],
                          "trackingInfo": [{"company": f.get("tracking_company"), "number": f.get("tracking_number"),
                                            "url": f.get("tracking_url")}] if f.get("tracking_number") else []}
                         for f in o.get("fulfillments") or []],
        "refunds": [{"id": f"gid://shopify/Refund/{r['id']}", "createdAt": r["created_at"],
                     "totalRefundedSet": _money(sum(Decimal(t["amount"]) for t in r["transactions"]
                                                    if t["kind"] == "refund" and t["status"] == "success"))}
                    for r in o.get("refunds") or []],
    }
    children = [{"id": f"gid://shopify/LineItem/{x['id']}", "title": x["title"], "name": x.get("name"),
                 "quantity": x["quantity"], "sku": x.get("sku"), "originalUnitPriceSet": _money(x["price"]),
                 "totalDiscountSet": _money(x.get("total_discount", "0.00")),
                 "product": {"id": f"gid://shopify/Product/{x['product_id']}"} if x.get("product_id") else None,
                 "variant": {"id": f"gid://shopify/ProductVariant/{x['variant_id']}"} if x.get("variant_id") else None,
                 "__parentId": gid} for x in o.get("line_items") or []]
    return node, children


def _cost(requested: int) -> dict[str, Any]:
    return {"cost": {"requestedQueryCost": requested, "actualQueryCost": requested,
                     "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 1990.0, "restoreRate": 100.0}}}


def _storefront(app: Flask, sim: ShopifySimulator) -> None:
    """The storefront: a page with Encore's widget, and the app proxy its calls go through."""

    @app.get("/storefront/<shop>/")
    def storefront(shop: str) -> tuple[str, int] | Response:
        store = sim.stores.get(shop)
        if store is None:
            return "no such store", 404
        customer = request.args.get("customer", "")
        lang = request.args.get("locale") or store.locale
        page = STOREFRONT_HTML.format(
            lang=html.escape(lang), name=html.escape(store.name), app=html.escape(sim.app_url),
            endpoint=html.escape(f"/storefront/{shop}{PROXY_PREFIX}"),
            who=html.escape(f"customer {customer}" if customer else "not logged in"))
        response = Response(page, mimetype="text/html")
        if customer:  # Shopify knows the customer from its own session cookie, never from the app
            session = secrets.token_urlsafe(16)
            sim.storefront_sessions[session] = (shop, customer)
            response.set_cookie(STOREFRONT_COOKIE, session, path=f"/storefront/{shop}/", httponly=True, samesite="Lax")
        else:
            response.delete_cookie(STOREFRONT_COOKIE, path=f"/storefront/{shop}/")
        return response

    @app.route(f"/storefront/<shop>{PROXY_PREFIX}/<path:rest>", methods=["GET", "POST"])
    def app_proxy(shop: str, rest: str) -> tuple[str, int] | Response:
        if shop not in sim.stores:
            return "no such store", 404
        held = sim.storefront_sessions.get(request.cookies.get(STOREFRONT_COOKIE, ""))
        customer = held[1] if held is not None and held[0] == shop else ""
        # The shopper's own query, less anything posing as what Shopify adds, then Shopify's parameters.
        params = [(k, v) for k, v in request.args.items(multi=True) if k not in PROXY_PARAMS]
        params += [("shop", shop), ("logged_in_customer_id", customer), ("path_prefix", PROXY_PREFIX),
                   ("timestamp", str(int(time.time())))]
        params.append(("signature", proxy_signature(params, sim.api_secret)))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
        sim.proxied.append({"method": request.method, "path": rest, "params": params, "headers": headers})
        upstream = requests.request(request.method, f"{sim.app_url}/proxy/{rest}", params=params, headers=headers,
                                    data=request.get_data(), timeout=30, allow_redirects=False)
        return Response(upstream.content, status=upstream.status_code,
                        content_type=upstream.headers.get("Content-Type", "text/plain"))
