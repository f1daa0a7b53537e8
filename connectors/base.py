"""The Connector protocol every platform implements."""

from __future__ import annotations

from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.core.commands import Command
from app.core.model import CustomerRecord, OrderRecord


@dataclass(frozen=True)
class Delivery:
    """A webhook delivery whose signature was checked: who sent it, about what, and its raw body."""

    shop_domain: str
    topic: str
    event_id: str


@dataclass(frozen=True)
class Rejection:
    status: int
    reason: str


class MalformedPayload(ValueError):
    """The body was signed correctly but is not what the topic promises; the delivery is parked."""


class Headers(Protocol):
    """What a connector reads headers through: a dict, or the web framework's case-insensitive headers."""

    def get(self, key: str) -> str | None: ...
    def items(self) -> Iterable[tuple[str, str]]: ...


class Connector(Protocol):
    name: str
    topics: frozenset[str]
    # "app": one secret signs every shop's webhooks (Shopify's client secret); "shop": each store has its own,
    # so the store is found (shop_of) before the signature is checked.
    secret_scope: str

    def shop_of(self, headers: Headers) -> str | None:
        """Which store a delivery claims to come from, read before anything is trusted."""
        ...

    def parse_ping(self, body: bytes, content_type: str | None) -> int | None:
        """A platform's unsigned "is this URL alive" request: its id, or None when the body is not one."""
        ...

    def verify_webhook(self, body: bytes, headers: Headers, secrets: tuple[str, ...]) -> Delivery | Rejection:
        ...

    def translate(self, shop_id: int, topic: str, payload: Any) -> list[Command]:
        ...


HISTORY_PHASES = ("customers", "orders")


@dataclass(frozen=True)
class HistoryPage:
    """A page of a store's past customers or orders, and the cursor that resumes right after it."""

    cursor: Mapping[str, Any]
    customers: tuple[CustomerRecord, ...] = ()
    orders: tuple[tuple[OrderRecord, CustomerRecord | None], ...] = ()
    read: int = 0  # items the platform sent in this page, kept or not
    total: int | None = None  # items in the whole phase, when the platform says
    skipped: tuple[str, ...] = field(default=())  # why an item could not be read (the rest of the page is kept)


class StaleCursor(Exception):
    """The saved cursor can no longer be followed (the platform's result expired or failed): start the phase
    again. Safe, since importing anything twice changes nothing."""


class HistorySource(Protocol):
    """A store's history, phase by phase ("customers", then "orders"), resumable from a saved cursor."""

    def pages(self, phase: str, cursor: Mapping[str, Any]) -> Generator[HistoryPage, None, None]: ...
