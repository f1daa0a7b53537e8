"""Following up survey answers: the shop's routing settings, the follow-up item a low answer opens, the alert
about it, and staff resolving it. The rules themselves (what is low, what is high) are `app.core.feedback`'s.

Why it is shaped this way:

- The item is written in the answer's own transaction (`route`, called by `app.surveys.answer`): an answer is
  never stored without its follow-up, nor the reverse. One item per answer (unique per shop and survey response):
  a changed answer that stays low updates it, one that becomes low later opens it, and one that stops being low
  leaves it as it is (staff close an item, not the customer).
- The alert is an outbox of its own on the item's row (the `alert_*` columns): `pending` until every destination
  of the shop's settings (each alert address, and the webhook when one is set) has taken it, `none` when the shop
  has set no destination. `deliver_due` claims due items with a lease (a conditional UPDATE ... RETURNING, so two
  workers never hold one item), sends through the channels the journeys' dispatcher uses (SMTP, or the local
  outbox in the embedded default; webhooks signed per Standard Webhooks with the shop's derived secret), keeps
  each destination's outcome in `alert_detail` so that a retry sends only what has not gone, retries transient
  failures with backoff and gives up after MAX_ATTEMPTS. The webhook's id is the same on every retry
  (`feedback-alert:<item>`), and so is each email's Message-ID, so a receiver can drop a duplicate: a worker that
  dies after sending but before recording sends again once its lease has run out (at least once, never lost).
- Alerts go out when the sweeper calls `deliver_due`, not in the customer's request: a slow webhook must not hold
  up the thank-you page.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from html import escape
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import structlog
from babel.dates import format_datetime
from sqlalchemy import and_, case, exists, func, or_, select, update
from sqlalchemy.orm import Session

from app.channels.webhook import UnsafeDestination, check_destination
from app.core.feedback import InvalidRouting, Reason, Routing, routing_from, stored
from app.core.ports import Channel, OutboundMessage, SendResult
from app.db.engine import insert_for, rowcount
from app.db.models import Customer, FeedbackItem, Order, Shop, SurveyResponse
from app.i18n import best_locale, translations

if TYPE_CHECKING:
    from app.bootstrap import Container
    from app.config import Settings

log = structlog.get_logger(__name__)
DOMAIN = "feedback_admin"  # the Babel domain of the admin page and of the alert the merchant reads
MAX_ATTEMPTS = 6
LEASE = timedelta(minutes=5)
BATCH = 50
LIST_LIMIT = 200
STATUSES = ("open", "resolved")
MAX_NOTE = 2_000


class UnknownItem(LookupError):
    """No such follow-up item in this shop."""


class AlreadyResolved(ValueError):
    pass


class InvalidResolution(ValueError):
    """A resolution needs the staff member's name and a note: `field` says which is missing, "staff" or "note"."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


# --- settings ----------------------------------------------------------------------------------------------------


def settings_of(c: Container, shop_id: int) -> Routing:
    with c.sessions() as s:
        shop = s.get(Shop, shop_id)
        if shop is None:
            raise LookupError(shop_id)
        return stored(shop.feedback)


def save_settings(c: Container, shop_id: int, data: Any) -> Routing:
    """Replace the shop's routing with the checked settings (InvalidRouting, and nothing saved, when any is
    wrong). A webhook URL must be one Encore may call: https to a public host, outside development."""
    routing = routing_from(data)
    if routing.webhook_url:
        try:
            check_destination(routing.webhook_url, allow_private=c.settings.development)
        except UnsafeDestination as exc:
            raise InvalidRouting({"webhook_url": str(exc)}) from None
    with c.sessions() as s, s.begin():
        shop = s.get(Shop, shop_id)
        if shop is None:
            raise LookupError(shop_id)
        shop.feedback = routing.data()
    return routing


# --- routing an answer -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Routed:
    low: Reason | None  # why the answer needs following up (its item is open), or None
    high: bool  # good enough to invite a review and a referral


def route(s: Session, shop: Shop, response: SurveyResponse, now: datetime) -> Routed:
    """In the answer's transaction: a low answer opens its follow-up item, or updates it (the current reason)."""
    rules = stored(shop.feedback)
    reason = rules.low(response.score, response.nps)
    if reason is not None:
        f = FeedbackItem
        opened = s.execute(insert_for(s, f).values(
            shop_id=shop.id, response_id=response.id, customer_external_id=response.customer_external_id,
            order_external_id=response.order_external_id, reason=reason, status="open",
            alert_status="pending" if rules.alerts else "none", alert_attempts=0, created_at=now, updated_at=now,
        ).on_conflict_do_nothing(index_elements=["shop_id", "response_id"]).returning(f.id)).first()
        if opened is None:
            s.execute(update(f).where(f.shop_id == shop.id, f.response_id == response.id)
                      .values(reason=reason, updated_at=now))
        log.info("feedback.low_answer", shop_id=shop.id, response_id=response.id, reason=reason,
                 opened=opened is not None)
    return Routed(reason, rules.high(response.score, response.nps))


# --- the items, as staff see them --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    id: int
    shop_id: int
    status: str  # open / resolved
    reason: str  # low_satisfaction / detractor / both
    customer_id: str | None
    customer_name: str | None
    customer_email: str | None
    order_id: str | None
    order_name: str | None
    score: int
    nps: int | None
    comment: str | None
    answered_at: datetime  # the answer's latest change
    alert_status: str  # pending / sent / failed / none
    alert_detail: dict[str, Any]
    alert_attempts: int
    alert_error: str | None
    resolved_by: str | None
    resolution_note: str | None
    resolved_at: datetime | None
    created_at: datetime

    def data(self) -> dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}


def _items(s: Session, shop_id: int, *where: Any, limit: int = LIST_LIMIT) -> list[Item]:
    f, r = FeedbackItem, SurveyResponse
    rows = s.execute(
        select(f, r.score, r.nps, r.comment, r.updated_at, Customer.first_name, Customer.last_name, Customer.email,
               Order.name, Order.email)
        .join(r, r.id == f.response_id)
        .outerjoin(Customer, and_(Customer.shop_id == f.shop_id, Customer.external_id == f.customer_external_id))
        .outerjoin(Order, and_(Order.shop_id == f.shop_id, Order.external_id == f.order_external_id))
        .where(f.shop_id == shop_id, *where)
        .order_by(case((f.status == "open", 0), else_=1), f.created_at.desc(), f.id.desc()).limit(limit)).all()
    return [Item(
        id=i.id, shop_id=i.shop_id, status=i.status, reason=i.reason, customer_id=i.customer_external_id,
        customer_name=" ".join(n for n in (first, last) if n) or None, customer_email=email or order_email,
        order_id=i.order_external_id, order_name=order_name or None, score=score, nps=nps, comment=comment,
        answered_at=answered_at, alert_status=i.alert_status, alert_detail=dict(i.alert_detail or {}),
        alert_attempts=i.alert_attempts, alert_error=i.alert_error, resolved_by=i.resolved_by,
        resolution_note=i.resolution_note, resolved_at=i.resolved_at, created_at=i.created_at)
        for i, score, nps, comment, answered_at, first, last, email, order_name, order_email in rows]


def items(c: Container, shop_id: int, status: str | None = None) -> list[Item]:
    """The shop's items, open ones first, newest first within each (at most LIST_LIMIT)."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"status is one of {', '.join(STATUSES)}")
    with c.sessions() as s:
        return _items(s, shop_id, *(() if status is None else (FeedbackItem.status == status,)))


def counts(c: Container, shop_id: int) -> dict[str, int]:
    """How many of the shop's items are open and resolved."""
    f = FeedbackItem
    with c.sessions() as s:
        found = {status: int(n) for status, n in s.execute(
            select(f.status, func.count()).where(f.shop_id == shop_id).group_by(f.status))}
    return {status: found.get(status, 0) for status in STATUSES}


def item(c: Container, shop_id: int, item_id: int) -> Item:
    with c.sessions() as s:
        found = _items(s, shop_id, FeedbackItem.id == item_id)
    if not found:
        raise UnknownItem(f"no follow-up item {item_id}")
    return found[0]


def resolve(c: Container, shop_id: int, item_id: int, *, staff: Any, note: Any, now: datetime) -> Item:
    """Mark an open item resolved by `staff`, saying how (InvalidResolution, UnknownItem or AlreadyResolved, and
    nothing changed, otherwise)."""
    who = staff.strip() if isinstance(staff, str) else ""
    why = note.strip() if isinstance(note, str) else ""
    if not who or len(who) > 255:
        raise InvalidResolution("a resolution names the staff member who resolved it (up to 255 characters)", "staff")
    if not why or len(why) > MAX_NOTE:
        raise InvalidResolution(f"a resolution needs a note saying what was done (up to {MAX_NOTE:,} characters)",
                                "note")
    f = FeedbackItem
    with c.sessions() as s, s.begin():
        done = rowcount(s.execute(update(f).where(f.id == item_id, f.shop_id == shop_id, f.status == "open").values(
            status="resolved", resolved_by=who, resolution_note=why, resolved_at=now)))
        if not done:
            status = s.scalar(select(f.status).where(f.id == item_id, f.shop_id == shop_id))
            if status is None:
                raise UnknownItem(f"no follow-up item {item_id}")
            raise AlreadyResolved(f"follow-up item {item_id} is resolved already")
    log.info("feedback.resolved", shop_id=shop_id, item_id=item_id)
    return item(c, shop_id, item_id)


# --- alerts ------------------------------------------------------------------------------------------------------


def admin_url(settings: Settings, shop: Shop) -> str:
    """Where the merchant opens Encore: the app in Shopify admin, or the plugin's page in WordPress."""
    if shop.platform == "woocommerce":
        return f"{shop.domain}/wp-admin/admin.php?page=encore"
    return f"{settings.shopify_admin_origin}/store/{shop.domain.split('.')[0]}/apps/{settings.shopify_api_key}"


def _alert(settings: Settings, shop: Shop, it: Item, destination: str, rules: Routing) -> OutboundMessage:
    """The alert for one destination ("email:<address>" or "webhook"), in the shop's language."""
    from app.journeys import Messaging  # the journeys module imports the rendering package: only when sending

    locale = best_locale(shop.locale)
    _ = translations(locale, DOMAIN).gettext
    who = it.customer_name or it.customer_email or it.customer_id or _("A guest")
    nps = "–" if it.nps is None else str(it.nps)
    url = admin_url(settings, shop)
    reasons = {"low_satisfaction": _("Low satisfaction score"), "detractor": _("Would not recommend the shop (NPS)"),
               "both": _("Low satisfaction score, and would not recommend the shop (NPS)")}
    answered = format_datetime(it.answered_at, "medium", tzinfo=ZoneInfo(shop.timezone or "UTC"), locale=locale)
    rows = [(_("Customer"), " ".join(x for x in (it.customer_name, f"<{it.customer_email}>" if it.customer_email
                                                  else None) if x) or who),
            (_("Order"), it.order_name or it.order_id or "–"), (_("Satisfaction"), f"{it.score} / 5"),
            (_("Likelihood to recommend"), f"{nps} / 10"), (_("Comment"), it.comment or _("No comment")),
            (_("Why it is flagged"), reasons.get(it.reason, it.reason)), (_("Answered"), answered)]
    intro = _("A customer gave a low answer to the satisfaction survey. It stays open in Encore's follow-up list "
              "until someone marks it resolved.")
    link, button = _("Follow it up in Encore: %(url)s") % {"url": url}, _("Open the follow-up list")
    subject = _("Low survey answer from %(customer)s: %(score)s/5, NPS %(nps)s") % {
        "customer": who, "score": it.score, "nps": nps}
    text = "\n\n".join([intro, "\n".join(f"{k}: {v}" for k, v in rows), link]) + "\n"
    html = (f'<!DOCTYPE html><html lang="{locale}"><body><p>{escape(intro)}</p><table>'
            + "".join(f'<tr><th align="left">{escape(k)}</th><td>{escape(v)}</td></tr>' for k, v in rows)
            + f'</table><p><a href="{escape(url)}">{escape(button)}</a></p></body></html>')
    messaging = Messaging.of(shop)
    webhook = destination == "webhook"
    return OutboundMessage(
        shop_id=shop.id, key=f"feedback-alert:{it.id}" + ("" if webhook else f":{destination[len('email:'):]}"),
        channel="webhook" if webhook else "email", to=rules.webhook_url if webhook else destination[len("email:"):],
        subject=subject, html=html, text=text, sender_name="Encore", sender_address=messaging.sender_address,
        category="transactional", metadata={
            "event_type": "feedback.low_answer", "occurred_at": it.answered_at.isoformat(), "item_id": it.id,
            "shop": shop.domain, "reason": it.reason, "score": it.score, "nps": it.nps, "comment": it.comment,
            "customer": {"id": it.customer_id, "name": it.customer_name, "email": it.customer_email},
            "order": {"id": it.order_id, "name": it.order_name}, "admin_url": url})


def _due(now: datetime) -> tuple[Any, ...]:
    """An alert is due when it is pending, its retry time has come, and no live lease holds it."""
    f = FeedbackItem
    return (f.alert_status == "pending", or_(f.alert_next_at.is_(None), f.alert_next_at <= now),
            or_(f.alert_lease_until.is_(None), f.alert_lease_until < now))


def any_due(c: Container, now: datetime) -> bool:
    """Whether deliver_due would find work: one indexed query, so that `encore worker` asks a work horse (a fork)
    to deliver alerts only when there are some."""
    with c.sessions() as s:
        return bool(s.scalar(select(exists().where(*_due(now)))))


def deliver_due(c: Container, now: datetime, channels: Mapping[str, Channel] | None = None, limit: int = BATCH
                ) -> int:
    """Send the alerts that are due: new ones, retries whose time has come, and those a dead worker's lease left.
    Returns how many items were worked on. `channels` are the dispatcher's email and webhook channels
    (`app.dispatch.build`) unless given."""
    f = FeedbackItem
    lease, due = now + LEASE, _due(now)
    with c.sessions() as s, s.begin():
        q = select(f.id).where(*due).order_by(f.created_at, f.id).limit(limit)
        if s.get_bind().dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        ids = list(s.scalars(q))
        claimed = sorted(s.scalars(update(f).where(f.id.in_(ids), *due).values(alert_lease_until=lease)
                                   .returning(f.id))) if ids else []
    if not claimed:
        return 0
    if channels is None:
        from app import dispatch  # the dispatcher imports the journeys and rendering: only when sending

        channels = dispatch.build(c).channels
    for item_id in claimed:
        try:
            _deliver(c, item_id, lease, now, channels)
        except Exception:  # one item must not hold up the others: its lease runs out and it is tried again
            log.exception("feedback.alert_failed", item_id=item_id)
    return len(claimed)


def _deliver(c: Container, item_id: int, lease: datetime, now: datetime, channels: Mapping[str, Channel]) -> str:
    with c.sessions() as s:
        row = s.execute(select(FeedbackItem.shop_id, Shop).join(Shop, Shop.id == FeedbackItem.shop_id)
                        .where(FeedbackItem.id == item_id)).first()
        if row is None:
            return "gone"  # the shop, and with it the item, was deleted since it was claimed
        shop = row.Shop
        [it] = _items(s, shop.id, FeedbackItem.id == item_id)
    rules = stored(shop.feedback)
    destinations = [f"email:{a}" for a in rules.emails] + (["webhook"] if rules.webhook_url else [])
    detail = dict(it.alert_detail)
    started = time.monotonic()
    for destination in destinations:
        if detail.get(destination, {}).get("status") in ("sent", "failed"):
            continue  # taken already, or refused for good: never twice
        if time.monotonic() - started > LEASE.total_seconds() / 2:
            break  # the rest on the next round, well inside the lease
        channel = channels.get("webhook" if destination == "webhook" else "email")
        if channel is None:
            outcome = SendResult.failed(f"no {destination.split(':')[0]} channel is set up", reason="config")
        else:
            try:
                outcome = channel.send(_alert(c.settings, shop, it, destination, rules))
            except Exception as exc:  # a channel must not raise; if one does, try again later
                outcome = SendResult.retry(f"{type(exc).__name__}: {exc}")
        detail[destination] = {"status": outcome.outcome, "at": now.isoformat(), "error": outcome.error,
                               "retry_after": outcome.retry_after}
    return _record(c, it, lease, now, destinations, detail)


def _record(c: Container, it: Item, lease: datetime, now: datetime, destinations: list[str],
            detail: dict[str, Any]) -> str:
    """The round's outcome, written only while this worker still holds the lease."""
    outcomes = {d: detail.get(d, {}) for d in destinations}
    attempts = it.alert_attempts + 1
    waiting = [o for o in outcomes.values() if o.get("status") not in ("sent", "failed")]
    next_at = None
    if not destinations:
        status = "none"  # the shop took its destinations away since
    elif not waiting:
        status = "sent" if all(o["status"] == "sent" for o in outcomes.values()) else "failed"
    elif attempts >= MAX_ATTEMPTS:
        status = "failed"  # given up: what was still being retried is failed too
        detail = {**detail, **{d: {**o, "status": "failed"} for d, o in outcomes.items() if o.get("status") == "retry"}}
    else:
        status = "pending"
        retried = [o for o in waiting if o.get("status") == "retry"]
        if retried:
            after = max(float(o.get("retry_after") or 0) for o in retried)
            next_at = now + timedelta(seconds=max(after, min(3600.0, 60.0 * 2 ** (attempts - 1))
                                                  * random.uniform(0.8, 1.2)))
    errors = "; ".join(f"{d}: {o['error']}" for d, o in outcomes.items() if o.get("error")) or None
    f = FeedbackItem
    with c.sessions() as s, s.begin():
        kept = rowcount(s.execute(update(f).where(f.id == it.id, f.alert_lease_until == lease).values(
            alert_status=status, alert_detail=detail, alert_attempts=attempts, alert_next_at=next_at,
            alert_lease_until=None, alert_error=errors[:2000] if errors else None)))
    log.info("feedback.alert", shop_id=it.shop_id, item_id=it.id, status=status, attempts=attempts, kept=bool(kept))
    return status
