"""Domain events: past tense, frozen, each with a key that makes recording it idempotent."""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from app.core.model import RefundLine, Tracking


@dataclass(frozen=True)
class DomainEvent:
    shop_id: int
    occurred_at: datetime

    @property
    def key(self) -> str:
        raise NotImplementedError

    @property
    def name(self) -> str:
        return type(self).__name__

    def payload(self) -> dict[str, Any]:
        """The event's fields as JSON-ready values (shop_id aside: it has a column of its own)."""
        names = _FIELDS.get(type(self))
        if names is None:
            names = _FIELDS[type(self)] = tuple(f.name for f in fields(self) if f.name != "shop_id")
        return {name: _plain(getattr(self, name)) for name in names}


_FIELDS: dict[type, tuple[str, ...]] = {}  # each event type's payload fields, found once


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class OrderEvent(DomainEvent):
    order_id: str
    customer_id: str | None


@dataclass(frozen=True)
class OrderPlaced(OrderEvent):
    total: Decimal
    currency: str

    @property
    def key(self) -> str:
        return f"order:{self.order_id}:placed"


@dataclass(frozen=True)
class OrderPaid(OrderEvent):
    total: Decimal
    currency: str

    @property
    def key(self) -> str:
        return f"order:{self.order_id}:paid"


@dataclass(frozen=True)
class OrderFulfilled(OrderEvent):
    fulfillment_id: str
    tracking: Tracking

    @property
    def key(self) -> str:
        return f"order:{self.order_id}:fulfilled:{self.fulfillment_id}"


@dataclass(frozen=True)
class OrderDelivered(OrderEvent):
    fulfillment_id: str
    estimated: bool = False

    @property
    def key(self) -> str:
        return f"order:{self.order_id}:delivered:{self.fulfillment_id}"


@dataclass(frozen=True)
class OrderCancelled(OrderEvent):
    @property
    def key(self) -> str:
        return f"order:{self.order_id}:cancelled"


@dataclass(frozen=True)
class OrderRefunded(OrderEvent):
    refund_id: str
    amount: Decimal
    currency: str
    lines: tuple[RefundLine, ...]

    @property
    def key(self) -> str:
        return f"order:{self.order_id}:refund:{self.refund_id}"


@dataclass(frozen=True)
class OrderPraised(OrderEvent):
    """The customer answered the order's satisfaction survey with a high score (the shop's thresholds,
    `app.core.feedback`): what the review_invite journey starts on. Once per survey (its message), whatever the
    answer becomes later: changing it never invites twice."""

    message_id: int
    score: int  # 1-5
    nps: int  # 0-10

    @property
    def key(self) -> str:
        return f"order:{self.order_id}:praised:{self.message_id}"


@dataclass(frozen=True)
class CustomerUpserted(DomainEvent):
    customer_id: str
    version: str

    @property
    def key(self) -> str:
        return f"customer:{self.customer_id}:{self.version}"


@dataclass(frozen=True)
class TierChanged(DomainEvent):
    """A customer moved between VIP tiers (up on an order, down after the grace period)."""

    customer_id: str
    old: str | None
    new: str | None
    upgraded: bool

    @property
    def key(self) -> str:
        return f"tier:{self.customer_id}:{self.occurred_at.astimezone(UTC).isoformat()}:{self.new}"


@dataclass(frozen=True)
class CheckoutUpdated(DomainEvent):
    checkout_id: str
    customer_id: str | None
    completed: bool

    @property
    def key(self) -> str:
        return f"checkout:{self.checkout_id}:{self.occurred_at.astimezone(UTC).isoformat()}"


@dataclass(frozen=True)
class CustomerDataRequested(DomainEvent):
    request_id: str
    customer_id: str

    @property
    def key(self) -> str:
        return f"data_request:{self.request_id}"


@dataclass(frozen=True)
class CustomerRedacted(DomainEvent):
    customer_id: str

    @property
    def key(self) -> str:
        return f"customer:{self.customer_id}:redacted"


@dataclass(frozen=True)
class AppUninstalled(DomainEvent):
    installed_at: datetime

    @property
    def key(self) -> str:
        return f"shop:uninstalled:{self.installed_at.isoformat()}"
