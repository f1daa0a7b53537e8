"""Points for actions given by the loyalty sweep: birthday points once a year, at the customer's local
midnight, only for customers the shop knows (with an order), and nothing when the program gives none."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select, update

from app import loyalty
from app.bootstrap import Container
from app.core import commands as cmd
from app.db import models as t
from tests.journeys import Clock, customer, journey_shop, observe, order

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _shop(c: Container, birthday_points: int) -> int:
    shop_id = journey_shop(c, frozenset(), timezone="Asia/Seoul")
    with c.sessions() as s, s.begin():
        loyalty.switch_on(s, shop_id, START, actions={"birthday": birthday_points, "survey": 10})
    for cid, born in (("501", date(1990, 3, 10)), ("502", date(1985, 3, 11))):
        observe(c, Clock(START), shop_id, cmd.ObserveOrder(shop_id, order(f"o{cid}", cid=cid, at=START), customer(cid)))
        with c.sessions() as s, s.begin():
            s.execute(update(t.Customer).where(t.Customer.shop_id == shop_id, t.Customer.external_id == cid)
                      .values(birthday=born))
    return shop_id


def _birthday_entries(c: Container, shop: int) -> list[tuple[str, str]]:
    with c.sessions() as s:
        rows = s.execute(select(t.LoyaltyAccount.customer_external_id, t.LedgerEntry.key)
                         .join(t.LoyaltyAccount, t.LoyaltyAccount.id == t.LedgerEntry.account_id)
                         .where(t.LedgerEntry.shop_id == shop, t.LedgerEntry.key.like("action:birthday:%"))
                         .order_by(t.LedgerEntry.id)).all()
    return [(r[0], r[1]) for r in rows]


def test_birthday_points_come_once_a_year_at_local_midnight(container: Container) -> None:
    shop = _shop(container, 250)
    # 2026-03-10 00:00 in Seoul is 2026-03-09 15:00 UTC
    assert loyalty.sweep_due(container, datetime(2026, 3, 9, 14, 30, tzinfo=UTC)) >= 0
    assert _birthday_entries(container, shop) == []
    loyalty.sweep_due(container, datetime(2026, 3, 9, 15, 45, tzinfo=UTC))
    assert _birthday_entries(container, shop) == [("501", "action:birthday:2026")]
    loyalty.sweep_due(container, datetime(2026, 3, 9, 17, 0, tzinfo=UTC))  # later that day: nothing again
    loyalty.sweep_due(container, datetime(2026, 3, 10, 15, 30, tzinfo=UTC))
    assert _birthday_entries(container, shop) == [("501", "action:birthday:2026"), ("502", "action:birthday:2026")]
    with container.sessions() as s:
        assert loyalty.balance(s, shop, "501").available == 250
        assert loyalty.mismatches(s) == []
    # a sweep after an outage looks back two days at most, and a year later the birthday comes again
    loyalty.sweep_due(container, datetime(2027, 3, 10, 0, 0, tzinfo=UTC) - timedelta(hours=8))
    assert ("501", "action:birthday:2027") in _birthday_entries(container, shop)


def test_no_birthday_points_when_the_program_gives_none(container: Container) -> None:
    shop = _shop(container, 0)
    loyalty.sweep_due(container, datetime(2026, 3, 10, 15, 30, tzinfo=UTC))
    assert _birthday_entries(container, shop) == []


def test_sign_up_points_for_accounts_made_after_the_program_began_once(container: Container) -> None:
    from dataclasses import replace

    shop_id = journey_shop(container, frozenset())
    with container.sessions() as s, s.begin():
        loyalty.switch_on(s, shop_id, START, actions={"signup": 200})
    newcomer = replace(customer("601"), created_at=START + timedelta(days=2))
    regular = replace(customer("602"), created_at=START - timedelta(days=300))
    unknown = customer("603")  # no creation date: no points rather than a guess
    for person in (newcomer, regular, unknown):
        observe(container, Clock(START), shop_id, cmd.ObserveCustomer(shop_id, person))
    later = replace(newcomer, updated_at=newcomer.updated_at + timedelta(days=3), first_name="Ana Maria")
    observe(container, Clock(START), shop_id, cmd.ObserveCustomer(shop_id, later))  # a change: no more points
    with container.sessions() as s:
        assert loyalty.balance(s, shop_id, "601").available == 200
        assert loyalty.balance(s, shop_id, "602").available == 0 and loyalty.balance(s, shop_id, "603").available == 0
        stored = s.scalar(select(t.Customer.external_created_at).where(t.Customer.external_id == "601"))
        assert stored == START + timedelta(days=2)
        assert loyalty.mismatches(s) == []
