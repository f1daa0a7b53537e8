"""The storefront loyalty widget in a real headless Chromium, served the way Shopify serves it: the simulated
store's page loads the script and stylesheet from Encore, and the widget's calls go through the simulator's
app proxy, which drops cookies and signs them as Shopify does, to Encore's /proxy/... A logged-in shopper
opens the launcher, sees their balance, redeems a reward, copies the code (read back from the clipboard), and
the code is in the store as a single-use discount for them; Korean labels render; a logged-out shopper is
asked to log in; a refusal shows the server's message and leaves the balance alone; a click retried after a
lost answer is one redemption (the same request key); the optional sections
(referral, badges, streak, stamp card) render when the data has them."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
from sqlalchemy import select

from app import loyalty, rewards, storefront
from app.bootstrap import Container
from app.core.loyalty import Account, Balance, Entry, Posting, Reason
from app.db import models as t

pytestmark = pytest.mark.browser
SHOP = "widget-store.myshopify.com"


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _errors(console: list[str]) -> list[str]:
    # A refused request is answered with its status on purpose (401 log_in, 422): Chromium logs those too.
    return [m for m in console if m.startswith("pageerror") or (m.startswith("error")
                                                                and "favicon.ico" not in m and "status of 4" not in m)]


def installed(live: Any, *, points: int = 1000, locale: str = "en") -> dict[str, Any]:
    """Encore installed in the simulated store for real (managed install), the program on, customer 7001 with
    `points`, and two rewards: $5 off for 400 points and $50 off for 5,000."""
    server, sim, c = live
    sim.add_store(SHOP, name="Widget Store", currency="USD", timezone="UTC", locale=locale)
    assert requests.get(sim.embedded_app_url(SHOP), timeout=10).status_code == 200
    now = datetime.now(UTC)
    with c.sessions() as s, s.begin():
        shop_id = s.scalars(select(t.Shop.id).where(t.Shop.domain == SHOP)).one()
        loyalty.switch_on(s, shop_id, now - timedelta(days=1))
        s.add(t.Customer(shop_id=shop_id, external_id="7001", email="mina@example.com", external_updated_at=now))
        loyalty.post(s, shop_id, "7001", [Posting(Entry(points, Balance.AVAILABLE, Reason.ACTION, "signup"))], now)
        five = rewards.add_reward(s, shop_id, "$5 off", "amount", Decimal("5"), 400, now)
        fifty = rewards.add_reward(s, shop_id, "$50 off", "amount", Decimal("50"), 5000, now)
    return {"id": shop_id, "five": five, "fifty": fifty, "sim": sim, "c": c}


def balance(c: Container, shop_id: int) -> Account:
    with c.sessions() as s:
        return loyalty.balance(s, shop_id, "7001")


def open_widget(page: Any, name: str = "Rewards", title: str = "Your rewards") -> Any:
    expect = _expect()
    launcher = page.get_by_role("button", name=re.compile("^" + re.escape(name)))  # and the points, when known
    expect(launcher).to_have_attribute("aria-expanded", "false")
    launcher.click()
    expect(launcher).to_have_attribute("aria-expanded", "true")
    dialog = page.get_by_role("dialog", name=title)
    expect(dialog).to_be_visible()
    return dialog


def test_a_shopper_redeems_a_reward_copies_the_code_and_it_is_in_the_store(
        live: Any, page: Any, console: list[str]) -> None:
    expect = _expect()
    x = installed(live)
    sim, c = x["sim"], x["c"]
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=sim.origin)
    page.goto(sim.storefront_url(SHOP, customer=7001))
    # the launcher's own light read shows the points before the panel is ever opened
    expect(page.get_by_role("button", name="Rewards · 1,000 points", exact=True)).to_be_visible()
    assert [p["path"] for p in sim.proxied] == ["loyalty/balance"]
    dialog = open_widget(page)
    expect(page.get_by_role("button", name="Close")).to_be_focused()
    expect(dialog.locator("[data-enc=available]")).to_have_text("1,000")
    expect(dialog.get_by_text("$5.00 off · 400 points")).to_be_visible()  # money in the store's currency
    expect(dialog.get_by_role("button", name="Redeem: $50 off")).to_be_disabled()
    expect(dialog.get_by_text("4,000 more points needed")).to_be_visible()

    dialog.get_by_role("button", name="Redeem: $5 off").click()
    result = dialog.get_by_role("group", name="Your code")
    expect(result.locator("code")).to_have_text(re.compile(r"^ENC-\w+$"))
    code = result.locator("code").inner_text()
    expect(dialog.locator("[data-enc=available]")).to_have_text("600")
    result.get_by_role("button", name="Copy").click()
    expect(result.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == code

    held = sim.stores[SHOP].discounts[code.lower()]
    assert held["code"] == code and held["usageLimit"] == 1
    assert Decimal(held["customerGets"]["value"]["discountAmount"]["amount"]) == Decimal("5")
    assert held["customerSelection"]["customers"]["add"] == ["gid://shopify/Customer/7001"]
    assert balance(c, x["id"]) == Account(600, 0)
    expect(dialog.locator(".enc-codes code")).to_have_text([code])
    expect(dialog.locator(".enc-history li")).to_have_count(2)

    # Shopify's proxy: no cookie reached Encore, the request was signed and named the customer
    redeem = next(p for p in sim.proxied if p["path"] == "loyalty/redeem")
    assert "Cookie" not in redeem["headers"] and dict(redeem["params"])["logged_in_customer_id"] == "7001"

    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("button", name="Rewards · 600 points", exact=True)).to_be_focused()
    assert not _errors(console), console


def test_korean_labels_render_for_a_korean_storefront(live: Any, page: Any, console: list[str]) -> None:
    expect = _expect()
    x = installed(live, locale="ko")
    page.goto(x["sim"].storefront_url(SHOP, customer=7001, locale="ko"))
    expect(page.locator("html")).to_have_attribute("lang", "ko")
    dialog = open_widget(page, "리워드", "나의 리워드")
    expect(dialog.get_by_text("사용 가능 포인트")).to_be_visible()
    expect(dialog.get_by_role("button", name="교환하기: $5 off")).to_be_enabled()
    expect(dialog.get_by_role("heading", name="포인트 내역")).to_be_visible()
    assert not _errors(console), console


def test_a_logged_out_shopper_is_asked_to_log_in(live: Any, page: Any, console: list[str]) -> None:
    expect = _expect()
    x = installed(live)
    page.goto(x["sim"].storefront_url(SHOP, customer=7001))
    page.goto(x["sim"].storefront_url(SHOP))  # the store logs them out: the proxy names nobody
    dialog = open_widget(page)
    expect(dialog.get_by_text("Log in to see your points")).to_be_visible()
    expect(dialog.get_by_role("button", name=re.compile("^Redeem"))).to_have_count(0)
    assert dict(x["sim"].proxied[-1]["params"])["logged_in_customer_id"] == ""
    assert not _errors(console), console


def test_a_refused_redemption_shows_the_servers_message_and_changes_nothing(
        live: Any, page: Any, console: list[str]) -> None:
    expect = _expect()
    x = installed(live, points=500)
    sim, c = x["sim"], x["c"]
    page.goto(sim.storefront_url(SHOP, customer=7001))
    dialog = open_widget(page)
    expect(dialog.locator("[data-enc=available]")).to_have_text("500")
    with c.sessions() as s, s.begin():  # spent elsewhere (another tab) while this panel was open
        loyalty.adjust(s, x["id"], "7001", -300, "staff", "spent elsewhere", "elsewhere-1", datetime.now(UTC))

    dialog.get_by_role("button", name="Redeem: $5 off").click()
    expect(dialog.get_by_role("alert")).to_have_text(storefront.LABELS["refused_not_enough_points"])
    expect(dialog.locator("[data-enc=available]")).to_have_text("200")  # what the account really holds
    expect(dialog.get_by_role("button", name="Redeem: $5 off")).to_be_disabled()
    assert balance(c, x["id"]) == Account(200, 0) and sim.stores[SHOP].discounts == {}
    assert not _errors(console), console


def test_referral_badges_streak_and_stamp_card_render_when_the_data_has_them(
        live: Any, page: Any, console: list[str]) -> None:
    expect = _expect()
    x = installed(live)
    fixture: dict[str, Any] = {
        "enabled": True, "currency": "USD", "locale": "en", "labels": storefront.labels("en"),
        "points": {"available": 1200, "pending": 150}, "tier": None, "rewards": [], "codes": [], "history": [],
        "referral": {"code": "K7Q2M9XA", "link": "https://shop.example/apps/encore/r/K7Q2M9XA",
                     "friend_offer": "10% off a first order", "referrer_offer": "500 points", "invited": 3,
                     "rewarded": 1},
        "badges": [{"key": "first_order", "name": "First order", "description": "Placed a first order",
                    "earned_at": "2026-11-01T10:00:00+00:00"},
                   {"key": "regular", "name": "Regular", "description": "Five orders", "earned_at": None}],
        "streak": {"months": 3, "best": 5},
        "stamp": {"every": 5, "stamps": 3, "reward": "Free shipping", "cards_filled": 1},
    }
    page.route(re.compile(r".*/apps/encore/loyalty\?.*"),
               lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(fixture)))
    page.add_init_script("navigator.share = (data) => { window.__shared = data; return Promise.resolve(); };")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=x["sim"].origin)
    page.goto(x["sim"].storefront_url(SHOP, customer=7001))
    dialog = open_widget(page)
    expect(dialog.locator("[data-enc=pending]")).to_have_text("150")

    referral = dialog.get_by_role("region", name="Refer a friend")
    expect(referral.get_by_text("Your friend gets 10% off a first order")).to_be_visible()
    expect(referral.get_by_text("You get 500 points")).to_be_visible()
    expect(referral.get_by_label("Your referral link")).to_have_value(fixture["referral"]["link"])
    expect(referral.get_by_text("3 invited, 1 rewarded")).to_be_visible()
    referral.get_by_role("button", name="Copy").click()
    expect(referral.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == fixture["referral"]["link"]
    referral.get_by_role("button", name="Share").click()
    assert page.evaluate("window.__shared.url") == fixture["referral"]["link"]

    badges = dialog.get_by_role("region", name="Badges")
    expect(badges.locator("li")).to_have_count(2)
    expect(badges.locator("li.enc-earned")).to_contain_text("First order")
    expect(badges.get_by_text("Not earned yet")).to_be_visible()
    expect(dialog.get_by_role("region", name="Streak")).to_contain_text("3 months in a row")
    stamp = dialog.get_by_role("region", name="Stamp card")
    expect(stamp.locator(".enc-dot")).to_have_count(5)
    expect(stamp.locator(".enc-dot.enc-on")).to_have_count(3)
    expect(stamp.get_by_text("3 of 5 stamps")).to_be_visible()
    expect(stamp.get_by_text("A full card gets you: Free shipping")).to_be_visible()
    assert not _errors(console), console


def test_the_sections_are_left_out_when_the_data_has_none(live: Any, page: Any, console: list[str]) -> None:
    expect = _expect()
    x = installed(live)
    fixture = {"enabled": True, "currency": "USD", "locale": "en", "labels": storefront.labels("en"),
               "points": {"available": 80, "pending": 0}, "tier": None, "rewards": [], "codes": [], "history": [],
               "referral": None, "badges": [], "stamp": None}  # and no streak at all
    page.route(re.compile(r".*/apps/encore/loyalty\?.*"),
               lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(fixture)))
    page.goto(x["sim"].storefront_url(SHOP, customer=7001))
    dialog = open_widget(page)
    expect(dialog.locator("[data-enc=available]")).to_have_text("80")
    expect(dialog.get_by_role("region", name="History")).to_contain_text("No points activity yet.")
    for name in ("Refer a friend", "Badges", "Streak", "Stamp card"):
        expect(dialog.get_by_role("region", name=name)).to_have_count(0)
    assert not _errors(console), console


def test_a_click_retried_after_a_lost_answer_is_one_redemption(live: Any, page: Any) -> None:
    expect = _expect()
    x = installed(live)
    sim, c = x["sim"], x["c"]
    keys: list[str] = []

    def flaky(route: Any) -> None:  # the first attempt reaches Encore but its answer is lost on the way back
        keys.append(json.loads(route.request.post_data)["request_key"])
        if len(keys) == 1:
            assert route.fetch().status == 201
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route(re.compile(r".*/apps/encore/loyalty/redeem\?.*"), flaky)
    page.goto(sim.storefront_url(SHOP, customer=7001))
    dialog = open_widget(page)
    dialog.get_by_role("button", name="Redeem: $5 off").click()
    expect(dialog.get_by_role("group", name="Your code").locator("code")).to_have_text(re.compile(r"^ENC-"))
    assert len(keys) == 2 and keys[0] == keys[1] and re.fullmatch(r"[0-9a-f-]{36}", keys[0])
    assert len(sim.stores[SHOP].discounts) == 1 and balance(c, x["id"]) == Account(600, 0)

    dialog.get_by_role("button", name="Redeem: $5 off").click()  # a new click is a new redemption
    expect(dialog.locator(".enc-codes code")).to_have_count(2)
    assert len(keys) == 3 and keys[2] != keys[0] and balance(c, x["id"]) == Account(200, 0)


def test_a_click_answered_5xx_by_the_app_proxy_keeps_its_key(live: Any, page: Any) -> None:
    expect = _expect()
    x = installed(live)
    sim, c = x["sim"], x["c"]
    keys: list[str] = []

    def down(route: Any) -> None:  # the first reaches Encore, then its tier is gone: the app proxy answers 502
        keys.append(json.loads(route.request.post_data)["request_key"])
        if len(keys) == 1:
            assert route.fetch().status == 201
            route.fulfill(status=502, body="Bad gateway")
        elif len(keys) == 2:
            route.fulfill(status=502, body="Bad gateway")
        else:
            route.continue_()

    page.route(re.compile(r".*/apps/encore/loyalty/redeem\?.*"), down)
    page.goto(sim.storefront_url(SHOP, customer=7001))
    dialog = open_widget(page)
    dialog.get_by_role("button", name="Redeem: $5 off").click()
    expect(dialog.locator(".enc-notice")).to_be_visible()  # the error shows (the widget retried once)
    dialog.get_by_role("button", name="Redeem: $5 off").click()  # pressed again: the same redemption
    expect(dialog.get_by_role("group", name="Your code").locator("code")).to_have_text(re.compile(r"^ENC-"))
    assert len(keys) == 3 and len(set(keys)) == 1
    assert len(sim.stores[SHOP].discounts) == 1 and balance(c, x["id"]) == Account(600, 0)
