"""Repositories: rows <-> the core's records, every query scoped by shop_id."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import BigInteger, String, Table, any_, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core import model as m
from app.core.events import DomainEvent
from app.core.ports import ShopState
from app.db import bulk
from app.db import models as t


def _lines_json(lines: tuple[m.OrderLine, ...] | tuple[m.RefundLine, ...]) -> dict[str, Any]:
    return {"lines": [{k: str(v) if isinstance(v, Decimal) else v for k, v in dataclasses.asdict(x).items()} for x in lines]}


def _table(model: type[t.Base]) -> Table:
    return cast(Table, model.__table__)


def _among(s: Session, column: Any, values: list[Any]) -> Any:
    """column IN values: one array parameter on PostgreSQL (nothing to parse or plan per value), a plain IN
    list elsewhere."""
    if s.get_bind().dialect.name == "postgresql":
        kind = BigInteger() if values and isinstance(values[0], int) else String()
        return column == any_(bindparam(None, value=list(values), type_=ARRAY(kind)))
    return column.in_(values)


def _chunks(items: list[Any], size: int = 500) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _row_ids(s: Session, model: type[t.Order] | type[t.Customer], shop_id: int, external_ids: list[str]) -> dict[str, int]:
    """Row id by external id, for those of the shop's rows that exist."""
    ids: dict[str, int] = {}
    for chunk in _chunks(external_ids):
        q = select(model.id, model.external_id).where(model.shop_id == shop_id, _among(s, model.external_id, chunk))
        ids.update((e, i) for i, e in s.execute(q))
    return ids


def _known_ids(s: Session, model: type[t.Order] | type[t.Customer], shop_id: int, external_ids: list[str],
               looked_up: dict[tuple[int, str], int | None]) -> dict[str, int]:
    """Row ids of those external ids that exist: what get_many saw in this transaction (under its lock), and
    one query for the rest."""
    ids = {e: i for e in external_ids if (i := looked_up.get((shop_id, e))) is not None}
    ids.update(_row_ids(s, model, shop_id, [e for e in external_ids if (shop_id, e) not in looked_up]))
    return ids


def _order_values(shop_id: int, o: m.OrderRecord) -> dict[str, Any]:
    return {"shop_id": shop_id, "external_id": o.external_id, "name": o.name, "customer_external_id": o.customer_id,
            "email": o.email, "currency": o.currency, "subtotal": o.subtotal, "total": o.total,
            "total_tax": o.total_tax, "total_shipping": o.total_shipping, "total_discounts": o.total_discounts,
            "refunded_amount": o.refunded_amount, "payment_status": o.payment.value, "status": o.status.value,
            "created_at": o.created_at, "processed_at": o.processed_at, "cancelled_at": o.cancelled_at,
            "discount_codes": _codes(o.discount_codes), "ship_to": o.ship_to, "external_updated_at": o.updated_at}


def _codes(codes: tuple[str, ...]) -> str | None:
    return ",".join(sorted({c.strip().lower() for c in codes if c.strip()})) or None


def _line_values(shop_id: int, order_id: int, x: m.OrderLine) -> dict[str, Any]:
    return {"shop_id": shop_id, "order_id": order_id, "external_id": x.external_id, "product_external_id": x.product_id,
            "variant_external_id": x.variant_id, "sku": x.sku, "title": x.title, "quantity": x.quantity,
            "price": x.price, "total_discount": x.total_discount}


def _fulfillment_values(shop_id: int, order_id: int, f: m.Fulfillment) -> dict[str, Any]:
    return {"shop_id": shop_id, "order_id": order_id, "external_id": f.external_id, "status": f.status,
            "shipment_status": f.shipment_status, "estimated": f.estimated, "tracking_company": f.tracking.company,
            "tracking_number": f.tracking.number, "tracking_url": f.tracking.url, "created_at": f.created_at,
            "external_updated_at": f.updated_at}


def _refund_values(shop_id: int, order_id: int, r: m.Refund) -> dict[str, Any]:
    return {"shop_id": shop_id, "order_id": order_id, "external_id": r.external_id, "amount": r.amount,
            "lines": _lines_json(r.lines), "created_at": r.created_at}


def _customer_values(shop_id: int, c: m.CustomerRecord) -> dict[str, Any]:
    return {"shop_id": shop_id, "external_id": c.external_id, "email": c.email, "phone": c.phone,
            "first_name": c.first_name, "last_name": c.last_name, "locale": c.locale,
            "accepts_email_marketing": c.consent.email_marketing, "accepts_sms_marketing": c.consent.sms_marketing,
            "consent_updated_at": c.consent.updated_at, "preferred_channel": c.preferred_channel,
            "external_updated_at": c.updated_at, "redacted_at": c.updated_at if c.redacted else None,
            "external_created_at": c.created_at}


class Orders:
    def __init__(self, session: Session) -> None:
        self.s = session
        self._ids: dict[tuple[int, str], int | None] = {}  # what get_many looked up (and locked): id, or None

    def _row(self, shop_id: int, external_id: str) -> t.Order | None:
        q = select(t.Order).where(t.Order.shop_id == shop_id, t.Order.external_id == external_id)
        return self.s.scalars(q.with_for_update()).one_or_none()

    def _record(self, row: t.Order) -> m.OrderRecord:
        lines = self.s.scalars(select(t.OrderLine).where(t.OrderLine.shop_id == row.shop_id, t.OrderLine.order_id == row.id))
        fuls = self.s.scalars(select(t.Fulfillment).where(t.Fulfillment.shop_id == row.shop_id, t.Fulfillment.order_id == row.id))
        refs = self.s.scalars(select(t.Refund).where(t.Refund.shop_id == row.shop_id, t.Refund.order_id == row.id))
        return self._assemble(row, lines, fuls, refs)

    @staticmethod
    def _assemble(row: Any, lines: Iterable[Any], fuls: Iterable[Any], refs: Iterable[Any]) -> m.OrderRecord:
        """An order from its row and its parts' rows (ORM objects or plain rows: the same attribute names)."""
        return m.OrderRecord(
            external_id=row.external_id, updated_at=row.external_updated_at, created_at=row.created_at,
            currency=row.currency, total=row.total, subtotal=row.subtotal, name=row.name,
            customer_id=row.customer_external_id, email=row.email, total_tax=row.total_tax,
            total_shipping=row.total_shipping, total_discounts=row.total_discounts,
            payment=m.PaymentStatus(row.payment_status), processed_at=row.processed_at, cancelled_at=row.cancelled_at,
            discount_codes=tuple(row.discount_codes.split(",")) if row.discount_codes else (),
            ship_to=row.ship_to,
            lines=tuple(sorted((m.OrderLine(
                external_id=x.external_id, title=x.title, quantity=x.quantity, price=x.price,
                total_discount=x.total_discount, product_id=x.product_external_id, variant_id=x.variant_external_id,
                sku=x.sku) for x in lines), key=lambda x: x.external_id)),
            fulfillments=tuple(sorted((m.Fulfillment(
                external_id=f.external_id, updated_at=f.external_updated_at, created_at=f.created_at, status=f.status,
                shipment_status=f.shipment_status, estimated=f.estimated,
                tracking=m.Tracking(f.tracking_company, f.tracking_number, f.tracking_url)) for f in fuls),
                key=lambda f: f.external_id)),
            refunds=tuple(sorted((m.Refund(
                external_id=r.external_id, created_at=r.created_at, amount=r.amount,
                lines=tuple(m.RefundLine(x["line_id"], int(x["quantity"]), Decimal(x["amount"])) for x in r.lines["lines"]))
                for r in refs), key=lambda r: r.external_id)),
        )

    def get(self, shop_id: int, external_id: str) -> m.OrderRecord | None:
        row = self._row(shop_id, external_id)
        return None if row is None else self._record(row)

    def get_many(self, shop_id: int, external_ids: list[str], *, lock: bool = False) -> dict[str, m.OrderRecord]:
        """The stored orders among these ids (locked for this transaction when asked, in id order, so two
        batches that overlap cannot deadlock), their parts read in three queries rather than three per order."""
        found: dict[str, m.OrderRecord] = {}
        orders, parts_of = _table(t.Order), (_table(t.OrderLine), _table(t.Fulfillment), _table(t.Refund))
        for chunk in _chunks(sorted(set(external_ids)), 5000):
            q = select(orders).where(orders.c.shop_id == shop_id, _among(self.s, orders.c.external_id, chunk))
            q = q.order_by(orders.c.id)
            rows = list(self.s.execute(q.with_for_update() if lock else q))  # plain rows: no ORM bookkeeping
            self._ids.update(((shop_id, e), None) for e in chunk)
            if not rows:
                continue
            ids = [r.id for r in rows]
            parts: dict[int, tuple[list[Any], list[Any], list[Any]]] = {i: ([], [], []) for i in ids}
            for index, table in enumerate(parts_of):
                q2 = select(table).where(table.c.shop_id == shop_id, _among(self.s, table.c.order_id, ids))
                for child in self.s.execute(q2):
                    parts[child.order_id][index].append(child)
            found.update((r.external_id, self._assemble(r, *parts[r.id])) for r in rows)
            self._ids.update(((shop_id, r.external_id), r.id) for r in rows)
        return found

    def save_many(self, shop_id: int, orders: list[m.OrderRecord]) -> None:
        """Write whole orders (as merged by the core) in bulk: one INSERT or UPDATE for the orders, their old
        parts deleted and the merged parts inserted, a statement per table rather than per row."""
        if not orders:
            return
        orders = sorted(orders, key=lambda o: o.external_id)
        ids = _known_ids(self.s, t.Order, shop_id, [o.external_id for o in orders], self._ids)
        existing = [ids[o.external_id] for o in orders if o.external_id in ids]
        values = [_order_values(shop_id, o) for o in orders]
        fresh = [v for v in values if v["external_id"] not in ids]
        known = [{"_id": ids[v["external_id"]], **v} for v in values if v["external_id"] in ids]
        if fresh:
            made = bulk.new_ids(self.s, _table(t.Order), len(fresh))
            if made is not None:
                for v, new_id in zip(fresh, made, strict=True):
                    v["id"] = ids[v["external_id"]] = new_id
            bulk.insert_rows(self.s, _table(t.Order), fresh)
            if made is None:
                ids.update(_row_ids(self.s, t.Order, shop_id, [v["external_id"] for v in fresh]))
            self._ids.update(((shop_id, v["external_id"]), ids[v["external_id"]]) for v in fresh)
        if existing:
            self.s.execute(update(_table(t.Order)).where(_table(t.Order).c.id == bindparam("_id")), known)
            for chunk in _chunks(existing):
                for table in (t.OrderLine, t.Fulfillment, t.Refund):
                    self.s.execute(delete(table).where(table.shop_id == shop_id, table.order_id.in_(chunk)))
        lines = [_line_values(shop_id, ids[o.external_id], x) for o in orders for x in o.lines]
        fuls = [_fulfillment_values(shop_id, ids[o.external_id], f) for o in orders for f in o.fulfillments]
        refs = [_refund_values(shop_id, ids[o.external_id], r) for o in orders for r in o.refunds]
        for table, rows in ((t.OrderLine, lines), (t.Fulfillment, fuls), (t.Refund, refs)):
            bulk.insert_rows(self.s, _table(table), rows)

    def of_customer(self, shop_id: int, customer_id: str) -> list[m.OrderRecord]:
        q = select(t.Order).where(t.Order.shop_id == shop_id, t.Order.customer_external_id == customer_id)
        return [self._record(r) for r in self.s.scalars(q)]

    def save(self, shop_id: int, order: m.OrderRecord) -> None:
        row = self._row(shop_id, order.external_id)
        if row is None:
            row = t.Order(shop_id=shop_id, external_id=order.external_id)
            self.s.add(row)
        row.name, row.customer_external_id, row.email = order.name, order.customer_id, order.email
        row.currency, row.subtotal, row.total = order.currency, order.subtotal, order.total
        row.total_tax, row.total_shipping, row.total_discounts = order.total_tax, order.total_shipping, order.total_discounts
        row.refunded_amount, row.payment_status, row.status = order.refunded_amount, order.payment.value, order.status.value
        row.created_at, row.processed_at, row.cancelled_at = order.created_at, order.processed_at, order.cancelled_at
        row.discount_codes, row.external_updated_at = _codes(order.discount_codes), order.updated_at
        row.ship_to = order.ship_to
        self.s.flush()
        self.s.execute(delete(t.OrderLine).where(t.OrderLine.shop_id == shop_id, t.OrderLine.order_id == row.id))
        self.s.add_all(t.OrderLine(
            shop_id=shop_id, order_id=row.id, external_id=x.external_id, product_external_id=x.product_id,
            variant_external_id=x.variant_id, sku=x.sku, title=x.title, quantity=x.quantity, price=x.price,
            total_discount=x.total_discount) for x in order.lines)
        stored = {f.external_id: f for f in self.s.scalars(
            select(t.Fulfillment).where(t.Fulfillment.shop_id == shop_id, t.Fulfillment.order_id == row.id))}
        for f in order.fulfillments:
            frow = stored.get(f.external_id) or t.Fulfillment(shop_id=shop_id, order_id=row.id, external_id=f.external_id)
            frow.status, frow.shipment_status, frow.estimated = f.status, f.shipment_status, f.estimated
            frow.tracking_company, frow.tracking_number, frow.tracking_url = f.tracking.company, f.tracking.number, f.tracking.url
            frow.created_at, frow.external_updated_at = f.created_at, f.updated_at
            self.s.add(frow)
        known = set(self.s.scalars(select(t.Refund.external_id).where(t.Refund.shop_id == shop_id, t.Refund.order_id == row.id)))
        self.s.add_all(t.Refund(shop_id=shop_id, order_id=row.id, external_id=r.external_id, amount=r.amount,
                                lines=_lines_json(r.lines), created_at=r.created_at)
                       for r in order.refunds if r.external_id not in known)
        self.s.flush()

    def forget_email(self, shop_id: int, customer_id: str, order_ids: tuple[str, ...]) -> None:
        mine = (t.Order.customer_external_id == customer_id) | t.Order.external_id.in_(order_ids)
        self.s.execute(update(t.Order).where(t.Order.shop_id == shop_id, mine).values(email=None))


class Customers:
    def __init__(self, session: Session) -> None:
        self.s = session
        self._ids: dict[tuple[int, str], int | None] = {}  # what get_many looked up (and locked): id, or None

    def _row(self, shop_id: int, external_id: str) -> t.Customer | None:
        q = select(t.Customer).where(t.Customer.shop_id == shop_id, t.Customer.external_id == external_id)
        return self.s.scalars(q.with_for_update()).one_or_none()

    def get(self, shop_id: int, external_id: str) -> m.CustomerRecord | None:
        row = self._row(shop_id, external_id)
        return None if row is None else self._record(row)

    def get_many(self, shop_id: int, external_ids: list[str], *, lock: bool = False) -> dict[str, m.CustomerRecord]:
        found: dict[str, m.CustomerRecord] = {}
        table = _table(t.Customer)
        for chunk in _chunks(sorted(set(external_ids)), 5000):
            q = select(table).where(table.c.shop_id == shop_id, _among(self.s, table.c.external_id, chunk))
            q = q.order_by(table.c.id)
            rows = list(self.s.execute(q.with_for_update() if lock else q))
            self._ids.update(((shop_id, e), None) for e in chunk)
            self._ids.update(((shop_id, r.external_id), r.id) for r in rows)
            found.update((r.external_id, self._record(r)) for r in rows)
        return found

    def redacted_among(self, shop_id: int, external_ids: list[str]) -> set[str]:
        table, found = _table(t.Customer), set[str]()
        for chunk in _chunks(external_ids, 5000):
            found.update(self.s.scalars(select(table.c.external_id).where(
                table.c.shop_id == shop_id, _among(self.s, table.c.external_id, chunk), table.c.redacted_at.is_not(None))))
        return found

    def save_many(self, shop_id: int, customers: list[m.CustomerRecord]) -> None:
        """Insert or update in bulk. Never an erasure: that goes through save(), one customer at a time."""
        assert not any(c.redacted for c in customers), "erase a customer with save(), not save_many()"
        if not customers:
            return
        customers = sorted(customers, key=lambda c: c.external_id)
        ids = _known_ids(self.s, t.Customer, shop_id, [c.external_id for c in customers], self._ids)
        values = [_customer_values(shop_id, c) for c in customers]
        fresh = [v for v in values if v["external_id"] not in ids]
        bulk.insert_rows(self.s, _table(t.Customer), fresh)
        for v in fresh:  # their ids are the database's now: a later lookup asks for them
            self._ids.pop((shop_id, v["external_id"]), None)
        known = [{"_id": ids[v["external_id"]], **{k: x for k, x in v.items() if k != "redacted_at"}}
                 for v in values if v["external_id"] in ids]
        if known:
            table = _table(t.Customer)
            self.s.execute(update(table).where(table.c.id == bindparam("_id")), known)

    def _record(self, row: Any) -> m.CustomerRecord:
        return m.CustomerRecord(
            external_id=row.external_id, updated_at=row.external_updated_at, email=row.email, phone=row.phone,
            first_name=row.first_name, last_name=row.last_name, locale=row.locale,
            consent=m.Consent(row.accepts_email_marketing, row.accepts_sms_marketing, row.consent_updated_at),
            preferred_channel=row.preferred_channel, redacted=row.redacted_at is not None,
            created_at=row.external_created_at,
        )

    def save(self, shop_id: int, c: m.CustomerRecord) -> None:
        row = self._row(shop_id, c.external_id)
        if row is None:
            row = t.Customer(shop_id=shop_id, external_id=c.external_id)
            self.s.add(row)
        row.email, row.phone, row.first_name, row.last_name, row.locale = c.email, c.phone, c.first_name, c.last_name, c.locale
        row.accepts_email_marketing, row.accepts_sms_marketing = c.consent.email_marketing, c.consent.sms_marketing
        row.consent_updated_at, row.preferred_channel = c.consent.updated_at, c.preferred_channel
        row.external_updated_at, row.external_created_at = c.updated_at, c.created_at
        if c.redacted and row.redacted_at is None:
            row.redacted_at = c.updated_at
        self.s.flush()


class Checkouts:
    def __init__(self, session: Session) -> None:
        self.s = session

    def _row(self, shop_id: int, external_id: str) -> t.Checkout | None:
        q = select(t.Checkout).where(t.Checkout.shop_id == shop_id, t.Checkout.external_id == external_id)
        return self.s.scalars(q.with_for_update()).one_or_none()

    def get(self, shop_id: int, external_id: str) -> m.CheckoutRecord | None:
        row = self._row(shop_id, external_id)
        if row is None:
            return None
        lines = tuple(m.OrderLine(x["external_id"], x["title"], int(x["quantity"]), Decimal(x["price"]),
                                  Decimal(x["total_discount"]), x["product_id"], x["variant_id"], x["sku"])
                      for x in row.lines["lines"])
        return m.CheckoutRecord(
            external_id=row.external_id, updated_at=row.external_updated_at, currency=row.currency, total=row.total,
            email=row.email, customer_id=row.customer_external_id, recovery_url=row.recovery_url,
            completed_at=row.completed_at, lines=lines,
        )

    def save(self, shop_id: int, c: m.CheckoutRecord) -> None:
        row = self._row(shop_id, c.external_id)
        if row is None:
            row = t.Checkout(shop_id=shop_id, external_id=c.external_id)
            self.s.add(row)
        row.customer_external_id, row.email, row.currency, row.total = c.customer_id, c.email, c.currency, c.total
        row.recovery_url, row.lines, row.completed_at = c.recovery_url, _lines_json(c.lines), c.completed_at
        row.external_updated_at = c.updated_at
        self.s.flush()

    def forget_customer(self, shop_id: int, customer_id: str) -> None:
        q = update(t.Checkout).where(t.Checkout.shop_id == shop_id, t.Checkout.customer_external_id == customer_id)
        self.s.execute(q.values(email=None, recovery_url=None))


class Events:
    def __init__(self, session: Session) -> None:
        self.s = session

    def record_many(self, events: list[DomainEvent]) -> list[DomainEvent]:
        """The keys already recorded are read in one query; the rest are written in one bulk insert."""
        unique = list({(e.shop_id, e.key): e for e in events}.values())
        if not unique:
            return []
        now = datetime.now(UTC)
        rows: list[dict[str, Any]] = [{"shop_id": e.shop_id, "key": e.key, "type": e.name, "payload": e.payload(),
                                       "occurred_at": e.occurred_at, "recorded_at": now} for e in unique]
        new: set[tuple[int, str]] = set()
        table = _table(t.EventRow)
        for shop_id in {r["shop_id"] for r in rows}:
            mine = [r for r in rows if r["shop_id"] == shop_id]
            there = bulk.taken(self.s, table, shop_id, "key", [r["key"] for r in mine])
            fresh = [r for r in mine if r["key"] not in there]
            # Inserted plainly: a key recorded meanwhile by another transaction is an IntegrityError, and the
            # caller's transaction is tried again (the inbox and the import both retry).
            bulk.insert_rows(self.s, table, fresh)
            new.update((shop_id, r["key"]) for r in fresh)
        return [e for e in unique if (e.shop_id, e.key) in new]

    def record(self, event: DomainEvent) -> bool:
        exists = select(t.EventRow.id).where(t.EventRow.shop_id == event.shop_id, t.EventRow.key == event.key)
        if self.s.scalar(exists) is not None:
            return False
        try:
            with self.s.begin_nested():
                self.s.add(t.EventRow(shop_id=event.shop_id, key=event.key, type=event.name,
                                      payload=event.payload(), occurred_at=event.occurred_at))
        except IntegrityError:
            return False
        return True


class Shops:
    def __init__(self, session: Session) -> None:
        self.s = session

    def get(self, shop_id: int) -> ShopState | None:
        row = self.s.get(t.Shop, shop_id)
        return None if row is None else ShopState(row.id, row.domain, row.installed, row.installed_at)

    def mark_uninstalled(self, shop_id: int, at: datetime) -> None:
        self.s.execute(update(t.Shop).where(t.Shop.id == shop_id).values(
            uninstalled_at=at, access_token=None, refresh_token=None, access_expires_at=None, refresh_expires_at=None))

    def delete_everything(self, shop_id: int) -> None:
        """shop/redact: every row of the shop, children before parents (the metadata's order, whatever the order
        of SHOP_TABLES), then its pending install nonces (keyed by domain: no shop_id), then the shop itself."""
        owned = {_table(model) for model in t.SHOP_TABLES}
        for table in reversed(t.Base.metadata.sorted_tables):
            if table in owned:
                self.s.execute(delete(table).where(table.c.shop_id == shop_id))
        shop = self.s.execute(select(t.Shop.platform, t.Shop.domain).where(t.Shop.id == shop_id)).first()
        if shop is not None:
            self.s.execute(delete(t.InstallNonce).where(t.InstallNonce.platform == shop.platform,
                                                        t.InstallNonce.shop_domain == shop.domain))
        self.s.execute(delete(t.Shop).where(t.Shop.id == shop_id))


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


class Exports:
    def __init__(self, session: Session) -> None:
        self.s = session

    def add(self, shop_id: int, request_id: str, customer_id: str, content: dict[str, Any]) -> None:
        q = select(t.DataExport.id).where(t.DataExport.shop_id == shop_id, t.DataExport.request_id == request_id)
        if self.s.scalar(q) is None:
            self.s.add(t.DataExport(shop_id=shop_id, request_id=request_id, customer_external_id=customer_id,
                                    content=_plain(content)))
