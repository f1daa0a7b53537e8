"""WooCommerce payloads -> the core's commands. Pure; tested on a real WooCommerce 9.4 capture.

Webhook bodies are the REST API (wc/v3) representation of the resource when the delivery is sent
(`WC_Webhook::build_payload`); `*.deleted` bodies are only {"id": N}. Shapes follow
WC_REST_Orders_V2_Controller::get_formatted_item_data and WC_REST_Customers_V2_Controller:

* money is a decimal string ("25.00"), except a line item's `price`, a PHP float (`total / quantity`, after
  discounts), which is not used here;
* `*_gmt` times are "YYYY-MM-DDTHH:MM:SS" with no zone: they are UTC (`wc_rest_prepare_date_response`);
* statuses come without their "wc-" prefix; `customer_id` 0 is a guest;
* the `refunds` array is a summary, {id, reason, total}, with `total` negative ("-5.00") and no date.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.core import commands as c
from app.core import model as m
from app.core.referrals import ship_to
from connectors.base import MalformedPayload
from connectors.payload import codes, required_when, when, without_nul
from connectors.payload import ident as _id
from connectors.payload import money as _money
from connectors.payload import obj as _obj
from connectors.payload import opt as _opt


def _time(data: Mapping[str, Any], key: str, required: bool = True) -> datetime | None:
    """A `*_gmt` time: no zone in the payload because it is UTC; an explicit offset is honoured."""
    return when(data, key, required, naive_is_utc=True)


def _req_time(data: Mapping[str, Any], key: str) -> datetime:
    return required_when(data, key, naive_is_utc=True)

PAYMENT = {
    "pending": m.PaymentStatus.PENDING,
    "on-hold": m.PaymentStatus.AUTHORIZED,
    "processing": m.PaymentStatus.PAID,
    "completed": m.PaymentStatus.PAID,
    "cancelled": m.PaymentStatus.VOIDED,
    "refunded": m.PaymentStatus.REFUNDED,
    "failed": m.PaymentStatus.VOIDED,
}
IGNORED_STATUSES = frozenset({"checkout-draft"})  # the block checkout's cart-in-progress, not an order yet
TRACKING_META = "_wc_shipment_tracking_items"  # WooCommerce Shipment Tracking, and AST, which reuses its key
_UNIT_PRICE_PLACES = Decimal("0.0001")  # the precision of the money columns (Numeric(14, 4))


def _opt_id(data: Mapping[str, Any], key: str) -> str | None:
    """Optional references (customer_id, product_id, variation_id): WooCommerce writes 0 for none."""
    value = data.get(key)
    if value is None or isinstance(value, int | str) and str(value).strip() in ("", "0"):
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise MalformedPayload(f"invalid '{key}': {value!r}")
    return str(value).strip()


def customer(data: Any) -> m.CustomerRecord:
    data = _obj(data)
    if "email" not in data or "line_items" in data:
        raise MalformedPayload("not a customer: no 'email' field, or an order's 'line_items'")
    billing = _obj(data.get("billing") or {}, "'billing'")
    return m.CustomerRecord(
        external_id=_id(data),
        # date_modified can be null (wc_rest_prepare_date_response returns null when the customer has none).
        updated_at=_time(data, "date_modified_gmt", False) or _req_time(data, "date_created_gmt"),
        created_at=_time(data, "date_created_gmt", False),
        email=_opt(data.get("email")),
        phone=_opt(billing.get("phone")),
        first_name=_opt(data.get("first_name")),
        last_name=_opt(data.get("last_name")),
    )


def _quantity(data: Mapping[str, Any]) -> int:
    value = data.get("quantity")
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().lstrip("-").isdigit():
        raise MalformedPayload(f"line quantity is not a whole number: {value!r}")
    return int(value)


def line(data: Any) -> m.OrderLine:
    """Price is the unit price before discounts (subtotal / quantity); the line's discount is subtotal - total."""
    data = _obj(data, "a line item")
    quantity = _quantity(data)
    subtotal = _money(data, "subtotal")
    price = subtotal / quantity if quantity else subtotal
    if price.as_tuple().exponent < -4:  # type: ignore[operator]  # finite: _money checked
        price = price.quantize(_UNIT_PRICE_PLACES)
    return m.OrderLine(
        external_id=_id(data), title=str(data.get("name") or ""), quantity=quantity, price=price,
        total_discount=subtotal - _money(data, "total", str(subtotal)),
        product_id=_opt_id(data, "product_id"), variant_id=_opt_id(data, "variation_id"),
        sku=_opt(data.get("sku")),
    )


def _web_link(value: Any) -> str | None:
    """Only http(s) links: the meta is free text any plug-in or shop manager writes, and it ends up in emails."""
    link = _opt(value)
    return link.strip() if link and link.strip().lower().startswith(("https://", "http://")) else None


def _tracking(data: Mapping[str, Any]) -> m.Tracking:
    """The latest entry of the shipment-tracking meta (the plug-ins append), the custom provider's name and link
    first, as the plug-in itself shows them; a plug-in's odd data never parks the order."""
    metas = data.get("meta_data")
    metas = metas if isinstance(metas, list) else []
    items = next((x.get("value") for x in metas if isinstance(x, Mapping) and x.get("key") == TRACKING_META), None)
    entries = [x for x in items if isinstance(x, Mapping)] if isinstance(items, list) else []
    if not entries:
        return m.Tracking()
    last = entries[-1]
    return m.Tracking(
        company=_opt(last.get("custom_tracking_provider")) or _opt(last.get("tracking_provider")),
        number=_opt(last.get("tracking_number")),
        url=_web_link(last.get("custom_tracking_link")),
    )


def _completion(data: Mapping[str, Any], order_id: str, modified: datetime) -> m.Fulfillment:
    """WooCommerce has no fulfillments: "completed" means shipped, so it stands for one.

    updated_at is the order's modification time, not date_completed_gmt: tracking is often added after the
    order is completed, and the model keeps the fulfillment with the newest updated_at.
    """
    completed = _time(data, "date_completed_gmt", False) or modified
    return m.Fulfillment(
        external_id=f"completed-{order_id}", created_at=completed, updated_at=max(completed, modified),
        status="success", tracking=_tracking(data),
    )


def _refunds(data: Mapping[str, Any], modified: datetime) -> tuple[m.Refund, ...]:
    """The summary has no date, so a refund is dated by the order version that carries it (the model keeps the
    first version of a refund it stores, so in effect the first one seen)."""
    summary = data.get("refunds") or []
    if not isinstance(summary, list):
        raise MalformedPayload("'refunds' is not a list")
    return tuple(sorted(
        (m.Refund(external_id=_id(r), created_at=modified, amount=abs(_money(r, "total")))
         for r in (_obj(x, "a refund") for x in summary)),
        key=lambda r: r.external_id,
    ))


def order(data: Any) -> m.OrderRecord:
    data = _obj(data)
    order_id = _id(data)
    currency = data.get("currency")
    if not isinstance(currency, str) or len(currency) != 3:
        raise MalformedPayload("missing or invalid 'currency'")
    status = data.get("status")
    if not isinstance(status, str) or not status:
        raise MalformedPayload("missing or invalid 'status'")
    items = data.get("line_items") or []
    if not isinstance(items, list):
        raise MalformedPayload("'line_items' is not a list")
    lines = [line(x) for x in items]
    modified = _req_time(data, "date_modified_gmt")
    billing = _obj(data.get("billing") or {}, "'billing'")
    return m.OrderRecord(
        external_id=order_id, name=f"#{_opt(data.get('number')) or order_id}",
        created_at=_req_time(data, "date_created_gmt"), updated_at=modified,
        processed_at=_time(data, "date_paid_gmt", False),
        cancelled_at=modified if status == "cancelled" else None,
        currency=currency.upper(), total=_money(data, "total"),
        # WooCommerce's own get_subtotal(): the lines before discounts, without tax or shipping.
        subtotal=sum((_money(x, "subtotal") for x in items), Decimal("0")),
        total_tax=_money(data, "total_tax", "0"), total_discounts=_money(data, "discount_total", "0"),
        total_shipping=_money(data, "shipping_total", "0"),
        payment=_payment(status, data),
        customer_id=_opt_id(data, "customer_id"),
        email=_opt(billing.get("email")),
        lines=tuple(sorted(lines, key=lambda x: x.external_id)),
        discount_codes=codes(str(x.get("code") or "") for x in data.get("coupon_lines") or [] if isinstance(x, Mapping)),
        ship_to=_ship_to(data.get("shipping")),
        fulfillments=(_completion(data, order_id, modified),) if status == "completed" else (),
        refunds=_refunds(data, modified),
    )


def _ship_to(address: Any) -> str | None:
    if not isinstance(address, Mapping):
        return None
    return ship_to(address.get("address_1"), address.get("address_2"), address.get("city"), address.get("postcode"),
                   address.get("country"))


def _payment(status: str, data: Mapping[str, Any]) -> m.PaymentStatus:
    """Statuses added by plug-ins ("shipped", "partial-shipped", ...) fall back on whether the order was paid."""
    known = PAYMENT.get(status)
    if known is not None:
        return known
    return m.PaymentStatus.PAID if _time(data, "date_paid_gmt", False) else m.PaymentStatus.PENDING


def _order_cmd(shop_id: int, data: Any) -> list[c.Command]:
    if _obj(data).get("status") in IGNORED_STATUSES:
        return []
    return [c.ObserveOrder(shop_id, order(data))]  # the body names its customer by id only: no profile to add


def _order_deleted(shop_id: int, data: Any) -> list[c.Command]:
    # The body is only {"id": N}: WooCommerce trashed (or deleted) the order. What Encore does with that is
    # decided later; until then the id is checked and nothing else happens.
    _id(_obj(data))
    return []


TOPICS: dict[str, Callable[[int, Any], list[c.Command]]] = {
    "order.created": _order_cmd,
    "order.updated": _order_cmd,
    "order.deleted": _order_deleted,
    "customer.created": lambda s, d: [c.ObserveCustomer(s, customer(d))],
    "customer.updated": lambda s, d: [c.ObserveCustomer(s, customer(d))],
}


def translate(shop_id: int, topic: str, payload: Any) -> list[c.Command]:
    """Turn one delivery into commands; raise MalformedPayload with a clear reason when it cannot."""
    handler = TOPICS.get(topic)
    if handler is None:
        raise MalformedPayload(f"{topic!r}: not a WooCommerce topic Encore handles")
    try:
        return handler(shop_id, without_nul(payload))
    except (KeyError, TypeError, AttributeError) as exc:
        raise MalformedPayload(f"{topic}: unexpected shape ({type(exc).__name__}: {exc})") from exc
