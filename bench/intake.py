"""Webhook intake benchmark: Encore against two references, under the same gunicorn settings and wrk load.

    .venv/bin/python bench/intake.py [--duration 15] [--connections 32] [--rounds 5] [--workers 2] ...

Contenders, each served by `gunicorn` on 127.0.0.1 with identical server settings:
  bare     bench/bare_app.py     a WSGI app that only answers 200 (the server's and wrk's own cost)
  minimal  bench/minimal_app.py  the least work that is still correct: HMAC check + one INSERT on psycopg
  encore   wsgi:app              Encore itself (ENCORE_ENV=production), on PostgreSQL in a fresh schema,
                                 with RQ on Redis db 15 (no worker runs during the load; after each round
                                 `encore relay` hands every stored row to RQ, and the ids in its jobs must equal the rows)

The load is wrk (bench/intake.lua): a ~3 KB orders/create body built like the store simulator's, signed as
Shopify signs it, with a unique X-Shopify-Event-Id per request. Each contender gets --duration seconds of it,
split into --rounds rounds interleaved with the other contenders' (this machine's speed drifts; interleaving
keeps the comparison fair). In each round every wrk thread stops sending after its share of the time and wrk
runs one more second, so nothing is in flight when it stops: the rows in the inbox must then equal the 2xx
answers wrk counted, and the ids in the RQ jobs the relay then enqueues must equal the rows.

It prints figures and PASS/MISS against the targets; it never fails on timings. Results are written to
bench/results/intake.json. Everything it launches (gunicorn, wrk) is stopped before it exits, error or not.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
sys.path.insert(0, str(ROOT))

SHOP = "bench-shop.myshopify.com"
TOPIC = "orders/create"
QUEUE = "encore"
API_KEY = "bench-api-key"
API_SECRET = "shpss_bench_" + "0123456789abcdef" * 2

TARGET_VS_MINIMAL = 0.70
TARGET_STORED_PER_S = 1500.0
TARGET_P99_MS = 50.0


# --- processes we start, and only those, are stopped on the way out -------------------------------------

_launched: list[subprocess.Popen[bytes]] = []


def _stop(proc: subprocess.Popen[bytes], grace: float = 8.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # the process group we created for it: gunicorn and its workers
    except ProcessLookupError:
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)


def _stop_all() -> None:
    while _launched:
        _stop(_launched.pop())


def _on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def _one_run_at_a_time(timeout: float = 60.0) -> Any:
    """Hold an exclusive lock for the whole run: two runs would share the CPUs, the schema and Redis db."""
    import fcntl

    lock = open(Path(os.environ.get("TMPDIR", "/tmp")) / "encore-intake-bench.lock", "w")  # noqa: SIM115
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return lock
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise SystemExit("another bench/intake.py run is still going; try again when it is done") from None
            time.sleep(0.5)


# --- the payload ---------------------------------------------------------------------------------------

def order_body() -> bytes:
    """An orders/create body as the store simulator builds it, with the addresses and lines a real one has."""
    from app.simulator.shopify import ShopifySimulator

    sim = ShopifySimulator(api_key=API_KEY, api_secret=API_SECRET, app_url="http://127.0.0.1:1")
    sim.send = lambda *a, **k: None  # type: ignore[method-assign]  # build the payload, post nothing
    sim.add_store(SHOP, name="Bench Shop")
    order = sim.place_order(SHOP, paid=False, lines=[
        ("Cold brew concentrate", 2, "18.00"), ("Ceramic dripper", 1, "32.50"),
        ("Paper filters (100)", 3, "6.90"), ("Single-origin beans 250g", 2, "16.50")])
    address = {"first_name": order["customer"]["first_name"], "last_name": order["customer"]["last_name"],
               "address1": "12 Harbour Road", "address2": "Unit 4", "city": "Brooklyn", "province": "New York",
               "province_code": "NY", "country": "United States", "country_code": "US", "zip": "11201",
               "phone": order["customer"]["phone"], "company": None, "latitude": 40.6958, "longitude": -73.9936}
    order.update({
        "shipping_address": address, "billing_address": dict(address), "tags": "bench, repeat-buyer",
        "note": None, "note_attributes": [], "source_name": "web", "landing_site": "/products/cold-brew",
        "referring_site": "https://www.google.com/", "browser_ip": "203.0.113.7", "buyer_accepts_marketing": True,
        "shipping_lines": [{"id": order["id"] + 1, "title": "Standard", "code": "STANDARD", "price": "5.00",
                            "source": "shopify", "discounted_price": "5.00"}],
        "tax_lines": [{"title": "NY State Tax", "rate": 0.1, "price": order["total_tax"]}],
    })
    return json.dumps(order).encode()


def hmac_b64(body: bytes) -> str:
    from app.simulator.shopify import sign

    return sign(body, API_SECRET)


# --- database and redis --------------------------------------------------------------------------------

def with_search_path(url: str, schema: str) -> str:
    return url + ("&" if "?" in url else "?") + "options=" + quote(f"-csearch_path={schema}", safe="")


REF_DDL = """
CREATE TABLE ref_inbox (
    id BIGSERIAL PRIMARY KEY,
    shop_id BIGINT NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    platform VARCHAR(20) NOT NULL,
    topic VARCHAR(64) NOT NULL,
    event_id VARCHAR(128) NOT NULL,
    body BYTEA NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    status VARCHAR(16) NOT NULL,
    attempts INTEGER NOT NULL,
    lease_until TIMESTAMPTZ,
    next_attempt_at TIMESTAMPTZ,
    processed_at TIMESTAMPTZ,
    last_error TEXT,
    UNIQUE (shop_id, topic, event_id)
);
CREATE INDEX ON ref_inbox (status, next_attempt_at);
CREATE INDEX ON ref_inbox (shop_id, received_at);
"""


class Database:
    """A fresh schema in the given database: Encore's migrations, one installed shop, the reference table."""

    def __init__(self, url: str, schema: str) -> None:
        from app.config import _normalise_db_url
        from app.db.engine import make_engine

        self.url, self.schema = url, schema
        self.admin = make_engine(_normalise_db_url(url), pool_size=1, max_overflow=0)
        self.engine = make_engine(_normalise_db_url(url), pool_size=1, max_overflow=0,
                                  connect_args={"options": f"-csearch_path={schema}"})

    def create(self) -> int:
        from sqlalchemy import text

        from app.migrate import upgrade

        with self.admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA {self.schema}"))
        upgrade(self.engine)
        with self.engine.begin() as conn:
            shop_id = conn.execute(text(
                "INSERT INTO shops (platform, domain, name, currency, timezone, locale, installed_at, created_at) "
                "VALUES ('shopify', :d, 'Bench Shop', 'USD', 'UTC', 'en', now(), now()) RETURNING id"), {"d": SHOP}
            ).scalar_one()
            conn.exec_driver_sql(REF_DDL)
        return int(shop_id)

    def count(self, table: str, prefix: str) -> int:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table} WHERE event_id LIKE :p"),
                                    {"p": prefix + "-%"}).scalar_one())

    def duplicates_stored_once(self, table: str, event_id: str) -> bool:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table} WHERE event_id = :e"),
                                    {"e": event_id}).scalar_one()) == 1

    def drop(self) -> None:
        from sqlalchemy import text

        self.engine.dispose()
        with self.admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE"))
        self.admin.dispose()


# --- contenders ----------------------------------------------------------------------------------------

@dataclass
class Contender:
    name: str
    label: str
    module: str
    env: dict[str, str]
    table: str | None  # where its rows land
    queue: bool = False
    proc: subprocess.Popen[bytes] | None = None
    origin: str = ""
    smoke: dict[str, bool] = field(default_factory=dict)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def worker_connections(a: argparse.Namespace) -> int:
    return a.worker_connections or max(a.threads + 1, math.ceil(a.connections / a.workers))


def gunicorn_args(a: argparse.Namespace, port: int) -> list[str]:
    """The server settings; the same for every contender."""
    args = [str(Path(sys.executable).parent / "gunicorn"), "--bind", f"127.0.0.1:{port}",
            "--workers", str(a.workers), "--worker-class", a.worker_class, "--keep-alive", str(a.keepalive),
            "--backlog", "2048", "--graceful-timeout", "5", "--timeout", "30", "--log-level", "warning",
            "--chdir", str(ROOT), "--pythonpath", str(BENCH)]
    if a.worker_class == "gthread":
        # Cap each worker's connections at its share of wrk's: gthread workers race to accept, and without
        # a cap one worker tends to take all 32 kept-alive connections while the others idle.
        args += ["--threads", str(a.threads), "--worker-connections", str(worker_connections(a))]
    return args


def start_server(c: Contender, a: argparse.Namespace) -> None:
    port = free_port()
    log_path = RESULTS / f"{c.name}.gunicorn.log"
    with log_path.open("wb") as log:
        c.proc = subprocess.Popen(gunicorn_args(a, port) + [c.module], env={**os.environ, **c.env}, stdout=log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                  cwd=ROOT)
    _launched.append(c.proc)
    c.origin = f"http://127.0.0.1:{port}"
    wait_healthy(c.name, c.proc, c.origin, log_path)

def wait_healthy(name: str, proc: subprocess.Popen[bytes], origin: str, log_path: Path, seconds: float = 40) -> None:
    """Until the server answers /healthz 200; RuntimeError (pointing at its log) if it exits or stays silent."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name}: gunicorn exited with {proc.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(origin + "/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{name}: not answering after {seconds:.0f} s; see {log_path}")



def post(origin: str, body: bytes, *, event_id: str, signature: str, shop: str = SHOP) -> int:
    req = urllib.request.Request(origin + "/webhooks/shopify", data=body, method="POST", headers={
        "Content-Type": "application/json", "X-Shopify-Topic": TOPIC, "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Hmac-Sha256": signature, "X-Shopify-Event-Id": event_id})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def smoke(c: Contender, db: Database, body: bytes, signature: str) -> dict[str, bool]:
    """A few correctness probes before the load: a contender that fails them is not a fair comparison."""
    if c.table is None:
        return {}
    eid = f"{c.name}-smoke-{uuid.uuid4().hex}"
    wrong = base64.b64encode(b"\0" * 32).decode()
    big = b" " * 1_000_001
    return {
        "signed delivery -> 200": post(c.origin, body, event_id=eid, signature=signature) == 200,
        "repeated delivery -> 200": post(c.origin, body, event_id=eid, signature=signature) == 200,
        "duplicate stored once": db.duplicates_stored_once(c.table, eid),
        "bad HMAC -> 401": post(c.origin, body, event_id=eid + "x", signature=wrong) == 401,
        "unknown shop -> 401": post(c.origin, body, event_id=eid + "y", signature=signature,
                                    shop="nobody-here.myshopify.com") == 401,
        "body over 1 MB -> 413": post(c.origin, big, event_id=eid + "z", signature=hmac_b64(big)) == 413,
    }


def run_wrk(a: argparse.Namespace, origin: str, seconds: float, prefix: str, body_file: Path,
            signature: str) -> dict[str, Any]:
    drain = 1  # nothing sent in the last second: what was in flight gets its answer before wrk stops
    env = {**os.environ, "BENCH_BODY_FILE": str(body_file), "BENCH_HMAC": signature, "BENCH_SHOP": SHOP,
           "BENCH_TOPIC": TOPIC, "BENCH_PREFIX": prefix, "BENCH_WINDOW": f"{seconds:.3f}"}
    cmd = [a.wrk, f"-t{a.wrk_threads}", f"-c{a.connections}", f"-d{math.ceil(seconds) + drain}s", "--timeout", "5s",
           "--latency", "-s", str(BENCH / "intake.lua"), origin]
    out = subprocess.run(cmd, env=env, capture_output=True, timeout=seconds + drain + 60, check=False)
    text = out.stdout.decode(errors="replace")
    line = next((ln for ln in text.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {text}\n{out.stderr.decode(errors='replace')}")
    result: dict[str, Any] = json.loads(line[len("BENCH_JSON "):])
    result["command"] = " ".join(cmd)
    return result


def redis_client(url: str) -> Any:
    from redis import Redis

    return Redis.from_url(url)


# --- CPU accounting: who used the two cores during a round ---------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_stats() -> Iterator[tuple[Path, str, list[str]]]:
    """Every process now: its /proc directory, its command name, and its stat fields after the name (fields[2] is
    the process group; fields[11] to [14] the user and system CPU ticks of the process, then of its waited
    children). The benches' CPU accounting reads this (here, bench/dispatch.py and bench/load.py)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
        except OSError:
            continue
        yield stat.parent, raw[raw.index("(") + 1:raw.rindex(")")], raw[raw.rindex(")") + 2:].split()


def cpu_snapshot(server_pgrp: int) -> dict[str, float]:
    """CPU seconds so far: the contender's gunicorn processes, PostgreSQL, Redis, wrk (our waited children)
    and the whole machine."""
    out = {"server": 0.0, "server_sys": 0.0, "server_ctx_switches": 0.0, "postgres": 0.0, "redis": 0.0}
    for proc, comm, fields in process_stats():
        used = (int(fields[11]) + int(fields[12])) / CLK_TCK
        if int(fields[2]) == server_pgrp:
            out["server"] += used
            out["server_sys"] += int(fields[12]) / CLK_TCK
            for task in proc.glob("task/*/status"):  # every thread's context switches
                try:
                    out["server_ctx_switches"] += sum(int(line.split()[1]) for line in task.read_text().splitlines()
                                                      if "ctxt_switches:" in line)
                except OSError:
                    pass
        elif comm.startswith("postgres"):
            out["postgres"] += used
        elif comm.startswith("redis-server"):
            out["redis"] += used
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    out["wrk"] = children.ru_utime + children.ru_stime
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in f.readline().split()[1:9])
    out["machine"] = (user + nice + system) / CLK_TCK  # processes; interrupts (loopback traffic) apart
    out["interrupts"] = (irq + softirq) / CLK_TCK
    out["steal"] = steal / CLK_TCK  # taken by the hypervisor
    return out


def foreign_load() -> list[str]:
    """Other servers or load generators running now (not ours): they share the CPUs with the bench."""
    def parent(pid: int) -> int:
        try:
            return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            return 0

    ours, pid = set(), os.getpid()
    while pid > 1:  # this process and the ones that started it (a shell, `timeout`, make)
        ours.add(pid)
        pid = parent(pid)
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        pid = int(cmdline.parent.name)
        try:
            line = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if pid in ours or parent(pid) in ours or not line:
            continue
        if Path(line.split()[0]).name == "wrk" or ("gunicorn" in line and "--bind" in line) or "intake.py" in line:
            found.append(f"{pid}: {line[:100]}")
    return found


def cpu_speed_probe() -> float:
    """Milliseconds a fixed bit of pure-Python work takes right now. On a shared VM the same work can take
    twice as long from one second to the next; the spread over a run says how much to trust absolutes."""
    start = time.process_time()
    x = 0
    for i in range(200_000):
        x += i * i
    return (time.process_time() - start) * 1000


# --- measuring -----------------------------------------------------------------------------------------

def rows_in_jobs(redis: Any, queue_key: str, skip: int) -> int:
    """How many inbox ids the jobs queued after the first `skip` carry (the relay puts up to 20 in a job)."""
    total = 0
    for job_id in redis.lrange(queue_key, skip, -1):
        data = redis.hget(f"rq:job:{job_id.decode()}", "data")
        total += len(json.loads(zlib.decompress(data))[2]) if data else 0
    return total


def measure_round(c: Contender, a: argparse.Namespace, db: Database, redis: Any, n: int, seconds: float,
                  body_file: Path, signature: str) -> dict[str, Any]:
    assert c.proc is not None
    prefix = f"{c.name}-r{n}"
    queue_key = f"rq:queue:{QUEUE}"
    queued_before = int(redis.llen(queue_key)) if c.queue else 0
    probe = cpu_speed_probe()
    cpu0 = cpu_snapshot(c.proc.pid)
    w = run_wrk(a, c.origin, seconds, prefix, body_file, signature)
    cpu1 = cpu_snapshot(c.proc.pid)
    if c.proc.poll() is not None:
        raise RuntimeError(f"{c.name}: gunicorn died during the run; see bench/results/{c.name}.gunicorn.log")
    rows = db.count(c.table, prefix) if c.table else None
    jobs = None
    if c.queue:  # Encore's intake only inserts; the relay (run by every `encore worker`) enqueues the rows
        out = subprocess.run([sys.executable, "-m", "app.cli", "relay"], env={**os.environ, **c.env}, cwd=ROOT,
                             capture_output=True, text=True, timeout=120, check=True).stdout
        relayed = int(re.findall(r"enqueued (\d+) rows", out)[-1])  # this round's rows, plus its warm-up's
        jobs = rows_in_jobs(redis, queue_key, queued_before)
        if jobs != relayed or relayed < (rows or 0):
            raise RuntimeError(f"relay enqueued jobs for {jobs} rows, not {relayed} ({rows} stored this round)")
    cpu = {k: cpu1[k] - cpu0[k] for k in cpu0}
    # roughly what the two cores did besides this contender, its database, Redis and wrk
    cpu["other"] = max(0.0, cpu["machine"] - cpu["server"] - cpu["postgres"] - cpu["redis"] - cpu["wrk"])
    r = {"round": n, "wrk": w, "rows": rows, "cpu_s": cpu, "jobs_enqueued": jobs, "cpu_probe_ms": probe}
    active = w["active_s"] or seconds
    q = dict((float(p), v) for p, v in w["latency_us"]["quantiles"])
    per = max(1, w["completed"])
    print(f"   round {n} {c.name:<8}{w['completed'] / active:>7,.0f} req/s  p50 {q[50.0] / 1000:5.1f}  "
          f"p99 {q[99.0] / 1000:5.1f} ms  non-2xx {w['non2xx']}  "
          + ("" if rows is None else f"rows {'==' if rows == w['ok2xx'] else '!='} 2xx {w['ok2xx']:<6}  ")
          + f"server {cpu['server'] / per * 1000:.2f} ms CPU/req ({cpu['server_ctx_switches'] / per:.0f} cs)  "
          f"db {cpu['postgres'] / per * 1000:.2f}  probe {probe:.0f} ms", flush=True)
    return r


def merged_quantile(rounds: list[dict[str, Any]], q: float) -> float:
    """The q-th percentile (ms) of the union of several runs, from each run's quantile table."""
    tables = []
    for r in rounds:
        n = r["wrk"]["completed"]
        if n:
            tables.append((n, [(float(p) / 100, v) for p, v in r["wrk"]["latency_us"]["quantiles"]]))
    if not tables:
        return float("nan")
    total = sum(n for n, _ in tables)
    for x in sorted({v for _, t in tables for _, v in t}):
        below = sum(n * max((p for p, v in t if v <= x), default=0.0) for n, t in tables)
        if below >= q / 100 * total - 1e-9:
            return x / 1000
    return max(v for _, t in tables for _, v in t) / 1000


def aggregate(c: Contender) -> None:
    rs = c.rounds
    completed = sum(r["wrk"]["completed"] for r in rs)
    ok = sum(r["wrk"]["ok2xx"] for r in rs)
    non2xx = sum(r["wrk"]["non2xx"] for r in rs)
    sock = sum(r["wrk"]["errors"][k] for r in rs for k in ("connect", "read", "write", "timeout"))
    active = sum(r["wrk"]["active_s"] for r in rs) or float("nan")
    rows = None if c.table is None else sum(r["rows"] for r in rs)
    cpu = {k: sum(r["cpu_s"][k] for r in rs) for k in rs[0]["cpu_s"]}
    c.result = {
        "requests": completed, "ok2xx": ok, "non2xx": non2xx, "socket_errors": sock, "errors": non2xx + sock,
        "active_s": active, "requests_per_s": completed / active, "ok2xx_per_s": ok / active,
        "p50_ms": merged_quantile(rs, 50), "p90_ms": merged_quantile(rs, 90), "p99_ms": merged_quantile(rs, 99),
        "p999_ms": merged_quantile(rs, 99.9), "max_ms": max(r["wrk"]["latency_us"]["max"] for r in rs) / 1000,
        "rows": rows, "rows_match_2xx": None if rows is None else rows == ok,
        "stored_per_s": None if rows is None else min(rows, ok) / active,
        "jobs_enqueued": sum(r["jobs_enqueued"] for r in rs) if c.queue else None,
        "cpu_ms_per_request": {k: v / max(1, completed) * 1000 for k, v in cpu.items()},
        "other_processes_cores": cpu["other"] / active,
    }


# --- report --------------------------------------------------------------------------------------------

def fmt(v: float | None, spec: str = ",.0f") -> str:
    return "-" if v is None else format(v, spec)


def report(contenders: list[Contender], a: argparse.Namespace, body: bytes) -> dict[str, Any]:
    by = {c.name: c.result for c in contenders}
    server = f"gunicorn -k {a.worker_class} -w {a.workers}" + (
        f" --threads {a.threads} --worker-connections {worker_connections(a)}" if a.worker_class == "gthread" else ""
    ) + f" --keep-alive {a.keepalive}"
    print()
    print(f"Webhook intake: {len(body):,} B signed orders/create, unique event ids; wrk -t{a.wrk_threads} "
          f"-c{a.connections}, {a.rounds} interleaved rounds x {a.duration / a.rounds:g} s per contender")
    print(f"Server (same for all): {server}; PostgreSQL {a.database_url.split('@')[-1]} schema {a.schema}; "
          f"{os.cpu_count()} CPUs shared by everything")
    head = (f"{'contender':<33}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'errors':>7}{'non-2xx':>8}"
            f"{'rows':>8}{'stored/s':>9}{'srv CPU/req':>13}{'db CPU/req':>12}")
    print(head)
    print("-" * len(head))
    for c in contenders:
        r = c.result
        cpu = r["cpu_ms_per_request"]
        print(f"{c.label:<33}{fmt(r['requests_per_s']):>8}{fmt(r['p50_ms'], '.2f'):>8}{fmt(r['p99_ms'], '.2f'):>8}"
              f"{fmt(r['max_ms'], '.1f'):>8}{r['socket_errors']:>7}{r['non2xx']:>8}{fmt(r['rows'], 'd'):>8}"
              f"{fmt(r['stored_per_s']):>9}{cpu['server']:>10.2f} ms{cpu['postgres']:>9.2f} ms")
    ratios: dict[str, float] = {}
    enc = by.get("encore")
    if enc:
        print()
        for ref in ("minimal", "bare"):
            if ref in by and by[ref]["requests_per_s"]:
                ratios[f"encore/{ref}"] = enc["requests_per_s"] / by[ref]["requests_per_s"]
                print(f"ratio Encore/{ref:<8} req/s {ratios[f'encore/{ref}']:7.1%}   "
                      f"p99 {enc['p99_ms'] / by[ref]['p99_ms']:5.2f}x   "
                      f"server CPU/req {enc['cpu_ms_per_request']['server'] / by[ref]['cpu_ms_per_request']['server']:5.2f}x")
        rows, ok = enc["rows"], enc["ok2xx"]
        print(f"Encore inbox rows {rows:,} {'==' if rows == ok else '!='} wrk 2xx {ok:,}"
              f" ({'verified' if rows == ok else 'MISMATCH'}); the relay then handed every stored row to RQ"
              f" ({enc['jobs_enqueued']:,} rows in jobs of up to 20, warm-up rows included)")
    probes = [r["cpu_probe_ms"] for c in contenders for r in c.rounds]
    if max(probes) > 1.25 * min(probes):
        print(f"note: the CPU speed probe ranged {min(probes):.0f}-{max(probes):.0f} ms over the run: this machine's "
              f"speed varies, so absolute req/s vary with it; the interleaved rounds keep the ratios fair")
    targets: dict[str, dict[str, Any]] = {}
    if enc:
        vs_min = ratios.get("encore/minimal")
        targets = {
            f"Encore >= {TARGET_VS_MINIMAL:.0%} of minimal Flask req/s": {
                "value": vs_min, "pass": vs_min is not None and vs_min >= TARGET_VS_MINIMAL},
            f"verified stored webhooks/s >= {TARGET_STORED_PER_S:,.0f}": {
                "value": enc["stored_per_s"],
                "pass": bool(enc["rows_match_2xx"]) and enc["stored_per_s"] >= TARGET_STORED_PER_S},
            f"Encore p99 < {TARGET_P99_MS:.0f} ms": {"value": enc["p99_ms"], "pass": enc["p99_ms"] < TARGET_P99_MS},
        }
        print()
        for name, t in targets.items():
            v = t["value"]
            shown = "-" if v is None else (f"{v:.1%}" if "%" in name else f"{v:,.1f}")
            print(f"{'PASS' if t['pass'] else 'MISS'}  {name:<44} {shown}")
    return {"server": server, "ratios": ratios, "targets": targets}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=15.0,
                   help="seconds of measured load per contender, split over the rounds (default 15)")
    p.add_argument("--rounds", type=int, default=5,
                   help="interleave the contenders over this many rounds, so that a slow spell of the "
                        "machine does not land on one contender only (default 5)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load first (default 2)")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--wrk-threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2: one per core)")
    p.add_argument("--worker-class", default="gthread", choices=("sync", "gthread"))
    p.add_argument("--threads", type=int, default=4,
                   help="threads per gthread worker (default 4, to overlap the database and Redis round trips)")
    p.add_argument("--worker-connections", type=int, default=0,
                   help="gthread --worker-connections (default: connections / workers, so load spreads evenly)")
    p.add_argument("--keepalive", type=int, default=5, help="gunicorn --keep-alive seconds (default 5)")
    p.add_argument("--only", default="bare,minimal,encore", help="comma-separated subset of bare,minimal,encore")
    p.add_argument("--encore-variant", action="append", default=[], metavar="NAME:VAR=VALUE[,VAR=VALUE]",
                   help="also measure Encore with these extra environment variables (for experiments)")
    p.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                            "postgresql://postgres@127.0.0.1:5432/test"))
    p.add_argument("--schema", default="encore_bench")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    p.add_argument("--keep-schema", action="store_true", help="leave the schema behind for inspection")
    p.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    p.add_argument("--output", default=str(RESULTS / "intake.json"))
    a = p.parse_args(argv)
    a.rounds = max(1, a.rounds)

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    lock = _one_run_at_a_time()  # noqa: F841  (held until the process exits)
    if others := foreign_load():
        print("warning: other benchmark processes are running; they share the CPUs and skew the figures:\n  "
              + "\n  ".join(others[:5]), flush=True)

    from cryptography.fernet import Fernet

    body = order_body()
    signature = hmac_b64(body)
    body_file = RESULTS / "intake-body.json"
    body_file.write_bytes(body)
    app_url = with_search_path(a.database_url, a.schema)
    encore_env = {
        "ENCORE_ENV": "production", "DATABASE_URL": app_url, "REDIS_URL": a.redis_url, "ENCORE_QUEUE": QUEUE,
        "SHOPIFY_API_SECRET": API_SECRET, "SHOPIFY_API_KEY": API_KEY, "ENCORE_SECRET_KEY": uuid.uuid4().hex * 2,
        "ENCORE_ENCRYPTION_KEYS": Fernet.generate_key().decode(), "ENCORE_APP_URL": "http://127.0.0.1:1",
        "ENCORE_LOG_LEVEL": "INFO",
    }
    all_contenders = [
        Contender("bare", "bare WSGI (200 only)", "bare_app:app", {}, None),
        Contender("minimal", "minimal Flask (HMAC + 1 INSERT)", "minimal_app:app",
                  {"BENCH_DSN": app_url, "BENCH_SECRET": API_SECRET}, "ref_inbox"),
        Contender("encore", "Encore (gunicorn wsgi:app)", "wsgi:app", encore_env, "inbox", queue=True),
    ]
    for variant in a.encore_variant:
        name, _, assignments = variant.partition(":")
        extra = dict(kv.split("=", 1) for kv in assignments.split(",") if kv)
        all_contenders.append(Contender(name, f"Encore variant {name}", "wsgi:app", {**encore_env, **extra}, "inbox",
                                        queue=True))
    wanted = {n.strip() for n in a.only.split(",") if n.strip()} | {v.partition(":")[0] for v in a.encore_variant}
    contenders = [c for c in all_contenders if c.name in wanted]

    db = Database(a.database_url, a.schema)
    redis = redis_client(a.redis_url)
    try:
        redis.flushdb()
        db.create()
        for c in contenders:
            print(f"-- {c.label}: gunicorn {c.module}", flush=True)
            start_server(c, a)
            c.smoke = smoke(c, db, body, signature)
            for check, ok in c.smoke.items():
                print(f"   {'ok  ' if ok else 'FAIL'} {check}", flush=True)
            if a.warmup > 0:
                run_wrk(a, c.origin, a.warmup, f"{c.name}-warm", body_file, signature)
        for n in range(1, a.rounds + 1):
            order = contenders[(n - 1) % len(contenders):] + contenders[:(n - 1) % len(contenders)]
            for c in order:
                c.rounds.append(measure_round(c, a, db, redis, n, a.duration / a.rounds, body_file, signature))
        for c in contenders:
            aggregate(c)
        summary = report(contenders, a, body)
        out = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                  text=True, check=False).stdout.strip(),
            "settings": {"duration_s": a.duration, "rounds": a.rounds, "warmup_s": a.warmup,
                         "connections": a.connections, "wrk_threads": a.wrk_threads, "body_bytes": len(body),
                         "gunicorn": gunicorn_args(a, 0)[3:], "database": a.database_url, "schema": a.schema,
                         "redis": a.redis_url},
            "contenders": {c.name: {"label": c.label, "module": c.module, "smoke": c.smoke, **c.result,
                                    "rounds": c.rounds} for c in contenders},
            **summary,
            "elapsed_s": time.monotonic() - started,
        }
        Path(a.output).write_text(json.dumps(out, indent=2, default=str) + "\n")
        print(f"\nresults: {os.path.relpath(a.output, Path.cwd())}  (whole run {out['elapsed_s']:.0f} s)")
        return 0
    finally:
        _stop_all()
        try:
            redis.flushdb()
            redis.close()
        finally:
            if not a.keep_schema:
                db.drop()


if __name__ == "__main__":
    sys.exit(main())
