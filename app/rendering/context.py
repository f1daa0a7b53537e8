"""What a message template may show: a typed render context of frozen dataclasses.

Money is `Decimal` (each amount's currency is the currency of the order, checkout or shop it belongs to, unless
the value says otherwise), times are aware datetimes (shown in the customer's timezone), and URLs are plain
strings (only http and https ones reach a template; anything else is dropped as missing).

The journeys engine fills one `RenderContext` per message from the database and the core's records; the
renderer turns it into plain dicts and lists (`template_data`), so a template reaches that data and nothing
else: no methods of these classes, no records, no settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

CodeKind = Literal["percent", "amount", "free_shipping"]
Category = Literal["transactional", "marketing"]


def _aware(name: str, value: datetime | None) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name} must be an aware datetime (with a timezone), got {value!r}")


def _currency(name: str, value: str | None) -> None:
    if value is not None and not (len(value) == 3 and value.isascii() and value.isalpha() and value.isupper()):
        raise ValueError(f"{name} must be an ISO 4217 code such as 'USD', got {value!r}")


@dataclass(frozen=True)
class Shop:
    name: str
    currency: str
    support_email: str
    url: str
    logo_url: str | None = None
    address: str | None = None  # the postal address marketing mail shows (CAN-SPAM; Japan's 特定電子メール法)

    def __post_init__(self) -> None:
        _currency("Shop.currency", self.currency)


@dataclass(frozen=True)
class Customer:
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    locale: str = "en"  # BCP 47 or POSIX: "ko-KR", "ja", "en_US"; the copy's language and the number/date format
    timezone: str = "UTC"  # IANA name; times are shown in it


@dataclass(frozen=True)
class LineItem:
    title: str
    quantity: int
    unit_price: Decimal
    total: Decimal
    variant: str | None = None  # "Whole bean / 500 g"
    product_url: str | None = None
    image_url: str | None = None
    guide_url: str | None = None  # how-to content for the product (the delivered journey links it)


@dataclass(frozen=True)
class Tracking:
    company: str | None = None
    number: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class Order:
    name: str  # as the store shows it: "#1001"
    total: Decimal
    subtotal: Decimal
    currency: str
    created_at: datetime
    lines: tuple[LineItem, ...] = ()
    tracking: Tracking | None = None
    status_url: str | None = None  # the store's order status page

    def __post_init__(self) -> None:
        _aware("Order.created_at", self.created_at)
        _currency("Order.currency", self.currency)


@dataclass(frozen=True)
class Checkout:
    lines: tuple[LineItem, ...]
    recovery_url: str
    currency: str | None = None  # the shop's currency when None
    total: Decimal | None = None

    def __post_init__(self) -> None:
        _currency("Checkout.currency", self.currency)


@dataclass(frozen=True)
class DiscountCode:
    """A personal code: `value` is the percentage (10 for 10 %) or the amount off; none for free shipping."""

    code: str
    kind: CodeKind
    value: Decimal | None = None
    expires_at: datetime | None = None
    currency: str | None = None  # of an amount off; the shop's currency when None

    def __post_init__(self) -> None:
        _aware("DiscountCode.expires_at", self.expires_at)
        _currency("DiscountCode.currency", self.currency)
        if self.kind != "free_shipping" and self.value is None:
            raise ValueError(f"a {self.kind} code needs a value")


@dataclass(frozen=True)
class Recommendation:
    title: str
    url: str
    image_url: str | None = None
    price: Decimal | None = None
    currency: str | None = None  # the shop's currency when None

    def __post_init__(self) -> None:
        _currency("Recommendation.currency", self.currency)


@dataclass(frozen=True)
class Links:
    survey: str | None = None
    review: str | None = None
    preferences: str | None = None
    unsubscribe: str | None = None
    referral: str | None = None


@dataclass(frozen=True)
class Points:
    balance: int
    expiring: int = 0
    expires_at: datetime | None = None

    def __post_init__(self) -> None:
        _aware("Points.expires_at", self.expires_at)


@dataclass(frozen=True)
class Tier:
    old: str | None
    new: str
    upgraded: bool = True
    perks: tuple[str, ...] = ()


@dataclass(frozen=True)
class RenderContext:
    shop: Shop
    customer: Customer
    order: Order | None = None
    checkout: Checkout | None = None
    code: DiscountCode | None = None
    recommendations: tuple[Recommendation, ...] = ()
    links: Links = field(default_factory=Links)
    points: Points | None = None
    tier: Tier | None = None
