"""Profile Encore's webhook intake in-process (Flask test client, real PostgreSQL and Redis), for bench work.

    .venv/bin/python bench/profile_intake.py [-n 2000] [--top 40]

Sets up the same schema, shop and body as bench/intake.py, then runs N signed deliveries under cProfile
and prints the per-request wall time and the hottest functions. Nothing is served over the network.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import intake  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=2000)
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--sort", default="cumulative")
    p.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--schema", default="encore_bench_profile")
    a = p.parse_args()

    from cryptography.fernet import Fernet
    from redis import Redis

    db = intake.Database(a.database_url, a.schema)
    db.create()
    redis_url = "redis://127.0.0.1:6379/15"
    Redis.from_url(redis_url).flushdb()
    os.environ.update({
        "ENCORE_ENV": "production", "DATABASE_URL": intake.with_search_path(a.database_url, a.schema),
        "REDIS_URL": redis_url, "SHOPIFY_API_SECRET": intake.API_SECRET, "SHOPIFY_API_KEY": intake.API_KEY,
        "ENCORE_SECRET_KEY": "x" * 64, "ENCORE_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    })
    from app import create_app

    app = create_app()
    client = app.test_client()
    body = intake.order_body()
    headers = {"Content-Type": "application/json", "X-Shopify-Topic": intake.TOPIC,
               "X-Shopify-Shop-Domain": intake.SHOP, "X-Shopify-Hmac-Sha256": intake.hmac_b64(body)}
    try:
        for i in range(50):  # warm caches and the pool
            r = client.post("/webhooks/shopify", data=body, headers={**headers, "X-Shopify-Event-Id": f"w{i}"})
            assert r.status_code == 200, r.status_code
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        for i in range(a.n):
            r = client.post("/webhooks/shopify", data=body, headers={**headers, "X-Shopify-Event-Id": f"p{i}"})
            assert r.status_code == 200, r.status_code
        prof.disable()
        dt = time.perf_counter() - t0
        print(f"{a.n} deliveries, {dt / a.n * 1000:.3f} ms each under the profiler")
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(a.n):
            client.post("/webhooks/shopify", data=body, headers={**headers, "X-Shopify-Event-Id": f"q{i}"})
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        print(f"{a.n} deliveries, {dt / a.n * 1000:.3f} ms each without it, {dc / a.n * 1000:.3f} ms CPU in this process")
        pstats.Stats(prof).sort_stats(a.sort).print_stats(a.top)
    finally:
        Redis.from_url(redis_url).flushdb()
        app.extensions["encore"].engine.dispose()
        db.drop()


if __name__ == "__main__":
    main()
