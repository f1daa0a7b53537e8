"""Importing orders from a CSV file on the real database (SQLite, or PostgreSQL when DATABASE_URL names one):
exactly the good orders are imported, with the records and domain events their webhooks would have given;
a second import changes nothing; the admin API's report; a file missing a column imports nothing; a batch the
database refuses is rolled back whole and reported; an order the store later sends by webhook merges."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from app import csv_import
from app.analytics import refresh
from app.bootstrap import Container
from app.core.commands import ObserveOrder
from app.core.messagebus import handle
from app.db import models as t
from app.db import repositories
from app.db.uow import SqlUnitOfWork
from app.web.auth import issue_admin_token
from tests.helpers import add_shop, delivery, state
from tests.samples import shopify as sample

DOMAIN = "shop-a.myshopify.com"
SAMPLE = (Path(__file__).resolve().parents[1] / "data" / "orders_sample.csv").read_bytes()
GOOD = ["csv:1001", "csv:1002", "csv:1004", "csv:1007", "csv:1009"]
BAD_LINES = [5, 6, 8, 9, 11, 14]
API = "/api/admin/imports/csv"


def _shop(c: Container, domain: str = DOMAIN) -> int:
    shop_id = add_shop(c, domain)
    with c.sessions() as s, s.begin():
        row = s.get(t.Shop, shop_id)
        assert row is not None
        row.currency, row.timezone = "USD", "America/New_York"
    return shop_id


@pytest.fixture
def shop(container: Container) -> int:
    return _shop(container)


@pytest.fixture
def h(container: Container, shop: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_admin_token(container, shop, DOMAIN)}"}


def _orders(c: Container, shop_id: int) -> dict[str, t.Order]:
    with c.sessions() as s:
        return {o.external_id: o for o in s.scalars(select(t.Order).where(t.Order.shop_id == shop_id))}


def test_a_file_with_good_and_bad_rows_imports_exactly_the_good_orders(container: Container, shop: int) -> None:
    report = csv_import.import_file(container, shop, SAMPLE)
    assert (report.imported_orders, report.new_orders, report.imported_customers) == (5, 5, 4)
    assert report.file_errors == [] and [b.line for b in report.bad_rows] == BAD_LINES
    assert {b.order for b in report.bad_rows} == {"1003", "1005", "1006", "1008", "1010"}

    orders = _orders(container, shop)
    assert sorted(orders) == GOOD
    assert {k: (o.status, o.total, o.customer_external_id) for k, o in orders.items()} == {
        "csv:1001": ("paid", Decimal("39.00"), "csv:c1"),  # 2 × 12.50 + 8.00 − 1.00 + 5.00 shipping + 2.00 tax
        "csv:1002": ("paid", Decimal("20.00"), "csv:c2"),
        "csv:1004": ("refunded", Decimal("12.50"), None),  # a guest: an email, no customer id
        "csv:1007": ("cancelled", Decimal("55.00"), "csv:c3"),
        "csv:1009": ("paid", Decimal("45.00"), "csv:c4"),
    }
    assert orders["csv:1004"].email == "guest@example.com" and orders["csv:1004"].refunded_amount == Decimal("12.50")
    # Without an offset, the time is the shop's (New York, UTC−5 in January).
    assert orders["csv:1002"].created_at.isoformat() == "2024-01-06T14:30:00+00:00"

    got = state(container, shop)
    lines_of_1001 = [x for x in got["lines"] if x[0] in ("1", "2")]
    assert ("1", 2, Decimal("12.50")) in lines_of_1001 and ("2", 1, Decimal("8.00")) in lines_of_1001
    assert ("L1", 1, Decimal("45.00")) in got["lines"] and len(got["lines"]) == 6
    with container.sessions() as s:
        gift = s.scalars(select(t.OrderLine).where(t.OrderLine.external_id == "L1")).one()
        assert (gift.title, gift.sku, gift.product_external_id) == ("Gift box\nlarge", "GIFT-L", "p4")
    assert [(c, e) for c, e, *_ in got["customers"]] == [
        ("csv:c1", "mina@example.com"), ("csv:c2", "jun@example.com"), ("csv:c3", "ana@example.com"),
        ("csv:c4", "yui@example.com")]
    assert got["refunds"] == [("csv:1004:refund", Decimal("12.50"))]
    assert got["events"] == sorted(
        [(f"order:{o}:placed", "OrderPlaced") for o in GOOD] + [(f"order:{o}:paid", "OrderPaid") for o in GOOD]
        + [("order:csv:1007:cancelled", "OrderCancelled"), ("order:csv:1004:refund:csv:1004:refund", "OrderRefunded")]
        + [("customer:csv:c1:2024-01-05T15:00:00+00:00", "CustomerUpserted"),
           ("customer:csv:c2:2024-01-06T14:30:00+00:00", "CustomerUpserted"),
           ("customer:csv:c3:2024-03-04T12:00:00+00:00", "CustomerUpserted"),
           ("customer:csv:c4:2024-03-06T00:00:00+00:00", "CustomerUpserted")])


def test_the_events_are_those_the_webhooks_would_have_recorded(container: Container, shop: int) -> None:
    """The same records, told one by one as webhooks are (ObserveOrder), record the same events."""
    csv_import.import_file(container, shop, SAMPLE)
    other = _shop(container, "shop-b.myshopify.com")
    parsed = csv_import.parse(SAMPLE, currency="USD", timezone="America/New_York")
    for o in parsed.orders:
        handle(ObserveOrder(other, o.order, o.customer), SqlUnitOfWork(container.sessions), container.clock)

    def events(shop_id: int) -> set[tuple[str, str]]:
        with container.sessions() as s:
            return {(r.key, r.type) for r in s.scalars(select(t.EventRow).where(
                t.EventRow.shop_id == shop_id, t.EventRow.type.like("Order%") | t.EventRow.type.like("Customer%")))}

    assert events(shop) == events(other) and len(events(shop)) == 16
    mine, theirs = state(container, shop), state(container, other)
    assert {k: mine[k] for k in ("orders", "lines", "refunds", "customers")} == {
        k: theirs[k] for k in ("orders", "lines", "refunds", "customers")}


def test_importing_the_same_file_again_changes_nothing(container: Container, shop: int) -> None:
    csv_import.import_file(container, shop, SAMPLE)
    before = state(container, shop)
    with container.sessions() as s:
        event_ids = sorted(s.scalars(select(t.EventRow.id).where(t.EventRow.shop_id == shop)))
    again = csv_import.import_file(container, shop, SAMPLE, batch=2)
    assert (again.imported_orders, again.new_orders, again.imported_customers) == (5, 0, 4)
    assert state(container, shop) == before
    with container.sessions() as s:
        assert sorted(s.scalars(select(t.EventRow.id).where(t.EventRow.shop_id == shop))) == event_ids


def test_the_admin_api_answers_with_the_counts_and_every_bad_row(client: FlaskClient, container: Container, shop: int,
                                                                  h: dict[str, str]) -> None:
    assert client.post(API, data={"file": (io.BytesIO(SAMPLE), "orders.csv")}).status_code == 401
    assert _orders(container, shop) == {}
    response = client.post(API, data={"file": (io.BytesIO(SAMPLE), "orders.csv")}, headers=h,
                           content_type="multipart/form-data")
    assert response.status_code == 200
    body = response.get_json()
    assert (body["imported_orders"], body["imported_customers"], body["new_orders"], body["file_errors"]) == (5, 4, 5, [])
    assert [b["line"] for b in body["bad_rows"]] == BAD_LINES
    by_line = {b["line"]: b for b in body["bad_rows"]}
    assert by_line[5]["order"] == "1003" and "bad order date '2024-02-30T10:00:00'" in by_line[5]["problems"][0]
    assert by_line[6]["problems"] == ["not imported: line 5 of this order is bad"]
    assert by_line[8]["problems"] == ["bad quantity '0': not a positive whole number"]
    assert by_line[9]["problems"][0].startswith("bad unit price 'abc': not an amount")
    assert by_line[11]["problems"] == ["currency EUR is not the shop's (USD)"]
    assert by_line[14]["problems"] == ["bad unit price '1.999': more than 2 decimals for USD"]
    assert sorted(_orders(container, shop)) == GOOD

    missing = client.post(API, data={}, headers=h, content_type="multipart/form-data")
    assert missing.status_code == 400 and missing.get_json()["file_errors"] == [
        "no file: send the CSV file as the form field 'file'"]


def test_the_admin_api_refuses_a_file_over_the_limit(client: FlaskClient, container: Container, shop: int,
                                                     h: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_import, "MAX_BYTES", len(SAMPLE) - 1)
    response = client.post(API, data={"file": (io.BytesIO(SAMPLE), "orders.csv")}, headers=h,
                           content_type="multipart/form-data")
    assert response.status_code == 413 and "larger than" in response.get_json()["file_errors"][0]
    assert _orders(container, shop) == {}


def test_a_file_missing_a_column_imports_nothing(client: FlaskClient, container: Container, shop: int,
                                                 h: dict[str, str]) -> None:
    header, rest = SAMPLE.split(b"\n", 1)
    no_quantity = header.replace(b"Quantity,", b"Amount,") + b"\n" + rest
    response = client.post(API, data={"file": (io.BytesIO(no_quantity), "orders.csv")}, headers=h,
                           content_type="multipart/form-data")
    assert response.status_code == 400
    body = response.get_json()
    assert body["file_errors"] == ["missing column: quantity (or one of: lineitem quantity, line item quantity, qty)"]
    assert (body["imported_orders"], body["bad_rows"]) == (0, [])
    got = state(container, shop)
    assert got["orders"] == [] and got["customers"] == [] and got["events"] == []


def test_a_batch_the_database_refuses_is_rolled_back_whole_and_reported(container: Container, shop: int,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    real = repositories.Events.record_many

    def refusing(self: Any, events: list[Any]) -> Any:
        if any("csv:1007" in e.key for e in events):
            raise RuntimeError("disk full")
        return real(self, events)

    monkeypatch.setattr(repositories.Events, "record_many", refusing)
    # Batches of two, in the file's order: [1001, 1002], [1004, 1007], [1009]. The second fails after its orders
    # and customers were written in its transaction: all of it is rolled back.
    report = csv_import.import_file(container, shop, SAMPLE, batch=2)
    assert (report.imported_orders, report.imported_customers) == (3, 3)
    assert sorted(_orders(container, shop)) == ["csv:1001", "csv:1002", "csv:1009"]
    got = state(container, shop)
    assert [c for c, *_ in got["customers"]] == ["csv:c1", "csv:c2", "csv:c4"]  # c3 came only with 1007
    assert not any("1004" in k or "1007" in k for k, _ in got["events"]) and got["refunds"] == []
    refused = [b for b in report.bad_rows if b.problems[0].startswith("not imported: the database refused")]
    assert [(b.line, b.order) for b in refused] == [(7, "1004"), (10, "1007")]

    monkeypatch.setattr(repositories.Events, "record_many", real)  # once the database is well, the same file
    assert csv_import.import_file(container, shop, SAMPLE).new_orders == 2  # brings in the rest
    assert sorted(_orders(container, shop)) == GOOD


def _webhook(client: FlaskClient, container: Container, payload: dict[str, Any], event_id: str) -> None:
    body, headers = delivery("orders/updated", payload, event_id=event_id)
    assert client.post("/webhooks/shopify", data=body, headers=headers).status_code == 200
    assert container.queue.drain(10)  # type: ignore[attr-defined]


PLATFORM_CSV = (
    b"Id,Name,Created at,Customer ID,Email,Currency,Lineitem id,Product ID,Lineitem sku,Lineitem name,"
    b"Lineitem quantity,Lineitem price,Financial Status\r\n"
    b"450789469,#1001,2008-01-10T10:00:00-05:00,207119551,bob.norman@hostmail.com,USD,466157049,632910392,"
    b"IPOD2008GREEN,IPod Nano - 8gb,1,199.00,authorized\r\n")


def test_an_imported_order_merges_with_the_stores_webhook(client: FlaskClient, container: Container, shop: int) -> None:
    report = csv_import.import_file(container, shop, PLATFORM_CSV, platform_ids=True)
    assert (report.imported_orders, report.bad_rows) == (1, [])
    assert sorted(_orders(container, shop)) == ["450789469"]
    assert state(container, shop)["lines"] == [("466157049", 1, Decimal("199.00"))]

    # The store's word (updated an hour after the file's order date) wins: one order, the webhook's lines and
    # totals; its "placed" event was the import's, and is not recorded twice.
    _webhook(client, container, sample.ORDER, "e-1")
    orders = _orders(container, shop)
    assert list(orders) == ["450789469"] and orders["450789469"].total == Decimal("409.94")
    got = state(container, shop)
    assert [x[0] for x in got["lines"]] == ["466157049", "518995019", "703073504"]
    assert [k for k, _ in got["events"]].count("order:450789469:placed") == 1
    assert [c for c, *_ in got["customers"]] == ["207119551"]

    # Importing the file again now changes nothing: the store's newer version stays.
    csv_import.import_file(container, shop, PLATFORM_CSV, platform_ids=True)
    assert state(container, shop) == got

    # Without the flag, the file's ids are its own: the same order stays apart from the store's.
    namespaced = csv_import.import_file(container, shop, PLATFORM_CSV)
    assert namespaced.new_orders == 1
    assert sorted(_orders(container, shop)) == ["450789469", "csv:450789469"]
    assert _orders(container, shop)["csv:450789469"].customer_external_id == "csv:207119551"


def test_new_orders_make_the_analytics_due_at_the_next_sweep(container: Container, shop: int) -> None:
    last_night = datetime(2026, 11, 28, 8, tzinfo=UTC)
    with container.sessions() as s, s.begin():
        s.execute(update(t.Shop).where(t.Shop.id == shop).values(analytics_at=last_night, installed_at=last_night))
    assert shop not in refresh.due(container, datetime(2026, 11, 28, 9, tzinfo=UTC))
    csv_import.import_file(container, shop, SAMPLE)
    with container.sessions() as s:
        assert s.get(t.Shop, shop).analytics_at is None  # type: ignore[union-attr]
    assert shop in refresh.due(container, datetime(2026, 11, 28, 9, tzinfo=UTC))
    with container.sessions() as s, s.begin():
        s.execute(update(t.Shop).where(t.Shop.id == shop).values(analytics_at=last_night))
    csv_import.import_file(container, shop, SAMPLE)  # nothing new: nothing to refresh for
    with container.sessions() as s:
        assert s.get(t.Shop, shop).analytics_at == last_night  # type: ignore[union-attr]
