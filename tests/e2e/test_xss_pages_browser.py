"""Markup in merchant and customer text, in a real Chromium, on every page beyond the follow-up list and the survey
answer (tests/e2e/test_xss_browser.py): text holding `<script>`, an `onerror` image and a `javascript:` link shows as
typed and never runs, and no element of it reaches the page.

- The store admin, opened with Encore's session token: the embedded admin (shop name, order names, a tracking
  number and a `javascript:` tracking URL, a parked delivery's error, a data export's customer id), the journeys
  editor (a parked message's error, a template problem naming what the merchant typed, and a merchant's template
  whose own `<script>` and `onerror` the preview shows in a frame sandboxed without scripts: neither runs, there or
  in the admin), the loyalty page (reward titles, tier names and perks, a customer's name, ledger notes and staff),
  its referrals view (a friend's email, a blocked referral's detail), the segments page (a segment's name and a
  rule's value), the analytics page (a segment's name, a customer's name, a failed refresh's error), the follow-up
  page (an order name, a resolution note by staff, an alert's error), and a page inside Shopify admin opened with
  markup in its `host` parameter.
- The storefront and the links customers get: the loyalty widget on the simulated store (reward titles, the tier,
  its perks, the next tier, the stamp card's reward, a redemption), the referral landing page (shop name, an email
  typed back), the preference center (shop name, first name), the survey page (shop name, order name), the
  WooCommerce connect answer for a store URL holding markup, and the development outbox (the merchant's alert
  about a low answer: the customer's name in its subject, their comment in its HTML and text).

Each page is checked the same way (`inert`): `window.__xss` is unset, no dialog opened, no `<script>` of the payload,
no `img[src=x]` nor any element with an inline event-handler attribute, no link, frame or form to `javascript:`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select, update

from app import feedback, links, referrals, surveys, tiers
from app.channels.outbox import OutboxChannel
from app.core.referrals import mask_email
from app.core.tiers import Tier
from app.db import models as t
from app.web.auth import issue_admin_token
from tests import analytics_data
from tests.e2e.test_widget_browser import SHOP as WIDGET_SHOP
from tests.e2e.test_widget_browser import installed, open_widget
from tests.fakes import FakeStorePlatform
from tests.integration.test_storefront_proxy import signed
from tests.integration.test_surveys import NOW, seed
from tests.integration.test_tenant_isolation import _populate
from tests.journeys import Clock

pytestmark = pytest.mark.browser

PAYLOAD = ('zx"><script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
           '<a href="javascript:window.__xss=3">j</a>')
SHORT = '"><img src=x onerror=window.__xss=4>'  # fits the 32- and 64-character columns
JS_URL = "javascript:window.__xss=5"

# What would be on the page if any of the payload had been parsed as markup, and whether anything of it ran.
INERT = """() => {
  const scripts = [...document.querySelectorAll("script")].filter((s) => s.textContent.includes("__xss")).length;
  const handlers = [...document.querySelectorAll("*")].filter((el) =>
    [...el.attributes].some((a) => /^on/i.test(a.name))).length;
  const js = [...document.querySelectorAll("a[href], area[href], iframe[src], form[action], [formaction]")].filter(
    (el) => /^\\s*javascript:/i.test(el.getAttribute("href") || el.getAttribute("src") ||
                                      el.getAttribute("action") || el.getAttribute("formaction") || "")).length;
  return {ran: window.__xss === undefined ? null : String(window.__xss), scripts, handlers, js,
          images: document.querySelectorAll('img[src="x"]').length};
}"""
CLEAN = {"ran": None, "scripts": 0, "handlers": 0, "js": 0, "images": 0}


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def inert(page: Any, where: str, dialogs: list[str]) -> None:
    """Nothing of the payload is markup in the page, nothing of it ran, and no dialog opened. (A frame sandboxed
    without scripts, the journeys preview and the outbox's email, is checked where it is shown.)"""
    assert page.evaluate(INERT) == CLEAN, where
    assert dialogs == [], where


def _watch(page: Any) -> list[str]:
    dialogs: list[str] = []

    def seen(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", seen)
    return dialogs


def _post(page: Any, url: str, token: str) -> None:
    """Open a store admin page the way the WordPress plugin does: Encore's session token in a form post."""
    page.set_content(f'<form method="post" action="{url}"><input name="token" value="{token}">'
                     '<input name="locale" value="en"></form>')
    with page.expect_navigation():
        page.evaluate("document.forms[0].submit()")


def _seed_admin(c: Any, store: FakeStorePlatform) -> Any:
    """A shop with data in every table (tests/integration/test_tenant_isolation.py), its text then made markup."""
    c.clock = Clock(NOW)
    shop = _populate(c, "zqa", "71001", store)
    analytics_data.add_metrics(c, shop.id, [{"customer_external_id": shop.customer}])
    analytics_data.add_run(c, shop.id, None, status="failed", at=NOW - timedelta(minutes=5), error=PAYLOAD)
    with c.sessions() as s, s.begin():
        s.execute(update(t.Shop).where(t.Shop.id == shop.id).values(name=PAYLOAD))
        s.execute(update(t.Customer).where(t.Customer.shop_id == shop.id).values(first_name=PAYLOAD, last_name=SHORT))
        s.execute(update(t.Order).where(t.Order.shop_id == shop.id).values(name=SHORT))
        order_id = s.scalars(select(t.Order.id).where(t.Order.shop_id == shop.id)).one()
        s.add(t.Fulfillment(shop_id=shop.id, order_id=order_id, external_id="f-1", status="success",
                            tracking_number=PAYLOAD, tracking_url=JS_URL, created_at=NOW, external_updated_at=NOW))
        s.execute(update(t.InboxRow).where(t.InboxRow.shop_id == shop.id).values(last_error=PAYLOAD))
        s.execute(update(t.DataExport).where(t.DataExport.shop_id == shop.id).values(customer_external_id=SHORT))
        s.execute(update(t.Reward).where(t.Reward.shop_id == shop.id).values(title=PAYLOAD))
        s.execute(update(t.Segment).where(t.Segment.shop_id == shop.id).values(name=PAYLOAD, rules={
            "match": "all", "rules": [{"field": "bought_product", "op": "any", "value": [PAYLOAD]}]}))
        s.execute(update(t.SurveyResponse).where(t.SurveyResponse.shop_id == shop.id).values(comment=PAYLOAD))
        s.execute(update(t.FeedbackItem).where(t.FeedbackItem.shop_id == shop.id).values(
            status="resolved", resolved_by=SHORT, resolution_note=PAYLOAD, resolved_at=NOW, alert_status="failed",
            alert_error=PAYLOAD))
        s.execute(update(t.LedgerEntry).where(t.LedgerEntry.shop_id == shop.id).values(staff=SHORT, note=PAYLOAD))
        s.execute(update(t.Referral).where(t.Referral.shop_id == shop.id).values(
            friend_email="zz@" + PAYLOAD, status="blocked", blocked_reason="self_referral", detail=PAYLOAD))
        s.execute(update(t.Message).where(t.Message.id == shop.message).values(
            status="parked", error=PAYLOAD, sent_at=None, due_at=datetime.now(UTC)))  # within the figures' 30 days
        tiers.set_tiers(s, shop.id, [Tier("member", SHORT, Decimal("0"), perks=(PAYLOAD,))], NOW)
        s.execute(update(t.LoyaltyAccount).where(t.LoyaltyAccount.shop_id == shop.id).values(tier="member"))
    return shop


def test_store_admin_pages_show_markup_as_text(live: Any, page: Any, store: FakeStorePlatform) -> None:
    server, _, c = live
    expect = _expect()
    dialogs = _watch(page)
    shop = _seed_admin(c, store)
    token = issue_admin_token(c, shop.id, shop.domain)

    # The embedded admin: shop name, orders with their tracking, parked deliveries, data exports.
    _post(page, f"{server.url}/admin/home", token)
    expect(page.locator("#shop-name")).to_have_text(PAYLOAD)
    order = page.locator("#orders tbody tr")
    expect(order).to_have_count(1)
    expect(order.locator("td").first).to_have_text(SHORT)
    expect(order.locator("td").nth(3)).to_have_text(PAYLOAD)  # a tracking number; its javascript: URL is no link
    assert order.locator("a").count() == 0
    expect(page.locator("#parked tbody tr td").nth(2)).to_have_text(PAYLOAD)
    expect(page.locator("#exports li")).to_contain_text(f"({SHORT})")
    inert(page, "embedded admin", dialogs)

    # The journeys editor: a parked message's error, and a merchant's own template in the sandboxed preview.
    page.locator('#journeys tr[data-key="survey"] button.title').click()
    expect(page.locator("#failed tbody tr td").nth(3)).to_have_text(PAYLOAD)
    step = page.locator('#editor [data-step="message"]')
    frame = step.locator(".preview-frame")
    own = ("<p id=\"own\">{{ '" + SHORT + "' }}</p>"  # markup the template makes from text is escaped
           '<script>document.body.dataset.ran = "script"; parent.__xss = 6</script>'
           '<img src=x onerror="document.body.dataset.ran = \'img\'; parent.__xss = 7">')
    step.locator('[data-f="subject"]').fill("Hi {{ '" + SHORT + "' }}")
    expect(step.locator(".preview-subject")).to_have_text("Hi " + SHORT)
    step.locator('[data-f="html"]').fill(own)
    preview = step.frame_locator(".preview-frame")
    expect(preview.locator("#own")).to_have_text(SHORT)
    expect(preview.locator("script")).to_have_count(1)  # the merchant's own script is in the frame...
    shown = next(f for f in page.frames if f.url == "about:srcdoc")
    shown.wait_for_function("() => document.images.length === 1 && document.images[0].complete")  # x failed
    assert shown.evaluate("document.body.dataset.ran") is None  # ...and neither it nor the onerror ran
    assert page.evaluate("window.__xss") is None
    assert frame.get_attribute("sandbox") == ""  # why: no allow-scripts, no allow-same-origin
    # A template mistake names what the merchant typed, as text.
    step.locator('[data-f="html"]').fill("<p>{{ order['" + SHORT[1:] + "'].x }}</p>")
    expect(step.locator('.problem[data-problem="html"]')).to_contain_text(f"has no attribute '{SHORT[1:]}'")
    inert(page, "journeys editor", dialogs)

    # The loyalty page: reward titles, tiers, a customer's ledger.
    page.locator("#loyalty-link").click()
    reward = page.locator("#rewards tbody tr")
    expect(reward).to_have_count(1)
    expect(reward.locator('[name="title"]')).to_have_value(PAYLOAD)
    expect(reward.get_by_role("switch")).to_have_attribute("aria-label", PAYLOAD)
    tier = page.locator("#tiers tbody tr")
    expect(tier.locator('[name="name"]')).to_have_value(SHORT)
    expect(tier.locator('[name="perks"]')).to_have_value(PAYLOAD)
    page.locator("#customer-q").fill(shop.email)
    page.locator("#customer-search").get_by_role("button").click()
    expect(page.locator("#ledger-who")).to_have_text(f"{PAYLOAD} {SHORT} · {shop.email} · #{shop.customer}")
    expect(page.locator('#ledger dd[data-k="tier"]')).to_have_text(SHORT)
    expect(page.locator('#entries td[data-k="note"]')).to_have_text([PAYLOAD, PAYLOAD])  # earned, then spent
    expect(page.locator('#entries td[data-k="staff"]')).to_have_text([SHORT, SHORT])
    inert(page, "loyalty page", dialogs)

    # Its referrals view: the friend's email (masked) and why the referral is blocked.
    page.locator("#referrals-link").click()
    row = page.locator("#referral-list tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator('[data-k="friend"]')).to_have_text(mask_email("zz@" + PAYLOAD))
    expect(row.locator('[data-k="detail"]')).to_have_text(PAYLOAD)
    inert(page, "referrals view", dialogs)

    # The segments page: a segment's name, and its rule's value in the builder.
    _post(page, f"{server.url}/admin/segments", token)
    mine = page.locator("#mine tbody tr")
    expect(mine.locator('[data-k="name"]')).to_have_text(PAYLOAD)
    mine.get_by_role("button").first.click()
    expect(page.locator('#rules [name="value"]')).to_have_value(PAYLOAD)
    inert(page, "segments page", dialogs)

    # The analytics page: segment names (bars, table, description), a customer, a failed refresh's error.
    _post(page, f"{server.url}/admin/analytics", token)
    expect(page.locator("#customer-table tbody tr")).to_have_count(1)
    expect(page.locator("#customer-table tbody tr")).to_contain_text(f"{PAYLOAD} {SHORT}")
    expect(page.locator("#customer-table tbody tr small")).to_have_text(shop.email)
    expect(page.locator("#run-status")).to_contain_text(PAYLOAD)
    expect(page.locator("figure table th[scope=row]").filter(has_text=PAYLOAD)).to_have_text([PAYLOAD])
    inert(page, "analytics page", dialogs)

    # The follow-up page: the order, the resolution by staff with its note, the alert's error.
    _post(page, f"{server.url}/admin/feedback", token)
    page.locator("#filter").locator('[name="status"]').select_option("")
    item = page.locator("#items tbody tr")
    expect(item).to_have_count(1)
    expect(item.locator('[data-k="order"]')).to_have_text(SHORT)
    expect(item.locator('[data-k="comment"]')).to_have_text(PAYLOAD)
    expect(item.locator('[data-k="status"] small')).to_contain_text(PAYLOAD)
    expect(item.locator('[data-k="status"] small')).to_contain_text(SHORT)
    expect(item.locator('[data-k="alert"] span')).to_have_attribute("title", PAYLOAD)
    inert(page, "follow-up page", dialogs)

    # Inside Shopify admin a page puts the `host` it was opened with into its way back: encoded, never markup.
    page.goto(f"{server.url}/admin/loyalty?{urlencode({'shop': shop.domain, 'host': PAYLOAD})}")
    back = page.locator("#back").get_attribute("href") or ""
    assert "host=" in back and not set('<>"') & set(back), back
    inert(page, "a page inside Shopify admin", dialogs)


def test_storefront_pages_show_markup_as_text(live: Any, page: Any, tmp_path: Path) -> None:
    server, sim, c = live
    expect = _expect()
    dialogs = _watch(page)
    x = installed(live)
    shop_id, now = x["id"], datetime.now(UTC)
    with c.sessions() as s, s.begin():
        s.execute(update(t.Shop).where(t.Shop.id == shop_id).values(name=PAYLOAD))
        s.execute(update(t.Customer).where(t.Customer.shop_id == shop_id).values(first_name=PAYLOAD))
        s.execute(update(t.Reward).where(t.Reward.id == x["five"]).values(title=PAYLOAD))
        s.execute(update(t.LoyaltyProgramRow).where(t.LoyaltyProgramRow.shop_id == shop_id).values(
            stamp_every=5, stamp_reward_id=x["five"]))
        tiers.set_tiers(s, shop_id, [Tier("member", SHORT, Decimal("0"), perks=(PAYLOAD,)),
                                     Tier("gold", SHORT + "2", Decimal("5000"))], now)
        referrals.configure(s, shop_id, now=now, enabled=True, friend_kind="percent", friend_value=Decimal("10"),
                            friend_valid_days=30, referrer_points=500, wait_days=30, cap_per_referrer=None,
                            cap_window_days=30)
        code = referrals.code_for(s, shop_id, "7001", now)
        s.execute(update(t.LoyaltyAccount).where(t.LoyaltyAccount.shop_id == shop_id).values(tier="member"))

    # The loyalty widget on the store's page: reward titles, the tier, its perks, the next tier, the stamp card.
    page.goto(sim.storefront_url(WIDGET_SHOP, customer=7001))
    dialog = open_widget(page)
    reward = dialog.locator(".enc-reward", has_text=PAYLOAD)
    expect(reward.locator("strong")).to_have_text(PAYLOAD)
    expect(dialog.locator(".enc-tier .enc-tier-name")).to_have_text(SHORT)
    expect(dialog.locator(".enc-perks li")).to_have_text([PAYLOAD])
    expect(dialog.locator(".enc-next")).to_contain_text(SHORT + "2")
    expect(dialog.locator(".enc-stamp")).to_contain_text(PAYLOAD)
    reward.get_by_role("button", name=f"Redeem: {PAYLOAD}").click()
    expect(dialog.get_by_role("group", name="Your code").locator("code")).to_be_visible()
    inert(page, "loyalty widget", dialogs)

    # The referral landing page, as the app proxy serves it: the shop's name, and a refused email typed back.
    landing = f"{server.url}/proxy/r/{code}?{signed(None, shop=WIDGET_SHOP)}"
    page.goto(landing)
    expect(page.locator("#shop")).to_have_text(PAYLOAD)
    assert PAYLOAD in page.title()
    page.locator("#email").evaluate("(el, v) => { el.type = 'text'; el.value = v; }", PAYLOAD)
    page.locator("#get-code").click()
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#email")).to_have_value(PAYLOAD)
    inert(page, "referral landing", dialogs)
    page.goto(f"{server.url}/proxy/r/NOSUCHCODE?{signed(None, shop=WIDGET_SHOP)}")
    expect(page.locator("#welcome")).to_have_text(f"Welcome to {PAYLOAD}")
    inert(page, "referral landing, unknown code", dialogs)

    # The preference center: the shop's name and the customer's first name.
    page.goto(links.preferences_url(c.settings, shop_id, "7001"))
    expect(page.locator("#shop")).to_have_text(PAYLOAD)
    expect(page.locator("#intro")).to_have_text(f"Hi {PAYLOAD}, choose what {PAYLOAD} sends you.")
    inert(page, "preference center", dialogs)

    # The survey page beyond tests/e2e/test_xss_browser.py: the shop's name and the order's.
    c.clock = Clock(NOW)  # the survey link is open
    answer = seed(c, shop_id=shop_id, customer_id="7002", first_name=PAYLOAD, order_name=SHORT, order_id="o-2")
    page.goto(links.survey_url(c.settings, answer.message_id))
    expect(page.locator("#shop")).to_have_text(PAYLOAD)
    expect(page.locator("#question")).to_have_text(f"How happy are you with your order {SHORT}?")
    expect(page.locator("#intro")).to_have_text(f"Hi {PAYLOAD}, thank you for shopping at {PAYLOAD}.")
    expect(page.locator("#nps-question")).to_contain_text(PAYLOAD)
    inert(page, "survey page", dialogs)

    # Connecting a WooCommerce store: a store URL holding markup is refused as plain text.
    refused = page.goto(f"{server.url}/woocommerce/connect?{urlencode({'store_url': 'https://shop.example/' + PAYLOAD})}")
    assert refused is not None and refused.status == 400 and refused.headers["content-type"].startswith("text/plain")
    expect(page.locator("body")).to_have_text("the store URL is not valid")
    inert(page, "WooCommerce connect", dialogs)

    # The development outbox: the merchant's alert about a low answer, the customer's text in subject and body.
    folder = tmp_path / "outbox"
    c.settings = c.settings.with_(outbox_dir=str(folder))
    feedback.save_settings(c, shop_id, {"emails": "ops@example.com"})
    surveys.answer(c, answer.message_id, 1, 2, PAYLOAD, NOW)
    assert feedback.deliver_due(c, NOW, channels={"email": OutboxChannel(folder)}) == 1
    page.goto(f"{server.url}/dev/outbox")
    link = page.locator("#messages a")
    expect(link).to_have_count(1)
    expect(link).to_contain_text(PAYLOAD)
    link.click()
    expect(page.locator("#subject")).to_contain_text(PAYLOAD)
    mail = page.frame_locator("iframe.mail")
    expect(mail.locator("table")).to_contain_text(PAYLOAD)
    expect(mail.locator("table")).to_contain_text(SHORT)
    assert mail.locator("img, script").count() == 0
    expect(page.locator("#text")).to_contain_text(PAYLOAD)
    inert(page, "outbox", dialogs)
