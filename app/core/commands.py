"""What a connector asks the core to do with one delivery: imperative, platform-neutral."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.model import CheckoutRecord, CustomerRecord, Fulfillment, OrderRecord, Refund


@dataclass(frozen=True)
class Command:
    shop_id: int


@dataclass(frozen=True)
class ObserveOrder(Command):
    order: OrderRecord
    customer: CustomerRecord | None = None


@dataclass(frozen=True)
class ImportHistory(Command):
    """A batch of a store's past customers and orders (each with its buyer, as a webhook carries it),
    applied exactly as their webhooks would have been, in one transaction."""

    customers: tuple[CustomerRecord, ...] = ()
    orders: tuple[tuple[OrderRecord, CustomerRecord | None], ...] = ()


@dataclass(frozen=True)
class ObserveFulfillment(Command):
    order_id: str
    fulfillment: Fulfillment


@dataclass(frozen=True)
class ObserveRefund(Command):
    order_id: str
    refund: Refund


@dataclass(frozen=True)
class ObserveCustomer(Command):
    customer: CustomerRecord


@dataclass(frozen=True)
class ObserveCheckout(Command):
    checkout: CheckoutRecord
    customer: CustomerRecord | None = None


@dataclass(frozen=True)
class ExportCustomerData(Command):
    request_id: str
    customer_id: str
    email: str | None
    order_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class RedactCustomer(Command):
    customer_id: str
    order_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class RedactShop(Command):
    pass


@dataclass(frozen=True)
class UninstallApp(Command):
    pass
