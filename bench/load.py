"""Load drill: signed Shopify webhooks at a target rate for minutes, while the widget API is read and the journeys
dispatcher is busy, all on Encore's real tiers; then a check that nothing was lost, doubled or parked.

    .venv/bin/python bench/load.py [--minutes 10] [--rate 2] [--widget-rate 50] [--backlog 5000]
                                   [--baseline 30] [--customers 20000] [--pending 100000] [--keep]

Setup, on PostgreSQL (DATABASE_URL when it names PostgreSQL, else the other benches' default) in a schema of its
own, dropped at the end (kept with --keep): one installed Shopify shop (bench/dispatch.py's: Bench Coffee, USD,
the thank-you journey and six later journeys on, English, Korean and Japanese customers with past orders), the
loyalty program on and every customer's account holding a signup bonus, `--pending` messages scheduled hours to
weeks ahead, and `--backlog` thank-yous already due when the drill starts. Redis: the given database with a queue
name of the run's own (its keys are deleted at the end; nothing is flushed).

Encore's tiers, as production runs them: the web under gunicorn (gthread, 2 workers x 4 threads) and 2
`encore worker` processes (RQ worker with its scheduler, the relay and the dispatcher), ENCORE_ENV=production,
email to the journal sink (ENCORE_EMAIL_SINK: nothing leaves the machine, each send is one journal line).

Load, open loop from this process (asyncio, persistent HTTP/1.1 connections; request i of a stream is due at
start + i / rate whatever happened before it, and its latency runs from that scheduled time, so a slow answer
delays nobody's clock: no coordinated omission):
  webhooks  at --rate: orders/create for a known customer (paid, 1-3 lines of the shop's catalogue), and for
            --fulfil-share of the orders an orders/fulfilled 5 s after it; each signed as Shopify signs, with a
            unique X-Shopify-Event-Id. Each paid order earns points and enrolls a thank-you due at once.
  widget    at --widget-rate: signed app-proxy GETs of /proxy/loyalty/balance for customers the webhooks do not
            touch (their balances do not move, so every answer is checked against the database).
A sampler reads every second: the RQ queue depth, the inbox rows waiting, the dispatcher's lag (how long the
oldest due message has waited) and the messages sent (journal lines).

After the load: a wait until the pipeline is idle (--settle at most), then the figures (per traffic kind: sent,
throughput, p50/p95/p99/max latency, errors; the pipeline: inbox received vs processed, receive-to-processed lag,
messages a second, lateness from due to sent, queue depth) and the checks: every 2xx webhook is in the inbox
exactly once and processed, nothing parked, every message handed to the sink once and marked sent, every due
one sent. Then the baseline, in the same run, with the workers stopped: the webhooks alone for --baseline
seconds at the same rate, then the widget alone (each stored webhook checked against a 2xx).

It prints a table and writes bench/results/load.json; it exits 1 when a check fails, never on timings.
Everything it launches is stopped before it exits, error or not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import orjson  # noqa: E402
import psycopg  # noqa: E402
from dispatch import DEFAULT_DB, SHOP, World  # noqa: E402
from intake import (  # noqa: E402
    CLK_TCK,
    _launched,
    _on_signal,
    _stop,
    _stop_all,
    foreign_load,
    free_port,
    process_stats,
    wait_healthy,
    with_search_path,
)

from app import loyalty  # noqa: E402
from app.core.loyalty import Balance, Entry, Posting, Reason  # noqa: E402
from app.simulator.shopify import sign as sign_body  # noqa: E402
from connectors.shopify.proxy import sign as sign_proxy  # noqa: E402

API_KEY = "bench-api-key"
API_SECRET = "shpss_bench_" + "0a1b2c3d4e5f6789" * 2
WIDGET_PATH = "/proxy/loyalty/balance"
PATH_PREFIX = "/apps/encore"
ORDER_BASE = 9_000_000_000  # the drill's orders; the seeded ones are 5_000_000_000 and up
APP_NAME = "bench-load"


# --- the shop --------------------------------------------------------------------------------------------------

class Shop(World):
    """bench/dispatch.py's shop and customers, with the loyalty program on and a balance on every account."""

    def shop(self) -> None:
        super().shop()
        assert self.c is not None
        with self.c.sessions() as s, s.begin():
            loyalty.switch_on(s, self.shop_id, self.now - timedelta(days=30), actions={"signup": 100})

    def balances(self, customers: list[str]) -> dict[str, tuple[int, int]]:
        """A signup bonus (50-210 points) on every account, posted with `loyalty.post_many`."""
        assert self.c is not None
        for start in range(0, len(customers), 2000):
            batch = [(cid, [Posting(Entry(50 + (i % 17) * 10, Balance.AVAILABLE, Reason.ACTION,
                                          f"action:signup:{cid}"), detail={"action": "signup"})])
                     for i, cid in enumerate(customers[start:start + 2000], start)]
            with self.c.sessions() as s, s.begin():
                loyalty.post_many(s, self.shop_id, batch, self.now - timedelta(days=7))
        return {str(cid): (int(a), int(p)) for cid, a, p in self.rows(
            "SELECT customer_external_id, available, pending FROM loyalty_accounts WHERE shop_id = %s",
            (self.shop_id,))}


# --- what the store sends ----------------------------------------------------------------------------------------

def iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds")


class Orders:
    """Order payloads as Shopify sends them, for the shop's customers (the webhook half) and catalogue."""

    def __init__(self, world: Shop, customers: list[tuple[str, str, str]], seed: int, run: str) -> None:
        self.rng = random.Random(seed)
        self.products = world.products
        self.customers = customers
        self.run = run
        self.n = 0
        self.events = 0

    def event_id(self, kind: str) -> str:
        self.events += 1
        return f"{self.run}-{kind}-{self.events}"

    def create(self) -> dict[str, Any]:
        rng = self.rng
        self.n += 1
        oid = ORDER_BASE + self.n
        ext, email, locale = self.customers[rng.randrange(len(self.customers))]
        at = datetime.now(UTC)
        picked = rng.sample(self.products, rng.choices((1, 2, 3), (50, 35, 15))[0])
        items = []
        subtotal = 0.0
        for j, (pid, title, price) in enumerate(picked):
            qty = rng.choices((1, 2, 3), (70, 22, 8))[0]
            items.append({"id": oid * 10 + j, "title": title, "name": title, "quantity": qty, "price": str(price),
                          "total_discount": "0.00", "product_id": int(pid), "variant_id": int(pid) + 500_000,
                          "sku": f"SKU-{pid}"})
            subtotal += float(price) * qty
        shipping = 0.0 if subtotal >= 50 else 5.0
        return {
            "id": oid, "admin_graphql_api_id": f"gid://shopify/Order/{oid}", "name": f"#L{self.n}",
            "order_number": 500_000 + self.n, "email": email, "created_at": iso(at), "updated_at": iso(at),
            "processed_at": iso(at), "cancelled_at": None, "currency": "USD", "presentment_currency": "USD",
            "subtotal_price": f"{subtotal:.2f}", "total_tax": "0.00", "total_discounts": "0.00",
            "total_price": f"{subtotal + shipping:.2f}",
            "total_shipping_price_set": {"shop_money": {"amount": f"{shipping:.2f}", "currency_code": "USD"}},
            "financial_status": "paid", "fulfillment_status": None,
            "customer": {"id": int(ext), "email": email, "first_name": "Load", "last_name": f"Shopper {ext[-5:]}",
                         "phone": None, "locale": locale, "created_at": iso(at - timedelta(days=200)),
                         "updated_at": iso(at - timedelta(days=200)),
                         "email_marketing_consent": {"state": "subscribed", "opt_in_level": "single_opt_in",
                                                     "consent_updated_at": iso(at - timedelta(days=200))},
                         "sms_marketing_consent": None},
            "line_items": items, "fulfillments": [], "refunds": [],
        }

    def fulfilled(self, order: dict[str, Any]) -> dict[str, Any]:
        at = datetime.fromisoformat(order["updated_at"]) + timedelta(seconds=5)
        fid = order["id"] * 10 + 7
        number = f"1Z999AA1{fid % 10**10:010d}"
        return {**order, "updated_at": iso(at), "fulfillment_status": "fulfilled", "fulfillments": [{
            "id": fid, "order_id": order["id"], "status": "success", "shipment_status": None,
            "tracking_company": "UPS", "tracking_number": number, "tracking_numbers": [number],
            "tracking_url": f"https://www.ups.com/track?tracknum={number}",
            "tracking_urls": [f"https://www.ups.com/track?tracknum={number}"],
            "created_at": iso(at), "updated_at": iso(at)}]}


def webhook_request(topic: str, payload: dict[str, Any], event_id: str, shop: str) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(payload)
    return body, {"Content-Type": "application/json", "X-Shopify-Topic": topic, "X-Shopify-Shop-Domain": shop,
                  "X-Shopify-Hmac-Sha256": sign_body(body, API_SECRET), "X-Shopify-API-Version": "2025-01",
                  "X-Shopify-Webhook-Id": event_id, "X-Shopify-Event-Id": event_id}


def widget_target(shop: str, customer_id: str, locale: str) -> str:
    params = [("shop", shop), ("logged_in_customer_id", customer_id), ("path_prefix", PATH_PREFIX),
              ("timestamp", str(int(time.time()))), ("locale", locale)]
    params.append(("signature", sign_proxy(params, API_SECRET)))
    return f"{WIDGET_PATH}?{urlencode(params)}"


# --- the HTTP client -----------------------------------------------------------------------------------------------

class Connection:
    """One persistent HTTP/1.1 connection: a request, then its whole answer (Content-Length or chunked)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reconnects = 0

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
        head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUser-Agent: encore-load-drill\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        raw = (head + (f"Content-Length: {len(body)}\r\n" if method == "POST" else "") + "\r\n").encode() + body
        for attempt in (0, 1):
            fresh = self.writer is None
            if fresh:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            reader, writer = self.reader, self.writer
            assert reader is not None and writer is not None
            try:
                writer.write(raw)
                answer = await reader.readuntil(b"\r\n\r\n")
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt == 0 and not fresh:  # closed while idle (keep-alive ran out): once more, fresh
                    self.reconnects += 1
                    continue
                raise
            break
        assert reader is not None
        lines = answer.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        hdrs = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        if "content-length" in hdrs:
            data = await reader.readexactly(int(hdrs["content-length"]))
        elif hdrs.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            data = b"".join(parts)
        else:
            data = await reader.read()
            hdrs["connection"] = "close"
        if hdrs.get("connection", "").lower() == "close":
            self.close()
        return status, data


@dataclass
class Tally:
    """One traffic kind's outcome: every request scheduled, answered (with its latency from the scheduled time),
    failed or left unanswered."""

    name: str
    rate: float
    scheduled: int = 0
    sent: int = 0
    ok: int = 0
    non2xx: int = 0
    timeouts: int = 0
    failed: int = 0
    wrong: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, every answered request (2xx or not)
    completed_in_window: int = 0
    window_s: float = 0.0
    generator_late_max_s: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    ok_ids: set[str] = field(default_factory=set)  # webhooks: the event ids answered 2xx
    topics: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    per_second: Counter[int] = field(default_factory=Counter)  # answers by second of the run

    def note(self, problem: str) -> None:
        if len(self.problems) < 5:
            self.problems.append(problem)

    def summary(self) -> dict[str, Any]:
        unfinished = self.scheduled - self.ok - self.non2xx - self.timeouts - self.failed
        lat = self.latencies + [math.inf] * (self.timeouts + max(0, unfinished))
        return {
            "rate": self.rate, "scheduled": self.scheduled, "sent": self.sent, "ok_2xx": self.ok,
            "non_2xx": self.non2xx, "timeouts": self.timeouts, "failed": self.failed, "unfinished": max(0, unfinished),
            "errors": self.non2xx + self.timeouts + self.failed + max(0, unfinished), "wrong": self.wrong,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "achieved_per_s": self.completed_in_window / self.window_s if self.window_s else 0.0,
            "p50_ms": percentile(lat, 50) * 1000, "p95_ms": percentile(lat, 95) * 1000,
            "p99_ms": percentile(lat, 99) * 1000, "max_ms": max(lat, default=math.nan) * 1000,
            "generator_late_max_ms": self.generator_late_max_s * 1000, "topics": dict(self.topics),
            "problems": self.problems,
        }


def percentile(values: list[float], p: float) -> float:
    """Nearest rank; inf (unanswered) sorts last."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))]


async def stream(tally: Tally, port: int, seconds: float, connections: int, timeout: float, drain: float,
                 make: Any, check: Any, t0: float) -> None:
    """Open loop: request i due at t0 + i / rate; `make(i)` builds (method, target, headers, body, tag) just before
    it goes; `check(tag, status, body)` judges the answer."""
    loop = asyncio.get_running_loop()
    pool = [Connection(port) for _ in range(connections)]
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    total = round(tally.rate * seconds)
    tally.scheduled = total
    tally.window_s = total / tally.rate if tally.rate else 0.0
    end = t0 + tally.window_s

    async def produce() -> None:
        for i in range(total):
            at = t0 + i / tally.rate
            wait = at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                tally.generator_late_max_s = max(tally.generator_late_max_s, -wait)
            queue.put_nowait((i, at))

    async def work(conn: Connection) -> None:
        while (item := await queue.get()) is not None:
            i, at = item
            method, target, headers, body, tag = make(i)
            tally.sent += 1
            try:
                async with asyncio.timeout(timeout):
                    status, answer = await conn.request(method, target, headers, body)
            except TimeoutError:
                conn.close()
                tally.timeouts += 1
                tally.note(f"timed out after {timeout:g} s")
                continue
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                conn.close()
                tally.failed += 1
                tally.note(f"request failed: {type(exc).__name__}: {exc}"[:200])
                continue
            done = loop.time()
            tally.latencies.append(done - at)
            tally.statuses[status] += 1
            tally.per_second[int(done - t0)] += 1
            if done < end:
                tally.completed_in_window += 1
            if 200 <= status < 300:
                tally.ok += 1
                check(tag, answer)
            else:
                tally.non2xx += 1
                tally.note(f"{status}: {answer[:160]!r}")

    workers = [asyncio.create_task(work(c)) for c in pool]
    await produce()
    for _ in pool:
        queue.put_nowait(None)
    _, left = await asyncio.wait(workers, timeout=max(0.0, end + drain - loop.time()))
    for task in left:
        task.cancel()
    await asyncio.gather(*left, return_exceptions=True)
    for conn in pool:
        conn.close()


def webhook_maker(tally: Tally, orders: Orders, shop: str, fulfil_share: float, t0: float) -> Any:
    """Request i of the webhook stream: an orders/fulfilled of an order created 5 s or more ago (for
    `fulfil_share` of the orders), else an orders/create."""
    waiting: deque[tuple[float, dict[str, Any]]] = deque()
    rng = random.Random(orders.rng.random())
    loop = asyncio.get_event_loop()

    def make(i: int) -> tuple[str, str, dict[str, str], bytes, str]:
        now = loop.time()
        if waiting and now - waiting[0][0] >= 5.0:
            order = waiting.popleft()[1]
            topic, payload, eid = "orders/fulfilled", orders.fulfilled(order), orders.event_id("f")
        else:
            order = orders.create()
            if rng.random() < fulfil_share:
                waiting.append((now, order))
            topic, payload, eid = "orders/create", order, orders.event_id("c")
        tally.topics[topic] += 1
        body, headers = webhook_request(topic, payload, eid, shop)
        return "POST", "/webhooks/shopify", headers, body, eid

    return make


def widget_maker(customers: list[tuple[str, str, str]], shop: str, seed: int) -> Any:
    rng = random.Random(seed)

    def make(i: int) -> tuple[str, str, dict[str, str], bytes, str]:
        cid, _, locale = customers[rng.randrange(len(customers))]
        return "GET", widget_target(shop, cid, locale), {"Accept": "application/json"}, b"", cid

    return make


def widget_checker(tally: Tally, balances: dict[str, tuple[int, int]]) -> Any:
    def check(cid: str, body: bytes) -> None:
        try:
            points = orjson.loads(body)["points"]
            got: Any = (points["available"], points["pending"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            got = body[:160]
        if got != balances.get(cid):
            tally.wrong += 1
            tally.note(f"customer {cid}: answered {got!r}, the database says {balances.get(cid)}")
    return check


def webhook_checker(tally: Tally) -> Any:
    def check(eid: str, _body: bytes) -> None:
        tally.ok_ids.add(eid)
    return check


async def traffic(port: int, seconds: float, a: argparse.Namespace, webhooks: Tally | None, widget: Tally | None,
                  orders: Orders, shop: str, widget_customers: list[tuple[str, str, str]],
                  balances: dict[str, tuple[int, int]], seed: int) -> float:
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.1
    jobs = []
    if webhooks is not None and webhooks.rate > 0:
        jobs.append(stream(webhooks, port, seconds, a.connections, a.timeout, a.drain,
                           webhook_maker(webhooks, orders, shop, a.fulfil_share, t0), webhook_checker(webhooks), t0))
    if widget is not None and widget.rate > 0:
        jobs.append(stream(widget, port, seconds, a.widget_connections, a.timeout, a.drain,
                           widget_maker(widget_customers, shop, seed), widget_checker(widget, balances), t0))
    started = time.time()
    await asyncio.gather(*jobs)
    return started


# --- watching the pipeline -----------------------------------------------------------------------------------------

class Sampler(threading.Thread):
    """Every second: the RQ queue depth, the inbox rows waiting, the dispatcher's lag and the messages sent."""

    def __init__(self, db_url: str, schema: str, redis_url: str, queue: str, journal: Path) -> None:
        super().__init__(name="load-sampler", daemon=True)
        from redis import Redis

        self.conn = psycopg.connect(db_url, autocommit=True, options=f"-csearch_path={schema}",
                                    application_name=f"{APP_NAME}-sampler")
        self.redis = Redis.from_url(redis_url)
        self.queue, self.journal = queue, journal
        self.samples: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self._journal_pos = 0
        self._journal_lines = 0

    def depth(self) -> int:
        keys = [k for k in self.redis.scan_iter(match=f"rq:queue:{self.queue}*", count=100)
                if self.redis.type(k) == b"list"]
        return sum(int(self.redis.llen(k)) for k in keys)

    def sent(self) -> int:
        if not self.journal.exists():
            return 0
        with self.journal.open("rb") as f:
            f.seek(self._journal_pos)
            chunk = f.read()
        complete = chunk.rfind(b"\n") + 1
        self._journal_pos += complete
        self._journal_lines += chunk[:complete].count(b"\n")
        return self._journal_lines

    def sample(self) -> dict[str, Any]:
        waiting = self.conn.execute("SELECT count(*) FILTER (WHERE status IN ('pending', 'processing')), "
                                    "count(*) FILTER (WHERE status = 'parked') FROM inbox").fetchone()
        # how long the oldest due message has waited since it was both due and written (a thank-you is written
        # when its order is processed, already due: the inbox's lag is not the dispatcher's)
        oldest = self.conn.execute("SELECT extract(epoch FROM now() - min(greatest(due_at, created_at)))::float8 "
                                   "FROM messages WHERE status = 'pending' AND due_at <= now()").fetchone()
        assert waiting is not None and oldest is not None
        return {"t": time.time(), "queue_depth": self.depth(), "inbox_waiting": int(waiting[0]),
                "inbox_parked": int(waiting[1]), "dispatcher_lag_s": float(oldest[0] or 0.0), "sent": self.sent()}

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.samples.append(self.sample())
            except Exception as exc:  # noqa: BLE001  (a sample missed is not a reason to stop the drill)
                print(f"  sampler: {type(exc).__name__}: {exc}", flush=True)
            self.stop.wait(1.0)

    def close(self) -> None:
        self.stop.set()
        self.join(10)
        self.conn.close()
        self.redis.close()


# --- CPU: who used the two cores ------------------------------------------------------------------------------------

def cpu(groups: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each named process group (gunicorn, each worker), PostgreSQL, Redis, this process and
    the whole machine."""
    out = dict.fromkeys([*groups, "postgres", "redis"], 0.0)
    by_group = {pgrp: name for name, pgrp in groups.items()}
    for _proc, comm, fields in process_stats():
        used = (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / CLK_TCK
        if int(fields[2]) in by_group:
            out[by_group[int(fields[2])]] += used
        elif comm.startswith("postgres"):
            out["postgres"] += used
        elif comm.startswith("redis-server"):
            out["redis"] += used
    out["generator"] = time.process_time()
    with open("/proc/stat") as f:
        user, nice, system = (int(x) for x in f.readline().split()[1:4])
    out["machine"] = (user + nice + system) / CLK_TCK
    return out


# --- the processes -------------------------------------------------------------------------------------------------

def start(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=ROOT)
    _launched.append(proc)
    return proc


def start_web(env: dict[str, str], a: argparse.Namespace, logs: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    argv = [str(Path(sys.executable).parent / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", str(a.workers),
            "--worker-class", "gthread", "--threads", str(a.threads), "--keep-alive", "5", "--backlog", "2048",
            "--graceful-timeout", "5", "--timeout", "30", "--log-level", "warning", "--chdir", str(ROOT), "wsgi:app"]
    log = logs / "load-web.log"
    proc = start(argv, env, log)
    wait_healthy("web", proc, f"http://127.0.0.1:{port}", log)
    return proc, port


# `encore worker` with RQ's SimpleWorker in place of its Worker: jobs run in the worker process itself instead of a
# work horse forked per job (an experiment, --worker-class simple; the drill's default is the command as shipped).
SIMPLE = ("import sys, rq; rq.Worker = rq.SimpleWorker; sys.argv = ['encore', 'worker']; "
          "from app.cli import main; main()")


def start_workers(env: dict[str, str], n: int, logs: Path, kind: str = "fork") -> list[subprocess.Popen[bytes]]:
    argv = [sys.executable, "-m", "app.cli", "worker"] if kind == "fork" else [sys.executable, "-c", SIMPLE]
    return [start(argv, env, logs / f"load-worker-{k + 1}.log") for k in range(n)]


def stop_workers(workers: list[subprocess.Popen[bytes]], grace: float = 10.0) -> None:
    """SIGTERM to every worker's process group at once (RQ finishes the job in hand), SIGKILL after `grace`."""
    for proc in workers:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in workers:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.1, deadline - time.monotonic()))
        _stop(proc, grace=0.1)  # still there: SIGKILL
        if proc in _launched:
            _launched.remove(proc)


def forget_queue(redis_url: str, queue: str) -> int:
    """Delete the run's own keys (its queue, registries and job hashes); nothing else in Redis is touched."""
    from redis import Redis

    r = Redis.from_url(redis_url)
    try:
        keys = list(r.scan_iter(match=f"*{queue}*", count=1000))
        for start_at in range(0, len(keys), 500):
            r.delete(*keys[start_at:start_at + 500])
        return len(keys)
    finally:
        r.close()


# --- after the load --------------------------------------------------------------------------------------------------

def settle(world: Shop, prefix: str, limit: float) -> float:
    """Seconds until the run's inbox rows are all settled and no due message waits (at most `limit`)."""
    began = time.monotonic()
    while time.monotonic() - began < limit:
        waiting = world.scalar("SELECT count(*) FROM inbox WHERE event_id LIKE %s AND status IN ('pending', "
                               "'processing')", (prefix + "-%",))
        due = world.scalar("SELECT count(*) FROM messages WHERE (status = 'pending' AND due_at <= now()) OR status IN "
                           "('claimed', 'sending')")
        if not waiting and not due:
            break
        time.sleep(1.0)
    return time.monotonic() - began


def jobs_run(logs: Path) -> dict[str, int]:
    """The RQ jobs the workers finished, by function, from their logs (RQ logs each at INFO)."""
    done: Counter[str] = Counter()
    for path in logs.glob("load-worker-*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if "Successfully completed app.jobs." in line:
                done[line.split("app.jobs.", 1)[1].split("(", 1)[0]] += 1
    return dict(done)


def pipeline(world: Shop, prefix: str, tally: Tally, journal: Path, backlog: range, samples: list[dict[str, Any]],
             seconds: float, logs: Path, steady_from: float | None = None) -> tuple[dict[str, Any], list[str]]:
    """The pipeline's figures and the correctness checks, from the database and the sink's journal."""
    problems: list[str] = []
    rows = world.rows("SELECT event_id, status, attempts, extract(epoch FROM processed_at - received_at)::float8, "
                      "extract(epoch FROM received_at)::float8 FROM inbox WHERE event_id LIKE %s", (prefix + "-%",))
    stored = Counter(r[0] for r in rows)
    status = Counter(r[1] for r in rows)
    lags = [float(r[3]) for r in rows if r[1] == "done" and r[3] is not None]
    steady = [float(r[3]) for r in rows if r[1] == "done" and r[3] is not None and steady_from is not None
              and r[4] >= steady_from]
    if twice := [e for e, n in stored.items() if n > 1]:
        problems.append(f"{len(twice)} webhooks stored more than once (e.g. {twice[0]})")
    if missing := tally.ok_ids - set(stored):
        problems.append(f"{len(missing)} webhooks answered 2xx but not in the inbox (e.g. {min(missing)})")
    not_done = [r[0] for r in rows if r[0] in tally.ok_ids and r[1] != "done"]
    if not_done:
        problems.append(f"{len(not_done)} stored webhooks not processed: {dict(Counter(r[1] for r in rows if r[1] != 'done'))}")
    parked = int(world.scalar("SELECT count(*) FROM inbox WHERE status = 'parked'"))
    if parked:
        problems.append(f"{parked} inbox rows parked: " + "; ".join(
            str(e)[:120] for (e,) in world.rows("SELECT DISTINCT last_error FROM inbox WHERE status = 'parked' LIMIT 3")))
    handed = Counter(line.split(b"\t")[1].decode() for line in journal.read_bytes().splitlines()) \
        if journal.exists() else Counter()
    if twice_sent := [k for k, n in handed.items() if n > 1]:
        problems.append(f"{len(twice_sent)} messages handed to the sink more than once (e.g. {twice_sent[0]})")
    marked = {k for (k,) in world.rows("SELECT key FROM messages WHERE status = 'sent'")}
    if marked != set(handed):
        problems.append(f"journal and table disagree: {len(set(handed) - marked)} handed over but not marked sent, "
                        f"{len(marked - set(handed))} marked sent but not handed over")
    held = int(world.scalar("SELECT count(*) FROM messages WHERE status IN ('claimed', 'sending') OR "
                            "(status = 'pending' AND due_at <= now())"))
    if held:
        problems.append(f"{held} due messages not sent (pending, claimed or sending)")
    drill = world.rows("SELECT status, extract(epoch FROM sent_at - greatest(first_due_at, created_at))::float8, "
                       "extract(epoch FROM sent_at - first_due_at)::float8 FROM messages WHERE key LIKE %s",
                       (f"thank_you:order:{str(ORDER_BASE)[0]}%",))
    drill_status = Counter(r[0] for r in drill)
    lateness = [float(r[1]) for r in drill if r[0] == "sent" and r[1] is not None]
    end_to_end = [float(r[2]) for r in drill if r[0] == "sent" and r[2] is not None]
    back = world.rows("SELECT status FROM messages WHERE id >= %s AND id < %s", (backlog.start, backlog.stop))
    back_status = Counter(r[0] for r in back)
    if back_status.get("sent", 0) != len(backlog):
        problems.append(f"backlog: {dict(back_status)} of {len(backlog):,}")
    creates_ok = sum(1 for e in tally.ok_ids if "-c-" in e)
    if drill_status.get("sent", 0) < creates_ok * 0.99:
        problems.append(f"{creates_ok:,} orders answered 2xx but only {drill_status.get('sent', 0):,} thank-yous sent "
                        f"({dict(drill_status)})")
    earned = int(world.scalar("SELECT count(DISTINCT order_external_id) FROM ledger_entries WHERE reason = 'earned' "
                              "AND order_external_id::bigint >= %s", (ORDER_BASE,)))
    sent_series = [(s["t"], s["sent"]) for s in samples]
    peak10 = 0.0
    for i in range(len(sent_series)):
        j = i
        while j < len(sent_series) and sent_series[j][0] - sent_series[i][0] < 10:
            j += 1
        if j < len(sent_series):
            peak10 = max(peak10, (sent_series[j][1] - sent_series[i][1]) / (sent_series[j][0] - sent_series[i][0]))
    during = [s for s in samples if s.get("during")]
    sent_during = (during[-1]["sent"] - during[0]["sent"]) if len(during) > 1 else 0
    span = (during[-1]["t"] - during[0]["t"]) if len(during) > 1 else 0
    received = [float(r[4]) for r in rows]
    return {
        "jobs_run": jobs_run(logs),
        "webhooks_2xx": len(tally.ok_ids), "inbox_rows": len(rows), "inbox_status": dict(status),
        "stored_without_2xx": len(set(stored) - tally.ok_ids), "retried_rows": sum(1 for r in rows if r[2] > 1),
        "received_per_s": len(rows) / seconds if seconds else 0.0,
        "processed_per_s": status.get("done", 0) / max(1e-9, (max((r[4] + (r[3] or 0)) for r in rows) - min(received)))
        if rows else 0.0,
        "lag_s": {"p50": percentile(lags, 50), "p95": percentile(lags, 95), "p99": percentile(lags, 99),
                  "max": max(lags, default=math.nan)},
        "lag_s_after_backlog": {"rows": len(steady), "p50": percentile(steady, 50), "p99": percentile(steady, 99),
                                "max": max(steady, default=math.nan)},
        "parked": parked, "orders_earning_points": earned,
        "messages": {"journal_lines": sum(handed.values()), "drill_thank_yous": dict(drill_status),
                     "backlog": len(backlog), "backlog_status": dict(back_status),
                     "sent_per_s_during_load": sent_during / span if span else 0.0, "peak_sent_per_s_10s": peak10},
        "thank_you_lateness_s": {"p50": percentile(lateness, 50), "p95": percentile(lateness, 95),
                                 "p99": percentile(lateness, 99), "max": max(lateness, default=math.nan)},
        "order_to_thank_you_s": {"p50": percentile(end_to_end, 50), "p95": percentile(end_to_end, 95),
                                 "p99": percentile(end_to_end, 99), "max": max(end_to_end, default=math.nan)},
        "max_queue_depth": max((s["queue_depth"] for s in during), default=0),
        "max_inbox_waiting": max((s["inbox_waiting"] for s in during), default=0),
        "max_dispatcher_lag_s": max((s["dispatcher_lag_s"] for s in during), default=0.0),
        "dispatcher_lag_s_after_backlog": max((s["dispatcher_lag_s"] for s in during if s.get("backlog_done")),
                                               default=0.0),
    }, problems


# --- report --------------------------------------------------------------------------------------------------------

def ms(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return "inf" if math.isinf(v) else f"{v:,.1f}" if v < 1000 else f"{v:,.0f}"


def sec(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return "inf" if math.isinf(v) else f"{v:.2f} s"


def row(label: str, r: dict[str, Any]) -> str:
    return (f"{label:<34}{r['sent']:>9,}{r['achieved_per_s']:>9.1f}/s{ms(r['p50_ms']):>9}{ms(r['p95_ms']):>9}"
            f"{ms(r['p99_ms']):>9}{ms(r['max_ms']):>9}{r['non_2xx']:>8}{r['timeouts']:>9}{r['failed'] + r['unfinished']:>8}")


def report(res: dict[str, Any]) -> None:
    s = res["settings"]
    print(f"\nLoad drill: {s['minutes']:g} min; webhooks {s['rate']:g}/s, widget {s['widget_rate']:g}/s, "
          f"{s['backlog']:,} messages due at the start among {s['pending']:,} pending; gunicorn gthread "
          f"{s['workers']}x{s['threads']}, {s['worker_processes']} encore workers; {os.cpu_count()} CPUs shared by all")
    head = (f"{'traffic':<34}{'sent':>9}{'achieved':>11}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}"
            f"{'non-2xx':>8}{'timeouts':>9}{'failed':>8}")
    print(head)
    print("-" * len(head))
    print(row("webhooks, under load", res["load"]["webhooks"]))
    print(row("widget reads, under load", res["load"]["widget"]))
    if "baseline" in res:
        for kind in ("webhooks", "widget"):
            if kind in res["baseline"]:
                print(row(f"{kind} alone (workers stopped)", res["baseline"][kind]))
    p = res["pipeline"]
    m = p["messages"]
    print(f"\npipeline: {p['webhooks_2xx']:,} webhooks answered 2xx, {p['inbox_rows']:,} inbox rows "
          f"({', '.join(f'{k} {v:,}' for k, v in p['inbox_status'].items())}); received {p['received_per_s']:.1f}/s, "
          f"processed {p['processed_per_s']:.1f}/s; {p['retried_rows']:,} rows needed more than one attempt")
    lag = p["lag_s"]
    steady = p["lag_s_after_backlog"]
    print(f"  received -> processed: p50 {sec(lag['p50'])}  p95 {sec(lag['p95'])}  p99 {sec(lag['p99'])}  "
          f"max {sec(lag['max'])}; of the {steady['rows']:,} received after the backlog was sent: p50 "
          f"{sec(steady['p50'])}  p99 {sec(steady['p99'])}  max {sec(steady['max'])}")
    print(f"  queue depth max {p['max_queue_depth']:,} jobs; inbox rows waiting max {p['max_inbox_waiting']:,}; "
          f"inbox jobs run {p['jobs_run'].get('process_inbox', 0):,} for {p['inbox_rows']:,} rows; other jobs "
          + ", ".join(f"{k} {v:,}" for k, v in sorted(p["jobs_run"].items()) if k != "process_inbox"))
    late = p["thank_you_lateness_s"]
    print(f"  messages: {m['journal_lines']:,} handed to the sink ({m['backlog']:,} backlog + "
          f"{m['drill_thank_yous'].get('sent', 0):,} thank-yous of the drill's orders); "
          f"{m['sent_per_s_during_load']:.1f}/s over the load, peak {m['peak_sent_per_s_10s']:.0f}/s (10 s)")
    print(f"  thank-you written (due) -> sent: p50 {sec(late['p50'])}  p95 {sec(late['p95'])}  p99 {sec(late['p99'])}  "
          f"max {sec(late['max'])}; dispatcher lag max {sec(p['max_dispatcher_lag_s'])} (backlog included), "
          f"{sec(p['dispatcher_lag_s_after_backlog'])} after the backlog; {sec(res.get('backlog_drained_s'))} to clear "
          "the backlog")
    e2e = p["order_to_thank_you_s"]
    print(f"  order placed -> thank-you sent (inbox + dispatcher): p50 {sec(e2e['p50'])}  p95 {sec(e2e['p95'])}  "
          f"p99 {sec(e2e['p99'])}  max {sec(e2e['max'])}")
    print(f"  orders that earned points: {p['orders_earning_points']:,}; settled {res['settle_s']:.1f} s after the load")
    c = res.get("cpu_cores", {})
    if c:
        print("  CPU (cores busy on average over the load): " + ", ".join(f"{k} {v:.2f}" for k, v in c.items()))
    if res.get("ratios"):
        print("  under load / alone: " + ", ".join(f"{k} {v:.2f}x" for k, v in res["ratios"].items()))
    print()
    if res["problems"]:
        print("FAIL  " + "\n      ".join(res["problems"]))
    else:
        print("ok    every 2xx webhook stored once and processed; nothing parked; every due message sent once; "
              "every widget answer right")


def plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else "inf"
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


# --- main ----------------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0, help="how long the load runs")
    p.add_argument("--rate", type=float, default=2.0,
                   help="webhooks a second (default 2: what two `encore worker`s sustain on this 2-core machine)")
    p.add_argument("--widget-rate", type=float, default=50.0, help="widget reads a second")
    p.add_argument("--fulfil-share", type=float, default=0.3, help="orders that get an orders/fulfilled 5 s later")
    p.add_argument("--backlog", type=int, default=5_000, help="thank-yous already due when the load starts")
    p.add_argument("--pending", type=int, default=100_000, help="messages scheduled hours to weeks ahead")
    p.add_argument("--customers", type=int, default=20_000, help="half for the webhooks' orders, half for the widget")
    p.add_argument("--baseline", type=float, default=30.0, help="seconds of each traffic kind alone (0: none)")
    p.add_argument("--worker-processes", type=int, default=2, help="`encore worker` processes")
    p.add_argument("--worker-class", choices=("fork", "simple"), default="fork",
                   help="fork: `encore worker` as shipped (RQ forks a work horse per job); simple: the same with "
                        "RQ's SimpleWorker, jobs run in the worker process (an experiment)")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    p.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    p.add_argument("--connections", type=int, default=32, help="webhook generator's connections")
    p.add_argument("--widget-connections", type=int, default=16)
    p.add_argument("--timeout", type=float, default=10.0, help="a request unanswered this long timed out")
    p.add_argument("--drain", type=float, default=15.0, help="after the last request was due, wait this long")
    p.add_argument("--settle", type=float, default=300.0, help="wait at most this long for the pipeline to finish")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--keep", action="store_true", help="keep the schema (for a look afterwards)")
    p.add_argument("--output", default=str(RESULTS / "load.json"))
    p.add_argument("--logs", default=str(RESULTS), help="where the servers' logs and the sink's journal go")
    env_db = os.environ.get("DATABASE_URL", "")
    p.add_argument("--db", default=env_db if env_db.startswith(("postgres://", "postgresql")) else DEFAULT_DB)
    a = p.parse_args(argv)

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    logs = Path(a.logs)
    logs.mkdir(parents=True, exist_ok=True)
    if others := foreign_load():
        print("warning: other benchmark processes are running; they share the CPUs and skew the figures:\n  "
              + "\n  ".join(others[:5]), flush=True)
    libpq = a.db.replace("postgresql+psycopg://", "postgresql://").replace("postgres://", "postgresql://", 1)
    run = uuid.uuid4().hex[:8]
    schema, queue, prefix = f"bench_load_{run}", f"encore-load-{run}", f"load-{run}"
    journal = logs / f"load-{run}.journal"
    world = Shop(libpq, schema, seed=a.seed)
    seconds = a.minutes * 60
    begun = time.monotonic()
    res: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "git": subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True,
                              check=False).stdout.strip(),
        "settings": {**{k: v for k, v in vars(a).items() if k not in ("db", "output")},
                     "database": libpq.split("@")[-1], "schema": schema, "queue": queue},
    }
    sampler: Sampler | None = None
    workers: list[subprocess.Popen[bytes]] = []
    problems: list[str] = []
    try:
        print(f"load drill: {os.cpu_count()} cores; PostgreSQL {libpq.split('@')[-1]} schema {schema}; Redis "
              f"{a.redis_url.split('@')[-1]} queue {queue}", flush=True)
        setup = time.monotonic()
        world.create()
        world.shop()
        made = world.people(a.customers, a.backlog)
        with world.loading("enrollments", "messages"):
            world.schedule_future(a.pending)
        ids = [c[0] for c in world.customers]
        balances = world.balances(ids)
        half = len(world.customers) // 2
        webhook_customers, widget_customers = world.customers[:half], world.customers[half:]
        backlog = world.due_now(a.backlog) if a.backlog else None
        world.sequences()  # after every row written with its own id: Encore's inserts draw from the sequences
        world.vacuum("customers", "orders", "order_lines", "fulfillments", "enrollments", "messages",
                     "loyalty_accounts", "ledger_entries")
        made |= {"future messages": a.pending, "backlog due": a.backlog, "accounts": len(balances)}
        res["rows"] = made
        print(f"setup {time.monotonic() - setup:.0f} s: " + ", ".join(f"{k} {v:,}" for k, v in made.items()),
              flush=True)

        env = {**os.environ, "ENCORE_ENV": "production",
               "DATABASE_URL": with_search_path(libpq, schema) + f"&application_name={APP_NAME}",
               "REDIS_URL": a.redis_url, "ENCORE_QUEUE": queue, "SHOPIFY_API_KEY": API_KEY,
               "SHOPIFY_API_SECRET": API_SECRET, "ENCORE_SECRET_KEY": uuid.uuid4().hex * 2,
               "ENCORE_ENCRYPTION_KEYS": world.key, "ENCORE_APP_URL": "https://encore.example.com",
               "ENCORE_EMAIL_SINK": str(journal), "ENCORE_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT),
               "PYTHONUNBUFFERED": "1"}
        env.pop("ENCORE_QUEUE_SHARDS", None)
        web, port = start_web(env, a, logs)
        orders = Orders(world, webhook_customers, a.seed, prefix)
        widget_balances = {c[0]: balances[c[0]] for c in widget_customers}
        workers = start_workers(env, a.worker_processes, logs, a.worker_class)
        sampler = Sampler(libpq, schema, a.redis_url, queue, journal)
        time.sleep(2.0)  # the workers import Encore; the dispatchers start on the backlog as soon as they are up
        for w in workers:
            if w.poll() is not None:
                raise RuntimeError(f"encore worker exited with {w.returncode}; see {logs}/load-worker-*.log")
        sampler.start()
        groups = {"web": web.pid, **{f"worker {k + 1}": w.pid for k, w in enumerate(workers)}}
        cpu0, wall0 = cpu(groups), time.monotonic()
        print(f"\nload: {a.minutes:g} min, webhooks {a.rate:g}/s ({a.fulfil_share:.0%} of orders fulfilled 5 s later), "
              f"widget {a.widget_rate:g}/s, open loop", flush=True)
        webhooks, widget = Tally("webhooks", a.rate), Tally("widget", a.widget_rate)
        progress = threading.Thread(target=show_progress, args=(sampler, webhooks, widget, seconds), daemon=True)
        progress.start()
        started = asyncio.run(traffic(port, seconds, a, webhooks, widget, orders, SHOP, widget_customers,
                                      widget_balances, a.seed))
        cpu1, wall1 = cpu(groups), time.monotonic()
        ended = time.time()
        for s in sampler.samples:
            s["during"] = started <= s["t"] <= ended
        res["load"] = {"webhooks": webhooks.summary(), "widget": widget.summary()}
        res["cpu_cores"] = {k: (cpu1[k] - cpu0[k]) / (wall1 - wall0) for k in cpu1}
        print("load done; waiting for the pipeline to settle", flush=True)
        res["settle_s"] = settle(world, prefix, a.settle)
        time.sleep(1.5)  # one more sample
        sampler.close()
        if backlog is not None:
            last = world.scalar("SELECT extract(epoch FROM max(sent_at))::float8 FROM messages WHERE id >= %s AND "
                                "id < %s", (backlog.ids.start, backlog.ids.stop))
            res["backlog_drained_s"] = None if last is None else float(last) - started
        for s in sampler.samples:
            s["backlog_done"] = res.get("backlog_drained_s") is not None and s["t"] >= started + res["backlog_drained_s"]
        res["pipeline"], problems = pipeline(world, prefix, webhooks, journal, backlog.ids if backlog else range(0),
                                             sampler.samples, seconds, logs,
                                             None if res.get("backlog_drained_s") is None
                                             else started + res["backlog_drained_s"])
        res["samples"] = [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in s.items()}
                          for s in sampler.samples]
        problems += [f"widget: {widget.wrong} wrong answers ({'; '.join(widget.problems[:2])})"] if widget.wrong else []
        if web.poll() is not None:
            problems.append("gunicorn died during the load")
        problems += [f"worker {k + 1} died during the load" for k, w in enumerate(workers) if w.poll() is not None]

        if a.baseline > 0:
            stop_workers(workers)
            workers = []
            base_prefix = f"{prefix}-base"
            res["baseline"] = {}
            for kind in ("webhooks", "widget"):
                tally = Tally(kind, a.rate if kind == "webhooks" else a.widget_rate)
                base_orders = Orders(world, webhook_customers, a.seed + 1, base_prefix)
                print(f"baseline: {kind} alone for {a.baseline:g} s, workers stopped", flush=True)
                asyncio.run(traffic(port, a.baseline, a, tally if kind == "webhooks" else None,
                                    tally if kind == "widget" else None, base_orders, SHOP, widget_customers,
                                    widget_balances, a.seed + 1))
                res["baseline"][kind] = tally.summary()
                if kind == "webhooks":
                    stored = int(world.scalar("SELECT count(*) FROM inbox WHERE event_id LIKE %s",
                                              (base_prefix + "-%",)))
                    missing = len(tally.ok_ids) - int(world.scalar(
                        "SELECT count(*) FROM inbox WHERE event_id = ANY(%s)", (list(tally.ok_ids),)))
                    res["baseline"][kind]["inbox_rows"] = stored
                    if missing:
                        problems.append(f"baseline: {missing} webhooks answered 2xx but not stored")
                elif tally.wrong:
                    problems.append(f"baseline widget: {tally.wrong} wrong answers")
            ratios = {}
            for kind in ("webhooks", "widget"):
                under, alone = res["load"][kind], res["baseline"][kind]
                for q in ("p50", "p99"):
                    if alone[f"{q}_ms"] and math.isfinite(alone[f"{q}_ms"]):
                        ratios[f"{kind} {q}"] = under[f"{q}_ms"] / alone[f"{q}_ms"]
            res["ratios"] = ratios
        res["problems"] = problems
        report(res)
    finally:
        if sampler is not None and sampler.is_alive():
            sampler.close()
        stop_workers(workers)
        _stop_all()
        try:
            forget_queue(a.redis_url, queue)
        finally:
            if a.keep:
                if world.conn is not None:
                    world.conn.close()
                print(f"schema {schema} kept")
            else:
                world.drop()
            journal.unlink(missing_ok=True)
    res["elapsed_s"] = time.monotonic() - begun
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_text(json.dumps(plain(res), indent=2, default=str) + "\n")
    print(f"results: {os.path.relpath(a.output, Path.cwd())}  (whole run {res['elapsed_s']:.0f} s)")
    return 1 if problems else 0


def show_progress(sampler: Sampler, webhooks: Tally, widget: Tally, seconds: float) -> None:
    """A line every 30 s (every 5 s for a short run): answers so far and the pipeline's state."""
    every = 30.0 if seconds >= 180 else 5.0
    begun = time.monotonic()
    while time.monotonic() - begun < seconds + 5:
        time.sleep(every)
        last = sampler.samples[-1] if sampler.samples else {}
        bad = webhooks.non2xx + webhooks.timeouts + webhooks.failed
        print(f"  {time.monotonic() - begun:5.0f} s  webhooks {webhooks.ok:,} ok {bad} bad"
              f"  widget {widget.ok:,} ok  queue {last.get('queue_depth', '-')}  inbox waiting "
              f"{last.get('inbox_waiting', '-')}  dispatcher lag {last.get('dispatcher_lag_s', 0):.1f} s  "
              f"sent {last.get('sent', 0):,}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
