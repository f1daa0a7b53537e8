"""Reading a CSV file of orders (app/csv_import.py): header aliases, every kind of bad row with its physical
line number, whole orders refused when one of their rows is bad, multi-line and non-adjacent orders, a BOM,
CRLF, quoted line breaks, file-level errors, money per the currency's decimals, dates in the shop's zone, ids
namespaced unless they are the platform's; and the admin page's new texts in every language."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from app import csv_import
from app.core.model import PaymentStatus
from app.csv_import import BadRow, Parsed, parse
from app.i18n import LOCALES, ROOT

NOW = datetime(2024, 6, 1, tzinfo=UTC)
HEADER = "order id,order date,customer id,email,currency,product id,title,quantity,unit price,financial status"
TEMPLATES = Path(__file__).resolve().parents[2] / "app" / "templates"


def read(text: str, *, currency: str = "USD", tz: str = "UTC", platform_ids: bool = False,
         encoding: str = "utf-8") -> Parsed:
    return parse(text.encode(encoding), currency=currency, timezone=tz, platform_ids=platform_ids, now=NOW)


def rows(*lines: str, header: str = HEADER) -> str:
    return "\n".join([header, *lines]) + "\n"


def good(order: str = "1", *, date: str = "2024-01-05T10:00:00Z", customer: str = "c1", price: str = "10.00",
         quantity: str = "1", product: str = "p1", currency: str = "USD", status: str = "paid",
         email: str = "a@example.com", title: str = "Tea") -> str:
    return ",".join([order, date, customer, email, currency, product, title, quantity, price, status])


def problems(parsed: Parsed) -> dict[int, tuple[str, ...]]:
    return {b.line: b.problems for b in parsed.bad_rows}


# --- the good path ---------------------------------------------------------------------------------------------


def test_a_multi_line_order_with_non_adjacent_rows_is_one_order_in_file_order() -> None:
    parsed = read(rows(good("1", product="p1", price="10.00", quantity="2"), good("2", product="p9"),
                       good("1", product="p2", price="3.50")))
    assert parsed.bad_rows == () and parsed.file_errors == ()
    assert [o.source for o in parsed.orders] == ["1", "2"]
    first = parsed.orders[0]
    assert first.lines == (2, 4)
    assert [(x.external_id, x.product_id, x.quantity, x.price) for x in first.order.lines] == [
        ("1", "p1", 2, Decimal("10.00")), ("2", "p2", 1, Decimal("3.50"))]
    assert (first.order.subtotal, first.order.total, first.order.payment) == (
        Decimal("23.50"), Decimal("23.50"), PaymentStatus.PAID)
    assert first.order.external_id == "csv:1" and first.order.customer_id == "csv:c1" and first.order.name == "1"
    assert first.customer is not None and (first.customer.external_id, first.customer.email) == ("csv:c1", "a@example.com")


def test_shopify_export_headers_with_order_fields_on_the_first_row_only() -> None:
    header = ("Name,Email,Financial Status,Paid at,Currency,Subtotal,Shipping,Taxes,Total,Discount Code,"
              "Discount Amount,Created at,Lineitem quantity,Lineitem name,Lineitem price,Lineitem sku,"
              "Lineitem discount,Cancelled at,Refunded Amount,Id")
    text = rows(
        "#1001,Mina@Example.com,partially_refunded,2024-01-05 10:05:00 -0500,USD,45.00,5.00,3.00,53.00,WELCOME10,"
        "5.00,2024-01-05 10:00:00 -0500,2,Green tea,20.00,TEA-1,0.00,,10.00,5501",
        "#1001,Mina@Example.com,,,,,,,,,,2024-01-05 10:00:00 -0500,1,Tea cup,10.00,CUP-1,,,,5501",
        header=header)
    parsed = read(text, platform_ids=True)
    assert parsed.bad_rows == () and parsed.file_errors == ()
    (only,) = parsed.orders
    o = only.order
    assert (o.external_id, o.name, o.email, o.customer_id) == ("5501", "#1001", "Mina@Example.com", None)  # a guest
    assert (o.total, o.subtotal, o.total_shipping, o.total_tax, o.total_discounts) == (
        Decimal("53.00"), Decimal("45.00"), Decimal("5.00"), Decimal("3.00"), Decimal("5.00"))
    assert o.payment is PaymentStatus.PARTIALLY_REFUNDED and o.discount_codes == ("welcome10",)
    assert o.created_at == datetime(2024, 1, 5, 15, 0, tzinfo=UTC)
    assert o.processed_at == datetime(2024, 1, 5, 15, 5, tzinfo=UTC) and o.updated_at == o.processed_at
    assert [(r.external_id, r.amount) for r in o.refunds] == [("csv:5501:refund", Decimal("10.00"))]
    assert [(x.sku, x.title, x.quantity) for x in o.lines] == [("TEA-1", "Green tea", 2), ("CUP-1", "Tea cup", 1)]


@pytest.mark.parametrize("header", [
    "ORDER_ID,Order-Date,Customer_ID,E-mail,Currency Code,SKU,Product Name,Qty,Price,Payment Status",
    "  Order Number , date ,customer number,customer email,currency,lineitem sku,item name,line item quantity,"
    "item price,financial status",
])
def test_headers_match_in_any_case_with_spaces_dashes_or_underscores_and_aliases(header: str) -> None:
    parsed = read(rows("7,2024-02-01T00:00:00Z,c7,x@example.com,usd,S-1,Tea,3,2.00,Paid", header=header))
    assert parsed.bad_rows == () and parsed.file_errors == ()
    (only,) = parsed.orders
    assert (only.order.external_id, only.order.total, only.order.lines[0].sku) == ("csv:7", Decimal("6.00"), "S-1")


def test_a_bom_crlf_and_a_quoted_line_break_keep_the_physical_line_numbers() -> None:
    text = "\r\n".join([HEADER, good("1", title='"Gift box\r\nlarge"'), good("2", quantity="x"), ""])
    parsed = parse(b"\xef\xbb\xbf" + text.encode(), currency="USD", timezone="UTC", now=NOW)
    assert parsed.file_errors == ()
    assert [o.order.lines[0].title for o in parsed.orders] == ["Gift box\r\nlarge"]
    assert problems(parsed) == {4: ("bad quantity 'x': not a positive whole number",)}  # the title spans 2 and 3


def test_blank_lines_are_skipped_but_counted() -> None:
    parsed = read(HEADER + "\n\n" + good("1") + "\n,,,,,,,,,\n" + good("2", price="-1") + "\n")
    assert [o.source for o in parsed.orders] == ["1"]
    assert problems(parsed) == {5: ("bad unit price '-1': negative",)}


def test_a_semicolon_separated_file_is_read() -> None:
    parsed = read(rows(good("1", price="4.50").replace(",", ";"), header=HEADER.replace(",", ";")))
    assert parsed.bad_rows == () and parsed.orders[0].order.total == Decimal("4.50")


def test_dates_without_an_offset_are_the_shops_and_a_date_alone_is_its_midnight() -> None:
    parsed = read(rows(good("1", date="2024-07-01T09:00:00"), good("2", date="2024-01-15")), tz="Asia/Seoul",
                  currency="USD")
    # 2024-07-01 would be in the future at NOW (June 1st): the first is refused.
    assert problems(parsed) == {2: ("bad order date '2024-07-01T09:00:00': in the future",)}
    assert parsed.orders[0].order.created_at == datetime(2024, 1, 14, 15, 0, tzinfo=UTC)
    parsed = read(rows(good("1", date="2024-03-01T09:00:00")), tz="America/New_York")
    assert parsed.orders[0].order.created_at == datetime(2024, 3, 1, 14, 0, tzinfo=UTC)


def test_ids_are_namespaced_unless_they_are_the_platforms() -> None:
    ours, theirs = read(rows(good("1001"))), read(rows(good("1001")), platform_ids=True)
    assert (ours.orders[0].order.external_id, ours.orders[0].order.customer_id) == ("csv:1001", "csv:c1")
    assert (theirs.orders[0].order.external_id, theirs.orders[0].order.customer_id) == ("1001", "c1")


def test_money_follows_the_currencys_decimals() -> None:
    parsed = read(rows(good("1", price="1500", currency="JPY"), good("2", price="1500.5", currency="JPY"),
                       good("3", price="1500.00", currency="JPY")), currency="JPY")
    assert [o.source for o in parsed.orders] == ["1", "3"]
    assert parsed.orders[1].order.total == Decimal("1500")
    assert problems(parsed) == {3: ("bad unit price '1500.5': more than 0 decimals for JPY",)}


def test_an_order_total_given_is_kept_and_otherwise_computed() -> None:
    header = HEADER + ",shipping,tax,order discount,line discount,total"
    parsed = read(rows(good("1", price="10.00", quantity="3") + ",4.00,1.00,2.00,1.50,",
                       good("2", price="10.00") + ",,,,,11.00", header=header))
    first, second = (o.order for o in parsed.orders)
    assert (first.subtotal, first.total_discounts, first.total) == (Decimal("26.50"), Decimal("3.50"), Decimal("31.50"))
    assert second.total == Decimal("11.00")  # prices with tax included: the file's total is the order's


# --- bad rows, each with its line and every problem ------------------------------------------------------------


@pytest.mark.parametrize(("row", "problem"), [
    (good(date="2024-02-30"), "bad order date '2024-02-30': not a valid ISO 8601 date or time"),
    (good(date="05/01/2024"), "bad order date '05/01/2024': not a valid ISO 8601 date or time"),
    (good(date="2999-01-01"), "bad order date '2999-01-01': in the future"),
    (good(price="abc"), "bad unit price 'abc': not an amount"),
    (good(price="NaN"), "bad unit price 'NaN': not an amount"),
    (good(price="inf"), "bad unit price 'inf': not an amount"),
    (good(price="1e3"), "bad unit price '1e3': not an amount"),
    (good(price='"1,000.00"'), "bad unit price '1,000.00': not an amount"),
    (good(price="-5.00"), "bad unit price '-5.00': negative"),
    (good(price="9.999"), "bad unit price '9.999': more than 2 decimals for USD"),
    (good(price="99999999999"), "bad unit price '99999999999': too large"),
    (good(price=""), "no unit price"),
    (good(quantity="0"), "bad quantity '0': not a positive whole number"),
    (good(quantity="-2"), "bad quantity '-2': not a positive whole number"),
    (good(quantity="1.5"), "bad quantity '1.5': not a positive whole number"),
    (good(quantity=""), "no quantity"),
    (good(title=""), "no title"),
    (good(product=""), "no product id or SKU"),
    (good(order=""), "no order id"),
    (good(order="x" * 51), "order id longer than 50 characters"),
    (good(currency="EUR"), "currency EUR is not the shop's (USD)"),
    (good(status="shipped"), "unknown financial status 'shipped' (one of: pending, authorized, partially_paid, paid, "
                             "partially_refunded, refunded, voided)"),
    (good(email="not-an-email"), "bad email 'not-an-email'"),
    (good(customer="", email=""), "no customer id or email on any line of the order"),
    (good(status=""), "no financial status on any line of the order"),
    (good() + ",surplus", "11 values, the header has 10 columns"),
])
def test_each_kind_of_bad_row_is_reported_at_its_line(row: str, problem: str) -> None:
    parsed = read(rows(good("ok-1"), row, good("ok-2")))
    assert [o.source for o in parsed.orders] == ["ok-1", "ok-2"]
    (bad,) = parsed.bad_rows
    assert bad.line == 3 and bad.problems[0].startswith(problem), bad.problems


def test_a_row_lists_every_one_of_its_problems() -> None:
    parsed = read(rows(good("1", date="yesterday", price="x", quantity="0", product="")))
    assert problems(parsed) == {2: (
        "bad order date 'yesterday': not a valid ISO 8601 date or time (like 2024-03-01T14:30:00+09:00)",
        "no product id or SKU", "bad quantity '0': not a positive whole number",
        "bad unit price 'x': not an amount (digits, a '.' before the decimals)")}


def test_one_bad_row_makes_its_whole_order_bad_and_every_row_of_it_is_listed() -> None:
    parsed = read(rows(good("1"), good("2"), good("1", quantity="many"), good("3"), good("1", product="p3")))
    assert [o.source for o in parsed.orders] == ["2", "3"]
    assert parsed.bad_rows == (
        BadRow(2, "1", ("not imported: line 4 of this order is bad",)),
        BadRow(4, "1", ("bad quantity 'many': not a positive whole number",)),
        BadRow(6, "1", ("not imported: line 4 of this order is bad",)),
    )


def test_rows_of_one_order_that_disagree_on_an_order_field_make_it_bad() -> None:
    parsed = read(rows(good("1", date="2024-01-05T10:00:00Z"), good("1", date="2024-01-06T10:00:00Z", product="p2"),
                       good("1", customer="c2", product="p3"), good("1", date="2024-01-05T11:00:00+01:00", product="p4")))
    assert parsed.orders == ()
    assert problems(parsed) == {
        2: ("not imported: lines 3, 4 of this order are bad",),
        3: ("order date '2024-01-06T10:00:00Z' differs from line 2 of the same order ('2024-01-05T10:00:00Z')",),
        4: ("customer id 'c2' differs from line 2 of the same order ('c1')",),
        5: ("not imported: lines 3, 4 of this order are bad",),  # the same moment, written another way: agrees
    }


def test_order_level_checks_land_on_the_orders_first_row() -> None:
    header = HEADER + ",line id,refunded amount,order discount"
    parsed = read(rows(good("1", price="5.00") + ",A,9.00,", good("2") + ",A,,", good("2", product="p2") + ",A,,",
                       good("3", price="5.00") + ",,,6.00", header=header))
    assert parsed.orders == ()
    assert problems(parsed) == {
        2: ("the refunded amount 9.00 is more than the order's total 5.00",),
        3: ("not imported: line 4 of this order is bad",),
        4: ("line id 'A' is also on line 3 of this order",),
        5: ("the order discount 6.00 is more than the lines' 5.00",),
    }


# --- the file itself -------------------------------------------------------------------------------------------


def test_a_missing_column_is_a_file_error_and_nothing_is_read() -> None:
    header = "order id,order date,title,quantity,unit price,financial status"
    parsed = read(rows("1,2024-01-01,Tea,1,1.00,paid", header=header))
    assert parsed.orders == () and parsed.bad_rows == ()
    assert parsed.file_errors == (
        "missing column: currency (or one of: currency code)",
        "missing column: customer id or email (at least one of them)",
        "missing column: product id or sku (at least one of them)",
    )


def test_a_column_given_twice_is_a_file_error() -> None:
    parsed = read(rows(good("1") + ",2", header=HEADER + ",Quantity"))
    assert parsed.orders == () and parsed.file_errors == ("the column 'quantity' appears 2 times (columns 8, 11)",)


@pytest.mark.parametrize(("data", "error"), [
    (b"", "the file is empty"),
    (b"\n\n", "the file is empty"),
    (HEADER.encode() + b"\n1,2024-01-01,c,a@b.c,USD,p,Caf\xe9", "the file is not UTF-8 text (line 2)"),
    (HEADER.encode() + b'\n1,2024-01-01\n2,"unclosed\n3', "the file is not readable as CSV, line 3: unexpected end"),
    (HEADER.encode() + b'\n1,"2024"-01-01', "the file is not readable as CSV, line 2: ',' expected after '\"'"),
])
def test_unreadable_files_are_file_errors(data: bytes, error: str) -> None:
    parsed = parse(data, currency="USD", timezone="UTC", now=NOW)
    assert parsed.orders == () and parsed.bad_rows == () and parsed.file_errors[0].startswith(error)


def test_the_size_limits_are_file_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    text = rows(good("1"), good("2"), good("3"))
    monkeypatch.setattr(csv_import, "MAX_ROWS", 2)
    assert read(text).file_errors == ("the file has more than 2 rows: split it into smaller files and import each",)
    monkeypatch.setattr(csv_import, "MAX_ROWS", 3)
    assert len(read(text).orders) == 3
    monkeypatch.setattr(csv_import, "MAX_BYTES", len(text.encode()) - 1)
    assert read(text).file_errors[0].startswith("the file is larger than")


def test_each_customer_comes_as_their_latest_order_has_them() -> None:
    header = HEADER + ",first name"
    parsed = read(rows(good("2", date="2024-03-01T00:00:00Z", email="new@example.com") + ",Mina",
                       good("1", date="2024-01-01T00:00:00Z", email="old@example.com") + ",Min", header=header))
    latest = csv_import._latest_customers(parsed.orders)
    assert list(latest) == ["csv:c1"]
    assert (latest["csv:c1"].email, latest["csv:c1"].first_name) == ("new@example.com", "Mina")
    assert latest["csv:c1"].updated_at == datetime(2024, 3, 1, tzinfo=UTC)


def test_the_sample_file_parses_to_its_documented_outcome() -> None:
    sample = (Path(__file__).resolve().parents[1] / "data" / "orders_sample.csv").read_bytes()
    parsed = parse(sample, currency="USD", timezone="America/New_York", now=NOW)
    assert [o.source for o in parsed.orders] == ["1001", "1002", "1004", "1007", "1009"]
    assert [(b.line, b.order) for b in parsed.bad_rows] == [
        (5, "1003"), (6, "1003"), (8, "1005"), (9, "1006"), (11, "1008"), (14, "1010")]


# --- the admin page's texts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LOCALES)
def test_the_admin_pages_texts_are_in_the_messages_catalog(language: str) -> None:
    wanted = {str(m) for _, m, _, _ in extract_from_file("jinja2", str(TEMPLATES / "admin.html"), keywords={"_": None})}
    assert {"Import orders from a CSV file", "Problems", "Line"} <= wanted
    with (ROOT / language / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalog = {str(m.id): str(m.string) for m in read_po(f, locale=language) if m.id}
    assert wanted - set(catalog) == set()
    if language != "en":
        assert catalog["Import orders from a CSV file"] != "Import orders from a CSV file"
