"""The ports the core needs; the database layer, connectors and channels implement them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, Protocol

from app.core.events import DomainEvent, TierChanged
from app.core.journeys import Journey
from app.core.loyalty import EarnRule, LineEarning, Posting
from app.core.model import CheckoutRecord, CustomerRecord, OrderRecord


class Clock(Protocol):
    def now(self) -> datetime: ...


class OrderRepository(Protocol):
    def get(self, shop_id: int, external_id: str) -> OrderRecord | None: ...
    def save(self, shop_id: int, order: OrderRecord) -> None: ...
    def of_customer(self, shop_id: int, customer_id: str) -> list[OrderRecord]: ...
    def get_many(self, shop_id: int, external_ids: list[str], *, lock: bool = False) -> dict[str, OrderRecord]: ...
    def save_many(self, shop_id: int, orders: list[OrderRecord]) -> None: ...
    def forget_email(self, shop_id: int, customer_id: str, order_ids: tuple[str, ...]) -> None: ...


class CustomerRepository(Protocol):
    def get(self, shop_id: int, external_id: str) -> CustomerRecord | None: ...
    def save(self, shop_id: int, customer: CustomerRecord) -> None: ...
    def get_many(self, shop_id: int, external_ids: list[str], *, lock: bool = False) -> dict[str, CustomerRecord]: ...
    def save_many(self, shop_id: int, customers: list[CustomerRecord]) -> None: ...
    def redacted_among(self, shop_id: int, external_ids: list[str]) -> set[str]: ...


class CheckoutRepository(Protocol):
    def get(self, shop_id: int, external_id: str) -> CheckoutRecord | None: ...
    def save(self, shop_id: int, checkout: CheckoutRecord) -> None: ...
    def forget_customer(self, shop_id: int, customer_id: str) -> None: ...


class EventLog(Protocol):
    def record(self, event: DomainEvent) -> bool:
        """Store the event unless its key is already there; True when it is new."""
        ...

    def record_many(self, events: list[DomainEvent]) -> list[DomainEvent]:
        """Store each event whose key is not there yet; returns the new ones."""
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


@dataclass(frozen=True)
class LiveJourney:
    """A switched-on journey and its live version."""

    journey_id: int
    version_id: int
    journey: Journey


@dataclass(frozen=True)
class NewEnrollment:
    journey_id: int
    version_id: int
    key: str
    trigger_type: str
    trigger_key: str
    trigger_at: datetime
    customer_id: str | None
    email: str | None
    order_id: str | None
    checkout_id: str | None
    facts: dict[str, Any]
    holdout: bool
    created_at: datetime


@dataclass(frozen=True)
class NewMessage:
    step: str
    key: str  # unique per shop: the enrollment's key and the step's
    category: str
    priority: int
    channel: str
    status: str  # pending | waiting | held_out
    due_at: datetime | None
    latest_at: datetime | None
    waiting_for: str | None
    deadline: datetime | None
    customer_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class AttributionCandidate:
    message_id: int
    journey_id: int
    via: str  # code | click
    at: datetime  # when the message was sent (code) or clicked (click)
    window: timedelta  # the journey's attribution window
    code: str | None = None


class JourneyRepository(Protocol):
    def live(self, shop_id: int) -> list[LiveJourney]: ...
    def email_of(self, shop_id: int, event: DomainEvent) -> str | None:
        """The address an event's order or checkout was placed with (guests have no customer id)."""
        ...
    def timezone_of(self, shop_id: int, customer_id: str | None) -> str | None: ...
    def facts_of(self, shop_id: int, customer_id: str | None, order_id: str | None, checkout_id: str | None
                 ) -> dict[str, Any]: ...
    def enroll(self, shop_id: int, enrollment: NewEnrollment, messages: list[NewMessage]) -> bool:
        """Store the enrollment and its messages unless its key is there already; True when new."""
        ...
    def exit(self, shop_id: int, who: Any, event_type: str, reason: str, occurred_at: datetime, now: datetime
             ) -> int:
        """End the active enrollments `who` concerns whose journey exits on `event_type` and that began before
        it; their unsent messages are cancelled. Returns how many ended."""
        ...
    def resume(self, shop_id: int, order_id: str, event_type: str, occurred_at: datetime, now: datetime) -> int:
        """Steps of that order's enrollments waiting for `event_type` become due."""
        ...
    def attribution_candidates(self, shop_id: int, order_id: str, customer_id: str | None, since: datetime
                               ) -> tuple[frozenset[str], list[AttributionCandidate]]: ...
    def attribute(self, shop_id: int, order_id: str, chosen: AttributionCandidate, revenue: Decimal, currency: str,
                  at: datetime) -> bool: ...
    def forget_customer(self, shop_id: int, customer_id: str, now: datetime) -> None:
        """Erasure: the customer's enrollments end and nothing more is sent to them."""
        ...


@dataclass(frozen=True)
class LoyaltyProgram:
    """A shop's switched-on loyalty program, as earning needs it."""

    rule: EarnRule  # the current version
    started_at: datetime  # orders placed before earn nothing (an imported history is not a windfall)
    confirm_after: timedelta | None = None  # None: points become available when the order is fulfilled
    holdout_percent: int = 0  # this share of customers earns nothing, to measure lift (app.core.lift.held_out)


@dataclass(frozen=True)
class OrderPoints:
    """What the ledger holds for one order: each line's earning, what has been taken back per line, and
    whether the order's points were confirmed (made available) or cancelled."""

    customer_id: str | None = None
    earned: tuple[LineEarning, ...] = ()
    reversed: dict[str, int] = field(default_factory=dict)  # line id -> points taken back so far
    confirmed: bool = False

    def held(self, line_id: str) -> int:
        earning = next((e for e in self.earned if e.line_id == line_id), None)
        return 0 if earning is None else earning.points - self.reversed.get(line_id, 0)


class LoyaltyRepository(Protocol):
    def program(self, shop_id: int) -> LoyaltyProgram | None:
        """None when the shop has no program switched on."""
        ...
    def order_points(self, shop_id: int, order_id: str) -> OrderPoints: ...
    def post(self, shop_id: int, customer_id: str, postings: Sequence[Posting], now: datetime) -> None:
        """Write the postings (those already there by key are left out) with the account's snapshot."""
        ...
    def multiplier(self, shop_id: int, customer_id: str) -> Decimal:
        """The earning multiplier of the customer's VIP tier (1 without one)."""
        ...
    def evaluate_tier(self, shop_id: int, customer_id: str, now: datetime) -> TierChanged | None:
        """Evaluate the customer's tier now (app.core.tiers.evaluate), store the standing, record a change."""
        ...
    def follow(self, event: DomainEvent, now: datetime) -> None:
        """What else follows an order event (guests' too) or a customer's change, in its transaction: sign-up
        points, the customer's stamp card, their badges, and the referral the order's discount code names."""
        ...


class UnitOfWork(Protocol):
    orders: OrderRepository
    customers: CustomerRepository
    checkouts: CheckoutRepository
    events: EventLog
    shops: ShopRepository
    exports: ExportRepository
    journeys: JourneyRepository
    loyalty: LoyaltyRepository

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
    free_shipping: bool = False  # the code also (or only, with neither amount) takes off the shipping
    email: str | None = None  # the customer's address: where a store restricts codes by address (WooCommerce)
    product_id: str | None = None  # the discount applies to this product only (a free product: its price off once)


@dataclass(frozen=True)
class ShopProfile:
    name: str
    currency: str
    timezone: str
    locale: str


class StoreBusy(Exception):
    """The store could not take a request now (rate limited, 5xx, a timeout): worth another try later. Any other
    exception from a store write means retrying the same request will not help."""


class StorePlatform(Protocol):
    """What the core asks of a store, whichever platform it runs on."""

    def shop_profile(self) -> ShopProfile: ...

    def create_discount(self, request: DiscountRequest) -> str:
        """Write a discount code into the store; the same code twice is no error. Returns its store id."""
        ...

    def product_collections(self, product_ids: list[str]) -> dict[str, frozenset[str]]:
        """The collections (Shopify handles) or categories (WooCommerce slugs) each product is in, for the
        journeys' `Condition.any_collection`; every id asked is answered (empty for a product the store lacks)."""
        ...


# --- Channels: how a rendered message leaves Encore (email, SMS, outbound webhook) ---------------------------------
# The dispatcher hands a channel one message and records the result. A channel never raises for a delivery
# problem: it answers sent, retry (transient: the provider or the network is down, busy or rate limiting) or
# failed (permanent: retrying the same message will not help).

ChannelName = Literal["email", "sms", "webhook"]
MessageCategory = Literal["transactional", "marketing"]
SendOutcome = Literal["sent", "retry", "failed"]


@dataclass(frozen=True)
class OutboundMessage:
    """One rendered message for one recipient.

    `key` is the idempotency key of the send (unique per shop): it becomes the email's Message-ID, the
    webhook's `webhook-id` and the captured outbox file's name, so a re-send after a crash can be recognized
    wherever the provider allows it. `to` is an email address, an E.164 phone number, or the webhook's URL.
    `unsubscribe_url` (https) is the one-click unsubscribe address (RFC 8058); marketing email requires it.
    """

    shop_id: int
    key: str
    channel: ChannelName
    to: str
    subject: str = ""
    html: str = ""
    text: str = ""
    sender_name: str = ""
    sender_address: str = ""
    reply_to: str | None = None
    unsubscribe_url: str | None = None
    category: MessageCategory = "transactional"
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    """What became of one send.

    `provider_id` is the provider's own id (SMS sid, Message-ID, outbox id). `retry_after` (seconds) is set on a
    retry when the provider or the local rate limit said how long to wait. `code` is the provider's raw code
    ("21610", "550", "429"); `reason` is the same thing in Encore's words, for the dispatcher to act on:
    "unsubscribed" (the recipient opted out at the provider: record it), "invalid_recipient", "rejected",
    "auth", "config", "gone" (the webhook endpoint answered 410: disable it), "rate_limited" (the provider said
    so), "throttled" (Encore's own token bucket said wait; nothing reached the provider), "unavailable"
    (network, timeout or 5xx), "unknown".
    """

    outcome: SendOutcome
    provider_id: str | None = None
    error: str | None = None
    retry_after: float | None = None
    code: str | None = None
    reason: str | None = None

    @classmethod
    def sent(cls, provider_id: str | None = None) -> SendResult:
        return cls("sent", provider_id=provider_id)

    @classmethod
    def retry(cls, error: str, *, reason: str = "unavailable", code: str | None = None,
              retry_after: float | None = None) -> SendResult:
        return cls("retry", error=error, reason=reason, code=code, retry_after=retry_after)

    @classmethod
    def failed(cls, error: str, *, reason: str = "rejected", code: str | None = None) -> SendResult:
        return cls("failed", error=error, reason=reason, code=code)


class Channel(Protocol):
    """A way out for rendered messages; implementations live in app/channels."""

    @property
    def name(self) -> str: ...

    def send(self, message: OutboundMessage) -> SendResult: ...
