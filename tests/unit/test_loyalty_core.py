"""The points ledger's arithmetic (app/core/loyalty.py): what lines earn and with which rounding, refunds and
cancellations that take back exactly what was earned under the rule that earned it, and a property test that no
sequence of orders, refunds, cancellations and redemptions creates a point or spends one that is not there."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.loyalty import (
    CODE_ALPHABET,
    Account,
    Balance,
    Bonus,
    EarnRule,
    Entry,
    Line,
    LineEarning,
    LoyaltyError,
    NotEnoughPoints,
    Reason,
    code_bits,
    confirm,
    earn,
    reward_code,
)

AT = datetime(2026, 11, 20, 12, tzinfo=UTC)
ONE = EarnRule(1, Decimal("1"))


def test_each_line_earns_whole_points_rounded_down_on_what_was_paid_for_it() -> None:
    lines = [Line("1", "p1", Decimal("14.99"), 2, discount=Decimal("3.00")),  # 26.98 -> 26
             Line("2", "p2", Decimal("0.99"), 1),  # 0.99 -> nothing
             Line("3", "gift", Decimal("50.00"), 1, gift_card=True),  # gift cards never earn
             Line("4", "p4", Decimal("5.00"), 1, discount=Decimal("9.00"))]  # over-discounted: nothing
    earned = earn(EarnRule(3, Decimal("1")), lines, AT)
    assert earned == (LineEarning("1", Decimal("26.98"), Decimal("1"), 26, 3),)
    assert [e.points for e in earn(EarnRule(1, Decimal("2.5")), lines[:2], AT)] == [67, 2]  # 67.45, 2.475


def test_bonuses_and_tier_multipliers_multiply_the_rate_while_they_run() -> None:
    double_coffee = Bonus(Decimal("2"), AT - timedelta(days=1), AT + timedelta(days=1), frozenset({"coffee"}))
    rule = EarnRule(2, Decimal("1"), (double_coffee,))
    lines = [Line("1", "coffee", Decimal("10"), 1), Line("2", "mug", Decimal("10"), 1)]
    assert [e.points for e in earn(rule, lines, AT)] == [20, 10]
    assert [e.points for e in earn(rule, lines, AT + timedelta(days=2))] == [10, 10]  # the campaign is over
    assert [e.points for e in earn(rule, lines, AT, multiplier=Decimal("1.5"))] == [30, 15]
    with pytest.raises(LoyaltyError):
        EarnRule(1, Decimal("-1"))


def test_partial_refunds_of_a_multi_line_order_add_up_to_exactly_what_each_line_earned() -> None:
    earned = earn(EarnRule(1, Decimal("1.3")), [Line("1", "a", Decimal("9.99"), 3), Line("2", "b", Decimal("4.5"), 1)],
                  AT)
    first, second = earned
    assert (first.points, second.points) == (38, 5)  # 29.97 x 1.3 = 38.961; 4.5 x 1.3 = 5.85
    taken = [first.reversal(Decimal("0"), Decimal("9.99")),  # one of three units
             first.reversal(Decimal("9.99"), Decimal("0.01")),  # a cent of goodwill
             first.reversal(Decimal("10.00"), Decimal("19.97"))]  # the rest
    assert taken == [13, 0, 25] and sum(taken) == first.points
    assert first.reversal(Decimal("29.97"), Decimal("5")) == 0  # refunding more than was paid takes nothing more
    assert second.reversal(Decimal("0"), Decimal("100")) == second.points


def test_a_refund_after_the_rule_changed_takes_back_what_the_old_rule_gave() -> None:
    (old,) = earn(EarnRule(1, Decimal("1")), [Line("1", "a", Decimal("40"), 1)], AT)
    (new,) = earn(EarnRule(2, Decimal("10")), [Line("1", "a", Decimal("40"), 1)], AT)
    assert (old.points, new.points, old.rule_version) == (40, 400, 1)
    assert old.reversal(Decimal("0"), Decimal("40")) == 40  # not 400


def test_spending_needs_the_points_and_a_refund_after_spending_may_leave_a_debt() -> None:
    account = Account().post([Entry(100, Balance.PENDING, Reason.EARNED, "o1:1")])
    account = account.post(confirm(100, "o1:confirm"))
    assert account == Account(available=100, pending=0)
    with pytest.raises(NotEnoughPoints, match="costs 150 points and the balance is 100"):
        account.post([Entry(-150, Balance.AVAILABLE, Reason.REDEEMED, "r1")])
    account = account.post([Entry(-80, Balance.AVAILABLE, Reason.REDEEMED, "r1")])
    account = account.post([Entry(-100, Balance.AVAILABLE, Reason.REVERSED, "o1:refund:1")])  # refunded after
    assert account.available == -80
    with pytest.raises(NotEnoughPoints, match="balance is 0"):
        account.post([Entry(-1, Balance.AVAILABLE, Reason.REDEEMED, "r2")])
    with pytest.raises(LoyaltyError):  # only what is pending can leave pending
        Account(pending=5).post([Entry(-6, Balance.PENDING, Reason.REVERSED, "x")])
    with pytest.raises(LoyaltyError):
        Entry(0, Balance.AVAILABLE, Reason.BONUS, "zero")


def test_reward_codes_are_readable_and_unguessable() -> None:
    codes = {reward_code("ENC-") for _ in range(2000)}
    assert len(codes) == 2000
    assert all(c.startswith("ENC-") and len(c) == 14 and set(c[4:]) <= set(CODE_ALPHABET) for c in codes)
    assert not set("01OI") & set(CODE_ALPHABET) and code_bits(10) == 50
    with pytest.raises(LoyaltyError):
        reward_code(length=6)


# --- the property: any history, exact books -------------------------------------------------------------------


@dataclass
class Books:
    """A customer's points kept the way Encore keeps them: every entry, and the snapshot they must add up to."""

    entries: list[Entry] = field(default_factory=list)
    account: Account = Account()
    orders: dict[int, list[LineEarning]] = field(default_factory=dict)
    refunded: Counter[tuple[int, str]] = field(default_factory=Counter)  # money refunded per order line
    confirmed: set[int] = field(default_factory=set)
    cancelled: set[int] = field(default_factory=set)
    redeemed: int = 0
    refused: int = 0

    def post(self, entries: list[Entry]) -> None:
        self.account = self.account.post(entries)  # raises before anything is kept
        self.entries.extend(entries)

    def balance(self, order: int) -> Balance:
        return Balance.AVAILABLE if order in self.confirmed else Balance.PENDING


lines_st = st.lists(st.tuples(st.decimals(min_value=0, max_value=500, places=2), st.integers(1, 4),
                              st.decimals(min_value=0, max_value=50, places=2)), min_size=1, max_size=4)
steps_st = st.lists(st.one_of(
    st.tuples(st.just("order"), lines_st, st.sampled_from([Decimal("1"), Decimal("2.5"), Decimal("0.1")])),
    st.tuples(st.just("confirm"), st.integers(0, 9)),
    st.tuples(st.just("refund"), st.integers(0, 9), st.integers(0, 3), st.decimals(min_value=0, max_value=600,
                                                                                  places=2)),
    st.tuples(st.just("cancel"), st.integers(0, 9)),
    st.tuples(st.just("redeem"), st.integers(1, 2000)),
), max_size=40)


@given(steps_st)
@settings(max_examples=300, deadline=None)
def test_no_history_creates_a_point_or_spends_one_that_is_not_there(steps: list[tuple]) -> None:  # type: ignore[type-arg]
    books = Books()
    for step in steps:
        kind = step[0]
        if kind == "order":
            n = len(books.orders)
            lines = [Line(str(i), f"p{i}", price, qty, discount) for i, (price, qty, discount) in enumerate(step[1])]
            earned = list(earn(EarnRule(1 + n % 3, step[2]), lines, AT))
            books.orders[n] = earned
            books.post([Entry(e.points, Balance.PENDING, Reason.EARNED, f"o{n}:{e.line_id}") for e in earned])
        elif kind in ("confirm", "refund", "cancel") and step[1] in books.orders and step[1] not in books.cancelled:
            n = step[1]
            earned = books.orders[n]
            left = {e.line_id: e.left(books.refunded[(n, e.line_id)]) for e in earned}
            if kind == "confirm" and n not in books.confirmed:
                pending = sum(left.values())
                books.confirmed.add(n)
                if pending:
                    books.post(list(confirm(pending, f"o{n}:confirm")))
            elif kind == "refund" and earned:
                e = earned[step[2] % len(earned)]
                back = e.reversal(books.refunded[(n, e.line_id)], step[3])
                books.refunded[(n, e.line_id)] += step[3]
                if back:
                    books.post([Entry(-back, books.balance(n), Reason.REVERSED, f"o{n}:r{len(books.entries)}")])
            elif kind == "cancel":
                books.cancelled.add(n)
                back = sum(left.values())
                if back:
                    books.post([Entry(-back, books.balance(n), Reason.REVERSED, f"o{n}:cancel")])
        elif kind == "redeem":
            before = books.account
            try:
                books.post([Entry(-step[1], Balance.AVAILABLE, Reason.REDEEMED, f"r{len(books.entries)}")])
                books.redeemed += step[1]
                assert before.available >= step[1]  # never spends what is not there
            except NotEnoughPoints:
                books.refused += 1
                assert books.account == before and before.available < step[1]  # refused: nothing changed
        # The snapshot is the sum of the entries, per balance, after every step.
        assert books.account.available == sum(e.amount for e in books.entries if e.balance is Balance.AVAILABLE)
        assert books.account.pending == sum(e.amount for e in books.entries if e.balance is Balance.PENDING)
        assert books.account.pending >= 0
        assert len({e.key for e in books.entries}) == len(books.entries)
    # Take every order back in full: what is left is minus what was spent. No point was ever made from nothing.
    for n, earned in books.orders.items():
        if n in books.cancelled:
            continue
        back = sum(e.left(books.refunded[(n, e.line_id)]) for e in earned)
        if back:
            books.post([Entry(-back, books.balance(n), Reason.REVERSED, f"o{n}:final")])
    assert books.account.pending == 0
    assert books.account.available == -books.redeemed
