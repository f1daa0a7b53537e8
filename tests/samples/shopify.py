"""Public Shopify sample payloads, trimmed to the fields Encore reads (values kept verbatim).

ORDER, FULFILLMENT, REFUND and CUSTOMER: Shopify's canonical example records (order 450789469,
customer 207119551) as published in Shopify/shopify_python_api, test/fixtures/order.json
(commit bf871c76), fulfillment.json (58462b43), refund.json (2f53a7c8) and customer.json (fe89aef2).
DATA_REQUEST, CUSTOMER_REDACT and SHOP_REDACT: the example payloads of Shopify's "Privacy law
compliance" page (shopify.dev/docs/apps/build/compliance/privacy-law-compliance).
"""

from __future__ import annotations

from typing import Any

BOB = {
    "accepts_marketing": False, "created_at": "2014-01-22T15:58:27-05:00", "email": "bob.norman@hostmail.com",
    "first_name": "Bob", "id": 207119551, "last_name": "Norman", "orders_count": 0, "state": "disabled",
    "total_spent": "0.00", "updated_at": "2014-01-22T15:58:27-05:00", "verified_email": True, "tags": "",
}

ORDER: dict[str, Any] = {
    "buyer_accepts_marketing": False, "cancel_reason": None, "cancelled_at": None, "closed_at": None,
    "created_at": "2008-01-10T11:00:00-05:00", "currency": "USD", "email": "bob.norman@hostmail.com",
    "financial_status": "authorized", "fulfillment_status": None, "id": 450789469, "name": "#1001",
    "subtotal_price": "398.00", "total_discounts": "0.00", "total_line_items_price": "398.00",
    "total_price": "409.94", "total_tax": "11.94", "updated_at": "2008-01-10T11:00:00-05:00", "order_number": 1001,
    "discount_codes": [{"code": "TENOFF", "amount": "10.00"}],
    "line_items": [
        {"fulfillment_service": "manual", "fulfillment_status": None, "grams": 200, "id": 466157049, "price": "199.00",
         "product_id": 632910392, "quantity": 1, "requires_shipping": True, "sku": "IPOD2008GREEN",
         "title": "IPod Nano - 8gb", "variant_id": 39072856, "variant_title": "green", "vendor": None,
         "name": "IPod Nano - 8gb - green"},
        {"fulfillment_service": "manual", "fulfillment_status": None, "grams": 200, "id": 518995019, "price": "199.00",
         "product_id": 632910392, "quantity": 1, "requires_shipping": True, "sku": "IPOD2008RED",
         "title": "IPod Nano - 8gb", "variant_id": 49148385, "variant_title": "red", "vendor": None,
         "name": "IPod Nano - 8gb - red"},
        {"fulfillment_service": "manual", "fulfillment_status": None, "grams": 200, "id": 703073504, "price": "199.00",
         "product_id": 632910392, "quantity": 1, "requires_shipping": True, "sku": "IPOD2008BLACK",
         "title": "IPod Nano - 8gb", "variant_id": 457924702, "variant_title": "black", "vendor": None,
         "name": "IPod Nano - 8gb - black"},
    ],
    "shipping_lines": [{"code": "Free Shipping", "price": "0.00", "source": "shopify", "title": "Free Shipping"}],
    "fulfillments": [
        {"created_at": "2014-01-22T15:58:27-05:00", "id": 255858046, "order_id": 450789469, "service": "manual",
         "status": "failure", "tracking_company": None, "updated_at": "2014-01-22T15:58:27-05:00",
         "tracking_number": "1Z2345", "tracking_numbers": ["1Z2345"],
         "tracking_url": "http://wwwapps.ups.com/etracking/tracking.cgi?InquiryNumber1=1Z2345&TypeOfInquiryNumber=T"
                         "&AcceptUPSLicenseAgreement=yes&submit=Track"},
    ],
    "customer": BOB,
}

FULFILLMENT: dict[str, Any] = {
    "created_at": "2013-11-01T16:06:08-04:00", "id": 255858046, "order_id": 450789469, "service": "manual",
    "status": "pending", "tracking_company": "null-company", "updated_at": "2013-11-01T16:06:08-04:00",
    "tracking_number": "1Z2345", "tracking_numbers": ["1Z2345"], "tracking_url": "http://www.google.com/search?q=1Z2345",
    "tracking_urls": ["http://www.google.com/search?q=1Z2345"],
}

REFUND: dict[str, Any] = {
    "id": 509562969, "order_id": 450789469, "created_at": "2016-06-20T13:35:06-04:00", "note": "it broke during shipping",
    "restock": True, "user_id": 799407056,
    "refund_line_items": [
        {"id": 104689539, "quantity": 1, "line_item_id": 703073504},
        {"id": 709875399, "quantity": 1, "line_item_id": 466157049},
    ],
    "transactions": [
        {"id": 179259969, "order_id": 450789469, "amount": "209.00", "kind": "refund", "gateway": "bogus",
         "status": "success", "created_at": "2005-08-05T12:59:12-04:00", "currency": "USD"},
    ],
    "order_adjustments": [],
}

CUSTOMER: dict[str, Any] = {
    "accepts_marketing": False, "created_at": "2015-05-27T18:11:24-04:00", "email": "bob.norman@hostmail.com",
    "first_name": "Bob", "id": 207119551, "last_name": "Norman", "last_order_id": 450789469, "orders_count": 1,
    "state": "disabled", "tax_exempt": False, "total_spent": "41.94", "updated_at": "2015-05-27T18:11:24-04:00",
    "verified_email": True, "tags": "", "last_order_name": "#1001",
}

DATA_REQUEST: dict[str, Any] = {
    "shop_id": 954889, "shop_domain": "{shop}.myshopify.com", "orders_requested": [299938, 280263, 220458],
    "customer": {"id": 191167, "email": "john@example.com", "phone": "555-625-1199"}, "data_request": {"id": 9999},
}

CUSTOMER_REDACT: dict[str, Any] = {
    "shop_id": 954889, "shop_domain": "{shop}.myshopify.com",
    "customer": {"id": 191167, "email": "john@example.com", "phone": "555-625-1199"},
    "orders_to_redact": [299938, 280263, 220458],
}

SHOP_REDACT: dict[str, Any] = {"shop_id": 954889, "shop_domain": "{shop}.myshopify.com"}
