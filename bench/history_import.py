"""History import benchmark: 100,000 past orders of a simulated store, imported by Encore, against a raw bulk
load of the very same rows, measured in the same run. Shopify (a bulk operation) and WooCommerce (paginated
REST) each in turn.

    .venv/bin/python bench/history_import.py [--orders 100000] [--platform both] [--baseline-rounds 2]

- The store simulator runs in a process of its own (bench/history_sim.py) and generates the orders as they are
  read: for Shopify, a bulk result of paid, fulfilled, delivered, refunded and cancelled orders, 1-2 lines
  each, ~90,000 customers; for WooCommerce, pages of 100 completed, processing, cancelled and refunded orders.
- The importer is Encore's own command, `encore import <shop>`, in its own process against PostgreSQL (a fresh
  schema): it streams the JSONL, translates, and applies 500 orders a transaction with the webhooks' merge rules
  and domain events. Its wall time gives orders/s; its peak resident memory is the kernel's high-water mark
  for the process (VmHWM), read while it runs.
- The baseline is the least the database can do for the same result: the rows the import wrote (customers,
  orders, lines, fulfillments, refunds, domain events) copied out, then loaded with COPY into empty tables of
  the same shape (indexes and constraints included), timed from the first COPY to the commit.

It prints figures and PASS/MISS against the targets (>= 2,000 orders/s; peak memory < 300 MB); it never fails
on timings. Results go to bench/results/history_import.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402
from sqlalchemy import text  # noqa: E402

from app.config import _normalise_db_url  # noqa: E402
from app.db.engine import make_engine  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.vault import Vault  # noqa: E402

SHOP = "bench-history.myshopify.com"
TABLES = ["customers", "orders", "order_lines", "fulfillments", "refunds", "domain_events"]
TARGET_ORDERS_PER_S = 2000.0
TARGET_PEAK_MB = 300.0


def _watch_peak(pid: int, peak: list[int]) -> None:
    """The importer's own high-water mark of resident memory (VmHWM, kB), read until it exits. Not wait4's
    ru_maxrss: that also counts the moment between fork and exec, when the child is a copy of this process."""
    while True:
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            return
        time.sleep(0.1)


def run_import(url: str, schema: str, origin: str, key: str, shop: str) -> dict[str, Any]:
    env = {**os.environ, "DATABASE_URL": f"{url}?options={quote(f'-csearch_path={schema}')}",
           "ENCORE_ENCRYPTION_KEYS": key, "ENCORE_SECRET_KEY": "bench", "ENCORE_ENV": "development",
           "SHOPIFY_SHOP_ORIGIN": f"{origin}/shops/{{shop}}", "SHOPIFY_API_KEY": "bench-api-key",
           "SHOPIFY_API_SECRET": "bench-api-secret", "ENCORE_LOG_LEVEL": "WARNING"}
    env.pop("REDIS_URL", None)
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:  # files, never a full pipe
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "app.cli", "import", shop], cwd=ROOT, env=env,
                                 stdout=stdout, stderr=stderr)
        peak = [0]
        watcher = threading.Thread(target=_watch_peak, args=(child.pid, peak), daemon=True)
        watcher.start()
        _, status, usage = os.wait4(child.pid, 0)
        watcher.join()
        elapsed = time.perf_counter() - started
        stdout.seek(0)
        stderr.seek(0)
        out, err = stdout.read().decode(), stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"encore import failed:\n{out}\n{err[-3000:]}")
    return {"seconds": elapsed, "peak_rss_mb": peak[0] / 1024, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "output": out.strip().splitlines()[-1]}


def counts(engine: Any, schema: str) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: int(conn.execute(text(f"SELECT count(*) FROM {schema}.{t}")).scalar_one()) for t in TABLES}


def raw_load(engine: Any, source: str) -> float:
    """COPY the import's rows out, then time loading them with COPY into fresh tables of the same shape."""
    target = f"bench_raw_{uuid.uuid4().hex[:8]}"
    dumps: dict[str, bytes] = {}
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(f"CREATE SCHEMA {target}")
        for table in TABLES:
            cur.execute(f"CREATE TABLE {target}.{table} (LIKE {source}.{table} INCLUDING ALL)")
            buffer = io.BytesIO()
            with cur.copy(f"COPY {source}.{table} TO STDOUT") as copy:
                for block in copy:
                    buffer.write(block)
            dumps[table] = buffer.getvalue()
        raw.commit()
        started = time.perf_counter()
        for table in TABLES:
            with cur.copy(f"COPY {target}.{table} FROM STDIN") as copy:
                copy.write(dumps[table])
        raw.commit()
        elapsed = time.perf_counter() - started
        cur.execute(f"DROP SCHEMA {target} CASCADE")
        raw.commit()
        return elapsed
    finally:
        raw.close()


def bench(platform_name: str, orders: int, rounds: int, url: str, admin: Any) -> dict[str, Any]:
    schema = f"bench_import_{uuid.uuid4().hex[:8]}"
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    token, key = "shpat_" + secrets.token_hex(16), Fernet.generate_key().decode()
    vault = Vault((key,))
    sim = subprocess.Popen([sys.executable, str(ROOT / "bench" / "history_sim.py"), "--shop", SHOP, "--platform",
                            platform_name, "--orders", str(orders), "--token", token], stdout=subprocess.PIPE, text=True)
    try:
        upgrade(engine)
        line = (sim.stdout.readline() if sim.stdout else "").split()
        assert line and line[0].startswith("http://"), "the simulator did not start"
        origin, now = line[0], datetime.now(UTC)
        shop = SHOP if platform_name == "shopify" else origin
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO shops (platform, domain, currency, timezone, locale, access_token, "
                              "access_expires_at, api_key, api_secret, installed_at, created_at) VALUES (:p, :d, "
                              "'USD', 'UTC', 'en', :t, :x, :k, :s, :n, :n)"), {
                "p": platform_name, "d": shop, "t": vault.seal(token), "x": now + timedelta(days=1),
                "k": vault.seal(line[1]) if len(line) > 2 else None, "s": vault.seal(line[2]) if len(line) > 2 else None,
                "n": now})
        print(f"{platform_name}: importing {orders:,} orders from {origin} into schema {schema} ...", flush=True)
        result = run_import(url, schema, origin, key, shop)
        rows = counts(engine, schema)
        assert rows["orders"] == orders, f"imported {rows['orders']} orders of {orders}"
        raw = [raw_load(admin, schema) for _ in range(rounds)]
        return {"platform": platform_name, "orders": orders, "rows": rows, "import_seconds": result["seconds"],
                "orders_per_s": orders / result["seconds"], "peak_rss_mb": result["peak_rss_mb"],
                "importer_cpu_seconds": result["cpu_seconds"],
                "raw_copy_seconds": raw, "raw_orders_per_s": orders / min(raw), "summary": result["output"]}
    finally:
        sim.terminate()
        sim.wait(10)
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--platform", choices=["shopify", "woocommerce", "both"], default="both")
    parser.add_argument("--baseline-rounds", type=int, default=2)
    parser.add_argument("--db", default=os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    url = _normalise_db_url(args.db)
    admin = make_engine(url)
    platforms = ["shopify", "woocommerce"] if args.platform == "both" else [args.platform]
    try:
        results = [bench(p, args.orders, args.baseline_rounds, url, admin) for p in platforms]
    finally:
        admin.dispose()
    print(f"\n{'contender':<40}{'seconds':>9}{'orders/s':>11}{'peak MB':>9}{'vs raw':>9}")
    for r in results:
        raw_seconds = min(r["raw_copy_seconds"])
        print(f"{'raw COPY of the same rows (' + r['platform'] + ')':<40}{raw_seconds:>9.2f}{r['raw_orders_per_s']:>11,.0f}")
        label = "encore import, " + ("bulk op JSONL" if r["platform"] == "shopify" else "REST pages")
        print(f"{label:<40}{r['import_seconds']:>9.2f}{r['orders_per_s']:>11,.0f}{r['peak_rss_mb']:>9.0f}"
              f"{r['orders_per_s'] / r['raw_orders_per_s']:>9.1%}")
    print()
    for r in results:
        print(f"{r['platform']}: rows {', '.join(f'{t} {n:,}' for t, n in r['rows'].items())} ({r['summary']})")
        print(f"  the importer used {r['importer_cpu_seconds']:.1f} s of CPU in {r['import_seconds']:.1f} s")
        print(f"  target >= {TARGET_ORDERS_PER_S:,.0f} orders/s: {'PASS' if r['orders_per_s'] >= TARGET_ORDERS_PER_S else 'MISS'}"
              f"; peak memory < {TARGET_PEAK_MB:.0f} MB: {'PASS' if r['peak_rss_mb'] < TARGET_PEAK_MB else 'MISS'}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "history_import.json").write_text(json.dumps({
        "when": datetime.now(UTC).isoformat(), "machine": platform.platform(), "cpus": os.cpu_count(),
        "results": results}, indent=2))


if __name__ == "__main__":
    main()
