"""Journeys: what to send after an event, when, on which channel, and whether a message may go now.

Pure decisions on plain data; the engine around them (enrollment rows, the scheduled-message outbox, the
dispatcher) stores what these functions decide. A journey is versioned: an enrollment keeps the version it
started with, so editing a live journey never changes what enrolled customers were promised.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum

from app.core.dates import zone


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    WEBHOOK = "webhook"
    PREFERRED = "preferred"  # the customer's own choice, email when they made none


class Category(StrEnum):
    TRANSACTIONAL = "transactional"  # about an order the customer placed: exempt from marketing consent and caps
    MARKETING = "marketing"


@dataclass(frozen=True)
class Incentive:
    """A personal discount code made in the store when the message is sent."""

    kind: str  # percent | amount | free_shipping
    value: Decimal = Decimal("0")
    expires_after: timedelta = timedelta(days=30)


@dataclass(frozen=True)
class Condition:
    """Who a step is for; every constraint given must hold (an empty one holds for everyone)."""

    first_order: bool | None = None  # True: first orders only; False: repeat customers only
    min_total: Decimal | None = None
    max_total: Decimal | None = None
    any_product: frozenset[str] = frozenset()  # bought one of these in the triggering order
    any_collection: frozenset[str] = frozenset()  # bought from one of these collections (or categories)
    any_segment: frozenset[str] = frozenset()
    any_tier: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Facts:
    """What is known of the customer and the triggering order when a condition is checked."""

    orders_before: int = 0
    order_total: Decimal | None = None
    products: frozenset[str] = frozenset()
    collections: frozenset[str] = frozenset()
    segments: frozenset[str] = frozenset()
    tier: str | None = None


def holds(condition: Condition | None, facts: Facts) -> bool:
    if condition is None:
        return True
    if condition.first_order is not None and (facts.orders_before == 0) != condition.first_order:
        return False
    if condition.min_total is not None and (facts.order_total is None or facts.order_total < condition.min_total):
        return False
    if condition.max_total is not None and (facts.order_total is None or facts.order_total > condition.max_total):
        return False
    if condition.any_product and not condition.any_product & facts.products:
        return False
    if condition.any_collection and not condition.any_collection & facts.collections:
        return False
    if condition.any_segment and not condition.any_segment & facts.segments:
        return False
    return not condition.any_tier or facts.tier in condition.any_tier


@dataclass(frozen=True)
class Step:
    key: str
    template: str
    delay: timedelta = timedelta(0)
    after: str = "trigger"  # trigger | previous: what the delay counts from
    wait_for: str | None = None  # an event type (e.g. OrderDelivered) that must happen first...
    wait_timeout: timedelta | None = None  # ...within this long, or the step (and the rest) is skipped
    condition: Condition | None = None
    channel: Channel = Channel.PREFERRED
    incentive: Incentive | None = None
    send_at: time | None = None  # the local time of day to send at, on or after the due moment
    latest: timedelta | None = None  # not sent within this long after it was first due: skipped as too late


@dataclass(frozen=True)
class Journey:
    key: str
    version: int
    trigger: str  # the domain event type that enrolls (OrderPlaced, OrderDelivered, CheckoutUpdated, ...)
    steps: tuple[Step, ...]
    category: Category = Category.MARKETING
    exits: frozenset[str] = frozenset({"OrderCancelled", "OrderRefunded"})
    holdout_percent: int = 0  # this share of enrollments receives nothing, to measure what the journey adds
    attribution: timedelta = timedelta(days=7)
    max_event_age: timedelta = timedelta(days=2)  # older events (an imported history) enroll nobody
    priority: int = 50  # when the frequency cap must choose, the higher goes first


def enrollment_key(journey: Journey, event_key: str) -> str:
    """One enrollment per journey and triggering event, whatever version is live: idempotent by construction."""
    return f"{journey.key}:{event_key}"


def in_holdout(journey: Journey, key: str) -> bool:
    """Assigned by a hash of the enrollment key: as good as random across customers, and the same answer however
    often it is asked (a retried enrollment lands in the same group)."""
    if journey.holdout_percent <= 0:
        return False
    bucket = int.from_bytes(hashlib.sha256(f"holdout:{key}".encode()).digest()[:4], "big") % 100
    return bucket < journey.holdout_percent


def enrolls(journey: Journey, event_type: str, occurred_at: datetime, now: datetime) -> bool:
    return event_type == journey.trigger and now - occurred_at <= journey.max_event_age


@dataclass(frozen=True)
class Planned:
    """A step's message as first scheduled: due at a time, or waiting for an event until a deadline."""

    step: str
    due_at: datetime | None
    waiting_for: str | None = None
    deadline: datetime | None = None


def plan(journey: Journey, trigger_at: datetime, tz: str | None) -> list[Planned]:
    """Every step's first schedule, in order. A step after a wait (or after one) is due only once the awaited
    event happens: it is planned as waiting, and `resume` gives its time then."""
    planned: list[Planned] = []
    previous: datetime | None = trigger_at
    for step in journey.steps:
        if step.wait_for is not None or previous is None:
            base_deadline = (previous or trigger_at) + (step.wait_timeout or timedelta(days=30))
            planned.append(Planned(step.key, None, step.wait_for, base_deadline))
            previous = None
            continue
        base = trigger_at if step.after == "trigger" else previous
        previous = at_local_time(base + step.delay, step.send_at, tz)
        planned.append(Planned(step.key, previous))
    return planned


def resume(step: Step, event_at: datetime, tz: str | None) -> datetime:
    """When a step that waited for an event is due, once that event happened at `event_at`."""
    return at_local_time(event_at + step.delay, step.send_at, tz)


def resume_from(journey: Journey, step_key: str, event_at: datetime, tz: str | None) -> list[tuple[str, datetime]]:
    """The awaited event happened: when the step that waited for it is due, and each step after it up to the
    next one that waits (counted from the step before it)."""
    keys = [s.key for s in journey.steps]
    start = keys.index(step_key)
    due: list[tuple[str, datetime]] = []
    previous = event_at
    for i, step in enumerate(journey.steps[start:]):
        if i and step.wait_for is not None:
            break
        previous = at_local_time(previous + step.delay, step.send_at, tz)
        due.append((step.key, previous))
    return due


def exits(journey: Journey, event_type: str) -> bool:
    return event_type in journey.exits


# --- journeys as plain data (a version's stored definition) ---------------------------------------------------


def _td(value: timedelta | None) -> int | None:
    return None if value is None else int(value.total_seconds())


def _secs(value: object) -> timedelta | None:
    return None if value is None else timedelta(seconds=int(str(value)))


def to_data(journey: Journey) -> dict[str, object]:
    """A journey as JSON-ready data; `from_data` reads it back equal."""
    def condition(c: Condition | None) -> dict[str, object] | None:
        if c is None:
            return None
        return {"first_order": c.first_order, "min_total": None if c.min_total is None else str(c.min_total),
                "max_total": None if c.max_total is None else str(c.max_total),
                "any_product": sorted(c.any_product), "any_collection": sorted(c.any_collection),
                "any_segment": sorted(c.any_segment), "any_tier": sorted(c.any_tier)}

    def incentive(i: Incentive | None) -> dict[str, object] | None:
        return None if i is None else {"kind": i.kind, "value": str(i.value), "expires_after": _td(i.expires_after)}

    return {
        "key": journey.key, "version": journey.version, "trigger": journey.trigger, "category": journey.category.value,
        "exits": sorted(journey.exits), "holdout_percent": journey.holdout_percent,
        "attribution": _td(journey.attribution), "max_event_age": _td(journey.max_event_age),
        "priority": journey.priority,
        "steps": [{
            "key": s.key, "template": s.template, "delay": _td(s.delay), "after": s.after, "wait_for": s.wait_for,
            "wait_timeout": _td(s.wait_timeout), "condition": condition(s.condition), "channel": s.channel.value,
            "incentive": incentive(s.incentive), "send_at": None if s.send_at is None else s.send_at.isoformat(),
            "latest": _td(s.latest),
        } for s in journey.steps],
    }


def from_data(data: dict[str, object]) -> Journey:
    """Raises KeyError, ValueError or TypeError for data that is not a journey."""
    def condition(c: object) -> Condition | None:
        if not isinstance(c, dict):
            return None
        return Condition(
            first_order=c.get("first_order"),
            min_total=None if c.get("min_total") in (None, "") else Decimal(str(c["min_total"])),
            max_total=None if c.get("max_total") in (None, "") else Decimal(str(c["max_total"])),
            any_product=frozenset(map(str, c.get("any_product") or ())),
            any_collection=frozenset(map(str, c.get("any_collection") or ())),
            any_segment=frozenset(map(str, c.get("any_segment") or ())),
            any_tier=frozenset(map(str, c.get("any_tier") or ())))

    def incentive(i: object) -> Incentive | None:
        if not isinstance(i, dict):
            return None
        if i["kind"] not in ("percent", "amount", "free_shipping"):
            raise ValueError(f"unknown incentive kind {i['kind']!r}")
        return Incentive(str(i["kind"]), Decimal(str(i.get("value") or "0")),
                         _secs(i.get("expires_after")) or timedelta(days=30))

    steps = data["steps"]
    if not isinstance(steps, list) or not steps:
        raise ValueError("a journey needs at least one step")
    return Journey(
        key=str(data["key"]), version=int(str(data["version"])), trigger=str(data["trigger"]),
        category=Category(str(data["category"])), exits=frozenset(map(str, data.get("exits") or ())),  # type: ignore[call-overload]
        holdout_percent=int(str(data.get("holdout_percent") or 0)),
        attribution=_secs(data.get("attribution")) or timedelta(days=7),
        max_event_age=_secs(data.get("max_event_age")) or timedelta(days=2),
        priority=int(str(data.get("priority") or 50)),
        steps=tuple(Step(
            key=str(s["key"]), template=str(s["template"]), delay=_secs(s.get("delay")) or timedelta(0),
            after=str(s.get("after") or "trigger"), wait_for=s.get("wait_for"),
            wait_timeout=_secs(s.get("wait_timeout")), condition=condition(s.get("condition")),
            channel=Channel(str(s.get("channel") or "preferred")), incentive=incentive(s.get("incentive")),
            send_at=None if not s.get("send_at") else time.fromisoformat(str(s["send_at"])),
            latest=_secs(s.get("latest"))) for s in steps),
    )


def at_local_time(moment: datetime, send_at: time | None, tz: str | None) -> datetime:
    """The first moment at or after `moment` whose local time (in the customer's zone) is `send_at`."""
    if send_at is None:
        return moment
    local_zone = zone(tz)
    local = moment.astimezone(local_zone)
    candidate = datetime.combine(local.date(), send_at, local_zone)
    if candidate < local:
        candidate = datetime.combine(local.date() + timedelta(days=1), send_at, local_zone)
    return candidate.astimezone(moment.tzinfo)


# --- the checks before every send ------------------------------------------------------------------------


@dataclass(frozen=True)
class Contact:
    """What decides whether and how a customer may be reached."""

    email: str | None = None
    phone: str | None = None
    email_marketing: bool = False
    sms_marketing: bool = False
    unsubscribed: bool = False  # from all marketing, through the preference center or a one-click link
    preferred: Channel = Channel.EMAIL
    timezone: str | None = None
    frequency: str = "normal"  # normal | weekly | monthly: the customer's own cap, on top of the shop's


@dataclass(frozen=True)
class Policy:
    """The shop's rules, shared by every journey and program: one frequency cap for all marketing."""

    per_day: int = 1
    per_week: int = 3
    quiet_start: time = time(21, 0)
    quiet_end: time = time(9, 0)
    over_cap: str = "defer"  # defer | skip: what a capped message does
    max_defer: timedelta = timedelta(days=7)  # a message deferred beyond this is skipped instead


@dataclass(frozen=True)
class Send:
    channel: Channel


@dataclass(frozen=True)
class Defer:
    until: datetime
    reason: str


@dataclass(frozen=True)
class Skip:
    reason: str


Decision = Send | Defer | Skip


def channel_for(wanted: Channel, contact: Contact) -> Channel:
    return contact.preferred if wanted is Channel.PREFERRED else wanted


def _reachable(channel: Channel, contact: Contact) -> str | None:
    if channel is Channel.EMAIL and not (contact.email and "@" in contact.email.strip("@")):
        return "no valid email address"
    if channel is Channel.SMS and not (contact.phone and contact.phone.startswith("+") and contact.phone[1:].isdigit()
                                       and 8 <= len(contact.phone) <= 16):
        return "no valid phone number (E.164)"
    return None


def _quiet(now: datetime, policy: Policy, tz: str | None) -> datetime | None:
    """The end of the quiet hours `now` falls in (customer's local time), or None when it is not quiet."""
    local = now.astimezone(zone(tz))
    start, end = policy.quiet_start, policy.quiet_end
    t = local.time()
    quiet = (start <= t or t < end) if start > end else (start <= t < end)
    if not quiet:
        return None
    day = local.date() + (timedelta(days=1) if start > end and t >= start else timedelta(0))
    return datetime.combine(day, end, local.tzinfo).astimezone(now.tzinfo)


def check(category: Category, wanted: Channel, contact: Contact, policy: Policy, now: datetime,
          sent_marketing: list[datetime], first_due: datetime) -> Decision:
    """May this message go now? Consent and unsubscription (marketing only), a reachable address, quiet hours in
    the customer's zone (deferred, never dropped), and one frequency cap for all marketing (deferred or skipped
    by the shop's rule, never silently). `sent_marketing`: when this customer's last marketing messages went."""
    channel = channel_for(wanted, contact)
    unreachable = _reachable(channel, contact) if channel is not Channel.WEBHOOK else None
    if unreachable:
        return Skip(unreachable)
    if category is Category.MARKETING:
        if contact.unsubscribed:
            return Skip("unsubscribed")
        if channel is Channel.EMAIL and not contact.email_marketing:
            return Skip("no consent to marketing email")
        if channel is Channel.SMS and not contact.sms_marketing:
            return Skip("no consent to marketing SMS")
    if channel is Channel.SMS:  # a text at night wakes people, whatever it is about
        quiet_until = _quiet(now, policy, contact.timezone)
        if quiet_until is not None:
            return Defer(quiet_until, "quiet hours")
    if category is Category.MARKETING:
        free_at = _cap_frees_at(now, policy, sorted(sent_marketing), contact.frequency)
        if free_at is not None:
            if policy.over_cap == "skip" or free_at - first_due > policy.max_defer:
                return Skip("frequency cap")
            return Defer(free_at, "frequency cap")
        quiet_until = _quiet(now, policy, contact.timezone)
        if quiet_until is not None:
            return Defer(quiet_until, "quiet hours")
    return Send(channel)


def _cap_frees_at(now: datetime, policy: Policy, sent: list[datetime], frequency: str = "normal") -> datetime | None:
    """When one more marketing message fits every window again (the shop's day and week, and the customer's own
    week or month if they chose one), or None if it fits now."""
    windows = [(policy.per_day, timedelta(days=1)), (policy.per_week, timedelta(days=7))]
    if frequency == "weekly":
        windows.append((1, timedelta(days=7)))
    elif frequency == "monthly":
        windows.append((1, timedelta(days=30)))
    waits = []
    for limit, window in windows:
        if limit <= 0:
            return now + window  # no marketing at all in this window
        inside = [t for t in sent if now - window < t <= now]
        if len(inside) >= limit:
            waits.append(inside[len(inside) - limit] + window)  # the oldest one that must leave the window
    return max(waits) if waits else None
