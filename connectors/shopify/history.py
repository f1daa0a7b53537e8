"""A Shopify store's past customers and orders through bulk operations (GraphQL Admin API).

A bulk query runs on Shopify's side and leaves a JSONL file: one object a line, the objects of a nested
connection (an order's line items) on lines of their own that name their parent in `__parentId`. With
`groupObjects: true` each parent's children follow it directly, so the file is read as a stream, an order
at a time, never whole. The cursor is the operation's id and the byte offset after the last order applied,
so a resumed import asks only for the rest of the file (HTTP Range). Refunds are a list inside the order, and
a connection inside a list is not allowed in a bulk query, so the line items of the few refunded orders
are read afterwards with `nodes(ids:)`, a page of orders at a time. Orders name their customer by id only:
the customers phase, just before, read every customer as it is now (which is what an order's customer field
would say too), and one created or changed since arrives by its webhook.

Translation gives the same records as the webhooks (connectors/shopify/translate.py) for the same order:
numeric ids from the global ids, shop-currency amounts, REST's lower-case statuses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import orjson

from app.core import model as m
from connectors.base import HistoryPage, MalformedPayload, StaleCursor
from connectors.payload import codes, money, opt, required_when, when, without_nul
from connectors.shopify.client import ShopifyApiError, ShopifyClient, ShopifyResultGone
from connectors.shopify.translate import PAYMENT

_CONSENT = "emailMarketingConsent { marketingState consentUpdatedAt } smsMarketingConsent { marketingState consentUpdatedAt }"
_CUSTOMER = f"id email phone firstName lastName locale createdAt updatedAt {_CONSENT}"
_MONEY = "shopMoney { amount }"

QUERIES = {
    "customers": f"{{ customers {{ edges {{ node {{ {_CUSTOMER} }} }} }} }}",
    "orders": (
        "{ orders { edges { node { id name email createdAt updatedAt processedAt cancelledAt currencyCode "
        f"displayFinancialStatus subtotalPriceSet {{ {_MONEY} }} totalPriceSet {{ {_MONEY} }} "
        f"totalTaxSet {{ {_MONEY} }} totalShippingPriceSet {{ {_MONEY} }} totalDiscountsSet {{ {_MONEY} }} discountCodes "
        "customer { id } "
        "fulfillments { id status displayStatus createdAt updatedAt trackingInfo { company number url } } "
        f"refunds {{ id createdAt totalRefundedSet {{ {_MONEY} }} }} "
        "lineItems { edges { node { id title name quantity sku "
        f"originalUnitPriceSet {{ {_MONEY} }} totalDiscountSet {{ {_MONEY} }} product {{ id }} variant {{ id }} }} }} }} "
        "} } } }"
    ),
}

RUN_BULK = """mutation RunBulk($query: String!) {
  bulkOperationRunQuery(query: $query, groupObjects: true) { bulkOperation { id status } userErrors { field message } }
}"""
BULK_STATUS = """query BulkStatus($id: ID!) {
  node(id: $id) { ... on BulkOperation { id status errorCode objectCount url } }
}"""
COUNTS = "query Counts { ordersCount(limit: null) { count } customersCount(limit: null) { count } }"
REFUND_LINES = """query RefundLines($ids: [ID!]!) {
  nodes(ids: $ids) { ... on Refund { id refundLineItems(first: 250) { nodes {
    lineItem { id } quantity subtotalSet { shopMoney { amount } } } } } }
}"""

# FulfillmentDisplayStatus -> the REST fulfillment's shipment_status (the tracking states both APIs share).
SHIPMENT = {s.upper(): s for s in ("attempted_delivery", "confirmed", "delivered", "failure", "in_transit",
                                   "label_printed", "label_purchased", "out_for_delivery", "ready_for_pickup")}


class BulkOperationFailed(ShopifyApiError, StaleCursor):
    """The operation ended FAILED, CANCELED or EXPIRED; the import starts a new one."""


def numeric_id(gid: Any) -> str:
    """gid://shopify/Order/450789469 -> "450789469", the id webhooks carry."""
    if not isinstance(gid, str) or not gid.startswith("gid://shopify/"):
        raise MalformedPayload(f"not a Shopify global id: {gid!r}")
    tail = gid.rsplit("/", 1)[-1].split("?", 1)[0]
    if not tail.isdigit():
        raise MalformedPayload(f"not a Shopify global id: {gid!r}")
    return tail


def _amount(data: Mapping[str, Any] | None, default: str | None = "0") -> Decimal:
    shop = (data or {}).get("shopMoney") or {}
    return money(shop, "amount", default)


def customer(node: Mapping[str, Any]) -> m.CustomerRecord:
    email = node.get("emailMarketingConsent") or {}
    sms = node.get("smsMarketingConsent") or {}
    email_ok, sms_ok = email.get("marketingState") == "SUBSCRIBED", sms.get("marketingState") == "SUBSCRIBED"
    return m.CustomerRecord(
        external_id=numeric_id(node.get("id")),
        updated_at=when(node, "updatedAt", False) or required_when(node, "createdAt"),
        created_at=when(node, "createdAt", False),
        email=opt(node.get("email")), phone=opt(node.get("phone")), first_name=opt(node.get("firstName")),
        last_name=opt(node.get("lastName")), locale=opt(node.get("locale")),
        consent=m.Consent(email_ok, sms_ok, when(email, "consentUpdatedAt", False) if email else None),
        preferred_channel="sms" if sms_ok and not email_ok else "email",
    )


def line(node: Mapping[str, Any]) -> m.OrderLine:
    try:
        quantity = int(node.get("quantity", 0))
    except (TypeError, ValueError) as exc:
        raise MalformedPayload("line quantity is not a number") from exc
    product, variant = node.get("product") or {}, node.get("variant") or {}
    return m.OrderLine(
        external_id=numeric_id(node.get("id")), title=str(node.get("title") or node.get("name") or ""),
        quantity=quantity, price=_amount(node.get("originalUnitPriceSet"), None),
        total_discount=_amount(node.get("totalDiscountSet")),
        product_id=numeric_id(product["id"]) if product.get("id") else None,
        variant_id=numeric_id(variant["id"]) if variant.get("id") else None, sku=opt(node.get("sku")),
    )


def fulfillment(node: Mapping[str, Any]) -> m.Fulfillment:
    created = required_when(node, "createdAt")
    tracking = (node.get("trackingInfo") or [{}])[0] or {}
    return m.Fulfillment(
        external_id=numeric_id(node.get("id")), created_at=created, updated_at=when(node, "updatedAt", False) or created,
        status=str(node.get("status") or "SUCCESS").lower(), shipment_status=SHIPMENT.get(str(node.get("displayStatus"))),
        tracking=m.Tracking(opt(tracking.get("company")), opt(tracking.get("number")), opt(tracking.get("url"))),
    )


def refund(node: Mapping[str, Any], lines: list[Mapping[str, Any]] | None = None) -> m.Refund:
    detail = tuple(m.RefundLine(numeric_id((x.get("lineItem") or {}).get("id")), int(x.get("quantity", 0)),
                                _amount(x.get("subtotalSet"))) for x in lines or [])
    return m.Refund(external_id=numeric_id(node.get("id")), created_at=required_when(node, "createdAt"),
                    amount=_amount(node.get("totalRefundedSet")), lines=detail)


def order(node: Mapping[str, Any], items: Sequence[Mapping[str, Any]],
          refund_lines: Mapping[str, list[Mapping[str, Any]]]) -> tuple[m.OrderRecord, m.CustomerRecord | None]:
    currency = node.get("currencyCode")
    if not isinstance(currency, str) or len(currency) != 3:
        raise MalformedPayload("missing or invalid 'currencyCode'")
    buyer = node.get("customer")
    record = m.OrderRecord(
        external_id=numeric_id(node.get("id")), name=str(node.get("name") or ""),
        created_at=required_when(node, "createdAt"), updated_at=required_when(node, "updatedAt"),
        processed_at=when(node, "processedAt", False), cancelled_at=when(node, "cancelledAt", False),
        currency=currency, total=_amount(node.get("totalPriceSet"), None), subtotal=_amount(node.get("subtotalPriceSet")),
        total_tax=_amount(node.get("totalTaxSet")), total_discounts=_amount(node.get("totalDiscountsSet")),
        total_shipping=_amount(node.get("totalShippingPriceSet")),
        payment=PAYMENT.get(str(node.get("displayFinancialStatus") or "pending").lower(), m.PaymentStatus.PENDING),
        customer_id=numeric_id(buyer["id"]) if isinstance(buyer, Mapping) and buyer.get("id") else None,
        email=opt(node.get("email")),
        lines=tuple(sorted((line(x) for x in items), key=lambda x: x.external_id)),
        discount_codes=codes(str(c) for c in node.get("discountCodes") or []),
        fulfillments=tuple(sorted((fulfillment(f) for f in node.get("fulfillments") or []), key=lambda f: f.external_id)),
        refunds=tuple(sorted((refund(r, refund_lines.get(str(r.get("id")))) for r in node.get("refunds") or []),
                             key=lambda r: r.external_id)),
    )
    if isinstance(buyer, Mapping) and set(buyer) - {"id", "__typename"}:  # a whole customer, not only its id
        if not buyer.get("updatedAt") and not buyer.get("createdAt"):
            buyer = {**buyer, "updatedAt": record.updated_at.isoformat()}
        return record, customer(buyer)
    return record, None


class ShopifyHistory:
    """The HistorySource of a Shopify store: one bulk operation per phase, read as a stream."""

    def __init__(self, client: ShopifyClient, shop: str, access_token: Callable[[], str], *, batch: int = 1000,
                 poll_s: float = 1.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client, self.shop, self._token = client, shop, access_token
        self.batch, self.poll_s, self.sleep = batch, poll_s, sleep

    def _query(self, query: str, variables: Mapping[str, Any], **kw: Any) -> dict[str, Any]:
        return self.client.graphql(self.shop, self._token(), query, variables, **kw)

    def _start(self, phase: str) -> str:
        data = self._query(RUN_BULK, {"query": QUERIES[phase]}, user_errors_at="bulkOperationRunQuery")
        return str(data["bulkOperationRunQuery"]["bulkOperation"]["id"])

    def _wait(self, operation: str) -> dict[str, Any]:
        delay = self.poll_s
        while True:
            status: dict[str, Any] = self._query(BULK_STATUS, {"id": operation})["node"] or {}
            if status.get("status") == "COMPLETED":
                return status
            if status.get("status") in ("FAILED", "CANCELED", "EXPIRED", None):
                raise BulkOperationFailed(f"bulk operation {operation}: {status.get('status')} {status.get('errorCode') or ''}")
            self.sleep(delay)
            delay = min(delay * 1.5, 10.0)

    def pages(self, phase: str, cursor: Mapping[str, Any]) -> Generator[HistoryPage, None, None]:
        operation = cursor.get("operation")
        if not operation:
            operation = self._start(phase)
            yield HistoryPage(cursor={"operation": operation, "offset": 0})  # saved before the long wait
        status = self._wait(str(operation))
        # objectCount counts every object in the file, line items too: the phase's own count says how many.
        counted = (self._query(COUNTS, {}).get(f"{phase}Count") or {}).get("count")
        total = int(counted) if counted is not None else None
        if not status.get("url"):  # nothing matched: Shopify leaves no file
            return
        groups = self._groups(str(status["url"]), int(cursor.get("offset", 0)))
        read = self._customers if phase == "customers" else self._orders
        try:
            yield from read(str(operation), groups, total)
        except ShopifyResultGone as exc:
            raise StaleCursor(str(exc)) from exc

    def _groups(self, url: str, offset: int) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]], int]]:
        """(top-level object, its child objects, the byte offset after the last of them)."""
        head: dict[str, Any] | None = None
        children: list[dict[str, Any]] = []
        end = offset
        for raw, after in self.client.jsonl(url, offset):
            try:
                obj = without_nul(orjson.loads(raw))
            except orjson.JSONDecodeError as exc:
                raise MalformedPayload(f"bulk result line is not JSON: {exc}") from exc
            if "__parentId" in obj:
                if head is None:
                    raise MalformedPayload(f"{obj.get('id')} comes before its parent {obj['__parentId']}")
                children.append(obj)
            else:
                if head is not None:
                    yield head, children, end
                head, children = obj, []
            end = after
        if head is not None:
            yield head, children, end

    def _customers(self, operation: str, groups: Iterator[tuple[dict[str, Any], list[dict[str, Any]], int]],
                   total: int | None) -> Iterator[HistoryPage]:
        batch: list[m.CustomerRecord] = []
        skipped: list[str] = []
        offset = 0
        for head, _, offset in groups:
            try:
                batch.append(customer(head))
            except MalformedPayload as exc:
                skipped.append(f"customer {head.get('id')}: {exc}")
            if len(batch) + len(skipped) >= self.batch:
                yield HistoryPage(cursor={"operation": operation, "offset": offset}, customers=tuple(batch),
                                  read=len(batch) + len(skipped), total=total, skipped=tuple(skipped))
                batch, skipped = [], []
        if batch or skipped:
            yield HistoryPage(cursor={"operation": operation, "offset": offset}, customers=tuple(batch),
                              read=len(batch) + len(skipped), total=total, skipped=tuple(skipped))

    def _orders(self, operation: str, groups: Iterator[tuple[dict[str, Any], list[dict[str, Any]], int]],
                total: int | None) -> Iterator[HistoryPage]:
        pending: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        offset = 0
        for head, children, offset in groups:
            pending.append((head, children))
            if len(pending) >= self.batch:
                yield self._order_page(operation, pending, offset, total)
                pending = []
        if pending:
            yield self._order_page(operation, pending, offset, total)

    def _order_page(self, operation: str, group: list[tuple[dict[str, Any], list[dict[str, Any]]]], offset: int,
                    total: int | None) -> HistoryPage:
        refund_ids = [str(r["id"]) for head, _ in group for r in head.get("refunds") or [] if r.get("id")]
        refund_lines: dict[str, list[Mapping[str, Any]]] = {}
        for start in range(0, len(refund_ids), 100):
            nodes = self._query(REFUND_LINES, {"ids": refund_ids[start:start + 100]})["nodes"]
            for node in nodes or []:
                if node and node.get("id"):
                    refund_lines[str(node["id"])] = list((node.get("refundLineItems") or {}).get("nodes") or [])
        orders: list[tuple[m.OrderRecord, m.CustomerRecord | None]] = []
        skipped: list[str] = []
        for head, children in group:
            try:
                orders.append(order(head, children, refund_lines))
            except (MalformedPayload, KeyError, TypeError, AttributeError) as exc:
                skipped.append(f"order {head.get('id')}: {exc}")
        return HistoryPage(cursor={"operation": operation, "offset": offset}, orders=tuple(orders), read=len(group),
                           total=total, skipped=tuple(skipped))
