"""The referral program: a customer's code and link, the friend's first-order code written into the store,
the friend's first order found by that code, and the referrer's reward once the order is past its return window.

Why it is shaped this way:

- Attribution needs no cookie and survives a change of device: the friend's first-order code is theirs alone
  (single use, limited to their email where the store can do that), so an order that used it *is* the friend's
  first order, whoever placed it and wherever. `follow` sees every order event in the order's transaction.
- The friend's code is written like a reward's (`app.rewards`): the referral is stored `issuing` first, then
  the store is asked; a busy store is asked again with backoff by `sweep`, and after MAX_ATTEMPTS the
  referral's code is `failed` with the error (claiming again with the same email starts over, same code).
  Whoever writes a code first claims it by moving `next_attempt_at` a lease ahead, in one conditional UPDATE.
- Each change of a referral's status is one conditional UPDATE (`WHERE status = ...`), so two sweeps, or a
  sweep and a staff override, can never both reward one referral; the ledger key `referral:<id>` makes sure of
  it again. The fraud rules themselves are pure (`app.core.referrals.blocked`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import structlog
from babel.numbers import format_currency, format_decimal, format_percent
from babel.support import NullTranslations
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import badges, loyalty
from app.core import backoff, lift
from app.core.events import DomainEvent, OrderCancelled, OrderPaid, OrderRefunded
from app.core.loyalty import CODE_PREFIX, Balance, Entry, Posting, Reason, reward_code
from app.core.ports import DiscountRequest, StoreBusy, StorePlatform
from app.core.referrals import (
    OrderFacts,
    ReferralError,
    Settings,
    blocked,
    new_code,
    new_friend_code,
    normal_email,
)
from app.db.engine import insert_for, rowcount
from app.db.models import Customer, Order, Redemption, Referral, ReferralCode, ReferralProgramRow, Reward, Shop
from app.i18n import best_locale, translations

if TYPE_CHECKING:  # the bootstrap imports the unit of work, which imports this (through app.db.loyalty)
    from app.bootstrap import Container

log = structlog.get_logger(__name__)
DOMAIN = "referrals"  # the Babel domain of everything a shopper reads here and on the landing page
MAX_ATTEMPTS = backoff.ATTEMPTS  # about six hours of a busy or unreachable store
LEASE = timedelta(seconds=60)
BATCH = 100


class UnknownCode(ReferralError):
    pass


class ProgramOff(ReferralError):
    pass


class OwnReferral(ReferralError):
    pass


class InvalidEmail(ReferralError):
    pass


# --- the program ---------------------------------------------------------------------------------------------


def program(s: Session, shop_id: int) -> ReferralProgramRow | None:
    return s.scalar(select(ReferralProgramRow).where(ReferralProgramRow.shop_id == shop_id))


def configure(s: Session, shop_id: int, *, enabled: bool, friend_kind: str, friend_value: Decimal | None,
              friend_valid_days: int, referrer_points: int | None = None, referrer_reward_id: int | None = None,
              wait_days: int, cap_per_referrer: int | None, cap_window_days: int, holdout_percent: int | None = None,
              now: datetime) -> ReferralProgramRow:
    """Save the shop's program (ReferralError, and nothing saved, when a setting is wrong). The holdout's share
    stays as it was when not given."""
    settings = Settings(enabled, friend_kind, None if friend_kind == "free_shipping" else friend_value,
                        friend_valid_days, referrer_points, referrer_reward_id, wait_days, cap_per_referrer,
                        cap_window_days)
    try:
        holdout = None if holdout_percent is None else lift.holdout_percent(holdout_percent)
    except lift.HoldoutError as exc:
        raise ReferralError(str(exc)) from None
    if referrer_reward_id is not None:
        reward = s.get(Reward, referrer_reward_id)
        if reward is None or reward.shop_id != shop_id:
            raise ReferralError("the referrer's reward must be one of the shop's rewards")
    row = program(s, shop_id)
    if row is None:
        row = ReferralProgramRow(shop_id=shop_id, created_at=now)
        s.add(row)
    for name, value in vars(settings).items():
        setattr(row, name, value)
    if holdout is not None:
        row.holdout_percent = holdout
    row.updated_at = now
    s.flush()
    return row


def program_data(row: ReferralProgramRow | None) -> dict[str, Any]:
    if row is None:
        return {"enabled": False, "configured": False}
    return {"enabled": row.enabled, "configured": True, "friend_kind": row.friend_kind,
            "friend_value": None if row.friend_value is None else format(row.friend_value.normalize(), "f"),
            "friend_valid_days": row.friend_valid_days, "referrer_points": row.referrer_points,
            "referrer_reward_id": row.referrer_reward_id, "wait_days": row.wait_days,
            "cap_per_referrer": row.cap_per_referrer, "cap_window_days": row.cap_window_days,
            "holdout_percent": row.holdout_percent}


# --- codes, links and what shoppers read ---------------------------------------------------------------------


def code_for(s: Session, shop_id: int, customer_id: str, now: datetime) -> str:
    """The customer's referral code, drawn on first use (a code drawn twice in one shop draws again; two first
    uses at once make one code). In the caller's transaction."""
    for _ in range(5):
        found = s.scalar(select(ReferralCode.code).where(ReferralCode.shop_id == shop_id,
                                                         ReferralCode.customer_external_id == customer_id))
        if found is not None:
            return found
        s.execute(insert_for(s, ReferralCode).values(shop_id=shop_id, customer_external_id=customer_id,
                                                     code=new_code(), created_at=now).on_conflict_do_nothing())
    raise ReferralError("no unused referral code could be drawn")


def link(shop: Shop, code: str) -> str:
    """Where a referral link takes a friend: Shopify's app proxy, or the WordPress plugin on WooCommerce."""
    if shop.platform == "woocommerce":
        return f"{shop.domain}/?encore_ref={quote(code)}"
    return f"https://{shop.domain}/apps/encore/r/{quote(code)}"


def store_url(shop: Shop) -> str:
    return shop.domain if shop.platform == "woocommerce" else f"https://{shop.domain}"


def shop_now(shop: Shop, friend_code: str) -> str:
    """A link that applies the friend's code in the store's cart."""
    if shop.platform == "woocommerce":
        return f"{shop.domain}/?coupon={quote(friend_code)}"
    return f"https://{shop.domain}/discount/{quote(friend_code)}"


def _gettext(locale: str) -> NullTranslations:
    return translations(locale, DOMAIN)


def _value(row: ReferralProgramRow, currency: str, locale: str) -> dict[str, str]:
    if row.friend_kind == "percent" and row.friend_value is not None:
        return {"percent": str(format_percent(row.friend_value / 100, locale=locale))}
    if row.friend_kind == "amount" and row.friend_value is not None:
        return {"amount": str(format_currency(row.friend_value, currency, locale=locale))}
    return {}


def friend_offer(row: ReferralProgramRow, currency: str, locale: str, *, to_friend: bool) -> str:
    """The friend's offer as a sentence: told to the referrer (widget) or to the friend (landing page)."""
    locale = best_locale(locale)
    t, value = _gettext(locale), _value(row, currency, locale)
    if to_friend:
        if "percent" in value:
            return t.gettext("Get %(percent)s off your first order.") % value
        if "amount" in value:
            return t.gettext("Get %(amount)s off your first order.") % value
        return t.gettext("Get free shipping on your first order.")
    if "percent" in value:
        return t.gettext("Give your friends %(percent)s off their first order.") % value
    if "amount" in value:
        return t.gettext("Give your friends %(amount)s off their first order.") % value
    return t.gettext("Give your friends free shipping on their first order.")


def referrer_offer(s: Session, row: ReferralProgramRow, locale: str) -> str:
    locale = best_locale(locale)
    t = _gettext(locale)
    if row.referrer_points:
        points = str(format_decimal(row.referrer_points, locale=locale))
        return t.ngettext("Get %(points)s point for each friend's first order.",
                          "Get %(points)s points for each friend's first order.", row.referrer_points) % {
            "points": points}
    reward = s.get(Reward, row.referrer_reward_id) if row.referrer_reward_id else None
    return t.gettext("Get “%(reward)s” for each friend's first order.") % {"reward": reward.title if reward else ""}


def widget_data(s: Session, shop_id: int, customer_id: str, locale: str, now: datetime) -> dict[str, Any] | None:
    """What the storefront widget shows a customer about referring friends, None when the program is off or
    holds the customer out (no code is drawn for them: `app.core.lift`). May draw the customer's code: in the
    caller's transaction."""
    row, shop = program(s, shop_id), s.get(Shop, shop_id)
    if row is None or not row.enabled or shop is None:
        return None
    if lift.held_out(shop_id, lift.REFERRALS, customer_id, row.holdout_percent or 0):
        return None
    code = code_for(s, shop_id, customer_id, now)
    mine = (Referral.shop_id == shop_id, Referral.referrer_external_id == customer_id)
    invited = s.scalar(select(func.count()).select_from(Referral).where(*mine)) or 0
    rewarded = s.scalar(select(func.count()).select_from(Referral).where(*mine, Referral.status == "rewarded")) or 0
    return {"code": code, "link": link(shop, code),
            "friend_offer": friend_offer(row, shop.currency, locale, to_friend=False),
            "referrer_offer": referrer_offer(s, row, locale), "invited": int(invited), "rewarded": int(rewarded)}


@dataclass(frozen=True)
class Landing:
    """What a referral link's page shows: the shop, whether the code and the program are good, the offer."""

    shop_name: str
    store_url: str
    known: bool
    enabled: bool
    offer: str | None


def landing(s: Session, shop_id: int, code: str, locale: str) -> Landing:
    shop = s.get(Shop, shop_id)
    assert shop is not None  # the storefront request named an installed shop
    row = program(s, shop_id)
    known = _referral_code(s, shop_id, code) is not None
    enabled = row is not None and row.enabled
    offer = friend_offer(row, shop.currency, locale, to_friend=True) if row is not None and enabled else None
    return Landing(shop.name or shop.domain, store_url(shop), known, enabled, offer)


def _referral_code(s: Session, shop_id: int, code: str) -> ReferralCode | None:
    wanted = code.strip().upper()
    if not wanted or len(wanted) > 32:
        return None
    return s.scalar(select(ReferralCode).where(ReferralCode.shop_id == shop_id, ReferralCode.code == wanted))


# --- the friend's claim and their code in the store ----------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    id: int
    friend_code: str
    status: str  # the code in the store: issuing / issued / failed
    shop_now: str
    error: str | None


def claim(c: Container, shop_id: int, code: str, email: str, now: datetime,
          platform_for: Callable[[int], StorePlatform]) -> Claimed:
    """The friend behind `email` takes up `code`'s offer: their referral, and their first-order code written
    into the store. The same email again is the same referral and code, whichever link it came through (the
    first referrer keeps the friend). Raises InvalidEmail, UnknownCode,
    ProgramOff or OwnReferral, and then nothing has changed."""
    address = normal_email(email)
    if address is None:
        raise InvalidEmail("please enter a valid email address")
    for _ in range(3):  # the same email at the same moment elsewhere, or a friend code drawn twice: again
        try:
            referral_id, write = _claim(c, shop_id, code, address, now)
            break
        except IntegrityError:
            continue
    else:
        raise ReferralError("the referral could not be recorded; please try again")
    if write:
        _write(c, referral_id, now, platform_for)
    return _claimed(c, referral_id)


def _claim(c: Container, shop_id: int, code: str, email: str, now: datetime) -> tuple[int, bool]:
    """The referral's id, and whether this caller now holds the lease to write its code."""
    with c.sessions() as s, s.begin():
        row = program(s, shop_id)
        if row is None or not row.enabled:
            raise ProgramOff("this shop's referral program has ended")
        held = s.scalar(select(Referral).where(Referral.shop_id == shop_id, Referral.friend_email == email))
        if held is not None:
            return held.id, _restart(s, held, now)
        rc = _referral_code(s, shop_id, code)
        if rc is None:
            raise UnknownCode("this referral code does not exist")
        referrer_email = s.scalar(select(Customer.email).where(Customer.shop_id == shop_id,
                                                               Customer.external_id == rc.customer_external_id))
        if normal_email(referrer_email) == email:
            raise OwnReferral("this is your own referral link: share it with your friends instead")
        referral = Referral(shop_id=shop_id, referrer_external_id=rc.customer_external_id, referral_code=rc.code,
                            friend_email=email, friend_code=new_friend_code(), friend_code_status="issuing",
                            attempts=0, next_attempt_at=now + LEASE, status="invited", created_at=now, updated_at=now)
        s.add(referral)
        s.flush()
        return referral.id, True


def _restart(s: Session, r: Referral, now: datetime) -> bool:
    """A friend claiming again: a failed code is tried afresh (the same code), one due is written now."""
    if r.friend_code_status == "failed":
        return rowcount(s.execute(update(Referral).where(Referral.id == r.id, Referral.friend_code_status == "failed")
                                  .values(friend_code_status="issuing", attempts=0, next_attempt_at=now + LEASE,
                                          detail=None, updated_at=now))) == 1
    return r.friend_code_status == "issuing" and _lease(s, r.id, now)


def _lease(s: Session, referral_id: int, now: datetime) -> bool:
    due = or_(Referral.next_attempt_at.is_(None), Referral.next_attempt_at <= now)
    return rowcount(s.execute(update(Referral).where(Referral.id == referral_id, Referral.friend_code_status == "issuing",
                                                     due).values(next_attempt_at=now + LEASE))) == 1


def _claimed(c: Container, referral_id: int) -> Claimed:
    with c.sessions() as s:
        r = s.get(Referral, referral_id)
        assert r is not None
        shop = s.get(Shop, r.shop_id)
        assert shop is not None
        error = r.detail if r.friend_code_status != "issued" else None
        return Claimed(r.id, r.friend_code, r.friend_code_status, shop_now(shop, r.friend_code), error)


def _request(s: Session, r: Referral) -> DiscountRequest:
    row, shop = program(s, r.shop_id), s.get(Shop, r.shop_id)
    assert row is not None and shop is not None  # a referral is made under a program
    known = s.scalar(select(Customer.external_id).where(Customer.shop_id == r.shop_id,
                                                        func.lower(Customer.email) == r.friend_email).limit(1))
    value = row.friend_value if row.friend_kind != "free_shipping" else None
    return DiscountRequest(
        code=r.friend_code, title="Encore referral: a friend's first order", usage_limit=1,
        ends_at=r.created_at + timedelta(days=row.friend_valid_days), customer_id=known, email=r.friend_email,
        percent_off=value if row.friend_kind == "percent" else None,
        amount_off=value if row.friend_kind == "amount" else None,
        currency=shop.currency if row.friend_kind == "amount" else None, free_shipping=row.friend_kind == "free_shipping")


def _write(c: Container, referral_id: int, now: datetime, platform_for: Callable[[int], StorePlatform]) -> None:
    """Write the friend's code into the store, holding its lease. Writing the same code twice is no error for
    the stores, so a retry after a crash between the write and its record is harmless."""
    with c.sessions() as s:
        r = s.get(Referral, referral_id)
        assert r is not None
        shop_id, attempts, request = r.shop_id, r.attempts + 1, _request(s, r)
    issuing = (Referral.id == referral_id, Referral.friend_code_status == "issuing")
    try:
        store_id = platform_for(shop_id).create_discount(request)
    except (StoreBusy, OSError) as exc:  # requests' network errors are OSErrors
        error = f"{type(exc).__name__}: {exc}"[:500]
        if attempts >= MAX_ATTEMPTS:
            values: dict[str, Any] = {"friend_code_status": "failed", "next_attempt_at": None,
                                      "detail": f"the store stayed unavailable: {error}"}
        else:
            wait = backoff.delay(attempts)
            values = {"next_attempt_at": now + wait, "detail": error}
        log.warning("referral_code_retry", referral_id=referral_id, attempts=attempts)
    except Exception as exc:  # refused: retrying the same code will not help
        values = {"friend_code_status": "failed", "next_attempt_at": None,
                  "detail": f"the store refused the code: {type(exc).__name__}: {exc}"[:500]}
        log.warning("referral_code_refused", referral_id=referral_id, error=str(exc))
    else:
        values = {"friend_code_status": "issued", "friend_code_store_id": store_id, "next_attempt_at": None,
                  "detail": None}
    with c.sessions() as s, s.begin():
        s.execute(update(Referral).where(*issuing).values(attempts=attempts, updated_at=now, **values))


def issue_due(c: Container, now: datetime, platform_for: Callable[[int], StorePlatform]) -> int:
    """Friends' codes whose next try has come (a busy store, or a lease a killed worker left): written now."""
    with c.sessions() as s:
        due = list(s.scalars(select(Referral.id).where(Referral.friend_code_status == "issuing",
                                                       Referral.next_attempt_at <= now)
                             .order_by(Referral.next_attempt_at).limit(BATCH)))
    written = 0
    for referral_id in due:
        with c.sessions() as s, s.begin():
            mine = _lease(s, referral_id, now)
        if mine:
            _write(c, referral_id, now, platform_for)
            written += 1
    return written


# --- the friend's first order -------------------------------------------------------------------------------


def follow(s: Session, event: DomainEvent, now: datetime) -> None:
    """An order event, in its transaction: a paid order that used a friend's code marks their referral (and is
    judged); a cancellation or a refund before the reward voids it."""
    if isinstance(event, OrderPaid):
        _ordered(s, event, now)
    elif isinstance(event, OrderCancelled | OrderRefunded):
        _void(s, event.shop_id, event.order_id, "cancelled" if isinstance(event, OrderCancelled) else "refunded", now)


def _ordered(s: Session, event: OrderPaid, now: datetime) -> None:
    order = s.scalar(select(Order).where(Order.shop_id == event.shop_id, Order.external_id == event.order_id))
    if order is None or not order.discount_codes:
        return
    codes = [code.upper() for code in order.discount_codes.split(",")]  # ours are upper case; stores may lower them
    r = s.scalar(select(Referral).where(Referral.shop_id == event.shop_id, Referral.friend_code.in_(codes),
                                        Referral.status == "invited"))
    row = program(s, event.shop_id)
    if r is None or row is None:
        return
    reason = blocked(_facts(s, r, order, event.customer_id, row, now))
    values: dict[str, Any] = {"order_external_id": order.external_id, "friend_customer_external_id": event.customer_id,
                              "updated_at": now}
    if reason is not None:
        values.update(status="blocked", blocked_reason=reason[0], detail=reason[1])
    else:
        values.update(status="ordered", due_at=now + timedelta(days=row.wait_days))
    if rowcount(s.execute(update(Referral).where(Referral.id == r.id, Referral.status == "invited").values(**values))):
        gone = _gone(order)
        if gone is not None:  # the cancellation or refund was seen first
            _void(s, event.shop_id, order.external_id, gone, now)


def _facts(s: Session, r: Referral, order: Order, friend_id: str | None, row: ReferralProgramRow,
           now: datetime) -> OrderFacts:
    shop_id, referrer_id = r.shop_id, r.referrer_external_id
    referrer = s.execute(select(Customer.email, Customer.phone).where(
        Customer.shop_id == shop_id, Customer.external_id == referrer_id)).first()
    referrer_email = normal_email(referrer.email) if referrer else None
    theirs = [Order.customer_external_id == referrer_id]
    if referrer_email:
        theirs.append(func.lower(Order.email) == referrer_email)
    ship_tos = frozenset(t for t in s.scalars(select(Order.ship_to).where(
        Order.shop_id == shop_id, Order.id != order.id, Order.ship_to.is_not(None), or_(*theirs))) if t)
    friend_phone = s.scalar(select(Customer.phone).where(Customer.shop_id == shop_id,
                                                         Customer.external_id == friend_id)) if friend_id else None
    emails = {e for e in (normal_email(order.email), r.friend_email) if e}
    who = [func.lower(Order.email).in_(emails)] + ([Order.customer_external_id == friend_id] if friend_id else [])
    before = s.scalar(select(Order.id).where(Order.shop_id == shop_id, Order.id != order.id,
                                             Order.created_at < order.created_at, or_(*who)).limit(1))
    return OrderFacts(
        referrer_id=referrer_id, referrer_email=referrer_email, referrer_phone=referrer.phone if referrer else None,
        referrer_ship_tos=ship_tos, friend_customer_id=friend_id, order_email=order.email, friend_phone=friend_phone,
        order_ship_to=order.ship_to, friend_ordered_before=before is not None,
        referrer_rewarded_recently=_rewarded_recently(s, shop_id, referrer_id, row, now), cap=row.cap_per_referrer)


def _rewarded_recently(s: Session, shop_id: int, referrer_id: str, row: ReferralProgramRow, now: datetime) -> int:
    return int(s.scalar(select(func.count()).select_from(Referral).where(
        Referral.shop_id == shop_id, Referral.referrer_external_id == referrer_id, Referral.status == "rewarded",
        Referral.rewarded_at >= now - timedelta(days=row.cap_window_days))) or 0)


def _gone(order: Order) -> str | None:
    """Why an order no longer counts: cancelled, or (even partly) refunded."""
    if order.cancelled_at is not None or order.status == "cancelled":
        return "cancelled"
    if order.refunded_amount > 0 or order.status in ("refunded", "partially_refunded"):
        return "refunded"
    return None


def _void(s: Session, shop_id: int, order_id: str, reason: str, now: datetime) -> None:
    s.execute(update(Referral).where(Referral.shop_id == shop_id, Referral.order_external_id == order_id,
                                     Referral.status.in_(("ordered", "blocked")))
              .values(status="void", blocked_reason=reason, due_at=None, updated_at=now,
                      detail=f"the friend's order was {reason} before the referrer was rewarded"))


# --- the referrer's reward ----------------------------------------------------------------------------------


def sweep(c: Container, now: datetime, platform_for: Callable[[int], StorePlatform]) -> int:
    """The periodic step: friends' codes the store was busy for, then the rewards that came due. A reward code
    for a referrer is written by `app.rewards.issue_due`, like any reward's."""
    written = issue_due(c, now, platform_for)
    with c.sessions() as s:
        due = list(s.scalars(select(Referral.id).where(Referral.status == "ordered", Referral.due_at <= now)
                             .order_by(Referral.due_at).limit(BATCH)))
    return written + sum(_reward_due(c, referral_id, now) for referral_id in due)


def _reward_due(c: Container, referral_id: int, now: datetime) -> int:
    with c.sessions() as s, s.begin():
        claimed = update(Referral).where(Referral.id == referral_id, Referral.status == "ordered",
                                         Referral.due_at <= now)
        if not rowcount(s.execute(claimed.values(status="rewarded", rewarded_at=now, updated_at=now))):
            return 0  # another sweep has it, or it changed meanwhile
        r = s.get(Referral, referral_id)
        assert r is not None
        order = s.scalar(select(Order).where(Order.shop_id == r.shop_id, Order.external_id == r.order_external_id))
        gone = "cancelled" if order is None else _gone(order)
        row = program(s, r.shop_id)
        assert row is not None
        if gone is not None:
            r.status, r.blocked_reason, r.rewarded_at = "void", gone, None
            r.detail = f"the friend's order was {gone} before the referrer was rewarded"
            return 0
        recent = _rewarded_recently(s, r.shop_id, r.referrer_external_id, row, now) - 1  # this one counts already
        if row.cap_per_referrer is not None and recent >= row.cap_per_referrer:
            r.status, r.blocked_reason, r.rewarded_at = "blocked", "cap_reached", None
            r.detail = f"the referrer had {recent} rewarded referrals in the cap's window when this one came due"
            return 0
        if not row.referrer_points and (row.referrer_reward_id is None or s.get(Reward, row.referrer_reward_id) is None):
            r.status, r.blocked_reason, r.rewarded_at = "blocked", "no_reward", None
            r.detail = "the program names no reward for the referrer (was it deleted?)"
            return 0
        return _give(s, r, row, now)


def _give(s: Session, r: Referral, row: ReferralProgramRow, now: datetime, *, staff: str | None = None,
          note: str | None = None) -> int:
    """The referrer's reward, in the caller's transaction: points through the ledger, or a reward's code (a
    redemption of no points, written into the store by app.rewards)."""
    detail = {"action": "referral", "referral": str(r.id), "order": r.order_external_id or ""}
    reward = s.get(Reward, row.referrer_reward_id) if row.referrer_reward_id else None
    if row.referrer_points:
        loyalty.post(s, r.shop_id, r.referrer_external_id, [Posting(
            Entry(row.referrer_points, Balance.AVAILABLE, Reason.ACTION, f"referral:{r.id}"), detail=detail,
            staff=staff, note=note)], now)
        r.reward_points = row.referrer_points
    elif reward is not None:
        code = reward_code(CODE_PREFIX)
        s.add(Redemption(shop_id=r.shop_id, customer_external_id=r.referrer_external_id, reward_id=reward.id,
                         request_key=f"referral:{r.id}", points=0, code=code, status="issuing", attempts=0,
                         next_attempt_at=now, expires_at=now + timedelta(days=reward.valid_days), created_at=now,
                         updated_at=now))
        r.reward_code = code
    else:
        raise ReferralError("the program names no reward for the referrer")
    badges.award(s, r.shop_id, r.referrer_external_id, "first_referral", now, {"referral": str(r.id)})
    log.info("referral_rewarded", referral_id=r.id, shop_id=r.shop_id, override=staff is not None)
    return 1


def override(c: Container, shop_id: int, referral_id: int, *, staff: str, note: str, now: datetime) -> None:
    """Staff reward the referrer of a blocked referral anyway: who and why are kept with it and its posting."""
    if not note or not note.strip():
        raise ReferralError("an override needs a note saying why")
    if not staff or not staff.strip():
        raise ReferralError("an override names the staff member who made it")
    with c.sessions() as s, s.begin():
        claimed = update(Referral).where(Referral.id == referral_id, Referral.shop_id == shop_id,
                                         Referral.status == "blocked")
        if not rowcount(s.execute(claimed.values(status="rewarded", rewarded_at=now, updated_at=now,
                                                 overridden_by=staff.strip()[:255], override_note=note.strip()))):
            raise ReferralError("only a blocked referral can be rewarded anyway")
        r, row = s.get(Referral, referral_id), program(s, shop_id)
        assert r is not None and row is not None
        _give(s, r, row, now, staff=staff.strip()[:255], note=note.strip())


def link_for(c: Container, shop_id: int, customer_id: str, now: datetime) -> str | None:
    """The customer's referral link for a message (their code drawn and committed on first use), None when the
    program is off or holds them out: what the storefront widget would show them (`widget_data`)."""
    with c.sessions() as s, s.begin():
        data = widget_data(s, shop_id, customer_id, "en", now)
    return str(data["link"]) if data else None
