"""Who would have received what: a journey's live version replayed over the last days of the shop's real
history, without sending anything or writing anything.

Each recorded domain event of the journey's trigger (or each moment a date rule finds, through
`app.daterules.FINDERS`) enrolls as the engine would have had it arrived when it occurred: the same enrollment
key and holdout group, each step planned in the customer's time zone, its condition checked against the facts
the engine computes (`facts_of`), then the dispatcher's decision when the step comes due (consent, a reachable
address, quiet hours, one frequency cap for all marketing, carried forward within the simulation per customer
beside the marketing really sent by other journeys), an exit event of the same order or customer before the
send, and the subject rendered in the customer's locale.

What it cannot know: the store's collections when no lookup is given (a condition on collections then sees
none, as the dispatcher does without a store connection), and how the customer's consent, address, segments or tier changed
since (today's are used). Date rules are found with today's orders, so a customer who came back since is not
expected back at the earlier moment.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import daterules, links, rendering, segments
from app import journeys as jr
from app import message_context as mc
from app.core.enrollment import ORDER_SCOPED, DateReached
from app.core.events import OrderCancelled, OrderDelivered, OrderPlaced, OrderRefunded
from app.core.journeys import (
    Category,
    Channel,
    Defer,
    Facts,
    Journey,
    Skip,
    Step,
    check,
    enrollment_key,
    holds,
    in_holdout,
    plan,
    resume_from,
)
from app.db import models as t
from app.db.journeys import Journeys
from app.dispatch import LOOKBACK, discount_code

if TYPE_CHECKING:
    from app.bootstrap import Container

MAX_DAYS = 90
MAX_ENROLLMENTS = 1000
MAX_DEFERRALS = 60
EXIT_REASONS = {OrderCancelled.__name__: "order cancelled", OrderRefunded.__name__: "order refunded",
                OrderPlaced.__name__: "new order placed", OrderDelivered.__name__: "order delivered",
                "CheckoutCompleted": "checkout completed"}


@dataclass(frozen=True)
class Trigger:
    key: str  # the event's key: the enrollment key is the journey's key and this
    type: str
    at: datetime
    customer_id: str | None
    order_id: str | None = None
    checkout_id: str | None = None


@dataclass(frozen=True)
class Row:
    """One step of one would-be enrollment."""

    enrollment: str
    customer_id: str | None
    customer: str  # a name and a masked address: enough to recognise, not to copy
    trigger: str
    trigger_at: datetime
    step: str
    planned_at: datetime | None  # first due (None: it waited for an event that did not come)
    send_at: datetime | None  # when it would go, after any deferral
    channel: str | None
    kind: str  # send | held_out | skipped | exited | waiting | error
    outcome: str  # "would send", "held out", "skipped: <reason>", "exited: <reason>", ...
    deferred: str | None = None
    subject: str | None = None
    condition: bool | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    timezone: str | None = None  # the customer's (or the shop's), in which the step was planned
    holdout: bool = False


@dataclass(frozen=True)
class Simulation:
    key: str
    version: int
    trigger: str
    start: datetime
    end: datetime
    rows: list[Row]
    unsupported: str | None = None
    truncated: bool = False


def mask(email: str | None) -> str:
    if not email or "@" not in email:
        return ""
    local, domain = email.rsplit("@", 1)
    return f"{local[:1]}***@{domain}"  # the same stars whatever the length: nothing of the rest is shown


def _who(customer: mc.CustomerRow | None, email: str | None) -> str:
    name = " ".join(p for p in ((customer.first_name if customer else None),
                                 (f"{customer.last_name[:1]}." if customer and customer.last_name else None)) if p)
    address = mask((customer.email if customer else None) or email)
    return f"{name} ({address})" if name and address else name or address or "—"


def _date_triggers(s: Session, shop: t.Shop, rule: str, start: datetime, end: datetime) -> list[Trigger] | None:
    finder = getattr(daterules, "FINDERS", {}).get(rule)
    if finder is None:
        return None
    due = finder(s, shop.id, shop.timezone or "UTC", start, end)
    return sorted((Trigger(DateReached(shop.id, d.trigger_at, rule, d.customer_id, d.occasion).key, rule, d.trigger_at,
                           d.customer_id, d.order_id) for d in due), key=lambda x: (x.at, x.key))


def _event(row: t.EventRow) -> Trigger:
    p = row.payload
    return Trigger(row.key, row.type, row.occurred_at, p.get("customer_id"), p.get("order_id"), p.get("checkout_id"))


def _events(s: Session, shop_id: int, types: set[str], start: datetime) -> list[t.EventRow]:
    if not types:
        return []
    return list(s.scalars(select(t.EventRow).where(t.EventRow.shop_id == shop_id, t.EventRow.type.in_(sorted(types)),
                                                   t.EventRow.occurred_at >= start)
                          .order_by(t.EventRow.occurred_at, t.EventRow.id)))


@dataclass(frozen=True)
class Exit:
    type: str
    at: datetime
    who: Trigger
    email: str | None


def _exits(s: Session, shop_id: int, journey: Journey, start: datetime, loaded: mc.Loaded) -> list[Exit]:
    """The recorded events that end an enrollment of this journey, as the engine reads them."""
    types = set(journey.exits) - {"CheckoutCompleted"}
    if "CheckoutCompleted" in journey.exits:
        types.add("CheckoutUpdated")
    found = []
    for row in _events(s, shop_id, types, start):
        event = _event(row)
        if row.type == "CheckoutUpdated":
            if not row.payload.get("completed"):
                continue
            event = replace(event, type="CheckoutCompleted")
        found.append(Exit(event.type, event.at, event, _email(loaded, shop_id, event)))
    return found


def _email(loaded: mc.Loaded, shop_id: int, x: Trigger) -> str | None:
    if x.order_id is not None:
        order = loaded.orders.get((shop_id, x.order_id))
        return order.email if order is not None else None
    if x.checkout_id is not None:
        checkout = loaded.checkouts.get((shop_id, x.checkout_id))
        return checkout.email if checkout is not None else None
    return None


def _exited(exits: list[Exit], x: Trigger, email: str | None, at: datetime) -> str | None:
    """The reason of the first exit event of this enrollment's order (or customer) after it began, by `at`."""
    for e in exits:
        if not x.at < e.at <= at:
            continue
        if e.type in ORDER_SCOPED:
            mine = x.order_id is not None and e.who.order_id == x.order_id
        else:
            mine = (x.customer_id is not None and e.who.customer_id == x.customer_id) or (
                x.customer_id is None and e.who.customer_id is None and email is not None and e.email == email) or (
                x.checkout_id is not None and e.who.checkout_id == x.checkout_id)
        if mine:
            return EXIT_REASONS.get(e.type, e.type)
    return None


@dataclass
class _Due:
    """A step in the simulated outbox."""

    x: Trigger
    key: str
    step: Step
    first_due: datetime
    facts: Facts
    email: str | None
    tz: str | None
    holdout: bool = False
    deferred: str | None = None


class _Run:
    def __init__(self, c: Container, s: Session, shop: t.Shop, version: jr.Version, now: datetime,
                 collections: Callable[[list[str]], frozenset[str]] | None) -> None:
        self.c, self.s, self.shop, self.version, self.now = c, s, shop, version, now
        self.journey = version.journey
        self.collections = collections
        self.repo = Journeys(s)
        messaging = jr.Messaging.of(shop)
        self.policy, self.webhook_url = messaging.policy, messaging.webhook_url
        self.channels = {"email", "webhook"} | ({"sms"} if c.settings.sms_api_url else set())
        self.rows: list[Row] = []
        self.history: dict[str, list[datetime]] = defaultdict(list)
        self.loaded = mc.Loaded({}, {}, {}, {}, {}, {}, {})  # filled by `prepare`
        self.exits: list[Exit] = []
        self.targets: segments.Targets = {}  # each customer's segments and tier, when a step's condition names some

    def prepare(self, triggers: list[Trigger], start: datetime) -> None:
        sid = self.shop.id
        self.loaded = mc.load(self.s, {sid}, [(sid, x.customer_id) for x in triggers],
                              [(sid, x.order_id) for x in triggers], [(sid, x.checkout_id) for x in triggers])
        self.exits = _exits(self.s, sid, self.journey, start, self.loaded)
        if any(st.condition and (st.condition.any_segment or st.condition.any_tier) for st in self.journey.steps):
            self.targets = segments.targeting(self.s, [(sid, x.customer_id) for x in triggers])  # today's membership
        others = [x.customer_id for x in triggers if x.customer_id]
        if others and self.journey.category is Category.MARKETING:
            for customer_id, sent_at in self.s.execute(select(t.Message.customer_external_id, t.Message.sent_at).where(
                    t.Message.shop_id == sid, t.Message.customer_external_id.in_(sorted(set(others))),
                    t.Message.category == "marketing", t.Message.status == "sent",
                    t.Message.journey_id != self.version.journey_id, t.Message.sent_at > start - LOOKBACK)):
                if customer_id is not None and sent_at is not None:
                    self.history[customer_id].append(sent_at)

    def _facts(self, x: Trigger) -> dict[str, Any]:
        facts = self.repo.facts_of(self.shop.id, x.customer_id, x.order_id, x.checkout_id)
        if x.order_id is None and x.customer_id is not None:  # the engine counted the orders there were then
            facts["orders_before"] = sum(1 for o in self.s.scalars(select(t.Order.created_at).where(
                t.Order.shop_id == self.shop.id, t.Order.customer_external_id == x.customer_id)) if o < x.at)
        return facts

    def _row(self, d: _Due, kind: str, outcome: str, *, planned: datetime | None, at: datetime | None = None,
             channel: str | None = None, subject: str | None = None, condition: bool | None = None) -> None:
        customer = self.loaded.customers.get((self.shop.id, d.x.customer_id or ""))
        self.rows.append(Row(
            d.key, d.x.customer_id, _who(customer, d.email), d.x.type, d.x.at, d.step.key, planned, at, channel, kind,
            outcome, d.deferred, subject, condition,
            {"orders_before": d.facts.orders_before,
             "order_total": None if d.facts.order_total is None else str(d.facts.order_total),
             "products": sorted(d.facts.products), **({"collections": sorted(d.facts.collections)}
                                                      if d.facts.collections else {})},
            d.tz, d.holdout))

    def enroll(self, x: Trigger, seq: int, queue: list[tuple[datetime, int, int, _Due]], waits: list[t.EventRow]
               ) -> None:
        journey, sid = self.journey, self.shop.id
        email = None if x.type in jr.DATE_RULES else _email(self.loaded, sid, x)  # as `enroll_on_date` has it
        if x.customer_id is None and email is None:
            return  # nobody to write to: the engine enrolls nobody either
        key = enrollment_key(journey, x.key)
        customer = self.loaded.customers.get((sid, x.customer_id or ""))
        tz = (customer.timezone if customer else None) or self.shop.timezone
        stored = self._facts(x)
        keys, tier = self.targets.get((sid, x.customer_id or ""), (frozenset(), None))
        facts = Facts(orders_before=int(stored.get("orders_before") or 0),
                      order_total=None if stored.get("order_total") is None else Decimal(str(stored["order_total"])),
                      products=frozenset(stored.get("products") or ()), segments=keys, tier=tier)
        planned = plan(journey, x.at, tz)
        due: dict[str, datetime | None] = {p.step: p.due_at for p in planned}
        notes: dict[str, tuple[str, str]] = {}  # steps after an awaited event that did not come (yet)
        for n, (p, step) in enumerate(zip(planned, journey.steps, strict=True)):
            if step.wait_for is None or due.get(step.key) is not None:
                continue
            came = next((w.occurred_at for w in waits if w.type == step.wait_for and x.order_id is not None
                         and w.payload.get("order_id") == x.order_id and x.at < w.occurred_at <= (p.deadline or x.at)),
                        None)
            if came is not None:
                due.update(dict(resume_from(journey, step.key, came, tz)))
                continue
            note = (("skipped", "skipped: the awaited event did not happen in time") if p.deadline and p.deadline < self.now
                    else ("waiting", f"waiting for {step.wait_for}"))
            for later in journey.steps[n:]:
                if later.wait_for is not None and later.key != step.key:
                    break
                notes[later.key] = note
        holdout = in_holdout(journey, key)
        for n, step in enumerate(journey.steps):
            when = due.get(step.key)
            d = _Due(x, key, step, when or x.at, facts, email, tz, holdout)
            if holdout:
                self._row(d, "held_out", "held out", planned=when)
            elif when is None:
                exited = _exited(self.exits, x, email, self.now)
                kind, outcome = ("exited", f"exited: {exited}") if exited else notes.get(
                    step.key, ("waiting", f"waiting for {step.wait_for}"))
                self._row(d, kind, outcome, planned=None)
            else:
                heapq.heappush(queue, (when, seq, n, d))

    def dispatch(self, queue: list[tuple[datetime, int, int, _Due]]) -> None:
        deferrals: dict[tuple[int, int], int] = defaultdict(int)
        while queue:
            at, seq, n, d = heapq.heappop(queue)
            until = self._one(d, at)
            if until is not None:
                deferrals[(seq, n)] += 1
                if deferrals[(seq, n)] > MAX_DEFERRALS:
                    self._row(d, "skipped", f"skipped: deferred too often ({d.deferred})", planned=d.first_due)
                    continue
                heapq.heappush(queue, (until, seq, n, d))

    def _one(self, d: _Due, now: datetime) -> datetime | None:
        """The dispatcher's decision for one due step at `now`: a row, or when to look again (deferred)."""
        sid, step, journey = self.shop.id, d.step, self.journey
        planned = d.first_due
        exited = _exited(self.exits, d.x, d.email, now)
        if exited:
            self._row(d, "exited", f"exited: {exited}", planned=planned)
            return None
        if step.latest is not None and now > d.first_due + step.latest:
            self._row(d, "skipped", "skipped: too late", planned=planned)
            return None
        customer = self.loaded.customers.get((sid, d.x.customer_id or ""))
        if customer is not None and customer.redacted_at is not None:
            self._row(d, "exited", "exited: customer erased", planned=planned)
            return None
        condition: bool | None = None
        if step.condition is not None:
            if step.condition.any_collection and self.collections is not None and d.facts.products:
                d.facts = replace(d.facts, collections=self.collections(sorted(d.facts.products)))
            condition = holds(step.condition, d.facts)
            if not condition:
                self._row(d, "skipped", "skipped: condition not met", planned=planned, condition=False)
                return None
        pref = self.loaded.prefs.get((sid, d.x.customer_id or ""))
        contact = mc.contact_of(customer, pref, self.shop, d.email)
        sent = self.history[d.x.customer_id] if d.x.customer_id else []
        decision = check(journey.category, step.channel, contact, self.policy, now, sent, d.first_due)
        if isinstance(decision, Skip):
            self._row(d, "skipped", f"skipped: {decision.reason}", planned=planned, condition=condition)
            return None
        if isinstance(decision, Defer):
            d.deferred = decision.reason
            return decision.until
        channel = decision.channel.value
        if channel not in self.channels:
            if step.channel is not Channel.PREFERRED or not contact.email:
                reason = f"{channel} is not set up" if step.channel is not Channel.PREFERRED else "no valid email address"
                self._row(d, "skipped", f"skipped: {reason}", planned=planned, condition=condition)
                return None
            channel = "email"
        to = {"email": contact.email, "sms": contact.phone, "webhook": self.webhook_url}[channel]
        if not to:
            self._row(d, "skipped", f"skipped: no {channel} destination", planned=planned, condition=condition)
            return None
        kind, outcome, subject = self._subject(d, customer, now)
        self._row(d, kind, outcome, planned=planned, at=now if kind == "send" else None, channel=channel,
                  subject=subject, condition=condition)
        if kind == "send" and journey.category is Category.MARKETING and d.x.customer_id:
            sent.append(now)
        return None

    def _links(self, d: _Due) -> rendering.Links:
        """The links the dispatcher would give (no message exists: its id is 0 where a link names one)."""
        settings, customer_id = self.c.settings, d.x.customer_id
        return rendering.Links(
            preferences=links.preferences_url(settings, self.shop.id, customer_id) if customer_id else None,
            unsubscribe=links.unsubscribe_url(settings, self.shop.id, customer_id, None) if customer_id else None,
            review=mc.review_url(self.loaded, self.shop, d.x.order_id),
            survey=links.survey_url(settings, 0) if hasattr(links, "survey_url") else None)

    def _subject(self, d: _Due, customer: mc.CustomerRow | None, now: datetime) -> tuple[str, str, str | None]:
        sid, shop, step = self.shop.id, self.shop, d.step
        messaging = jr.Messaging.of(shop)
        code = None
        if step.incentive is not None:
            kind = step.incentive.kind
            code = rendering.DiscountCode(
                code=discount_code(self.c.settings.secret_key, f"{sid}:{d.key}:{step.key}"), kind=kind,  # type: ignore[arg-type]
                value=None if kind == "free_shipping" else step.incentive.value,
                expires_at=now + step.incentive.expires_after, currency=shop.currency if kind == "amount" else None)
        enrollment_order = d.x.order_id
        context = rendering.RenderContext(
            shop=mc.shop_of(shop, messaging.support_email), customer=mc.customer_of(customer, shop, d.email),
            order=mc.order_of(self.loaded, shop, enrollment_order),
            checkout=mc.checkout_of(self.loaded, shop, d.x.checkout_id), code=code, links=self._links(d))
        own = self.version.templates.get(step.key)
        if own is None and step.template in jr.DEFAULTS:
            missing = rendering.journey(step.template).missing(context)
            if missing:
                return "skipped", f"skipped: nothing to show for {', '.join(missing)}", None
        try:
            rendered = rendering.render(jr.template_for(self.version, step), context)
        except rendering.RenderError as exc:
            return "error", f"template error: {exc}", None
        return "send", "would send", rendered.subject


def simulate(c: Container, shop_id: int, key: str, *, days: int, now: datetime | None = None,
             collections: Callable[[list[str]], frozenset[str]] | None = None) -> Simulation:
    """Replay the last `days` (1 to 90) of the shop's history through the live version of journey `key`.
    Raises LookupError (no such journey) or ValueError (days out of range). Reads only."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days is from 1 to {MAX_DAYS}")
    end = now or datetime.now(UTC)
    start = end - timedelta(days=days)
    with c.sessions() as s:
        version = jr.live(s, shop_id, key)
        shop = s.get(t.Shop, shop_id)
        if version is None or shop is None:
            raise LookupError(key)
        journey = version.journey
        base = Simulation(key, journey.version, journey.trigger, start, end, [])
        if journey.trigger in jr.DATE_RULES:
            found = _date_triggers(s, shop, journey.trigger, start, end)
            if found is None:
                return replace(base, unsupported=f"{journey.trigger} is a date rule that cannot be replayed yet")
            triggers = found
        else:
            triggers = [_event(r) for r in _events(s, shop_id, {journey.trigger}, start)
                        if r.occurred_at <= end and not (r.type == "CheckoutUpdated" and r.payload.get("completed"))]
        truncated = len(triggers) > MAX_ENROLLMENTS
        triggers = triggers[:MAX_ENROLLMENTS]
        run = _Run(c, s, shop, version, end, collections)
        run.prepare(triggers, start)
        waits = _events(s, shop_id, {st.wait_for for st in journey.steps if st.wait_for}, start)
        queue: list[tuple[datetime, int, int, _Due]] = []
        for seq, x in enumerate(triggers):
            run.enroll(x, seq, queue, waits)
        run.dispatch(queue)
    rows = sorted(run.rows, key=lambda r: (r.trigger_at, r.enrollment, [st.key for st in journey.steps].index(r.step)))
    return replace(base, rows=rows, truncated=truncated)


__all__ = ["MAX_DAYS", "Row", "Simulation", "mask", "simulate"]
