"""Shopify's bulk-operation shapes -> the core's records, which must equal what the webhooks give for the
same order. The GraphQL shape is made from Shopify's canonical example order (tests/samples/shopify.py) by the
store simulator's converter, field by field as the GraphQL Admin API names them (Order, LineItem,
Fulfillment, Refund, Customer; MoneyBag.shopMoney); the JSONL layout (one object a line, children after their
parent with `__parentId`, `groupObjects: true`) follows Shopify's bulk operations guide."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from app.simulator.shopify import _gql_customer, _gql_order
from connectors.base import MalformedPayload, StaleCursor
from connectors.shopify import history, translate
from connectors.shopify.client import ShopifyResultGone
from tests.samples.shopify import ORDER, REFUND


def _rest_order() -> dict[str, Any]:
    order = copy.deepcopy(ORDER)
    order["total_shipping_price_set"] = {"shop_money": {"amount": "0.00", "currency_code": "USD"}}
    order["refunds"] = [copy.deepcopy(REFUND)]
    order["financial_status"] = "partially_refunded"
    return order


def test_a_bulk_order_translates_to_what_its_webhook_gives() -> None:
    rest = _rest_order()
    node, children = _gql_order(rest)
    assert all(child["__parentId"] == node["id"] for child in children) and len(children) == 3
    refund_lines = {f"gid://shopify/Refund/{REFUND['id']}": [
        {"lineItem": {"id": f"gid://shopify/LineItem/{x['line_item_id']}"}, "quantity": x["quantity"]}
        for x in REFUND["refund_line_items"]]}
    record, buyer = history.order(node, children, refund_lines)
    assert record == translate.order(rest)
    assert buyer is None  # the order names its customer by id; the customers phase brought the customer
    node["customer"] = _gql_customer(rest["customer"])  # a result that does carry the whole customer
    assert history.order(node, children, refund_lines)[1] == translate.customer(rest["customer"])
    assert [r.lines for r in record.refunds][0][0].line_id in {"703073504", "466157049"}


def test_numeric_ids_come_only_from_shopify_global_ids() -> None:
    assert history.numeric_id("gid://shopify/Order/450789469") == "450789469"
    assert history.numeric_id("gid://shopify/LineItem/1?from=bulk") == "1"
    for bad in (None, 450789469, "450789469", "gid://shopify/Order/", "gid://other/Order/1"):
        with pytest.raises(MalformedPayload):
            history.numeric_id(bad)


class _Client:
    """Serves a JSONL text the way ShopifyClient.jsonl does: lines with the byte offset after each."""

    def __init__(self, text: str, gone: bool = False) -> None:
        self.data, self.gone = text.encode(), gone
        self.offsets: list[int] = []

    def jsonl(self, url: str, offset: int = 0) -> Iterator[tuple[bytes, int]]:
        self.offsets.append(offset)
        if self.gone:
            raise ShopifyResultGone("HTTP 403")
        at = 0
        for line in self.data.split(b"\n")[:-1]:
            at += len(line) + 1
            if at > offset:
                yield line, at

    def graphql(self, shop: str, token: str, query: str, variables: Any = None, **kw: Any) -> dict[str, Any]:
        if "BulkStatus" in query:
            return {"node": {"id": variables["id"], "status": "COMPLETED", "url": "http://bulk/result.jsonl"}}
        if "Counts" in query:
            return {"ordersCount": {"count": 2}, "customersCount": {"count": 2}}
        return {"nodes": []}


def _lines(*objects: dict[str, Any]) -> str:
    return "".join(json.dumps(o) + "\n" for o in objects)


def test_a_bulk_result_is_read_an_order_at_a_time_and_resumes_at_a_byte_offset() -> None:
    orders = [_gql_order({**_rest_order(), "id": oid, "refunds": []}) for oid in (1001, 1002)]
    text = _lines(*(x for node, children in orders for x in [node, *children]))
    client = _Client(text)
    source = history.ShopifyHistory(client, "s.myshopify.com", lambda: "t", batch=1)  # type: ignore[arg-type]
    pages = list(source.pages("orders", {"operation": "gid://shopify/BulkOperation/9", "offset": 0}))
    assert [[o.external_id for o, _ in p.orders] for p in pages] == [["1001"], ["1002"]]
    assert [len(o.lines) for p in pages for o, _ in p.orders] == [3, 3] and pages[0].total == 2
    first_end = pages[0].cursor["offset"]
    assert text.encode()[:first_end].count(b"\n") == 4  # the order's line and its three line items
    resumed = list(source.pages("orders", {"operation": "gid://shopify/BulkOperation/9", "offset": first_end}))
    assert client.offsets[-1] == first_end and [o.external_id for p in resumed for o, _ in p.orders] == ["1002"]


def test_a_child_before_any_parent_is_refused() -> None:
    text = _lines({"id": "gid://shopify/LineItem/1", "__parentId": "gid://shopify/Order/1"})
    source = history.ShopifyHistory(_Client(text), "s.myshopify.com", lambda: "t")  # type: ignore[arg-type]
    with pytest.raises(MalformedPayload, match="before its parent"):
        list(source.pages("orders", {"operation": "gid://shopify/BulkOperation/9"}))


def test_an_unreadable_order_is_skipped_with_its_reason_and_the_rest_kept() -> None:
    good, children = _gql_order({**_rest_order(), "refunds": []})
    bad = {**good, "id": "gid://shopify/Order/7", "currencyCode": None}
    source = history.ShopifyHistory(_Client(_lines(bad, good, *children)), "s", lambda: "t")  # type: ignore[arg-type]
    [page] = list(source.pages("orders", {"operation": "gid://shopify/BulkOperation/9"}))
    assert [o.external_id for o, _ in page.orders] == ["450789469"] and page.read == 2
    assert page.skipped and "currencyCode" in page.skipped[0]


def test_an_expired_result_asks_for_the_phase_to_start_again() -> None:
    source = history.ShopifyHistory(_Client("", gone=True), "s", lambda: "t")  # type: ignore[arg-type]
    with pytest.raises(StaleCursor):
        list(source.pages("customers", {"operation": "gid://shopify/BulkOperation/9", "offset": 100}))
