"""Date rules, the pure part: when a birthday, a first-order anniversary, a predicted run-out or an expected
reorder falls, in the customer's own time zone. Plain data in, the moments that came due out; the scan around
it (app/daterules.py) reads the rows and enrolls.

A rule's moment is *due* when it lies in a window [start, end] (end is now, start is now minus the journey's
`max_event_age`): a scan every hour sees each moment many times, and the enrollment key (one per occasion)
makes the repeats no-ops.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

REPLENISH_LEAD = timedelta(days=5)  # the replenishment reminder comes this long before the predicted run-out
MIN_PRODUCT_GAPS = 3  # fewer observed reorder gaps than this: the product is not treated as consumable


@dataclass(frozen=True)
class Due:
    """A rule's moment for one customer: what `enroll_on_date` needs."""

    customer_id: str
    order_id: str | None
    trigger_at: datetime  # aware, UTC
    occasion: str


@dataclass(frozen=True)
class Purchase:
    """One product in one order (quantities of several lines of the same product summed)."""

    customer_id: str
    order_id: str
    product_id: str
    at: datetime
    quantity: int = 1


@dataclass(frozen=True)
class Placed:
    """One order of a customer."""

    customer_id: str
    order_id: str
    at: datetime


# --- time zones and calendar dates -------------------------------------------------------------------------


def zone(tz: str | None) -> ZoneInfo:
    """The IANA zone named, UTC for none or an unknown name."""
    try:
        return ZoneInfo(tz or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def on_date(year: int, month: int, day: int) -> date:
    """That month and day in that year; Feb 29 is Feb 28 in a year without one."""
    if month == 2 and day == 29 and not calendar.isleap(year):
        return date(year, 2, 28)
    return date(year, month, day)


def local_midnight(day: date, tz: str | None) -> datetime:
    """The start of `day` in the zone, as an aware UTC datetime."""
    return datetime.combine(day, time(0), zone(tz)).astimezone(UTC)


def in_window(moment: datetime, start: datetime, end: datetime) -> bool:
    return start <= moment <= end


def yearly(month: int, day: int, tz: str | None, start: datetime, end: datetime, *, after_year: int | None = None
           ) -> list[tuple[int, datetime]]:
    """Each (year, local midnight of month/day that year) lying in [start, end], oldest first; only years after
    `after_year` when given."""
    z = zone(tz)
    first, last = start.astimezone(z).year - 1, end.astimezone(z).year + 1
    found = []
    for year in range(first, last + 1):
        if after_year is not None and year <= after_year:
            continue
        moment = local_midnight(on_date(year, month, day), tz)
        if in_window(moment, start, end):
            found.append((year, moment))
    return found


def next_birthday(birthday: date, tz: str | None, now: datetime) -> datetime:
    """The local midnight of the customer's birthday on or after the start of today (their time)."""
    today = now.astimezone(zone(tz)).date()
    this_year = on_date(today.year, birthday.month, birthday.day)
    day = this_year if this_year >= today else on_date(today.year + 1, birthday.month, birthday.day)
    return local_midnight(day, tz)


def next_anniversary(first_order_at: datetime, tz: str | None, now: datetime) -> datetime:
    """The local midnight of the next anniversary (one year or more) of the first order, on or after the start
    of today in the customer's zone."""
    z = zone(tz)
    first = first_order_at.astimezone(z).date()
    today = now.astimezone(z).date()
    year = max(today.year, first.year + 1)
    day = on_date(year, first.month, first.day)
    if day < today:
        day = on_date(year + 1, first.month, first.day)
    return local_midnight(day, tz)


# --- intervals ---------------------------------------------------------------------------------------------


def median(values: Sequence[timedelta]) -> timedelta | None:
    """The median (the mean of the middle two for an even count); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def gaps(moments: Iterable[datetime]) -> list[timedelta]:
    """The gaps between consecutive moments, in time order."""
    ordered = sorted(moments)
    return [b - a for a, b in zip(ordered, ordered[1:], strict=False)]


def reorder_intervals(purchases: Iterable[Purchase], *, min_gaps: int = MIN_PRODUCT_GAPS) -> dict[str, timedelta]:
    """Each consumable product's typical reorder interval: the median gap between consecutive orders of it by the
    same customer, over every customer; a product with fewer than `min_gaps` such gaps is left out."""
    seen: dict[tuple[str, str], dict[str, datetime]] = defaultdict(dict)
    for p in purchases:
        seen[(p.product_id, p.customer_id)][p.order_id] = p.at
    pooled: dict[str, list[timedelta]] = defaultdict(list)
    for (product, _), orders in seen.items():
        pooled[product].extend(gaps(orders.values()))
    intervals = {}
    for product, found in pooled.items():
        typical = median(found) if len(found) >= min_gaps else None
        if typical is not None and typical > timedelta(0):
            intervals[product] = typical
    return intervals


def run_out(ordered_at: datetime, interval: timedelta, quantity: int = 1) -> datetime:
    """When what was bought is predicted to be used up: the interval per unit bought."""
    return ordered_at + interval * max(1, quantity)


def replenish_at(ordered_at: datetime, interval: timedelta, quantity: int = 1, lead: timedelta = REPLENISH_LEAD
                 ) -> datetime:
    """The reminder's moment: `lead` before the run-out, but never before half the way to it (a product that
    lasts less than twice the lead is reminded of halfway, not on the day it was bought)."""
    out = run_out(ordered_at, interval, quantity)
    return out - min(lead, (out - ordered_at) / 2)


# --- the rules ---------------------------------------------------------------------------------------------


def birthdays_due(people: Iterable[tuple[str, date, str | None]], start: datetime, end: datetime) -> list[Due]:
    """(customer, birthday, time zone) -> the birthdays whose local midnight lies in the window; the occasion is
    the year."""
    due = []
    for customer, birthday, tz in people:
        for year, moment in yearly(birthday.month, birthday.day, tz, start, end):
            due.append(Due(customer, None, moment, str(year)))
    return due


def anniversaries_due(firsts: Iterable[tuple[str, str, datetime, str | None]], start: datetime, end: datetime
                      ) -> list[Due]:
    """(customer, first order, its time, time zone) -> the anniversaries (a year or more after, at local
    midnight) lying in the window; the occasion is the year, the order is the first."""
    due = []
    for customer, order_id, at, tz in firsts:
        first = at.astimezone(zone(tz)).date()
        for year, moment in yearly(first.month, first.day, tz, start, end, after_year=first.year):
            due.append(Due(customer, order_id, moment, str(year)))
    return due


def latest_purchases(purchases: Iterable[Purchase]) -> dict[tuple[str, str], Purchase]:
    """(customer, product) -> the customer's latest order of that product."""
    latest: dict[tuple[str, str], Purchase] = {}
    for p in purchases:
        key = (p.customer_id, p.product_id)
        held = latest.get(key)
        if held is None or (p.at, p.order_id) > (held.at, held.order_id):
            latest[key] = p
    return latest


def replenishments_due(purchases: Sequence[Purchase], start: datetime, end: datetime, *,
                       intervals: Mapping[str, timedelta] | None = None) -> list[Due]:
    """For each customer's latest order of a consumable product, the reminder before the predicted run-out
    (interval x quantity) when it lies in the window. A later order of the product replaces the earlier one, so
    a customer who ordered again is never reminded of the old order. `intervals` (product -> interval) stand
    for the learned ones where given (a merchant-set interval)."""
    known = {**reorder_intervals(purchases), **(intervals or {})}
    due = []
    for (customer, product), p in sorted(latest_purchases(purchases).items()):
        interval = known.get(product)
        if interval is None or interval <= timedelta(0):
            continue
        moment = replenish_at(p.at, interval, p.quantity)
        if in_window(moment, start, end):
            due.append(Due(customer, p.order_id, moment, f"order:{p.order_id}:product:{product}"))
    return due


def expected_gaps(orders: Iterable[Placed]) -> tuple[dict[str, list[Placed]], timedelta | None]:
    """Each customer's orders in time order, and the shop-wide median gap between consecutive orders of repeat
    customers (None when no customer ordered twice)."""
    by_customer: dict[str, list[Placed]] = defaultdict(list)
    for o in orders:
        by_customer[o.customer_id].append(o)
    pooled: list[timedelta] = []
    for placed in by_customer.values():
        placed.sort(key=lambda o: (o.at, o.order_id))
        pooled.extend(gaps(o.at for o in placed))
    return dict(by_customer), median(pooled)


def win_backs_due(orders: Iterable[Placed], start: datetime, end: datetime) -> list[Due]:
    """A customer is expected back one typical gap after their last order: the median gap between their own
    orders (two or more), else the shop's median gap between repeat customers' orders (no such data: nobody).
    Due when that moment lies in the window; the occasion names the last order."""
    by_customer, shop_gap = expected_gaps(orders)
    due = []
    for customer, placed in sorted(by_customer.items()):
        expected = median(gaps(o.at for o in placed)) if len(placed) >= 2 else shop_gap
        if expected is None or expected <= timedelta(0):
            continue
        last = placed[-1]
        moment = last.at + expected
        if in_window(moment, start, end):
            due.append(Due(customer, last.order_id, moment, f"after:{last.order_id}"))
    return due
