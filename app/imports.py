"""Importing a store's past customers and orders, so that balances, segments and analytics are right from
day one.

An import is a row (`history_imports`) and a background job. The job reads the store's history phase by
phase (customers, then orders) from the platform's HistorySource and applies each page with the core's
ImportHistory command: the same merge rules and the same domain events as the webhooks, so importing while
webhooks arrive, or importing twice, ends in what the webhooks alone would have produced. Each page commits
together with the import's cursor and counts, so a crash loses nothing and the next run resumes after the
last page applied. The run that holds the import is fenced by its attempt number: a worker that lost its
lease (it was too slow, or presumed dead) cannot write over the one that took over.

The job works in slices (`import_slice_s`), then queues its next slice; the sweeper re-queues an import
whose job was lost or whose worker died, like the inbox relay does for webhooks.
"""

from __future__ import annotations

import contextlib
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import and_, or_, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from app.core.commands import ImportHistory
from app.core.messagebus import handle
from app.db.engine import rowcount
from app.db.models import HistoryImport, Shop
from app.db.uow import SqlUnitOfWork
from connectors.base import HISTORY_PHASES, HistoryPage, HistorySource, StaleCursor

if TYPE_CHECKING:
    from app.bootstrap import Container

log = structlog.get_logger(__name__)
LEASE = timedelta(seconds=120)
LOST_AFTER = timedelta(minutes=5)  # queued this long ago and not started: the job was lost
MAX_ATTEMPTS = 8
ACTIVE = ("queued", "running")


class LostClaim(Exception):
    """Another run took this import over (this one's lease ran out); this run stops without writing."""


@dataclass(frozen=True)
class Progress:
    status: str
    phase: str
    customers: int
    orders: int
    total_customers: int | None
    total_orders: int | None
    skipped: int
    error: str | None

    @classmethod
    def of(cls, row: HistoryImport) -> Progress:
        return cls(row.status, row.phase, row.customers, row.orders, row.total_customers, row.total_orders,
                   int((row.cursor or {}).get("skipped", 0)), row.error)


class Prefetch:
    """Reads the next pages from the platform in a thread of its own while this one writes the current page
    to the database: the two waits overlap. At most `depth` pages wait in between, so memory stays bounded."""

    def __init__(self, pages: Generator[HistoryPage, None, None], depth: int = 2) -> None:
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(pages,), name="encore-import-reader", daemon=True)
        self._thread.start()

    def _offer(self, item: tuple[str, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self, pages: Generator[HistoryPage, None, None]) -> None:
        try:
            for page in pages:
                if not self._offer(("page", page)):
                    return
            self._offer(("end", None))
        except BaseException as exc:  # handed to the writing thread, which raises it
            self._offer(("error", exc))
        finally:
            pages.close()

    def __iter__(self) -> Iterator[HistoryPage]:
        while True:
            kind, value = self._queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value

    def close(self) -> None:
        self._stop.set()
        self._thread.join(30)


def start(c: Container, shop_id: int, *, enqueue: bool = True) -> int:
    """Queue an import of the shop's history, unless one is queued or running already; returns its id."""
    with c.sessions() as s, s.begin():
        shop = s.get(Shop, shop_id, with_for_update=True)  # one start at a time per shop
        if shop is None or not shop.installed:
            raise LookupError(f"shop {shop_id} is not installed")
        active = s.scalars(select(HistoryImport).where(
            HistoryImport.shop_id == shop_id, HistoryImport.status.in_(ACTIVE))).first()
        if active is not None:
            return active.id
        row = HistoryImport(shop_id=shop_id, platform=shop.platform, status="queued", phase=HISTORY_PHASES[0],
                            cursor={}, enqueued_at=datetime.now(UTC) if enqueue else None)
        s.add(row)
        s.flush()
        import_id = row.id
    if enqueue:
        c.queue.enqueue("run_import", import_id)
    log.info("import_queued", shop_id=shop_id, import_id=import_id)
    return import_id


def latest(c: Container, shop_id: int) -> Progress | None:
    with c.sessions() as s:
        row = s.scalars(select(HistoryImport).where(HistoryImport.shop_id == shop_id)
                        .order_by(HistoryImport.id.desc()).limit(1)).first()
        return None if row is None else Progress.of(row)


def source_for(c: Container, shop_id: int) -> HistorySource:
    with c.sessions() as s:
        shop = s.get(Shop, shop_id)
        if shop is None:
            raise LookupError(f"shop {shop_id} is gone")
        platform, domain = shop.platform, shop.domain
    if platform == "shopify":
        from app.shops import access_token
        from connectors.shopify.history import ShopifyHistory

        return ShopifyHistory(c.shopify, domain, lambda: access_token(c, shop_id))
    if platform == "woocommerce":
        from app.connections import store_client
        from connectors.woocommerce.history import WooCommerceHistory

        client, _ = store_client(c, shop_id)
        return WooCommerceHistory(client, shop_id)
    raise LookupError(f"no history source for {platform}")


def _claim(c: Container, import_id: int) -> HistoryImport | None:
    now = datetime.now(UTC)
    claimable = or_(HistoryImport.status == "queued",
                    and_(HistoryImport.status == "running", HistoryImport.lease_until < now))
    with c.sessions() as s, s.begin():
        claimed = rowcount(s.execute(update(HistoryImport).where(HistoryImport.id == import_id, claimable).values(
            status="running", lease_until=now + LEASE, attempts=HistoryImport.attempts + 1, updated_at=now)))
        if not claimed:
            return None
        row = s.get(HistoryImport, import_id)
        assert row is not None
        s.expunge(row)
        return row


def _fenced(run: HistoryImport) -> Any:
    return and_(HistoryImport.id == run.id, HistoryImport.attempts == run.attempts, HistoryImport.status == "running")


def _save(s: Session, run: HistoryImport, **values: Any) -> None:
    now = datetime.now(UTC)
    if not rowcount(s.execute(update(HistoryImport).where(_fenced(run)).values(
            **{"lease_until": now + LEASE, "updated_at": now, **values}))):
        raise LostClaim(run.id)


def _batch_settings(s: Session) -> None:
    """How an import's transactions run on PostgreSQL.

    Each batch's statements are planned for the tables as they are now: an import grows them from nothing,
    and a statement the driver prepared early keeps the plan it got then (a scan of a tiny table), which turns
    slow as the table grows, long before statistics catch up (or never, where autovacuum is off).

    And a commit does not wait for its WAL to reach the disk: if the database crashes right after, the last
    batches are lost together with the cursor saved in them, so the import reads them again. Nothing is
    lost that the import does not redo, and the import does not wait on the disk once a batch."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        s.execute(text("SET LOCAL synchronous_commit = off"))


def _analyze(c: Container) -> None:
    """Fresh statistics for the tables an import grows, so every later query plans for their real size."""
    if c.engine.dialect.name == "postgresql":
        with c.engine.connect() as conn:
            conn.execute(text("ANALYZE customers, orders, order_lines, fulfillments, refunds, domain_events"))
            conn.commit()


class _PreviousFailed(Exception):
    """The batch before this one did not commit: this one must not either (its cursor would skip that one)."""


class _Turn:
    """Batches are written two at a time on PostgreSQL, but commit in the order they were read: each waits,
    just before its commit, for the one before it."""

    def __init__(self, before: _Turn | None) -> None:
        self.before, self.done, self.ok = before, threading.Event(), False

    def wait_for_previous(self) -> None:
        if self.before is not None:
            self.before.done.wait()
            if not self.before.ok:
                raise _PreviousFailed()

    def finish(self, ok: bool) -> None:
        self.ok = ok
        self.done.set()


def _plan(phase: str, page: HistoryPage, state: dict[str, Any]) -> dict[str, Any]:
    """What the import row says once this page is in (computed in reading order, before it is written)."""
    skipped = int(state["cursor"].get("skipped", 0)) + len(page.skipped)
    cursor = {**page.cursor, "skipped": skipped}
    counts = {"customers": state["customers"] + page.read} if phase == "customers" else {
        "orders": state["orders"] + page.read}
    state.update(cursor=cursor, **counts)
    totals = {f"total_{phase}": page.total} if page.total is not None else {}
    note = {"error": f"skipped {page.skipped[-1]}"} if page.skipped else {}
    return {"cursor": cursor, **counts, **totals, **note}


def _apply(c: Container, run: HistoryImport, page: HistoryPage, values: dict[str, Any], turn: _Turn) -> None:
    """One page and the import's new cursor and counts, in one transaction; a lost race with a webhook that
    inserted the same order first is retried (the second try finds it and merges)."""
    def progress(s: Session) -> None:
        turn.wait_for_previous()
        _save(s, run, **values)

    try:
        for attempt in range(1, 4):
            try:
                if page.customers or page.orders:
                    handle(ImportHistory(run.shop_id, page.customers, page.orders),
                           SqlUnitOfWork(c.sessions, on_commit=progress, on_begin=_batch_settings), c.clock)
                else:
                    with c.sessions() as s, s.begin():
                        progress(s)
                break
            except (IntegrityError, OperationalError):
                if attempt == 3:
                    raise
                time.sleep(0.05 * attempt * (1 + random.random()))
    except BaseException:
        turn.finish(False)
        raise
    turn.finish(True)
    for skip in page.skipped:
        log.warning("import_item_skipped", shop_id=run.shop_id, import_id=run.id, reason=skip)


def run(c: Container, import_id: int, *, slice_s: float | None = None,
        on_progress: Callable[[Progress], None] | None = None) -> str:
    """Run (or resume) an import: to the end, or for about `slice_s` seconds and then queue the rest.
    Returns what became of it: done, continued, retry, failed, skipped (not claimable now) or lost."""
    run = _claim(c, import_id)
    if run is None:
        return "skipped"
    structlog.contextvars.bind_contextvars(shop_id=run.shop_id, import_id=run.id)
    deadline = None if slice_s is None else time.monotonic() + slice_s
    state: dict[str, Any] = {"cursor": dict(run.cursor or {}), "customers": run.customers, "orders": run.orders}
    phase = run.phase
    depth = 2 if c.engine.dialect.name == "postgresql" else 1  # SQLite takes one writer at a time
    try:
        source = source_for(c, run.shop_id)
        while phase in HISTORY_PHASES:
            with contextlib.closing(Prefetch(source.pages(phase, state["cursor"]))) as pages, \
                    ThreadPoolExecutor(max_workers=depth, thread_name_prefix="encore-import-writer") as writers:
                in_flight: deque[Future[None]] = deque()
                turn: _Turn | None = None
                for page in pages:
                    turn = _Turn(turn)
                    in_flight.append(writers.submit(_apply, c, run, page, _plan(phase, page, state), turn))
                    while len(in_flight) >= depth or (in_flight and in_flight[0].done()):
                        in_flight.popleft().result()
                        if on_progress is not None:
                            on_progress(_progress(c, run.id))
                    if deadline is not None and time.monotonic() > deadline:
                        while in_flight:
                            in_flight.popleft().result()
                        return _continue(c, run)
                while in_flight:
                    in_flight.popleft().result()
                    if on_progress is not None:
                        on_progress(_progress(c, run.id))
            _analyze(c)
            phase = _next_phase(c, run, phase, state)
        with c.sessions() as s, s.begin():
            _save(s, run, status="done", phase="done", lease_until=None, finished_at=datetime.now(UTC), error=None)
            # The shop's analytics are refreshed at the next sweep, on the whole history, not next night.
            s.execute(update(Shop).where(Shop.id == run.shop_id).values(analytics_at=None))
        log.info("import_done", customers=state["customers"], orders=state["orders"])
        return "done"
    except LostClaim:
        log.warning("import_claim_lost")
        return "lost"
    except StaleCursor as exc:  # the platform's result expired: read this phase again, from its start
        log.warning("import_phase_restarted", phase=phase, reason=str(exc))
        with c.sessions() as s, s.begin():
            _save(s, run, cursor={"skipped": state["cursor"].get("skipped", 0)}, **{phase: 0})
        return _continue(c, run)
    except Exception as exc:
        log.exception("import_failed")
        return _retry_later(c, run, f"{type(exc).__name__}: {exc}")
    finally:
        structlog.contextvars.unbind_contextvars("shop_id", "import_id")


def _progress(c: Container, import_id: int) -> Progress:
    with c.sessions() as s:
        row = s.get(HistoryImport, import_id)
        assert row is not None
        return Progress.of(row)


def _next_phase(c: Container, run: HistoryImport, phase: str, state: dict[str, Any]) -> str:
    following = HISTORY_PHASES.index(phase) + 1
    nxt = HISTORY_PHASES[following] if following < len(HISTORY_PHASES) else "done"
    state["cursor"] = {"skipped": state["cursor"].get("skipped", 0)}
    counts = {nxt: 0} if nxt in HISTORY_PHASES else {}  # a phase read from its start counts from zero
    state.update(counts)
    with c.sessions() as s, s.begin():
        _save(s, run, phase=nxt, cursor=state["cursor"], **counts)
    return nxt


def _continue(c: Container, run: HistoryImport) -> str:
    """End this slice: the import goes back to the queue, to resume from its cursor."""
    with c.sessions() as s, s.begin():
        _save(s, run, status="queued", lease_until=None, enqueued_at=datetime.now(UTC))
    c.queue.enqueue("run_import", run.id)
    return "continued"


def _retry_later(c: Container, run: HistoryImport, error: str) -> str:
    now = datetime.now(UTC)
    failed = run.attempts >= MAX_ATTEMPTS
    delay = timedelta(seconds=min(600.0, 5 * 2 ** run.attempts) * (0.5 + random.random()))
    with c.sessions() as s, s.begin():
        changed = rowcount(s.execute(update(HistoryImport).where(_fenced(run)).values(
            status="failed" if failed else "queued", lease_until=None, enqueued_at=None, error=error[:2000],
            next_attempt_at=None if failed else now + delay, updated_at=now,
            finished_at=now if failed else None)))
    return "lost" if not changed else "failed" if failed else "retry"


def retry(c: Container, shop_id: int) -> int | None:
    """Staff asked to try a failed import again: it resumes from its cursor."""
    with c.sessions() as s, s.begin():
        row = s.scalars(select(HistoryImport).where(HistoryImport.shop_id == shop_id)
                        .order_by(HistoryImport.id.desc()).limit(1)).first()
        if row is None or row.status != "failed":
            return None
        row.status, row.attempts, row.error, row.next_attempt_at = "queued", 0, None, None
        row.enqueued_at, row.finished_at = datetime.now(UTC), None
        import_id = row.id
    c.queue.enqueue("run_import", import_id)
    return import_id


def relay(c: Container) -> int:
    """Queue every import that should be running and is not: a retry whose time has come, a job the queue
    lost, a worker that died holding one. Safe from many workers at once."""
    now = datetime.now(UTC)
    due = or_(
        and_(HistoryImport.status == "queued", HistoryImport.enqueued_at.is_(None),
             or_(HistoryImport.next_attempt_at.is_(None), HistoryImport.next_attempt_at <= now)),
        and_(HistoryImport.status == "queued", HistoryImport.enqueued_at < now - LOST_AFTER),
        and_(HistoryImport.status == "running", HistoryImport.lease_until < now),
    )
    with c.sessions() as s, s.begin():
        ids = list(s.scalars(select(HistoryImport.id).where(due).order_by(HistoryImport.id).limit(100)
                             .with_for_update(skip_locked=True)))
        if ids:
            s.execute(update(HistoryImport).where(HistoryImport.id.in_(ids)).values(enqueued_at=now))
    for import_id in ids:
        c.queue.enqueue("run_import", import_id)
    return len(ids)
