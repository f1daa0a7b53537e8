"""SQLAlchemy 2 typed mappings. Every table carries shop_id and every query is scoped by it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Money = Numeric(14, 4)
Id = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime(), Decimal: Money, dict[str, Any]: JSON}


class Shop(Base):
    __tablename__ = "shops"
    __table_args__ = (UniqueConstraint("platform", "domain"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    platform: Mapped[str] = mapped_column(String(20))
    domain: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    locale: Mapped[str] = mapped_column(String(16), default="en")
    scopes: Mapped[str | None] = mapped_column(Text)
    access_token: Mapped[bytes | None] = mapped_column(LargeBinary)  # encrypted
    access_expires_at: Mapped[datetime | None]
    refresh_token: Mapped[bytes | None] = mapped_column(LargeBinary)  # encrypted
    refresh_expires_at: Mapped[datetime | None]
    api_key: Mapped[bytes | None] = mapped_column(LargeBinary)  # encrypted; WooCommerce's consumer key
    api_secret: Mapped[bytes | None] = mapped_column(LargeBinary)  # encrypted; WooCommerce's consumer secret
    webhook_secret: Mapped[bytes | None] = mapped_column(LargeBinary)  # encrypted; signs this store's webhooks
    reconciled_at: Mapped[datetime | None]  # the last time orders modified since were pulled through REST
    delivered_after_days: Mapped[int | None]  # no carrier data: count an order delivered N days after completion
    webhooks_health: Mapped[dict[str, Any] | None]  # WooCommerce: each topic's webhook as last checked
    webhooks_checked_at: Mapped[datetime | None]
    messaging: Mapped[dict[str, Any] | None]  # sender, support address, frequency cap and quiet hours (app.journeys)
    date_rules_at: Mapped[datetime | None]  # when birthdays, anniversaries, run-outs and win-backs were last looked for
    feedback: Mapped[dict[str, Any] | None]  # survey routing: alert address, webhook URL, thresholds (app.feedback)
    analytics_at: Mapped[datetime | None]  # the last nightly analytics refresh began
    installed_at: Mapped[datetime | None]
    uninstalled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def installed(self) -> bool:
        return self.installed_at is not None and self.uninstalled_at is None


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (UniqueConstraint("shop_id", "external_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(32))
    first_name: Mapped[str | None] = mapped_column(String(255))
    last_name: Mapped[str | None] = mapped_column(String(255))
    locale: Mapped[str | None] = mapped_column(String(16))
    accepts_email_marketing: Mapped[bool] = mapped_column(default=False)
    accepts_sms_marketing: Mapped[bool] = mapped_column(default=False)
    consent_updated_at: Mapped[datetime | None]
    preferred_channel: Mapped[str] = mapped_column(String(16), default="email")
    birthday: Mapped[date | None] = mapped_column(Date)  # given by the customer in the preference center
    timezone: Mapped[str | None] = mapped_column(String(64))  # IANA; the shop's when unknown
    redacted_at: Mapped[datetime | None]
    external_created_at: Mapped[datetime | None]  # the account's creation in the store
    external_updated_at: Mapped[datetime]


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (UniqueConstraint("shop_id", "external_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(255))


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("shop_id", "external_id"), Index(None, "shop_id", "created_at"),
                      Index("ix_orders_customer", "shop_id", "customer_external_id", "created_at"))

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64), default="")
    customer_external_id: Mapped[str | None] = mapped_column(String(64), index=True)
    email: Mapped[str | None] = mapped_column(String(320))
    currency: Mapped[str] = mapped_column(String(3))
    subtotal: Mapped[Decimal]
    total: Mapped[Decimal]
    total_tax: Mapped[Decimal]
    total_shipping: Mapped[Decimal]
    total_discounts: Mapped[Decimal]
    refunded_amount: Mapped[Decimal]
    payment_status: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(24))
    created_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    discount_codes: Mapped[str | None] = mapped_column(Text)  # the codes used, lower-cased, comma-separated
    ship_to: Mapped[str | None] = mapped_column(String(64))  # a digest of the normalised shipping address
    external_updated_at: Mapped[datetime]


class OrderLine(Base):
    __tablename__ = "order_lines"
    __table_args__ = (UniqueConstraint("shop_id", "order_id", "external_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(64))
    product_external_id: Mapped[str | None] = mapped_column(String(64))
    variant_external_id: Mapped[str | None] = mapped_column(String(64))
    sku: Mapped[str | None] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(255))
    quantity: Mapped[int]
    price: Mapped[Decimal]
    total_discount: Mapped[Decimal]


class Fulfillment(Base):
    __tablename__ = "fulfillments"
    __table_args__ = (UniqueConstraint("shop_id", "external_id"), Index("ix_fulfillments_order", "shop_id", "order_id"))

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(24))
    shipment_status: Mapped[str | None] = mapped_column(String(32))
    tracking_company: Mapped[str | None] = mapped_column(String(255))
    tracking_number: Mapped[str | None] = mapped_column(String(255))
    tracking_url: Mapped[str | None] = mapped_column(Text)
    estimated: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]
    external_updated_at: Mapped[datetime]


class Refund(Base):
    __tablename__ = "refunds"
    __table_args__ = (UniqueConstraint("shop_id", "external_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal]
    lines: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class Checkout(Base):
    __tablename__ = "checkouts"
    __table_args__ = (UniqueConstraint("shop_id", "external_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(64))
    customer_external_id: Mapped[str | None] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(320))
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[Decimal]
    recovery_url: Mapped[str | None] = mapped_column(Text)
    lines: Mapped[dict[str, Any]]
    completed_at: Mapped[datetime | None]
    external_updated_at: Mapped[datetime]


class InboxRow(Base):
    """One received webhook delivery, stored before anything else happens to it."""

    __tablename__ = "inbox"
    __table_args__ = (
        UniqueConstraint("shop_id", "topic", "event_id"),
        Index(None, "status", "next_attempt_at"),
        Index(None, "shop_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(20))
    topic: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(128))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending/processing/done/parked/ignored
    attempts: Mapped[int] = mapped_column(default=0)
    enqueued_at: Mapped[datetime | None]  # when the relay last handed it to the queue
    lease_until: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class EventRow(Base):
    """A domain event, recorded once per key: what later capabilities (journeys, loyalty) react to."""

    __tablename__ = "domain_events"
    __table_args__ = (UniqueConstraint("shop_id", "key"), Index(None, "shop_id", "id"))

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    occurred_at: Mapped[datetime]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class DataExport(Base):
    __tablename__ = "data_exports"
    __table_args__ = (UniqueConstraint("shop_id", "request_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    request_id: Mapped[str] = mapped_column(String(64))
    customer_external_id: Mapped[str] = mapped_column(String(64))
    content: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InstallNonce(Base):
    """A single-use OAuth state. Keyed by shop domain: no shop row exists before the install."""

    __tablename__ = "install_nonces"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    platform: Mapped[str] = mapped_column(String(20))
    shop_domain: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class HistoryImport(Base):
    """One import of a store's past customers and orders: a background job that commits its cursor with
    every batch, so a crash resumes where it stopped."""

    __tablename__ = "history_imports"
    __table_args__ = (Index(None, "shop_id", "id"), Index(None, "status", "next_attempt_at"))

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued/running/done/failed
    phase: Mapped[str] = mapped_column(String(16), default="customers")  # customers/orders/done
    cursor: Mapped[dict[str, Any]] = mapped_column(default=dict)  # where the current phase stopped
    customers: Mapped[int] = mapped_column(default=0)  # customers read so far
    orders: Mapped[int] = mapped_column(default=0)  # orders read so far
    total_customers: Mapped[int | None]  # as the platform counts them, when it says
    total_orders: Mapped[int | None]
    attempts: Mapped[int] = mapped_column(default=0)
    enqueued_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)


class JourneyRow(Base):
    """A journey a shop has (from the default library or its own), switched on or off; what it does is in its
    versions, and `version` is the live one."""

    __tablename__ = "journeys"
    __table_args__ = (UniqueConstraint("shop_id", "key"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(default=False)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class JourneyVersion(Base):
    """A journey as it was saved once: never changed afterwards, so an enrollment keeps what it was promised."""

    __tablename__ = "journey_versions"
    __table_args__ = (UniqueConstraint("journey_id", "version"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"))
    version: Mapped[int]
    definition: Mapped[dict[str, Any]]  # app.core.journeys.Journey as plain data
    templates: Mapped[dict[str, Any]]  # step key -> {subject, html, text, sms}
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Enrollment(Base):
    """One customer in one journey because of one event (or date rule): unique per journey and trigger."""

    __tablename__ = "enrollments"
    __table_args__ = (
        UniqueConstraint("shop_id", "key"),
        Index("ix_enrollments_customer", "shop_id", "customer_external_id"),
        Index("ix_enrollments_order", "shop_id", "order_external_id"),
        Index("ix_enrollments_journey", "shop_id", "journey_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"))
    version_id: Mapped[int] = mapped_column(ForeignKey("journey_versions.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    trigger_type: Mapped[str] = mapped_column(String(64))
    trigger_key: Mapped[str] = mapped_column(String(255))
    trigger_at: Mapped[datetime]
    customer_external_id: Mapped[str | None] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(320))
    order_external_id: Mapped[str | None] = mapped_column(String(64))
    checkout_external_id: Mapped[str | None] = mapped_column(String(64))
    facts: Mapped[dict[str, Any]]  # what the step conditions are checked against
    holdout: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active/exited/completed
    exit_reason: Mapped[str | None] = mapped_column(String(64))
    exited_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class Message(Base):
    """One scheduled message of one enrollment's step: the dispatcher's outbox, unique per enrollment and step.

    waiting (for an event) -> pending (due at due_at) -> claimed (a dispatcher holds it until lease_until)
    -> sending (only for channels that cannot confirm a delivery later) -> sent | skipped | failed | parked
    | cancelled (the enrollment exited); held_out: a holdout enrollment's step, never sent."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("shop_id", "key"),
        Index("ix_messages_due", "status", "due_at"),
        Index("ix_messages_customer", "shop_id", "customer_external_id", "sent_at"),
        Index("ix_messages_enrollment", "enrollment_id"),
        Index("ix_messages_journey", "shop_id", "journey_id", "status"),
        Index("ix_messages_code", "shop_id", "code"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"))
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"))
    step: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    customer_external_id: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(default=50)
    channel: Mapped[str] = mapped_column(String(16))  # as the step asks: email/sms/webhook/preferred
    status: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime | None]
    first_due_at: Mapped[datetime | None]
    latest_at: Mapped[datetime | None]  # not sent by then: skipped as too late
    waiting_for: Mapped[str | None] = mapped_column(String(64))
    deadline: Mapped[datetime | None]  # the awaited event did not come by then: skipped
    attempts: Mapped[int] = mapped_column(default=0)
    lease_until: Mapped[datetime | None]
    deferred: Mapped[str | None] = mapped_column(String(64))  # why it was last put off (quiet hours, cap)
    sent_at: Mapped[datetime | None]
    sent_channel: Mapped[str | None] = mapped_column(String(16))
    recipient: Mapped[str | None] = mapped_column(String(320))
    provider_id: Mapped[str | None] = mapped_column(String(255))
    code: Mapped[str | None] = mapped_column(String(64))  # the personal discount code it carried
    reason: Mapped[str | None] = mapped_column(String(255))  # why it was skipped, failed or parked
    error: Mapped[str | None] = mapped_column(Text)
    opened_at: Mapped[datetime | None]
    clicked_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class MessageClick(Base):
    __tablename__ = "message_clicks"
    __table_args__ = (Index("ix_message_clicks_customer", "shop_id", "customer_external_id", "at"),
                      Index("ix_message_clicks_message", "message_id"))

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    customer_external_id: Mapped[str | None] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]


class Attribution(Base):
    """An order Encore's messages earned: by the message's own code, or by a click within the journey's window."""

    __tablename__ = "attributions"
    __table_args__ = (UniqueConstraint("shop_id", "order_external_id"), Index("ix_attributions_journey", "shop_id", "journey_id"))

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    order_external_id: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"))
    via: Mapped[str] = mapped_column(String(8))  # code | click
    revenue: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    at: Mapped[datetime]


class ContactPreference(Base):
    """What a customer chose in the preference center (or by one-click unsubscribe or STOP)."""

    __tablename__ = "contact_preferences"
    __table_args__ = (UniqueConstraint("shop_id", "customer_external_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    customer_external_id: Mapped[str] = mapped_column(String(64))
    email: Mapped[bool] = mapped_column(default=True)  # marketing by email
    sms: Mapped[bool] = mapped_column(default=True)  # marketing by SMS
    frequency: Mapped[str] = mapped_column(String(16), default="normal")  # normal | weekly | monthly
    unsubscribed_at: Mapped[datetime | None]  # from all marketing
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SurveyResponse(Base):
    """A customer's answer to the satisfaction survey a message linked to: one per message (answering again
    changes the answer)."""

    __tablename__ = "survey_responses"
    __table_args__ = (UniqueConstraint("shop_id", "message_id"), Index("ix_survey_responses_shop", "shop_id", "created_at"))

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    customer_external_id: Mapped[str | None] = mapped_column(String(64))
    order_external_id: Mapped[str | None] = mapped_column(String(64))
    score: Mapped[int]  # 1-5
    nps: Mapped[int | None]  # 0-10, "how likely are you to recommend us"; None on answers from before it was asked
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class FeedbackItem(Base):
    """A low survey answer staff must follow up: open until someone marks it resolved. Carries the alert's
    delivery (email to the shop's address, and the optional outbound webhook), retried until done."""

    __tablename__ = "feedback_items"
    __table_args__ = (UniqueConstraint("shop_id", "response_id"),
                      Index("ix_feedback_items_open", "shop_id", "status", "created_at"),
                      Index("ix_feedback_items_alert_due", "alert_status", "alert_next_at"))

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    response_id: Mapped[int] = mapped_column(ForeignKey("survey_responses.id", ondelete="CASCADE"))
    customer_external_id: Mapped[str | None] = mapped_column(String(64))
    order_external_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(32))  # low_satisfaction / detractor / both
    status: Mapped[str] = mapped_column(String(16), default="open")  # open / resolved
    resolved_by: Mapped[str | None] = mapped_column(String(255))
    resolution_note: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None]
    alert_status: Mapped[str] = mapped_column(String(16), default="pending")  # pending / sent / failed / none
    alert_detail: Mapped[dict[str, Any] | None]  # each destination's outcome: {"email": "sent", "webhook": ...}
    alert_attempts: Mapped[int] = mapped_column(default=0)
    alert_next_at: Mapped[datetime | None]
    alert_lease_until: Mapped[datetime | None]
    alert_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Segment(Base):
    """A group of customers journeys and rewards can target: rule-based (the merchant's rules, app.segments) or
    one of the RFM segments Encore computes nightly (kind "rfm", not editable)."""

    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("shop_id", "key"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))  # what conditions name ("vip-spenders", "rfm:champions")
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(8), default="rule")  # rule / rfm
    rules: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"match": "all", "rules": [...]}
    size: Mapped[int] = mapped_column(default=0)  # members at the last refresh
    refreshed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SegmentMember(Base):
    """Who is in a segment as of its last refresh (a refresh replaces a segment's members in one transaction)."""

    __tablename__ = "segment_members"
    __table_args__ = (Index("ix_segment_members_customer", "shop_id", "customer_external_id"),)

    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True)
    customer_external_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))


class CustomerMetrics(Base):
    """A customer's figures as of the shop's last analytics refresh: history (orders, revenue, first and last
    order), RFM scores and segment, and the lifetime model's predictions (None when the shop is too small to fit)."""

    __tablename__ = "customer_metrics"

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    customer_external_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    orders: Mapped[int]
    revenue: Mapped[Decimal]  # net of refunds, shop currency: the historic customer lifetime value
    first_order_at: Mapped[datetime]
    last_order_at: Mapped[datetime]
    rfm_r: Mapped[int]  # 1-5 quintile scores, 5 best
    rfm_f: Mapped[int]
    rfm_m: Mapped[int]
    rfm_segment: Mapped[str] = mapped_column(String(24))
    p_alive: Mapped[float | None]
    expected_orders_90d: Mapped[float | None]
    expected_next_order_at: Mapped[datetime | None]
    predicted_clv: Mapped[Decimal | None]
    refreshed_at: Mapped[datetime]


class ProductReorderInterval(Base):
    """Per product, the median days between a customer's repeat purchases of it (learned nightly), and the
    merchant's own interval when they set one; the replenishment journey reads it."""

    __tablename__ = "product_reorder_intervals"

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    product_external_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    median_days: Mapped[float | None]  # learned; None when too few repeat purchases
    repeats: Mapped[int] = mapped_column(default=0)  # the repeat purchases it was learned from
    merchant_days: Mapped[int | None]  # set by the merchant: stands for the learned one
    refreshed_at: Mapped[datetime | None]


class AnalyticsRun(Base):
    """One analytics refresh of a shop (nightly, or asked for): its status and the shop-level figures it computed
    (repeat rate, time between orders, cohorts, the model's fit or why there was none), which the admin reads."""

    __tablename__ = "analytics_runs"
    __table_args__ = (Index("ix_analytics_runs_shop", "shop_id", "started_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))  # running / done / failed
    summary: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    lease_until: Mapped[datetime | None]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class LoyaltyProgramRow(Base):
    """A shop's loyalty program: on or off, when it began, when earned points become available."""

    __tablename__ = "loyalty_programs"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), unique=True)
    enabled: Mapped[bool] = mapped_column(default=False)
    started_at: Mapped[datetime]  # orders placed before earn nothing
    confirm_after_days: Mapped[int | None]  # None: on fulfillment; N: N days after fulfillment (return window)
    expire_after_days: Mapped[int | None]  # points expire after this many days without activity (None: never)
    swept_at: Mapped[datetime | None]  # when returns windows and inactive accounts were last looked at (hourly)
    actions: Mapped[dict[str, Any] | None]  # points for actions: {"survey": 50, "review": 100, ...}
    tier_basis: Mapped[str] = mapped_column(String(8), default="spend")  # spend / points (app.core.tiers.Basis)
    tier_window_days: Mapped[int] = mapped_column(default=365)  # the rolling window progress is counted over
    tier_grace_days: Mapped[int] = mapped_column(default=30)  # below a tier this long before moving down
    stamp_every: Mapped[int | None]  # a stamp card: every Nth paid order earns stamp_reward (None: no card)
    stamp_reward_id: Mapped[int | None] = mapped_column(ForeignKey("rewards.id", ondelete="SET NULL"))
    badges_enabled: Mapped[bool] = mapped_column(default=True)
    holdout_percent: Mapped[int] = mapped_column(default=0)  # this share of customers is left out, to measure lift
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoyaltyRule(Base):
    """One version of a shop's earning rule (app.core.loyalty.EarnRule as plain data); never edited."""

    __tablename__ = "loyalty_rules"
    __table_args__ = (UniqueConstraint("shop_id", "version"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    version: Mapped[int]
    definition: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoyaltyAccount(Base):
    """A customer's points: the snapshot of their ledger, written in the same transaction as every entry."""

    __tablename__ = "loyalty_accounts"
    __table_args__ = (UniqueConstraint("shop_id", "customer_external_id"),
                      Index("ix_loyalty_accounts_activity", "shop_id", "last_activity_at"))

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    customer_external_id: Mapped[str] = mapped_column(String(64))
    available: Mapped[int] = mapped_column(BigInteger, default=0)
    pending: Mapped[int] = mapped_column(BigInteger, default=0)
    last_activity_at: Mapped[datetime | None]  # the last entry: expiry counts inactivity from here
    tier: Mapped[str | None] = mapped_column(String(32))  # the VIP tier's key
    tier_since: Mapped[datetime | None]
    below_since: Mapped[datetime | None]  # below the tier since then: a grace period before moving down
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoyaltyTier(Base):
    """A VIP tier of a shop's program (app.core.tiers.Tier)."""

    __tablename__ = "loyalty_tiers"
    __table_args__ = (UniqueConstraint("shop_id", "key"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(64))
    threshold: Mapped[Decimal]
    multiplier: Mapped[Decimal]
    perks: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TierChange(Base):
    """A customer's move between tiers, as it happened: what the vip_tier journey announces."""

    __tablename__ = "tier_changes"
    __table_args__ = (Index("ix_tier_changes_customer", "shop_id", "customer_external_id", "at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    customer_external_id: Mapped[str] = mapped_column(String(64))
    old: Mapped[str | None] = mapped_column(String(32))
    new: Mapped[str | None] = mapped_column(String(32))
    upgraded: Mapped[bool]
    progress: Mapped[Decimal]
    at: Mapped[datetime]


class LedgerEntry(Base):
    """One posting: whole points into or out of one balance of one account, for one reason. Append-only; the key
    makes posting the same thing twice one entry."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("account_id", "key"),
        Index("ix_ledger_entries_order", "shop_id", "order_external_id"),
        Index("ix_ledger_entries_account", "account_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("loyalty_accounts.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    amount: Mapped[int] = mapped_column(BigInteger)
    balance: Mapped[str] = mapped_column(String(16))  # pending / available
    reason: Mapped[str] = mapped_column(String(16))  # app.core.loyalty.Reason
    rule_version: Mapped[int | None]  # the earning rule that produced it (earned points and their reversals)
    order_external_id: Mapped[str | None] = mapped_column(String(64))
    line_external_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None]  # an earning's amount and rate; a redemption's reward
    staff: Mapped[str | None] = mapped_column(String(255))  # who adjusted by hand
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class Reward(Base):
    """An item of a shop's rewards catalog, bought with points."""

    __tablename__ = "rewards"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))  # amount / percent / free_shipping / free_product
    value: Mapped[Decimal | None]  # money off (shop currency; a free product's unit price) or percent off
    product_external_id: Mapped[str | None] = mapped_column(String(64))  # the free product
    cost: Mapped[int]  # points
    enabled: Mapped[bool] = mapped_column(default=True)
    valid_days: Mapped[int] = mapped_column(default=90)  # how long a code bought with it works
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id"))  # only this segment's members may redeem
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Redemption(Base):
    """Points spent on a reward, and the single-use code written into the store for it. `request_key` makes
    the same redeem request one redemption; a code that cannot be written for good gives the points back."""

    __tablename__ = "redemptions"
    __table_args__ = (
        UniqueConstraint("shop_id", "request_key"),
        UniqueConstraint("shop_id", "code"),
        Index("ix_redemptions_due", "status", "next_attempt_at"),
        Index("ix_redemptions_customer", "shop_id", "customer_external_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    customer_external_id: Mapped[str] = mapped_column(String(64))
    reward_id: Mapped[int] = mapped_column(ForeignKey("rewards.id", ondelete="CASCADE"))
    request_key: Mapped[str] = mapped_column(String(128))
    points: Mapped[int]
    code: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # issuing / issued / restored
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]  # issuing: when to try the store again
    lease_until: Mapped[datetime | None]  # issuing: a worker is writing it until then
    expires_at: Mapped[datetime]
    store_id: Mapped[str | None] = mapped_column(String(255))  # the discount's id in the store
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Stamp(Base):
    """One paid order's stamp on its customer's stamp card; void when the order is cancelled or refunded in
    full before its card was filled."""

    __tablename__ = "stamps"
    __table_args__ = (UniqueConstraint("shop_id", "order_external_id"),
                      Index("ix_stamps_customer", "shop_id", "customer_external_id", "created_at"))

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    customer_external_id: Mapped[str] = mapped_column(String(64))
    order_external_id: Mapped[str] = mapped_column(String(64))
    void: Mapped[bool] = mapped_column(default=False)
    card: Mapped[int | None]  # the card it filled (1, 2, ...) once that card was complete
    created_at: Mapped[datetime]


class CustomerBadge(Base):
    """A badge a customer earned (app.badges): once each, never taken away."""

    __tablename__ = "customer_badges"
    __table_args__ = (UniqueConstraint("shop_id", "customer_external_id", "badge"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    customer_external_id: Mapped[str] = mapped_column(String(64))
    badge: Mapped[str] = mapped_column(String(32))
    earned_at: Mapped[datetime]
    detail: Mapped[dict[str, Any] | None]


class ReferralProgramRow(Base):
    """A shop's referral program: what the friend gets (a first-order discount code), what the referrer gets once
    the friend's first order is past its return window, and the limits."""

    __tablename__ = "referral_programs"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), unique=True)
    enabled: Mapped[bool] = mapped_column(default=False)
    friend_kind: Mapped[str] = mapped_column(String(16), default="percent")  # percent / amount / free_shipping
    friend_value: Mapped[Decimal | None]
    friend_valid_days: Mapped[int] = mapped_column(default=30)
    referrer_points: Mapped[int | None]  # the referrer's reward in points ...
    referrer_reward_id: Mapped[int | None] = mapped_column(ForeignKey("rewards.id", ondelete="SET NULL"))  # ... or a code
    wait_days: Mapped[int] = mapped_column(default=30)  # the friend's order must pass this return window
    cap_per_referrer: Mapped[int | None]  # rewards a referrer can get in cap_window_days (None: no cap)
    cap_window_days: Mapped[int] = mapped_column(default=30)
    holdout_percent: Mapped[int] = mapped_column(default=0)  # this share of customers gets no referral link
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReferralCode(Base):
    """A customer's referral code: what their link carries and what their friends type."""

    __tablename__ = "referral_codes"
    __table_args__ = (UniqueConstraint("shop_id", "customer_external_id"), UniqueConstraint("shop_id", "code"))

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    customer_external_id: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]


class Referral(Base):
    """A friend brought by a referral code: their first-order discount code in the store, their first order, and
    the referrer's reward, or why it was blocked (and who let it through anyway)."""

    __tablename__ = "referrals"
    __table_args__ = (
        UniqueConstraint("shop_id", "friend_email"),
        UniqueConstraint("shop_id", "friend_code"),
        Index("ix_referrals_referrer", "shop_id", "referrer_external_id", "created_at"),
        Index("ix_referrals_due", "status", "due_at"),
        Index("ix_referrals_order", "shop_id", "order_external_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    referrer_external_id: Mapped[str] = mapped_column(String(64))
    referral_code: Mapped[str] = mapped_column(String(32))
    friend_email: Mapped[str] = mapped_column(String(320))  # normalised (trimmed, lower case)
    friend_customer_external_id: Mapped[str | None] = mapped_column(String(64))
    friend_code: Mapped[str] = mapped_column(String(64))  # the friend's first-order discount code
    friend_code_status: Mapped[str] = mapped_column(String(16))  # issuing / issued / failed
    friend_code_store_id: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    order_external_id: Mapped[str | None] = mapped_column(String(64))  # the friend's first order, by their code
    status: Mapped[str] = mapped_column(String(16))  # invited / ordered / rewarded / blocked / void
    blocked_reason: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime | None]  # ordered: when the return window has passed and the reward is due
    reward_points: Mapped[int | None]
    reward_code: Mapped[str | None] = mapped_column(String(64))
    overridden_by: Mapped[str | None] = mapped_column(String(255))
    override_note: Mapped[str | None] = mapped_column(Text)
    rewarded_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


SHOP_TABLES = [AnalyticsRun, ProductReorderInterval, CustomerMetrics, SegmentMember, FeedbackItem,
               Referral, ReferralCode, ReferralProgramRow, CustomerBadge, Stamp, TierChange, LoyaltyTier, Redemption,
               Reward, Segment, LedgerEntry, LoyaltyAccount, LoyaltyRule,
               LoyaltyProgramRow, SurveyResponse, ContactPreference, Attribution, MessageClick, Message, Enrollment,
               JourneyVersion, JourneyRow, HistoryImport, DataExport, EventRow, InboxRow, Checkout, Refund,
               Fulfillment, OrderLine, Order, Product, Customer]
