"""VIP tiers: which tier a customer's progress (spend or points over a rolling window) reaches, and how a
standing changes when it is evaluated (on every order and nightly). Pure: the standard library only.

Moving up is immediate. Moving down waits: the first evaluation that finds the customer below their tier starts
a grace period, and only an evaluation after it has run out (and still finding them below) moves them down, to
the tier their progress reaches then. Qualifying again during the grace ends it. Every change is returned so it
can be recorded and announced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from app.core.loyalty import LoyaltyError


class Basis(StrEnum):
    SPEND = "spend"  # money spent on orders (paid, less refunds) in the window
    POINTS = "points"  # points earned in the window


@dataclass(frozen=True)
class Tier:
    key: str
    name: str
    threshold: Decimal  # the progress that reaches it (0 for an entry tier everyone is in)
    multiplier: Decimal = Decimal("1")  # on points earned while in it
    perks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Standing:
    tier: str | None  # the tier's key, or None below every tier
    below_since: datetime | None = None  # when a grace period before moving down began


@dataclass(frozen=True)
class Change:
    old: str | None
    new: str | None
    upgraded: bool


def ladder(tiers: Sequence[Tier]) -> tuple[Tier, ...]:
    """The tiers from lowest to highest, checked: distinct keys and thresholds, none negative."""
    ordered = tuple(sorted(tiers, key=lambda t: t.threshold))
    if len({t.key for t in ordered}) != len(ordered) or len({t.threshold for t in ordered}) != len(ordered):
        raise LoyaltyError("each tier needs a key and a threshold of its own")
    if any(t.threshold < 0 or t.multiplier < 0 for t in ordered):
        raise LoyaltyError("thresholds and multipliers are zero or more")
    return ordered


def reached(tiers: Sequence[Tier], progress: Decimal) -> Tier | None:
    """The highest tier `progress` reaches."""
    found = None
    for tier in ladder(tiers):
        if progress >= tier.threshold:
            found = tier
    return found


def _rank(tiers: tuple[Tier, ...], key: str | None) -> int:
    return -1 if key is None else next((i for i, t in enumerate(tiers) if t.key == key), -1)


def evaluate(tiers: Sequence[Tier], standing: Standing, progress: Decimal, now: datetime, grace: timedelta
             ) -> tuple[Standing, Change | None]:
    """The standing after an evaluation at `now`, and the change it made (None: no tier change)."""
    ordered = ladder(tiers)
    target = reached(ordered, progress)
    target_key = None if target is None else target.key
    have, want = _rank(ordered, standing.tier), _rank(ordered, target_key)
    if want > have or (have == -1 and standing.tier is not None):  # up, or out of a tier that no longer exists
        return Standing(target_key), Change(standing.tier, target_key, want > have)
    if want == have:
        return Standing(standing.tier), None
    if standing.below_since is None:
        return Standing(standing.tier, now), None  # the grace period begins
    if now - standing.below_since < grace:
        return standing, None
    return Standing(target_key), Change(standing.tier, target_key, False)


def multiplier(tiers: Sequence[Tier], key: str | None) -> Decimal:
    tier = next((t for t in tiers if t.key == key), None)
    return Decimal("1") if tier is None else tier.multiplier
