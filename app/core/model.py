"""Platform-neutral records of what a store told us: orders, customers, checkouts.

Connectors translate platform payloads into these; the core merges them so that any order of arrival,
with any duplicates, converges on the same state (newest wins per part, by the platform's own times).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TypeVar

T = TypeVar("T")


class PaymentStatus(StrEnum):
    PENDING = "pending"
    AUTHORIZED = "authorized"
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    VOIDED = "voided"


WAS_PAID = {PaymentStatus.PAID, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}


class OrderStatus(StrEnum):
    PLACED = "placed"
    PAID = "paid"
    FULFILLED = "fulfilled"
    DELIVERED = "delivered"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Consent:
    email_marketing: bool = False
    sms_marketing: bool = False
    updated_at: datetime | None = None


@dataclass(frozen=True)
class CustomerRecord:
    external_id: str
    updated_at: datetime
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    locale: str | None = None
    consent: Consent = Consent()
    preferred_channel: str = "email"
    redacted: bool = False
    created_at: datetime | None = None  # when the customer's account was made in the store (sign-up points)


@dataclass(frozen=True)
class OrderLine:
    external_id: str
    title: str
    quantity: int
    price: Decimal
    total_discount: Decimal = Decimal("0")
    product_id: str | None = None
    variant_id: str | None = None
    sku: str | None = None


@dataclass(frozen=True)
class Tracking:
    company: str | None = None
    number: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class Fulfillment:
    external_id: str
    updated_at: datetime
    created_at: datetime
    status: str = "success"
    shipment_status: str | None = None
    tracking: Tracking = Tracking()
    estimated: bool = False

    @property
    def delivered(self) -> bool:
        return self.status == "success" and self.shipment_status == "delivered"


@dataclass(frozen=True)
class RefundLine:
    line_id: str
    quantity: int
    amount: Decimal


@dataclass(frozen=True)
class Refund:
    external_id: str
    created_at: datetime
    amount: Decimal
    lines: tuple[RefundLine, ...] = ()


@dataclass(frozen=True)
class OrderRecord:
    external_id: str
    updated_at: datetime
    created_at: datetime
    currency: str
    total: Decimal
    subtotal: Decimal
    name: str = ""
    customer_id: str | None = None
    email: str | None = None
    total_tax: Decimal = Decimal("0")
    total_shipping: Decimal = Decimal("0")
    total_discounts: Decimal = Decimal("0")
    payment: PaymentStatus = PaymentStatus.PENDING
    processed_at: datetime | None = None
    cancelled_at: datetime | None = None
    lines: tuple[OrderLine, ...] = ()
    discount_codes: tuple[str, ...] = ()  # the codes the order used, lower-cased (WooCommerce stores them so)
    ship_to: str | None = None  # a digest of the normalised shipping address (app.core.referrals.ship_to)
    fulfillments: tuple[Fulfillment, ...] = field(default=())
    refunds: tuple[Refund, ...] = field(default=())

    @property
    def refunded_amount(self) -> Decimal:
        return sum((r.amount for r in self.refunds), Decimal("0"))

    @property
    def status(self) -> OrderStatus:
        if self.cancelled_at is not None:
            return OrderStatus.CANCELLED
        if self.payment is PaymentStatus.REFUNDED or (self.refunds and self.refunded_amount >= self.total > 0):
            return OrderStatus.REFUNDED
        if self.payment is PaymentStatus.PARTIALLY_REFUNDED or self.refunds:
            return OrderStatus.PARTIALLY_REFUNDED
        shipped = [f for f in self.fulfillments if f.status == "success"]
        if shipped and all(f.delivered for f in shipped):
            return OrderStatus.DELIVERED
        if shipped:
            return OrderStatus.FULFILLED
        if self.payment in WAS_PAID:
            return OrderStatus.PAID
        return OrderStatus.PLACED


@dataclass(frozen=True)
class CheckoutRecord:
    external_id: str
    updated_at: datetime
    currency: str
    total: Decimal
    email: str | None = None
    customer_id: str | None = None
    recovery_url: str | None = None
    completed_at: datetime | None = None
    lines: tuple[OrderLine, ...] = ()


def _newer(current: T | None, incoming: T, stamp: str) -> T:
    """Pick the newer of two versions by their platform time; equal times break ties deterministically."""
    if current is None:
        return incoming
    a, b = getattr(current, stamp), getattr(incoming, stamp)
    if a != b:
        return incoming if b > a else current
    return incoming if repr(incoming) > repr(current) else current


def merge_fulfillments(current: tuple[Fulfillment, ...], incoming: tuple[Fulfillment, ...]) -> tuple[Fulfillment, ...]:
    by_id = {f.external_id: f for f in current}
    for f in incoming:
        by_id[f.external_id] = _newer(by_id.get(f.external_id), f, "updated_at")
    return tuple(sorted(by_id.values(), key=lambda f: f.external_id))


def merge_refunds(current: tuple[Refund, ...], incoming: tuple[Refund, ...]) -> tuple[Refund, ...]:
    by_id = {r.external_id: r for r in current}
    for r in incoming:
        by_id.setdefault(r.external_id, r)
    return tuple(sorted(by_id.values(), key=lambda r: r.external_id))


def merge_order(current: OrderRecord | None, incoming: OrderRecord) -> OrderRecord:
    """Order fields: newest wins; fulfillments: newest wins each; refunds: the union (they never change)."""
    head = _newer(current, incoming, "updated_at")
    if current is None:
        return head
    return replace(
        head,
        fulfillments=merge_fulfillments(current.fulfillments, incoming.fulfillments),
        refunds=merge_refunds(current.refunds, incoming.refunds),
    )


def merge_customer(current: CustomerRecord | None, incoming: CustomerRecord) -> CustomerRecord:
    """Newest wins, except that an erased customer stays erased whatever arrives late."""
    if current is not None and current.redacted:
        return current
    return _newer(current, incoming, "updated_at")


def redact(customer: CustomerRecord) -> CustomerRecord:
    return CustomerRecord(external_id=customer.external_id, updated_at=customer.updated_at, redacted=True,
                          created_at=customer.created_at)


def merge_checkout(current: CheckoutRecord | None, incoming: CheckoutRecord) -> CheckoutRecord:
    return _newer(current, incoming, "updated_at")
