"""What each journey did: its messages by outcome (sent by channel, skipped by reason, deferred, failed, parked,
held out), opens, clicks, attributed orders and revenue, the messages to send again, and the inputs of lift
(the holdout group against the rest). Read by the admin; a later analytics module builds on the same rows."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.journeys import Journey
from app.db import models as t
from app.db.journeys import journey_of


def _empty() -> dict[str, Any]:
    return {"sent": {"total": 0, "by_channel": {}}, "skipped": {"total": 0, "by_reason": {}},
            "deferred": {"total": 0, "by_reason": {}}, "failed": 0, "parked": 0, "cancelled": 0, "held_out": 0,
            "opened": 0, "clicked": 0, "attributed": {"orders": 0, "revenue": []}}


def _add(counts: dict[str, Any], key: str, n: int) -> None:
    counts["total"] += n
    bucket = counts["by_reason" if "by_reason" in counts else "by_channel"]
    bucket[key] = bucket.get(key, 0) + n


def figures(s: Session, shop_id: int, journey_ids: list[int], since: datetime) -> dict[int, dict[str, Any]]:
    """Each journey's messages since `since` (by when they went, or were due): sent by channel, skipped by reason,
    failed, parked, held out, opened, clicked; what is deferred now; attributed orders and revenue per currency."""
    m, a = t.Message, t.Attribution
    out = {jid: _empty() for jid in journey_ids}
    mine = (m.shop_id == shop_id, m.journey_id.in_(journey_ids))
    when = func.coalesce(m.sent_at, m.due_at, m.created_at)
    for jid, status, channel, reason, n in s.execute(
            select(m.journey_id, m.status, m.sent_channel, m.reason, func.count()).where(*mine, when >= since)
            .group_by(m.journey_id, m.status, m.sent_channel, m.reason)):
        f = out[jid]
        if status == "sent":
            _add(f["sent"], channel or "email", n)
        elif status == "skipped":
            _add(f["skipped"], reason or "unknown", n)
        elif status in ("failed", "parked", "cancelled", "held_out"):
            f[status] += n
    for jid, deferred, n in s.execute(select(m.journey_id, m.deferred, func.count()).where(
            *mine, m.status == "pending", m.deferred.is_not(None)).group_by(m.journey_id, m.deferred)):
        _add(out[jid]["deferred"], deferred or "unknown", n)
    for jid, opened, clicked in s.execute(select(m.journey_id, func.count(m.opened_at), func.count(m.clicked_at))
                                          .where(*mine, m.sent_at >= since).group_by(m.journey_id)):
        out[jid]["opened"], out[jid]["clicked"] = opened, clicked
    for jid, currency, n, revenue in s.execute(
            select(a.journey_id, a.currency, func.count(), func.sum(a.revenue)).where(
                a.shop_id == shop_id, a.journey_id.in_(journey_ids), a.at >= since)
            .group_by(a.journey_id, a.currency).order_by(a.currency)):
        out[jid]["attributed"]["orders"] += n
        out[jid]["attributed"]["revenue"].append({"currency": currency, "amount": str(Decimal(revenue or 0))})
    return out


def details(s: Session, shop_id: int, journey_id: int, since: datetime) -> dict[str, Any]:
    """The failed and parked messages (to send again) and the lift inputs: enrollments in the holdout group and
    not, and how many of each ordered again within the journey's attribution window."""
    m = t.Message
    problems = [{"id": x.id, "status": x.status, "step": x.step, "reason": x.reason, "error": x.error,
                 "customer_id": x.customer_external_id, "due_at": x.due_at.isoformat() if x.due_at else None}
                for x in s.scalars(select(m).where(m.shop_id == shop_id, m.journey_id == journey_id,
                                                   m.status.in_(("failed", "parked")),
                                                   func.coalesce(m.sent_at, m.due_at, m.created_at) >= since)
                                   .order_by(m.id.desc()).limit(50))]
    e = t.Enrollment
    enrolled = s.execute(select(e.id, e.holdout, e.customer_external_id, e.trigger_at, e.version_id).where(
        e.shop_id == shop_id, e.journey_id == journey_id, e.created_at >= since)).all()
    customers = sorted({c for _, _, c, _, _ in enrolled if c})
    orders: dict[str, list[datetime]] = defaultdict(list)
    if customers:
        for customer, at in s.execute(select(t.Order.customer_external_id, t.Order.created_at).where(
                t.Order.shop_id == shop_id, t.Order.customer_external_id.in_(customers), t.Order.created_at >= since)):
            if customer is not None:
                orders[customer].append(at)
    attributed = set(s.scalars(select(m.enrollment_id).join(t.Attribution, t.Attribution.message_id == m.id).where(
        m.shop_id == shop_id, m.journey_id == journey_id)))
    cache: dict[int, Journey] = {}
    lift = {"holdout": {"enrollments": 0, "converted": 0}, "treated": {"enrollments": 0, "converted": 0, "attributed": 0}}
    for eid, holdout, customer, trigger_at, version_id in enrolled:
        group = lift["holdout" if holdout else "treated"]
        window = journey_of(s, version_id, cache).attribution
        group["enrollments"] += 1
        group["converted"] += any(trigger_at < at <= trigger_at + window for at in orders.get(customer or "", ()))
        if not holdout:
            group["attributed"] += eid in attributed
    return {"problems": problems, "lift": lift}
