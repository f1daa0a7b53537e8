"""The merchant's data export (app/exports.py, GET /api/admin/export.zip) on the real database: a shop with a row
in every table (tests/shop_rows.py) and some more orders; every file's rows equal the database's, CSV opens with
the csv module and starts with a byte-order mark, JSON Lines parse, no secret or token and nothing of another
shop is in the bytes, and a shop's token only ever exports that shop."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from app import exports
from app.bootstrap import Container
from app.db import models as t
from app.web.auth import issue_admin_token
from tests.shop_rows import Built, build_shop, counts

FORMULA = '=HYPERLINK("http://evil.example","click")'


@pytest.fixture
def shops(container: Container) -> tuple[Built, Built]:
    a = build_shop(container, "shop-a.myshopify.com", **{"customers.first_name": FORMULA})
    b = build_shop(container, "shop-b.myshopify.com")
    with container.sessions() as s, s.begin():
        for n in range(4):  # more orders than one, and a customer with a name in Korean
            s.add(t.Order(shop_id=a.shop_id, external_id=f"extra-{n}", currency="KRW", subtotal=Decimal(n),
                          total=Decimal("1000.5") * n, total_tax=0, total_shipping=0, total_discounts=0,
                          refunded_amount=0, payment_status="paid", status="open",
                          created_at=datetime(2024, 5, n + 1, tzinfo=UTC), external_updated_at=datetime.now(UTC)))
        s.add(t.Customer(shop_id=a.shop_id, external_id="c-ko", first_name="민아", email="mina@example.com",
                         external_updated_at=datetime.now(UTC)))
    return a, b


def download(client: FlaskClient, c: Container, shop: Built, fmt: str) -> tuple[zipfile.ZipFile, bytes]:
    token = issue_admin_token(c, shop.shop_id, shop.domain)
    r = client.get(f"/api/admin/export.zip?format={fmt}", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.mimetype == "application/zip" and r.headers["Cache-Control"] == "no-store"
    assert r.headers["Content-Disposition"].startswith(f'attachment; filename="encore-export-{fmt}-')
    body = r.get_data()
    assert int(r.headers["Content-Length"]) == len(body)
    return zipfile.ZipFile(io.BytesIO(body)), body


def everything(archive: zipfile.ZipFile) -> bytes:
    """The members' bytes, uncompressed (the ZIP's own bytes are deflated)."""
    return b"".join(archive.read(name) for name in archive.namelist())


def assert_nothing_secret_or_foreign(data: bytes, c: Container, mine: Built, other: Built) -> None:
    with c.sessions() as s:
        sealed = [v for row in s.execute(select(*(getattr(t.Shop, n) for n in mine.secrets))) for v in row if v]
    for needle in [*mine.secrets.values(), *other.secrets.values()]:
        assert needle.encode() not in data, needle
    for blob in sealed:
        assert blob not in data
    assert b"raw-bytes-" not in data  # no LargeBinary column (raw webhook bodies included)
    assert other.domain.split(".")[0].encode() not in data  # every text of the other shop carries its tag


def test_csv_export_has_a_file_per_table_with_the_databases_rows(client: FlaskClient, container: Container,
                                                                   shops: tuple[Built, Built]) -> None:
    a, b = shops
    archive, _ = download(client, container, a, "csv")
    manifest = json.loads(archive.read("manifest.json"))
    in_db = counts(container, a.shop_id, a.domain)
    wanted = {x.name for x in exports.exported_tables()}
    assert {f["table"] for f in manifest["files"]} == wanted
    assert set(archive.namelist()) == {f"{name}.csv" for name in wanted} | {"manifest.json"}
    assert in_db["orders"] == 5 and in_db["customers"] == 2  # the fixture's rows are there to be counted
    for entry in manifest["files"]:
        raw = archive.read(entry["name"])
        assert raw.startswith("\ufeff".encode()), entry["name"]
        header, *rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
        assert header == entry["columns"]
        assert len(rows) == entry["rows"] == in_db[entry["table"]], entry["table"]
        if "shop_id" in header:
            assert {row[header.index("shop_id")] for row in rows} <= {str(a.shop_id)}
    orders = list(csv.DictReader(io.StringIO(archive.read("orders.csv").decode("utf-8-sig"), newline="")))
    assert sorted(o["total"] for o in orders if o["external_id"].startswith("extra-")) == [
        "0.0000", "1000.5000", "2001.0000", "3001.5000"]
    customers = {c["external_id"]: c for c in csv.DictReader(
        io.StringIO(archive.read("customers.csv").decode("utf-8-sig"), newline=""))}
    assert customers["c-ko"]["first_name"] == "민아"
    first = next(c for key, c in customers.items() if key != "c-ko")["first_name"]
    assert first == "'" + FORMULA  # shown as text by a spreadsheet, never run
    assert manifest["format"] == "csv" and manifest["shop"]["domain"] == a.domain
    assert datetime.fromisoformat(manifest["exported_at"]).tzinfo is not None
    with container.sessions() as s:
        assert manifest["schema_version"] == exports.schema_version(s) and manifest["schema_version"]
    assert set(manifest["excluded_tables"]) == set(exports.EXCLUDED_TABLES)
    assert "shops.access_token" in manifest["excluded_columns"] and "messages.lease_until" in manifest["excluded_columns"]
    assert_nothing_secret_or_foreign(everything(archive), container, a, b)


def test_json_export_parses_and_keeps_exact_values(client: FlaskClient, container: Container,
                                                   shops: tuple[Built, Built]) -> None:
    a, b = shops
    archive, _ = download(client, container, a, "json")
    manifest = json.loads(archive.read("manifest.json"))
    in_db = counts(container, a.shop_id, a.domain)
    files: dict[str, list[dict[str, Any]]] = {}
    for entry in manifest["files"]:
        assert entry["name"] == entry["table"] + ".jsonl"
        files[entry["table"]] = [json.loads(line) for line in archive.read(entry["name"]).decode().splitlines()]
        assert len(files[entry["table"]]) == entry["rows"] == in_db[entry["table"]]
        assert all(list(row) == entry["columns"] for row in files[entry["table"]])
    with container.sessions() as s:
        db_orders = {o.external_id: o for o in s.scalars(select(t.Order).where(t.Order.shop_id == a.shop_id))}
    for row in files["orders"]:
        assert Decimal(row["total"]) == db_orders[row["external_id"]].total
        assert datetime.fromisoformat(row["created_at"]) == db_orders[row["external_id"]].created_at
    assert files["checkouts"][0]["lines"] == {"note": "shop-a checkouts"}  # JSON columns stay JSON
    assert files["customers"][0]["accepts_email_marketing"] is True
    assert files["shops"] == [{**files["shops"][0], "id": a.shop_id, "domain": a.domain}]
    assert_nothing_secret_or_foreign(everything(archive), container, a, b)


def test_a_shops_token_exports_only_that_shop(client: FlaskClient, container: Container,
                                              shops: tuple[Built, Built]) -> None:
    a, b = shops
    archive, _ = download(client, container, b, "csv")
    manifest = json.loads(archive.read("manifest.json"))
    in_db = counts(container, b.shop_id, b.domain)
    assert manifest["shop"]["id"] == b.shop_id
    assert {f["table"]: f["rows"] for f in manifest["files"]} == {f["table"]: in_db[f["table"]] for f in manifest["files"]}
    assert_nothing_secret_or_foreign(everything(archive), container, b, a)


def test_bad_requests_are_refused(client: FlaskClient, container: Container, shops: tuple[Built, Built]) -> None:
    a, _ = shops
    assert client.get("/api/admin/export.zip?format=csv").status_code == 401
    token = issue_admin_token(container, a.shop_id, a.domain)
    r = client.get("/api/admin/export.zip?format=xml", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 400 and "csv, json" in r.get_json()["error"]
    with pytest.raises(exports.ExportError):
        exports.export_shop(container, a.shop_id, "xlsx", io.BytesIO())
    out = io.BytesIO()
    with pytest.raises(exports.ExportError):
        exports.export_shop(container, 987654, "csv", out)
    assert out.getvalue() == b""  # nothing written
