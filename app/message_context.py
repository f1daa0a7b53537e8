"""What one message shows, read from the database a batch at a time: the render context for each message the
dispatcher holds (shop, customer, order with lines and tracking, abandoned checkout, recommendations, links).

Every read is one query per batch, not per message: a dispatcher batch of 200 costs a handful of queries.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, Protocol, cast
from urllib.parse import quote_plus

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, aliased

from app import rendering as r
from app.core.journeys import Channel, Contact
from app.db import models as t
from app.db.engine import among


class CustomerRow(Protocol):
    """What a message reads of a customer (a row of these columns, or the mapped object)."""

    @property
    def external_id(self) -> str: ...
    @property
    def email(self) -> str | None: ...
    @property
    def phone(self) -> str | None: ...
    @property
    def first_name(self) -> str | None: ...
    @property
    def last_name(self) -> str | None: ...
    @property
    def locale(self) -> str | None: ...
    @property
    def timezone(self) -> str | None: ...
    @property
    def accepts_email_marketing(self) -> bool: ...
    @property
    def accepts_sms_marketing(self) -> bool: ...
    @property
    def preferred_channel(self) -> str: ...
    @property
    def redacted_at(self) -> datetime | None: ...


class PreferenceRow(Protocol):
    @property
    def customer_external_id(self) -> str: ...
    @property
    def email(self) -> bool: ...
    @property
    def sms(self) -> bool: ...
    @property
    def frequency(self) -> str: ...
    @property
    def unsubscribed_at(self) -> datetime | None: ...


class OrderRow(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def external_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def email(self) -> str | None: ...
    @property
    def currency(self) -> str: ...
    @property
    def subtotal(self) -> Decimal: ...
    @property
    def total(self) -> Decimal: ...
    @property
    def created_at(self) -> datetime: ...


class LineRow(Protocol):
    @property
    def order_id(self) -> int: ...
    @property
    def product_external_id(self) -> str | None: ...
    @property
    def title(self) -> str: ...
    @property
    def quantity(self) -> int: ...
    @property
    def price(self) -> Decimal: ...
    @property
    def total_discount(self) -> Decimal: ...


class TrackingRow(Protocol):
    @property
    def order_id(self) -> int: ...
    @property
    def tracking_company(self) -> str | None: ...
    @property
    def tracking_number(self) -> str | None: ...
    @property
    def tracking_url(self) -> str | None: ...


class CheckoutRow(Protocol):
    @property
    def external_id(self) -> str: ...
    @property
    def email(self) -> str | None: ...
    @property
    def currency(self) -> str: ...
    @property
    def total(self) -> Decimal: ...
    @property
    def recovery_url(self) -> str | None: ...
    @property
    def lines(self) -> dict[str, Any]: ...


class EnrollmentRow(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def shop_id(self) -> int: ...
    @property
    def version_id(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def exit_reason(self) -> str | None: ...
    @property
    def facts(self) -> dict[str, Any]: ...
    @property
    def email(self) -> str | None: ...
    @property
    def order_external_id(self) -> str | None: ...
    @property
    def checkout_external_id(self) -> str | None: ...
    @property
    def trigger_at(self) -> datetime: ...
    @property
    def trigger_key(self) -> str: ...


_ENROLLMENT = (t.Enrollment.id, t.Enrollment.shop_id, t.Enrollment.version_id, t.Enrollment.status,
               t.Enrollment.exit_reason, t.Enrollment.facts, t.Enrollment.email, t.Enrollment.order_external_id,
               t.Enrollment.checkout_external_id, t.Enrollment.trigger_at, t.Enrollment.trigger_key)


def enrollments(s: Session, ids: Iterable[int]) -> dict[int, EnrollmentRow]:
    """The enrollments a batch's messages belong to, by id."""
    return {e.id: cast(EnrollmentRow, e) for e in s.execute(
        select(*_ENROLLMENT).where(among(s, t.Enrollment.id, sorted(set(ids)))))}


@dataclass(frozen=True)
class Loaded:
    """A batch's rows, by key: plain rows of the columns a message reads (a batch of 200 is some thousand rows,
    and mapped objects cost several times as much to make as rows do)."""

    shops: dict[int, t.Shop]
    customers: dict[tuple[int, str], CustomerRow]
    prefs: dict[tuple[int, str], PreferenceRow]
    orders: dict[tuple[int, str], OrderRow]
    lines: dict[int, list[LineRow]]
    tracking: dict[int, TrackingRow]
    checkouts: dict[tuple[int, str], CheckoutRow]
    memo: dict[object, object] = field(default_factory=dict)  # what the batch works out once (a shop's rules)


_CUSTOMER = (t.Customer.external_id, t.Customer.email, t.Customer.phone, t.Customer.first_name, t.Customer.last_name,
             t.Customer.locale, t.Customer.timezone, t.Customer.accepts_email_marketing,
             t.Customer.accepts_sms_marketing, t.Customer.preferred_channel, t.Customer.redacted_at)
_PREFERENCE = (t.ContactPreference.customer_external_id, t.ContactPreference.email, t.ContactPreference.sms,
               t.ContactPreference.frequency, t.ContactPreference.unsubscribed_at)
_ORDER = (t.Order.shop_id, t.Order.id, t.Order.external_id, t.Order.name, t.Order.email, t.Order.currency,
          t.Order.subtotal, t.Order.total, t.Order.created_at)
_LINE = (t.OrderLine.order_id, t.OrderLine.product_external_id, t.OrderLine.title, t.OrderLine.quantity,
         t.OrderLine.price, t.OrderLine.total_discount)
_TRACKING = (t.Fulfillment.order_id, t.Fulfillment.tracking_company, t.Fulfillment.tracking_number,
             t.Fulfillment.tracking_url)
_CHECKOUT = (t.Checkout.external_id, t.Checkout.email, t.Checkout.currency, t.Checkout.total,
             t.Checkout.recovery_url, t.Checkout.lines)


def _by_shop(pairs: Iterable[tuple[int, str | None]]) -> dict[int, list[str]]:
    grouped: dict[int, set[str]] = defaultdict(set)
    for shop_id, external_id in pairs:
        if external_id:
            grouped[shop_id].add(external_id)
    return {k: sorted(v) for k, v in grouped.items()}


def load(s: Session, shop_ids: set[int], customers: Iterable[tuple[int, str | None]],
         orders: Iterable[tuple[int, str | None]], checkouts: Iterable[tuple[int, str | None]]) -> Loaded:
    shops = {row.id: row for row in s.scalars(select(t.Shop).where(t.Shop.id.in_(sorted(shop_ids))))}
    who = _by_shop(customers)
    found_customers: dict[tuple[int, str], CustomerRow] = {}
    found_prefs: dict[tuple[int, str], PreferenceRow] = {}
    for shop_id, ids in who.items():
        for c in s.execute(select(*_CUSTOMER).where(t.Customer.shop_id == shop_id, among(s, t.Customer.external_id, ids))):
            found_customers[(shop_id, c.external_id)] = cast(CustomerRow, c)
        for p in s.execute(select(*_PREFERENCE).where(
                t.ContactPreference.shop_id == shop_id, among(s, t.ContactPreference.customer_external_id, ids))):
            found_prefs[(shop_id, p.customer_external_id)] = cast(PreferenceRow, p)
    found_orders: dict[tuple[int, str], OrderRow] = {}
    for shop_id, ids in _by_shop(orders).items():
        for o in s.execute(select(*_ORDER).where(t.Order.shop_id == shop_id, among(s, t.Order.external_id, ids))):
            found_orders[(shop_id, o.external_id)] = cast(OrderRow, o)
    order_ids = [o.id for o in found_orders.values()]
    lines: dict[int, list[LineRow]] = defaultdict(list)
    tracking: dict[int, TrackingRow] = {}
    if order_ids:
        order_shops = sorted({shop_id for shop_id, _ in found_orders})  # first: the lines' index begins with it
        for line in s.execute(select(*_LINE).where(among(s, t.OrderLine.shop_id, order_shops),
                                                   among(s, t.OrderLine.order_id, order_ids))
                              .order_by(t.OrderLine.order_id, t.OrderLine.external_id)):
            lines[line.order_id].append(cast(LineRow, line))
        for f in s.execute(select(*_TRACKING).where(among(s, t.Fulfillment.shop_id, order_shops),
                                                    among(s, t.Fulfillment.order_id, order_ids),
                                                    t.Fulfillment.status == "success")
                           .order_by(t.Fulfillment.created_at)):
            tracking[f.order_id] = cast(TrackingRow, f)  # the latest shipment
    found_checkouts: dict[tuple[int, str], CheckoutRow] = {}
    for shop_id, ids in _by_shop(checkouts).items():
        for ch in s.execute(select(*_CHECKOUT).where(t.Checkout.shop_id == shop_id, among(s, t.Checkout.external_id, ids))):
            found_checkouts[(shop_id, ch.external_id)] = cast(CheckoutRow, ch)
    return Loaded(shops, found_customers, found_prefs, found_orders, dict(lines), tracking, found_checkouts)


def store_url(shop: t.Shop) -> str:
    return f"https://{shop.domain}"


def search_url(shop: t.Shop, title: str) -> str:
    """A product's page as both platforms can find it without a handle: the store's own search."""
    return _search_url(shop.platform, shop.domain, title)


@lru_cache(maxsize=8192)  # a shop's product titles come up in message after message
def _search_url(platform: str, domain: str, title: str) -> str:
    if platform == "woocommerce":
        return f"https://{domain}/?s={quote_plus(title)}&post_type=product"
    return f"https://{domain}/search?q={quote_plus(title)}"


def recommendations(s: Session, shop: t.Shop, product_ids: list[str], limit: int = 1) -> tuple[r.Recommendation, ...]:
    """The products most often bought together with these (in the same orders), these excluded."""
    if not product_ids:
        return ()
    mine, other = aliased(t.OrderLine), aliased(t.OrderLine)
    rows = s.execute(select(other.product_external_id, func.min(other.title), func.min(other.price), func.count())
                     .join(mine, and_(mine.order_id == other.order_id, mine.shop_id == other.shop_id))
                     .where(mine.shop_id == shop.id, mine.product_external_id.in_(product_ids),
                            other.product_external_id.is_not(None), other.product_external_id.not_in(product_ids))
                     .group_by(other.product_external_id)
                     .order_by(func.count().desc(), other.product_external_id).limit(limit)).all()
    return tuple(r.Recommendation(title=title, url=search_url(shop, title), price=price, currency=shop.currency)
                 for _, title, price, _ in rows)


PARTNERS = 50  # the partners kept per product: every one, for a shop whose products have fewer


@dataclass(frozen=True)
class Together:
    """A shop's products bought in the same orders: product -> partner -> (times, lowest title, lowest price),
    counted as `recommendations` counts them (once per pair of lines in an order), for the `PARTNERS` most
    frequent partners of each product."""

    partners: dict[str, dict[str, tuple[int, str, Decimal]]]


def bought_together(s: Session, shop_id: int, keep: int = PARTNERS) -> Together:
    """Every product's partners in one query (a pass over the shop's order lines): what a dispatcher keeps for a
    while instead of asking `recommendations` once per message."""
    mine, other = aliased(t.OrderLine), aliased(t.OrderLine)
    times = func.count()
    pairs = (select(mine.product_external_id.label("product"), other.product_external_id.label("partner"),
                    func.min(other.title).label("title"), func.min(other.price).label("price"), times.label("times"),
                    func.row_number().over(partition_by=mine.product_external_id,
                                           order_by=(times.desc(), other.product_external_id)).label("rank"))
             .join(other, and_(mine.order_id == other.order_id, mine.shop_id == other.shop_id))
             .where(mine.shop_id == shop_id, mine.product_external_id.is_not(None),
                    other.product_external_id.is_not(None), other.product_external_id != mine.product_external_id)
             .group_by(mine.product_external_id, other.product_external_id)).subquery()
    partners: dict[str, dict[str, tuple[int, str, Decimal]]] = defaultdict(dict)
    for product, partner, title, price, n in s.execute(
            select(pairs.c.product, pairs.c.partner, pairs.c.title, pairs.c.price, pairs.c.times)
            .where(pairs.c.rank <= keep)):
        partners[product][partner] = (int(n), title, price)
    return Together(dict(partners))


def recommendations_from(together: Together, shop: t.Shop, product_ids: list[str], limit: int = 1
                         ) -> tuple[r.Recommendation, ...]:
    """What `recommendations` answers, from a shop's `Together`, without a query: the same pick whenever no
    product has more partners than were kept (ties go to the lower product id, in code-point order). Beyond
    that, a basket of several products misses the counts below each product's kept partners, which can only
    change a close call."""
    basket = set(product_ids)
    counts: dict[str, int] = {}
    for product in basket:
        for partner, (n, _, _) in together.partners.get(product, {}).items():
            if partner not in basket:
                counts[partner] = counts.get(partner, 0) + n
    picks = []
    for partner in heapq.nsmallest(limit, counts, key=lambda p: (-counts[p], p)):
        seen = [found[partner] for product in basket if partner in (found := together.partners.get(product, {}))]
        title, price = min(x[1] for x in seen), min(x[2] for x in seen)
        picks.append(r.Recommendation(title=title, url=search_url(shop, title), price=price, currency=shop.currency))
    return tuple(picks)


def _line_items(shop: t.Shop, lines: list[LineRow]) -> tuple[r.LineItem, ...]:
    return tuple(r.LineItem(title=x.title, quantity=x.quantity, unit_price=x.price,
                            total=x.price * x.quantity - x.total_discount, product_url=search_url(shop, x.title))
                 for x in lines)


def order_of(loaded: Loaded, shop: t.Shop, order_id: str | None) -> r.Order | None:
    row = loaded.orders.get((shop.id, order_id)) if order_id else None
    if row is None:
        return None
    f = loaded.tracking.get(row.id)
    tracking = None if f is None else r.Tracking(f.tracking_company, f.tracking_number, f.tracking_url)
    return r.Order(name=row.name or f"#{row.external_id}", total=row.total, subtotal=row.subtotal, currency=row.currency,
                   created_at=row.created_at, lines=_line_items(shop, loaded.lines.get(row.id, [])), tracking=tracking)


def checkout_of(loaded: Loaded, shop: t.Shop, checkout_id: str | None) -> r.Checkout | None:
    row = loaded.checkouts.get((shop.id, checkout_id)) if checkout_id else None
    if row is None or not row.recovery_url:
        return None
    lines = tuple(r.LineItem(title=x["title"], quantity=int(x["quantity"]), unit_price=Decimal(x["price"]),
                             total=Decimal(x["price"]) * int(x["quantity"]) - Decimal(x.get("total_discount") or 0),
                             product_url=search_url(shop, x["title"]))
                  for x in row.lines["lines"])
    return r.Checkout(lines=lines, recovery_url=row.recovery_url, currency=row.currency, total=row.total)


def review_url(loaded: Loaded, shop: t.Shop, order_id: str | None) -> str | None:
    """Where to review what was bought: the first item's page in the store (reviews apps live there)."""
    row = loaded.orders.get((shop.id, order_id)) if order_id else None
    items = loaded.lines.get(row.id, []) if row is not None else []
    return search_url(shop, items[0].title) + "#reviews" if items else None


def product_ids(loaded: Loaded, shop_id: int, order_id: str | None) -> list[str]:
    row = loaded.orders.get((shop_id, order_id)) if order_id else None
    if row is None:
        return []
    return sorted({x.product_external_id for x in loaded.lines.get(row.id, []) if x.product_external_id})


def contact_of(customer: CustomerRow | None, pref: PreferenceRow | None, shop: t.Shop, email: str | None
               ) -> Contact:
    """Whether and how a customer may be reached: the store's consent and Encore's own preferences together."""
    if customer is None:  # a guest: the address the order was placed with, transactional mail only
        return Contact(email=email, timezone=shop.timezone)
    preferred = Channel(customer.preferred_channel) if customer.preferred_channel in ("email", "sms") \
        else Channel.EMAIL
    return Contact(
        email=customer.email or email, phone=customer.phone,
        email_marketing=customer.accepts_email_marketing and (pref is None or pref.email),
        sms_marketing=customer.accepts_sms_marketing and (pref is None or pref.sms),
        unsubscribed=pref is not None and pref.unsubscribed_at is not None, preferred=preferred,
        timezone=customer.timezone or shop.timezone, frequency=pref.frequency if pref else "normal")


def customer_of(customer: CustomerRow | None, shop: t.Shop, email: str | None) -> r.Customer:
    tz = (customer.timezone if customer else None) or shop.timezone or "UTC"
    locale = (customer.locale if customer else None) or shop.locale or "en"
    if customer is None:
        return r.Customer(email=email, locale=locale, timezone=tz)
    return r.Customer(first_name=customer.first_name, last_name=customer.last_name, email=customer.email or email,
                      locale=locale, timezone=tz)


def shop_of(shop: t.Shop, support_email: str) -> r.Shop:
    return r.Shop(name=shop.name or shop.domain, currency=shop.currency or "USD", support_email=support_email,
                  url=store_url(shop))



def points_of(s: Session, shop_id: int, customer_id: str | None, trigger_key: str) -> r.Points | None:
    """The points an expiry reminder is about (its trigger key ends `expires:<moment>`), read again at send time:
    None when they no longer expire then (the customer was active since, or spent them)."""
    if customer_id is None or ":expires:" not in trigger_key:
        return None
    expires_at = datetime.fromisoformat(trigger_key.rsplit(":expires:", 1)[1])
    row = s.execute(select(t.LoyaltyAccount.available, t.LoyaltyAccount.last_activity_at,
                           t.LoyaltyProgramRow.expire_after_days)
                    .join(t.LoyaltyProgramRow, t.LoyaltyProgramRow.shop_id == t.LoyaltyAccount.shop_id)
                    .where(t.LoyaltyAccount.shop_id == shop_id, t.LoyaltyAccount.customer_external_id == customer_id,
                           t.LoyaltyProgramRow.enabled.is_(True))).first()
    if row is None or not row.expire_after_days or row.last_activity_at is None or row.available <= 0:
        return None
    if row.last_activity_at + timedelta(days=row.expire_after_days) != expires_at:
        return None
    return r.Points(balance=int(row.available), expiring=int(row.available), expires_at=expires_at)


def tier_of(s: Session, shop_id: int, customer_id: str | None, at: datetime, trigger_key: str) -> r.Tier | None:
    """The VIP tier change an enrollment was started by (its TierChanged event: at `at`, to the tier its key
    ends with), with the tiers' names and the new tier's perks; None without one."""
    if customer_id is None:
        return None
    new_key = trigger_key.rsplit(":", 1)[-1]
    change = s.execute(select(t.TierChange.old, t.TierChange.new, t.TierChange.upgraded)
                       .where(t.TierChange.shop_id == shop_id, t.TierChange.customer_external_id == customer_id,
                              t.TierChange.at <= at, t.TierChange.new == new_key)
                       .order_by(t.TierChange.at.desc(), t.TierChange.id.desc()).limit(1)).first()
    if change is None or change.new is None:
        return None
    tiers = {x.key: x for x in s.scalars(select(t.LoyaltyTier).where(t.LoyaltyTier.shop_id == shop_id))}
    new = tiers.get(change.new)
    old = tiers.get(change.old) if change.old else None
    return r.Tier(old=old.name if old else change.old, new=new.name if new else change.new,
                  upgraded=bool(change.upgraded), perks=tuple(new.perks) if new else ())
