"""Importing orders from a CSV file: for a merchant moving from another platform, or trying Encore on their own
history. The good orders become the same records and the same domain events as webhooks (the core's
ImportHistory command); the bad ones are reported row by row, with their line numbers, and not imported.

The format: one row per order line, the common export shape (Shopify's order export reads as it is).
UTF-8 (a BOM is fine), comma-separated (a header with more semicolons or tabs than commas switches to
those), any line endings, a header row first. Headers match case-insensitively, with "_" or "-" as spaces,
and a few common aliases (the first of these present is used):

    column            aliases                                      required
    order id          Id, Order, Order number, Name                yes (at most 50 characters)
    order name        Name, Order number                           no (else the order id)
    order date        Created at, Date, Created                    yes (ISO 8601; no offset: the shop's zone)
    customer id       Customer number                              customer id and/or email
    email             Customer email, Billing email                customer id and/or email
    first name        Customer first name, Billing first name      no
    last name         Customer last name, Billing last name        no
    currency          Currency code                                yes (the shop's currency)
    line id           Line item id, Lineitem id                    no (else the row's place in its order)
    product id        Lineitem product id                          product id and/or sku
    variant id        Lineitem variant id                          no
    sku               Lineitem sku                                 product id and/or sku
    title             Lineitem name, Product title, Product name   yes
    quantity          Lineitem quantity, Qty                       yes (a positive whole number)
    unit price        Price, Lineitem price, Item price            yes
    line discount     Lineitem discount                            no
    shipping          Shipping amount, Total shipping              no
    tax               Taxes, Total tax, Tax amount                 no
    order discount    Discount amount, Discount, Total discount    no
    total             Order total, Total price                     no (else subtotal + shipping + tax)
    financial status  Payment status                               yes (paid, pending, authorized,
                                                                        partially_paid, partially_refunded,
                                                                        refunded, voided)
    paid at           Paid date, Payment date                      no
    cancelled at      Canceled at, Cancelled date                  no
    refunded amount   Refunded, Refund amount                      no
    refunded at       Refund date, Refunded date                   no (else the order's latest date)
    discount codes    Discount code, Coupon, Coupon code           no (comma-separated)

Order-level values (order date, customer, currency, amounts, status...) may be on every row of an order or
only on one (Shopify fills them on the first); two rows of one order that disagree make the order bad. An
order's rows need not be adjacent. Amounts are plain decimals ("1234.50"), never negative, with at most
the currency's decimals. A row with a bad value makes its whole order bad: every row of it is reported,
and none imported. A missing column is an error of the file: nothing is imported. At most MAX_BYTES and
MAX_ROWS rows; the import runs within the request (a full file takes some seconds).

Ids. The file's order and customer ids are namespaced, "csv:<id>" (refunds "csv:<order id>:refund"), so
they never collide with the platform's own ids: an order the store also sends by webhook stays apart.
When the merchant says the ids are the platform's (`platform_ids`; Shopify's export: its "Id" column),
they are kept as they are, and a webhook for the same order merges with the imported one by the normal
rules (newest wins by its time; a CSV order's time is its latest date, so the store's next word wins).
A row with an email but no customer id is a guest's order, as the platforms have them.

Applying: the good orders, a batch at a time (one transaction each), through ImportHistory; each order's
customer (from its latest order in the file) comes with it. Importing the same file again changes nothing.
A batch the database refuses is rolled back whole, and its orders reported as not imported.
"""

from __future__ import annotations

import csv
import io
import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import structlog
from babel.numbers import get_currency_precision
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError, OperationalError

from app.core import model as m
from app.core.commands import ImportHistory
from app.core.dates import zone
from app.core.events import OrderPlaced
from app.core.messagebus import handle
from app.db.models import Shop
from app.db.uow import SqlUnitOfWork
from app.imports import _batch_settings
from connectors.payload import codes

if TYPE_CHECKING:
    from app.bootstrap import Container

log = structlog.get_logger(__name__)

MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 100_000
BATCH = 500
MAX_ID = 50  # "csv:" + id (+ ":refund") within the 64 characters an external id may have
MAX_QUANTITY = 1_000_000
MAX_AMOUNT = Decimal("10000000000")  # the database keeps amounts below 10^10
PREFIX = "csv:"

# Each column's names (normalised), the first present in the header wins.
COLUMNS: dict[str, tuple[str, ...]] = {
    "order_id": ("order id", "id", "order", "order number", "name"),
    "order_name": ("order name", "name", "order number"),
    "order_date": ("order date", "created at", "date", "order created at", "created"),
    "customer_id": ("customer id", "customer number"),
    "email": ("email", "customer email", "billing email", "e mail"),
    "first_name": ("first name", "customer first name", "billing first name"),
    "last_name": ("last name", "customer last name", "billing last name"),
    "currency": ("currency", "currency code"),
    "line_id": ("line id", "line item id", "lineitem id"),
    "product_id": ("product id", "lineitem product id", "line item product id"),
    "variant_id": ("variant id", "lineitem variant id", "line item variant id"),
    "sku": ("sku", "lineitem sku", "line item sku"),
    "title": ("title", "lineitem name", "line item name", "product title", "product name", "item name"),
    "quantity": ("quantity", "lineitem quantity", "line item quantity", "qty"),
    "unit_price": ("unit price", "price", "lineitem price", "line item price", "item price"),
    "line_discount": ("line discount", "lineitem discount", "line item discount"),
    "shipping": ("shipping", "shipping amount", "total shipping"),
    "tax": ("tax", "taxes", "total tax", "tax amount"),
    "order_discount": ("order discount", "discount amount", "discount", "total discount"),
    "total": ("total", "order total", "total price"),
    "financial_status": ("financial status", "payment status"),
    "paid_at": ("paid at", "paid date", "payment date"),
    "cancelled_at": ("cancelled at", "canceled at", "cancelled date", "canceled date"),
    "refunded_amount": ("refunded amount", "refunded", "refund amount"),
    "refunded_at": ("refunded at", "refund date", "refunded date"),
    "discount_codes": ("discount codes", "discount code", "coupon", "coupon code"),
}
REQUIRED = ("order_id", "order_date", "currency", "title", "quantity", "unit_price", "financial_status")
EITHER = (("customer_id", "email"), ("product_id", "sku"))
ORDER_LEVEL = ("order_name", "order_date", "customer_id", "email", "first_name", "last_name", "currency", "shipping",
               "tax", "order_discount", "total", "financial_status", "paid_at", "cancelled_at", "refunded_amount",
               "refunded_at", "discount_codes")
LABEL = {k: v[0] for k, v in COLUMNS.items()}
LENGTHS = {"order_name": 64, "customer_id": MAX_ID, "email": 320, "first_name": 255, "last_name": 255,
           "line_id": 64, "product_id": 64, "variant_id": 64, "sku": 255, "title": 255}
PAYMENT = {"pending": m.PaymentStatus.PENDING, "authorized": m.PaymentStatus.AUTHORIZED,
           "partially_paid": m.PaymentStatus.AUTHORIZED, "paid": m.PaymentStatus.PAID,
           "partially_refunded": m.PaymentStatus.PARTIALLY_REFUNDED, "refunded": m.PaymentStatus.REFUNDED,
           "voided": m.PaymentStatus.VOIDED}
AMOUNT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
WHOLE = re.compile(r"\+?\d+")


@dataclass(frozen=True)
class BadRow:
    line: int  # the file's physical line where the row starts, the header being line 1
    order: str | None  # the order id as the file gives it
    problems: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"line": self.line, "order": self.order, "problems": list(self.problems)}


@dataclass(frozen=True)
class CsvOrder:
    order: m.OrderRecord
    customer: m.CustomerRecord | None
    source: str  # the order id as the file gives it
    lines: tuple[int, ...]  # the physical lines of its rows


@dataclass(frozen=True)
class Parsed:
    orders: tuple[CsvOrder, ...] = ()
    bad_rows: tuple[BadRow, ...] = ()
    file_errors: tuple[str, ...] = ()


@dataclass
class Report:
    imported_orders: int = 0
    imported_customers: int = 0
    new_orders: int = 0  # of the imported ones, those Encore did not know yet
    bad_rows: list[BadRow] = field(default_factory=list)
    file_errors: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"imported_orders": self.imported_orders, "imported_customers": self.imported_customers,
                "new_orders": self.new_orders, "bad_rows": [b.as_json() for b in self.bad_rows],
                "file_errors": list(self.file_errors)}


# --- reading ---------------------------------------------------------------------------------------------------


def _norm(header: str) -> str:
    return " ".join(header.strip().strip('"').lower().replace("_", " ").replace("-", " ").split())


def _columns(header: list[str]) -> tuple[dict[str, int], list[str]]:
    """Each known column's index, and the file's errors (a required column missing, a column twice)."""
    found: dict[str, list[int]] = {}
    for index, name in enumerate(header):
        found.setdefault(_norm(name), []).append(index)
    where: dict[str, int] = {}
    errors: list[str] = []
    for key, names in COLUMNS.items():
        chosen = next((n for n in names if n in found), None)
        if chosen is None:
            continue
        if len(found[chosen]) > 1 and found[chosen][0] not in where.values():
            errors.append(f"the column '{chosen}' appears {len(found[chosen])} times (columns "
                          + ", ".join(str(i + 1) for i in found[chosen]) + ")")
        where[key] = found[chosen][0]
    for key in REQUIRED:
        if key not in where:
            errors.append(f"missing column: {LABEL[key]} (or one of: {', '.join(COLUMNS[key][1:])})")
    for a, b in EITHER:
        if a not in where and b not in where:
            errors.append(f"missing column: {LABEL[a]} or {LABEL[b]} (at least one of them)")
    return where, errors


def _rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """(the physical line a row starts on, its cells), blank rows left out."""
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=lambda d: (first.count(d), d == ","))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # a quote left open, or text right after a closing quote
            raise csv.Error(f"line {start}: {exc} (a quote is not closed or not doubled)") from exc
        if any(cell.strip() for cell in row):
            yield start, row
        start = reader.line_num + 1


def _money(value: str, what: str, precision: int, currency: str) -> tuple[Decimal | None, str | None]:
    if not AMOUNT.fullmatch(value):
        return None, f"bad {what} '{value}': not an amount (digits, a '.' before the decimals)"
    try:
        amount = Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern lets only plain decimals through
        return None, f"bad {what} '{value}': not an amount"
    if amount < 0:
        return None, f"bad {what} '{value}': negative"
    step = Decimal(1).scaleb(-precision)
    if amount != amount.quantize(step):
        return None, f"bad {what} '{value}': more than {precision} decimals for {currency}"
    if amount >= MAX_AMOUNT:
        return None, f"bad {what} '{value}': too large"
    return amount.quantize(step), None


def _when(value: str, what: str, tz: str, now: datetime) -> tuple[datetime | None, str | None]:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None, f"bad {what} '{value}': not a valid ISO 8601 date or time (like 2024-03-01T14:30:00+09:00)"
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone(tz))
    try:
        at = parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None, f"bad {what} '{value}': out of range"
    if at > now + timedelta(days=1):
        return None, f"bad {what} '{value}': in the future"
    return at, None


@dataclass
class _Row:
    line: int
    order: str | None
    values: dict[str, Any]  # order-level values as parsed (None: not given)
    raw: dict[str, str]
    line_values: dict[str, Any]
    problems: list[str]


def _row(line: int, cells: list[str], where: dict[str, int], width: int, currency: str, precision: int, tz: str,
         now: datetime) -> _Row:
    raw = {k: (cells[i].strip() if i < len(cells) else "") for k, i in where.items()}
    problems: list[str] = []
    if len(cells) > width and any(c.strip() for c in cells[width:]):
        problems.append(f"{len(cells)} values, the header has {width} columns")
    order = raw.get("order_id") or None
    if order is None:
        problems.append("no order id")
    elif len(order) > MAX_ID:
        problems.append(f"order id longer than {MAX_ID} characters")
    for key, limit in LENGTHS.items():
        if len(raw.get(key, "")) > limit:
            problems.append(f"{LABEL[key]} longer than {limit} characters")
    values: dict[str, Any] = {}
    for key in ORDER_LEVEL:
        value = raw.get(key, "")
        if not value:
            values[key] = None
        elif key in ("order_date", "paid_at", "cancelled_at", "refunded_at"):
            values[key], problem = _when(value, LABEL[key], tz, now)
            problems += [problem] if problem else []
        elif key in ("shipping", "tax", "order_discount", "total", "refunded_amount"):
            values[key], problem = _money(value, LABEL[key], precision, currency)
            problems += [problem] if problem else []
        elif key == "currency":
            values[key] = value.upper()
            if value.upper() != currency:
                problems.append(f"currency {value} is not the shop's ({currency})")
        elif key == "financial_status":
            status = PAYMENT.get(value.lower().replace(" ", "_").replace("-", "_"))
            values[key] = status
            if status is None:
                problems.append(f"unknown financial status '{value}' (one of: {', '.join(PAYMENT)})")
        elif key == "email":
            values[key] = value
            if "@" not in value or any(ch.isspace() for ch in value):
                problems.append(f"bad email '{value}'")
        elif key == "discount_codes":
            values[key] = codes(value.split(","))
        else:
            values[key] = value
    lv: dict[str, Any] = {k: raw.get(k) or None for k in ("line_id", "product_id", "variant_id", "sku", "title")}
    if not lv["title"]:
        problems.append("no title")
    if not lv["product_id"] and not lv["sku"]:
        problems.append("no product id or SKU")
    quantity = raw.get("quantity", "")
    if not WHOLE.fullmatch(quantity) or not 0 < int(quantity) <= MAX_QUANTITY:
        problems.append(f"bad quantity '{quantity}': not a positive whole number" if quantity else "no quantity")
    else:
        lv["quantity"] = int(quantity)
    price = raw.get("unit_price", "")
    if not price:
        problems.append("no unit price")
    else:
        lv["price"], problem = _money(price, "unit price", precision, currency)
        problems += [problem] if problem else []
    lv["discount"] = Decimal(0)
    if raw.get("line_discount"):
        discount, problem = _money(raw["line_discount"], "line discount", precision, currency)
        problems += [problem] if problem else []
        lv["discount"] = discount
    if lv["discount"] is not None and lv.get("price") is not None and "quantity" in lv \
            and lv["discount"] > lv["price"] * lv["quantity"]:
        problems.append("the line discount is more than the line's price × quantity")
    return _Row(line, order, values, raw, lv, problems)


def _render(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def _merged(rows: list[_Row]) -> tuple[dict[str, Any], dict[int, list[str]]]:
    """The order's values, from whichever rows give them, and each row's disagreement with an earlier one."""
    values: dict[str, Any] = {}
    given_at: dict[str, _Row] = {}
    problems: dict[int, list[str]] = {}
    for row in rows:
        for key in ORDER_LEVEL:
            value = row.values.get(key)
            if value is None:
                continue
            if key not in values:
                values[key], given_at[key] = value, row
            elif values[key] != value:
                first = given_at[key]
                problems.setdefault(row.line, []).append(
                    f"{LABEL[key]} '{row.raw.get(key)}' differs from line {first.line} of the same order "
                    f"('{first.raw.get(key) or _render(values[key])}')")
    return values, problems


def _ids(value: str, platform_ids: bool) -> str:
    return value if platform_ids else PREFIX + value


def _build(source: str, rows: list[_Row], values: dict[str, Any], precision: int, platform_ids: bool
           ) -> tuple[CsvOrder | None, dict[int, list[str]]]:
    first = rows[0].line
    problems: list[str] = []
    for key in ("order_date", "currency", "financial_status"):
        if values.get(key) is None:
            problems.append(f"no {LABEL[key]} on any line of the order")
    if values.get("customer_id") is None and values.get("email") is None:
        problems.append("no customer id or email on any line of the order")
    lines: list[m.OrderLine] = []
    taken: dict[str, int] = {}
    per_row: dict[int, list[str]] = {}
    for n, row in enumerate(rows, start=1):
        lv = row.line_values
        line_id = lv["line_id"] or str(n)
        if line_id in taken:
            per_row.setdefault(row.line, []).append(f"line id '{line_id}' is also on line {taken[line_id]} of this order")
            continue
        taken[line_id] = row.line
        lines.append(m.OrderLine(external_id=line_id, title=lv["title"], quantity=lv["quantity"], price=lv["price"],
                                 total_discount=lv["discount"], product_id=lv["product_id"], variant_id=lv["variant_id"],
                                 sku=lv["sku"]))
    if problems or per_row:
        if problems:
            per_row.setdefault(first, [])[:0] = problems
        return None, per_row
    zero = Decimal(0)
    line_discounts = sum((x.total_discount for x in lines), zero)
    items = sum((x.price * x.quantity for x in lines), zero) - line_discounts
    order_discount = values.get("order_discount") or zero
    shipping, tax = values.get("shipping") or zero, values.get("tax") or zero
    subtotal = items - order_discount
    if subtotal < 0:
        return None, {first: [f"the order discount {order_discount} is more than the lines' {items}"]}
    total = values["total"] if values.get("total") is not None else subtotal + shipping + tax
    refunded: Decimal = values.get("refunded_amount") or zero
    if refunded > total:
        return None, {first: [f"the refunded amount {refunded} is more than the order's total {total}"]}
    created: datetime = values["order_date"]
    dates = [d for d in (created, values.get("paid_at"), values.get("cancelled_at"), values.get("refunded_at")) if d]
    updated = max(dates)
    order_id = _ids(source, platform_ids)
    refunds = (m.Refund(external_id=f"{PREFIX}{source}:refund", created_at=values.get("refunded_at") or updated,
                        amount=refunded),) if refunded > 0 else ()
    customer_id = _ids(values["customer_id"], platform_ids) if values.get("customer_id") else None
    order = m.OrderRecord(
        external_id=order_id, updated_at=updated, created_at=created, currency=values["currency"], total=total,
        subtotal=subtotal, name=values.get("order_name") or source, customer_id=customer_id, email=values.get("email"),
        total_tax=tax, total_shipping=shipping, total_discounts=line_discounts + order_discount,
        payment=values["financial_status"], processed_at=values.get("paid_at"), cancelled_at=values.get("cancelled_at"),
        lines=tuple(sorted(lines, key=lambda x: x.external_id)), discount_codes=values.get("discount_codes") or (),
        refunds=refunds)
    customer = None if customer_id is None else m.CustomerRecord(
        external_id=customer_id, updated_at=created, email=values.get("email"), first_name=values.get("first_name"),
        last_name=values.get("last_name"))
    return CsvOrder(order, customer, source, tuple(r.line for r in rows)), {}


def parse(data: bytes, *, currency: str, timezone: str, platform_ids: bool = False,
          now: datetime | None = None) -> Parsed:
    """The file's good orders (each with its buyer as the file has it), its bad rows, or its file errors."""
    now = now or datetime.now(UTC)
    currency = currency.upper()
    if len(data) > MAX_BYTES:
        return Parsed(file_errors=(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB: split it into smaller "
                                   "files and import each",))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return Parsed(file_errors=(f"the file is not UTF-8 text (line {line}): save it as \"CSV UTF-8\"",))
    try:
        rows = list(_rows(text))
    except csv.Error as exc:
        return Parsed(file_errors=(f"the file is not readable as CSV, {exc}",))
    if not rows:
        return Parsed(file_errors=("the file is empty: a header row and a row per order line are expected",))
    if len(rows) - 1 > MAX_ROWS:
        return Parsed(file_errors=(f"the file has more than {MAX_ROWS:,} rows: split it into smaller files and "
                                   "import each",))
    (_, header), body = rows[0], rows[1:]
    where, errors = _columns(header)
    if errors:
        return Parsed(file_errors=tuple(errors))
    try:
        precision = int(get_currency_precision(currency))
    except Exception:  # an unknown code: the common two decimals
        precision = 2
    parsed = [_row(line, cells, where, len(header), currency, precision, timezone, now) for line, cells in body]
    groups: dict[str, list[_Row]] = {}
    bad: list[BadRow] = []
    for row in parsed:
        if row.order is None:
            bad.append(BadRow(row.line, None, tuple(row.problems)))
        else:
            groups.setdefault(row.order, []).append(row)
    orders: list[CsvOrder] = []
    for source, members in groups.items():
        values, problems = _merged(members)
        for row in members:
            problems.setdefault(row.line, [])[:0] = row.problems
        made: CsvOrder | None = None
        if not any(problems.values()):
            made, problems = _build(source, members, values, precision, platform_ids)
        if made is not None:
            orders.append(made)
            continue
        wrong = [r.line for r in members if problems.get(r.line)]
        for row in members:
            said = problems.get(row.line) or [
                "not imported: " + ("line " if len(wrong) == 1 else "lines ") + ", ".join(map(str, wrong))
                + " of this order " + ("is" if len(wrong) == 1 else "are") + " bad"]
            bad.append(BadRow(row.line, source, tuple(said)))
    bad.sort(key=lambda b: b.line)
    return Parsed(orders=tuple(orders), bad_rows=tuple(bad))


# --- applying --------------------------------------------------------------------------------------------------


def _latest_customers(orders: tuple[CsvOrder, ...]) -> dict[str, m.CustomerRecord]:
    """Each customer as their latest order in the file has them (the file's order breaks ties)."""
    latest: dict[str, m.CustomerRecord] = {}
    for o in orders:
        if o.customer is not None:
            seen = latest.get(o.customer.external_id)
            if seen is None or o.customer.updated_at >= seen.updated_at:
                latest[o.customer.external_id] = o.customer
    return latest


def _apply(c: Container, shop_id: int, batch: tuple[CsvOrder, ...], people: dict[str, m.CustomerRecord]) -> int:
    """One batch in one transaction; a lost race with a webhook inserting the same row is retried (the next try
    finds it and merges). Returns how many of its orders were new."""
    wanted = sorted({o.customer.external_id for o in batch if o.customer is not None})
    command = ImportHistory(shop_id, tuple(people[k] for k in wanted), tuple((o.order, None) for o in batch))
    for attempt in range(1, 4):
        try:
            new = handle(command, SqlUnitOfWork(c.sessions, on_begin=_batch_settings), c.clock)
            return sum(isinstance(e, OrderPlaced) for e in new)
        except (IntegrityError, OperationalError):
            if attempt == 3:
                raise
            time.sleep(0.05 * attempt * (1 + random.random()))
    raise AssertionError("unreachable")


def import_file(c: Container, shop_id: int, data: bytes, *, platform_ids: bool = False, batch: int = BATCH,
                now: datetime | None = None) -> Report:
    """Parse the file against the shop's currency and time zone, and apply its good orders."""
    with c.sessions() as s:
        shop = s.get(Shop, shop_id)
        if shop is None:
            raise LookupError(f"shop {shop_id} is gone")
        currency, tz = shop.currency, shop.timezone
    parsed = parse(data, currency=currency, timezone=tz, platform_ids=platform_ids, now=now)
    report = Report(bad_rows=list(parsed.bad_rows), file_errors=list(parsed.file_errors))
    if parsed.file_errors:
        return report
    people = _latest_customers(parsed.orders)
    customers: set[str] = set()
    for start in range(0, len(parsed.orders), batch):
        group = parsed.orders[start:start + batch]
        try:
            report.new_orders += _apply(c, shop_id, group, people)
        except Exception as exc:
            log.exception("csv_import_batch_failed", shop_id=shop_id, orders=len(group))
            reason = f"not imported: the database refused this batch of orders ({type(exc).__name__}); import " \
                     "the file again"
            report.bad_rows += [BadRow(line, o.source, (reason,)) for o in group for line in o.lines]
            continue
        report.imported_orders += len(group)
        customers.update(o.customer.external_id for o in group if o.customer is not None)
    report.imported_customers = len(customers)
    report.bad_rows.sort(key=lambda b: b.line)
    if report.new_orders:  # the analytics are refreshed at the next sweep, with these orders
        with c.sessions() as s, s.begin():
            s.execute(update(Shop).where(Shop.id == shop_id).values(analytics_at=None))
    log.info("csv_import_done", shop_id=shop_id, orders=report.imported_orders, new=report.new_orders,
             customers=report.imported_customers, bad_rows=len(report.bad_rows))
    return report
