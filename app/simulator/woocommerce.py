"""A WooCommerce store simulator over real HTTP.

It answers the wc-auth key flow (the merchant "approves", the keys are POSTed to the callback and kept only if it
answers exactly 200), the REST API Encore uses (/wp-json/wc/v3: orders, customers, coupons, coupons/batch,
webhooks, system_status, products with their categories), WordPress's public REST index (/wp-json/: the site's
name and time zone) and sends webhooks exactly as `WC_Webhook` does: the unsigned form ping first, then the
resource JSON signed with the webhook's secret, never retried, the webhook disabled after a run of failures.

REST authentication follows `WC_REST_Authentication`: HTTP Basic with the consumer key and secret, or OAuth 1.0a
(HMAC-SHA256, key `consumer_secret&`) in the query string, which is what the `woocommerce` package sends to an
http:// store. Faults can be injected: ("http", 429) / ("http", 503[, retry_after]) for the next REST calls, and
`fail_page(n)` for one page of a collection.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import itertools
import json
import math
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import requests
from flask import Flask, Response, jsonify, redirect, request

from app.simulator.server import SimulatedServer
from connectors.payload import b64_hmac

WC_VERSION = "9.4.0"
USER_AGENT = f"WooCommerce/{WC_VERSION} Hookshot (WordPress/6.5.5)"
MAX_FAILURES = 5  # apply_filters( 'woocommerce_max_webhook_delivery_failures', 5 )
BATCH_LIMIT = 100
OAUTH_WINDOW = 15 * 60
TOPICS = frozenset(f"{r}.{e}" for r in ("order", "customer", "coupon", "product")
                   for e in ("created", "updated", "deleted", "restored"))
SCOPES = {"read": "read", "write": "write", "read_write": "read_write"}


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _wc_time(at: datetime | None) -> str | None:
    """`wc_rest_prepare_date_response`: "YYYY-MM-DDTHH:MM:SS", no zone (the *_gmt fields are UTC)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") if at else None


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _rawurlencode(value: str) -> str:
    return quote(value, safe="~")


def oauth_signature(method: str, base_url: str, params: dict[str, str], consumer_secret: str) -> str:
    """`WC_REST_Authentication::check_oauth_signature` (HMAC-SHA256): sort by key, rawurlencode keys and values,
    rawurlencode each "key=value", join with %26, sign "METHOD&rawurlencode(url)&params" with "secret&"."""
    pairs = [f"{_rawurlencode(k)}={_rawurlencode(v)}" for k, v in sorted(params.items()) if k != "oauth_signature"]
    string_to_sign = f"{method.upper()}&{_rawurlencode(base_url)}&" + "%26".join(_rawurlencode(p) for p in pairs)
    digest = hmac.new(f"{consumer_secret}&".encode(), string_to_sign.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@dataclass
class ApiKey:
    key_id: int
    user_id: str
    consumer_key: str
    consumer_secret: str
    permissions: str
    nonces: set[str] = field(default_factory=set)


@dataclass
class Webhook:
    id: int
    name: str
    status: str
    topic: str
    delivery_url: str
    secret: str
    failure_count: int = 0
    pinged: bool = False
    created: datetime = field(default_factory=_now)

    def json(self) -> dict[str, Any]:
        resource, event = self.topic.split(".", 1)
        return {"id": self.id, "name": self.name, "status": self.status, "topic": self.topic, "resource": resource,
                "event": event, "hooks": [f"woocommerce_{resource}_{event}"], "delivery_url": self.delivery_url,
                "secret": self.secret, "failure_count": self.failure_count,
                "date_created": _wc_time(self.created), "date_created_gmt": _wc_time(self.created),
                "date_modified": _wc_time(self.created), "date_modified_gmt": _wc_time(self.created)}


@dataclass
class Sent:
    """One delivery the simulator attempted: to which webhook, what, and the answer (None: no connection)."""

    webhook_id: int
    topic: str | None  # None for the ping
    body: bytes
    headers: dict[str, str]
    status: int | None


class WooCommerceSimulator(SimulatedServer):
    def __init__(self, *, name: str = "Demo Store", currency: str = "USD",
                 require_https_callback: bool = False, timezone: str = "UTC", language: str = "en_US") -> None:
        self.name, self.currency, self.require_https_callback = name, currency, require_https_callback
        self.timezone = timezone  # WordPress's timezone_string ("" when the site set a bare UTC offset)
        self.gmt_offset: float | None = None  # that bare offset in hours, when set (then timezone is "")
        self.language = language  # get_locale()
        # product id -> product; orders' line items name 10, 11, ... (place_order)
        self.products: dict[int, dict[str, Any]] = {}
        self.keys: dict[str, ApiKey] = {}  # consumer_key -> key
        self.deleted_keys: list[ApiKey] = []
        self.orders: dict[int, dict[str, Any]] = {}
        self.history = 0  # generated past orders, ids 1..history (seed_history)
        self.customers: dict[int, dict[str, Any]] = {}
        self.coupons: dict[int, dict[str, Any]] = {}
        self.webhooks: dict[int, Webhook] = {}
        self.sent: list[Sent] = []
        self.faults: list[tuple[Any, ...]] = []  # ("http", status) or ("http", status, retry_after)
        self.page_faults: dict[int, list[int]] = {}  # page -> statuses to answer, once each
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # method, path under wc/v3, query (no oauth_*)
        self._ids = itertools.count(100)
        self._lock = threading.RLock()
        super().__init__()
        self.app = self._build()
        self.add_product("Mug", categories=["Kitchen"], product_id=10)
        self.add_product("Beans", categories=["Coffee", "Subscriptions"], product_id=11)

    @property
    def home_url(self) -> str:
        return f"{self.origin}/"

    def authorize_url(self, *, app_name: str, scope: str, user_id: str, return_url: str, callback_url: str) -> str:
        query = urlencode({"app_name": app_name, "scope": scope, "user_id": user_id, "return_url": return_url,
                           "callback_url": callback_url})
        return f"{self.origin}/wc-auth/v1/authorize?{query}"

    def add_key(self, user_id: str = "admin", permissions: str = "read_write") -> ApiKey:
        with self._lock:
            key = ApiKey(next(self._ids), user_id, "ck_" + secrets.token_hex(20), "cs_" + secrets.token_hex(20),
                         permissions)
            self.keys[key.consumer_key] = key
        return key

    def fail_page(self, page: int, status: int = 503, times: int = 1) -> None:
        """The next `times` GET requests that ask for `page` (of any collection) answer `status`, then it is served."""
        with self._lock:
            self.page_faults.setdefault(page, []).extend([status] * times)

    # --- store activity --------------------------------------------------------------------------------

    def add_product(self, name: str, *, categories: list[str] | tuple[str, ...] = (), product_id: int | None = None,
                    price: str = "10.00") -> dict[str, Any]:
        """A simple product in these categories (names; slugs are made as WordPress makes them)."""
        at = _now()
        with self._lock:
            pid = product_id if product_id is not None else next(self._ids)
            product: dict[str, Any] = {
                "id": pid, "name": name, "slug": _slug(name), "type": "simple", "status": "publish",
                "date_created": _wc_time(at), "date_created_gmt": _wc_time(at), "date_modified": _wc_time(at),
                "date_modified_gmt": _wc_time(at), "sku": f"SKU-{pid}", "price": price, "regular_price": price,
                "categories": [{"id": 1000 + sum(map(ord, c)), "name": c, "slug": _slug(c)} for c in categories],
                "tags": [],
            }
            self.products[pid] = product
        return copy.deepcopy(product)

    def utc_offset(self) -> float:
        """WordPress's gmt_offset (hours): the manual one, else the zone's now."""
        if self.gmt_offset is not None:
            return self.gmt_offset
        offset = datetime.now(ZoneInfo(self.timezone or "UTC")).utcoffset()
        hours = (offset.total_seconds() if offset else 0.0) / 3600
        return int(hours) if hours == int(hours) else hours

    def add_customer(self, email: str, first_name: str = "Ann", last_name: str = "Lee", phone: str = "",
                     *, at: datetime | None = None) -> dict[str, Any]:
        at = at or _now()
        with self._lock:
            cid = next(self._ids)
            customer: dict[str, Any] = {
                "id": cid, "date_created": _wc_time(at), "date_created_gmt": _wc_time(at),
                "date_modified": _wc_time(at), "date_modified_gmt": _wc_time(at), "email": email,
                "first_name": first_name, "last_name": last_name, "role": "customer",
                "username": email.split("@")[0],
                "billing": {"first_name": first_name, "last_name": last_name, "company": "", "address_1": "",
                            "address_2": "", "city": "", "postcode": "", "country": "", "state": "",
                            "email": email, "phone": phone},
                "shipping": {"first_name": "", "last_name": "", "company": "", "address_1": "", "address_2": "",
                             "city": "", "postcode": "", "country": "", "state": "", "phone": ""},
                "is_paying_customer": False, "avatar_url": "", "meta_data": [],
                "_links": self._links("customers", cid),
            }
            self.customers[cid] = customer
        self._fire("customer.created", customer)
        return copy.deepcopy(customer)

    def place_order(self, *, customer_id: int = 0, email: str = "ann@example.com", status: str = "processing",
                    lines: list[tuple[str, int, str]] | None = None, at: datetime | None = None,
                    currency: str | None = None) -> dict[str, Any]:
        with self._lock:
            oid = next(self._ids)
            order = self._order(oid, at or _now(), status=status, customer_id=customer_id, email=email,
                                lines=lines or [("Mug", 2, "12.50")], currency=currency or self.currency)
            self.orders[oid] = order
        self._fire("order.created", order)
        return copy.deepcopy(order)

    def _order(self, oid: int, at: datetime, *, status: str, customer_id: int, email: str,
               lines: list[tuple[str, int, str]], currency: str) -> dict[str, Any]:
        """An order as the REST API (wc/v3) shows it."""
        items: list[dict[str, Any]] = []
        for i, (name, quantity, price) in enumerate(lines):
            subtotal = Decimal(price) * quantity
            items.append({"id": oid * 10 + i, "name": name, "product_id": 10 + i, "variation_id": 0,
                          "quantity": quantity, "tax_class": "", "subtotal": f"{subtotal:.2f}",
                          "subtotal_tax": "0.00", "total": f"{subtotal:.2f}", "total_tax": "0.00", "taxes": [],
                          "meta_data": [], "sku": f"SKU-{i}", "price": float(price),
                          "image": {"id": "", "src": ""}, "parent_name": None})
        total = sum((Decimal(x["total"]) for x in items), Decimal("0"))
        paid = status in ("processing", "completed", "on-hold")
        return {
            "id": oid, "parent_id": 0, "status": status, "currency": currency,
            "version": WC_VERSION, "prices_include_tax": False, "date_created": _wc_time(at),
            "date_modified": _wc_time(at), "discount_total": "0.00", "discount_tax": "0.00",
            "shipping_total": "0.00", "shipping_tax": "0.00", "cart_tax": "0.00", "total": f"{total:.2f}",
            "total_tax": "0.00", "customer_id": customer_id, "order_key": f"wc_order_{oid:012x}",
            "billing": {"first_name": "Ann", "last_name": "", "company": "", "address_1": "", "address_2": "",
                        "city": "", "state": "", "postcode": "", "country": "", "email": email, "phone": ""},
            "shipping": {"first_name": "", "last_name": "", "company": "", "address_1": "", "address_2": "",
                         "city": "", "state": "", "postcode": "", "country": "", "phone": ""},
            "payment_method": "", "payment_method_title": "", "transaction_id": "", "customer_ip_address": "",
            "customer_user_agent": "", "created_via": "checkout", "customer_note": "", "date_completed": None,
            "date_paid": _wc_time(at) if paid else None, "cart_hash": "", "number": str(oid), "meta_data": [],
            "line_items": items, "tax_lines": [], "shipping_lines": [], "fee_lines": [], "coupon_lines": [],
            "refunds": [], "payment_url": f"{self.origin}/checkout/order-pay/{oid}/", "is_editable": False,
            "needs_payment": not paid, "needs_processing": True, "date_created_gmt": _wc_time(at),
            "date_modified_gmt": _wc_time(at), "date_completed_gmt": None,
            "date_paid_gmt": _wc_time(at) if paid else None, "currency_symbol": "$",
            "_links": self._links("orders", oid),
        }

    # --- history: orders made on the fly, for big imports --------------------------------------------------

    def seed_history(self, orders: int) -> None:
        """`orders` past orders with ids 1..orders (older than any placed here), generated when a page of them
        is read, never stored: a mix of completed, processing, cancelled and refunded orders."""
        with self._lock:
            self.history = orders
            self._ids = itertools.count(max(next(self._ids), orders + 100))

    def history_order(self, n: int) -> dict[str, Any]:
        at = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=7 * n)
        status = ["completed", "completed", "processing", "cancelled", "refunded"][n % 5]
        order = self._order(n, at, status=status, customer_id=0, email=f"buyer{n % 5000}@example.com",
                            lines=[("Mug", 1 + n % 3, "12.50"), ("Beans", 1, "18.00")][: 1 + n % 2],
                            currency=self.currency)
        if status in ("completed", "refunded"):
            order["date_completed"] = order["date_completed_gmt"] = order["date_modified_gmt"]
        if status == "refunded":
            order["refunds"] = [{"id": 10**9 + n, "reason": "", "total": f"-{order['total']}"}]
        return order

    def _touch(self, order: dict[str, Any], **changes: Any) -> None:
        previous = _parse_time(order["date_modified_gmt"])
        order.update(changes)
        modified = _wc_time(max(_now(), previous + timedelta(seconds=1)))
        order["date_modified"] = order["date_modified_gmt"] = modified

    def update_order(self, order_id: int, *, status: str) -> dict[str, Any]:
        with self._lock:
            order = self.orders[order_id]
            self._touch(order, status=status)
            if status in ("processing", "completed") and not order["date_paid_gmt"]:
                order["date_paid"] = order["date_paid_gmt"] = order["date_modified_gmt"]
        self._fire("order.updated", order)
        return copy.deepcopy(order)

    def complete_order(self, order_id: int, *, tracking: str | None = None, provider: str = "UPS") -> dict[str, Any]:
        with self._lock:
            order = self.orders[order_id]
            if tracking:
                entry = {"tracking_provider": provider, "custom_tracking_provider": "", "custom_tracking_link": "",
                         "tracking_number": tracking, "date_shipped": str(int(time.time())),
                         "tracking_id": secrets.token_hex(16)}
                metas = [m for m in order["meta_data"] if m["key"] != "_wc_shipment_tracking_items"]
                previous: list[Any] = next((m["value"] for m in order["meta_data"] if m["key"] == "_wc_shipment_tracking_items"),
                                [])
                metas.append({"id": next(self._ids), "key": "_wc_shipment_tracking_items", "value": [*previous, entry]})
                order["meta_data"] = metas
            self._touch(order, status="completed")
            order["date_completed"] = order["date_completed_gmt"] = order["date_modified_gmt"]
        self._fire("order.updated", order)
        return copy.deepcopy(order)

    def refund_order(self, order_id: int, amount: str | None = None, reason: str = "") -> dict[str, Any]:
        with self._lock:
            order = self.orders[order_id]
            value = Decimal(amount or order["total"])
            order["refunds"].append({"id": next(self._ids), "reason": reason, "total": f"-{value:.2f}"})
            refunded = sum((-Decimal(r["total"]) for r in order["refunds"]), Decimal("0"))
            self._touch(order, status="refunded" if refunded >= Decimal(order["total"]) else order["status"])
        self._fire("order.updated", order)
        return copy.deepcopy(order)

    def delete_order(self, order_id: int) -> None:
        with self._lock:
            self.orders.pop(order_id)
        self._fire("order.deleted", {"id": order_id})

    # --- webhook deliveries (WC_Webhook::deliver / deliver_ping / failed_delivery) ----------------------

    def _fire(self, topic: str, resource: dict[str, Any]) -> None:
        with self._lock:
            hooks = [w for w in self.webhooks.values() if w.topic == topic and w.status == "active"]
            body = json.dumps(resource, separators=(",", ":"), ensure_ascii=False).encode()
        for hook in hooks:
            self._deliver(hook, topic, body)

    def _deliver(self, hook: Webhook, topic: str, body: bytes) -> None:
        resource, event = topic.split(".", 1)
        headers = {
            "User-Agent": USER_AGENT, "Accept": "*/*", "Content-Type": "application/json",
            "X-WC-Webhook-Source": self.home_url, "X-WC-Webhook-Topic": topic, "X-WC-Webhook-Resource": resource,
            "X-WC-Webhook-Event": event, "X-WC-Webhook-Signature": b64_hmac(body, hook.secret),
            "X-WC-Webhook-ID": str(hook.id),
            # wp_hash( $webhook_id . strtotime( 'now' ) ): the same value for every delivery in one second
            "X-WC-Webhook-Delivery-ID": hashlib.md5(f"{hook.id}{int(time.time())}".encode()).hexdigest(),
        }
        status = self._post(hook.delivery_url, body, headers)
        with self._lock:
            self.sent.append(Sent(hook.id, topic, body, headers, status))
            if status is not None and 200 <= status < 303:  # 2xx, 301 or 302: success, the run of failures ends
                hook.failure_count = 0
            elif hook.failure_count > MAX_FAILURES:
                hook.status = "disabled"
            else:
                hook.failure_count += 1

    def _ping(self, hook: Webhook) -> None:
        body = f"webhook_id={hook.id}".encode()
        headers = {"User-Agent": USER_AGENT, "Accept": "*/*", "Content-Type": "application/x-www-form-urlencoded"}
        status = self._post(hook.delivery_url, body, headers)
        hook.pinged = True
        with self._lock:
            self.sent.append(Sent(hook.id, None, body, headers, status))

    @staticmethod
    def _post(url: str, body: bytes, headers: dict[str, str]) -> int | None:
        try:  # 'redirection' => 0: a redirect is not followed
            return requests.post(url, data=body, headers=headers, timeout=5, allow_redirects=False).status_code
        except requests.RequestException:
            return None

    # --- REST helpers ----------------------------------------------------------------------------------

    def _links(self, collection: str, rid: int) -> dict[str, Any]:
        base = f"{self.origin}/wp-json/wc/v3/{collection}"
        return {"self": [{"href": f"{base}/{rid}"}], "collection": [{"href": base}]}

    def _authenticate(self) -> ApiKey | Response:
        """Basic auth, or OAuth 1.0a in the query (what the woocommerce package sends to an http:// store)."""
        auth = request.authorization
        if auth is not None and auth.type == "basic":
            key = self.keys.get(auth.username or "")
            if key is None or not hmac.compare_digest(key.consumer_secret, auth.password or ""):
                return _error("woocommerce_rest_authentication_error", "Consumer secret is invalid.", 401)
            return key
        params = request.args.to_dict()  # the package repeats the query; PHP keeps one value per key too
        if "oauth_consumer_key" in params:
            key = self.keys.get(params["oauth_consumer_key"])
            if key is None:
                return _error("woocommerce_rest_authentication_error", "Consumer key is invalid.", 401)
            if params.get("oauth_signature_method") not in ("HMAC-SHA1", "HMAC-SHA256"):
                return _error("woocommerce_rest_authentication_error", "Invalid signature method.", 401)
            try:
                stamp = int(params.get("oauth_timestamp", ""))
            except ValueError:
                stamp = 0
            if abs(time.time() - stamp) > OAUTH_WINDOW:
                return _error("woocommerce_rest_authentication_error", "Invalid timestamp.", 401)
            expected = oauth_signature(request.method, request.base_url, params, key.consumer_secret)
            if params.get("oauth_signature_method") != "HMAC-SHA256" or not hmac.compare_digest(
                    expected, params.get("oauth_signature", "").replace(" ", "+")):
                return _error("woocommerce_rest_authentication_error",
                              "Invalid signature - provided signature does not match.", 401)
            nonce = params.get("oauth_nonce", "")
            with self._lock:
                if not nonce or nonce in key.nonces:
                    return _error("woocommerce_rest_authentication_error",
                                  "Invalid nonce - nonce has already been used.", 401)
                key.nonces.add(nonce)
            return key
        verb = {"GET": "view", "POST": "create", "PUT": "edit", "DELETE": "delete"}.get(request.method, "view")
        message = "Sorry, you cannot list resources." if verb == "view" else f"Sorry, you are not allowed to {verb} resources."
        return _error(f"woocommerce_rest_cannot_{verb}", message, 401)

    def _page(self, items: list[dict[str, Any]]) -> Response:
        try:
            per_page = int(request.args.get("per_page", "10"))
            page = int(request.args.get("page", "1"))
        except ValueError:
            return _error("rest_invalid_param", "Invalid parameter(s): page, per_page", 400)
        if not 1 <= per_page <= 100:
            return _error("rest_invalid_param", "Invalid parameter(s): per_page", 400,
                          params={"per_page": "per_page must be between 1 (inclusive) and 100 (inclusive)"})
        if page < 1:
            return _error("rest_invalid_param", "Invalid parameter(s): page", 400)
        total = len(items)
        response = jsonify(copy.deepcopy(items[(page - 1) * per_page: page * per_page]))
        response.headers["X-WP-Total"] = str(total)
        response.headers["X-WP-TotalPages"] = str(math.ceil(total / per_page))
        return response

    def _history_page(self) -> Response:
        """A page of generated orders followed by the stored ones, oldest id first, without building them all."""
        per_page, page = int(request.args.get("per_page", "10")), int(request.args.get("page", "1"))
        with self._lock:
            stored = sorted(self.orders.values(), key=lambda o: o["id"])
        total = self.history + len(stored)
        start, end = (page - 1) * per_page, min(page * per_page, total)
        items = [self.history_order(n + 1) if n < self.history else copy.deepcopy(stored[n - self.history])
                 for n in range(start, end)]
        response = jsonify(items)
        response.headers["X-WP-Total"] = str(total)
        response.headers["X-WP-TotalPages"] = str(math.ceil(total / per_page))
        return response

    def _ordered(self, items: list[dict[str, Any]], default: str = "date") -> list[dict[str, Any]] | Response:
        orderby, order = request.args.get("orderby", default), request.args.get("order", "desc")
        keys = {"id": lambda x: x["id"], "date": lambda x: (x["date_created_gmt"], x["id"]),
                "modified": lambda x: (x["date_modified_gmt"], x["id"]), "include": lambda x: x["id"]}
        if orderby not in keys or order not in ("asc", "desc"):
            return _error("rest_invalid_param", "Invalid parameter(s): orderby, order", 400)
        return sorted(items, key=keys[orderby], reverse=order == "desc")

    def _modified_after(self, items: list[dict[str, Any]]) -> list[dict[str, Any]] | Response:
        after = request.args.get("modified_after")
        if not after:
            return items
        try:
            when = _parse_time(after)
        except ValueError:
            return _error("rest_invalid_param", "Invalid parameter(s): modified_after", 400)
        return [x for x in items if _parse_time(x["date_modified_gmt"]) > when]

    def _new_coupon(self, data: dict[str, Any]) -> dict[str, Any] | Response:
        code = str(data.get("code") or "").strip().lower()  # wc_format_coupon_code + wc_strtolower
        if not code:
            return _error("woocommerce_rest_empty_coupon_code", "The coupon code cannot be empty.", 400)
        if any(c["code"] == code for c in self.coupons.values()):
            return _error("woocommerce_rest_coupon_code_already_exists", "The coupon code already exists", 400)
        cid, now = next(self._ids), _now()
        coupon = {"id": cid, "code": code, "amount": str(data.get("amount", "0")),
                  "discount_type": data.get("discount_type", "fixed_cart"),
                  "date_created_gmt": _wc_time(now), "date_modified_gmt": _wc_time(now),
                  "date_expires_gmt": data.get("date_expires_gmt") or data.get("date_expires"),
                  "description": data.get("description", ""), "individual_use": bool(data.get("individual_use")),
                  "usage_limit": data.get("usage_limit"), "usage_limit_per_user": data.get("usage_limit_per_user"),
                  "usage_count": 0, "email_restrictions": list(data.get("email_restrictions") or []),
                  "free_shipping": bool(data.get("free_shipping")), "meta_data": list(data.get("meta_data") or []),
                  "product_ids": [int(x) for x in data.get("product_ids") or []],
                  "limit_usage_to_x_items": data.get("limit_usage_to_x_items"),
                  "_links": self._links("coupons", cid)}
        self.coupons[cid] = coupon
        return coupon

    # --- HTTP ------------------------------------------------------------------------------------------

    def _build(self) -> Flask:
        app = Flask("woocommerce-simulator")
        sim = self
        api = "/wp-json/wc/v3"

        @app.get("/wc-auth/v1/authorize")
        def authorize() -> Response:
            args = request.args
            missing = [k for k in ("app_name", "scope", "user_id", "return_url", "callback_url") if not args.get(k)]
            if missing:
                return Response(f"Error: {missing[0]} is missing.", status=400)
            if args["scope"] not in SCOPES:
                return Response("Error: Invalid scope.", status=400)
            callback = args["callback_url"]
            if sim.require_https_callback and not callback.startswith("https://"):
                return Response("Error: The callback_url needs to be over SSL.", status=400)
            # The merchant logs in and clicks Approve: WC_Auth::create_keys, then post_consumer_data.
            key = sim.add_key(args["user_id"], SCOPES[args["scope"]])
            payload = {"key_id": key.key_id, "user_id": key.user_id, "consumer_key": key.consumer_key,
                       "consumer_secret": key.consumer_secret, "key_permissions": key.permissions}
            try:
                answer: int | None = requests.post(
                    callback, data=json.dumps(payload), timeout=10, allow_redirects=False,
                    headers={"Content-Type": "application/json;charset=UTF-8",
                             "User-Agent": f"WordPress/6.5.5; {sim.origin}"}).status_code
            except requests.RequestException:
                answer = None
            if answer != 200:  # maybe_delete_key, then wp_die( ..., 401 )
                with sim._lock:
                    sim.deleted_keys.append(sim.keys.pop(key.consumer_key))
                return Response("Error: An error occurred in the request and at the time were unable to send the "
                                "consumer data.", status=401)
            query = urlencode({"success": 1, "user_id": args["user_id"]})
            target = args["return_url"]
            return redirect(f"{target}{'&' if '?' in target else '?'}{query}")  # type: ignore[return-value]

        @app.before_request
        def rest_gate() -> Response | None:
            if not request.path.startswith(api):
                return None
            sub = request.path[len(api):].lstrip("/")
            query = {k: v for k, v in request.args.items() if not k.startswith("oauth_")}
            with sim._lock:
                sim.requests.append((request.method, sub, query))
                fault = sim.faults.pop(0) if sim.faults else None
                page = query.get("page", "")
                page_statuses = sim.page_faults.get(int(page)) if request.method == "GET" and page.isdigit() else None
                page_status = page_statuses.pop(0) if page_statuses else None
            status = fault[1] if fault else page_status
            if status is not None:
                response = _error("simulated_fault", "Simulated outage", status)
                response.headers["Retry-After"] = str(fault[2]) if fault and len(fault) > 2 else "0"
                return response
            if sub == "":
                return jsonify(namespace="wc/v3", routes={})
            key = sim._authenticate()
            if isinstance(key, Response):
                return key
            if request.method != "GET" and key.permissions == "read":
                return _error("woocommerce_rest_authentication_error",
                              "The API key provided does not have write permissions.", 401)
            return None

        @app.get(f"{api}/")
        @app.get(api)
        def index() -> Response:  # answered by the gate
            return jsonify(namespace="wc/v3")

        @app.get("/wp-json/")
        @app.get("/wp-json")
        def site_index() -> Response:  # WP_REST_Server::get_index: public, no authentication
            return jsonify(name=sim.name, description="Just another WordPress site", url=sim.origin,
                           home=sim.origin, gmt_offset=sim.utc_offset(),
                           timezone_string="" if sim.gmt_offset is not None else sim.timezone,
                           namespaces=["oembed/1.0", "wc/v3", "wp/v2"], authentication=[], routes={})

        @app.get(f"{api}/system_status")
        def system_status() -> Response:
            return jsonify(environment={"home_url": sim.home_url, "site_url": sim.home_url, "version": WC_VERSION,
                                        "wp_version": "6.5.5", "language": sim.language},
                           settings={"currency": sim.currency, "api_enabled": True})

        @app.get(f"{api}/products")
        def products() -> Response:
            include = [x for x in request.args.get("include", "").split(",") if x.strip()]
            if any(not x.strip().isdigit() for x in include):
                return _error("rest_invalid_param", "Invalid parameter(s): include", 400)
            wanted = {int(x) for x in include}
            with sim._lock:
                items = [{**p, "_links": sim._links("products", p["id"])} for p in sim.products.values()
                         if not wanted or p["id"] in wanted]
            ordered = sim._ordered(items)
            return ordered if isinstance(ordered, Response) else sim._page(ordered)

        @app.get(f"{api}/customers/<int:cid>")
        def customer(cid: int) -> tuple[Response, int] | Response:
            with sim._lock:
                found = copy.deepcopy(sim.customers.get(cid))
            if found is None:
                return _error("woocommerce_rest_invalid_id", "Invalid resource ID.", 404)
            return jsonify(found)

        @app.get(f"{api}/orders")
        def orders() -> Response:
            if sim.history and request.args.get("orderby") == "id" and request.args.get("order") == "asc" and \
                    "modified_after" not in request.args and request.args.get("status", "any") == "any":
                return sim._history_page()
            with sim._lock:
                items = [o for o in sim.orders.values()
                         if request.args.get("status", "any") in ("any", o["status"])]
            filtered = sim._modified_after(items)
            if isinstance(filtered, Response):
                return filtered
            ordered = sim._ordered(filtered)
            return ordered if isinstance(ordered, Response) else sim._page(ordered)

        @app.get(f"{api}/orders/<int:oid>")
        def order(oid: int) -> tuple[Response, int] | Response:
            with sim._lock:
                found = copy.deepcopy(sim.orders.get(oid))
            if found is None:
                return _error("woocommerce_rest_shop_order_invalid_id", "Invalid ID.", 404)
            return jsonify(found)

        @app.get(f"{api}/customers")
        def customers() -> Response:
            with sim._lock:
                items = list(sim.customers.values())
            ordered = sim._ordered(items, default="id")
            if isinstance(ordered, Response):
                return ordered
            if "order" not in request.args:
                ordered.reverse()  # customers default to orderby=name order=asc; ids ascending stand for it
            return sim._page(ordered)

        @app.post(f"{api}/coupons")
        def create_coupon() -> tuple[Response, int] | Response:
            with sim._lock:
                coupon = sim._new_coupon(request.get_json(force=True) or {})
            return coupon if isinstance(coupon, Response) else (jsonify(coupon), 201)

        @app.get(f"{api}/coupons")
        def coupons() -> Response:
            code = request.args.get("code", "").strip().lower()
            with sim._lock:
                items = [c for c in sim.coupons.values() if not code or c["code"] == code]
            ordered = sim._ordered(items)
            return ordered if isinstance(ordered, Response) else sim._page(ordered)

        @app.post(f"{api}/coupons/batch")
        def coupons_batch() -> tuple[Response, int] | Response:
            body = request.get_json(force=True) or {}
            if not isinstance(body, dict):
                return _error("rest_invalid_json", "Invalid JSON body passed.", 400)
            creates, deletes = list(body.get("create") or []), list(body.get("delete") or [])
            if len(creates) + len(body.get("update") or []) + len(deletes) > BATCH_LIMIT:
                return _error("woocommerce_rest_request_entity_too_large",
                              f"Unable to accept more than {BATCH_LIMIT} items for this request.", 413)
            out: dict[str, list[dict[str, Any]]] = {"create": [], "delete": []}
            with sim._lock:
                for data in creates:
                    made = sim._new_coupon(data if isinstance(data, dict) else {})
                    if isinstance(made, Response):
                        error = made.get_json()
                        out["create"].append({"id": 0, "error": {"code": error["code"], "message": error["message"],
                                                                 "data": error["data"]}})
                    else:
                        out["create"].append(made)
                for cid in deletes:
                    gone = sim.coupons.pop(int(cid), None)
                    out["delete"].append(gone if gone else {"id": int(cid), "error": {
                        "code": "woocommerce_rest_shop_coupon_invalid_id", "message": "Invalid ID.",
                        "data": {"status": 404}}})
            return jsonify(out)

        @app.get(f"{api}/webhooks")
        def webhooks() -> Response:
            with sim._lock:
                items = [w.json() for w in sim.webhooks.values()
                         if request.args.get("status", "all") in ("all", w.status)]
            return sim._page(sorted(items, key=lambda x: x["id"], reverse=True))

        @app.post(f"{api}/webhooks")
        def create_webhook() -> tuple[Response, int] | Response:
            data = request.get_json(force=True) or {}
            topic = str(data.get("topic") or "")
            url = str(data.get("delivery_url") or "")
            if topic not in TOPICS:
                return _error("woocommerce_rest_webhook_invalid_topic", "Webhook topic is required and must be valid.",
                              400)
            if not url.startswith(("http://", "https://")):
                return _error("woocommerce_rest_webhook_invalid_delivery_url", "Webhook delivery URL must be valid.",
                              400)
            status = str(data.get("status") or "active")
            if status not in ("active", "paused", "disabled"):
                return _error("rest_invalid_param", "Invalid parameter(s): status", 400)
            with sim._lock:
                wid = next(sim._ids)
                hook = Webhook(wid, str(data.get("name") or f"Webhook created on {_now():%b %d, %Y}"), status, topic,
                               url, str(data.get("secret") or secrets.token_urlsafe(32)))
                sim.webhooks[wid] = hook
            if hook.status == "active":
                sim._ping(hook)  # sent before the REST answer, as WC_Webhook does on first activation
            return jsonify(hook.json()), 201

        @app.route(f"{api}/webhooks/<int:wid>", methods=["GET", "PUT", "DELETE"])
        def webhook(wid: int) -> tuple[Response, int] | Response:
            with sim._lock:
                hook = sim.webhooks.get(wid)
            if hook is None:
                return _error("woocommerce_rest_webhook_invalid_id", "Invalid ID.", 404)
            if request.method == "DELETE":
                if request.args.get("force", "").lower() not in ("true", "1"):
                    return _error("woocommerce_rest_trash_not_supported", "Webhooks do not support trashing.", 501)
                with sim._lock:
                    sim.webhooks.pop(wid, None)
                return jsonify(hook.json())
            if request.method == "PUT":
                data = request.get_json(force=True) or {}
                if "topic" in data and data["topic"] not in TOPICS:
                    return _error("woocommerce_rest_webhook_invalid_topic", "Webhook topic must be valid.", 400)
                if "status" in data and data["status"] not in ("active", "paused", "disabled"):
                    return _error("rest_invalid_param", "Invalid parameter(s): status", 400)
                with sim._lock:
                    for name in ("name", "status", "topic", "delivery_url", "secret"):
                        if name in data:
                            setattr(hook, name, str(data[name]))
                    if data.get("status") == "active":
                        hook.failure_count = 0
                if hook.status == "active" and not hook.pinged:
                    sim._ping(hook)
            return jsonify(hook.json())

        return app


def _slug(name: str) -> str:
    """sanitize_title, near enough: lower case, runs of anything else than letters and digits as one hyphen."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _error(code: str, message: str, status: int, **extra: Any) -> Response:
    response = jsonify(code=code, message=message, data={"status": status, **extra})
    response.status_code = status
    return response
