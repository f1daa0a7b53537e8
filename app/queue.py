"""enqueue(): RQ when REDIS_URL is set, an in-process worker thread on the embedded default.

Jobs carry ids only. The database stays the source of truth: a sweep re-enqueues whatever a lost job
or a dead worker left behind, so a queue may lose anything without losing work.
"""

from __future__ import annotations

import queue as stdqueue
import threading
from collections.abc import Callable
from typing import Any, Protocol

import structlog

log = structlog.get_logger(__name__)


class JobQueue(Protocol):
    def enqueue(self, job: str, *args: int | str) -> None: ...


def _resolve(job: str) -> Callable[..., Any]:
    from app import jobs

    fn: Callable[..., Any] = getattr(jobs, job)
    return fn


class InProcessQueue:
    """A worker thread in the web process, with a periodic sweep; for the embedded default and tests."""

    def __init__(self, sweep_every: float = 15.0, autostart: bool = True) -> None:
        self._q: stdqueue.Queue[tuple[str, tuple[Any, ...]] | None] = stdqueue.Queue()
        self._sweep_every = sweep_every
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._idle = threading.Condition()
        self._busy = 0
        if autostart:
            self.start()

    def enqueue(self, job: str, *args: int | str) -> None:
        with self._idle:
            self._busy += 1
        self._q.put((job, args))

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
            job, args = item
            try:
                _resolve(job)(*args)
            except Exception:
                log.exception("job_failed", job=job, args=args)
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self._sweep_every):
            self.enqueue("sweep")

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every enqueued job has run (tests and the demo use this)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def stop(self) -> None:
        self._stop.set()
        self._q.put(None)


class RQQueue:
    def __init__(self, redis_url: str, name: str) -> None:
        from redis import Redis
        from rq import Queue
        from rq.serializers import JSONSerializer

        self.redis = Redis.from_url(redis_url)
        self.rq = Queue(name, connection=self.redis, serializer=JSONSerializer)

    def enqueue(self, job: str, *args: int | str) -> None:
        from rq import Retry

        self.rq.enqueue(f"app.jobs.{job}", *args, retry=Retry(max=3, interval=[1, 5, 30]), job_timeout=120,
                        result_ttl=0, failure_ttl=86400)
