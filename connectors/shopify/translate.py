"""Shopify payloads -> the core's commands. Pure; tested on public sample payloads."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.core import commands as c
from app.core import model as m
from app.core.referrals import ship_to
from connectors.base import MalformedPayload
from connectors.payload import codes, without_nul
from connectors.payload import ident as _id
from connectors.payload import money as _money
from connectors.payload import obj as _obj
from connectors.payload import opt as _opt
from connectors.payload import required_when as _req_time
from connectors.payload import when as _time

PAYMENT = {
    "pending": m.PaymentStatus.PENDING,
    "authorized": m.PaymentStatus.AUTHORIZED,
    "partially_paid": m.PaymentStatus.AUTHORIZED,
    "paid": m.PaymentStatus.PAID,
    "partially_refunded": m.PaymentStatus.PARTIALLY_REFUNDED,
    "refunded": m.PaymentStatus.REFUNDED,
    "voided": m.PaymentStatus.VOIDED,
    "expired": m.PaymentStatus.VOIDED,
}


def customer(data: Mapping[str, Any]) -> m.CustomerRecord:
    data = _obj(data)
    email_consent = data.get("email_marketing_consent") or {}
    sms_consent = data.get("sms_marketing_consent") or {}
    email_ok = email_consent.get("state") == "subscribed" if email_consent else bool(data.get("accepts_marketing"))
    stamp = _time(email_consent, "consent_updated_at", False) if email_consent else None
    return m.CustomerRecord(
        external_id=_id(data),
        updated_at=_time(data, "updated_at", False) or _req_time(data, "created_at"),
        created_at=_time(data, "created_at", False),
        email=_opt(data.get("email")),
        phone=_opt(data.get("phone")),
        first_name=_opt(data.get("first_name")),
        last_name=_opt(data.get("last_name")),
        locale=_opt(data.get("locale")),
        consent=m.Consent(email_ok, sms_consent.get("state") == "subscribed", stamp),
        preferred_channel="sms" if sms_consent.get("state") == "subscribed" and not email_ok else "email",
    )


def line(data: Mapping[str, Any]) -> m.OrderLine:
    data = _obj(data, "a line item")
    try:
        quantity = int(data.get("quantity", 0))
    except (TypeError, ValueError) as exc:
        raise MalformedPayload("line quantity is not a number") from exc
    return m.OrderLine(
        external_id=_id(data), title=str(data.get("title") or data.get("name") or ""), quantity=quantity,
        price=_money(data, "price"), total_discount=_money(data, "total_discount", "0"),
        product_id=_opt(data.get("product_id")), variant_id=_opt(data.get("variant_id")), sku=_opt(data.get("sku")),
    )


def fulfillment(data: Mapping[str, Any]) -> m.Fulfillment:
    data = _obj(data, "a fulfillment")
    created = _req_time(data, "created_at")
    urls = data.get("tracking_urls") or []
    numbers = data.get("tracking_numbers") or []
    return m.Fulfillment(
        external_id=_id(data), created_at=created, updated_at=_time(data, "updated_at", False) or created,
        status=str(data.get("status") or "success"), shipment_status=_opt(data.get("shipment_status")),
        tracking=m.Tracking(
            company=_opt(data.get("tracking_company")),
            number=_opt(data.get("tracking_number")) or (str(numbers[0]) if numbers else None),
            url=_opt(data.get("tracking_url")) or (str(urls[0]) if urls else None),
        ),
    )


def refund(data: Mapping[str, Any]) -> m.Refund:
    data = _obj(data)
    transactions = [t for t in data.get("transactions") or [] if isinstance(t, Mapping)]
    paid_back = [t for t in transactions if t.get("kind") == "refund" and t.get("status", "success") == "success"]
    lines = tuple(
        m.RefundLine(line_id=_id(x, "line_item_id"), quantity=int(x.get("quantity", 0)), amount=_money(x, "subtotal", "0"))
        for x in (_obj(x) for x in data.get("refund_line_items") or [])
    )
    amount = sum((_money(t, "amount") for t in paid_back), Decimal("0"))
    if not paid_back:
        amount = sum((x.amount for x in lines), Decimal("0"))
    return m.Refund(external_id=_id(data), created_at=_req_time(data, "created_at"), amount=amount, lines=lines)


def _shipping(data: Mapping[str, Any]) -> Decimal:
    money = ((data.get("total_shipping_price_set") or {}).get("shop_money") or {}).get("amount")
    if money is not None:
        return _money({"amount": money}, "amount")
    lines = [x for x in data.get("shipping_lines") or [] if isinstance(x, Mapping)]
    return sum((_money(x, "price", "0") for x in lines), Decimal("0"))


def order(data: Mapping[str, Any]) -> m.OrderRecord:
    data = _obj(data)
    currency = data.get("currency")
    if not isinstance(currency, str) or len(currency) != 3:
        raise MalformedPayload("missing or invalid 'currency'")
    buyer = data.get("customer")
    return m.OrderRecord(
        external_id=_id(data), name=str(data.get("name") or ""),
        created_at=_req_time(data, "created_at"), updated_at=_req_time(data, "updated_at"),
        processed_at=_time(data, "processed_at", False), cancelled_at=_time(data, "cancelled_at", False),
        currency=currency, total=_money(data, "total_price"), subtotal=_money(data, "subtotal_price", "0"),
        total_tax=_money(data, "total_tax", "0"), total_discounts=_money(data, "total_discounts", "0"),
        total_shipping=_shipping(data),
        payment=PAYMENT.get(str(data.get("financial_status") or "pending"), m.PaymentStatus.PENDING),
        customer_id=_id(buyer) if isinstance(buyer, Mapping) and buyer.get("id") else None,
        email=_opt(data.get("email") or data.get("contact_email")),
        lines=tuple(sorted((line(x) for x in data.get("line_items") or []), key=lambda x: x.external_id)),
        discount_codes=codes(str(x.get("code") or "") for x in data.get("discount_codes") or [] if isinstance(x, Mapping)),
        ship_to=_ship_to(data.get("shipping_address")),
        fulfillments=tuple(sorted((fulfillment(x) for x in data.get("fulfillments") or []), key=lambda f: f.external_id)),
        refunds=tuple(sorted((refund(x) for x in data.get("refunds") or []), key=lambda r: r.external_id)),
    )


def _ship_to(address: Any) -> str | None:
    if not isinstance(address, Mapping):
        return None
    return ship_to(address.get("address1"), address.get("address2"), address.get("city"), address.get("zip"),
                   address.get("country_code"))


def _buyer(data: Mapping[str, Any], fallback_time: datetime) -> m.CustomerRecord | None:
    buyer = data.get("customer")
    if not isinstance(buyer, Mapping) or not buyer.get("id"):
        return None
    if not buyer.get("updated_at") and not buyer.get("created_at"):
        buyer = {**buyer, "updated_at": fallback_time.isoformat()}
    return customer(buyer)


def checkout(data: Mapping[str, Any]) -> m.CheckoutRecord:
    data = _obj(data)
    buyer = data.get("customer")
    return m.CheckoutRecord(
        external_id=_id(data), updated_at=_req_time(data, "updated_at"),
        currency=str(data.get("presentment_currency") or data.get("currency") or ""),
        total=_money(data, "total_price"), email=_opt(data.get("email")),
        customer_id=_id(buyer) if isinstance(buyer, Mapping) and buyer.get("id") else None,
        recovery_url=_opt(data.get("abandoned_checkout_url")), completed_at=_time(data, "completed_at", False),
        lines=tuple(line({"id": x.get("id") or x.get("key") or x.get("variant_id"), **x})
                    for x in data.get("line_items") or [] if isinstance(x, Mapping)),
    )


def _ids(values: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in values or [])


def _order_cmd(shop_id: int, data: Any) -> list[c.Command]:
    record = order(data)
    return [c.ObserveOrder(shop_id, record, _buyer(data, record.updated_at))]


def _checkout_cmd(shop_id: int, data: Any) -> list[c.Command]:
    record = checkout(data)
    return [c.ObserveCheckout(shop_id, record, _buyer(data, record.updated_at))]


def _data_request(shop_id: int, data: Any) -> list[c.Command]:
    data = _obj(data)
    who = _obj(data.get("customer"))
    request = data.get("data_request") or {}
    request_id = str(request.get("id") or f"{_id(who)}:{','.join(_ids(data.get('orders_requested')))}")
    return [c.ExportCustomerData(shop_id, request_id, _id(who), _opt(who.get("email")), _ids(data.get("orders_requested")))]


def _redact(shop_id: int, data: Any) -> list[c.Command]:
    data = _obj(data)
    return [c.RedactCustomer(shop_id, _id(_obj(data.get("customer"))), _ids(data.get("orders_to_redact")))]


TOPICS: dict[str, Callable[[int, Any], list[c.Command]]] = {
    "orders/create": _order_cmd,
    "orders/updated": _order_cmd,
    "orders/paid": _order_cmd,
    "orders/cancelled": _order_cmd,
    "orders/fulfilled": _order_cmd,
    "fulfillments/create": lambda s, d: [c.ObserveFulfillment(s, _id(_obj(d), "order_id"), fulfillment(d))],
    "fulfillments/update": lambda s, d: [c.ObserveFulfillment(s, _id(_obj(d), "order_id"), fulfillment(d))],
    "refunds/create": lambda s, d: [c.ObserveRefund(s, _id(_obj(d), "order_id"), refund(d))],
    "customers/create": lambda s, d: [c.ObserveCustomer(s, customer(d))],
    "customers/update": lambda s, d: [c.ObserveCustomer(s, customer(d))],
    "checkouts/create": _checkout_cmd,
    "checkouts/update": _checkout_cmd,
    "app/uninstalled": lambda s, d: [c.UninstallApp(s)],
    "customers/data_request": _data_request,
    "customers/redact": _redact,
    "shop/redact": lambda s, d: [c.RedactShop(s)],
}


def translate(shop_id: int, topic: str, payload: Any) -> list[c.Command]:
    """Turn one delivery into commands; raise MalformedPayload with a clear reason when it cannot."""
    try:
        return TOPICS[topic](shop_id, without_nul(payload))
    except (KeyError, TypeError, AttributeError) as exc:
        raise MalformedPayload(f"{topic}: unexpected shape ({type(exc).__name__}: {exc})") from exc
