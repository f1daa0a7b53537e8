"""Points that follow the order, through the real handlers and database: earned pending when an order is paid,
available when it is fulfilled, and taken back exactly on refunds and cancellations, under the rule that
earned them; the same webhook twice posts once; orders from before the program earn nothing; and after every
scenario each snapshot is the sum of its entries."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from app import loyalty, tiers
from app.bootstrap import Container
from app.channels.outbox import OutboxChannel
from app.core import commands as cmd
from app.core.loyalty import Account, Balance, EarnRule, Entry, NotEnoughPoints, Posting, Reason
from app.core.model import Fulfillment, OrderLine, PaymentStatus, Refund, RefundLine
from app.core.tiers import Tier
from app.db import models as t
from app.dispatch import Dispatcher
from tests.fakes import FakeStorePlatform
from tests.journeys import T0, Clock, customer, journey_shop, observe, order, read_outbox

LINES = (OrderLine("1", "Ethiopia Guji 250 g", 2, Decimal("14.50"), product_id="p1"),  # 29.00
         OrderLine("2", "Paper filters", 3, Decimal("4.00"), total_discount=Decimal("1.50"), product_id="p2"))  # 10.50


@pytest.fixture
def shop(container: Container) -> int:
    shop_id = journey_shop(container, frozenset())
    with container.sessions() as s, s.begin():
        loyalty.switch_on(s, shop_id, T0 - timedelta(days=1), points_per_unit=Decimal("2"))
    return shop_id


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def outbox(tmp_path: Path) -> OutboxChannel:
    return OutboxChannel(tmp_path / "outbox")


def paid(oid: str = "1001", **kw: object) -> cmd.ObserveOrder:
    return cmd.ObserveOrder(0, order(oid, lines=LINES, total=Decimal("39.50"), subtotal=Decimal("39.50"), **kw),
                            customer())


def see(c: Container, clock: Clock, shop: int, command: cmd.Command) -> None:
    observe(c, clock, shop, replace(command, shop_id=shop))  # type: ignore[call-arg]


def points(c: Container, shop: int) -> Account:
    with c.sessions() as s:
        assert loyalty.mismatches(s) == []  # after every step: each snapshot is the sum of its entries
        return loyalty.balance(s, shop, "501")


def shipped(oid: str = "1001") -> cmd.ObserveFulfillment:
    return cmd.ObserveFulfillment(0, oid, Fulfillment("f1", T0 + timedelta(days=1), T0 + timedelta(days=1)))


def refund(rid: str, *lines: tuple[str, int, str], oid: str = "1001") -> cmd.ObserveRefund:
    detail = tuple(RefundLine(line, qty, Decimal(amount)) for line, qty, amount in lines)
    return cmd.ObserveRefund(0, oid, Refund(rid, T0 + timedelta(days=3), sum((x.amount for x in detail), Decimal(0)),
                                            detail))


def test_paid_earns_pending_fulfilled_makes_it_available_and_repeats_post_once(
        container: Container, clock: Clock, shop: int) -> None:
    see(container, clock, shop, paid())
    see(container, clock, shop, paid())  # the same webhook again
    assert points(container, shop) == Account(available=0, pending=58 + 21)  # 29.00 x 2, 10.50 x 2
    see(container, clock, shop, shipped())
    see(container, clock, shop, shipped())
    assert points(container, shop) == Account(available=79, pending=0)
    with container.sessions() as s:
        kinds = sorted((e.reason, e.amount) for e in s.scalars(select(t.LedgerEntry)))
        assert kinds == [("confirmed", -79), ("confirmed", 79), ("earned", 21), ("earned", 58)]


def test_partial_refunds_of_a_multi_line_order_take_back_exactly_what_the_lines_earned(
        container: Container, clock: Clock, shop: int) -> None:
    see(container, clock, shop, paid())
    see(container, clock, shop, shipped())
    see(container, clock, shop, refund("r1", ("1", 1, "14.50")))  # one of two bags: 29 points left on line 1
    assert points(container, shop) == Account(79 - 29, 0)
    see(container, clock, shop, refund("r2", ("2", 1, "3.49"), ("1", 1, "14.50")))  # 7.01 x 2 = 14 kept on line 2
    assert points(container, shop) == Account(14, 0)
    see(container, clock, shop, refund("r2", ("2", 1, "3.49"), ("1", 1, "14.50")))  # again: nothing more
    see(container, clock, shop, refund("r3", ("2", 2, "7.01")))
    assert points(container, shop) == Account(0, 0)  # all refunded: every point earned is back, none more


def test_a_refund_after_the_rule_changed_takes_back_what_the_old_rule_gave(
        container: Container, clock: Clock, shop: int) -> None:
    see(container, clock, shop, paid())
    with container.sessions() as s, s.begin():
        assert loyalty.new_rule(s, shop, EarnRule(1, Decimal("10")), T0) == 2
    see(container, clock, shop, refund("r1", ("1", 2, "29.00")))
    assert points(container, shop) == Account(0, 21)  # 58 taken back (rule 1), not 290 (rule 2)
    see(container, clock, shop, paid("1002"))
    assert points(container, shop) == Account(0, 21 + 395)  # a new order earns under rule 2


def test_cancelling_a_pending_order_takes_its_points_back(container: Container, clock: Clock, shop: int) -> None:
    see(container, clock, shop, paid())
    see(container, clock, shop, refund("r1", ("1", 1, "14.50")))
    see(container, clock, shop, paid(cancelled_at=T0 + timedelta(hours=5)))
    assert points(container, shop) == Account(0, 0)
    see(container, clock, shop, shipped())  # fulfilled after all: nothing to confirm
    assert points(container, shop) == Account(0, 0)


def test_a_refund_after_spending_leaves_a_debt_and_spending_more_is_refused(
        container: Container, clock: Clock, shop: int) -> None:
    see(container, clock, shop, paid())
    see(container, clock, shop, shipped())
    with container.sessions() as s, s.begin():
        loyalty.post(s, shop, "501", [Posting(Entry(-50, Balance.AVAILABLE, Reason.REDEEMED, "reward:1"))], T0)
    see(container, clock, shop, refund("r1", ("1", 2, "29.00"), ("2", 3, "10.50")))
    assert points(container, shop) == Account(-50, 0)
    with pytest.raises(NotEnoughPoints), container.sessions() as s, s.begin():
        loyalty.post(s, shop, "501", [Posting(Entry(-1, Balance.AVAILABLE, Reason.REDEEMED, "reward:2"))], T0)
    assert points(container, shop) == Account(-50, 0)


def test_orders_from_before_the_program_and_guests_earn_nothing(
        container: Container, clock: Clock, shop: int) -> None:
    see(container, clock, shop, paid("900", at=T0 - timedelta(days=30)))  # an imported or old order
    see(container, clock, shop, paid("901", customer_id=None))
    assert points(container, shop) == Account(0, 0)
    with container.sessions() as s:
        assert s.scalar(select(t.LedgerEntry.id)) is None


def test_a_shop_without_a_program_posts_nothing(container: Container, clock: Clock) -> None:
    shop = journey_shop(container, frozenset())
    see(container, clock, shop, paid())
    with container.sessions() as s:
        assert s.scalar(select(t.LoyaltyAccount.id)) is None


def test_an_order_paid_after_it_was_fulfilled_is_confirmed_at_once(
        container: Container, clock: Clock, shop: int) -> None:
    unpaid = paid(payment=PaymentStatus.PENDING)
    see(container, clock, shop, unpaid)
    see(container, clock, shop, shipped())
    assert points(container, shop) == Account(0, 0)
    see(container, clock, shop, paid())
    assert points(container, shop) == Account(79, 0)


def test_with_a_returns_window_points_become_available_once_it_has_passed(
        container: Container, clock: Clock) -> None:
    shop = journey_shop(container, frozenset())
    with container.sessions() as s, s.begin():
        loyalty.switch_on(s, shop, T0 - timedelta(days=1), points_per_unit=Decimal("2"), confirm_after_days=14)
    see(container, clock, shop, paid())
    see(container, clock, shop, shipped())  # fulfilled on day 1: still pending
    see(container, clock, shop, paid("1002"))  # never fulfilled
    assert points(container, shop) == Account(0, 79 + 79)
    assert loyalty.sweep_due(container, T0 + timedelta(days=14)) == 0  # day 14: the window is still open
    assert loyalty.sweep_due(container, T0 + timedelta(days=14, minutes=30)) == 0  # swept within the hour
    assert loyalty.sweep_due(container, T0 + timedelta(days=15, hours=1)) == 1
    assert points(container, shop) == Account(79, 79)
    see(container, clock, shop, refund("r1", ("1", 1, "14.50")))  # a late refund comes out of what is available
    assert points(container, shop) == Account(79 - 29, 79)
    assert loyalty.sweep_due(container, T0 + timedelta(days=20)) == 0  # confirmed once


TIERS = (Tier("member", "Member", Decimal("0")), Tier("silver", "Silver", Decimal("300"), Decimal("1.5")),
         Tier("gold", "Gold", Decimal("1000"), Decimal("2"), ("Free shipping", "Early access")))


def tier_events(c: Container, shop: int) -> list[tuple[str | None, str | None, bool]]:
    with c.sessions() as s:
        return [(x.old, x.new, x.upgraded) for x in s.scalars(select(t.TierChange).order_by(t.TierChange.id))]


def test_vip_tiers_move_up_on_orders_multiply_points_and_move_down_after_the_grace(
        container: Container, clock: Clock, outbox: OutboxChannel) -> None:
    shop = journey_shop(container, frozenset({"vip_tier"}))
    with container.sessions() as s, s.begin():
        loyalty.switch_on(s, shop, T0 - timedelta(days=1), points_per_unit=Decimal("1"))
        tiers.set_tiers(s, shop, TIERS, T0)
    big = (OrderLine("1", "Espresso machine", 1, Decimal("1200.00"), product_id="m1"),)
    see(container, clock, shop, paid())  # 39.50 spent: Member
    see(container, clock, shop, cmd.ObserveOrder(0, order("1002", lines=big, total=Decimal("1200"),
                                                          subtotal=Decimal("1200")), customer()))
    assert tier_events(container, shop) == [(None, "member", True), ("member", "gold", True)]
    assert points(container, shop) == Account(0, 39 + 1200)  # the order that lifts earns at the old rate
    see(container, clock, shop, paid("1003"))
    assert points(container, shop) == Account(0, 39 + 1200 + 79)  # Gold doubles the next one (58 + 21)
    see(container, clock, shop, refund("r1", ("1", 1, "1200.00"), oid="1002"))  # spend falls to 79: grace
    assert tier_events(container, shop)[-1] == ("member", "gold", True)
    with container.sessions() as s:
        account = s.scalars(select(t.LoyaltyAccount)).one()
        assert account.tier == "gold" and account.below_since is not None
    assert loyalty.sweep_due(container, T0 + timedelta(days=29)) == 0  # still in the grace
    assert loyalty.sweep_due(container, T0 + timedelta(days=31)) >= 1
    assert tier_events(container, shop)[-1] == ("gold", "member", False)
    with container.sessions() as s:
        recorded = [e.type for e in s.scalars(select(t.EventRow).where(t.EventRow.type == "TierChanged"))]
        assert len(recorded) == 3
    # The vip_tier journey announces each change; the last one says the new tier, without congratulations.
    store = FakeStorePlatform()
    Dispatcher(container, {"email": outbox}, platform_for=lambda _: store,
               now=lambda: T0 + timedelta(days=31, minutes=5)).run_once()
    sent = read_outbox(outbox)
    assert len(sent) == 3
    assert sorted(m["subject"] for m in sent) == ["Welcome to Gold!", "Welcome to Member!",
                                                  "Your membership level is now Member"]
    gold = next(m for m in sent if m["subject"] == "Welcome to Gold!")
    assert "Early access" in gold.get_body(("plain",)).get_content()


def test_refunds_that_name_no_lines_take_back_the_refunded_share_of_each_line(
        container: Container, clock: Clock, shop: int) -> None:
    """WooCommerce's webhooks carry each refund's total only: a quarter of the order's total refunded takes back a
    quarter of each line's eligible amount, and the rest once everything is refunded, however it was split."""
    see(container, clock, shop, paid())  # total 39.50: lines 29.00 and 10.50 eligible, 2 points per unit
    assert points(container, shop) == Account(available=0, pending=58 + 21)
    quarter = cmd.ObserveRefund(0, "1001", Refund("w1", T0 + timedelta(days=3), Decimal("9.875"), ()))
    see(container, clock, shop, quarter)
    see(container, clock, shop, quarter)  # the same webhook again
    # 29.00 x 0.75 x 2 = 43.5 -> 43; 10.50 x 0.75 x 2 = 15.75 -> 15
    assert points(container, shop) == Account(available=0, pending=43 + 15)
    rest = cmd.ObserveRefund(0, "1001", Refund("w2", T0 + timedelta(days=4), Decimal("29.625"), ()))
    see(container, clock, shop, rest)
    assert points(container, shop) == Account(available=0, pending=0)
