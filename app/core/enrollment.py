"""What domain events do to journeys, in the same transaction that recorded them: enroll customers (one
enrollment per journey and triggering event), schedule every step as a durable message, end enrollments an
exit event concerns, wake steps that waited for an event, and attribute a new order to the message that
earned it. Decisions only; the JourneyRepository port stores them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.core.events import (
    CheckoutUpdated,
    DomainEvent,
    OrderCancelled,
    OrderDelivered,
    OrderEvent,
    OrderPlaced,
    OrderRefunded,
)
from app.core.journeys import Journey, enrollment_key, enrolls, in_holdout, plan
from app.core.ports import (
    AttributionCandidate,
    JourneyRepository,
    LiveJourney,
    NewEnrollment,
    NewMessage,
    UnitOfWork,
)

# Exit events that concern one order (its enrollments end), and those that concern the customer (every
# enrollment of theirs in a journey that exits on it ends).
ORDER_SCOPED = frozenset({"OrderCancelled", "OrderRefunded", "OrderDelivered", "OrderFulfilled"})


@dataclass(frozen=True)
class Subject:
    """Whom an event is about: the customer (or a guest's address), the order or the checkout."""

    customer_id: str | None
    email: str | None
    order_id: str | None
    checkout_id: str | None


def subject_of(event: DomainEvent, email: str | None = None) -> Subject:
    if isinstance(event, OrderEvent):
        return Subject(event.customer_id, email, event.order_id, None)
    if isinstance(event, CheckoutUpdated):
        return Subject(event.customer_id, email, None, event.checkout_id)
    return Subject(getattr(event, "customer_id", None), email, None, None)


def may_enroll(event: DomainEvent) -> bool:
    """Events that never start a journey whatever it says: a completed checkout is no abandoned cart."""
    return not (isinstance(event, CheckoutUpdated) and event.completed)


def schedule(journey: Journey, key: str, trigger_at: datetime, tz: str | None, holdout: bool, now: datetime,
             customer_id: str | None) -> list[NewMessage]:
    """Every step of a new enrollment as a message row: due, waiting for an event, or held out."""
    messages: list[NewMessage] = []
    by_key = {s.key: s for s in journey.steps}
    for planned in plan(journey, trigger_at, tz):
        step = by_key[planned.step]
        status = "held_out" if holdout else ("waiting" if planned.due_at is None else "pending")
        latest = None if planned.due_at is None or step.latest is None else planned.due_at + step.latest
        messages.append(NewMessage(
            step=step.key, key=f"{key}:{step.key}", category=journey.category.value, priority=journey.priority,
            channel=step.channel.value, status=status, due_at=planned.due_at, latest_at=latest,
            waiting_for=planned.waiting_for, deadline=planned.deadline, customer_id=customer_id, created_at=now))
    return messages


def _enroll(repo: JourneyRepository, shop_id: int, live: LiveJourney, event: DomainEvent, who: Subject,
            trigger_at: datetime, trigger_key: str, now: datetime) -> bool:
    journey = live.journey
    key = enrollment_key(journey, trigger_key)
    holdout = in_holdout(journey, key)
    tz = repo.timezone_of(shop_id, who.customer_id)
    facts = repo.facts_of(shop_id, who.customer_id, who.order_id, who.checkout_id)
    enrollment = NewEnrollment(
        journey_id=live.journey_id, version_id=live.version_id, key=key, trigger_type=event.name,
        trigger_key=trigger_key, trigger_at=trigger_at, customer_id=who.customer_id, email=who.email,
        order_id=who.order_id, checkout_id=who.checkout_id, facts=facts, holdout=holdout, created_at=now)
    return repo.enroll(shop_id, enrollment, schedule(journey, key, trigger_at, tz, holdout, now, who.customer_id))


def react(uow: UnitOfWork, events: list[DomainEvent], now: datetime) -> int:
    """Apply newly recorded events to journeys; returns how many enrollments began."""
    if not events:
        return 0
    repo = uow.journeys
    shop_id = events[0].shop_id
    live = repo.live(shop_id)
    started = 0
    for event in events:
        name = event.name
        who = subject_of(event, repo.email_of(shop_id, event) if live else None)
        if isinstance(event, CheckoutUpdated):
            if event.completed:
                repo.exit(shop_id, who, "CheckoutCompleted", "checkout completed", event.occurred_at, now)
        else:
            repo.exit(shop_id, who, name, _exit_reason(event), event.occurred_at, now)
        if isinstance(event, OrderEvent):
            repo.resume(shop_id, event.order_id, name, event.occurred_at, now)
        if isinstance(event, OrderPlaced):
            attribute(repo, event, now)
        if not may_enroll(event):
            continue
        for journey in live:
            if not enrolls(journey.journey, name, event.occurred_at, now):
                continue
            if who.customer_id is None and who.email is None:
                continue  # nobody to write to
            started += _enroll(repo, shop_id, journey, event, who, event.occurred_at, event.key, now)
    return started


def enroll_on_date(uow: UnitOfWork, shop_id: int, journey: LiveJourney, rule: str, customer_id: str,
                   order_id: str | None, trigger_at: datetime, occasion: str, now: datetime) -> bool:
    """A date rule came due (a birthday, an anniversary, a predicted run-out, an expected reorder date):
    enroll once per occasion (`birthday:2026`, `order:1001:product:7`)."""
    repo = uow.journeys
    if now - trigger_at > journey.journey.max_event_age:
        return False
    who = Subject(customer_id, None, order_id, None)
    event = DateReached(shop_id, trigger_at, rule, customer_id, occasion)
    return _enroll(repo, shop_id, journey, event, who, trigger_at, event.key, now)


@dataclass(frozen=True)
class DateReached(DomainEvent):
    """A date rule's moment: not recorded in the event log, only the enrollment's trigger."""

    rule: str
    customer_id: str
    occasion: str

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.customer_id}:{self.occasion}"

    @property
    def name(self) -> str:
        return self.rule


def _exit_reason(event: DomainEvent) -> str:
    return {OrderCancelled: "order cancelled", OrderRefunded: "order refunded", OrderPlaced: "new order placed",
            OrderDelivered: "order delivered"}.get(type(event), event.name)


def pick_attribution(order_codes: frozenset[str], candidates: list[AttributionCandidate], at: datetime
                     ) -> AttributionCandidate | None:
    """The message an order is attributed to: one whose personal code the order used (the latest such), else
    the latest click within that journey's attribution window before the order."""
    by_code = [c for c in candidates if c.via == "code" and c.code and c.code.lower() in order_codes]
    if by_code:
        return max(by_code, key=lambda c: c.at)
    clicks = [c for c in candidates if c.via == "click" and c.at <= at and at - c.at <= c.window]
    return max(clicks, key=lambda c: c.at) if clicks else None


def attribute(repo: JourneyRepository, event: OrderPlaced, now: datetime) -> bool:
    codes, candidates = repo.attribution_candidates(event.shop_id, event.order_id, event.customer_id,
                                                    event.occurred_at - timedelta(days=90))
    chosen = pick_attribution(codes, candidates, event.occurred_at)
    if chosen is None:
        return False
    return repo.attribute(event.shop_id, event.order_id, chosen, event.total, event.currency, event.occurred_at)
