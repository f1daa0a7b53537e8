"""Loyalty points, exactly: what an order's lines earn under a rule version, what a refund or a cancellation
takes back, and the ledger arithmetic every posting goes through. Pure: the standard library only.

Rounding (documented for merchants): each order line earns `floor(eligible amount x points per unit x
multipliers)` whole points, eligible amount = price x quantity - the line's discounts, in the shop's currency
(shipping, taxes and gift cards never earn). Rounding down per line never awards a point that was not paid
for. A refund takes back what the line's *remaining* eligible amount no longer earns, under the rate that
earned it (stored with the earning, never today's rule): `left(before) - left(after)`. These differences add
up to exactly what the line earned once it is refunded in full, however the refunds were split, so buying,
earning, refunding and redeeming in any order cannot create a point.

The ledger: every entry moves whole points into or out of one of an account's two balances, `pending` (earned
on an order not yet fulfilled or still inside its return window) and `available` (what can be spent). The
account's snapshot is the sum of its entries, per balance. Spending needs enough available points; taking
points back may leave `available` below zero (a refund after the points were spent): the customer then earns
their way back before spending again.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum

CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, no 1/I: read aloud and typed without mistakes
CODE_PREFIX = "ENC-"  # reward codes: a merchant tells Encore's codes from their own at a glance


class Balance(StrEnum):
    PENDING = "pending"
    AVAILABLE = "available"


class Reason(StrEnum):
    EARNED = "earned"  # an order line, pending until the order is fulfilled or its return window passes
    CONFIRMED = "confirmed"  # pending points becoming available (two entries: out of pending, into available)
    ACTION = "action"  # sign-up, birthday, survey, review, referral
    BONUS = "bonus"
    REDEEMED = "redeemed"
    RESTORED = "restored"  # a redemption whose code could not be written into the store, given back
    REVERSED = "reversed"  # a refund or cancellation taking back what the order earned
    EXPIRED = "expired"
    ADJUSTED = "adjusted"  # by staff, with their name and a note


class LoyaltyError(ValueError):
    """A posting that would break the ledger's rules; the message says why, for the person who asked."""


class NotEnoughPoints(LoyaltyError):
    pass


@dataclass(frozen=True)
class Bonus:
    """A campaign: points multiplied for a period, for every product or only some."""

    multiplier: Decimal
    starts_at: datetime
    ends_at: datetime
    products: frozenset[str] | None = None  # None: every product

    def applies(self, at: datetime, product_id: str | None) -> bool:
        return self.starts_at <= at < self.ends_at and (self.products is None or product_id in self.products)


@dataclass(frozen=True)
class EarnRule:
    """One version of a shop's earning rule. Versions are never edited: a new rule is a new version."""

    version: int
    points_per_unit: Decimal  # points for one unit of the shop's currency (1 for "1 point per dollar")
    bonuses: tuple[Bonus, ...] = ()

    def __post_init__(self) -> None:
        if self.version < 1:
            raise LoyaltyError("a rule version starts at 1")
        if not self.points_per_unit.is_finite() or self.points_per_unit < 0:
            raise LoyaltyError("points per unit must be zero or more")
        if any(b.multiplier < 0 or not b.multiplier.is_finite() for b in self.bonuses):
            raise LoyaltyError("a bonus multiplier must be zero or more")


@dataclass(frozen=True)
class Line:
    """An order line as earning sees it."""

    line_id: str
    product_id: str | None
    price: Decimal
    quantity: int
    discount: Decimal = Decimal("0")
    gift_card: bool = False

    @property
    def eligible(self) -> Decimal:
        if self.gift_card:
            return Decimal("0")
        return max(Decimal("0"), self.price * self.quantity - self.discount)


@dataclass(frozen=True)
class LineEarning:
    """What one line earned and at which rate: all a later refund needs, whatever the rule has become."""

    line_id: str
    amount: Decimal  # the eligible amount that earned
    rate: Decimal  # points per unit with every multiplier applied
    points: int
    rule_version: int

    def left(self, refunded: Decimal) -> int:
        """Points the line still earns once `refunded` of its eligible amount has been refunded."""
        return whole_points(max(Decimal("0"), self.amount - max(Decimal("0"), refunded)) * self.rate)

    def reversal(self, refunded_before: Decimal, refunded_now: Decimal) -> int:
        """Points a refund of `refunded_now` takes back, after `refunded_before` was refunded already."""
        return self.left(refunded_before) - self.left(refunded_before + max(Decimal("0"), refunded_now))


def whole_points(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def earn(rule: EarnRule, lines: Iterable[Line], at: datetime, multiplier: Decimal = Decimal("1")
         ) -> tuple[LineEarning, ...]:
    """Each line's earning under `rule` at `at` (bonus campaigns running then), times `multiplier` (a VIP tier's).
    Lines that earn nothing are left out."""
    if multiplier < 0 or not multiplier.is_finite():
        raise LoyaltyError("a multiplier must be zero or more")
    earned = []
    for line in lines:
        rate = rule.points_per_unit * multiplier
        for bonus in rule.bonuses:
            if bonus.applies(at, line.product_id):
                rate *= bonus.multiplier
        points = whole_points(line.eligible * rate)
        if points > 0:
            earned.append(LineEarning(line.line_id, line.eligible, rate, points, rule.version))
    return tuple(earned)


@dataclass(frozen=True)
class Entry:
    """One ledger entry: whole points into (+) or out of (-) one balance of one account, for one reason."""

    amount: int
    balance: Balance
    reason: Reason
    key: str  # unique per account: posting the same entry twice is one entry

    def __post_init__(self) -> None:
        if self.amount == 0:
            raise LoyaltyError("an entry moves at least one point")
        if not self.key:
            raise LoyaltyError("every entry has an idempotency key")


@dataclass(frozen=True)
class Account:
    """The snapshot of one customer's points: always the sum of the account's entries, per balance."""

    available: int = 0
    pending: int = 0

    def post(self, entries: Iterable[Entry]) -> Account:
        """The account after `entries`, or LoyaltyError: spending (a redemption) needs enough available points,
        and pending points never go below zero (only what was earned pending can be confirmed or reversed)."""
        account = self
        for e in entries:
            if e.balance is Balance.PENDING:
                account = replace(account, pending=account.pending + e.amount)
                if account.pending < 0:
                    raise LoyaltyError(f"{-e.amount} pending points taken back, but only {self.pending} pending")
            else:
                if e.reason is Reason.REDEEMED and e.amount < 0 and account.available + e.amount < 0:
                    raise NotEnoughPoints(f"this reward costs {-e.amount:,} points and the balance is "
                                          f"{max(account.available, 0):,}")
                account = replace(account, available=account.available + e.amount)
        return account


@dataclass(frozen=True)
class Posting:
    """An entry and what it is about: the rule version that earned it, the order line, details (an earning's
    amount and rate), and for a staff adjustment who made it and why."""

    entry: Entry
    rule_version: int | None = None
    order_id: str | None = None
    line_id: str | None = None
    detail: dict[str, str] | None = None
    staff: str | None = None
    note: str | None = None


def confirm(pending: int, key: str) -> tuple[Entry, Entry]:
    """Pending points becoming available: out of one balance, into the other."""
    return (Entry(-pending, Balance.PENDING, Reason.CONFIRMED, f"{key}:out"),
            Entry(pending, Balance.AVAILABLE, Reason.CONFIRMED, f"{key}:in"))


def reward_code(prefix: str = "", length: int = 10) -> str:
    """A discount code a person can read and type: `length` characters from an alphabet without 0/O and 1/I,
    drawn by `secrets` (5 bits each: 10 characters are 50 bits, beyond guessing at a checkout)."""
    if length < 8:
        raise LoyaltyError("a reward code has at least 8 characters")
    body = "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))
    return f"{prefix}{body}" if prefix else body


def code_bits(length: int) -> float:
    return length * math.log2(len(CODE_ALPHABET))
