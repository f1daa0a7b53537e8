"""The job queue: RQ when REDIS_URL is set, an in-process worker thread on the embedded default.

Jobs carry ids only. Rows are handed to the queue by the relay (app/inbox.py), never by the intake, so the
database stays the queue of record: whatever a queue loses, the relay enqueues again.
"""

from __future__ import annotations

import queue as stdqueue
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from app.log import job_ids

log = structlog.get_logger(__name__)


class JobQueue(Protocol):
    def enqueue(self, job: str, *args: int | str) -> None: ...

    def enqueue_many(self, job: str, ids: Sequence[int], shops: Sequence[int] | None = None) -> None:
        """Enqueue one job per id, in order; with `shops` (the shop of each id), on that shop's queue."""
        ...

    def nudge(self) -> None:
        """New rows are waiting: relay them soon (at once in-process; RQ workers poll every 250 ms)."""
        ...

    def backlog(self) -> list[int]:
        """Per inbox queue (shard k at index k), how many jobs wait in it: the relay holds new rows back from a
        queue with `HOLD_BACK_AT` or more, so that they go out later in fuller jobs (one fork for up to 20)."""
        ...

    def oldest_waiting(self) -> list[datetime | None]:
        """Per inbox queue (shard k at index k), when its oldest job still waiting was enqueued; None when it
        waits for nothing. The relay's test for lost jobs: a queue takes jobs first in, first out, so a row handed
        over well before its queue's oldest waiting job is not waiting in it any more."""
        ...


def _resolve(job: str) -> Callable[..., Any]:
    from app import jobs

    fn: Callable[..., Any] = getattr(jobs, job)
    return fn


class InProcessQueue:
    """A worker thread in the web process, relaying on every nudge and sweeping periodically."""

    def __init__(self, sweep_every: float = 15.0, autostart: bool = True) -> None:
        self._q: stdqueue.Queue[tuple[str, tuple[Any, ...], float] | None] = stdqueue.Queue()
        self._sweep_every = sweep_every
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._idle = threading.Condition()
        self._busy = 0
        self._relay_waiting = False
        if autostart:
            self.start()

    def enqueue(self, job: str, *args: int | str) -> None:
        with self._idle:
            self._busy += 1
        self._q.put((job, args, time.time()))

    def enqueue_many(self, job: str, ids: Sequence[int], shops: Sequence[int] | None = None) -> None:
        for row_id in ids:  # one worker thread: every shop's jobs run one at a time, in this order
            self.enqueue(job, row_id)

    def nudge(self) -> None:
        with self._idle:
            if self._relay_waiting:
                return  # a relay is already queued and will see this row too
            self._relay_waiting = True
        self.enqueue("relay")

    def start(self) -> None:
        if self._threads:
            return
        self._threads = [threading.Thread(target=self._work, name="encore-worker", daemon=True),
                         threading.Thread(target=self._sweep_loop, name="encore-sweeper", daemon=True)]
        for t in self._threads:
            t.start()

    def _work(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            job, args, _ = item
            if job == "relay":
                with self._idle:
                    self._relay_waiting = False
            try:
                with job_ids(job):  # RQ's job id has no in-process counterpart: a new id per run
                    try:
                        _resolve(job)(*args)
                    except Exception:
                        log.exception("job_failed", args=args)
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self._sweep_every):
            self.enqueue("sweep")

    def depth(self) -> int:
        """Jobs waiting for the worker thread (the metrics' queue depth)."""
        return self._q.qsize()

    def backlog(self) -> list[int]:
        return [0]  # no fork per job here: nothing to gain by holding rows back

    def oldest_waiting(self) -> list[datetime | None]:
        with self._q.mutex:
            head = next((item for item in self._q.queue if item is not None), None)
        return [None if head is None else datetime.fromtimestamp(head[2], UTC)]

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every enqueued job has run (tests and the demo use this)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def stop(self, wait: float = 0.0) -> None:
        """Stop the worker after the job it is running; with `wait`, give it that long to finish it."""
        self._stop.set()
        self._q.put(None)
        for thread in self._threads if wait else ():
            thread.join(wait)


def shard_queue_name(name: str, shard: int) -> str:
    return f"{name}-shard-{shard}"


class RQQueue:
    """RQ on Redis. With `shards` above 1, inbox rows go to `<name>-shard-<shop id % shards>` and everything else
    to `<name>`: a worker that alone holds a shard (`encore worker --shard N`) runs each of its shops' events
    one at a time, in the order the relay handed them over (the order they arrived)."""

    BATCH = 20  # ids per job: a fork per job is amortized, and a batch still ends in a second or two

    def __init__(self, redis_url: str, name: str, shards: int = 1) -> None:
        from redis import Redis
        from rq import Queue
        from rq.serializers import JSONSerializer

        self.redis = Redis.from_url(redis_url)
        self.rq = Queue(name, connection=self.redis, serializer=JSONSerializer)
        self.shards = max(1, shards)
        self.shard_queues = [self.rq] if self.shards == 1 else [
            Queue(shard_queue_name(name, n), connection=self.redis, serializer=JSONSerializer)
            for n in range(self.shards)]

    def queue_for(self, shop_id: int) -> Any:
        return self.shard_queues[shop_id % self.shards]

    def queues(self, shards: Sequence[int] | None = None) -> list[Any]:
        """What a worker listens to: the given shards' queues (all when None), then the shared queue."""
        if self.shards == 1:
            return [self.rq]
        chosen = range(self.shards) if shards is None else shards
        for n in chosen:
            if not 0 <= n < self.shards:
                raise ValueError(f"shard {n} does not exist: ENCORE_QUEUE_SHARDS is {self.shards} (shards 0 to "
                                 f"{self.shards - 1})")
        return [self.shard_queues[n] for n in chosen] + [self.rq]

    def _job(self, queue: Any, job: str, *args: int | str) -> Any:
        from rq import Retry

        return queue.prepare_data(f"app.jobs.{job}", args=args, retry=Retry(max=3, interval=[1, 5, 30]),
                                  timeout=120, result_ttl=0, failure_ttl=86400)

    def enqueue(self, job: str, *args: int | str) -> None:
        self.rq.enqueue_many([self._job(self.rq, job, *args)])

    def enqueue_many(self, job: str, ids: Sequence[int], shops: Sequence[int] | None = None) -> None:
        """One pipeline for the whole batch the relay hands over: per queue, jobs of up to `BATCH` ids each, in
        order, so each shop's ids keep their order (a work horse is forked per job, not per id)."""
        by_queue: dict[str, tuple[Any, list[int]]] = {}
        for n, row_id in enumerate(ids):
            queue = self.rq if shops is None else self.queue_for(shops[n])
            by_queue.setdefault(queue.name, (queue, []))[1].append(row_id)
        with self.redis.pipeline() as pipe:
            for queue, queued in by_queue.values():
                jobs = [self._job(queue, job, *queued[at:at + self.BATCH]) for at in range(0, len(queued), self.BATCH)]
                queue.enqueue_many(jobs, pipeline=pipe)
            pipe.execute()

    def backlog(self) -> list[int]:
        with self.redis.pipeline() as pipe:
            for queue in self.shard_queues:
                pipe.llen(queue.key)
            return [int(n) for n in pipe.execute()]

    def oldest_waiting(self) -> list[datetime | None]:
        """Two round trips whatever the number of shards: the head of every queue (the next job a worker takes),
        then when each of those jobs was enqueued. A job that ended in between reads as None (nothing waiting)."""
        from rq.job import Job
        from rq.utils import str_to_date

        with self.redis.pipeline(transaction=False) as pipe:
            for queue in self.shard_queues:
                pipe.lindex(queue.key, 0)
            heads = pipe.execute()
        with self.redis.pipeline(transaction=False) as pipe:
            for head in heads:
                if head is not None:
                    pipe.hget(Job.key_for(head.decode() if isinstance(head, bytes) else head), "enqueued_at")
            stamps = iter(pipe.execute())
        found = [None if head is None else next(stamps) for head in heads]
        return [str_to_date(at) if at else None for at in found]

    def depth(self) -> int:
        """Jobs waiting in the Redis queues (the metrics' queue depth)."""
        extra = self.shard_queues if self.shards > 1 else []
        return int(self.rq.count) + sum(int(q.count) for q in extra)

    def nudge(self) -> None:
        """Nothing to do here: the workers' relay polls the database every 250 ms."""
