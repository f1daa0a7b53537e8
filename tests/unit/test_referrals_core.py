"""The referral program's pure rules: a shipping address compared as a digest however it was typed (and filled
by both connectors' translations), the fraud checks' order, the program's validation, and the `referrals`
Babel catalogs, which cannot fall behind what the page and the service say."""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract
from babel.messages.pofile import read_po
from jinja2.ext import babel_extract

from app import referrals
from app.core.referrals import OrderFacts, ReferralError, Settings, blocked, mask_email, ship_to
from app.i18n import LOCALES, ROOT
from connectors.shopify import translate as shopify
from connectors.woocommerce import translate as woocommerce

APP = Path(referrals.__file__).parent


def test_one_address_typed_two_ways_is_one_digest_and_no_address_is_none() -> None:
    digest = ship_to("1 Main St", "Apt  4", "Springfield", "12345", "US")
    assert digest is not None and re.fullmatch(r"[0-9a-f]{64}", digest)
    assert ship_to(" 1  main st ", "apt 4", "SPRINGFIELD", "12345 ", "us") == digest
    assert ship_to("2 Main St", "Apt 4", "Springfield", "12345", "US") != digest
    assert ship_to(None, "", "  ", None, "US") is None


def test_both_connectors_fill_the_orders_ship_to() -> None:
    shopify_order = {"id": 1, "currency": "USD", "created_at": "2026-11-01T10:00:00Z",
                     "updated_at": "2026-11-01T10:00:00Z", "total_price": "10.00",
                     "shipping_address": {"address1": "1 Main St", "address2": None, "city": "Springfield",
                                          "zip": "12345", "country_code": "US"}}
    woo_order = {"id": 2, "currency": "USD", "status": "processing", "total": "10.00", "line_items": [],
                 "date_created_gmt": "2026-11-01T10:00:00", "date_modified_gmt": "2026-11-01T10:00:00",
                 "shipping": {"address_1": "1 main st", "address_2": "", "city": "springfield", "postcode": "12345",
                              "country": "US"}}
    expected = ship_to("1 Main St", "", "Springfield", "12345", "US")
    assert shopify.order(shopify_order).ship_to == expected == woocommerce.order(woo_order).ship_to
    assert shopify.order({**shopify_order, "shipping_address": None}).ship_to is None
    empty = {k: "" for k in ("address_1", "address_2", "city", "postcode", "country")}
    assert woocommerce.order({**woo_order, "shipping": empty}).ship_to is None  # a virtual order


FACTS = OrderFacts(referrer_id="100", referrer_email="rita@example.com", referrer_phone="+82 10 5555 0100",
                   referrer_ship_tos=frozenset({"home"}), friend_customer_id="200", order_email="fred@example.com",
                   friend_phone="+82 10 5555 0200", order_ship_to="elsewhere", friend_ordered_before=False,
                   referrer_rewarded_recently=0, cap=2)


@pytest.mark.parametrize(("change", "reason"), [
    ({}, None),
    ({"friend_customer_id": "100"}, "self_referral"),
    ({"order_email": " RITA@example.com"}, "self_referral"),
    ({"friend_phone": "821055550100"}, "self_referral"),
    ({"order_ship_to": "home"}, "self_referral"),
    ({"friend_ordered_before": True}, "existing_customer"),
    ({"referrer_rewarded_recently": 2}, "cap_reached"),
    ({"referrer_rewarded_recently": 9, "cap": None}, None),
    ({"friend_phone": "", "referrer_phone": ""}, None),  # two unknown phones are not one phone
    # The first reason that applies is the one recorded.
    ({"order_ship_to": "home", "friend_ordered_before": True, "referrer_rewarded_recently": 5}, "self_referral"),
    ({"friend_ordered_before": True, "referrer_rewarded_recently": 5}, "existing_customer"),
])
def test_the_first_reason_that_applies_blocks_the_reward(change: dict[str, Any], reason: str | None) -> None:
    found = blocked(replace(FACTS, **change))
    assert (found[0] if found else None) == reason
    assert found is None or found[1]  # always with words for staff


GOOD = Settings(True, "percent", Decimal("10"), 30, 500, None, 30, None, 30)


@pytest.mark.parametrize("change", [{"friend_kind": "bogo"}, {"friend_value": None}, {"friend_value": Decimal("0")},
                                    {"friend_valid_days": True}, {"referrer_points": 0},
                                    {"referrer_reward_id": 3}, {"wait_days": 4000}, {"cap_window_days": 0}])
def test_a_wrong_setting_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ReferralError):
        replace(GOOD, **change)


def test_free_shipping_needs_no_value_and_emails_are_masked() -> None:
    assert replace(GOOD, friend_kind="free_shipping", friend_value=None).friend_kind == "free_shipping"
    assert mask_email("fred@example.com") == "fr***@example.com" and mask_email("nobody") == "***"


# --- the "referrals" catalogs ----------------------------------------------------------------------------------

SOURCES = [(APP / "templates" / "referral.html", babel_extract), (APP / "referrals.py", "python"),
           (APP / "web" / "referrals.py", "python")]


def _extracted() -> set[str]:
    ids: set[str] = set()
    for path, method in SOURCES:
        with path.open("rb") as f:
            for _lineno, message, _comments, _context in extract(method, f):  # type: ignore[arg-type]
                ids.add(message[0] if isinstance(message, tuple) else message)
    return ids


def _catalog(language: str) -> Catalog:
    with (ROOT / language / "LC_MESSAGES" / f"{referrals.DOMAIN}.po").open("rb") as f:
        return read_po(f, locale=language, domain=referrals.DOMAIN)


def test_extraction_finds_the_page_and_the_service_strings() -> None:
    assert {"Shop now", "Get %(percent)s off your first order.", "Please enter a valid email address.",
            "Get %(points)s point for each friend's first order."} <= _extracted()


@pytest.mark.parametrize("language", LOCALES)
def test_each_catalog_has_exactly_the_extracted_msgids_translated_with_their_placeholders(language: str) -> None:
    cat = _catalog(language)
    ids = {str(m.id[0] if isinstance(m.id, tuple) else m.id) for m in cat if m.id}
    assert ids == _extracted()
    assert [(m.id, [str(e) for e in errors]) for m, errors in cat.check()] == []
    for m in cat:
        if not m.id:
            continue
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        assert all(strings) and not m.fuzzy, m.id
        wanted = set(re.findall(r"%\((\w+)\)s", str(m.id[0] if isinstance(m.id, tuple) else m.id)))
        assert all(set(re.findall(r"%\((\w+)\)s", str(text))) == wanted for text in strings), m.id


def test_the_page_speaks_korean_and_japanese() -> None:
    from app.i18n import translations

    assert translations("ko", referrals.DOMAIN).gettext("Shop now") == "쇼핑하러 가기"
    assert translations("ja-JP", referrals.DOMAIN).gettext("Get my code") == "コードを受け取る"
