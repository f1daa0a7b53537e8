"""Badges and streaks: small milestones a shopper sees in the widget. A badge is earned once and kept (a later
refund does not take a badge away; it never had a money value). They are given in the transaction of what
earned them, only while the shop's program is on with badges switched on:

- orders: `first_order`, `third_order`, `tenth_order` — paid orders that are not cancelled (`follow`, on
  OrderPaid);
- streaks: `streak_3`, `streak_6` — orders in that many consecutive calendar months, in the shop's time zone;
- actions: `first_review` (points for a review), `first_referral` (a friend's order rewarded the referrer);
- `vip`: reaching any VIP tier.

The streak shown is the run of consecutive months ending this month or last month (a customer who has not
ordered yet this month has not broken it), and the best run ever.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.events import DomainEvent, OrderPaid
from app.db.engine import insert_for
from app.db.models import CustomerBadge, LoyaltyProgramRow, Order, Shop
from app.i18n import translations


@dataclass(frozen=True)
class Badge:
    key: str
    name: str  # English msgids of the `loyalty` domain
    description: str


BADGES = (
    Badge("first_order", "First order", "Placed a first order"),
    Badge("third_order", "Regular", "Placed three orders"),
    Badge("tenth_order", "Devoted", "Placed ten orders"),
    Badge("streak_3", "Three in a row", "Ordered three months in a row"),
    Badge("streak_6", "Six in a row", "Ordered six months in a row"),
    Badge("first_review", "Reviewer", "Wrote a first review"),
    Badge("first_referral", "Ambassador", "Brought a friend who ordered"),
    Badge("vip", "VIP", "Reached a VIP tier"),
)
KEYS = frozenset(b.key for b in BADGES)
ORDER_COUNTS = (("first_order", 1), ("third_order", 3), ("tenth_order", 10))
STREAKS = (("streak_3", 3), ("streak_6", 6))
FOR_ACTION = {"review": "first_review", "referral": "first_referral"}


def _on(s: Session, shop_id: int) -> bool:
    row = s.execute(select(LoyaltyProgramRow.enabled, LoyaltyProgramRow.badges_enabled)
                    .where(LoyaltyProgramRow.shop_id == shop_id)).first()
    return row is not None and bool(row.enabled) and bool(row.badges_enabled)


def award(s: Session, shop_id: int, customer_id: str, badge: str, now: datetime,
          detail: dict[str, Any] | None = None) -> None:
    """Give the badge unless the customer has it (or the shop's badges are off). In the caller's transaction."""
    if badge not in KEYS:
        raise ValueError(f"unknown badge {badge!r}")
    if not _on(s, shop_id):
        return
    _insert(s, shop_id, customer_id, [badge], now, detail)


def _insert(s: Session, shop_id: int, customer_id: str, badges: Iterable[str], now: datetime,
            detail: dict[str, Any] | None = None) -> None:
    rows = [{"shop_id": shop_id, "customer_external_id": customer_id, "badge": b, "earned_at": now, "detail": detail}
            for b in badges]
    if rows:
        s.execute(insert_for(s, CustomerBadge).values(rows).on_conflict_do_nothing(
            index_elements=["shop_id", "customer_external_id", "badge"]))


def months(at: Iterable[datetime], tz: str) -> list[int]:
    """The distinct calendar months (year * 12 + month - 1) of these moments in the time zone, ascending."""
    zone = ZoneInfo(tz)
    return sorted({(local.year * 12 + local.month - 1) for local in (a.astimezone(zone) for a in at)})


def streak(month_numbers: list[int], current: int) -> tuple[int, int]:
    """(the run of consecutive months that ends this month or last month, the longest run) of ascending
    distinct month numbers."""
    best = run = 0
    previous: int | None = None
    for m in month_numbers:
        run = run + 1 if previous is not None and m == previous + 1 else 1
        best = max(best, run)
        previous = m
    alive = previous is not None and previous >= current - 1
    return (run if alive else 0), best


def _orders(s: Session, shop_id: int, customer_id: str) -> list[datetime]:
    return list(s.scalars(select(Order.created_at).where(
        Order.shop_id == shop_id, Order.customer_external_id == customer_id, Order.cancelled_at.is_(None),
        Order.status != "cancelled")))


def _timezone(s: Session, shop_id: int) -> str:
    return s.scalar(select(Shop.timezone).where(Shop.id == shop_id)) or "UTC"


def follow(s: Session, event: DomainEvent, now: datetime) -> None:
    """An order event, in its transaction: a paid order may earn order-count and streak badges."""
    if not isinstance(event, OrderPaid) or event.customer_id is None or not _on(s, event.shop_id):
        return
    placed = _orders(s, event.shop_id, event.customer_id)
    earned = [key for key, n in ORDER_COUNTS if len(placed) >= n]
    _, best = streak(months(placed, _timezone(s, event.shop_id)), 0)
    earned += [key for key, n in STREAKS if best >= n]
    _insert(s, event.shop_id, event.customer_id, earned, now, {"order": event.order_id})


def widget_data(s: Session, shop_id: int, customer_id: str, locale: str, now: datetime
                ) -> tuple[list[dict[str, Any]], dict[str, int]] | None:
    """Every badge (earned ones with their date, the rest to aim for) and the streak, in the shopper's
    language; None when the shop's badges are off."""
    if not _on(s, shop_id):
        return None
    _ = translations(locale, "loyalty").gettext
    have = {badge: at for badge, at in s.execute(select(CustomerBadge.badge, CustomerBadge.earned_at).where(
        CustomerBadge.shop_id == shop_id, CustomerBadge.customer_external_id == customer_id))}
    listed = [{"key": b.key, "name": _(b.name), "description": _(b.description),
               "earned_at": have[b.key].isoformat() if b.key in have else None} for b in BADGES]
    tz = _timezone(s, shop_id)
    current, best = streak(months(_orders(s, shop_id, customer_id), tz), months([now], tz)[0])
    return listed, {"months": current, "best": best}
