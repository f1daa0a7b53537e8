"""History import benchmark: 100,000 past orders of a simulated Shopify store, imported through a bulk
operation, against a raw bulk load of the very same rows, measured in the same run.

    .venv/bin/python bench/history_import.py [--orders 100000] [--baseline-rounds 2]

- The store simulator runs in a process of its own (bench/history_sim.py) and generates the orders as the bulk
  result is read (a mix of paid, fulfilled, delivered, refunded and cancelled orders, 1-2 lines each, ~90,000
  customers).
- The importer is Encore's own command, `encore import <shop>`, in its own process against PostgreSQL (a fresh
  schema): it streams the JSONL, translates, and applies 500 orders a transaction with the webhooks' merge rules
  and domain events. Its wall time gives orders/s; its peak resident memory comes from the kernel (wait4).
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


def run_import(url: str, schema: str, origin: str, key: str) -> dict[str, Any]:
    env = {**os.environ, "DATABASE_URL": f"{url}?options={quote(f'-csearch_path={schema}')}",
           "ENCORE_ENCRYPTION_KEYS": key, "ENCORE_SECRET_KEY": "bench", "ENCORE_ENV": "development",
           "SHOPIFY_SHOP_ORIGIN": f"{origin}/shops/{{shop}}", "SHOPIFY_API_KEY": "bench-api-key",
           "SHOPIFY_API_SECRET": "bench-api-secret", "ENCORE_LOG_LEVEL": "WARNING"}
    env.pop("REDIS_URL", None)
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "app.cli", "import", SHOP], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    out = (child.stdout.read() if child.stdout else b"").decode()
    err = (child.stderr.read() if child.stderr else b"").decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"encore import failed:\n{out}\n{err[-3000:]}")
    return {"seconds": elapsed, "peak_rss_mb": usage.ru_maxrss / 1024, "output": out.strip().splitlines()[-1]}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--baseline-rounds", type=int, default=2)
    parser.add_argument("--db", default=os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    url = _normalise_db_url(args.db)
    schema = f"bench_import_{uuid.uuid4().hex[:8]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    token, key = "shpat_" + secrets.token_hex(16), Fernet.generate_key().decode()
    sim = subprocess.Popen([sys.executable, str(ROOT / "bench" / "history_sim.py"), "--shop", SHOP,
                            "--orders", str(args.orders), "--token", token], stdout=subprocess.PIPE, text=True)
    try:
        upgrade(engine)
        origin = (sim.stdout.readline() if sim.stdout else "").strip()
        assert origin.startswith("http://"), "the simulator did not start"
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO shops (platform, domain, currency, timezone, locale, access_token, "
                              "access_expires_at, installed_at, created_at) VALUES ('shopify', :d, 'USD', 'UTC', "
                              "'en', :t, :x, :n, :n)"), {"d": SHOP, "t": Vault((key,)).seal(token),
                                                         "x": datetime.now(UTC) + timedelta(days=1),
                                                         "n": datetime.now(UTC)})
        print(f"importing {args.orders:,} orders from {origin} into schema {schema} ...", flush=True)
        result = run_import(url, schema, origin, key)
        rows = counts(engine, schema)
        assert rows["orders"] == args.orders, f"imported {rows['orders']} orders of {args.orders}"
        rate = args.orders / result["seconds"]
        baseline = [raw_load(admin, schema) for _ in range(args.baseline_rounds)]
        raw_seconds = min(baseline)
        raw_rate = args.orders / raw_seconds
        print(f"\nrows written: {', '.join(f'{t} {n:,}' for t, n in rows.items())}")
        print(f"{'contender':<34}{'seconds':>10}{'orders/s':>12}{'peak MB':>10}")
        print(f"{'raw COPY of the same rows':<34}{raw_seconds:>10.2f}{raw_rate:>12,.0f}{'':>10}")
        print(f"{'encore import (bulk op, JSONL)':<34}{result['seconds']:>10.2f}{rate:>12,.0f}{result['peak_rss_mb']:>10.0f}")
        print(f"\nimport / raw load: {rate / raw_rate:.1%}   ({result['output']})")
        ok_rate, ok_mem = rate >= TARGET_ORDERS_PER_S, result["peak_rss_mb"] < TARGET_PEAK_MB
        print(f"target >= {TARGET_ORDERS_PER_S:,.0f} orders/s: {'PASS' if ok_rate else 'MISS'}")
        print(f"target peak memory < {TARGET_PEAK_MB:.0f} MB: {'PASS' if ok_mem else 'MISS'}")
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "history_import.json").write_text(json.dumps({
            "when": datetime.now(UTC).isoformat(), "machine": platform.platform(), "cpus": os.cpu_count(),
            "orders": args.orders, "rows": rows, "import_seconds": result["seconds"], "orders_per_s": rate,
            "peak_rss_mb": result["peak_rss_mb"], "raw_copy_seconds": baseline, "raw_orders_per_s": raw_rate,
            "ratio": rate / raw_rate}, indent=2))
    finally:
        sim.terminate()
        sim.wait(10)
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


if __name__ == "__main__":
    main()
