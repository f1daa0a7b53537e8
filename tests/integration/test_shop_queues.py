"""Queues split by shop: two `encore worker` processes, each holding one shard queue, never process one shop's
events at the same time nor out of the order they arrived, while both work side by side. The control run shows
the check can fail: two workers sharing one queue do run a shop's events at once."""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from rq import Worker
from sqlalchemy import func, select

from app import inbox
from app.bootstrap import Container
from app.db import models as t
from app.queue import RQQueue, shard_queue_name
from tests.conftest import USE_PG
from tests.drills.procs import Proc, encore_env, wait_for
from tests.helpers import add_shop
from tests.samples import shopify as sample

REDIS_URL = os.environ.get("REDIS_URL")
pytestmark = pytest.mark.skipif(not (REDIS_URL and USE_PG), reason="needs REDIS_URL and a PostgreSQL DATABASE_URL")
SHOPS, EVENTS = 4, 24


class Job(NamedTuple):
    worker: str
    shop_id: int
    row_id: int
    outcome: str
    start: int
    end: int


@pytest.fixture
def sharded(settings: Any, make_container: Any) -> Iterator[tuple[Container, RQQueue]]:
    assert REDIS_URL
    name = f"encore-shards-{uuid.uuid4().hex[:8]}"
    queue = RQQueue(REDIS_URL, name, shards=2)
    c: Container = make_container(settings.with_(redis_url=REDIS_URL, queue_name=name, queue_shards=2), queue=queue)
    yield c, queue
    for q in {q.name: q for q in queue.queues()}.values():
        q.empty()
        q.delete(delete_jobs=True)


def run(c: Container, queue: RQQueue, schema: str, tmp_path: Path, workers: list[tuple[str, list[str]]],
        shards: int, shops: int = SHOPS) -> list[Job]:
    """Start the workers, wait until all listen, store `shops` x EVENTS orders interleaved, wait for all of them."""
    shop_ids = [add_shop(c, f"shop-{n}.myshopify.com") for n in range(shops)]
    trace = tmp_path / "trace.log"
    env = encore_env(c, schema, ENCORE_QUEUE_SHARDS=str(shards))
    procs: list[Proc] = []
    with (tmp_path / "workers.log").open("ab") as log:
        try:
            for label, options in workers:
                procs.append(Proc([sys.executable, "-m", "tests.traced_worker", str(trace), label, "0.03", *options],
                                  env, log))
            assert wait_for(lambda: len(Worker.all(connection=queue.redis, queue=queue.rq)) == len(workers), 60), \
                "the workers did not start"
            for n in range(EVENTS):
                for shop_id in shop_ids:
                    order = dict(sample.ORDER, id=10_000 * shop_id + n, fulfillments=[])
                    inbox.store(c, shop_id=shop_id, platform="shopify", topic="orders/create", event_id=f"e{n}",
                                body=json.dumps(order).encode())
            assert wait_for(lambda: done(c) == shops * EVENTS, 120), f"only {done(c)} rows done"
        finally:
            for proc in procs:
                proc.kill9()
    return [Job(w, int(s), int(r), o, int(a), int(b))
            for w, s, r, o, a, b in (line.split() for line in trace.read_text().splitlines())]


def done(c: Container) -> int:
    with c.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(t.InboxRow).where(t.InboxRow.status == "done")) or 0)


def by_shop(jobs: list[Job]) -> dict[int, list[Job]]:
    shops: dict[int, list[Job]] = defaultdict(list)
    for job in sorted(jobs, key=lambda j: j.start):
        shops[job.shop_id].append(job)
    return shops


def overlaps(jobs: list[Job]) -> int:
    return sum(1 for shop in by_shop(jobs).values() for a, b in zip(shop, shop[1:], strict=False) if b.start < a.end)


def test_two_workers_on_separate_shard_queues_run_each_shops_events_one_at_a_time_in_order(
        sharded: tuple[Container, RQQueue], pg_schema: str, tmp_path: Path) -> None:
    c, queue = sharded
    jobs = run(c, queue, pg_schema, tmp_path, [("w0", ["--shard", "0"]), ("w1", ["--shard", "1"])], shards=2)

    assert [job.outcome for job in jobs] == ["done"] * SHOPS * EVENTS  # each row processed once
    for shop_id, shop_jobs in by_shop(jobs).items():
        assert {job.worker for job in shop_jobs} == {f"w{shop_id % 2}"}  # only the worker holding its shard
        for a, b in zip(shop_jobs, shop_jobs[1:], strict=False):
            assert a.end <= b.start, f"shop {shop_id}: rows {a.row_id} and {b.row_id} ran at the same time"
        assert [job.row_id for job in shop_jobs] == sorted(job.row_id for job in shop_jobs)  # in arrival order
    assert {job.worker for job in jobs} == {"w0", "w1"}
    both = [(a, b) for a in jobs for b in jobs if a.worker == "w0" and b.worker == "w1" and a.start < b.end
            and b.start < a.end]
    assert both, "the two workers never worked side by side"
    with c.sessions() as s:
        assert s.scalar(select(func.count()).select_from(t.Order)) == SHOPS * EVENTS
    assert queue.queues([1])[0].name == shard_queue_name(c.settings.queue_name, 1)


def test_control_two_workers_sharing_one_queue_do_run_a_shops_events_at_once(
        sharded: tuple[Container, RQQueue], pg_schema: str, tmp_path: Path) -> None:
    c, queue = sharded
    jobs = run(c, queue, pg_schema, tmp_path, [("w0", []), ("w1", [])], shards=1, shops=1)
    assert done(c) == EVENTS
    assert overlaps(jobs) > 0  # what the shard queues prevent: the check above would catch it


def test_a_worker_refuses_a_shard_that_does_not_exist(sharded: tuple[Container, RQQueue]) -> None:
    _, queue = sharded
    with pytest.raises(ValueError, match="shard 2 does not exist"):
        queue.queues([2])
    assert [q.name for q in queue.queues([1])] == [shard_queue_name(queue.rq.name, 1), queue.rq.name]
