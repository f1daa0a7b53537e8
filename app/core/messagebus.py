"""Command type -> handler. The only dispatch table in the core."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.core import commands as c
from app.core import handlers as h
from app.core.events import DomainEvent
from app.core.ports import Clock, UnitOfWork

Handler = Callable[[Any, UnitOfWork, Clock], list[DomainEvent]]

HANDLERS: dict[type[c.Command], Handler] = {
    c.ObserveOrder: h.observe_order,
    c.ImportHistory: h.import_history,
    c.ObserveFulfillment: h.observe_fulfillment,
    c.ObserveRefund: h.observe_refund,
    c.ObserveCustomer: h.observe_customer,
    c.ObserveCheckout: h.observe_checkout,
    c.ExportCustomerData: h.export_customer_data,
    c.RedactCustomer: h.redact_customer,
    c.RedactShop: h.redact_shop,
    c.UninstallApp: h.uninstall_app,
}

# Commands that still apply once a shop has uninstalled Encore (privacy law outlives the install).
AFTER_UNINSTALL = (c.ExportCustomerData, c.RedactCustomer, c.RedactShop, c.UninstallApp)


def handle(command: c.Command, uow: UnitOfWork, clock: Clock) -> list[DomainEvent]:
    """Run the command's handler and return the domain events it newly recorded."""
    return HANDLERS[type(command)](command, uow, clock)
