"""The stamp card and badges, through the real handlers and database: every paid order stamps its customer's
card once (the same webhook twice is one stamp), every Nth stamp fills a card whose reward code is written into
the store, a cancelled order's stamp is void; badges for order counts, streaks of consecutive months, reviews
and VIP tiers, each once, only while badges are on."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from app import badges, loyalty, rewards, stamps, tiers
from app.bootstrap import Container
from app.core import commands as cmd
from app.core.tiers import Tier
from app.db import models as t
from tests.fakes import FakeStorePlatform
from tests.journeys import T0, Clock, customer, journey_shop, observe, order


@pytest.fixture
def shop(container: Container) -> int:
    shop_id = journey_shop(container, frozenset())
    with container.sessions() as s, s.begin():
        loyalty.switch_on(s, shop_id, T0 - timedelta(days=1))
    return shop_id


def _card(c: Container, shop: int, every: int = 3) -> int:
    with c.sessions() as s, s.begin():
        reward_id = rewards.add_reward(s, shop, "Free bag of beans", "amount", Decimal("15"), 1000, T0)
        program = s.scalar(select(t.LoyaltyProgramRow).where(t.LoyaltyProgramRow.shop_id == shop))
        assert program is not None
        program.stamp_every, program.stamp_reward_id = every, reward_id
    return reward_id


def paid(c: Container, shop: int, oid: str, at: timedelta = timedelta(0), cid: str = "501", **kw: object) -> None:
    command = cmd.ObserveOrder(shop, order(oid, cid=cid, at=T0 + at, **kw), customer(cid))
    observe(c, Clock(T0 + at), shop, command)


def card(c: Container, shop: int, cid: str = "501") -> dict[str, object] | None:
    with c.sessions() as s:
        return stamps.card_of(s, shop, cid)


def redemptions(c: Container, shop: int) -> list[t.Redemption]:
    with c.sessions() as s:
        return list(s.scalars(select(t.Redemption).where(t.Redemption.shop_id == shop).order_by(t.Redemption.id)))


def test_every_third_paid_order_fills_a_card_and_its_code_is_written_into_the_store(
        container: Container, shop: int) -> None:
    reward_id = _card(container, shop)
    paid(container, shop, "1")
    paid(container, shop, "1")  # the same webhook again: one stamp
    paid(container, shop, "2", timedelta(days=1))
    assert card(container, shop) == {"every": 3, "stamps": 2, "reward": "Free bag of beans", "cards_filled": 0}
    assert redemptions(container, shop) == []

    paid(container, shop, "3", timedelta(days=2))
    assert card(container, shop) == {"every": 3, "stamps": 0, "reward": "Free bag of beans", "cards_filled": 1}
    [held] = redemptions(container, shop)
    assert (held.reward_id, held.points, held.status, held.customer_external_id) == (reward_id, 0, "issuing", "501")

    store = FakeStorePlatform()
    assert rewards.issue_due(container, T0 + timedelta(days=2), lambda _: store) == 1
    [written] = store.discounts.values()
    assert written.request.code == held.code and written.request.amount_off == Decimal("15")
    assert written.request.usage_limit == 1 and written.request.customer_id == "501"
    [issued] = redemptions(container, shop)
    assert issued.status == "issued"
    with container.sessions() as s:  # the card costs no points: the ledger is untouched
        assert loyalty.balance(s, shop, "501").available == 0
        assert loyalty.mismatches(s) == []

    for n, day in (("4", 3), ("5", 4), ("6", 5)):
        paid(container, shop, n, timedelta(days=day))
    assert [r.request_key for r in redemptions(container, shop)] == ["stamp:501:1", "stamp:501:2"]


def test_a_cancelled_order_loses_its_stamp_and_a_filled_card_stays_filled(container: Container, shop: int) -> None:
    _card(container, shop)
    paid(container, shop, "1")
    paid(container, shop, "2", timedelta(days=1))
    paid(container, shop, "2", timedelta(days=1), cancelled_at=T0 + timedelta(days=1, hours=2))
    assert card(container, shop) == {"every": 3, "stamps": 1, "reward": "Free bag of beans", "cards_filled": 0}
    paid(container, shop, "3", timedelta(days=2))
    paid(container, shop, "4", timedelta(days=3))
    assert card(container, shop)["cards_filled"] == 1  # type: ignore[index]
    paid(container, shop, "4", timedelta(days=3), cancelled_at=T0 + timedelta(days=4))  # after its card was filled
    assert card(container, shop)["cards_filled"] == 1  # type: ignore[index]
    assert len(redemptions(container, shop)) == 1


def test_orders_from_before_the_program_and_shops_without_a_card_stamp_nothing(
        container: Container, shop: int) -> None:
    paid(container, shop, "1")
    assert card(container, shop) is None  # no card configured
    _card(container, shop, every=2)
    paid(container, shop, "0", -timedelta(days=30))  # placed before the program started
    paid(container, shop, "2", timedelta(days=1))
    assert card(container, shop) == {"every": 2, "stamps": 1, "reward": "Free bag of beans", "cards_filled": 0}


def earned(c: Container, shop: int, cid: str = "501") -> dict[str, str | None]:
    with c.sessions() as s:
        data = badges.widget_data(s, shop, cid, "en", T0 + timedelta(days=400))
    assert data is not None
    return {b["key"]: b["earned_at"] for b in data[0]}


def test_order_count_and_streak_badges_come_once_at_their_milestone(container: Container, shop: int) -> None:
    paid(container, shop, "1")
    got = earned(container, shop)
    assert got["first_order"] == T0.isoformat() and got["third_order"] is None
    # New York months: November, December, January (the 2nd at 15:00 UTC is still the 2nd there)
    paid(container, shop, "2", timedelta(days=31))
    paid(container, shop, "2", timedelta(days=31))  # again: nothing new
    paid(container, shop, "3", timedelta(days=62))
    got = earned(container, shop)
    assert got["third_order"] == (T0 + timedelta(days=62)).isoformat()
    assert got["streak_3"] == (T0 + timedelta(days=62)).isoformat() and got["streak_6"] is None
    assert got["first_order"] == T0.isoformat()  # kept, not earned again
    with container.sessions() as s:
        assert s.query(t.CustomerBadge).filter_by(shop_id=shop).count() == 3


def test_the_streak_counts_consecutive_months_in_the_shops_time_zone(container: Container, shop: int) -> None:
    # 2026-11-30 23:30 in New York is 2026-12-01 04:30 UTC: a November order there
    late_november = timedelta(days=28, hours=13, minutes=30)
    paid(container, shop, "1", late_november)
    paid(container, shop, "2", timedelta(days=40))  # December 12
    with container.sessions() as s:
        listed = badges.widget_data(s, shop, "501", "en", T0 + timedelta(days=45))
        assert listed is not None and listed[1] == {"months": 2, "best": 2}
        later = badges.widget_data(s, shop, "501", "en", T0 + timedelta(days=120))  # March: the run was broken
        assert later is not None and later[1] == {"months": 0, "best": 2}


def test_streak_arithmetic() -> None:
    assert badges.streak([], 10) == (0, 0)
    assert badges.streak([3, 4, 5, 8, 9], 9) == (2, 3)  # ends this month
    assert badges.streak([3, 4, 5, 8, 9], 10) == (2, 3)  # ends last month: not broken yet
    assert badges.streak([3, 4, 5, 8, 9], 11) == (0, 3)  # a month with no order: broken


def test_review_and_vip_badges_and_badges_switched_off(container: Container, shop: int) -> None:
    with container.sessions() as s, s.begin():
        loyalty.award_action(s, shop, "501", "review", "review:1", T0)  # no points for reviews: still a badge
        tiers.set_tiers(s, shop, [Tier("gold", "Gold", Decimal("20"), Decimal("1.5"))], T0)
    paid(container, shop, "1")  # $33 of spend: Gold
    got = earned(container, shop)
    assert got["first_review"] == T0.isoformat() and got["vip"] == T0.isoformat()

    with container.sessions() as s, s.begin():
        program = s.scalar(select(t.LoyaltyProgramRow).where(t.LoyaltyProgramRow.shop_id == shop))
        assert program is not None
        program.badges_enabled = False
    paid(container, shop, "2", timedelta(days=1), cid="502")
    with container.sessions() as s:
        assert badges.widget_data(s, shop, "502", "en", T0) is None
        assert s.query(t.CustomerBadge).filter_by(customer_external_id="502").count() == 0


def test_badge_names_come_in_the_shoppers_language(container: Container, shop: int) -> None:
    paid(container, shop, "1")
    with container.sessions() as s:
        ko = badges.widget_data(s, shop, "501", "ko", T0)
        ja = badges.widget_data(s, shop, "501", "ja-JP", T0)
    assert ko is not None and ja is not None
    assert ko[0][0]["name"] == "첫 주문" and ja[0][0]["name"] == "はじめての注文"


def test_a_stamp_card_code_the_store_refuses_for_good_is_marked_with_its_error(container: Container, shop: int) -> None:
    _card(container, shop, every=1)
    paid(container, shop, "1")

    class Refusing(FakeStorePlatform):
        def create_discount(self, request: object) -> str:
            raise ValueError("code rejected")

    assert rewards.issue_due(container, T0, lambda _: Refusing()) == 1
    [held] = redemptions(container, shop)
    assert held.status == "restored" and "code rejected" in (held.error or "")
    assert rewards.issue_due(container, T0 + timedelta(hours=1), lambda _: Refusing()) == 0  # settled, not retried
    with container.sessions() as s:
        assert loyalty.balance(s, shop, "501").available == 0 and loyalty.mismatches(s) == []
