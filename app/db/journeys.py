"""The JourneyRepository port on SQLAlchemy: journeys' live versions, enrollments and their scheduled messages."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from app.core.enrollment import ORDER_SCOPED, Subject
from app.core.events import CheckoutUpdated, DomainEvent, OrderEvent
from app.core.journeys import Journey, from_data, resume_from
from app.core.ports import AttributionCandidate, LiveJourney, NewEnrollment, NewMessage
from app.db import models as t
from app.db.engine import insert_for

UNSENT = ("pending", "waiting")


def journey_of(s: Session, version_id: int, cache: dict[int, Journey]) -> Journey:
    """A version's journey (versions never change once written, so a unit of work reads each once)."""
    journey = cache.get(version_id)
    if journey is None:
        definition = s.scalar(select(t.JourneyVersion.definition).where(t.JourneyVersion.id == version_id))
        if definition is None:
            raise LookupError(f"journey version {version_id} does not exist")
        journey = cache[version_id] = from_data(definition)
    return journey


class Journeys:
    def __init__(self, session: Session) -> None:
        self.s = session
        self._live: dict[int, list[LiveJourney]] = {}
        self._versions: dict[int, Journey] = {}

    def _journey(self, version_id: int) -> Journey:
        return journey_of(self.s, version_id, self._versions)

    def live(self, shop_id: int) -> list[LiveJourney]:
        if shop_id not in self._live:
            rows = self.s.execute(select(t.JourneyRow.id, t.JourneyVersion.id).join(
                t.JourneyVersion, and_(t.JourneyVersion.journey_id == t.JourneyRow.id,
                                       t.JourneyVersion.version == t.JourneyRow.version))
                .where(t.JourneyRow.shop_id == shop_id, t.JourneyRow.enabled.is_(True))).all()
            self._live[shop_id] = [LiveJourney(jid, vid, self._journey(vid)) for jid, vid in rows]
        return self._live[shop_id]

    def email_of(self, shop_id: int, event: DomainEvent) -> str | None:
        if isinstance(event, OrderEvent):
            return self.s.scalar(select(t.Order.email).where(
                t.Order.shop_id == shop_id, t.Order.external_id == event.order_id))
        if isinstance(event, CheckoutUpdated):
            return self.s.scalar(select(t.Checkout.email).where(
                t.Checkout.shop_id == shop_id, t.Checkout.external_id == event.checkout_id))
        return None

    def timezone_of(self, shop_id: int, customer_id: str | None) -> str | None:
        if customer_id is not None:
            tz = self.s.scalar(select(t.Customer.timezone).where(
                t.Customer.shop_id == shop_id, t.Customer.external_id == customer_id))
            if tz:
                return tz
        return self.s.scalar(select(t.Shop.timezone).where(t.Shop.id == shop_id))

    def facts_of(self, shop_id: int, customer_id: str | None, order_id: str | None, checkout_id: str | None
                 ) -> dict[str, Any]:
        facts: dict[str, Any] = {"orders_before": 0, "order_total": None, "products": []}
        created: datetime | None = None
        if order_id is not None:
            row = self.s.execute(select(t.Order.id, t.Order.total, t.Order.created_at).where(
                t.Order.shop_id == shop_id, t.Order.external_id == order_id)).first()
            if row is not None:
                facts["order_total"] = str(row.total)
                created = row.created_at
                facts["products"] = sorted({p for p in self.s.scalars(select(t.OrderLine.product_external_id).where(
                    t.OrderLine.shop_id == shop_id, t.OrderLine.order_id == row.id)) if p})
        elif checkout_id is not None:
            row = self.s.execute(select(t.Checkout.total, t.Checkout.lines).where(
                t.Checkout.shop_id == shop_id, t.Checkout.external_id == checkout_id)).first()
            if row is not None:
                facts["order_total"] = str(row.total)
                facts["products"] = sorted({x["product_id"] for x in row.lines["lines"] if x.get("product_id")})
        if customer_id is not None:
            q = select(func.count()).select_from(t.Order).where(
                t.Order.shop_id == shop_id, t.Order.customer_external_id == customer_id)
            if order_id is not None:
                q = q.where(t.Order.external_id != order_id)
            if created is not None:
                q = q.where(t.Order.created_at < created)
            facts["orders_before"] = int(self.s.scalar(q) or 0)
        return facts

    def enroll(self, shop_id: int, e: NewEnrollment, messages: list[NewMessage]) -> bool:
        stmt = insert_for(self.s, t.Enrollment).values(
            shop_id=shop_id, journey_id=e.journey_id, version_id=e.version_id, key=e.key, trigger_type=e.trigger_type,
            trigger_key=e.trigger_key, trigger_at=e.trigger_at, customer_external_id=e.customer_id, email=e.email,
            order_external_id=e.order_id, checkout_external_id=e.checkout_id, facts=e.facts, holdout=e.holdout,
            status="active", created_at=e.created_at,
        ).on_conflict_do_nothing(index_elements=["shop_id", "key"]).returning(t.Enrollment.id)
        enrollment_id = self.s.scalar(stmt)
        if enrollment_id is None:
            return False
        if messages:
            self.s.execute(insert(t.Message), [{
                "shop_id": shop_id, "enrollment_id": enrollment_id, "journey_id": e.journey_id, "step": m.step,
                "key": m.key, "customer_external_id": m.customer_id, "category": m.category, "priority": m.priority,
                "channel": m.channel, "status": m.status, "due_at": m.due_at, "first_due_at": m.due_at,
                "latest_at": m.latest_at, "waiting_for": m.waiting_for, "deadline": m.deadline, "attempts": 0,
                "created_at": m.created_at} for m in messages])
        return True

    def _end(self, shop_id: int, ids: list[int], reason: str, now: datetime) -> int:
        if not ids:
            return 0
        self.s.execute(update(t.Enrollment).where(t.Enrollment.id.in_(ids), t.Enrollment.status == "active")
                       .values(status="exited", exit_reason=reason[:64], exited_at=now))
        self.s.execute(update(t.Message).where(t.Message.enrollment_id.in_(ids), t.Message.status.in_(UNSENT))
                       .values(status="cancelled", reason=reason[:255]))
        return len(ids)

    def exit(self, shop_id: int, who: Subject, event_type: str, reason: str, occurred_at: datetime, now: datetime
             ) -> int:
        if event_type in ORDER_SCOPED:
            if who.order_id is None:
                return 0
            scope = t.Enrollment.order_external_id == who.order_id
        else:
            scopes = []
            if who.customer_id is not None:
                scopes.append(t.Enrollment.customer_external_id == who.customer_id)
            elif who.email:
                scopes.append(and_(t.Enrollment.customer_external_id.is_(None), t.Enrollment.email == who.email))
            if who.checkout_id is not None:
                scopes.append(t.Enrollment.checkout_external_id == who.checkout_id)
            if not scopes:
                return 0
            scope = or_(*scopes)
        rows = self.s.execute(select(t.Enrollment.id, t.Enrollment.version_id).where(
            t.Enrollment.shop_id == shop_id, t.Enrollment.status == "active", scope,
            t.Enrollment.trigger_at < occurred_at)).all()
        ending = [i for i, v in rows if event_type in self._journey(v).exits]
        return self._end(shop_id, ending, reason, now)

    def resume(self, shop_id: int, order_id: str, event_type: str, occurred_at: datetime, now: datetime) -> int:
        waiting = self.s.execute(select(t.Message.id, t.Message.step, t.Message.enrollment_id, t.Enrollment.version_id,
                                        t.Enrollment.customer_external_id).join(
            t.Enrollment, t.Enrollment.id == t.Message.enrollment_id).where(
            t.Enrollment.shop_id == shop_id, t.Enrollment.order_external_id == order_id,
            t.Enrollment.status == "active", t.Message.status == "waiting", t.Message.waiting_for == event_type,
            t.Message.deadline >= occurred_at)).all()
        woke = 0
        for _, step, enrollment_id, version_id, customer_id in waiting:
            journey = self._journey(version_id)
            steps = {s.key: s for s in journey.steps}
            tz = self.timezone_of(shop_id, customer_id)
            for key, due in resume_from(journey, step, occurred_at, tz):
                latest = steps[key].latest
                woke += self.s.execute(update(t.Message).where(
                    t.Message.enrollment_id == enrollment_id, t.Message.step == key, t.Message.status == "waiting"
                ).values(status="pending", due_at=due, first_due_at=due, waiting_for=None, deadline=None,
                         latest_at=None if latest is None else due + latest)).rowcount or 0  # type: ignore[attr-defined]
        return woke

    def attribution_candidates(self, shop_id: int, order_id: str, customer_id: str | None, since: datetime
                               ) -> tuple[frozenset[str], list[AttributionCandidate]]:
        used = self.s.scalar(select(t.Order.discount_codes).where(
            t.Order.shop_id == shop_id, t.Order.external_id == order_id))
        codes = frozenset(used.split(",")) if used else frozenset()
        found: list[AttributionCandidate] = []
        if codes:
            for mid, jid, code, sent_at, vid in self.s.execute(select(
                    t.Message.id, t.Message.journey_id, t.Message.code, t.Message.sent_at, t.Enrollment.version_id)
                    .join(t.Enrollment, t.Enrollment.id == t.Message.enrollment_id)
                    .where(t.Message.shop_id == shop_id, func.lower(t.Message.code).in_(sorted(codes)),
                           t.Message.status == "sent", t.Message.sent_at.is_not(None))):
                if sent_at is not None:
                    found.append(AttributionCandidate(mid, jid, "code", sent_at, self._journey(vid).attribution,
                                                      code))
        if customer_id is not None:
            for mid, jid, at, vid in self.s.execute(select(
                    t.MessageClick.message_id, t.Message.journey_id, t.MessageClick.at, t.Enrollment.version_id)
                    .join(t.Message, t.Message.id == t.MessageClick.message_id)
                    .join(t.Enrollment, t.Enrollment.id == t.Message.enrollment_id)
                    .where(t.MessageClick.shop_id == shop_id, t.MessageClick.customer_external_id == customer_id,
                           t.MessageClick.at >= since)):
                found.append(AttributionCandidate(mid, jid, "click", at, self._journey(vid).attribution))
        return codes, found

    def attribute(self, shop_id: int, order_id: str, chosen: AttributionCandidate, revenue: Decimal, currency: str,
                  at: datetime) -> bool:
        stmt = insert_for(self.s, t.Attribution).values(
            shop_id=shop_id, order_external_id=order_id, message_id=chosen.message_id, journey_id=chosen.journey_id,
            via=chosen.via, revenue=revenue, currency=currency, at=at,
        ).on_conflict_do_nothing(index_elements=["shop_id", "order_external_id"]).returning(t.Attribution.id)
        return self.s.scalar(stmt) is not None

    def forget_customer(self, shop_id: int, customer_id: str, now: datetime) -> None:
        ids = list(self.s.scalars(select(t.Enrollment.id).where(
            t.Enrollment.shop_id == shop_id, t.Enrollment.customer_external_id == customer_id)))
        self._end(shop_id, ids, "customer erased", now)
        if ids:
            self.s.execute(update(t.Enrollment).where(t.Enrollment.id.in_(ids)).values(email=None, facts={}))
        self.s.execute(update(t.Message).where(t.Message.shop_id == shop_id,
                                               t.Message.customer_external_id == customer_id).values(recipient=None))
        self.s.execute(update(t.MessageClick).where(t.MessageClick.shop_id == shop_id,
                                                    t.MessageClick.customer_external_id == customer_id).values(url=""))
        pref = self.s.scalars(select(t.ContactPreference).where(
            t.ContactPreference.shop_id == shop_id, t.ContactPreference.customer_external_id == customer_id)).first()
        if pref is not None:
            self.s.delete(pref)


def waited_too_long(s: Session, now: datetime, limit: int = 1000) -> int:
    """Steps whose awaited event never came by their deadline are skipped, with that reason."""
    ids = list(s.scalars(select(t.Message.id).where(t.Message.status == "waiting", t.Message.deadline < now)
                         .limit(limit)))
    if ids:
        s.execute(update(t.Message).where(t.Message.id.in_(ids), t.Message.status == "waiting")
                  .values(status="skipped", reason="the awaited event did not happen in time"))
    return len(ids)

