"""CPU per webhook for each contender's WSGI app, called in-process with a gunicorn-like environ (no server,
no network), against the same PostgreSQL schema and Redis db as bench/intake.py. For bench work:

    .venv/bin/python bench/wsgi_cpu.py [-n 3000] [--profile encore]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import intake  # noqa: E402


def environ(body: bytes, signature: str, event_id: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST", "SCRIPT_NAME": "", "PATH_INFO": "/webhooks/shopify", "QUERY_STRING": "",
        "RAW_URI": "/webhooks/shopify", "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000", "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "50000", "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0), "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
        "wsgi.errors": sys.stderr, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json", "HTTP_HOST": "127.0.0.1:8000", "HTTP_X_SHOPIFY_TOPIC": intake.TOPIC,
        "HTTP_X_SHOPIFY_SHOP_DOMAIN": intake.SHOP, "HTTP_X_SHOPIFY_HMAC_SHA256": signature,
        "HTTP_X_SHOPIFY_API_VERSION": "2025-01", "HTTP_X_SHOPIFY_EVENT_ID": event_id,
        "HTTP_X_SHOPIFY_WEBHOOK_ID": event_id,
    }


def run(app: Any, n: int, body: bytes, signature: str, prefix: str) -> float:
    status: list[str] = []

    def start_response(s: str, headers: Any, exc_info: Any = None) -> None:
        status.append(s)

    c0 = time.process_time()
    for i in range(n):
        for _chunk in app(environ(body, signature, f"{prefix}-{i}"), start_response):
            pass
    cpu = (time.process_time() - c0) / n
    assert all(s.startswith("200") for s in status), set(status)
    return cpu


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=3000)
    p.add_argument("--profile", default="")
    p.add_argument("--top", type=int, default=45)
    p.add_argument("--schema", default="encore_bench_cpu")
    a = p.parse_args()
    from cryptography.fernet import Fernet
    from redis import Redis

    url = "postgresql://postgres@127.0.0.1:5432/test"
    db = intake.Database(url, a.schema)
    db.create()
    redis_url = "redis://127.0.0.1:6379/15"
    Redis.from_url(redis_url).flushdb()
    dsn = intake.with_search_path(url, a.schema)
    os.environ.update({
        "ENCORE_ENV": "production", "DATABASE_URL": dsn, "REDIS_URL": redis_url, "ENCORE_QUEUE": intake.QUEUE,
        "SHOPIFY_API_SECRET": intake.API_SECRET, "SHOPIFY_API_KEY": intake.API_KEY, "ENCORE_SECRET_KEY": "x" * 64,
        "ENCORE_ENCRYPTION_KEYS": Fernet.generate_key().decode(), "BENCH_DSN": dsn, "BENCH_SECRET": intake.API_SECRET,
    })
    import bare_app
    import minimal_app

    from wsgi import app as encore

    apps = {"bare": bare_app.app, "minimal": minimal_app.app, "encore": encore}
    body = intake.order_body()
    signature = intake.hmac_b64(body)
    try:
        for name, app in apps.items():
            run(app, 200, body, signature, f"{name}-warm")
            cpu = run(app, a.n, body, signature, f"{name}-run")
            print(f"{name:<8} {cpu * 1e6:7.0f} us CPU per webhook (in-process, one thread)")
        if a.profile:
            prof = cProfile.Profile()
            prof.enable()
            run(apps[a.profile], a.n, body, signature, f"{a.profile}-prof")
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(a.top)
    finally:
        Redis.from_url(redis_url).flushdb()
        encore.extensions["encore"].engine.dispose()
        db.drop()


if __name__ == "__main__":
    main()
