"""Date rules against a real database (SQLite, or PostgreSQL when DATABASE_URL names one): a shop with customers,
orders and lines, the library's four date-rule journeys switched on, and a clock moved by hand. Each scan must
make exactly the enrollments (and pending messages) that came due, nothing twice, nobody erased or orderless."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update

from app import daterules, jobs
from app.bootstrap import Container
from app.db import models as t
from app.journeys import install_defaults

NY, SEOUL = "America/New_York", "Asia/Seoul"
T = datetime(2026, 6, 10, 16, 0, tzinfo=UTC)  # noon in New York, 01:00 on the 11th in Seoul
ZERO = {"Birthday": 0, "FirstOrderAnniversary": 0, "Replenishment": 0, "WinBack": 0, "PointsExpiring": 0}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# customer -> (birthday, time zone, erased)
CUSTOMERS: dict[str, tuple[date | None, str | None, bool]] = {
    "seoul": (date(1988, 6, 11), SEOUL, False),  # birthday begins 15:00 UTC on the 10th
    "newyork": (date(1990, 6, 11), None, False),  # the shop's zone: begins 04:00 UTC on the 11th
    "erased": (date(1990, 6, 10), None, True),
    "orderless": (date(1991, 6, 10), None, False),
    "anniv": (None, NY, False),
    "beans1": (None, None, False),
    "beans2": (None, None, False),
    "regular-g": (None, None, False),
    "regular-h": (None, None, False),
    "reorderer": (None, None, False),
    "lapsed": (None, None, False),
    "once": (None, None, False),
}

# order -> (customer, created, [(product, quantity)], cancelled)
ORDERS: dict[str, tuple[str, str, list[tuple[str, int]], bool]] = {
    "A1": ("seoul", "2026-05-20T12:00", [("mug", 1)], False),
    "B1": ("newyork", "2026-05-25T12:00", [("mug", 1)], False),
    "C1": ("erased", "2026-05-10T00:00", [("beans", 1)], False),  # would be won back on June 9: erased
    "E0": ("anniv", "2025-05-01T12:00", [("mug", 1)], True),  # cancelled: not the first order
    "E1": ("anniv", "2025-06-10T02:00", [("mug", 1)], False),  # 22:00 on June 9 in New York
    "E2": ("anniv", "2026-04-01T12:00", [("mug", 1)], False),
    # beans: reorder gaps 30, 30 (g), 30 (h), 21 (reorderer): the typical interval is 30 days
    "G1": ("regular-g", "2026-01-01T16:00", [("beans", 1)], False),
    "G2": ("regular-g", "2026-01-31T16:00", [("beans", 1)], False),
    "G3": ("regular-g", "2026-03-02T16:00", [("beans", 1)], False),
    "H1": ("regular-h", "2026-02-01T16:00", [("beans", 1)], False),
    "H2": ("regular-h", "2026-03-03T16:00", [("beans", 1)], False),
    "F1": ("beans1", "2026-05-15T16:00", [("beans", 1), ("mug", 1)], False),  # runs out June 14: reminded June 9
    "F2": ("beans2", "2026-05-01T16:00", [("beans", 1), ("beans", 1)], False),  # two bags: reminded June 25
    "I1": ("reorderer", "2026-05-15T16:00", [("beans", 1)], False),  # reordered since: never reminded of this one
    "I2": ("reorderer", "2026-06-05T16:00", [("beans", 1)], False),
    "J1": ("lapsed", "2026-04-10T16:00", [("mug", 1)], False),
    "J2": ("lapsed", "2026-05-10T16:00", [("mug", 1)], False),  # own gap 30 days: expected back June 9 16:00
    "K1": ("once", "2026-05-10T00:00", [("mug", 1)], False),  # the shop's median gap (30 days): June 9 00:00
    "X1": ("ghost", "2026-05-10T00:00", [("mug", 1)], False),  # no customer row: nobody to write to
}


def seed(c: Container, *, domain: str = "dates.myshopify.com", installed: bool = True) -> int:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with c.sessions() as s, s.begin():
        shop = t.Shop(platform="shopify", domain=domain, timezone=NY, installed_at=now if installed else None)
        s.add(shop)
        s.flush()
        for cid, (born, tz, erased) in CUSTOMERS.items():
            s.add(t.Customer(shop_id=shop.id, external_id=cid, email=None if erased else f"{cid}@example.com",
                             birthday=born, timezone=tz, redacted_at=now if erased else None,
                             accepts_email_marketing=True, external_updated_at=now))
        for n, (oid, (cid, created, lines, cancelled)) in enumerate(ORDERS.items()):
            at = utc(created)
            order = t.Order(shop_id=shop.id, external_id=oid, name=f"#{1000 + n}", customer_external_id=cid,
                            email=f"{cid}@example.com", currency="USD", subtotal=Decimal("20"), total=Decimal("20"),
                            total_tax=Decimal("0"), total_shipping=Decimal("0"), total_discounts=Decimal("0"),
                            refunded_amount=Decimal("0"), payment_status="voided" if cancelled else "paid",
                            status="cancelled" if cancelled else "open", created_at=at,
                            cancelled_at=at + timedelta(hours=1) if cancelled else None, external_updated_at=at)
            s.add(order)
            s.flush()
            for i, (product, quantity) in enumerate(lines):
                s.add(t.OrderLine(shop_id=shop.id, order_id=order.id, external_id=f"{oid}-{i}",
                                  product_external_id=product, title=product, quantity=quantity,
                                  price=Decimal("10"), total_discount=Decimal("0")))
        install_defaults(s, shop.id, enabled=frozenset({"birthday", "anniversary", "replenishment", "win_back"}))
        return shop.id


def enrollments(c: Container, shop_id: int) -> set[tuple[Any, ...]]:
    with c.sessions() as s:
        rows = s.execute(select(t.JourneyRow.key, t.Enrollment.customer_external_id, t.Enrollment.order_external_id,
                                t.Enrollment.trigger_type, t.Enrollment.trigger_key, t.Enrollment.trigger_at)
                         .join(t.JourneyRow, t.JourneyRow.id == t.Enrollment.journey_id)
                         .where(t.Enrollment.shop_id == shop_id)).all()
    return {tuple(r) for r in rows}


def messages(c: Container, shop_id: int) -> set[tuple[Any, ...]]:
    with c.sessions() as s:
        rows = s.execute(select(t.Message.key, t.Message.customer_external_id, t.Message.status, t.Message.due_at,
                                t.Message.category).where(t.Message.shop_id == shop_id)).all()
    return {tuple(r) for r in rows}


@pytest.fixture
def shop(container: Container) -> int:
    return seed(container)


FIRST_SCAN = {
    ("birthday", "seoul", None, "Birthday", "Birthday:seoul:2026", utc("2026-06-10T15:00")),
    ("anniversary", "anniv", "E1", "FirstOrderAnniversary", "FirstOrderAnniversary:anniv:2026",
     utc("2026-06-09T04:00")),  # midnight EDT on June 9, a year after the first (not the cancelled) order
    ("replenishment", "beans1", "F1", "Replenishment", "Replenishment:beans1:order:F1:product:beans",
     utc("2026-06-09T16:00")),
    ("win_back", "lapsed", "J2", "WinBack", "WinBack:lapsed:after:J2", utc("2026-06-09T16:00")),
    ("win_back", "once", "K1", "WinBack", "WinBack:once:after:K1", utc("2026-06-09T00:00")),
}


def test_a_scan_enrolls_exactly_what_came_due_and_schedules_its_messages(container: Container, shop: int) -> None:
    assert daterules.scan(container, shop, T) == {"Birthday": 1, "FirstOrderAnniversary": 1, "Replenishment": 1,
                                                   "WinBack": 2, "PointsExpiring": 0}
    assert enrollments(container, shop) == FIRST_SCAN
    assert messages(container, shop) == {
        # 09:00 on the birthday in Seoul
        ("birthday:Birthday:seoul:2026:message", "seoul", "pending", utc("2026-06-11T00:00"), "marketing"),
        # 09:00 in New York on the anniversary
        ("anniversary:FirstOrderAnniversary:anniv:2026:message", "anniv", "pending", utc("2026-06-09T13:00"),
         "marketing"),
        # due at 12:00 New York time, sent at the next 10:00 there
        ("replenishment:Replenishment:beans1:order:F1:product:beans:message", "beans1", "pending",
         utc("2026-06-10T14:00"), "marketing"),
        # a week after the expected reorder, at 10:00 New York time
        ("win_back:WinBack:lapsed:after:J2:message", "lapsed", "pending", utc("2026-06-17T14:00"), "marketing"),
        ("win_back:WinBack:once:after:K1:message", "once", "pending", utc("2026-06-16T14:00"), "marketing"),
    }

    # The hourly scans that follow see the same moments and add nothing.
    for hours in (0, 1, 5):
        assert daterules.scan(container, shop, T + timedelta(hours=hours)) == ZERO
    assert enrollments(container, shop) == FIRST_SCAN
    assert len(messages(container, shop)) == 5


def test_moments_come_due_as_the_clock_moves_in_each_customers_zone(container: Container, shop: int) -> None:
    daterules.scan(container, shop, T)
    # 03:59 UTC on the 11th is still the 10th in New York: the New York birthday is not due yet.
    assert daterules.scan(container, shop, utc("2026-06-11T03:59")) == ZERO
    assert daterules.scan(container, shop, utc("2026-06-11T05:00")) == {**ZERO, "Birthday": 1}
    new = enrollments(container, shop) - FIRST_SCAN
    assert new == {("birthday", "newyork", None, "Birthday", "Birthday:newyork:2026", utc("2026-06-11T04:00"))}
    with container.sessions() as s:
        due = s.scalar(select(t.Message.due_at).where(t.Message.key == "birthday:Birthday:newyork:2026:message"))
    assert due == utc("2026-06-11T13:00")  # 09:00 EDT

    # Two weeks on: the two bags bought on May 1 run out on June 30 (reminded five days before), and the
    # one-order customer of May 25 is expected back after the shop's typical gap (30 days).
    later = utc("2026-06-25T17:00")
    assert daterules.scan(container, shop, later) == {**ZERO, "Replenishment": 1, "WinBack": 1}
    assert enrollments(container, shop) - FIRST_SCAN - new == {
        ("replenishment", "beans2", "F2", "Replenishment", "Replenishment:beans2:order:F2:product:beans",
         utc("2026-06-25T16:00")),
        ("win_back", "newyork", "B1", "WinBack", "WinBack:newyork:after:B1", utc("2026-06-24T12:00")),
    }
    everyone = {row[1] for row in enrollments(container, shop)}
    assert not everyone & {"erased", "orderless", "ghost", "reorderer", "regular-g", "regular-h"}


def test_erased_and_orderless_customers_are_never_enrolled(container: Container, shop: int) -> None:
    # Every day of the birthdays' and win-backs' weeks: the erased customer (birthday June 10, expected back
    # June 9) and the customer without orders (birthday June 10) never come up.
    for day in range(8):
        daterules.scan(container, shop, utc("2026-06-06T12:00") + timedelta(days=day))
    customers = {row[1] for row in enrollments(container, shop)}
    assert "erased" not in customers and "orderless" not in customers and "ghost" not in customers
    assert {"seoul", "newyork", "anniv", "beans1", "lapsed", "once"} <= customers
    # Once a customer is erased, later moments of theirs enroll nobody either.
    with container.sessions() as s, s.begin():
        s.execute(update(t.Customer).where(t.Customer.shop_id == shop, t.Customer.external_id == "beans2")
                  .values(redacted_at=T))
    assert daterules.scan(container, shop, utc("2026-06-25T17:00"))["Replenishment"] == 0


def test_a_switched_off_journey_enrolls_nobody(container: Container, shop: int) -> None:
    with container.sessions() as s, s.begin():
        s.execute(update(t.JourneyRow).where(t.JourneyRow.shop_id == shop, t.JourneyRow.key == "win_back")
                  .values(enabled=False))
    assert daterules.scan(container, shop, T) == {"Birthday": 1, "FirstOrderAnniversary": 1, "Replenishment": 1,
                                                   "WinBack": 0, "PointsExpiring": 0}


def test_run_scans_each_due_installed_shop_once_an_hour(container: Container, shop: int) -> None:
    gone = seed(container, domain="uninstalled.myshopify.com", installed=False)
    assert daterules.due_shops(container, T) == [shop]
    assert daterules.run(container, T) == {"Birthday": 1, "FirstOrderAnniversary": 1, "Replenishment": 1,
                                           "WinBack": 2, "PointsExpiring": 0}
    with container.sessions() as s:
        assert s.scalar(select(t.Shop.date_rules_at).where(t.Shop.id == shop)) == T
    assert daterules.due_shops(container, T + timedelta(minutes=59)) == []
    assert daterules.run(container, T + timedelta(minutes=59)) == ZERO
    assert daterules.due_shops(container, T + timedelta(hours=1)) == [shop]
    assert daterules.run(container, utc("2026-06-11T05:00")) == {**ZERO, "Birthday": 1}
    assert enrollments(container, gone) == set()


def test_the_sweeper_runs_the_date_rules(container: Container, shop: int) -> None:
    before = datetime.now(UTC)
    jobs.sweep()  # the container the fixture built is the process's current one
    with container.sessions() as s:
        stamped = s.scalar(select(t.Shop.date_rules_at).where(t.Shop.id == shop))
    assert stamped is not None and stamped >= before
    assert daterules.due_shops(container, stamped) == []
