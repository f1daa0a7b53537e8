"""A Shopify-like webhook sender for the drills: signs each delivery with the app's secret the way Shopify does
(base64 HMAC-SHA256 of the raw body in X-Shopify-Hmac-Sha256), posts it to /webhooks/shopify and, like
Shopify, sends the same delivery again (same X-Shopify-Event-Id, same body) until it gets a 2xx: on connection
errors, timeouts, 5xx and any other non-2xx answer. It records every attempt, so a drill can tell which
deliveries failed during a fault and landed on a re-send, and what the web tier answered meanwhile."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import requests

from app.simulator.shopify import sign
from tests.conftest import API_SECRET


@dataclass
class Delivery:
    event_id: str
    body: bytes
    topic: str = "orders/create"
    attempts: list[str] = field(default_factory=list)  # "200", "500", "connection", "timeout", ...
    delivered: bool = False

    @property
    def failures(self) -> list[str]:
        return [a for a in self.attempts if not a.startswith("2")]


def order_deliveries(count: int, *, first_id: int = 1000, prefix: str = "drill") -> list[Delivery]:
    """`count` distinct orders/create deliveries: order ids first_id.., event ids prefix-0..."""
    from tests.samples import shopify as sample

    return [Delivery(f"{prefix}-{n}", json.dumps(dict(sample.ORDER, id=first_id + n, name=f"#{first_id + n}",
                                                      fulfillments=[])).encode())
            for n in range(count)]


class Sender:
    """Posts `deliveries` from `threads` threads at about `rate` deliveries a second, each until it gets a 2xx.

    `start()` returns at once; `join()` waits until every delivery got its 2xx (or `give_up_s` passed)."""

    def __init__(self, url: str, deliveries: list[Delivery], *, shop: str = "shop-a.myshopify.com",
                 secret: str = API_SECRET, threads: int = 6, rate: float = 30.0, timeout: float = 5.0,
                 retry_every: float = 0.25, give_up_s: float = 120.0) -> None:
        self.url, self.shop, self.secret = url.rstrip("/"), shop, secret
        self.deliveries, self.threads, self.timeout = deliveries, threads, timeout
        self.pause = threads / rate if rate else 0.0
        self.retry_every, self.give_up_s = retry_every, give_up_s
        self._todo: queue.Queue[Delivery] = queue.Queue()
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.answers: list[tuple[float, str]] = []  # (monotonic time, outcome) of every attempt, in order
        self.sent = 0  # deliveries taken up so far (first attempts started)

    def headers(self, d: Delivery) -> dict[str, str]:
        return {"X-Shopify-Topic": d.topic, "X-Shopify-Shop-Domain": self.shop, "X-Shopify-Event-Id": d.event_id,
                "X-Shopify-Webhook-Id": f"wh-{d.event_id}", "X-Shopify-API-Version": "2025-01",
                "X-Shopify-Hmac-Sha256": sign(d.body, self.secret), "Content-Type": "application/json"}

    def start(self) -> Sender:
        for d in self.deliveries:
            self._todo.put(d)
        self._deadline = time.monotonic() + self.give_up_s
        for n in range(self.threads):
            thread = threading.Thread(target=self._run, name=f"sender-{n}", daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def join(self) -> bool:
        for thread in self._workers:
            thread.join(max(0.0, self._deadline - time.monotonic()) + 10)
        return all(d.delivered for d in self.deliveries)

    def _run(self) -> None:
        with requests.Session() as session:
            while time.monotonic() < self._deadline:
                try:
                    d = self._todo.get_nowait()
                except queue.Empty:
                    return
                with self._lock:
                    self.sent += 1
                self._deliver(session, d)
                if self.pause:
                    time.sleep(self.pause)

    def _deliver(self, session: requests.Session, d: Delivery) -> None:
        delay = self.retry_every
        while time.monotonic() < self._deadline:
            outcome = self._attempt(session, d)
            with self._lock:
                d.attempts.append(outcome)
                self.answers.append((time.monotonic(), outcome))
            if outcome.startswith("2"):
                d.delivered = True
                return
            time.sleep(delay)
            delay = min(delay * 2, 2.0)  # Shopify backs off far longer; the drill has not got hours

    def _attempt(self, session: requests.Session, d: Delivery) -> str:
        try:
            response = session.post(f"{self.url}/webhooks/shopify", data=d.body, headers=self.headers(d),
                                    timeout=self.timeout)
            return str(response.status_code)
        except requests.Timeout:
            return "timeout"
        except requests.ConnectionError:
            return "connection"
        except requests.RequestException as exc:  # pragma: no cover - anything else still counts as a failure
            return type(exc).__name__

    # --- what happened ----------------------------------------------------------------------------------------

    def delivered(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.delivered]

    def recovered(self) -> list[Delivery]:
        """Deliveries that failed at least once (the fault) and landed on a re-send."""
        return [d for d in self.deliveries if d.delivered and d.failures]

    def outcomes(self) -> Counter[str]:
        with self._lock:
            return Counter(outcome for _, outcome in self.answers)

    def outcomes_between(self, start: float, end: float) -> Counter[str]:
        with self._lock:
            return Counter(outcome for at, outcome in self.answers if start <= at <= end)

    def wait_sent(self, count: int, timeout: float = 60.0) -> bool:
        """Wait until `count` deliveries have been taken up (to strike mid-stream)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.sent >= count:
                    return True
            time.sleep(0.02)
        return False


def describe(counts: Counter[str] | dict[str, Any]) -> str:
    return " ".join(f"{k}x{v}" for k, v in sorted(counts.items())) or "none"
