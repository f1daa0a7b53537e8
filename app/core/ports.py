"""The ports the core needs; the database layer, connectors and channels implement them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from app.core.events import DomainEvent
from app.core.model import CheckoutRecord, CustomerRecord, OrderRecord


class Clock(Protocol):
    def now(self) -> datetime: ...


class OrderRepository(Protocol):
    def get(self, shop_id: int, external_id: str) -> OrderRecord | None: ...
    def save(self, shop_id: int, order: OrderRecord) -> None: ...
    def of_customer(self, shop_id: int, customer_id: str) -> list[OrderRecord]: ...
    def forget_email(self, shop_id: int, customer_id: str, order_ids: tuple[str, ...]) -> None: ...


class CustomerRepository(Protocol):
    def get(self, shop_id: int, external_id: str) -> CustomerRecord | None: ...
    def save(self, shop_id: int, customer: CustomerRecord) -> None: ...


class CheckoutRepository(Protocol):
    def get(self, shop_id: int, external_id: str) -> CheckoutRecord | None: ...
    def save(self, shop_id: int, checkout: CheckoutRecord) -> None: ...
    def forget_customer(self, shop_id: int, customer_id: str) -> None: ...


class EventLog(Protocol):
    def record(self, event: DomainEvent) -> bool:
        """Store the event unless its key is already there; True when it is new."""
        ...


@dataclass(frozen=True)
class ShopState:
    id: int
    domain: str
    installed: bool
    installed_at: datetime | None


class ShopRepository(Protocol):
    def get(self, shop_id: int) -> ShopState | None: ...
    def mark_uninstalled(self, shop_id: int, at: datetime) -> None: ...
    def delete_everything(self, shop_id: int) -> None: ...


class ExportRepository(Protocol):
    def add(self, shop_id: int, request_id: str, customer_id: str, content: dict[str, Any]) -> None: ...


class UnitOfWork(Protocol):
    orders: OrderRepository
    customers: CustomerRepository
    checkouts: CheckoutRepository
    events: EventLog
    shops: ShopRepository
    exports: ExportRepository

    def __enter__(self) -> UnitOfWork: ...
    def __exit__(self, *exc: object) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...


@dataclass(frozen=True)
class DiscountRequest:
    code: str
    title: str
    percent_off: Decimal | None = None
    amount_off: Decimal | None = None
    currency: str | None = None
    customer_id: str | None = None
    usage_limit: int = 1
    ends_at: datetime | None = None


@dataclass(frozen=True)
class ShopProfile:
    name: str
    currency: str
    timezone: str
    locale: str


class StorePlatform(Protocol):
    """What the core asks of a store, whichever platform it runs on."""

    def shop_profile(self) -> ShopProfile: ...

    def create_discount(self, request: DiscountRequest) -> str:
        """Write a discount code into the store; the same code twice is no error. Returns its store id."""
        ...
