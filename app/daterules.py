"""Date rules: journeys that start on a moment Encore computes instead of on a store event.

Birthday (the customer's birthday, local midnight), FirstOrderAnniversary (each year after the first
non-cancelled order), Replenishment (a reminder before a consumable product is predicted to run out) and WinBack
(one typical reorder gap after the last order), PointsExpiring (`REMIND_BEFORE` ahead of the moment an inactive
account's available points expire, `loyalty_accounts.last_activity_at` + the program's `expire_after_days`;
any activity moves that moment and makes a new occasion). The sweeper calls `run` often; each installed shop is scanned
at most once an hour (`shops.date_rules_at`), and a scan looks back over each journey's `max_event_age`, so a
missed hour (or day) loses nothing and a moment seen twice enrolls once (one enrollment per occasion).

The reads are set-based: one query per rule and shop, whatever the number of customers; what SQLite and
PostgreSQL would compute differently (month and day of a date, medians, zones) is done in Python by the pure
functions of app.core.dates. A product's reorder interval is the one stored in `product_reorder_intervals` (the
merchant's own, else the median the nightly analytics refresh learned); only a shop never refreshed has its
intervals learned here, from every purchase, at each scan.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import ColumnElement, Float, and_, cast, func, or_, select, update
from sqlalchemy.orm import Session

from app.core import dates
from app.core.enrollment import DateReached, enroll_on_date
from app.core.journeys import enrollment_key
from app.core.ports import LiveJourney
from app.db.engine import rowcount
from app.db.models import (
    AnalyticsRun,
    Customer,
    Enrollment,
    LoyaltyAccount,
    LoyaltyProgramRow,
    Order,
    OrderLine,
    ProductReorderInterval,
    Shop,
)
from app.db.uow import SqlUnitOfWork

if TYPE_CHECKING:
    from app.bootstrap import Container

log = structlog.get_logger(__name__)

RULES = ("Birthday", "FirstOrderAnniversary", "Replenishment", "WinBack", "PointsExpiring")
REMIND_BEFORE = timedelta(days=14)  # the points_expiry journey's lead (defaults/points_expiry/journey.toml)
EVERY = timedelta(hours=1)  # a shop is scanned again once its last scan is this old

Finder = Callable[[Session, int, str, datetime, datetime], list[dates.Due]]


def _reachable(customer_id: object, redacted_at: object) -> bool:
    """A customer Encore may write to: one it knows (a customers row) that was not erased."""
    return customer_id is not None and redacted_at is None


def birthdays(s: Session, shop_id: int, shop_tz: str, start: datetime, end: datetime) -> list[dates.Due]:
    # IN (one uncorrelated subquery), not a correlated EXISTS: without statistics SQLite would search each
    # customer's orders through the (shop_id, created_at) index, every order of the shop per customer.
    has_order = Customer.external_id.in_(select(Order.customer_external_id).where(
        Order.shop_id == shop_id, Order.customer_external_id.is_not(None)))
    rows = s.execute(select(Customer.external_id, Customer.birthday, Customer.timezone).where(
        Customer.shop_id == shop_id, Customer.birthday.is_not(None), Customer.redacted_at.is_(None), has_order))
    return dates.birthdays_due(((cid, born, tz or shop_tz) for cid, born, tz in rows if born is not None), start, end)


def anniversaries(s: Session, shop_id: int, shop_tz: str, start: datetime, end: datetime) -> list[dates.Due]:
    live = [Order.shop_id == shop_id, Order.cancelled_at.is_(None), Order.status != "cancelled",
            Order.customer_external_id.is_not(None)]
    first = (select(Order.customer_external_id.label("customer"), func.min(Order.created_at).label("at"))
             .where(*live).group_by(Order.customer_external_id).subquery())
    rows = s.execute(select(Order.customer_external_id, Order.external_id, Order.created_at, Customer.timezone)
                     .join(first, and_(first.c.customer == Order.customer_external_id, first.c.at == Order.created_at))
                     .join(Customer, and_(Customer.shop_id == shop_id,
                                          Customer.external_id == Order.customer_external_id))
                     .where(*live, Customer.redacted_at.is_(None)).order_by(Order.id))
    firsts: dict[str, tuple[str, str, datetime, str | None]] = {}
    for customer, order_id, at, tz in rows:
        if customer is None:
            continue
        firsts.setdefault(customer, (customer, order_id, at, tz or shop_tz))  # two at the same instant: the lower id
    return dates.anniversaries_due(firsts.values(), start, end)


def _interval_days() -> ColumnElement[float | None]:
    """A product's stored reorder interval in days: the merchant's own where set, else the learned median."""
    p = ProductReorderInterval
    return func.coalesce(cast(p.merchant_days, Float), p.median_days)


def stored_intervals(s: Session, shop_id: int) -> dict[str, timedelta]:
    """Reorder intervals stored per product (product id -> interval): the merchant's own days where set (0: never
    remind), else the median the nightly analytics refresh learned (`app.analytics.refresh`)."""
    p = ProductReorderInterval
    rows = s.execute(select(p.product_external_id, _interval_days()).where(p.shop_id == shop_id,
                                                                         _interval_days().is_not(None)))
    return {product: timedelta(days=float(days)) for product, days in rows if days is not None}


def refreshed(s: Session, shop_id: int) -> bool:
    """Whether the shop's analytics were refreshed (so its reorder intervals are learned nightly, not here)."""
    return s.scalar(select(AnalyticsRun.id).where(AnalyticsRun.shop_id == shop_id, AnalyticsRun.status == "done")
                    .limit(1)) is not None


def replenishments(s: Session, shop_id: int, shop_tz: str, start: datetime, end: datetime) -> list[dates.Due]:
    """Latest purchases of consumable products whose reminder came due. A shop the nightly refresh has learned the
    intervals of reads only the purchases of products with a stored interval, and learns nothing here; a shop never
    refreshed learns them from all its purchases (`dates.replenishments_due`), the stored ones standing for those."""
    intervals = stored_intervals(s, shop_id)
    nightly = refreshed(s, shop_id)
    if nightly and not intervals:
        return []
    query = (select(Order.customer_external_id, Order.external_id, Order.created_at, OrderLine.product_external_id,
                    OrderLine.quantity, Customer.id, Customer.redacted_at)
             .join(OrderLine, OrderLine.order_id == Order.id)
             .outerjoin(Customer, and_(Customer.shop_id == shop_id, Customer.external_id == Order.customer_external_id))
             .where(Order.shop_id == shop_id, Order.cancelled_at.is_(None), Order.status != "cancelled",
                    Order.customer_external_id.is_not(None), OrderLine.product_external_id.is_not(None)))
    if nightly:  # every product read has its interval stored, so the learning below changes nothing
        p = ProductReorderInterval
        query = query.where(OrderLine.product_external_id.in_(
            select(p.product_external_id).where(p.shop_id == shop_id, _interval_days() > 0)))
    rows = s.execute(query)
    quantities: dict[tuple[str, str], int] = {}
    seen: dict[tuple[str, str], tuple[str, datetime]] = {}
    reachable: set[str] = set()
    for customer, order_id, at, product, quantity, known, redacted_at in rows:
        if customer is None or product is None:
            continue
        key = (order_id, product)
        quantities[key] = quantities.get(key, 0) + max(0, int(quantity or 0))
        seen[key] = (customer, at)
        if _reachable(known, redacted_at):
            reachable.add(customer)
    purchases = [dates.Purchase(customer, order_id, product, at, quantities[(order_id, product)] or 1)
                 for (order_id, product), (customer, at) in seen.items()]
    due = dates.replenishments_due(purchases, start, end, intervals=intervals)
    return [d for d in due if d.customer_id in reachable]


def win_backs(s: Session, shop_id: int, shop_tz: str, start: datetime, end: datetime) -> list[dates.Due]:
    rows = s.execute(
        select(Order.customer_external_id, Order.external_id, Order.created_at, Customer.id, Customer.redacted_at)
        .outerjoin(Customer, and_(Customer.shop_id == shop_id, Customer.external_id == Order.customer_external_id))
        .where(Order.shop_id == shop_id, Order.cancelled_at.is_(None), Order.status != "cancelled",
               Order.customer_external_id.is_not(None)))
    orders, reachable = [], set()
    for customer, order_id, at, known, redacted_at in rows:
        if customer is None:
            continue
        orders.append(dates.Placed(customer, order_id, at))
        if _reachable(known, redacted_at):
            reachable.add(customer)
    return [d for d in dates.win_backs_due(orders, start, end) if d.customer_id in reachable]


def points_expiring(s: Session, shop_id: int, shop_tz: str, start: datetime, end: datetime) -> list[dates.Due]:
    """Accounts with available points whose reminder moment (expiry - REMIND_BEFORE) falls in [start, end]."""
    days = s.scalar(select(LoyaltyProgramRow.expire_after_days).where(LoyaltyProgramRow.shop_id == shop_id,
                                                                       LoyaltyProgramRow.enabled.is_(True)))
    if not days:
        return []
    life = timedelta(days=days)
    a = LoyaltyAccount
    rows = s.execute(select(a.customer_external_id, a.last_activity_at)
                     .join(Customer, and_(Customer.shop_id == shop_id, Customer.external_id == a.customer_external_id))
                     .where(a.shop_id == shop_id, a.available > 0, Customer.redacted_at.is_(None),
                            a.last_activity_at >= start - life + REMIND_BEFORE,
                            a.last_activity_at <= end - life + REMIND_BEFORE))
    return [dates.Due(customer, None, last + life - REMIND_BEFORE, f"expires:{(last + life).isoformat()}")
            for customer, last in rows if last is not None]


FINDERS: dict[str, Finder] = {"Birthday": birthdays, "FirstOrderAnniversary": anniversaries,
                              "Replenishment": replenishments, "WinBack": win_backs,
                              "PointsExpiring": points_expiring}


def _enrolled(s: Session, shop_id: int, live: LiveJourney, since: datetime) -> set[str]:
    """The keys of this journey's enrollments that began at `since` or later: what a scan need not try again."""
    return set(s.scalars(select(Enrollment.key).where(
        Enrollment.shop_id == shop_id, Enrollment.journey_id == live.journey_id, Enrollment.trigger_at >= since)))


def scan(c: Container, shop_id: int, now: datetime) -> dict[str, int]:
    """Enroll everyone whose birthday, anniversary, run-out or expected reorder came due for each live journey
    on those rules (within the journey's `max_event_age` before `now`); one transaction per rule. Returns the
    enrollments made per rule."""
    made = dict.fromkeys(RULES, 0)
    for rule in RULES:
        with SqlUnitOfWork(c.sessions) as uow:
            s = uow.session
            assert s is not None
            journeys = [j for j in uow.journeys.live(shop_id) if j.journey.trigger == rule]
            if not journeys:
                continue
            shop_tz = s.scalar(select(Shop.timezone).where(Shop.id == shop_id)) or "UTC"
            widest = max(j.journey.max_event_age for j in journeys)
            due = FINDERS[rule](s, shop_id, shop_tz, now - widest, now)
            for live in journeys:
                start = now - live.journey.max_event_age
                done = _enrolled(s, shop_id, live, start) if due else set()
                for d in due:
                    if not dates.in_window(d.trigger_at, start, now):
                        continue
                    event_key = DateReached(shop_id, d.trigger_at, rule, d.customer_id, d.occasion).key
                    if enrollment_key(live.journey, event_key) in done:
                        continue
                    made[rule] += enroll_on_date(uow, shop_id, live, rule, d.customer_id, d.order_id, d.trigger_at,
                                                 d.occasion, now)
            uow.commit()
    return made


def due_shops(c: Container, now: datetime) -> list[int]:
    """Installed shops whose date rules were last scanned an hour ago or more, or never."""
    with c.sessions() as s:
        return list(s.scalars(select(Shop.id).where(
            Shop.installed_at.is_not(None), Shop.uninstalled_at.is_(None),
            or_(Shop.date_rules_at.is_(None), Shop.date_rules_at <= now - EVERY)).order_by(Shop.id)))


def _claim(c: Container, shop_id: int, now: datetime) -> tuple[bool, datetime | None]:
    """Stamp the shop as scanned at `now` unless another process did since it was found due."""
    with c.sessions() as s, s.begin():
        before = s.scalar(select(Shop.date_rules_at).where(Shop.id == shop_id))
        claimed = rowcount(s.execute(update(Shop).where(
            Shop.id == shop_id, or_(Shop.date_rules_at.is_(None), Shop.date_rules_at <= now - EVERY)
        ).values(date_rules_at=now)))
    return bool(claimed), before


def run(c: Container, now: datetime) -> dict[str, int]:
    """Scan every due shop and stamp it; returns the enrollments made per rule over all of them. A shop whose
    scan fails keeps its previous stamp (so the next sweep tries again) and does not stop the others."""
    total = dict.fromkeys(RULES, 0)
    for shop_id in due_shops(c, now):
        claimed, before = _claim(c, shop_id, now)
        if not claimed:
            continue
        try:
            made = scan(c, shop_id, now)
        except Exception as exc:  # one shop's failure is logged; the rest go on
            log.warning("date_rules_failed", shop_id=shop_id, error=f"{type(exc).__name__}: {exc}")
            with c.sessions() as s, s.begin():
                s.execute(update(Shop).where(Shop.id == shop_id, Shop.date_rules_at == now)
                          .values(date_rules_at=before))
            continue
        for rule, count in made.items():
            total[rule] += count
        if any(made.values()):
            log.info("date_rules_enrolled", shop_id=shop_id, **made)
    return total
