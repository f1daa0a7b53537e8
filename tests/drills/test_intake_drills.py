"""Fault drills for webhook intake, against real processes and real services: the web tier (gunicorn) killed
with SIGKILL mid-stream, `encore worker` killed with SIGKILL while it processes, Redis restarted with its data
lost, PostgreSQL restarted (crash-like, and stopped for a few seconds). A Shopify-like sender re-sends every
delivery until it gets a 2xx, as Shopify does. After each: every webhook is in the inbox once and processed once
(one order, one OrderPlaced event), counted from the database; nothing answered 2xx without being stored.

The relay hands a dead worker's rows over again when their lease runs out, and the jobs Redis lost when their rows
were handed over long ago and are still pending; the worker and Redis drills shorten those two delays
(ENCORE_INBOX_LEASE, ENCORE_INBOX_LOST_AFTER; 60 s each by default) so as not to wait minutes."""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app import inbox
from app.bootstrap import Container, bootstrap
from app.config import Settings
from app.db import models as t
from app.migrate import upgrade
from app.queue import RQQueue
from tests.conftest import USE_PG
from tests.drills.procs import Proc, Web, encore_env, start_web, start_worker, wait_for
from tests.drills.report import report
from tests.drills.sender import Delivery, Sender, describe, order_deliveries
from tests.drills.services import PrivatePostgres, PrivateRedis, postgres_tools
from tests.helpers import add_shop

REDIS_URL = os.environ.get("REDIS_URL")
pytestmark = pytest.mark.skipif(not (REDIS_URL and USE_PG),
                                reason="fault drills need real services: set REDIS_URL and a PostgreSQL DATABASE_URL")

SHOP = "shop-a.myshopify.com"
STALL_S = 90.0  # a drill gives up when no row got done for this long (the default lease is 60 s)
SETTLE_MAX_S = 600.0


# --- what the database holds ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    items: int
    inbox_rows: Counter[str]  # event id -> rows
    statuses: Counter[str]
    orders: Counter[str]  # external id -> rows
    placed: Counter[str]  # order id -> OrderPlaced events
    reprocessed: int  # rows claimed more than once (a claim that died with its worker, then another)

    @classmethod
    def read(cls, c: Container, shop_id: int, deliveries: list[Delivery], order_ids: list[str]) -> Outcome:
        with c.sessions() as s:
            rows = s.execute(select(t.InboxRow.event_id, t.InboxRow.status, t.InboxRow.attempts)
                             .where(t.InboxRow.shop_id == shop_id)).all()
            orders = s.scalars(select(t.Order.external_id).where(t.Order.shop_id == shop_id)).all()
            placed = s.scalars(select(t.EventRow.payload).where(t.EventRow.shop_id == shop_id,
                                                                 t.EventRow.type == "OrderPlaced")).all()
        return cls(items=len(deliveries), inbox_rows=Counter(r.event_id for r in rows),
                   statuses=Counter(r.status for r in rows), orders=Counter(orders),
                   placed=Counter(str(p["order_id"]) for p in placed), reprocessed=sum(r.attempts > 1 for r in rows))

    def finished(self) -> bool:
        return self.statuses.get("done", 0) >= self.items

    def lost(self, deliveries: list[Delivery], order_ids: list[str]) -> int:
        """Deliveries without their inbox row, their order or their OrderPlaced event."""
        return sum(1 for d, oid in zip(deliveries, order_ids, strict=True)
                   if not (self.inbox_rows[d.event_id] and self.orders[oid] and self.placed[oid]))

    def duplicated(self) -> int:
        """Extra rows beyond one: inbox rows per event id, orders per external id, OrderPlaced per order."""
        return sum(max(0, n - 1) for counts in (self.inbox_rows, self.orders, self.placed) for n in counts.values())


def order_ids(deliveries: list[Delivery], first_id: int = 1000) -> list[str]:
    return [str(first_id + n) for n in range(len(deliveries))]


def acked_not_stored(c: Container, shop_id: int, deliveries: list[Delivery]) -> int:
    """Deliveries the web answered 2xx that have no inbox row: the one way a webhook is lost for good."""
    with c.sessions() as s:
        stored = set(s.scalars(select(t.InboxRow.event_id).where(t.InboxRow.shop_id == shop_id)))
    return sum(1 for d in deliveries if d.delivered and d.event_id not in stored)


def count(c: Container, shop_id: int, status: str) -> int:
    with c.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(t.InboxRow).where(
            t.InboxRow.shop_id == shop_id, t.InboxRow.status == status)) or 0)


def ids_by_state(c: Container, shop_id: int) -> tuple[set[str], set[str]]:
    """(claimed, enqueued): rows a worker holds under a lease, and rows handed to the queue but not claimed."""
    with c.sessions() as s:
        rows = s.execute(select(t.InboxRow.event_id, t.InboxRow.status, t.InboxRow.enqueued_at)
                         .where(t.InboxRow.shop_id == shop_id, t.InboxRow.status.in_(("processing", "pending")))).all()
    return ({r.event_id for r in rows if r.status == "processing"},
            {r.event_id for r in rows if r.status == "pending" and r.enqueued_at is not None})


def done_at_least(c: Container, shop_id: int, n: int) -> bool:
    return count(c, shop_id, "done") >= n


def holds_new_row(c: Container, shop_id: int, known: frozenset[str]) -> bool:
    """A worker holds a row now that it did not hold at an earlier kill."""
    return bool(ids_by_state(c, shop_id)[0] - known)


def done_ids(c: Container, shop_id: int) -> set[str]:
    with c.sessions() as s:
        return set(s.scalars(select(t.InboxRow.event_id).where(t.InboxRow.shop_id == shop_id,
                                                                  t.InboxRow.status == "done")))


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --- the processes ----------------------------------------------------------------------------------------------


class Stack:
    """The web tier and one `encore worker`, both real processes, restartable after a SIGKILL."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.web_log = (logs / "web.log").open("ab")
        self.worker_log = (logs / "worker.log").open("ab")
        self.web: Web | None = None
        self.worker: Proc | None = None

    def start(self) -> Stack:
        self.web = start_web(self.env, self.web_log, workers=1, threads=8)  # one worker boots faster on 2 cores
        self.worker = start_worker(self.env, self.worker_log)
        return self

    @property
    def url(self) -> str:
        assert self.web
        return self.web.url

    def kill_web(self) -> None:
        assert self.web
        self.web.kill9()

    def restart_web(self) -> None:
        assert self.web
        web = self.web.restart()  # the same argv: the same port
        assert isinstance(web, Web)
        self.web = web

    def kill_worker(self) -> int:
        """SIGKILL `encore worker` and its work horses; returns how many horses died with it."""
        assert self.worker
        return self.worker.kill9()

    def restart_worker(self) -> None:
        assert self.worker
        self.worker = self.worker.restart()

    def stop(self) -> None:
        for proc in (self.web, self.worker):
            if proc is not None:
                proc.kill9()
        self.web_log.close()
        self.worker_log.close()

    def logs_tail(self) -> str:
        return f"--- web.log\n{tail(self.logs / 'web.log')}\n--- worker.log\n{tail(self.logs / 'worker.log')}"


@contextmanager
def stack(c: Container, schema: str | None, tmp_path: Path, **env: Any) -> Iterator[Stack]:
    s = Stack(encore_env(c, schema, **env), tmp_path)
    try:
        yield s.start()
    finally:
        s.stop()


def unique_queue() -> str:
    return f"encore-drill-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def rq_container(settings: Settings, make_container: Any) -> Iterator[Container]:
    """The test's view of the shared PostgreSQL schema, with RQ on the shared Redis under a queue of its own."""
    assert REDIS_URL
    name = unique_queue()
    c: Container = make_container(settings.with_(redis_url=REDIS_URL, queue_name=name), queue=RQQueue(REDIS_URL, name))
    yield c
    assert isinstance(c.queue, RQQueue)
    c.queue.rq.empty()  # type: ignore[no-untyped-call]


def settle(c: Container, shop_id: int, deliveries: list[Delivery], oids: list[str]) -> Outcome:
    """Wait until every row is done, as long as the work moves: this 2-core machine is often shared, so there is
    no fixed deadline, only a limit on how long nothing may finish (longer than any recovery delay in use)."""
    last, last_change, hard_stop = -1, time.monotonic(), time.monotonic() + SETTLE_MAX_S
    while time.monotonic() < hard_stop:
        outcome = Outcome.read(c, shop_id, deliveries, oids)
        if outcome.finished():
            return outcome
        done = outcome.statuses.get("done", 0)
        if done != last:
            last, last_change = done, time.monotonic()
        elif time.monotonic() - last_change > STALL_S:
            break
        time.sleep(0.5)
    return Outcome.read(c, shop_id, deliveries, oids)


def check(drill: str, did: str, outcome: Outcome, deliveries: list[Delivery], oids: list[str], *, recovered: int,
          acked_missing: int, all_delivered: bool, logs: str, **details: int | float | str) -> None:
    lost, duplicated = outcome.lost(deliveries, oids), outcome.duplicated()
    report(drill, did, items=outcome.items, lost=lost, duplicated=duplicated, recovered=recovered,
           acked_not_stored=acked_missing, reprocessed=outcome.reprocessed,
           statuses=describe(outcome.statuses), **details)
    assert all_delivered, f"the sender gave up on {sum(not d.delivered for d in deliveries)} deliveries\n{logs}"
    assert acked_missing == 0, "a delivery answered 2xx has no inbox row: lost for good"
    assert lost == 0, f"lost {lost}: {describe(outcome.statuses)}\n{logs}"
    assert duplicated == 0
    assert outcome.statuses == Counter({"done": outcome.items}), f"not all processed: {describe(outcome.statuses)}"


# --- drill 1: kill -9 web during intake -----------------------------------------------------------------------


def test_kill_web_during_intake(rq_container: Container, pg_schema: str, tmp_path: Path) -> None:
    c = rq_container
    shop_id = add_shop(c, SHOP)
    deliveries = order_deliveries(300, prefix="web")
    oids = order_ids(deliveries)
    started = time.monotonic()
    with stack(c, pg_schema, tmp_path) as s:
        sender = Sender(s.url, deliveries, threads=8, rate=40).start()
        for at in (60, 140, 220):  # three SIGKILLs of the whole web tier, mid-stream
            assert sender.wait_sent(at), "the sender stalled"
            s.kill_web()
            time.sleep(0.5)  # the sender meets a closed port meanwhile
            s.restart_web()  # the same port; requests wait in its backlog while it boots
        all_delivered = sender.join()
        outcome = settle(c, shop_id, deliveries, oids)
        acked_missing = acked_not_stored(c, shop_id, deliveries)
        logs = s.logs_tail()
    recovered = sender.recovered()
    check("kill -9 web during webhook intake",
          f"posted {len(deliveries)} orders/create from 8 threads; SIGKILLed gunicorn (master and worker) 3 times "
          "mid-stream, restarting it on the same port", outcome, deliveries, oids, recovered=len(recovered),
          acked_missing=acked_missing, all_delivered=all_delivered, logs=logs,
          failed_attempts=sum(len(d.failures) for d in deliveries), answers=describe(sender.outcomes()),
          took_s=round(time.monotonic() - started))
    assert recovered, "no delivery failed: the kills did not land mid-stream"


# --- drill 2: kill -9 worker while it processes ---------------------------------------------------------------


def test_kill_worker_during_processing(rq_container: Container, pg_schema: str, tmp_path: Path) -> None:
    c = rq_container
    shop_id = add_shop(c, SHOP)
    deliveries = order_deliveries(200, prefix="worker")
    oids = order_ids(deliveries)
    for d in deliveries:  # stored as intake stores them; the worker has all of them to do
        inbox.store(c, shop_id=shop_id, platform="shopify", topic=d.topic, event_id=d.event_id, body=d.body)
        d.delivered = True
    claimed: set[str] = set()  # rows a worker held (claimed, leased) when it died
    enqueued: set[str] = set()  # rows handed to RQ, not yet claimed, when it died
    kills = horses = 0
    started = time.monotonic()
    # A dead worker's row comes back when its lease runs out: 5 s here instead of 60 (one worker, jobs of well
    # under a second, so no live job outlasts it).
    with stack(c, pg_schema, tmp_path, ENCORE_INBOX_LEASE="5", ENCORE_INBOX_LOST_AFTER="20") as s:
        for at in (20, 50, 80):  # three kills, each in the middle of a job
            assert wait_for(partial(done_at_least, c, shop_id, at), timeout=90), s.logs_tail()
            for _ in range(10):  # strike while a row is held: its job is running in the work horse
                wait_for(partial(holds_new_row, c, shop_id, frozenset(claimed)), timeout=10, every=0.005)
                horses += s.kill_worker()
                kills += 1
                held, queued = ids_by_state(c, shop_id)
                enqueued |= queued
                landed = bool(held - claimed)
                claimed |= held
                s.restart_worker()
                if landed:
                    break
        outcome = settle(c, shop_id, deliveries, oids)
        logs = s.logs_tail()
    finished = done_ids(c, shop_id)
    check("kill -9 worker during processing",
          f"stored {len(deliveries)} orders/create; SIGKILLed `encore worker` with its work horse {kills} times, "
          f"{len(claimed)} of them in the middle of a job, restarting it each time", outcome, deliveries, oids,
          recovered=len((claimed | enqueued) & finished), acked_missing=0, all_delivered=True, logs=logs,
          claimed_at_kill=len(claimed), enqueued_at_kill=len(enqueued), horses_killed=horses,
          took_s=round(time.monotonic() - started))
    assert len(claimed) >= 3, "the kills did not land in the middle of a job"
    assert claimed <= finished


# --- drill 3: Redis restarted with its data lost ---------------------------------------------------------------


def test_redis_restarted_empty(settings: Settings, make_container: Any, pg_schema: str, tmp_path: Path) -> None:
    with (tmp_path / "redis.log").open("ab") as redis_log:
        redis = PrivateRedis(redis_log)
        name = unique_queue()
        c: Container = make_container(settings.with_(redis_url=redis.url, queue_name=name),
                                      queue=RQQueue(redis.url, name))
        shop_id = add_shop(c, SHOP)
        started = time.monotonic()
        deliveries = order_deliveries(150, prefix="redis")
        oids = order_ids(deliveries)
        try:
            # A job Redis lost is handed over again once its row has been pending this long after the relay
            # handed it over: 20 s here instead of 60. Not much less: every row still waiting in the queue for that
            # long is handed over once more (harmless, the claim is atomic, but each extra job costs a fork).
            with stack(c, pg_schema, tmp_path, redis_url=redis.url, queue=name, ENCORE_INBOX_LOST_AFTER="20") as s:
                sender = Sender(s.url, deliveries, threads=6, rate=40).start()
                assert sender.wait_sent(80), "the sender stalled"
                # strike once the worker is at work and a backlog of jobs waits in Redis
                assert wait_for(lambda: count(c, shop_id, "done") >= 20, timeout=90), s.logs_tail()
                keys_before = redis.keys()
                redis.kill9()  # its data goes with it: no RDB, no AOF
                in_redis_only = ids_by_state(c, shop_id)[1]  # handed to Redis, not claimed: gone with it
                time.sleep(2)
                in_redis_only |= ids_by_state(c, shop_id)[1]  # the relay marked them enqueued; Redis never got them
                redis.start()  # a new, empty server on the same port
                keys_after = redis.keys()
                all_delivered = sender.join()
                outcome = settle(c, shop_id, deliveries, oids)
                acked_missing = acked_not_stored(c, shop_id, deliveries)
                worker_alive = bool(s.worker and s.worker.alive())
                logs = s.logs_tail()
        finally:
            redis.stop()
    finished = done_ids(c, shop_id)
    check("Redis restarted with its data lost",
          f"posted {len(deliveries)} orders/create; mid-stream SIGKILLed a private redis-server (no persistence), "
          "started an empty one on the same port 2 s later", outcome, deliveries, oids,
          recovered=len(in_redis_only & finished), acked_missing=acked_missing, all_delivered=all_delivered,
          logs=logs, jobs_lost_with_redis=len(in_redis_only), redis_keys_before=keys_before,
          redis_keys_after_restart=keys_after, worker_survived=str(worker_alive),
          took_s=round(time.monotonic() - started))
    assert in_redis_only, "Redis held no job when it died: the restart lost nothing to recover"


# --- drill 4: PostgreSQL restarted ---------------------------------------------------------------------------------


@contextmanager
def private_cluster_container(settings: Settings, pg: PrivatePostgres) -> Iterator[Container]:
    assert REDIS_URL
    name = unique_queue()
    url = pg.url.replace("postgresql://", "postgresql+psycopg://")
    c = bootstrap(settings.with_(database_url=url, redis_url=REDIS_URL, queue_name=name), queue=RQQueue(REDIS_URL, name))
    try:
        upgrade(c.engine)
        yield c
    finally:
        assert isinstance(c.queue, RQQueue)
        c.queue.rq.empty()  # type: ignore[no-untyped-call]
        c.engine.dispose()
        c.intake.dispose()


@pytest.mark.skipif(postgres_tools() is not None, reason=f"no private PostgreSQL cluster: {postgres_tools()}")
def test_postgres_restarted(settings: Settings, tmp_path: Path) -> None:
    started = time.monotonic()
    pg = PrivatePostgres()
    try:
        with private_cluster_container(settings, pg) as c:
            shop_id = add_shop(c, SHOP)
            deliveries = order_deliveries(150, prefix="pg")
            oids = order_ids(deliveries)
            # A row a worker held when PostgreSQL went away comes back when its lease ends: 10 s here, not 60.
            with stack(c, None, tmp_path, database_url=pg.url, ENCORE_INBOX_LEASE="10") as s:
                sender = Sender(s.url, deliveries, threads=6, rate=30).start()
                assert sender.wait_sent(60), "the sender stalled"
                pg.crash_restart()  # pg_ctl restart -m immediate: backends killed, crash recovery
                assert sender.wait_sent(130), "the sender stalled after the crash restart"
                pg.stop("fast")
                down_from = time.monotonic()
                time.sleep(4)
                down_until = time.monotonic()
                pg.start()
                all_delivered = sender.join()
                outcome = settle(c, shop_id, deliveries, oids)
                acked_missing = acked_not_stored(c, shop_id, deliveries)
                logs = s.logs_tail()
            while_down = sender.outcomes_between(down_from + 0.5, down_until)  # answered once PG was surely down
    finally:
        pg.destroy()
    check("PostgreSQL restarted",
          f"posted {len(deliveries)} orders/create to web + worker on a private cluster; mid-stream "
          "`pg_ctl restart -m immediate`, later stopped it for 4 s and started it again", outcome, deliveries, oids,
          recovered=len(sender.recovered()), acked_missing=acked_missing, all_delivered=all_delivered, logs=logs,
          answers_while_down=describe(while_down), answers=describe(sender.outcomes()),
          took_s=round(time.monotonic() - started))
    assert while_down, "nothing was posted while PostgreSQL was down"
    assert not any(k.startswith("2") for k in while_down), f"2xx while PostgreSQL was down: {describe(while_down)}"
