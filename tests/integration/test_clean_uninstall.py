"""shop/redact leaves nothing: a shop with a row in every table (generated from Base.metadata, tests/shop_rows.py)
is redacted through the real webhook endpoint with a valid signature, after which no table holds a row of it, not
even those without a shop_id column, while another shop's rows are all still there; with REDIS_URL set, Redis
holds nothing naming the shop either."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from app import create_app, inbox
from app.bootstrap import Container
from app.config import Settings
from app.queue import RQQueue
from tests.helpers import delivery
from tests.integration.test_compliance import send
from tests.samples import shopify as sample
from tests.shop_rows import build_shop, counts

REDIS_URL = os.environ.get("REDIS_URL")


def redact(client: FlaskClient, c: Container, domain: str) -> None:
    assert send(client, c, "app/uninstalled", {"id": 1}, "u1", shop=domain) == 200
    assert send(client, c, "shop/redact", dict(sample.SHOP_REDACT, shop_domain=domain), "s1", shop=domain) == 200


def test_shop_redact_leaves_no_row_in_any_table(client: FlaskClient, container: Container) -> None:
    gone = build_shop(container, "shop-a.myshopify.com")
    kept = build_shop(container, "shop-b.myshopify.com")
    before = counts(container, gone.shop_id, gone.domain)
    assert min(before.values()) >= 1  # every table had a row of the shop
    kept_before = counts(container, kept.shop_id, kept.domain)
    redact(client, container, gone.domain)
    left = {name: n for name, n in counts(container, gone.shop_id, gone.domain).items() if n}
    assert left == {}, f"rows of the redacted shop remain in {sorted(left)}"
    assert counts(container, kept.shop_id, kept.domain) == kept_before
    assert send(client, container, "orders/create", sample.ORDER, "o9", shop=gone.domain) == 401


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="REDIS_URL is not set (embedded default run)")
def test_redis_holds_nothing_of_a_redacted_shop(settings: Settings, make_container: Any) -> None:
    assert REDIS_URL
    name = f"encore-test-{uuid.uuid4().hex[:8]}"
    queue = RQQueue(REDIS_URL, name)
    c: Container = make_container(settings.with_(redis_url=REDIS_URL, queue_name=name), queue=queue)
    try:
        gone = build_shop(c, "shop-a.myshopify.com")
        client = create_app(c.settings, container=c).test_client()
        for n, topic in enumerate(["orders/create", "app/uninstalled", "shop/redact"]):
            body = dict(sample.SHOP_REDACT, shop_domain=gone.domain) if topic == "shop/redact" else sample.ORDER
            raw, headers = delivery(topic, body, shop=gone.domain, event_id=f"r{n}")
            assert client.post("/webhooks/shopify", data=raw, headers=headers).status_code == 200
            inbox.relay(c, lost_after_s=0)
            SimpleWorker([queue.rq], connection=queue.redis, serializer=JSONSerializer).work(burst=True)
        assert counts(c, gone.shop_id, gone.domain) == dict.fromkeys(counts(c, gone.shop_id, gone.domain), 0)
        needles = [gone.domain.encode(), f"shop_id:{gone.shop_id}".encode(), f'"shop_id": {gone.shop_id}'.encode()]
        for key in queue.redis.scan_iter(count=1000):
            kind = queue.redis.type(key)
            if kind == b"string":
                values = [queue.redis.get(key) or b""]
            elif kind == b"hash":
                values = [v for pair in queue.redis.hgetall(key).items() for v in pair]
            elif kind == b"list":
                values = list(queue.redis.lrange(key, 0, -1))
            elif kind in (b"set", b"zset"):
                values = list(queue.redis.smembers(key) if kind == b"set" else queue.redis.zrange(key, 0, -1))
            else:
                values = []
            for needle in needles:
                assert needle not in key and not any(needle in v for v in values), (key, needle)
    finally:
        queue.rq.empty()
        queue.rq.delete(delete_jobs=True)
