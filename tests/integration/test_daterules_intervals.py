"""Replenishment reads the reorder intervals stored per product (app.daterules with app.analytics.refresh): the
shop of tests/integration/test_daterules.py (beans reordered after 30, 30, 30 and 21 days), its reminders from the
interval the nightly refresh learned, a merchant's own interval standing for it (0: never), and a shop never
refreshed still learning its intervals at each scan."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import update

from app import daterules
from app.analytics import refresh
from app.bootstrap import Container
from app.db import models as t
from tests.integration.test_daterules import NY, T, seed, utc

WIDE = timedelta(days=60)  # look at every reminder of the weeks around T


def reminders(c: Container, shop_id: int, end: datetime = T + timedelta(days=30)) -> dict[str, datetime]:
    """Each customer's replenishment reminder (customer -> moment) due between T - WIDE and `end`."""
    with c.sessions() as s:
        return {d.customer_id: d.trigger_at for d in daterules.replenishments(s, shop_id, NY, T - WIDE, end)}


def due(c: Container, shop_id: int) -> list[daterules.dates.Due]:
    """The replenishments due in the same window, with their occasions."""
    with c.sessions() as s:
        return daterules.replenishments(s, shop_id, NY, T - WIDE, T + timedelta(days=30))


def set_interval(c: Container, shop_id: int, product: str, **values: object) -> None:
    with c.sessions() as s, s.begin():
        p = t.ProductReorderInterval
        s.execute(update(p).where(p.shop_id == shop_id, p.product_external_id == product).values(**values))


def add_tea(c: Container, shop_id: int) -> None:
    """The reorderer buys tea every 10 days, three gaps: learnable at once by a scan, not yet stored."""
    with c.sessions() as s, s.begin():
        for n, day in enumerate(("2026-05-01", "2026-05-11", "2026-05-21", "2026-05-31")):
            at = utc(f"{day}T16:00")
            o = t.Order(shop_id=shop_id, external_id=f"T{n}", customer_external_id="reorderer", currency="USD",
                        subtotal=Decimal(9), total=Decimal(9), total_tax=Decimal(0), total_shipping=Decimal(0),
                        total_discounts=Decimal(0), refunded_amount=Decimal(0), payment_status="paid", status="open",
                        created_at=at, external_updated_at=at)
            s.add(o)
            s.flush()
            s.add(t.OrderLine(shop_id=shop_id, order_id=o.id, external_id=f"T{n}-0", product_external_id="tea",
                              title="tea", quantity=1, price=Decimal(9), total_discount=Decimal(0)))


@pytest.fixture
def shop(container: Container) -> int:
    return seed(container)


BEANS_30 = {"beans1": utc("2026-06-09T16:00"), "beans2": utc("2026-06-25T16:00"),  # one bag, two bags of May
            "reorderer": utc("2026-06-30T16:00")}  # June 5's bag


def test_a_shop_never_refreshed_learns_its_intervals_at_each_scan(container: Container, shop: int) -> None:
    assert reminders(container, shop) == BEANS_30
    add_tea(container, shop)
    assert reminders(container, shop)["reorderer"] == utc("2026-06-05T16:00")  # tea of May 31, every 10 days


def test_a_refreshed_shop_reminds_from_the_stored_interval(container: Container, shop: int) -> None:
    assert refresh.refresh(container, shop, T) is not None
    with container.sessions() as s:
        assert daterules.stored_intervals(s, shop) == {"beans": timedelta(days=30)}
    assert reminders(container, shop) == BEANS_30
    set_interval(container, shop, "beans", median_days=40.0)  # what a later night learned
    # beans2's two bags now last until July 20: reminded on the 15th, after the window
    assert reminders(container, shop) == {"beans1": utc("2026-06-19T16:00"), "reorderer": utc("2026-07-10T16:00")}
    add_tea(container, shop)  # not learned until the next night
    assert "tea" not in {d.occasion.rsplit(":", 1)[-1] for d in due(container, shop)}


def test_the_merchants_interval_stands_for_the_learned_one(container: Container, shop: int) -> None:
    assert refresh.refresh(container, shop, T) is not None
    set_interval(container, shop, "beans", merchant_days=20)
    assert reminders(container, shop) == {"beans1": utc("2026-05-30T16:00"), "beans2": utc("2026-06-05T16:00"),
                                          "reorderer": utc("2026-06-20T16:00")}
    set_interval(container, shop, "beans", merchant_days=0)  # the merchant's "never"
    assert reminders(container, shop) == {}


def test_a_merchants_interval_counts_before_the_first_refresh_too(container: Container, shop: int) -> None:
    with container.sessions() as s, s.begin():
        s.add(t.ProductReorderInterval(shop_id=shop, product_external_id="beans", merchant_days=20))
    assert reminders(container, shop)["beans1"] == utc("2026-05-30T16:00")
