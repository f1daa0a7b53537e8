"""The loyalty program's figures for the admin, each one SQL aggregate over the shop's rows, so that a shop with
millions of ledger entries is counted by the database rather than in Python.

What each figure means (the admin shows these definitions to merchants as they are written here):

- members: customers whose account has at least one ledger entry. An account opened and never posted to (a
  lookup, a refused adjustment) is no member.
- points outstanding: every account's pending points plus its available points above zero. A balance below zero
  (points spent, then the order refunded) owes the customer nothing, so it counts as zero rather than lowering
  what the others are owed.
- the value of a point: of the enabled amount-off rewards, the one giving the most money per point
  (value / cost). That is the most a point can be worth to a customer today, so the liability in money
  (outstanding points x that value, rounded to the currency's minor unit) is what the points could cost at most.
  Percent-off and free-shipping rewards have no fixed money value and are left out; without an amount-off reward
  the liability is shown in points only.
- redemption rate: points redeemed (less those given back when a code could not be written) / points earned
  (orders, actions and bonuses, less what refunds and cancellations took back: the same gains VIP tiers count),
  over the last 90 days and over all time. None while nothing was earned.
- repeat rate: among customers with at least one paid order that was not cancelled (guests have no customer id
  and are left out), the share with two or more, for members and for everyone else.
- ledger check: accounts whose snapshot is not the sum of their entries (`app.loyalty.mismatches`): must be 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from babel.numbers import get_currency_precision
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from app import loyalty
from app.core.loyalty import Reason
from app.core.model import WAS_PAID
from app.db.models import LedgerEntry, LoyaltyAccount, Order, Reward
from app.tiers import GAINS

RECENT = timedelta(days=90)
_SPENT = (Reason.REDEEMED.value, Reason.RESTORED.value)


@dataclass(frozen=True)
class Share:
    """`part` of `whole`; `rate` is None when the whole is zero (nothing to divide)."""

    part: int
    whole: int

    @property
    def rate(self) -> Decimal | None:
        return None if self.whole == 0 else Decimal(self.part) / Decimal(self.whole)

    def data(self) -> dict[str, Any]:
        rate = self.rate
        return {"part": self.part, "whole": self.whole,
                "percent": None if rate is None else str((rate * 100).quantize(Decimal("0.1"), ROUND_HALF_UP))}


@dataclass(frozen=True)
class Figures:
    members: int
    available: int  # available points above zero, summed
    pending: int
    point_value: Decimal | None  # money per point (None: no amount-off reward to value it by)
    liability: Decimal | None  # outstanding points in money, rounded to the currency's minor unit
    currency: str
    redemption_recent: Share  # points redeemed of points earned, last 90 days
    redemption_all: Share
    repeat_members: Share  # customers with 2+ paid orders of customers with 1+, members
    repeat_others: Share  # the same for customers who are not members
    mismatches: int

    @property
    def outstanding(self) -> int:
        return self.available + self.pending


def _member_ids(shop_id: int) -> Any:
    """The customer ids of the shop's members, as a subquery."""
    return (select(LoyaltyAccount.customer_external_id.label("customer_id"))
            .where(LoyaltyAccount.shop_id == shop_id,
                   select(LedgerEntry.id).where(LedgerEntry.account_id == LoyaltyAccount.id).exists())
            .subquery())


def members(s: Session, shop_id: int) -> int:
    m = _member_ids(shop_id)
    return int(s.scalar(select(func.count()).select_from(m)) or 0)


def outstanding(s: Session, shop_id: int) -> tuple[int, int]:
    """(available points above zero, pending points), over the shop's accounts."""
    a = LoyaltyAccount
    row = s.execute(select(func.coalesce(func.sum(case((a.available > 0, a.available), else_=0)), 0),
                           func.coalesce(func.sum(a.pending), 0)).where(a.shop_id == shop_id)).one()
    return int(row[0]), int(row[1])


def point_value(s: Session, shop_id: int) -> tuple[Decimal, int] | None:
    """(value, cost) of the enabled amount-off reward worth the most money per point. The catalog is a handful
    of rows: they are compared exactly here, as Decimals, rather than divided in SQL (floating point on SQLite)."""
    rows = s.execute(select(Reward.value, Reward.cost).where(
        Reward.shop_id == shop_id, Reward.kind == "amount", Reward.enabled.is_(True), Reward.value.is_not(None),
        Reward.cost > 0)).all()
    best = max(((Decimal(str(v)), int(c)) for v, c in rows), key=lambda vc: vc[0] / vc[1], default=None)
    return best


def redemption(s: Session, shop_id: int, since: datetime) -> tuple[Share, Share]:
    """(since `since`, all time): points redeemed of points earned, in one pass over the shop's entries."""
    e = LedgerEntry
    recent = e.created_at >= since
    gained, spent = e.reason.in_(GAINS), e.reason.in_(_SPENT)

    def total(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, e.amount), else_=0)), 0)

    row = s.execute(select(total(gained & recent), -total(spent & recent), total(gained), -total(spent))
                    .where(e.shop_id == shop_id)).one()
    return Share(int(row[1]), int(row[0])), Share(int(row[3]), int(row[2]))


def repeat_rates(s: Session, shop_id: int) -> tuple[Share, Share]:
    """(members, everyone else): customers with two or more paid orders of those with at least one."""
    o = Order
    buyers = (select(o.customer_external_id.label("customer_id"), func.count().label("orders"))
              .where(o.shop_id == shop_id, o.customer_external_id.is_not(None), o.cancelled_at.is_(None),
                     o.payment_status.in_([p.value for p in WAS_PAID]))
              .group_by(o.customer_external_id).subquery())
    m = _member_ids(shop_id)
    member = case((m.c.customer_id.is_not(None), 1), else_=0).label("member")
    rows = s.execute(select(member, func.count(), func.coalesce(func.sum(case((buyers.c.orders >= 2, 1), else_=0)), 0))
                     .select_from(buyers).outerjoin(m, m.c.customer_id == buyers.c.customer_id)
                     .group_by(member)).all()
    found = {int(flag): Share(int(repeat), int(n)) for flag, n, repeat in rows}
    return found.get(1, Share(0, 0)), found.get(0, Share(0, 0))


def money(points: int, value: Decimal, cost: int, currency: str) -> Decimal:
    """`points` worth `value` per `cost` points, rounded half up to the currency's minor unit."""
    unit = Decimal(1).scaleb(-get_currency_precision(currency))
    return (Decimal(points) * value / Decimal(cost)).quantize(unit, ROUND_HALF_UP)


def figures(s: Session, shop_id: int, currency: str, now: datetime) -> Figures:
    available, pending = outstanding(s, shop_id)
    best = point_value(s, shop_id)
    recent, all_time = redemption(s, shop_id, now - RECENT)
    repeat_members, repeat_others = repeat_rates(s, shop_id)
    return Figures(
        members=members(s, shop_id), available=available, pending=pending,
        point_value=None if best is None else best[0] / best[1],
        liability=None if best is None else money(available + pending, best[0], best[1], currency),
        currency=currency, redemption_recent=recent, redemption_all=all_time, repeat_members=repeat_members,
        repeat_others=repeat_others, mismatches=len(loyalty.mismatches(s, shop_id)))
