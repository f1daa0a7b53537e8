"""The dispatcher: claims due messages in batches, checks, renders, sends, and records what became of each.

A message row moves pending -> claimed (a batch, with a lease) -> sent | skipped | failed | parked | pending
again (deferred: quiet hours or the frequency cap; retried: the provider was down). Nothing is lost and nothing
goes twice when a dispatcher is killed:

- Claiming is one statement (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so dispatchers never share a row.
- Channels that can tell afterwards whether a message went (the embedded default's outbox, the sink) are asked
  when a dead dispatcher's lease runs out: sent ones are recorded as sent, the others are sent again. Their
  results are recorded once per batch.
- Channels that cannot (SMTP, SMS, webhooks) get each message marked `sending` (committed) just before the
  provider call, and its result committed just after. A row found `sending` after a crash is in doubt: it is
  parked with that reason, never sent again by itself (staff can send it again from the admin). At most one
  message per killed dispatcher is in doubt.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import threading
import time as stdtime
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

import structlog
from sqlalchemy import Table, bindparam, or_, select, text, update
from sqlalchemy.orm import Session

from app import journeys as jr
from app import links, preferences, referrals, rendering, segments
from app import message_context as mc
from app.core import backoff
from app.core.journeys import (
    Category,
    Channel,
    Contact,
    Defer,
    Facts,
    Journey,
    Policy,
    Send,
    Skip,
    Step,
    check,
    from_data,
    holds,
)
from app.core.ports import Channel as ChannelPort
from app.core.ports import DiscountRequest, OutboundMessage, SendResult, StorePlatform
from app.db import models as t
from app.db.engine import rowcount
from app.db.journeys import waited_too_long

if TYPE_CHECKING:
    from app.bootstrap import Container

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = backoff.ATTEMPTS  # about six hours of a failing provider, then parked for a person
CHANNEL_PARTS: dict[str, tuple[rendering.Part, ...]] = {"email": ("subject", "html", "text"), "sms": ("sms",)}
LOOKBACK = timedelta(days=31)  # the longest frequency window (a customer's monthly cap)
BUSY_WAIT = timedelta(seconds=5)  # a customer another dispatcher is sending marketing to: look again after this


def confirms(channel: ChannelPort) -> bool:
    return callable(getattr(channel, "delivered", None))


@dataclass
class Stats:
    claimed: int = 0
    sent: int = 0
    skipped: int = 0
    deferred: int = 0
    retried: int = 0
    failed: int = 0
    parked: int = 0
    cancelled: int = 0

    def add(self, other: Stats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Claimed:
    id: int
    shop_id: int
    enrollment_id: int
    journey_id: int
    step: str
    key: str
    customer_id: str | None
    category: str
    channel: str
    first_due_at: datetime | None
    latest_at: datetime | None
    attempts: int
    code: str | None
    priority: int
    lease: datetime


@dataclass
class Result:
    """A message's new state, written back in one statement per batch."""

    status: str
    due_at: datetime | None = None
    sent_at: datetime | None = None
    sent_channel: str | None = None
    recipient: str | None = None
    provider_id: str | None = None
    code: str | None = None
    reason: str | None = None
    error: str | None = None
    deferred: str | None = None
    attempts: int = 0


def discount_code(secret: str, message_key: str, prefix: str = "ENC") -> str:
    """A message's personal code, the same for every attempt to send it (so a retried send writes the same
    discount into the store, which the platforms take as no change): 10 characters a person can type."""
    digest = hmac.new(secret.encode(), f"code:{message_key}".encode(), hashlib.sha256).digest()
    return f"{prefix}-{base64.b32encode(digest).decode()[:10]}"


@dataclass
class Dispatcher:
    c: Container
    channels: Mapping[str, ChannelPort]
    platform_for: Callable[[int], StorePlatform] | None = None
    batch: int = 200
    lease_s: float = 120.0
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    together_s: float = 600.0  # how long a shop's products bought together are reused before being counted again
    _versions: dict[int, jr.Version] = field(default_factory=dict)
    # per shop: when counted, the products bought together, and the picks made from them for each basket
    _together: dict[int, tuple[float, mc.Together, dict[tuple[str, ...], tuple[rendering.Recommendation, ...]]]] = \
        field(default_factory=dict)

    # --- claiming ----------------------------------------------------------------------------------------------

    def claim(self, now: datetime) -> list[Claimed]:
        lease = now + timedelta(seconds=self.lease_s)
        m = t.Message
        due = select(m.id).where(m.status == "pending", m.due_at <= now).order_by(m.due_at).limit(self.batch)
        with self.c.sessions() as s, s.begin():
            if s.get_bind().dialect.name == "postgresql":
                # The batch is picked once, in a materialized CTE. Inside `id IN (subquery)` the planner may run
                # the locking subquery again for each row (a nested loop), and a rerun skips the rows this very
                # UPDATE has changed and hands out the next ones: a batch of 1 claimed 2 (the two-dispatcher
                # test found it).
                picked = due.with_for_update(skip_locked=True).cte("due").prefix_with("MATERIALIZED")
                which = m.id == picked.c.id
            else:
                which = m.id.in_(due.scalar_subquery())
            rows = s.execute(update(m).where(which, m.status == "pending")
                             .values(status="claimed", lease_until=lease)
                             .returning(m.id, m.shop_id, m.enrollment_id, m.journey_id, m.step, m.key,
                                        m.customer_external_id, m.category, m.channel, m.first_due_at, m.latest_at,
                                        m.attempts, m.code, m.priority)).all()
        return sorted((Claimed(*row, lease=lease) for row in rows), key=lambda x: x.id)  # type: ignore[call-arg]

    # --- one batch ---------------------------------------------------------------------------------------------

    def run_once(self) -> Stats:
        now = self.now()
        claimed = self.claim(now)
        stats = Stats(claimed=len(claimed))
        if claimed:
            self._process(claimed, now, stats)
        return stats

    def _version(self, s: Session, version_id: int) -> jr.Version:
        version = self._versions.get(version_id)
        if version is None:
            row = s.get(t.JourneyVersion, version_id)
            assert row is not None
            journey = from_data(row.definition)
            key = s.scalar(select(t.JourneyRow.key).where(t.JourneyRow.id == row.journey_id)) or journey.key
            version = jr.Version(row.journey_id, key, True, row.id, journey, jr.sources(row.templates, journey))
            self._versions[version_id] = version
        return version

    def _process(self, claimed: list[Claimed], now: datetime, stats: Stats) -> None:
        with self._marketing_locks(claimed) as busy:
            self._process_locked(claimed, now, stats, busy)

    @contextlib.contextmanager
    def _marketing_locks(self, claimed: list[Claimed]) -> Iterator[set[tuple[int, str]]]:
        """The frequency cap is one for all of a customer's marketing, however many dispatchers run: on
        PostgreSQL, a batch holds a session advisory lock per customer it may send marketing to, from before it
        reads their history until its results are committed. A customer another dispatcher holds is yielded as
        busy (their messages wait a few seconds, then see what the other one sent). The locks go with the
        connection if the process dies."""
        wanted = sorted({(x.shop_id, x.customer_id) for x in claimed if x.category == "marketing" and x.customer_id})
        if not wanted or self.c.engine.dialect.name != "postgresql":
            yield set()
            return
        keys = {_lock_key(shop_id, customer_id): (shop_id, customer_id) for shop_id, customer_id in wanted}
        with self.c.engine.connect() as conn:
            got: dict[int, bool] = {k: ok for k, ok in conn.execute(text(
                "SELECT k, pg_try_advisory_lock(k) FROM unnest(CAST(:keys AS bigint[])) k"), {"keys": sorted(keys)})}
            conn.commit()
            try:
                yield {who for key, who in keys.items() if not got.get(key)}
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(k) FROM unnest(CAST(:keys AS bigint[])) k"),
                             {"keys": sorted(k for k, ok in got.items() if ok)})
                conn.commit()

    def _process_locked(self, claimed: list[Claimed], now: datetime, stats: Stats, busy: set[tuple[int, str]]
                        ) -> None:
        results: dict[int, Result] = {}
        with self.c.sessions() as s:
            enrollments = mc.enrollments(s, (x.enrollment_id for x in claimed))
            enabled = dict(s.execute(select(t.JourneyRow.id, t.JourneyRow.enabled).where(
                t.JourneyRow.id.in_(sorted({x.journey_id for x in claimed})))).all())
            loaded = mc.load(
                s, {x.shop_id for x in claimed},
                [(x.shop_id, x.customer_id) for x in claimed],
                [(e.shop_id, e.order_external_id) for e in enrollments.values()],
                [(e.shop_id, e.checkout_external_id) for e in enrollments.values()])
            history = self._marketing_history(s, claimed, now)
            loaded.memo[TARGETS] = segments.targeting(s, [  # segments and tiers, for the steps whose conditions ask
                (x.shop_id, x.customer_id) for x in claimed
                if _targets(self._version(s, enrollments[x.enrollment_id].version_id).journey, x.step)])
            # When the frequency cap must choose among a customer's messages, the higher priority goes first.
            for x in sorted(claimed, key=lambda m: (-m.priority, m.first_due_at or now, m.id)):
                if x.category == "marketing" and (x.shop_id, x.customer_id) in busy:
                    results[x.id] = Result("pending", due_at=now + BUSY_WAIT, deferred="another dispatcher is "
                                           "sending this customer marketing")
                    continue
                enrollment = enrollments[x.enrollment_id]
                results[x.id] = self._one(s, x, enrollment, self._version(s, enrollment.version_id),
                                          bool(enabled.get(x.journey_id)), loaded, history, now)
        self._record(results, stats, claimed[0].lease)

    def _still_held(self, x: Claimed) -> bool:
        """Send only well inside the lease: past it, recovery may give the row to another dispatcher."""
        return self.now() < x.lease - timedelta(seconds=min(30.0, self.lease_s / 4))

    def _marketing_history(self, s: Session, claimed: list[Claimed], now: datetime
                           ) -> dict[tuple[int, str], list[datetime]]:
        """When each customer in the batch last received marketing (the frequency cap's memory)."""
        history: dict[tuple[int, str], list[datetime]] = defaultdict(list)
        wanted: dict[int, set[str]] = defaultdict(set)
        for x in claimed:
            if x.category == "marketing" and x.customer_id:
                wanted[x.shop_id].add(x.customer_id)
        for shop_id, ids in wanted.items():
            for customer_id, sent_at in s.execute(select(t.Message.customer_external_id, t.Message.sent_at).where(
                    t.Message.shop_id == shop_id, t.Message.customer_external_id.in_(sorted(ids)),
                    t.Message.sent_at > now - LOOKBACK, t.Message.category == "marketing",
                    t.Message.status == "sent")):
                if customer_id is not None and sent_at is not None:
                    history[(shop_id, customer_id)].append(sent_at)
        return history

    def _one(self, s: Session, x: Claimed, enrollment: mc.EnrollmentRow, version: jr.Version, enabled: bool,
             loaded: mc.Loaded, history: dict[tuple[int, str], list[datetime]], now: datetime) -> Result:
        shop = loaded.shops.get(x.shop_id)
        if shop is None or not shop.installed:
            return Result("cancelled", reason="shop has uninstalled Encore")
        if enrollment.status != "active":
            return Result("cancelled", reason=enrollment.exit_reason or "enrollment ended")
        if not enabled:
            return Result("cancelled", reason="journey switched off")
        if x.latest_at is not None and now > x.latest_at:
            return Result("skipped", reason="too late")
        journey = version.journey
        step = next((st for st in journey.steps if st.key == x.step), None)
        if step is None:
            return Result("skipped", reason="step no longer exists")
        customer = loaded.customers.get((x.shop_id, x.customer_id)) if x.customer_id else None
        if customer is not None and customer.redacted_at is not None:
            return Result("cancelled", reason="customer erased")
        facts = _facts(enrollment.facts)
        if step.condition is not None:
            if step.condition.any_collection:
                facts = replace(facts, collections=self._collections(x.shop_id, sorted(facts.products)))
            if step.condition.any_segment or step.condition.any_tier:
                keys, tier = cast(segments.Targets, loaded.memo.get(TARGETS, {})).get((x.shop_id, x.customer_id or ""),
                                                                                      (frozenset(), None))
                facts = replace(facts, segments=keys, tier=tier)
            if not holds(step.condition, facts):
                return Result("skipped", reason="condition not met")
        pref = loaded.prefs.get((x.shop_id, x.customer_id)) if x.customer_id else None
        contact = mc.contact_of(customer, pref, shop, enrollment.email)
        sent_before = history.get((x.shop_id, x.customer_id or ""), [])
        category = Category(x.category)
        decision = check(category, Channel(x.channel), contact, _rules(loaded, shop)[1], now, sent_before,
                         x.first_due_at or now)
        if isinstance(decision, Skip):
            return Result("skipped", reason=decision.reason)
        if isinstance(decision, Defer):
            return Result("pending", due_at=decision.until, deferred=decision.reason)
        assert isinstance(decision, Send)
        channel_name = decision.channel.value
        if channel_name not in self.channels:
            if x.channel != Channel.PREFERRED.value or "email" not in self.channels:
                return Result("skipped", reason=f"{channel_name} is not set up")
            channel_name = "email"
            if not contact.email:
                return Result("skipped", reason="no valid email address")
        result = self._send(s, x, enrollment, version, step, shop, customer, contact, loaded, channel_name, now)
        if result.status in ("sent", "recorded:sent") and category is Category.MARKETING and x.customer_id:
            sent_before.append(now)  # the next message in this batch for the same customer counts it
            history[(x.shop_id, x.customer_id)] = sent_before
        return result

    def _collections(self, shop_id: int, product_ids: list[str]) -> frozenset[str]:
        if self.platform_for is None or not product_ids:
            return frozenset()
        found = self.platform_for(shop_id).product_collections(product_ids)
        return frozenset().union(*found.values()) if found else frozenset()

    def _recommendations(self, s: Session, shop: t.Shop, products: list[str]) -> tuple[rendering.Recommendation, ...]:
        """The products bought together with these: counted once per shop every `together_s` seconds (one pass over
        its order lines), not once per message (a self-join of its order lines each time)."""
        if not products:
            return ()
        kept = self._together.get(shop.id)
        if kept is None or stdtime.monotonic() - kept[0] > self.together_s:
            kept = (stdtime.monotonic(), mc.bought_together(s, shop.id), {})
            self._together[shop.id] = kept
        basket = tuple(products)
        picked = kept[2].get(basket)
        if picked is None:
            if len(kept[2]) >= 10_000:
                kept[2].clear()  # bounded memory; the common baskets come back at once
            picked = kept[2][basket] = mc.recommendations_from(kept[1], shop, products)
        return picked

    def _incentive(self, x: Claimed, step: Step, shop: t.Shop, customer: mc.CustomerRow | None, now: datetime
                   ) -> rendering.DiscountCode | None:
        incentive = step.incentive
        if incentive is None:
            return None
        code = x.code or discount_code(self.c.settings.secret_key, f"{x.shop_id}:{x.key}")
        ends = now + incentive.expires_after
        if self.platform_for is None:
            raise RuntimeError("no store connection to write the discount code into")
        request = DiscountRequest(
            code=code, title=f"Encore {x.key.split(':', 1)[0]}", usage_limit=1, ends_at=ends,
            customer_id=customer.external_id if customer else None,
            percent_off=incentive.value if incentive.kind == "percent" else None,
            amount_off=incentive.value if incentive.kind == "amount" else None,
            currency=shop.currency if incentive.kind == "amount" else None)
        if incentive.kind == "free_shipping":
            request = replace(request, free_shipping=True)
        self.platform_for(x.shop_id).create_discount(request)
        kind = incentive.kind if incentive.kind in ("percent", "amount", "free_shipping") else "percent"
        return rendering.DiscountCode(code=code, kind=kind,  # type: ignore[arg-type]
                                      value=None if kind == "free_shipping" else incentive.value, expires_at=ends,
                                      currency=shop.currency if kind == "amount" else None)

    def _send(self, s: Session, x: Claimed, enrollment: mc.EnrollmentRow, version: jr.Version, step: Step,
              shop: t.Shop, customer: mc.CustomerRow | None, contact: Contact, loaded: mc.Loaded, channel_name: str,
              now: datetime) -> Result:
        settings = self.c.settings
        messaging = _rules(loaded, shop)[0]
        try:
            code = self._incentive(x, step, shop, customer, now)
        except Exception as exc:  # the store is down or refused: try the whole message again later
            return self._retry(x, f"discount code: {type(exc).__name__}: {str(exc)[:300]}", None)
        products = mc.product_ids(loaded, x.shop_id, enrollment.order_external_id)
        template = jr.template_for(version, step)
        uses = _source_text(template)
        customer_id = x.customer_id
        link_set = rendering.Links(
            preferences=links.preferences_url(settings, x.shop_id, customer_id) if customer_id else None,
            unsubscribe=links.unsubscribe_url(settings, x.shop_id, customer_id, x.id) if customer_id else None,
            review=mc.review_url(loaded, shop, enrollment.order_external_id),
            survey=links.survey_url(settings, x.id) if "links.survey" in uses else None,
            referral=referrals.link_for(self.c, x.shop_id, customer_id, now)
            if customer_id and "links.referral" in uses else None)
        context = rendering.RenderContext(
            shop=mc.shop_of(shop, messaging.support_email),
            customer=mc.customer_of(customer, shop, enrollment.email),
            order=mc.order_of(loaded, shop, enrollment.order_external_id),
            checkout=mc.checkout_of(loaded, shop, enrollment.checkout_external_id),
            code=code, links=link_set,
            recommendations=self._recommendations(s, shop, products) if "recommendations" in uses else (),
            tier=mc.tier_of(s, x.shop_id, customer_id, enrollment.trigger_at, enrollment.trigger_key)
            if "tier" in uses else None,
            points=mc.points_of(s, x.shop_id, customer_id, enrollment.trigger_key) if "points" in uses else None)
        missing = rendering.journey(step.template).missing(context) if step.template in _LIBRARY else []
        if missing and version.templates.get(step.key) is None:
            return Result("skipped", reason=f"nothing to show for {', '.join(missing)}")
        try:
            rendered = rendering.render(template, context, CHANNEL_PARTS.get(channel_name, rendering.PARTS))
        except rendering.RenderError as exc:
            return Result("parked", reason="template error", error=str(exc), attempts=x.attempts)
        to = {"email": contact.email, "sms": contact.phone, "webhook": messaging.webhook_url}[channel_name]
        if not to:
            return Result("skipped", reason=f"no {channel_name} destination")
        html = links.track(rendered.html, settings, x.id) if channel_name == "email" else rendered.html
        message = OutboundMessage(
            shop_id=x.shop_id, key=x.key, channel=channel_name,  # type: ignore[arg-type]
            to=to, subject=rendered.subject, html=html,
            text=rendered.sms if channel_name == "sms" else rendered.text,
            sender_name=messaging.sender_name, sender_address=messaging.sender_address,
            reply_to=messaging.reply_to or messaging.support_email,
            unsubscribe_url=link_set.unsubscribe if x.category == "marketing" else None,
            category=x.category,  # type: ignore[arg-type]
            metadata={"journey": version.key, "step": step.key, "customer_id": customer_id,
                      "order_id": enrollment.order_external_id, "code": code.code if code else None,
                      "event_type": f"journey.{version.key}", "occurred_at": now.isoformat()})
        channel = self.channels[channel_name]
        if not self._still_held(x) or (not confirms(channel) and not self._mark_sending(x)):
            return Result("lost", reason="lease expired")  # another dispatcher has it now: leave it alone
        try:
            outcome = channel.send(message)
        except Exception as exc:  # a channel must not raise; if one does, treat it as a transient failure
            outcome = SendResult.retry(f"{type(exc).__name__}: {exc}")
        result = self._outcome(x, outcome, channel_name, to, code.code if code else None, now)
        if outcome.reason == "unsubscribed" and channel_name == "sms" and customer_id:
            preferences.unsubscribe(self.c, x.shop_id, customer_id, channel="sms", source="provider STOP")
        if not confirms(channel):
            self._record({x.id: result}, Stats(), x.lease, sending=True)
            result = replace(result, status="recorded:" + result.status)
        return result

    def _outcome(self, x: Claimed, outcome: SendResult, channel: str, to: str, code: str | None, now: datetime
                 ) -> Result:
        if outcome.outcome == "sent":
            return Result("sent", sent_at=self.now(), sent_channel=channel, recipient=to, provider_id=outcome.provider_id,
                          code=code, attempts=x.attempts)
        if outcome.outcome == "retry":
            if outcome.reason == "throttled":  # nothing reached the provider: no attempt spent
                wait = outcome.retry_after or 1.0
                return Result("pending", due_at=now + timedelta(seconds=wait), deferred="rate limit", code=code,
                              attempts=x.attempts)
            return self._retry(x, outcome.error or outcome.reason or "retry", outcome.retry_after, code)
        if outcome.reason in ("invalid_recipient", "unsubscribed"):
            return Result("skipped", reason=outcome.reason.replace("_", " "), error=outcome.error, code=code,
                          attempts=x.attempts + 1)
        return Result("failed", reason=outcome.reason or "rejected", error=outcome.error, code=code,
                      attempts=x.attempts + 1)

    def _retry(self, x: Claimed, error: str, retry_after: float | None, code: str | None = None) -> Result:
        attempts = x.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            return Result("parked", reason="gave up after retries", error=error, code=code, attempts=attempts)
        wait = backoff.delay(attempts, at_least=retry_after or 0.0)
        return Result("pending", due_at=self.now() + wait, deferred="provider error", error=error, code=code,
                      attempts=attempts)

    # --- recording ---------------------------------------------------------------------------------------------

    def _mark_sending(self, x: Claimed) -> bool:
        with self.c.sessions() as s, s.begin():
            return bool(rowcount(s.execute(update(t.Message).where(
                t.Message.id == x.id, t.Message.status == "claimed", t.Message.lease_until == x.lease
            ).values(status="sending"))))

    def _record(self, results: Mapping[int, Result], stats: Stats, lease: datetime, *, sending: bool = False) -> None:
        """Write the batch's results, only into rows this dispatcher still holds (its lease, to the microsecond,
        is the claim's token)."""
        rows = []
        for message_id, r in results.items():
            if r.status == "lost":
                continue
            if r.status.startswith("recorded:"):
                _count(stats, r.status.split(":", 1)[1], r)
                continue
            _count(stats, r.status, r)
            rows.append({"id": message_id, "status": r.status, "due_at": r.due_at, "sent_at": r.sent_at,
                         "sent_channel": r.sent_channel, "recipient": r.recipient, "provider_id": r.provider_id,
                         "code": r.code, "reason": r.reason, "error": r.error, "deferred": r.deferred,
                         "attempts": r.attempts, "lease_until": None})
        if not rows:
            return
        held = "sending" if sending else "claimed"
        with self.c.sessions() as s, s.begin():
            table = cast(Table, t.Message.__table__)
            s.connection().execute(
                table.update().where(table.c.id == bindparam("_id"), table.c.status == held,
                                     table.c.lease_until == bindparam("_lease"))
                .values({k: bindparam(k) for k in rows[0] if k != "id"}),
                [{**{k: v for k, v in row.items() if k != "id"}, "_id": row["id"], "_lease": lease} for row in rows])

    # --- after a crash -------------------------------------------------------------------------------------------

    def recover(self) -> int:
        """Rows a dead dispatcher held: claimed ones go back to pending (or sent, when the channel confirms
        they went); `sending` ones are in doubt and parked. Also skips steps whose awaited event never came."""
        now = self.now()
        m = t.Message
        with self.c.sessions() as s, s.begin():
            q = select(m.id, m.shop_id, m.key, m.status, m.channel).where(
                or_(m.status == "claimed", m.status == "sending"), m.lease_until < now).limit(1000)
            if s.get_bind().dialect.name == "postgresql":
                q = q.with_for_update(skip_locked=True)
            rows = s.execute(q).all()
            confirming = [ch for ch in self.channels.values() if confirms(ch)]
            for message_id, shop_id, key, status, _ in rows:
                if status == "sending":
                    s.execute(update(m).where(m.id == message_id).values(
                        status="parked", lease_until=None, reason="in doubt",
                        error="the dispatcher stopped while sending: it may or may not have gone; send it again "
                              "from the admin if it did not"))
                    continue
                probe = OutboundMessage(shop_id=shop_id, key=key, channel="email", to="")
                went = any(ch.delivered(probe) for ch in confirming)  # type: ignore[attr-defined]
                s.execute(update(m).where(m.id == message_id).values(
                    status="sent" if went else "pending", lease_until=None,
                    sent_at=now if went else None, reason=None))
            skipped = waited_too_long(s, now)
        return len(rows) + skipped

    # --- running -------------------------------------------------------------------------------------------------

    def loop(self, stop: threading.Event, *, poll_s: float = 0.25, recover_every_s: float = 15.0) -> None:
        """Dispatch until `stop` is set: batch after batch while there is work, a short sleep when there is none."""
        last_recover = 0.0
        while not stop.is_set():
            try:
                if stdtime.monotonic() - last_recover > recover_every_s:
                    self.recover()
                    last_recover = stdtime.monotonic()
                stats = self.run_once()
            except Exception:  # the database restarting must not end the loop
                log.exception("dispatch_failed")
                stop.wait(1.0)
                continue
            if stats.claimed < self.batch:
                stop.wait(poll_s)


_LIBRARY = set(jr.DEFAULTS)
TARGETS = "targets"  # the batch's customers' segments and tiers, in Loaded.memo


def _targets(journey: Journey, step_key: str) -> bool:
    """Whether the step's condition names segments or tiers (read for its customer, once per batch)."""
    step = next((st for st in journey.steps if st.key == step_key), None)
    return step is not None and step.condition is not None and bool(step.condition.any_segment or step.condition.any_tier)


def _lock_key(shop_id: int, customer_id: str) -> int:
    """A customer's advisory lock key: 64 bits of a hash (a collision only makes a message wait a few seconds)."""
    digest = hashlib.blake2b(f"encore.cap:{shop_id}:{customer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _rules(loaded: mc.Loaded, shop: t.Shop) -> tuple[jr.Messaging, Policy]:
    """The shop's messaging settings and sending policy, worked out once per batch."""
    key = ("rules", shop.id)
    got = loaded.memo.get(key)
    if got is None:
        messaging = jr.Messaging.of(shop)
        got = loaded.memo[key] = (messaging, messaging.policy)
    return cast("tuple[jr.Messaging, Policy]", got)


@lru_cache(maxsize=1024)
def _source_text(template: rendering.TemplateSource) -> str:
    """All four parts' source: what the context must carry is looked up in it (a recommendation query and a
    survey link only for templates that show them)."""
    return "\n".join((template.subject, template.html, template.text, template.sms))


def _facts(stored: dict[str, Any]) -> Facts:
    total = stored.get("order_total")
    return Facts(orders_before=int(stored.get("orders_before") or 0),
                 order_total=None if total is None else Decimal(str(total)),
                 products=frozenset(stored.get("products") or ()))


def _count(stats: Stats, status: str, r: Result) -> None:
    if status == "pending":
        if r.deferred in ("provider error",):
            stats.retried += 1
        else:
            stats.deferred += 1
    elif hasattr(stats, status):
        setattr(stats, status, getattr(stats, status) + 1)


def resend(c: Container, shop_id: int, message_id: int) -> bool:
    """Staff asked to send a parked message again (after an in-doubt crash or a provider outage)."""
    with c.sessions() as s, s.begin():
        return bool(rowcount(s.execute(update(t.Message).where(
            t.Message.id == message_id, t.Message.shop_id == shop_id, t.Message.status.in_(("parked", "failed"))
        ).values(status="pending", due_at=datetime.now(UTC), attempts=0, reason=None, error=None))))


def build(c: Container, *, channels: Mapping[str, ChannelPort] | None = None, **options: Any) -> Dispatcher:
    """The dispatcher with the configured channels and store connections."""
    from app import shops
    from app.channels import email_channel, sms_channel, webhook_channel
    from app.channels.ratelimit import InProcessTokenBucket, RateLimiter, RedisTokenBucket

    if channels is None:
        limiter: RateLimiter = RedisTokenBucket.from_url(c.settings.redis_url) if c.settings.redis_url \
            else InProcessTokenBucket()
        made: dict[str, ChannelPort] = {"email": email_channel(c.settings, limiter),
                                        "webhook": webhook_channel(c.settings, limiter, lambda m: webhook_secret(c, m.shop_id))}
        sms = sms_channel(c.settings, limiter)
        if sms is not None:
            made["sms"] = sms
        channels = made
    return Dispatcher(c, channels, platform_for=lambda shop_id: shops.store_platform(c, shop_id), **options)


def webhook_secret(c: Container, shop_id: int) -> str:
    """The shop's outbound-webhook signing secret (Standard Webhooks' whsec_ form), derived from Encore's key."""
    raw = hmac.new(c.settings.secret_key.encode(), f"webhook-secret:{shop_id}".encode(), hashlib.sha256).digest()
    return "whsec_" + base64.b64encode(raw).decode()


def start_thread(c: Container, **options: Any) -> tuple[threading.Thread, threading.Event]:
    """The embedded default's dispatcher: a thread in the web process."""
    stop = threading.Event()
    dispatcher = build(c, **options)
    thread = threading.Thread(target=dispatcher.loop, args=(stop,), name="encore-dispatcher", daemon=True)
    thread.start()
    return thread, stop


__all__ = ["Dispatcher", "Stats", "build", "discount_code", "resend", "start_thread", "webhook_secret"]
