"""Lift: what a journey or a program adds, measured against its holdout group. Pure: the standard library only.

A holdout is a random share of the people a journey or program would reach that it leaves alone. Both groups
are alike in everything but the treatment, so the difference between their conversion rates is what the
treatment causes, and what attribution (an order that used a message's code, or came after a click) can only
claim. The database layer counts each group (`app.analytics.lift`); this module says what the counts show.

**Who is held out.** A journey's enrollments by a hash of the enrollment's key (`app.core.journeys.in_holdout`);
a program's customers by a hash of (shop, program, customer), the same scheme, so a customer is in the same group
every time it is asked, in every process, with no row to store it. Raising the percentage moves the customers
whose bucket lies between the old share and the new one from the treated group to the holdout (and lowering it
back); everyone else stays where they were.

**The interval.** The difference of two proportions p1 - p2 gets Newcombe's hybrid score interval (Newcombe
1998, "Interval estimation for the difference between independent proportions: comparison of eleven methods",
method 10): the Wilson score interval of each rate, combined as

    lower = d - sqrt((p1 - l1)^2 + (u2 - p2)^2),   upper = d + sqrt((u1 - p1)^2 + (p2 - l2)^2).

Unlike the textbook Wald interval it keeps close to its 95% coverage with small or lopsided groups and rates
near 0 (a holdout of 5% is small by design), and it never leaves [-1, 1].

**Enough data.** A number is shown only from `MIN_GROUP` people in each group and `MIN_CONVERSIONS` conversions
in all. Below 100 a group's rate is uncertain by more than 6 points either way at a typical 10% repeat rate
(1.96 * sqrt(0.1 * 0.9 / 100)), so the difference's interval spans about +-8 points: wider than what a
post-purchase journey can plausibly add, and a point estimate inside it would be noise dressed as a result.
With fewer than 10 conversions the rates are single-digit counts, and one order more or less moves the
estimate by whole points. Under either, the verdict is "not enough data yet", with what is missing.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from statistics import NormalDist

Z95 = NormalDist().inv_cdf(0.975)  # 1.959963...
MIN_GROUP = 100  # people in each group before a lift is shown
MIN_CONVERSIONS = 10  # conversions in both groups together
MAX_HOLDOUT_PERCENT = 50  # a larger holdout withholds more than it can teach
LOYALTY, REFERRALS = "loyalty", "referrals"  # the programs with a holdout


class Status(StrEnum):
    MEASURED = "measured"
    NOT_ENOUGH_DATA = "not_enough_data"
    NO_HOLDOUT = "no_holdout"  # nobody is held out, so there is nothing to measure against


class HoldoutError(ValueError):
    """A holdout share the programs refuse; the message says why."""


def holdout_percent(value: object) -> int:
    """The share as given, checked: a whole percentage from 0 to MAX_HOLDOUT_PERCENT."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_HOLDOUT_PERCENT:
        raise HoldoutError(f"holdout: a whole percentage from 0 to {MAX_HOLDOUT_PERCENT}")
    return value


def bucket(key: str) -> int:
    """0-99, as good as random across keys and the same for a key every time."""
    return int.from_bytes(hashlib.sha256(f"holdout:{key}".encode()).digest()[:4], "big") % 100


def held_out(shop_id: int, program: str, customer_id: str, percent: int) -> bool:
    """Whether the customer is in the program's holdout (LOYALTY, REFERRALS) at the given share."""
    return percent > 0 and bucket(f"{shop_id}:{program}:{customer_id}") < percent


@dataclass(frozen=True)
class Counts:
    """One group: how many people, how many of them converted, and what the converters spent in the window."""

    n: int
    converted: int
    revenue: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        if self.n < 0 or not 0 <= self.converted <= self.n:
            raise ValueError(f"a group of {self.n} cannot have {self.converted} conversions")

    @property
    def rate(self) -> float | None:
        return self.converted / self.n if self.n else None


def wilson(converted: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (Wilson 1927)."""
    if n <= 0:
        return 0.0, 1.0
    p = converted / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> tuple[float, float]:
    """Newcombe's hybrid score interval for p1 - p2 (x1 of n1 against x2 of n2); both groups need people."""
    if n1 <= 0 or n2 <= 0:
        raise ValueError("both groups need people")
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


@dataclass(frozen=True)
class Shortfall:
    """What a measurement still lacks: `have` of `need`, for one group or both together."""

    group: str  # treated / holdout / both
    measure: str  # size / conversions
    have: int
    need: int


def shortfalls(treated: Counts, holdout: Counts) -> list[Shortfall]:
    found = [Shortfall(name, "size", g.n, MIN_GROUP) for name, g in (("treated", treated), ("holdout", holdout))
             if g.n < MIN_GROUP]
    if treated.converted + holdout.converted < MIN_CONVERSIONS:
        found.append(Shortfall("both", "conversions", treated.converted + holdout.converted, MIN_CONVERSIONS))
    return found


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Lift:
    """The verdict. Every number is None unless the status is MEASURED."""

    status: Status
    difference: Estimate | None = None  # treated rate minus holdout rate (fractions, not percent)
    relative: float | None = None  # the difference over the holdout's rate (None when that rate is 0)
    incremental: Estimate | None = None  # conversions the treatment added: the difference times the treated group
    revenue: tuple[Decimal, Decimal, Decimal] | None = None  # what they spent: value, low, high
    needs: list[Shortfall] = field(default_factory=list)


def measure(treated: Counts, holdout: Counts, holdout_share: int, places: int = 2) -> Lift:
    """What the two groups show. NO_HOLDOUT when nobody is held out now and nobody was; NOT_ENOUGH_DATA (with
    what is missing) below the thresholds; else the difference with its 95% interval, the conversions it adds
    to the treated group and their revenue at the treated converters' spend per conversion (taken as known:
    the interval is the conversions' scaled, in money rounded to `places`)."""
    if holdout.n == 0 and holdout_share <= 0:
        return Lift(Status.NO_HOLDOUT)
    needs = shortfalls(treated, holdout)
    if needs:
        return Lift(Status.NOT_ENOUGH_DATA, needs=needs)
    p1, p2 = treated.converted / treated.n, holdout.converted / holdout.n
    low, high = newcombe(treated.converted, treated.n, holdout.converted, holdout.n)
    difference = Estimate(p1 - p2, low, high)
    incremental = Estimate(*(x * treated.n for x in (p1 - p2, low, high)))
    per = treated.revenue / treated.converted if treated.converted else Decimal(0)
    cent = Decimal(1).scaleb(-places)
    revenue = tuple((per * Decimal(repr(x))).quantize(cent, ROUND_HALF_EVEN)
                    for x in (incremental.value, incremental.low, incremental.high))
    return Lift(Status.MEASURED, difference, (p1 - p2) / p2 if p2 else None, incremental,
                (revenue[0], revenue[1], revenue[2]))
