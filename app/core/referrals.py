"""The referral program's rules, pure: what a program may say, how a shipping address is compared without being
kept, which codes are drawn, and why a friend's first order does not earn the referrer anything.

Fraud is judged on facts the database layer gathers (`OrderFacts`): the first reason that applies wins, in the
order a merchant would ask — is it the referrer themselves (same customer, same email, same phone, or shipping
to an address the referrer ships to), was the friend a customer already, has the referrer had enough rewards
lately. Addresses are compared as digests (`ship_to`), so an order row never needs to keep a second copy of
the address to be checked later.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from decimal import Decimal

from app.core.loyalty import LoyaltyError, reward_code

FRIEND_KINDS = ("percent", "amount", "free_shipping")
CODE_LENGTH = 8  # a referral code: short enough to say aloud, 40 bits, unique per shop by constraint
FRIEND_PREFIX = "REF-"  # friends' first-order codes: told apart from reward codes (ENC-) at a glance
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_DAYS = 3650


class ReferralError(LoyaltyError):
    """A program setting or a request the referral program refuses; the message says why."""


@dataclass(frozen=True)
class Settings:
    """A program as the merchant sets it. The referrer gets points or a reward's code, never both."""

    enabled: bool
    friend_kind: str
    friend_value: Decimal | None
    friend_valid_days: int
    referrer_points: int | None
    referrer_reward_id: int | None
    wait_days: int
    cap_per_referrer: int | None
    cap_window_days: int

    def __post_init__(self) -> None:
        for problem in _problems(self):
            raise ReferralError(problem)


def _problems(p: Settings) -> list[str]:
    found = []
    if p.friend_kind not in FRIEND_KINDS:
        found.append(f"the friend's offer is one of {', '.join(FRIEND_KINDS)}")
    elif p.friend_kind != "free_shipping" and (
            p.friend_value is None or not p.friend_value.is_finite() or p.friend_value <= 0
            or (p.friend_kind == "percent" and p.friend_value > 100)):
        found.append("a percent or amount offer needs a value above zero (a percent at most 100)")
    if not _whole(p.friend_valid_days, 1):
        found.append(f"the friend's code is valid for 1 to {MAX_DAYS} days")
    if (p.referrer_points is None) == (p.referrer_reward_id is None):
        found.append("the referrer gets either points or a reward, one of the two")
    elif p.referrer_points is not None and not _whole(p.referrer_points, 1, 1_000_000):
        found.append("the referrer's points are a whole number from 1 to 1,000,000")
    if not _whole(p.wait_days, 0):
        found.append(f"the wait before the referrer's reward is 0 to {MAX_DAYS} days (the store's return window)")
    if p.cap_per_referrer is not None and not _whole(p.cap_per_referrer, 1, 10_000):
        found.append("the cap is a whole number of rewards from 1 (or none)")
    if not _whole(p.cap_window_days, 1):
        found.append(f"the cap's window is 1 to {MAX_DAYS} days")
    return found


def _whole(value: object, low: int, high: int = MAX_DAYS) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def normal_email(email: str | None) -> str | None:
    """Trimmed and lower-cased, or None when it is not an address."""
    value = (email or "").strip().lower()
    return value if EMAIL.match(value) and len(value) <= 320 else None


def normal_phone(phone: str | None) -> str | None:
    """Digits only, so "+82 10-5555-0001" and "+821055550001" are one phone; None when too short to mean one."""
    digits = re.sub(r"\D", "", phone or "")
    return digits if len(digits) >= 6 else None


def mask_email(email: str) -> str:
    """Enough for staff to recognise a friend, not enough to copy the address: "mi***@example.com"."""
    local, _, domain = email.partition("@")
    return f"{local[:2]}***@{domain}" if domain else "***"


def _part(value: object) -> str:
    return " ".join(str(value or "").lower().split())


def ship_to(address1: object, address2: object, city: object, zip_code: object, country: object) -> str | None:
    """A SHA-256 hex digest of the normalised shipping address (lower case, whitespace collapsed), or None
    when there is no address. Two orders to one address have one digest, however the shopper typed it."""
    parts = [_part(p) for p in (address1, address2, city, zip_code, country)]
    if not any(parts[:4]):  # a country alone is no address
        return None
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def new_code() -> str:
    return reward_code(length=CODE_LENGTH)


def new_friend_code() -> str:
    return reward_code(FRIEND_PREFIX)


@dataclass(frozen=True)
class OrderFacts:
    """What the fraud checks need to know about a friend's first order and its referrer."""

    referrer_id: str
    referrer_email: str | None
    referrer_phone: str | None
    referrer_ship_tos: frozenset[str]
    friend_customer_id: str | None
    order_email: str | None
    friend_phone: str | None
    order_ship_to: str | None
    friend_ordered_before: bool
    referrer_rewarded_recently: int  # within the cap's window
    cap: int | None


def blocked(f: OrderFacts) -> tuple[str, str] | None:
    """The first reason the referrer earns nothing for this order, with words for staff; None when it counts."""
    same_email = normal_email(f.order_email)
    if f.friend_customer_id is not None and f.friend_customer_id == f.referrer_id:
        return "self_referral", "the order was placed by the referrer's own customer account"
    if same_email is not None and same_email == normal_email(f.referrer_email):
        return "self_referral", "the order's email is the referrer's"
    if normal_phone(f.friend_phone) is not None and normal_phone(f.friend_phone) == normal_phone(f.referrer_phone):
        return "self_referral", "the customer's phone is the referrer's"
    if f.order_ship_to is not None and f.order_ship_to in f.referrer_ship_tos:
        return "self_referral", "the order ships to an address the referrer's orders ship to"
    if f.friend_ordered_before:
        return "existing_customer", "the friend had ordered from the shop before"
    if f.cap is not None and f.referrer_rewarded_recently >= f.cap:
        return "cap_reached", f"the referrer had {f.referrer_rewarded_recently} rewarded referrals in the cap's window"
    return None
