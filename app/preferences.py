"""What a customer chose about being contacted: the preference center, one-click unsubscribe, SMS STOP/START, and
the opens and clicks of the messages they got.

Every write commits before it returns, so the next dispatcher pass already sees it. Unsubscribing from all
marketing also ends, in the same transaction, what was already scheduled: each active enrollment of the customer
whose unsent messages are marketing is exited ("unsubscribed") and those messages are cancelled; transactional
messages (order updates) are left to go. An unknown shop, customer or message raises and writes nothing; a
redacted customer is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db.engine import insert_for, rowcount
from app.db.models import ContactPreference, Customer, Enrollment, Message, MessageClick, Shop

if TYPE_CHECKING:
    from app.bootstrap import Container

log = structlog.get_logger(__name__)
FREQUENCIES = ("normal", "weekly", "monthly")  # as often as the shop sends; at most once a week; once a month
CHANNELS = ("email", "sms")
UNSENT = ("pending", "waiting")  # the statuses app.db.journeys treats as not sent yet
UNKNOWN_YEAR = 2000  # the year stored with a birthday given as a month and a day (a leap year, for 29 February)


class UnknownContact(LookupError):
    """No such shop, or no such (unredacted) customer in it."""


class UnknownMessage(LookupError):
    """No such message, or its customer was redacted."""


class InvalidPreferences(ValueError):
    """A frequency, channel or birthday that is not one of the allowed values."""


@dataclass(frozen=True)
class Preferences:
    shop_id: int
    customer_id: str
    email: bool  # may receive marketing by email
    sms: bool  # may receive marketing by SMS
    frequency: str  # normal | weekly | monthly
    unsubscribed: bool  # from all marketing
    birthday: date | None
    first_name: str | None
    locale: str | None  # the customer's own, when the store knows it
    shop_name: str
    shop_locale: str


def birthday_from(month: int, day: int, year: int | None = None) -> date:
    """The date of a birthday given as a month and a day (InvalidPreferences when there is no such day)."""
    for y in (year, UNKNOWN_YEAR) if year else (UNKNOWN_YEAR,):
        try:
            return date(y, month, day)
        except (TypeError, ValueError):
            continue
    raise InvalidPreferences(f"not a real date: month {month}, day {day}")


def _contact(s: Session, shop_id: int, customer_id: str, *, lock: bool = False) -> tuple[Shop, Customer]:
    stmt = select(Customer, Shop).join(Shop, Shop.id == Customer.shop_id).where(
        Customer.shop_id == shop_id, Customer.external_id == customer_id, Customer.redacted_at.is_(None))
    row = s.execute(stmt.with_for_update(of=Customer) if lock else stmt).first()
    if row is None:
        raise UnknownContact(f"no customer {customer_id!r} in shop {shop_id}")
    return row[1], row[0]


def _preference(s: Session, shop_id: int, customer_id: str, now: datetime) -> ContactPreference:
    """The customer's row, created with the defaults if missing (safely against a concurrent creation)."""
    s.execute(insert_for(s, ContactPreference).values(shop_id=shop_id, customer_external_id=customer_id, updated_at=now)
              .on_conflict_do_nothing(index_elements=["shop_id", "customer_external_id"]))
    return s.scalars(select(ContactPreference).where(
        ContactPreference.shop_id == shop_id, ContactPreference.customer_external_id == customer_id)).one()


def _view(shop: Shop, customer: Customer, pref: ContactPreference | None) -> Preferences:
    return Preferences(
        shop_id=shop.id, customer_id=customer.external_id, email=pref.email if pref else True,
        sms=pref.sms if pref else True, frequency=pref.frequency if pref else "normal",
        unsubscribed=pref is not None and pref.unsubscribed_at is not None, birthday=customer.birthday,
        first_name=customer.first_name, locale=customer.locale, shop_name=shop.name or shop.domain,
        shop_locale=shop.locale)


def get(c: Container, shop_id: int, customer_id: str) -> Preferences:
    with c.sessions() as s:
        shop, customer = _contact(s, shop_id, customer_id)
        pref = s.scalars(select(ContactPreference).where(
            ContactPreference.shop_id == shop_id, ContactPreference.customer_external_id == customer_id)).first()
        return _view(shop, customer, pref)


def save(c: Container, shop_id: int, customer_id: str, *, email: bool, sms: bool, frequency: str,
         birthday: date | None) -> Preferences:
    """Store what the preference center's form says; committed when this returns."""
    if frequency not in FREQUENCIES:
        raise InvalidPreferences(f"frequency must be one of {', '.join(FREQUENCIES)}, not {frequency!r}")
    if birthday is not None and (not isinstance(birthday, date) or isinstance(birthday, datetime)):
        raise InvalidPreferences(f"a birthday is a date, not {birthday!r}")
    now = c.clock.now()
    with c.sessions() as s, s.begin():
        shop, customer = _contact(s, shop_id, customer_id, lock=True)
        pref = _preference(s, shop_id, customer_id, now)
        pref.email, pref.sms, pref.frequency, pref.updated_at = bool(email), bool(sms), frequency, now
        customer.birthday = birthday
        s.flush()
        view = _view(shop, customer, pref)
    log.info("preferences.saved", shop_id=shop_id, email=view.email, sms=view.sms, frequency=frequency)
    return view


def _end_marketing(s: Session, shop_id: int, customer_id: str, now: datetime) -> tuple[int, int]:
    """Cancel the unsent marketing messages of the customer's active enrollments and exit the enrollments that
    had nothing else left to send. Returns (enrollments exited, messages cancelled)."""
    active = select(Enrollment.id).where(Enrollment.shop_id == shop_id, Enrollment.customer_external_id == customer_id,
                                         Enrollment.status == "active")
    unsent = s.execute(select(Message.enrollment_id, Message.category).where(
        Message.enrollment_id.in_(active), Message.status.in_(UNSENT))).all()
    marketing = {e for e, category in unsent if category == "marketing"}
    other = {e for e, category in unsent if category != "marketing"}
    if not marketing:
        return 0, 0
    cancelled = rowcount(s.execute(update(Message).where(
        Message.enrollment_id.in_(sorted(marketing)), Message.category == "marketing", Message.status.in_(UNSENT),
    ).values(status="cancelled", reason="unsubscribed")))
    exited = rowcount(s.execute(update(Enrollment).where(
        Enrollment.id.in_(sorted(marketing - other)), Enrollment.status == "active",
    ).values(status="exited", exit_reason="unsubscribed", exited_at=now)))
    return exited, cancelled


def unsubscribe(c: Container, shop_id: int, customer_id: str, *, channel: str | None = None, source: str
                ) -> Preferences:
    """Stop marketing: by one channel ("email" or "sms"), or all of it (None), which also ends what is scheduled.
    `source` says where the request came from (one-click, preference center, SMS STOP) for the log."""
    if channel is not None and channel not in CHANNELS:
        raise InvalidPreferences(f"channel must be email, sms or None, not {channel!r}")
    now = c.clock.now()
    exited = cancelled = 0
    with c.sessions() as s, s.begin():
        shop, customer = _contact(s, shop_id, customer_id, lock=True)
        pref = _preference(s, shop_id, customer_id, now)
        if channel is None:
            pref.unsubscribed_at = pref.unsubscribed_at or now
            exited, cancelled = _end_marketing(s, shop_id, customer_id, now)
        else:
            setattr(pref, channel, False)
        pref.updated_at = now
        s.flush()
        view = _view(shop, customer, pref)
    log.info("preferences.unsubscribed", shop_id=shop_id, channel=channel or "all", source=source,
             enrollments_exited=exited, messages_cancelled=cancelled)
    return view


def resubscribe(c: Container, shop_id: int, customer_id: str, *, channel: str | None = None, source: str
                ) -> Preferences:
    """Undo an unsubscription: from all marketing (None), or one channel. What was cancelled stays cancelled."""
    if channel is not None and channel not in CHANNELS:
        raise InvalidPreferences(f"channel must be email, sms or None, not {channel!r}")
    now = c.clock.now()
    with c.sessions() as s, s.begin():
        shop, customer = _contact(s, shop_id, customer_id, lock=True)
        pref = _preference(s, shop_id, customer_id, now)
        if channel is None:
            pref.unsubscribed_at = None
        else:
            setattr(pref, channel, True)
        pref.updated_at = now
        s.flush()
        view = _view(shop, customer, pref)
    log.info("preferences.resubscribed", shop_id=shop_id, channel=channel or "all", source=source)
    return view


def _message(s: Session, message_id: int) -> Any:
    row = s.execute(select(Message.id, Message.shop_id, Message.customer_external_id).where(
        Message.id == message_id)).first()
    if row is None:
        raise UnknownMessage(f"no message {message_id}")
    if row.customer_external_id is not None and s.scalar(select(Customer.redacted_at).where(
            Customer.shop_id == row.shop_id, Customer.external_id == row.customer_external_id)) is not None:
        raise UnknownMessage(f"message {message_id} belongs to a redacted customer")
    return row


def record_open(c: Container, message_id: int, at: datetime) -> bool:
    """The message was opened at `at`; only the first open counts. True when this was the first."""
    with c.sessions() as s, s.begin():
        _message(s, message_id)
        first = rowcount(s.execute(update(Message).where(Message.id == message_id, Message.opened_at.is_(None))
                                   .values(opened_at=at)))
    return first > 0


def record_click(c: Container, message_id: int, url: str, at: datetime) -> None:
    """One click on one of the message's links (a click is an open too, when images were blocked)."""
    with c.sessions() as s, s.begin():
        m = _message(s, message_id)
        s.add(MessageClick(shop_id=m.shop_id, message_id=message_id, customer_external_id=m.customer_external_id,
                           url=url, at=at))
        s.execute(update(Message).where(Message.id == message_id, Message.clicked_at.is_(None)).values(clicked_at=at))
        s.execute(update(Message).where(Message.id == message_id, Message.opened_at.is_(None)).values(opened_at=at))


def sms_consent(c: Container, phone: str, *, opt_in: bool, shop_id: int | None = None, source: str) -> int:
    """An SMS STOP (or START) from `phone`: marketing by SMS off (or on) for every customer with that number, in
    every shop or in one. Returns how many customers it changed."""
    if not phone.strip():
        return 0
    with c.sessions() as s:
        stmt = select(Customer.shop_id, Customer.external_id).where(Customer.phone == phone, Customer.redacted_at.is_(None))
        found = s.execute(stmt if shop_id is None else stmt.where(Customer.shop_id == shop_id)).all()
    change = resubscribe if opt_in else unsubscribe
    for shop, customer_id in found:
        change(c, shop, customer_id, channel="sms", source=source)
    return len(found)
