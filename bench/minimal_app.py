"""Reference 2 for bench/intake.py: the least work that is still correct.

A minimal Flask app that checks the size, verifies the Shopify HMAC in constant time, and stores the delivery
with ONE SQL statement (resolve the installed shop + INSERT ... ON CONFLICT DO NOTHING into a table shaped like
Encore's inbox, same indexes and foreign key) on an autocommit psycopg connection reused per worker thread, so
the row is committed before the 200. No queue, no ORM, no logging.

Configured by the environment: BENCH_DSN (a libpq conninfo/URL, search_path included), BENCH_SECRET.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading

import psycopg
from flask import Flask, Response, request

MAX_BYTES = 1_000_000
SECRET = os.environ["BENCH_SECRET"].encode()
DSN = os.environ["BENCH_DSN"]

STORE = (
    "WITH s AS (SELECT id FROM shops WHERE platform = 'shopify' AND domain = %(shop)s "
    "           AND installed_at IS NOT NULL AND uninstalled_at IS NULL), "
    "ins AS (INSERT INTO ref_inbox (shop_id, platform, topic, event_id, body, received_at, status, attempts) "
    "        SELECT s.id, 'shopify', %(topic)s, %(event_id)s, %(body)s, now(), 'pending', 0 FROM s "
    "        ON CONFLICT (shop_id, topic, event_id) DO NOTHING RETURNING id) "
    "SELECT (SELECT id FROM s), (SELECT id FROM ins)"
)

app = Flask(__name__)
_local = threading.local()


def _conn() -> psycopg.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = _local.conn = psycopg.connect(DSN, autocommit=True)
    return conn


@app.post("/webhooks/shopify")
def receive() -> Response:
    if (request.content_length or 0) > MAX_BYTES:
        return Response("body too large", 413)
    body = request.get_data(cache=False)
    given = (request.headers.get("X-Shopify-Hmac-Sha256") or "").encode()
    expected = base64.b64encode(hmac.new(SECRET, body, hashlib.sha256).digest())
    if not hmac.compare_digest(expected, given):
        return Response("invalid signature", 401)
    shop, topic = request.headers.get("X-Shopify-Shop-Domain"), request.headers.get("X-Shopify-Topic")
    event_id = request.headers.get("X-Shopify-Event-Id")
    if not shop or not topic or not event_id:
        return Response("missing headers", 400)
    row = _conn().execute(STORE, {"shop": shop, "topic": topic, "event_id": event_id[:128], "body": body}).fetchone()
    if row is None or row[0] is None:
        return Response("unknown shop", 401)
    return Response("", 200)


@app.get("/healthz")
def healthz() -> Response:
    return Response("ok", 200)
