"""The inbox: every verified webhook is stored first, then processed exactly once into domain events.

Intake only inserts the row (one autocommitted statement) and nudges the queue. The relay, the one place
that hands rows to the queue, enqueues every due row and marks when it did: new rows, retries whose backoff
is over, rows whose job was lost (enqueued long ago, still pending) and rows of a dead worker (expired lease).
It is the transactional-outbox pattern: the database is the queue of record, Redis carries pointers.
A row moves pending -> processing (leased) -> done | ignored | parked. A row that keeps failing is parked
with its error, visible in the admin and retryable from there.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import and_, false, func, or_, select, true, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from app.core.commands import RedactShop
from app.core.handlers import OrderNotYetKnown
from app.core.messagebus import AFTER_UNINSTALL, handle
from app.db.engine import rowcount
from app.db.models import InboxRow, Shop
from app.db.uow import SqlUnitOfWork
from connectors import REGISTRY
from connectors.base import MalformedPayload

if TYPE_CHECKING:
    from app.bootstrap import Container

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class KnownShop:
    id: int
    installed: bool
    webhook_secret: str | None = None  # for platforms that sign each store's webhooks with its own secret


class ShopDirectory:
    """Which shops exist, by platform and domain, cached for a few seconds for the intake's hot path."""

    def __init__(self, container: Container, ttl: float = 5.0) -> None:
        self.c, self.ttl = container, ttl
        self._cache: dict[tuple[str, str], tuple[float, KnownShop | None]] = {}

    def find(self, platform: str, domain: str) -> KnownShop | None:
        key = (platform, domain)
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit and hit[0] > now:
            return hit[1]
        with self.c.engine.connect() as conn:
            row = conn.execute(
                select(Shop.id, Shop.installed_at, Shop.uninstalled_at, Shop.webhook_secret)
                .where(Shop.platform == platform, Shop.domain == domain)).first()
        shop = None if row is None else KnownShop(row.id, row.installed_at is not None and row.uninstalled_at is None,
                                                  self.c.vault.open(row.webhook_secret))
        self._cache[key] = (now + self.ttl, shop)
        return shop

    def forget(self, platform: str, domain: str) -> None:
        self._cache.pop((platform, domain), None)


_INSERT = (
    "INSERT INTO inbox (shop_id, platform, topic, event_id, body, received_at, status, attempts) "
    "VALUES ({}, {}, {}, {}, {}, {}, 'pending', 0) ON CONFLICT (shop_id, topic, event_id) DO NOTHING RETURNING id"
)
_INSERT_FOR = {"pyformat": _INSERT.format(*["%s"] * 6), "format": _INSERT.format(*["%s"] * 6),
               "qmark": _INSERT.format(*["?"] * 6)}


def store(c: Container, *, shop_id: int, platform: str, topic: str, event_id: str, body: bytes) -> int | None:
    """Store one delivery, committed when this returns; None when the same event was stored before.

    One autocommitted INSERT on the intake engine (no pre-ping, no BEGIN/COMMIT round trips); a connection
    found dropped is replaced and the INSERT tried once more, which is safe since a duplicate does nothing.
    """
    now = datetime.now(UTC)
    params = (shop_id, platform, topic, event_id, body, now.isoformat(sep=" ") if c.settings.is_sqlite else now)
    sql = _INSERT_FOR[c.intake.dialect.paramstyle]
    for attempt in (1, 2):
        conn = c.intake.raw_connection()  # the DBAPI connection itself: this hot path skips SQLAlchemy's layers
        try:
            cursor = conn.cursor()
            cursor.execute(sql, params)
            found = cursor.fetchone()
            conn.commit()
            row_id = None if found is None else found[0]
            break
        except c.intake.dialect.loaded_dbapi.OperationalError:
            conn.invalidate()  # a dropped connection: once more on a fresh one (a duplicate does nothing)
            if attempt == 2:
                raise
        finally:
            conn.close()
    if row_id is None:
        return None
    c.queue.nudge()
    return int(row_id)


def _claim(c: Container, row_id: int, now: datetime) -> InboxRow | None:
    lease = now + timedelta(seconds=c.settings.inbox_lease_s)
    claimable = or_(InboxRow.status == "pending", and_(InboxRow.status == "processing", InboxRow.lease_until < now))
    with c.sessions() as s, s.begin():
        claimed = rowcount(s.execute(
            update(InboxRow).where(InboxRow.id == row_id, claimable)
            .values(status="processing", lease_until=lease, attempts=InboxRow.attempts + 1)))
        if not claimed:
            return None
        return s.get(InboxRow, row_id)


def _finish(s: Session, row_id: int, status: str, error: str | None = None) -> None:
    s.execute(update(InboxRow).where(InboxRow.id == row_id).values(
        status=status, processed_at=datetime.now(UTC), lease_until=None, last_error=error))


def _settle(c: Container, row_id: int, status: str, error: str | None = None) -> None:
    with c.sessions() as s, s.begin():
        _finish(s, row_id, status, error)


def _retry_later(c: Container, row: InboxRow, error: str) -> str:
    if row.attempts >= c.settings.inbox_max_attempts:
        _settle(c, row.id, "parked", error)
        log.warning("inbox_parked", inbox_id=row.id, shop_id=row.shop_id, topic=row.topic, error=error)
        return "parked"
    delay = min(300.0, 2 ** row.attempts) * (0.5 + random.random())
    with c.sessions() as s, s.begin():
        s.execute(update(InboxRow).where(InboxRow.id == row.id).values(
            status="pending", lease_until=None, last_error=error, enqueued_at=None,
            next_attempt_at=datetime.now(UTC) + timedelta(seconds=delay)))
    return "retry"


def process(c: Container, row_id: int) -> str:
    """Process one inbox row; returns what became of it (done, ignored, parked, retry, skipped)."""
    row = _claim(c, row_id, datetime.now(UTC))
    if row is None:
        return "skipped"
    structlog.contextvars.bind_contextvars(shop_id=row.shop_id, platform=row.platform, inbox_id=row.id)
    try:
        with c.sessions() as s:
            shop = s.get(Shop, row.shop_id)
            installed = shop is not None and shop.installed
        if shop is None:
            return "gone"  # the shop was redacted: its rows went with it
        try:
            commands = REGISTRY[row.platform].translate(row.shop_id, row.topic, json.loads(row.body))
        except (MalformedPayload, ValueError, UnicodeDecodeError) as exc:
            _settle(c, row.id, "parked", f"malformed payload: {exc}")
            log.warning("inbox_malformed", topic=row.topic, error=str(exc))
            return "parked"
        if not installed and not all(isinstance(cmd, AFTER_UNINSTALL) for cmd in commands):
            _settle(c, row.id, "ignored", "shop has uninstalled Encore")
            return "ignored"
        for cmd in commands:
            handle(cmd, SqlUnitOfWork(c.sessions, on_commit=lambda s: _finish(s, row.id, "done")), c.clock)
        if any(isinstance(cmd, RedactShop) for cmd in commands):
            c.shops.forget(row.platform, shop.domain)
            return "done"
        with c.sessions() as s, s.begin():  # a handler with nothing to change commits nothing
            s.execute(update(InboxRow).where(InboxRow.id == row.id, InboxRow.status == "processing").values(
                status="done", processed_at=datetime.now(UTC), lease_until=None, last_error=None))
        return "done"
    except OrderNotYetKnown as exc:
        return _retry_later(c, row, f"order {exc} not received yet")
    except (IntegrityError, OperationalError) as exc:
        return _retry_later(c, row, f"database: {exc.__class__.__name__}: {str(exc)[:300]}")
    except Exception as exc:
        log.exception("inbox_failed", topic=row.topic)
        return _retry_later(c, row, f"{exc.__class__.__name__}: {exc}")
    finally:
        structlog.contextvars.unbind_contextvars("shop_id", "platform", "inbox_id")


# The relay's advisory lock ("enco", and the schema: Encores in separate schemas of one database relay apart).
_RELAY_LOCK = 0x656E636F


def relay(c: Container, *, lost_after_s: float | None = None, limit: int = 1000) -> int:
    """Enqueue every due row and note when; returns how many. Safe to run from many workers at once.

    On PostgreSQL one relay runs at a time (a transaction-scoped advisory lock; a relay that finds it taken
    does nothing, the next one 250 ms later takes what is left), and it hands the rows to the queue before it
    commits. So relays never interleave, each shop's rows reach its queue in the order they arrived, and a
    queue that refuses the batch rolls the marking back: the rows stay due."""
    lost_after = timedelta(seconds=c.settings.inbox_lost_after_s if lost_after_s is None else lost_after_s)
    now = datetime.now(UTC)
    with c.sessions() as s, s.begin():
        if c.engine.dialect.name == "postgresql" and not s.scalar(select(
                func.pg_try_advisory_xact_lock(_RELAY_LOCK, func.hashtext(func.current_schema())))):
            return 0  # another relay has it: it reads the queues and hands rows over, this one asks nothing
        ready = or_(InboxRow.next_attempt_at.is_(None), InboxRow.next_attempt_at <= now)
        due = or_(
            and_(InboxRow.status == "pending", InboxRow.enqueued_at.is_(None), ready,  # new, or backoff over ...
                 _not_held_back(c.queue.backlog())),  # ... unless its queue is busy: later, in a fuller job
            and_(InboxRow.status == "pending", _lost(c.queue.oldest_waiting(), now, lost_after)),  # job lost
            and_(InboxRow.status == "processing", InboxRow.lease_until < now),  # its worker died
        )
        rows = s.execute(select(InboxRow.id, InboxRow.shop_id).where(due).order_by(InboxRow.id).limit(limit)
                         .with_for_update(skip_locked=True)).all()
        ids = [row.id for row in rows]
        if ids:
            s.execute(update(InboxRow).where(InboxRow.id.in_(ids)).values(
                status="pending", enqueued_at=now, lease_until=None))
            c.queue.enqueue_many("process_inbox", ids, [row.shop_id for row in rows])
    if ids:
        log.debug("inbox_relayed", count=len(ids))
    return len(ids)


# Jobs waiting in a queue from which the relay holds new rows back. Workers are busy then, and the rows go out a
# moment later in jobs of up to 20 ids instead of one or two: under a steady flow each fork carries more rows.
HOLD_BACK_AT = 4


def _not_held_back(backlog: list[int]) -> ColumnElement[bool]:
    busy = [k for k, waiting in enumerate(backlog) if waiting >= HOLD_BACK_AT]
    if not busy:
        return true()
    if len(backlog) == 1:
        return false()
    return (InboxRow.shop_id % len(backlog)).not_in(busy)


def _lost(heads: list[datetime | None], now: datetime, lost_after: timedelta) -> ColumnElement[bool]:
    """Rows handed to a queue whose job is gone: handed over `lost_after` before the queue's oldest waiting job
    (before now when the queue is empty). A queue is first in, first out, so those rows are not waiting in it any
    more; unclaimed, their job was lost (Redis restarted empty). A long backlog is not a loss: its rows were
    handed over after its head. With shards, each shard's rows are measured against their own queue."""
    cutoffs = [min(now, head) - lost_after if head else now - lost_after for head in heads]
    if len(cutoffs) == 1:
        return InboxRow.enqueued_at < cutoffs[0]
    return or_(*(and_(InboxRow.shop_id % len(cutoffs) == k, InboxRow.enqueued_at < cutoff)
                 for k, cutoff in enumerate(cutoffs)))


def retry_parked(c: Container, shop_id: int, row_id: int) -> bool:
    """Staff asked to try a parked row again."""
    with c.sessions() as s, s.begin():
        changed = rowcount(s.execute(update(InboxRow).where(
            InboxRow.id == row_id, InboxRow.shop_id == shop_id, InboxRow.status == "parked"
        ).values(status="pending", attempts=0, next_attempt_at=None, last_error=None, enqueued_at=None)))
    if changed:
        c.queue.nudge()
    return bool(changed)


def record_unknown_topic(platform: str, topic: str) -> None:
    log.info("webhook_topic_ignored", platform=platform, topic=topic)


