"""Storefront widget benchmark: the widget's balance read (`GET /proxy/loyalty/balance` through Shopify's app
proxy: the launcher's read on every page a logged-in shopper views; `--path /proxy/loyalty` measures the
panel's full read, made when the shopper opens it) under an
open-loop constant rate, Encore against the least work that still answers "what is my balance", in the same
run. Target: p99 < 20 ms at 300 requests a second on this machine.

    .venv/bin/python bench/widget.py [--customers 10000] [--rate 300] [--duration 30] [--rates 100,300,600]
                                     [--ramp-duration 10] [--warmup 3] [--connections 32] [--keep]

Setup, on PostgreSQL (DATABASE_URL when it names PostgreSQL, else the other benches' default) in a fresh schema
dropped at the end (kept with --keep): one installed Shopify shop (Bench Coffee, USD) with the loyalty program
on (`loyalty.switch_on`, tiers on points earned over 365 days), 3 tiers (`tiers.set_tiers`), 5 rewards
(`rewards.add_reward`), and `--customers` customers (COPY), each with an account and a ledger of a year or so
written through `loyalty.post_many`, a day's postings to a transaction: a sign-up bonus for most, 2-5 orders of
1-3 lines earning pending points, most of them confirmed (pending to available) two weeks later, the odd bonus,
and redemptions when the balance allows, each with its issued code in `redemptions` (about 12 entries a
customer on average; the history the widget shows is a real index read). Every account's tier is then set from its
points, and the books are checked (`loyalty.mismatches`).

Contenders, each served by `gunicorn` on 127.0.0.1 with the same settings (gthread, workers = cores, --threads,
--worker-connections = connections / workers, --keep-alive 5), both up for the whole run:
  baseline  bench/balance_app.py  a plain WSGI app: the proxy signature checked inline (HMAC), then ONE
                                  statement on psycopg resolving the installed shop and reading the account row
  encore    wsgi:app              Encore itself (ENCORE_ENV=production, RQ on Redis: nothing is enqueued by a
                                  read): signature, shop, then one statement for program, balance and tier's
                                  name, and the labels in the shopper's language (the panel's read adds tier
                                  progress, rewards, codes, history, badges, stamp card and referral)

Load: an open-loop generator in this process (asyncio, `--connections` persistent HTTP/1.1 connections): request
i is due at start + i / rate whatever happened to the ones before it; each is a freshly signed GET (signed just
before it is sent, so its timestamp is seconds old at most; the proxy refuses 90 s) for a random customer, with
the customer's `locale`. Latency is from the request's scheduled time (no coordinated omission: a request that
waits for a free connection or for the generator waits on the clock) to the last byte of its answer. The first
`--warmup` seconds of every run are not measured. Every run's answers are checked: a non-200 answer or a failed
request is an error; every 200's `points.available` and `points.pending` must be the database's (the load only
reads, so they do not move); either makes the exit status 1. Requests still unanswered `--drain` seconds after
the last was due count as unfinished (an infinite latency: the rate was beyond what the server can do).

Runs: at each rate of the ramp (`--rates`, which always includes `--rate`), Encore and the baseline one after
the other, the order alternating from rate to rate; `--duration` seconds measured at `--rate`, `--ramp-duration`
at the others. A contender that could not keep up at a rate (unfinished requests, or under 90% of it achieved)
is not run at the higher ones, except `--rate`, which is always measured. Each run reports p50/p95/p99/max, the
rate achieved (answers completed in the measured window a second), errors, how late requests went out (the
generator's own lateness, and the p99 of due-to-sent, which includes waiting for a free connection), and CPU per
request of the server (its gunicorn processes), of its PostgreSQL backends (those whose application_name is the
contender's: other people's queries on the same PostgreSQL are not counted) and of the generator, and how busy
the machine was and how much of that was other processes. Then the ratios Encore / baseline for throughput,
p50/p95/p99 and CPU per request, and each contender's CPU-bound ceiling, estimated as cores / CPU per request.

It prints PASS/MISS for "p99 < 20 ms at 300 req/s"; it never fails on timings, only on errors or wrong answers
(exit 1). Results go to bench/results/widget.json; the servers' logs to bench/results/widget-*.gunicorn.log.
Everything it launches is stopped before it exits, error or not.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import platform
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import orjson  # noqa: E402
from dispatch import DEFAULT_DB, World, _copy, finish  # noqa: E402
from intake import (  # noqa: E402
    CLK_TCK,
    _launched,
    _on_signal,
    _stop_all,
    cpu_snapshot,
    cpu_speed_probe,
    foreign_load,
    free_port,
    wait_healthy,
    with_search_path,
)
from sqlalchemy import select  # noqa: E402

from app import loyalty, rewards, tiers  # noqa: E402
from app.core.loyalty import Balance, Entry, Posting, Reason, confirm  # noqa: E402
from app.core.tiers import Tier  # noqa: E402
from app.db import models as t  # noqa: E402
from connectors.shopify.proxy import sign  # noqa: E402

SHOP = "bench-widget.myshopify.com"
API_KEY = "bench-api-key"
API_SECRET = "shpss_bench_" + "fedcba9876543210" * 2
PATH = "/proxy/loyalty/balance"  # --path
PATH_PREFIX = "/apps/encore"
TARGET_P99_MS = 20.0
TARGET_RATE = 300.0
HISTORY_DAYS = 400
LOCALES = ("en", "en", "en", "ko", "ja")
TIERS = (Tier("bronze", "Bronze", Decimal(0), Decimal(1), ("Birthday bonus",)),
         Tier("silver", "Silver", Decimal(500), Decimal("1.25"), ("Birthday bonus", "Free shipping over $30")),
         Tier("gold", "Gold", Decimal(1500), Decimal("1.5"), ("Birthday bonus", "Free shipping", "Early access")))
REWARDS = (("Free shipping", "free_shipping", None, 300), ("$5 off", "amount", Decimal(5), 500),
           ("$10 off", "amount", Decimal(10), 900), ("10% off", "percent", Decimal(10), 1200),
           ("$25 off", "amount", Decimal(25), 2000))
LABELS = {"encore": "Encore (gunicorn wsgi:app)", "baseline": "baseline (HMAC + 1 SELECT)"}


def customer(i: int) -> str:
    return str(7_100_000_000 + i)


# --- the shop, its customers and their ledgers -------------------------------------------------------------------

class Store(World):
    """dispatch.py's schema and connections, with a loyalty program and its customers' ledgers in it."""

    def shop(self) -> None:
        assert self.c is not None
        started = self.now - timedelta(days=HISTORY_DAYS + 5)
        with self.c.sessions() as s, s.begin():
            shop = t.Shop(platform="shopify", domain=SHOP, name="Bench Coffee", currency="USD",
                          timezone="America/New_York", locale="en", installed_at=started,
                          access_token=self.c.vault.seal("shpat_bench"))
            s.add(shop)
            s.flush()
            self.shop_id = shop.id
            loyalty.switch_on(s, shop.id, started, actions={"signup": 100})
            program = s.scalar(select(t.LoyaltyProgramRow).where(t.LoyaltyProgramRow.shop_id == shop.id))
            assert program is not None
            program.tier_basis, program.tier_window_days = "points", 365
            tiers.set_tiers(s, shop.id, TIERS, started)
            self.rewards = [(rewards.add_reward(s, shop.id, title, kind, value, cost, started), title, cost)
                            for title, kind, value, cost in REWARDS]

    def shoppers(self, customers: int) -> dict[str, int]:
        rng, conn = self.rng, self.db()
        self.locales = [rng.choice(LOCALES) for _ in range(customers)]
        n = _copy(conn, "customers", (
            "shop_id", "external_id", "email", "first_name", "last_name", "locale", "accepts_email_marketing",
            "accepts_sms_marketing", "preferred_channel", "timezone", "external_updated_at"),
            ((self.shop_id, customer(i), f"shopper{i}@example.com", "Shopper", f"No. {i}", self.locales[i],
              rng.random() < 0.6, False, "email", "America/New_York", self.now) for i in range(customers)))
        conn.commit()
        return {"customers": n}

    def ledgers(self, customers: int) -> dict[str, int]:
        """Every customer's year of points, posted through `loyalty.post_many` a day at a time, in time order."""
        assert self.c is not None
        rng = self.rng
        start = self.now - timedelta(days=HISTORY_DAYS)
        by_day: dict[int, list[tuple[str, list[Posting]]]] = defaultdict(list)
        redemptions: list[tuple[Any, ...]] = []
        order_no = 5_000_000
        for i in range(customers):
            cid = customer(i)
            joined = rng.randrange(0, HISTORY_DAYS - 60)
            events: list[tuple[int, int, list[Posting], int]] = []  # (day, seq, postings, available change)
            if rng.random() < 0.7:
                events.append((joined, 0, [Posting(Entry(100, Balance.AVAILABLE, Reason.ACTION, f"action:signup:{cid}"),
                                                   detail={"action": "signup"})], 100))
            day = joined
            for _ in range(rng.choices((2, 3, 4, 5), (30, 30, 25, 15))[0]):
                day = min(HISTORY_DAYS - 1, day + rng.randint(1, 90))
                order_no += 1
                oid = str(order_no)
                earned = []
                for line in range(rng.choices((1, 2, 3), (45, 35, 20))[0]):
                    amount = rng.randint(8, 160)
                    lid = f"{oid}{line + 1}"
                    earned.append(Posting(Entry(amount, Balance.PENDING, Reason.EARNED, f"order:{oid}:line:{lid}"),
                                          rule_version=1, order_id=oid, line_id=lid,
                                          detail={"amount": f"{amount}.00", "rate": "1"}))
                events.append((day, 1, earned, 0))
                points = sum(p.entry.amount for p in earned)
                if day + 14 < HISTORY_DAYS and rng.random() < 0.9:  # the newest orders are still pending
                    events.append((day + 14, 2, [Posting(e, order_id=oid) for e in
                                                 confirm(points, f"order:{oid}:confirm")], points))
            if rng.random() < 0.1:
                bonus_day = rng.randrange(joined, HISTORY_DAYS)
                events.append((bonus_day, 3, [Posting(Entry(200, Balance.AVAILABLE, Reason.BONUS,
                                                            f"bonus:double-points:{cid}"), note="Double points week")],
                               200))
            events.sort(key=lambda e: (e[0], e[1]))
            available = 0
            for day, _, postings, gained in events:
                by_day[day].append((cid, postings))
                available += gained
                affordable = [r for r in self.rewards if r[2] <= available]
                if gained and affordable and rng.random() < 0.35:  # spent soon after the points came
                    reward_id, title, cost = rng.choice(affordable)
                    key = f"widget:{cid}:{len(redemptions)}"
                    at = start + timedelta(days=day, hours=13)
                    by_day[day].append((cid, [Posting(Entry(-cost, Balance.AVAILABLE, Reason.REDEEMED, f"redeem:{key}"),
                                                      detail={"reward": str(reward_id), "title": title})]))
                    redemptions.append((self.shop_id, cid, reward_id, key, cost, f"BENCH{len(redemptions):08d}",
                                        "issued", 1, at + timedelta(days=90), f"gid://shopify/DiscountCodeNode/"
                                        f"{len(redemptions) + 1}", at, at))
                    available -= cost
        for day in sorted(by_day):
            with self.c.sessions() as s, s.begin():
                loyalty.post_many(s, self.shop_id, by_day[day], start + timedelta(days=day, hours=12))
        conn = self.db()
        made = _copy(conn, "redemptions", ("shop_id", "customer_external_id", "reward_id", "request_key", "points",
                                           "code", "status", "attempts", "expires_at", "store_id", "created_at",
                                           "updated_at"), redemptions)
        # Each account's tier from its points earned over the window, as the tier evaluation would set it.
        gains = "', '".join(tiers.GAINS)
        conn.execute(
            f"UPDATE loyalty_accounts a SET tier = CASE WHEN p.made >= 1500 THEN 'gold' WHEN p.made >= 500 "
            f"THEN 'silver' ELSE 'bronze' END, tier_since = a.created_at FROM (SELECT e.account_id, sum(e.amount) "
            f"AS made FROM ledger_entries e WHERE e.reason IN ('{gains}') AND e.created_at >= %s "
            f"GROUP BY e.account_id) p WHERE p.account_id = a.id", (self.now - timedelta(days=365),))
        conn.execute("UPDATE loyalty_accounts SET tier = 'bronze', tier_since = created_at WHERE tier IS NULL")
        conn.commit()
        entries = int(self.scalar("SELECT count(*) FROM ledger_entries"))
        return {"accounts": int(self.scalar("SELECT count(*) FROM loyalty_accounts")), "ledger entries": entries,
                "redemptions": made}

    def balances(self) -> dict[str, tuple[int, int]]:
        return {str(cid): (int(a), int(p)) for cid, a, p in self.rows(
            "SELECT customer_external_id, available, pending FROM loyalty_accounts WHERE shop_id = %s",
            (self.shop_id,))}

    def books_balance(self) -> list[str]:
        assert self.c is not None
        with self.c.sessions() as s:
            wrong = loyalty.mismatches(s, self.shop_id)
        return [f"{len(wrong):,} accounts' snapshots are not the sum of their entries"] if wrong else []


# --- signed requests ----------------------------------------------------------------------------------------------

def signed_target(shop: str, customer_id: str | None, locale: str | None, *, at: float | None = None,
                  secret: str = API_SECRET) -> str:
    """The path and query Shopify's app proxy forwards for the widget's read, signed now (or `at`)."""
    params = [("shop", shop), ("logged_in_customer_id", customer_id or ""), ("path_prefix", PATH_PREFIX),
              ("timestamp", str(int(time.time() if at is None else at)))]
    if locale:
        params.append(("locale", locale))
    params.append(("signature", sign(params, secret)))
    return f"{PATH}?{urlencode(params)}"


def fetch(origin: str, target: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(origin + target, timeout=10) as r:
            return int(r.status), orjson.loads(r.read())
    except urllib.error.HTTPError as e:
        return int(e.code), {}


# --- the servers --------------------------------------------------------------------------------------------------

@dataclass
class Server:
    name: str
    module: str
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    origin: str = ""
    port: int = 0
    smoke: dict[str, bool] = field(default_factory=dict)
    body_bytes: int = 0


def gunicorn_args(a: argparse.Namespace, port: int) -> list[str]:
    """The server settings; the same for both contenders (intake.py's, with workers = cores)."""
    return [str(Path(sys.executable).parent / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers",
            str(a.workers), "--worker-class", "gthread", "--threads", str(a.threads), "--worker-connections",
            str(max(a.threads + 1, math.ceil(a.connections / a.workers))), "--keep-alive", str(a.keepalive),
            "--backlog", "2048", "--graceful-timeout", "5", "--timeout", "30", "--log-level", "warning",
            "--chdir", str(ROOT), "--pythonpath", str(BENCH)]


def start(server: Server, a: argparse.Namespace) -> None:
    server.port = free_port()
    log_path = RESULTS / f"widget-{server.name}.gunicorn.log"
    with log_path.open("wb") as log:
        server.proc = subprocess.Popen(gunicorn_args(a, server.port) + [server.module],
                                       env={**os.environ, **server.env}, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True, cwd=ROOT)
    _launched.append(server.proc)  # intake's list: _stop_all stops its process group
    server.origin = f"http://127.0.0.1:{server.port}"
    wait_healthy(server.name, server.proc, server.origin, log_path)


def smoke(server: Server, balances: dict[str, tuple[int, int]], locales: dict[str, str]) -> dict[str, bool]:
    """Correctness probes before the load: a contender that fails one is not a fair comparison."""
    rich = max(balances, key=lambda cid: balances[cid][0])
    status, body = fetch(server.origin, signed_target(SHOP, rich, locales.get(rich)))
    got = body.get("points", {})
    server.body_bytes = len(orjson.dumps(body))
    nobody = str(7_099_999_999)  # no account: nothing to show, not an error
    status2, body2 = fetch(server.origin, signed_target(SHOP, nobody, "en"))
    checks = {
        "signed read -> 200, the account's balance": status == 200 and (got.get("available"), got.get("pending"))
        == balances[rich],
        "no account yet -> 200, 0 points": status2 == 200 and body2.get("points") == {"available": 0, "pending": 0},
        "bad signature -> 401": fetch(server.origin, signed_target(SHOP, rich, "en", secret="not-the-secret"))[0]
        == 401,
        "stale timestamp (200 s old) -> 401": fetch(server.origin, signed_target(SHOP, rich, "en",
                                                                                  at=time.time() - 200))[0] == 401,
        "nobody logged in -> 401": fetch(server.origin, signed_target(SHOP, None, "en"))[0] == 401,
        "shop without Encore -> 404": fetch(server.origin, signed_target("nobody-here.myshopify.com", rich,
                                                                          "en"))[0] == 404,
    }
    if server.name == "encore" and PATH.endswith("/balance"):
        checks["Encore: the tier's name and the labels in the answer"] = bool(body.get("tier")) and bool(
            (body.get("labels") or {}).get("launcher"))
    elif server.name == "encore":
        checks["Encore: history, rewards and tier in the answer"] = bool(
            body.get("history")) and len(body.get("rewards") or []) == len(REWARDS) and bool(body.get("tier"))
    return checks


# --- the load -----------------------------------------------------------------------------------------------------

class Connection:
    """One persistent HTTP/1.1 connection: a GET, then its whole answer (Content-Length or chunked)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reconnects = 0

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def get(self, target: str) -> tuple[int, bytes]:
        request = (f"GET {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAccept: application/json\r\n"
                   "User-Agent: encore-widget-bench\r\n\r\n").encode()
        for attempt in (0, 1):
            fresh = self.writer is None
            if fresh:
                await self.open()
            reader, writer = self.reader, self.writer
            assert reader is not None and writer is not None
            try:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt == 0 and not fresh:  # the server closed it while idle (keep-alive ran out): again
                    self.reconnects += 1
                    continue
                raise
            break
        assert reader is not None
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            body = b"".join(parts)
        else:
            body = await reader.read()
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, body


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)  # seconds, measured requests answered 200
    waits: list[float] = field(default_factory=list)  # due -> sent: generator lateness + waiting for a connection
    lateness: float = 0.0  # the generator's worst lateness putting a request in line (its own punctuality)
    measured: int = 0  # measured requests scheduled
    finished: int = 0  # measured requests that came back, whatever the outcome
    completed_in_window: int = 0
    sent: int = 0
    ok: int = 0
    non200: int = 0
    failed: int = 0
    wrong: int = 0
    problems: list[str] = field(default_factory=list)

    def note(self, problem: str) -> None:
        if len(self.problems) < 5:
            self.problems.append(problem)


async def load(origin_port: int, rate: float, warmup: float, duration: float, connections: int, drain: float,
               timeout: float, customers: list[str], locales: dict[str, str],
               balances: dict[str, tuple[int, int]], seed: int) -> tuple[Tally, int, float]:
    loop = asyncio.get_running_loop()
    rng = random.Random(seed)
    pool = [Connection("127.0.0.1", origin_port) for _ in range(connections)]
    await asyncio.gather(*(c.open() for c in pool))
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    warm_n, total = round(rate * warmup), round(rate * (warmup + duration))
    tally = Tally(measured=total - warm_n)
    t0 = loop.time() + 0.05
    window = (t0 + warm_n / rate, t0 + total / rate)

    async def produce() -> None:
        for i in range(total):
            at = t0 + i / rate
            wait = at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                tally.lateness = max(tally.lateness, -wait)
            queue.put_nowait((i, at))

    async def work(conn: Connection) -> None:
        while (item := await queue.get()) is not None:
            i, at = item
            cid = customers[rng.randrange(len(customers))]
            target = signed_target(SHOP, cid, locales[cid])  # signed just before it goes
            sent = loop.time()
            tally.sent += 1
            try:
                async with asyncio.timeout(timeout):
                    status, body = await conn.get(target)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                conn.close()
                tally.finished += i >= warm_n
                tally.failed += 1
                tally.note(f"request failed: {type(exc).__name__}: {exc}"[:200])
                continue
            done = loop.time()
            measured = i >= warm_n
            tally.finished += measured
            if window[0] <= done < window[1]:
                tally.completed_in_window += 1
            if status != 200:
                tally.non200 += 1
                tally.note(f"{status}: {body[:160]!r}")
                continue
            tally.ok += 1
            try:
                points = orjson.loads(body)["points"]
                got: Any = (points["available"], points["pending"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                got = body[:160]
            if got != balances[cid]:
                tally.wrong += 1
                tally.note(f"customer {cid}: answered {got!r}, the database says {balances[cid]}")
            if measured:
                tally.latencies.append(done - at)
                tally.waits.append(sent - at)

    workers = [asyncio.create_task(work(c)) for c in pool]
    await produce()
    for _ in pool:
        queue.put_nowait(None)
    _, pending = await asyncio.wait(workers, timeout=max(0.0, t0 + total / rate + drain - loop.time()))
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for conn in pool:
        conn.close()
    return tally, sum(c.reconnects for c in pool), window[1] - window[0]


def percentile(values: list[float], p: float) -> float:
    """Nearest rank; inf (unfinished) sorts last."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))]


def app_name(name: str) -> str:
    return f"bench-widget-{name}"


def backends_cpu(store: Store, name: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving a contender (its connections carry its
    application_name): its own database work, whatever else the machine's PostgreSQL is doing meanwhile."""
    used = {}
    for (pid,) in store.rows("SELECT pid FROM pg_stat_activity WHERE application_name = %s", (app_name(name),)):
        try:
            raw = (Path("/proc") / str(pid) / "stat").read_text()
        except OSError:
            continue  # gone, or PostgreSQL is on another machine
        fields = raw[raw.rindex(")") + 2:].split()
        used[int(pid)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return used


def run(server: Server, store: Store, a: argparse.Namespace, rate: float, duration: float, customers: list[str],
        locales: dict[str, str], balances: dict[str, tuple[int, int]], seed: int) -> dict[str, Any]:
    assert server.proc is not None
    gc.collect()
    gc.freeze()
    probe = cpu_speed_probe()
    db0 = backends_cpu(store, server.name)
    cpu0, client0, wall0 = cpu_snapshot(server.proc.pid), time.process_time(), time.monotonic()
    tally, reconnects, window = asyncio.run(load(server.port, rate, a.warmup, duration, a.connections, a.drain,
                                                 a.timeout, customers, locales, balances, seed))
    cpu1, client1, wall1 = cpu_snapshot(server.proc.pid), time.process_time(), time.monotonic()
    db1 = backends_cpu(store, server.name)
    gc.unfreeze()
    if server.proc.poll() is not None:
        raise RuntimeError(f"{server.name}: gunicorn died during the run; see bench/results/widget-{server.name}."
                           "gunicorn.log")
    # A measured request that failed or answered non-200 is an error (counted, not a latency); one never answered
    # (still waiting when the drain ran out) counts as an infinite latency.
    errors = tally.non200 + tally.failed
    unfinished = tally.measured - tally.finished
    lat = tally.latencies + [math.inf] * unfinished
    per = max(1, tally.sent)
    cpu = {k: cpu1[k] - cpu0[k] for k in ("server", "postgres", "machine")}
    cpu["db"] = sum(v - db0.get(pid, 0.0) for pid, v in db1.items())  # a backend new since started at 0
    wall = wall1 - wall0
    result: dict[str, Any] = {
        "contender": server.name, "rate": rate, "duration_s": duration, "warmup_s": a.warmup,
        "measured": tally.measured, "sent": tally.sent, "ok": tally.ok, "non200": tally.non200,
        "failed": tally.failed, "errors": errors, "wrong": tally.wrong,
        "unfinished": unfinished, "reconnects": reconnects,
        "achieved_per_s": tally.completed_in_window / window,
        "p50_ms": percentile(lat, 50) * 1000, "p95_ms": percentile(lat, 95) * 1000,
        "p99_ms": percentile(lat, 99) * 1000, "max_ms": max(lat, default=math.nan) * 1000,
        "wait_p99_ms": percentile(tally.waits, 99) * 1000, "generator_late_max_ms": tally.lateness * 1000,
        "cpu_ms_per_request": {"server": cpu["server"] / per * 1000, "postgres": cpu["db"] / per * 1000,
                               "client": (client1 - client0) / per * 1000},
        "postgres_all_cpu_s": cpu["postgres"], "backends": len(db1),
        "machine_busy": cpu["machine"] / (wall * (os.cpu_count() or 1)),
        "others_busy": max(0.0, cpu["machine"] - cpu["server"] - cpu["postgres"] - (client1 - client0))
        / (wall * (os.cpu_count() or 1)),
        "cpu_probe_ms": probe, "problems": tally.problems,
    }
    c = result["cpu_ms_per_request"]
    trouble = "" if not (errors or tally.wrong) else f"  FAIL: {errors} errors, {tally.wrong} wrong: " + \
        "; ".join(tally.problems[:2])
    print(f"  {rate:>5g}/s {server.name:<9}{result['achieved_per_s']:>5.0f}/s  p50 {ms(result['p50_ms'])}  "
          f"p95 {ms(result['p95_ms'])}  p99 {ms(result['p99_ms'])}  max {ms(result['max_ms'])} ms  "
          f"(sent late p99 {ms(result['wait_p99_ms'])}, generator late max {tally.lateness * 1000:.1f} ms)  "
          f"errors {errors}  wrong {tally.wrong}"
          + (f"  unfinished {result['unfinished']}" if result["unfinished"] else "")
          + f"  CPU/req: server {c['server']:.2f} db {c['postgres']:.2f} client {c['client']:.2f} ms  "
          f"machine {result['machine_busy']:.0%} busy ({result['others_busy']:.0%} others)" + trouble, flush=True)
    return result


# --- report -------------------------------------------------------------------------------------------------------

def ms(v: float | None) -> str:
    if v is None or math.isnan(v):
        return "-"
    return "inf" if math.isinf(v) else f"{v:,.2f}" if v < 1000 else f"{v:,.0f}"


def ratio(x: float, y: float) -> str:
    return f"{x / y:.2f}x" if y and not (math.isnan(x) or math.isnan(y) or math.isinf(x) or math.isinf(y)) else "-"


def report(results: dict[str, Any], a: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    runs = results.get("runs", [])
    by = {(r["contender"], r["rate"]): r for r in runs}
    rates = sorted({r["rate"] for r in runs})
    print(f"\nWidget balance read (GET {PATH}): {results['rows']['customers']:,} customers, "
          f"{results['rows']['ledger entries']:,} ledger entries; gunicorn gthread -w {a.workers} --threads "
          f"{a.threads}; {a.connections} connections, open loop; {os.cpu_count()} CPUs shared by everything")
    print(f"Encore's answer {results['body_bytes'].get('encore', 0):,} B, the baseline's "
          f"{results['body_bytes'].get('baseline', 0):,} B")
    head = (f"{'rate':>6} {'contender':<28}{'achieved':>10}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'max ms':>10}"
            f"{'errors':>8}{'wrong':>7}{'srv+db CPU/req':>16}")
    print(head)
    print("-" * len(head))
    for rate in rates:
        for name in ("encore", "baseline"):
            r = by.get((name, rate))
            if r is None:
                continue
            c = r["cpu_ms_per_request"]
            print(f"{rate:>6g} {LABELS[name]:<28}{r['achieved_per_s']:>8.0f}/s{ms(r['p50_ms']):>10}"
                  f"{ms(r['p95_ms']):>10}{ms(r['p99_ms']):>10}{ms(r['max_ms']):>10}{r['errors']:>8}{r['wrong']:>7}"
                  f"{c['server'] + c['postgres']:>13.2f} ms")
        e, b = by.get(("encore", rate)), by.get(("baseline", rate))
        if e and b:
            ce, cb = e["cpu_ms_per_request"], b["cpu_ms_per_request"]
            print(f"{'':>6} {'ratio Encore / baseline':<28}{ratio(e['achieved_per_s'], b['achieved_per_s']):>10}"
                  f"{ratio(e['p50_ms'], b['p50_ms']):>10}{ratio(e['p95_ms'], b['p95_ms']):>10}"
                  f"{ratio(e['p99_ms'], b['p99_ms']):>10}{'':>10}{'':>8}{'':>7}"
                  f"{ratio(ce['server'] + ce['postgres'], cb['server'] + cb['postgres']):>16}")
    ceilings = {}
    for name in ("encore", "baseline"):
        mine = [r for r in runs if r["contender"] == name]
        if mine:  # from its lowest rate: the least disturbed by queueing
            c = min(mine, key=lambda r: r["rate"])["cpu_ms_per_request"]
            ceilings[name] = (os.cpu_count() or 1) * 1000 / max(1e-9, c["server"] + c["postgres"] + c["client"])
    if ceilings:
        print("CPU-bound ceiling, estimated (cores / CPU per request of server, its PostgreSQL backends and the "
              "generator): " + ", ".join(f"{n} ~{v:,.0f} req/s" for n, v in ceilings.items()))
    probes = [r["cpu_probe_ms"] for r in runs]
    if probes and max(probes) > 1.25 * min(probes):
        print(f"note: the CPU speed probe ranged {min(probes):.0f}-{max(probes):.0f} ms over the run: this machine's "
              "speed varies, so absolute figures vary with it")
    busy = max((r["others_busy"] for r in runs), default=0.0)
    if busy > 0.1:
        print(f"note: other processes used up to {busy:.0%} of the machine during a run: the figures are skewed")
    ratios = {}
    target = by.get(("encore", a.rate))
    base = by.get(("baseline", a.rate))
    if target and base:
        ratios = {"p99": target["p99_ms"] / base["p99_ms"] if base["p99_ms"] else None,
                  "throughput": target["achieved_per_s"] / base["achieved_per_s"] if base["achieved_per_s"] else None}
    targets: dict[str, dict[str, Any]] = {}
    if target:
        targets[f"Encore p99 < {TARGET_P99_MS:g} ms at {a.rate:g} req/s"] = {
            "value": target["p99_ms"], "pass": target["p99_ms"] < TARGET_P99_MS}
        targets[f"Encore keeps up with {a.rate:g} req/s (achieved >= 99%)"] = {
            "value": target["achieved_per_s"], "pass": target["achieved_per_s"] >= 0.99 * a.rate}
    print()
    for name, tgt in targets.items():
        print(f"{'PASS' if tgt['pass'] else 'MISS'}  {name:<50} {ms(tgt['value'])}")
    bad = [f"{r['contender']} at {r['rate']:g}/s: {r['errors']} errors, {r['wrong']} wrong answers"
           + (f" ({'; '.join(r['problems'][:2])})" if r["problems"] else "")
           for r in runs if r["errors"] or r["wrong"]]
    bad += [f"{name}: smoke check failed: {check}" for name, checks in results.get("smoke", {}).items()
            for check, ok in checks.items() if not ok]
    bad += results.get("setup_problems", [])
    if bad:
        print("FAIL  " + "\n      ".join(bad))
    return {"ratios_at_target": ratios, "targets": targets, "ceiling_estimate_per_s": ceilings}, bool(bad)


def plain(value: Any) -> Any:
    """`value` as strict JSON: an infinite latency (unfinished) as "inf", nan as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else "inf"
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


# --- main ---------------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    global PATH
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="the target rate, requests a second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds measured at --rate per contender")
    parser.add_argument("--rates", default="100,300,600", help="the ramp (--rate is always in it)")
    parser.add_argument("--ramp-duration", type=float, default=10.0, help="seconds measured at the other rates")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds at the start of every run")
    parser.add_argument("--drain", type=float, default=10.0,
                        help="after the last request was due, wait this long for answers (then: unfinished)")
    parser.add_argument("--timeout", type=float, default=10.0, help="a request unanswered this long failed")
    parser.add_argument("--connections", type=int, default=32, help="persistent connections of the generator")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="gunicorn workers (default: cores)")
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker")
    parser.add_argument("--keepalive", type=int, default=5, help="gunicorn --keep-alive seconds")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14",
                        help="Encore's queue (production needs one; a read enqueues nothing, nothing is flushed)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--path", default=PATH, help="Encore's route: the launcher's balance read or /proxy/loyalty")
    parser.add_argument("--keep", action="store_true", help="keep the schema (for a look afterwards)")
    parser.add_argument("--output", default=str(RESULTS / "widget.json"))
    env = os.environ.get("DATABASE_URL", "")
    parser.add_argument("--db", default=env if env.startswith(("postgres://", "postgresql")) else DEFAULT_DB)
    a = parser.parse_args(argv)
    PATH = a.path
    rates = sorted({float(x) for x in a.rates.split(",") if x.strip()} | {a.rate})

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if others := foreign_load():
        print("warning: other benchmark processes are running; they share the CPUs and skew the figures:\n  "
              + "\n  ".join(others[:5]), flush=True)
    libpq = a.db.replace("postgresql+psycopg://", "postgresql://").replace("postgres://", "postgresql://", 1)
    schema = f"bench_widget_{uuid.uuid4().hex[:8]}"
    store = Store(libpq, schema, seed=a.seed)
    begun = time.monotonic()
    results: dict[str, Any] = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
                               "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                           "platform": platform.platform()},
                               "settings": {**{k: v for k, v in vars(a).items() if k != "db"}, "rates": rates,
                                            "database": libpq.split("@")[-1], "schema": schema,
                                            "gunicorn": gunicorn_args(a, 0)[3:]}}
    failed = False
    try:
        print(f"widget benchmark: {os.cpu_count()} cores; PostgreSQL {libpq.split('@')[-1]} schema {schema}",
              flush=True)
        setup = time.monotonic()
        store.create()
        store.shop()
        rows = store.shoppers(a.customers)
        rows |= store.ledgers(a.customers)
        store.vacuum("customers", "loyalty_accounts", "ledger_entries", "redemptions")
        results["rows"] = rows
        results["setup_problems"] = store.books_balance()
        balances = store.balances()
        per = rows["ledger entries"] / max(1, rows["accounts"])
        print(f"setup {time.monotonic() - setup:.0f} s: " + ", ".join(f"{k} {v:,}" for k, v in rows.items())
              + f" ({per:.1f} entries an account)", flush=True)
        customers = [customer(i) for i in range(a.customers)]
        locales = {cid: store.locales[i] for i, cid in enumerate(customers)}
        def app_url(name: str) -> str:
            return with_search_path(libpq, schema) + f"&application_name={app_name(name)}"

        servers = [
            Server("encore", "wsgi:app", {
                "ENCORE_ENV": "production", "DATABASE_URL": app_url("encore"), "REDIS_URL": a.redis_url,
                "SHOPIFY_API_SECRET": API_SECRET, "SHOPIFY_API_KEY": API_KEY, "ENCORE_SECRET_KEY": uuid.uuid4().hex * 2,
                "ENCORE_ENCRYPTION_KEYS": store.key, "ENCORE_APP_URL": "http://127.0.0.1:1",
                "ENCORE_LOG_LEVEL": "INFO"}),
            Server("baseline", "balance_app:app", {"BENCH_DSN": app_url("baseline"), "BENCH_SECRET": API_SECRET}),
        ]
        results["smoke"] = {}
        for server in servers:
            print(f"-- {LABELS[server.name]}: gunicorn {server.module}", flush=True)
            start(server, a)
            server.smoke = smoke(server, balances, locales)
            results["smoke"][server.name] = server.smoke
            for check, ok in server.smoke.items():
                print(f"   {'ok  ' if ok else 'FAIL'} {check}", flush=True)
        results["body_bytes"] = {s.name: s.body_bytes for s in servers}
        print(f"\nload: open loop, {a.warmup:g} s warm-up then {a.duration:g} s measured at {a.rate:g}/s and "
              f"{a.ramp_duration:g} s at the other rates; Encore and the baseline in turn", flush=True)
        runs: list[dict[str, Any]] = []
        overloaded: dict[str, float] = {}  # a contender that could not keep up at a rate is not run above it
        for k, rate in enumerate(rates):
            order = servers if k % 2 == 0 else servers[::-1]
            for server in order:
                if server.name in overloaded and rate != a.rate:  # the target rate is always measured
                    print(f"  {rate:>5g}/s {server.name:<9}skipped: it could not keep up at "
                          f"{overloaded[server.name]:g}/s", flush=True)
                    continue
                r = run(server, store, a, rate, a.duration if rate == a.rate else a.ramp_duration, customers,
                        locales, balances, a.seed * 1000 + k)
                runs.append(r)
                if r["unfinished"] or r["achieved_per_s"] < 0.9 * rate:
                    overloaded[server.name] = rate
                    time.sleep(2)  # what it still had in hand is done before the next run
        results["runs"] = runs
        results["overloaded_at"] = overloaded
        summary, failed = report(results, a)
        results.update(summary)
    finally:
        _stop_all()
        finish(store, [], keep=a.keep)
    results["elapsed_s"] = time.monotonic() - begun
    Path(a.output).write_text(json.dumps(plain(results), indent=2, default=str) + "\n")
    print(f"results: {os.path.relpath(a.output, Path.cwd())}  (whole run {results['elapsed_s']:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
