"""Proof of value: for each journey and each program, the orders and revenue attributed to it (with the window
they were counted in) next to the lift measured against its holdout group, with a 95% interval, or an explicit
"not enough data yet" (what is missing) or "no holdout" instead of a number that would mislead.

Attribution and lift answer different questions. Attributed orders are those Encore can point at: an order
that used a journey message's code or came within the journey's window after a click (the `attributions`
rows), an order that used a loyalty reward's code, a friend's first order through a referral code. Many would
have happened anyway. The lift says how many did not: the treated group's conversion rate minus the holdout's,
where the holdout is a random share the journey or program left alone (`app.core.lift`, which also holds the
interval and the thresholds).

Who is counted, and what converting means:

- **A journey**: its enrollments of known customers (a guest's later orders cannot be told apart reliably), in
  its holdout or not as stored on the enrollment. One converts by placing an order, not cancelled, after the
  enrollment's trigger and within the attribution window of the journey version it enrolled under.
- **A program** (loyalty, referrals): customers whose first order came after the program started (loyalty:
  `started_at`; referrals: when it was first set up), in its holdout or not by the stable hash. One converts by
  placing a repeat order within `PROGRAM_WINDOW_DAYS` of the first.

People whose window has not ended yet are not counted (`waiting`): they have not had their full chance to
convert, and counting them would dilute both rates. Revenue is the orders' totals less refunds in the shop's
currency (orders in another currency count as conversions, not as revenue); attributed revenue is the orders'
totals as attributed.

Everything is counted by SQL aggregates: for journeys, enrollments joined to their customers' orders and grouped
by holdout in one statement. A program's groups come from a hash no SQL dialect computes alike, so its statement
returns one row per customer (first order, repeat orders and their revenue, aggregated in SQL) and the groups
are summed with numpy. The window is compared in seconds since 1970 (`_seconds`): SQLite keeps times as text,
and neither dialect adds a per-row interval to a time the way the other does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import numpy as np
from babel.numbers import get_currency_precision
from sqlalchemy import ColumnElement, and_, case, exists, func, literal, select
from sqlalchemy.orm import Session, aliased

from app import rendering
from app.core import lift
from app.core.journeys import from_data
from app.db import models as t

PROGRAM_WINDOW_DAYS = 90  # a program's customer converts by ordering again within this many days of their first order
_EPOCH_JULIAN_DAY = 2440587.5  # 1970-01-01T00:00Z as a Julian day number


def _seconds(s: Session, column: Any) -> ColumnElement[Any]:
    """A time column as seconds since 1970: julianday() on SQLite, EXTRACT(EPOCH ...) on PostgreSQL (and any
    other database that speaks standard SQL)."""
    if s.get_bind().dialect.name == "sqlite":
        return (func.julianday(column) - _EPOCH_JULIAN_DAY) * 86400.0
    return func.extract("epoch", column)


@dataclass(frozen=True)
class Groups:
    treated: lift.Counts
    holdout: lift.Counts
    waiting: int = 0  # people whose window has not ended yet: not counted


def _money(value: Any, places: int) -> Decimal:
    """A sum from the database (SQLite's are floats) as money of the currency's precision."""
    return Decimal(str(value or 0)).quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN)


def _net(o: Any, currency: str) -> ColumnElement[Any]:
    """An order's revenue in the shop's currency, less refunds (0 in another currency)."""
    return case((o.currency == currency, o.total - o.refunded_amount), else_=0)


# --- journeys ----------------------------------------------------------------------------------------------------


def journey_groups(s: Session, shop_id: int, now: datetime, currency: str, since: datetime | None = None
                   ) -> dict[int, Groups]:
    """Each journey's treated and held-out enrollments: how many, how many converted, and their revenue."""
    windows = {vid: from_data(definition).attribution.total_seconds() for vid, definition in s.execute(
        select(t.JourneyVersion.id, t.JourneyVersion.definition).where(t.JourneyVersion.shop_id == shop_id))}
    if not windows:
        return {}
    e, o = t.Enrollment, t.Order
    window = case(windows, value=e.version_id, else_=0.0)
    start = _seconds(s, e.trigger_at)
    places = get_currency_precision(currency)
    per_enrollment = (
        select(e.journey_id, e.holdout, case((start + window <= now.timestamp(), 1), else_=0).label("mature"),
               func.count(o.id).label("orders"), func.coalesce(func.sum(_net(o, currency)), 0).label("revenue"))
        .select_from(e)
        .outerjoin(o, and_(o.shop_id == shop_id, o.customer_external_id == e.customer_external_id,
                           o.created_at > e.trigger_at, o.cancelled_at.is_(None),
                           _seconds(s, o.created_at) <= start + window))
        .where(e.shop_id == shop_id, e.customer_external_id.is_not(None),
               *([e.trigger_at >= since] if since is not None else []))
        .group_by(e.id, e.journey_id, e.holdout, e.trigger_at, e.version_id)
        .subquery())
    p = per_enrollment.c
    converted = case((p.orders > 0, 1), else_=0)
    counts: dict[int, dict[str, Any]] = {}
    for journey_id, holdout, mature, n, conversions, revenue in s.execute(
            select(p.journey_id, p.holdout, p.mature, func.count(), func.sum(converted), func.sum(p.revenue))
            .group_by(p.journey_id, p.holdout, p.mature)):
        found = counts.setdefault(journey_id, {"waiting": 0})
        if not mature:
            found["waiting"] += int(n)
        else:
            found["holdout" if holdout else "treated"] = lift.Counts(int(n), int(conversions or 0), _money(revenue, places))
    empty = lift.Counts(0, 0)
    return {jid: Groups(c.get("treated", empty), c.get("holdout", empty), c["waiting"]) for jid, c in counts.items()}


def _attributed(s: Session, shop_id: int, currency: str, since: datetime | None) -> dict[int, dict[str, Any]]:
    """Each journey's attributed orders (every currency) and revenue (the shop's currency; others listed)."""
    a = t.Attribution
    places = get_currency_precision(currency)
    out: dict[int, dict[str, Any]] = {}
    for journey_id, paid_in, n, revenue in s.execute(
            select(a.journey_id, a.currency, func.count(), func.sum(a.revenue))
            .where(a.shop_id == shop_id, *([a.at >= since] if since is not None else []))
            .group_by(a.journey_id, a.currency).order_by(a.currency)):
        found = out.setdefault(journey_id, _attribution(0, Decimal(0), currency, places))
        found["orders"] += int(n)
        if paid_in == currency:
            found["revenue"] = str(_money(revenue, places))
        else:
            found["other_currencies"].append({"currency": paid_in,
                                              "amount": str(_money(revenue, get_currency_precision(paid_in)))})
    return out


def _attribution(orders: int, revenue: Any, currency: str, places: int) -> dict[str, Any]:
    return {"orders": orders, "revenue": str(_money(revenue, places)), "currency": currency, "other_currencies": []}


def _days(window: timedelta) -> int | float:
    days = window.total_seconds() / 86400
    return int(days) if days.is_integer() else round(days, 3)


def _title(key: str) -> str:
    try:
        return rendering.journey(key).title
    except KeyError:  # a journey of the shop's own
        return key.replace("_", " ").capitalize()


# --- programs ----------------------------------------------------------------------------------------------------


def program_groups(s: Session, shop_id: int, program: str, started_at: datetime, percent: int, now: datetime,
                   currency: str, since: datetime | None = None) -> Groups:
    """A program's customers (first order from `started_at`, and from `since`), split by its holdout: how many,
    how many ordered again within PROGRAM_WINDOW_DAYS of their first order, and what those orders brought."""
    o, again = t.Order, aliased(t.Order)
    start = max(started_at, since) if since is not None else started_at
    window = timedelta(days=PROGRAM_WINDOW_DAYS)
    first = (select(o.customer_external_id.label("customer"), func.min(o.created_at).label("first_at"))
             .where(o.shop_id == shop_id, o.customer_external_id.is_not(None), o.cancelled_at.is_(None))
             .group_by(o.customer_external_id).having(func.min(o.created_at) >= start).subquery())
    f = first.c
    rows = s.execute(
        select(f.customer, f.first_at <= now - window, func.count(again.id),
               func.coalesce(func.sum(_net(again, currency)), 0))
        .select_from(first)
        .outerjoin(again, and_(again.shop_id == shop_id, again.customer_external_id == f.customer,
                               again.created_at > f.first_at, again.cancelled_at.is_(None),
                               _seconds(s, again.created_at) <= _seconds(s, f.first_at) + window.total_seconds()))
        .group_by(f.customer, f.first_at)).all()
    if not rows:
        return Groups(lift.Counts(0, 0), lift.Counts(0, 0))
    customers, mature, orders, revenue = zip(*rows, strict=True)
    held = np.fromiter((lift.held_out(shop_id, program, c, percent) for c in customers), bool, len(rows))
    ready = np.asarray(mature, dtype=bool)
    converted = np.asarray(orders, dtype=np.int64) > 0
    spent = np.asarray([float(x or 0) for x in revenue], dtype=np.float64)
    places = get_currency_precision(currency)

    def group(mask: np.ndarray[Any, np.dtype[np.bool_]]) -> lift.Counts:
        mask = mask & ready
        return lift.Counts(int(mask.sum()), int((mask & converted).sum()), _money(round(float(spent[mask].sum()), 6),
                                                                                  places))

    return Groups(group(~held), group(held), int((~ready).sum()))


def _loyalty_attributed(s: Session, shop_id: int, currency: str, since: datetime | None) -> dict[str, Any]:
    """Orders that used a loyalty reward's code (a redemption's, the referral program's reward codes aside)."""
    o, r = t.Order, t.Redemption
    used = exists().where(r.shop_id == shop_id, r.customer_external_id == o.customer_external_id,
                          r.created_at <= o.created_at, ~r.request_key.like("referral:%"),
                          (literal(",") + o.discount_codes + ",").like(literal("%,") + func.lower(r.code) + ",%"))
    n, revenue = s.execute(select(func.count(), func.sum(case((o.currency == currency, o.total), else_=0))).where(
        o.shop_id == shop_id, o.discount_codes.is_not(None), o.cancelled_at.is_(None), used,
        *([o.created_at >= since] if since is not None else []))).one()
    return _attribution(int(n), revenue, currency, get_currency_precision(currency))


def _referral_attributed(s: Session, shop_id: int, currency: str, since: datetime | None) -> dict[str, Any]:
    """Friends' first orders through a referral code (those the program judged genuine: not blocked or void)."""
    o, r = t.Order, t.Referral
    n, revenue = s.execute(
        select(func.count(), func.sum(case((o.currency == currency, o.total), else_=0)))
        .select_from(r).join(o, and_(o.shop_id == r.shop_id, o.external_id == r.order_external_id))
        .where(r.shop_id == shop_id, r.status.in_(("ordered", "rewarded")),
               *([o.created_at >= since] if since is not None else []))).one()
    return _attribution(int(n), revenue, currency, get_currency_precision(currency))


# --- the report --------------------------------------------------------------------------------------------------


def _rate(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def _group(c: lift.Counts) -> dict[str, Any]:
    return {"n": c.n, "converted": c.converted, "rate": _rate(c.rate), "revenue": str(c.revenue)}


def lift_data(groups: Groups, holdout_percent: int, currency: str) -> dict[str, Any]:
    """The verdict on two groups as JSON-ready data (floats, ints, decimal strings, None)."""
    verdict = lift.measure(groups.treated, groups.holdout, holdout_percent, get_currency_precision(currency))
    d, inc, money = verdict.difference, verdict.incremental, verdict.revenue
    return {
        "status": verdict.status.value, "treated": _group(groups.treated), "holdout": _group(groups.holdout),
        "waiting": groups.waiting,
        "difference": None if d is None else round(d.value, 6),
        "ci95": None if d is None else [round(d.low, 6), round(d.high, 6)],
        "relative": _rate(verdict.relative),
        "incremental_orders": None if inc is None else {
            "value": round(inc.value, 2), "ci95": [round(inc.low, 2), round(inc.high, 2)]},
        "incremental_revenue": None if money is None else {
            "value": str(money[0]), "ci95": [str(money[1]), str(money[2])], "currency": currency},
        "needs": [{"group": x.group, "measure": x.measure, "have": x.have, "need": x.need} for x in verdict.needs],
    }


def report(s: Session, shop_id: int, now: datetime, since: datetime | None = None) -> list[dict[str, Any]]:
    """One entry per journey of the shop (in the order they were added), then per program it has set up
    (loyalty, referrals): kind, key, name, window_days, holdout_percent, attributed and lift."""
    shop = s.get(t.Shop, shop_id)
    if shop is None:
        raise LookupError(f"no shop {shop_id}")
    currency = shop.currency
    places = get_currency_precision(currency)
    groups = journey_groups(s, shop_id, now, currency, since)
    attributed = _attributed(s, shop_id, currency, since)
    out: list[dict[str, Any]] = []
    for jid, key, definition in s.execute(
            select(t.JourneyRow.id, t.JourneyRow.key, t.JourneyVersion.definition)
            .join(t.JourneyVersion, and_(t.JourneyVersion.journey_id == t.JourneyRow.id,
                                         t.JourneyVersion.version == t.JourneyRow.version))
            .where(t.JourneyRow.shop_id == shop_id).order_by(t.JourneyRow.id)):
        journey = from_data(definition)
        out.append({"kind": "journey", "key": key, "name": _title(key),
                    "window_days": _days(journey.attribution),
                    "holdout_percent": journey.holdout_percent,
                    "attributed": attributed.get(jid, _attribution(0, 0, currency, places)),
                    "lift": lift_data(groups.get(jid, Groups(lift.Counts(0, 0), lift.Counts(0, 0))),
                                      journey.holdout_percent, currency)})
    loyalty = s.execute(select(t.LoyaltyProgramRow.started_at, t.LoyaltyProgramRow.holdout_percent)
                        .where(t.LoyaltyProgramRow.shop_id == shop_id)).first()
    if loyalty is not None:
        found = program_groups(s, shop_id, lift.LOYALTY, loyalty.started_at, loyalty.holdout_percent, now, currency, since)
        out.append(_program(lift.LOYALTY, "Loyalty program", loyalty.holdout_percent,
                            _loyalty_attributed(s, shop_id, currency, since), lift_data(found, loyalty.holdout_percent,
                                                                                        currency)))
    referral = s.execute(select(t.ReferralProgramRow.created_at, t.ReferralProgramRow.holdout_percent)
                         .where(t.ReferralProgramRow.shop_id == shop_id)).first()
    if referral is not None:
        found = program_groups(s, shop_id, lift.REFERRALS, referral.created_at, referral.holdout_percent, now, currency,
                               since)
        out.append(_program(lift.REFERRALS, "Referral program", referral.holdout_percent,
                            _referral_attributed(s, shop_id, currency, since),
                            lift_data(found, referral.holdout_percent, currency)))
    return out


def _program(key: str, name: str, percent: int, attributed: dict[str, Any], measured: dict[str, Any]
             ) -> dict[str, Any]:
    return {"kind": "program", "key": key, "name": name, "window_days": PROGRAM_WINDOW_DAYS, "holdout_percent": percent,
            "attributed": attributed, "lift": measured}
