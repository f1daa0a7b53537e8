"""What a host needs to run Encore: probes, a request id on every log line, and metrics it can scrape.

- `/healthz` says the process answers (liveness: restart me if not); it touches nothing else.
- `/readyz` says this process can do its work (readiness: send me traffic): the database answers, its schema is
  at the newest migration, and Redis answers when jobs go there. Each check has a deadline, and the answer names
  what failed without a connection string or an error text (those go to the log).
- `/metrics` reads the figures from the database at scrape time: the database is the source of truth, so the
  numbers are the same whichever of many web processes answers, and nothing is lost when one restarts. A handful
  of aggregate queries on indexed columns, no per-row Python. Served only to a bearer of ENCORE_METRICS_TOKEN.
- Every request gets an id (the caller's `X-Request-Id` when it is a sane token, else a new one), bound for
  every line logged while it runs and returned in the response's `X-Request-Id`.
"""

from __future__ import annotations

import functools
import hmac
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from flask import Blueprint, Response, abort, current_app, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select, text

from app import log
from app.bootstrap import Container
from app.db.models import AnalyticsRun, FeedbackItem, HistoryImport, InboxRow, Message

bp = Blueprint("ops", __name__)
logger = structlog.get_logger(__name__)

REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+=/-]{0,127}")  # UUIDs, hex, trace ids; no spaces or quotes
INBOX_STATUSES = ("pending", "processing", "done", "parked", "ignored")
MESSAGE_STATUSES = ("waiting", "pending", "claimed", "sending", "sent", "skipped", "failed", "parked", "cancelled",
                    "held_out")
_checks = ThreadPoolExecutor(max_workers=4, thread_name_prefix="encore-readyz")


def _c() -> Container:
    c: Container = current_app.extensions["encore"]
    return c


@bp.before_app_request
def bind_request_id() -> None:
    given = request.headers.get("X-Request-Id", "")
    g.request_id = given if REQUEST_ID.fullmatch(given) else log.new_id()
    structlog.contextvars.clear_contextvars()  # a pooled thread may carry the last request's bindings
    structlog.contextvars.bind_contextvars(request_id=g.request_id)


@bp.after_app_request
def return_request_id(response: Response) -> Response:
    if "request_id" in g:
        response.headers["X-Request-Id"] = g.request_id
    return response


@bp.teardown_app_request
def unbind_request_id(_exc: BaseException | None) -> None:
    structlog.contextvars.clear_contextvars()


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(ok=True)


@functools.cache
def _migration_heads() -> frozenset[str]:
    from alembic.script import ScriptDirectory

    from app.migrate import alembic_config

    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def _database(c: Container, timeout_s: float) -> dict[str, str]:
    """One connection, two trivial queries (and on PostgreSQL a server-side deadline for them)."""
    try:
        conn = c.engine.connect()
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"SET LOCAL statement_timeout = {max(1, int(timeout_s * 1000))}"))
        conn.execute(text("SELECT 1"))
    except Exception as exc:
        logger.warning("readyz_database_unreachable", error=type(exc).__name__)
        return {"database": "unreachable", "migrations": "unknown"}
    with conn:
        try:
            revisions = frozenset(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
        except Exception as exc:
            logger.warning("readyz_no_migrations", error=type(exc).__name__)
            return {"database": "ok", "migrations": "not applied"}
    return {"database": "ok", "migrations": "ok" if revisions == _migration_heads() else "behind"}


_redis_clients: dict[tuple[str, float], Any] = {}


def _redis(url: str, timeout_s: float) -> dict[str, str]:
    from redis import Redis

    client = _redis_clients.get((url, timeout_s))
    if client is None:
        client = _redis_clients[(url, timeout_s)] = Redis.from_url(
            url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        client.ping()
    except Exception as exc:
        logger.warning("readyz_redis_unreachable", error=type(exc).__name__)
        return {"redis": "unreachable"}
    return {"redis": "ok"}


def readiness(c: Container) -> dict[str, str]:
    """Each check's outcome by name ("ok" or what went wrong); the checks run side by side under one deadline."""
    timeout = c.settings.ready_timeout_s
    checks: dict[str, tuple[Callable[[], dict[str, str]], dict[str, str]]] = {
        "database": (lambda: _database(c, timeout), {"database": "timeout", "migrations": "unknown"})}
    if c.settings.redis_url:
        url = c.settings.redis_url
        checks["redis"] = (lambda: _redis(url, timeout), {"redis": "timeout"})
    futures = {name: (_checks.submit(check), late) for name, (check, late) in checks.items()}
    outcome: dict[str, str] = {}
    for future, late in futures.values():
        try:
            outcome.update(future.result(timeout=timeout + 0.5))
        except FutureTimeout:
            outcome.update(late)
    return outcome


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    checks = readiness(_c())
    ok = all(v == "ok" for v in checks.values())
    return jsonify(ok=ok, checks=checks), 200 if ok else 503


@dataclass
class Figures:
    """What /metrics reports, read at one instant."""

    webhooks: dict[str, int] = field(default_factory=dict)  # inbox rows by status, all time
    webhooks_24h: dict[str, int] = field(default_factory=dict)  # the same, received in the last 24 hours
    messages: dict[str, int] = field(default_factory=dict)  # by status
    dispatcher_lag_s: float = 0.0  # how long the oldest due pending message has waited past its due_at
    imports: dict[str, int] = field(default_factory=dict)  # history imports queued / running
    feedback_alerts_pending: int = 0
    analytics_failed: int = 0
    analytics_failed_24h: int = 0
    queue_depth: int | None = None  # None: the queue could not say


def read_figures(c: Container, now: datetime) -> Figures:
    """Three queries: the inbox by status (with the last day's share), messages by status, and the rest as
    scalar subqueries of one SELECT."""
    since = now - timedelta(hours=24)
    f = Figures(webhooks=dict.fromkeys(INBOX_STATUSES, 0), webhooks_24h=dict.fromkeys(INBOX_STATUSES, 0),
                messages=dict.fromkeys(MESSAGE_STATUSES, 0), imports={"queued": 0, "running": 0})
    recent = func.coalesce(func.sum(case((InboxRow.received_at >= since, 1), else_=0)), 0)
    count = func.count
    with c.engine.connect() as conn:
        for status, n, n_recent in conn.execute(
                select(InboxRow.status, count(), recent).group_by(InboxRow.status)):
            f.webhooks[status], f.webhooks_24h[status] = int(n), int(n_recent)
        for status, n in conn.execute(select(Message.status, count()).group_by(Message.status)):
            f.messages[status] = int(n)

        def counted(model: Any, *where: Any) -> Any:
            return select(count()).select_from(model).where(*where).scalar_subquery()

        row = conn.execute(select(
            select(func.min(Message.due_at)).where(Message.status == "pending", Message.due_at <= now)
            .scalar_subquery(),
            counted(HistoryImport, HistoryImport.status == "queued"),
            counted(HistoryImport, HistoryImport.status == "running"),
            counted(FeedbackItem, FeedbackItem.alert_status == "pending"),
            counted(AnalyticsRun, AnalyticsRun.status == "failed"),
            counted(AnalyticsRun, AnalyticsRun.status == "failed", AnalyticsRun.started_at >= since),
        )).one()
    oldest_due: datetime | None = row[0]
    f.dispatcher_lag_s = max(0.0, (now - oldest_due).total_seconds()) if oldest_due else 0.0
    f.imports = {"queued": int(row[1]), "running": int(row[2])}
    f.feedback_alerts_pending, f.analytics_failed, f.analytics_failed_24h = int(row[3]), int(row[4]), int(row[5])
    depth = getattr(c.queue, "depth", None)
    if depth is not None:
        try:
            f.queue_depth = int(depth())
        except Exception as exc:  # Redis down: the other figures still matter
            logger.warning("metrics_queue_depth_failed", error=type(exc).__name__)
    return f


class _FiguresCollector(Collector):
    def __init__(self, figures: Figures) -> None:
        self.f = figures

    def collect(self) -> Iterator[GaugeMetricFamily]:
        f = self.f

        def by(name: str, doc: str, label: str, values: dict[str, int]) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc, labels=[label])
            for key, value in values.items():
                family.add_metric([key], value)
            return family

        yield GaugeMetricFamily("encore_webhooks_received", "Webhook deliveries stored in the inbox, all time",
                                value=sum(f.webhooks.values()))
        yield by("encore_webhooks", "Inbox rows by status (done = processed), all time", "status", f.webhooks)
        yield GaugeMetricFamily("encore_webhooks_received_24h", "Webhook deliveries received in the last 24 hours",
                                value=sum(f.webhooks_24h.values()))
        yield by("encore_webhooks_24h", "Inbox rows received in the last 24 hours, by status", "status", f.webhooks_24h)
        yield by("encore_messages", "Journey messages by status", "status", f.messages)
        yield GaugeMetricFamily("encore_dispatcher_lag_seconds",
                                "Seconds the oldest due pending message has waited past its due time",
                                value=f.dispatcher_lag_s)
        yield by("encore_history_imports", "History imports queued or running", "status", f.imports)
        yield GaugeMetricFamily("encore_feedback_alerts_pending", "Feedback alerts not yet delivered",
                                value=f.feedback_alerts_pending)
        yield GaugeMetricFamily("encore_analytics_runs_failed", "Analytics runs that failed, all time",
                                value=f.analytics_failed)
        yield GaugeMetricFamily("encore_analytics_runs_failed_24h", "Analytics runs started in the last 24 hours "
                                "that failed", value=f.analytics_failed_24h)
        if f.queue_depth is not None:
            yield GaugeMetricFamily("encore_queue_depth", "Jobs waiting in the queue", value=f.queue_depth)


def _authorised(token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@bp.get("/metrics")
def metrics() -> Response | tuple[Response, int, dict[str, str]]:
    c = _c()
    if not c.settings.metrics_token:
        abort(404)
    if not _authorised(c.settings.metrics_token):
        return jsonify(error="a bearer token is required"), 401, {"WWW-Authenticate": 'Bearer realm="metrics"'}
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_FiguresCollector(read_figures(c, c.clock.now())))
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
