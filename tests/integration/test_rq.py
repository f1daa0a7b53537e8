"""Real Redis + RQ: jobs carry ids, a flushed Redis loses nothing, a worker processes what the relay hands it."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy import select, update

from app import inbox
from app.bootstrap import Container
from app.config import Settings
from app.db import models as t
from app.queue import RQQueue
from tests.helpers import add_shop
from tests.samples import shopify as sample

REDIS_URL = os.environ.get("REDIS_URL")
pytestmark = [pytest.mark.redis, pytest.mark.skipif(not REDIS_URL, reason="REDIS_URL is not set (embedded default run)")]


@pytest.fixture
def rq_container(settings: Settings, make_container: Any) -> Iterator[Container]:
    name = f"encore-test-{uuid.uuid4().hex[:8]}"
    assert REDIS_URL
    queue = RQQueue(REDIS_URL, name)
    c: Container = make_container(settings.with_(redis_url=REDIS_URL, queue_name=name), queue=queue)
    yield c
    queue.rq.empty()
    queue.rq.delete(delete_jobs=True)


def work(c: Container) -> None:
    assert isinstance(c.queue, RQQueue)
    SimpleWorker([c.queue.rq], connection=c.queue.redis, serializer=JSONSerializer).work(burst=True)


def statuses(c: Container) -> list[str]:
    with c.sessions() as s:
        return list(s.scalars(select(t.InboxRow.status).order_by(t.InboxRow.id)))


def test_an_rq_worker_processes_inbox_rows_by_id(rq_container: Container) -> None:
    shop_id = add_shop(rq_container)
    row = inbox.store(rq_container, shop_id=shop_id, platform="shopify", topic="orders/create", event_id="a",
                      body=json.dumps(sample.ORDER).encode())
    assert isinstance(rq_container.queue, RQQueue)
    assert rq_container.queue.rq.count == 0  # intake only inserts; the relay hands rows to RQ
    assert inbox.relay(rq_container) == 1
    [job] = rq_container.queue.rq.get_jobs()
    assert (job.func_name, job.args) == ("app.jobs.process_inbox", [row])  # an id, JSON-serialized, not an object
    work(rq_container)
    assert statuses(rq_container) == ["done"]


def test_redis_losing_its_data_loses_no_webhook(rq_container: Container) -> None:
    shop_id = add_shop(rq_container)
    for n, payload in enumerate([sample.ORDER, sample.CUSTOMER]):
        topic = "orders/create" if n == 0 else "customers/update"
        inbox.store(rq_container, shop_id=shop_id, platform="shopify", topic=topic, event_id=str(n),
                    body=json.dumps(payload).encode())
    assert isinstance(rq_container.queue, RQQueue)
    assert inbox.relay(rq_container) == 2
    rq_container.queue.redis.flushdb()  # the jobs are gone, as after a Redis restart without persistence
    work(rq_container)
    assert statuses(rq_container) == ["pending", "pending"]
    assert inbox.relay(rq_container) == 0  # not yet overdue
    assert inbox.relay(rq_container, lost_after_s=0) == 2
    work(rq_container)
    assert statuses(rq_container) == ["done", "done"]
    # Running the same job twice changes nothing.
    rq_container.queue.enqueue("process_inbox", 1)
    work(rq_container)
    with rq_container.sessions() as s:
        assert len(s.scalars(select(t.Order)).all()) == 1


def test_a_backlog_is_not_taken_for_lost_jobs_but_a_flushed_queue_is(rq_container: Container) -> None:
    """Rows waiting behind a long queue were handed over at about the time their jobs were: the queue's oldest
    waiting job tells the relay they are still there. Once Redis has lost them, the queue is empty and they go
    out again."""
    assert isinstance(rq_container.queue, RQQueue)
    shop_id = add_shop(rq_container)
    for n in range(3):
        inbox.store(rq_container, shop_id=shop_id, platform="shopify", topic="orders/create", event_id=f"b{n}",
                    body=json.dumps(dict(sample.ORDER, id=500 + n, fulfillments=[])).encode())
    assert inbox.relay(rq_container) == 3
    five_minutes_ago = datetime.now(UTC) - timedelta(minutes=5)
    with rq_container.sessions() as s, s.begin():  # as if the relay handed them over five minutes ago ...
        s.execute(update(t.InboxRow).values(enqueued_at=five_minutes_ago))
    [job] = rq_container.queue.rq.get_jobs()  # ... in one job still waiting behind a long backlog
    rq_container.queue.redis.hset(f"rq:job:{job.id}", "enqueued_at",
                                  five_minutes_ago.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    head = rq_container.queue.oldest_waiting()[0]
    assert head is not None and abs((head - five_minutes_ago).total_seconds()) < 1
    assert inbox.relay(rq_container, lost_after_s=60) == 0  # waiting, not lost: no second job
    assert rq_container.queue.rq.count == 1
    rq_container.queue.rq.empty()  # Redis loses the queue
    assert rq_container.queue.oldest_waiting() == [None]
    assert inbox.relay(rq_container, lost_after_s=60) == 3
    work(rq_container)
    assert statuses(rq_container) == ["done"] * 3


def test_shard_queues_report_their_own_oldest_job(settings: Settings, make_container: Any) -> None:
    assert REDIS_URL
    name = f"encore-test-{uuid.uuid4().hex[:8]}"
    queue = RQQueue(REDIS_URL, name, shards=2)
    c: Container = make_container(settings.with_(redis_url=REDIS_URL, queue_name=name, queue_shards=2), queue=queue)
    try:
        shops = [add_shop(c, f"shard-{n}.myshopify.com") for n in range(2)]
        inbox.store(c, shop_id=shops[1], platform="shopify", topic="orders/create", event_id="s",
                    body=json.dumps(sample.ORDER).encode())
        assert inbox.relay(c) == 1
        heads = queue.oldest_waiting()
        assert [head is None for head in heads] == [shops[1] % 2 == 1, shops[1] % 2 == 0]
        [job] = queue.queue_for(shops[1]).get_jobs()
        assert job.args == [1]
    finally:
        for q in queue.queues():
            q.empty()
            q.delete(delete_jobs=True)


def test_new_rows_wait_while_their_queue_is_busy_and_then_go_out_together(rq_container: Container) -> None:
    """Under a steady flow each relay round finds a row or two; while the workers are behind, the relay holds new
    rows back, so they leave in fuller jobs (RQ forks once per job)."""
    assert isinstance(rq_container.queue, RQQueue)
    shop_id = add_shop(rq_container)
    for _ in range(inbox.HOLD_BACK_AT):
        rq_container.queue.enqueue("date_rules")  # the workers are behind
    for n in range(5):
        inbox.store(rq_container, shop_id=shop_id, platform="shopify", topic="orders/create", event_id=f"h{n}",
                    body=json.dumps(dict(sample.ORDER, id=700 + n, fulfillments=[])).encode())
    assert inbox.relay(rq_container) == 0  # held back, still pending, not lost
    rq_container.queue.rq.empty()  # the workers caught up
    assert inbox.relay(rq_container) == 5
    [job] = rq_container.queue.rq.get_jobs()
    assert job.args == [1, 2, 3, 4, 5]  # one job, in arrival order
