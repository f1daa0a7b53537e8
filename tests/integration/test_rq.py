"""Real Redis + RQ: jobs carry ids, a flushed Redis loses nothing, a worker processes what the relay hands it."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy import select

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
