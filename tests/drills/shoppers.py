"""What the delivery and redemption drills share: a Shopify store simulator that counts every discount code
Encore writes and can be taken down (429 with Retry-After, 5xx) for a window of a controllable clock, a shop
installed against it, storefront shoppers redeeming through signed app-proxy requests, and the clock."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from flask import Response, jsonify, request

from app.bootstrap import Container
from app.db import models as t
from app.simulator.shopify import PROXY_PREFIX, ShopifySimulator
from connectors.shopify.client import ShopifyClient
from tests.conftest import API_KEY, API_SECRET

SHOP = "drill-store.myshopify.com"


class Clock:
    """The container's clock, moved by the drill: "minutes" of outage and backoff pass in a few steps."""

    def __init__(self, at: datetime | None = None) -> None:
        self.at = at or datetime.now(UTC).replace(microsecond=0)

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> datetime:
        self.at += timedelta(seconds=seconds)
        return self.at


OUTAGE_ANSWERS = (429, 503, 502, 500)  # in turn, while the store is down


@dataclass
class Store:
    """The simulator with a watch on its Admin API: every discount code write is counted by code (those the
    outage refused apart), and while `down()` holds every GraphQL call is answered 429 (with Retry-After) or
    5xx in turn. `write_latency` makes each code write take that long (a real store's pace), so that a kill
    lands between a debit and its code's write more often than not."""

    sim: ShopifySimulator
    down: Callable[[], bool] = lambda: False
    retry_after: str = "2"
    write_latency: float = 0.0
    writes: Counter[str] = field(default_factory=Counter)  # code -> discount create calls that reached the store
    refused_writes: Counter[str] = field(default_factory=Counter)  # code -> create calls the outage answered
    refused: Counter[int] = field(default_factory=Counter)  # status -> calls the outage answered
    _turn: Any = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(cls, **options: Any) -> Store:
        sim = ShopifySimulator(api_key=API_KEY, api_secret=API_SECRET, app_url="http://127.0.0.1:1")
        store = cls(sim, **options)
        sim.app.before_request(store._watch)  # before the first request: Flask takes no hook after it
        sim.start()
        sim.add_store(SHOP, name="Drill Store", currency="USD", timezone="UTC", locale="en")
        return store

    def stop(self) -> None:
        self.sim.stop()

    @property
    def discounts(self) -> dict[str, dict[str, Any]]:
        """The discount codes the store holds (lower case), each once: the store refuses a code it has."""
        return self.sim.stores[SHOP].discounts

    def _watch(self) -> tuple[Response, int] | None:
        if not request.path.endswith("/graphql.json"):
            return None
        body = request.get_json(silent=True) or {}
        query = str(body.get("query", ""))
        code = None
        if "discountCode" in query and "Create" in query:
            code = str(((body.get("variables") or {}).get("discount") or {}).get("code", "")).lower()
        if self.down():
            with self._lock:
                status = OUTAGE_ANSWERS[next(self._turn) % len(OUTAGE_ANSWERS)]
                self.refused[status] += 1
                if code:
                    self.refused_writes[code] += 1
            response = jsonify(errors="simulated outage")
            if status == 429:
                response.headers["Retry-After"] = self.retry_after
            return response, status
        if code:
            with self._lock:
                self.writes[code] += 1
            if self.write_latency:
                time.sleep(self.write_latency)
        return None

    def install(self, c: Container) -> int:
        """The shop in Encore's database with an access token the simulator issued (as an install leaves it)."""
        client = ShopifyClient(api_key=API_KEY, api_secret=API_SECRET, shop_origin=self.sim.shop_origin_template,
                               sleep=lambda s: None)
        tokens = client.exchange_id_token(SHOP, self.sim.session_token(SHOP))
        client.http.close()
        with c.sessions() as s, s.begin():
            shop = t.Shop(platform="shopify", domain=SHOP, name="Drill Store", currency="USD", timezone="UTC",
                          installed_at=datetime.now(UTC), access_token=c.vault.seal(tokens.access_token),
                          access_expires_at=tokens.expires_at, refresh_token=c.vault.seal(tokens.refresh_token),
                          refresh_expires_at=tokens.refresh_expires_at, scopes=tokens.scope)
            s.add(shop)
            s.flush()
            return shop.id


# --- storefront shoppers ----------------------------------------------------------------------------------------


@dataclass
class Press:
    """One press of a reward's button in the widget: the request key it sent, how many requests it took, and the
    answer it ended with."""

    customer_id: str
    key: str
    requests: int = 0
    status: int | None = None  # the answer the widget settled on (None: the network failed every time)
    answer: dict[str, Any] = field(default_factory=dict)


@dataclass
class Shopper:
    """A logged-in customer on the storefront who wants `wants` rewards and presses the button until each one
    shows its code, through the store's app proxy (the simulator signs and forwards as Shopify does; when
    Encore does not answer, the proxy answers 5xx, as Shopify's does). The presses follow the widget's rules
    (static/widget/encore-widget.js): a request failing on the network or with a 5xx is sent once more with the
    same request key; a press that ends without a code shows an error and the shopper presses again, with the
    same key while the widget keeps it pending (network failures and 5xx), a new key after any other answer."""

    store: ShopifySimulator
    customer_id: str
    reward_id: int
    wants: int
    presses: list[Press] = field(default_factory=list)
    got: list[dict[str, Any]] = field(default_factory=list)  # the answers that showed a code
    dropped: int = 0  # requests that failed on the network or were answered 5xx (the app's tier down or killed)

    def run(self, deadline: float) -> None:
        with requests.Session() as http:
            http.get(self.store.storefront_url(SHOP, customer=self.customer_id), timeout=15)  # logs in (cookie)
            url = f"{self.store.origin}/storefront/{SHOP}{PROXY_PREFIX}/loyalty/redeem"
            pending: str | None = None
            while len(self.got) < self.wants and time.monotonic() < deadline:
                pending = pending or uuid.uuid4().hex
                press = Press(self.customer_id, pending)
                self.presses.append(press)
                for _ in range(2):  # send(id, key, 1): one retry on a network failure or a 5xx
                    press.requests += 1
                    try:
                        got = http.post(url, json={"reward_id": self.reward_id, "request_key": pending}, timeout=15)
                    except requests.RequestException:
                        self.dropped += 1
                        press.status, press.answer = None, {}
                        continue
                    press.status = got.status_code
                    press.answer = got.json() if got.headers.get("Content-Type", "").startswith("application/json") \
                        else {}
                    if got.status_code < 500:
                        break
                    self.dropped += 1
                if press.status is not None and press.status < 500:
                    pending = None  # an answer settled the press: the next press is a new redemption
                if press.status in (200, 201, 202) and press.answer.get("code"):
                    self.got.append(press.answer)
                elif press.status == 422:
                    return  # not enough points left: nothing more to redeem
                else:
                    time.sleep(0.2)  # the error shows; the shopper presses again
