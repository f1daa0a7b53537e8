"""The follow-up page in a real headless Chromium, framed by the simulated Shopify admin: opened from the admin's
header link, the open low answers listed first with the customer, the order, both scores, the comment and the
alert's state; a resolution refused without a note (nothing changed), then resolved by the signed-in staff member
and moved below the open ones; the routing settings saved, a wrong threshold refused at its field with nothing
saved; and the way back to the admin."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app import feedback, surveys
from app.db import models as t
from tests.integration.test_surveys import NOW, seed

pytestmark = pytest.mark.browser

SHOP = "follow-up-store.myshopify.com"
SCREENSHOT = "/tmp/encore-feedback.png"
FAILS = "/api/admin/feedback/"  # the refused requests' 400s, as the browser logs them


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def test_follow_up_low_answers_from_the_admin(live: Any, page: Any, console: list[str]) -> None:
    server, sim, c = live
    expect = _expect()
    sim.add_store(SHOP, name="Follow-up Store", currency="USD", timezone="America/New_York", locale="en")
    page.goto(sim.admin_url(SHOP))
    app = page.frame_locator("#app")
    expect(app.locator('#health dd[data-k="received"]')).to_have_text(re.compile(r"^\d+$"))
    with c.sessions() as s:
        shop_id = s.scalars(select(t.Shop.id)).one()
    feedback.save_settings(c, shop_id, {"emails": "ops@example.com"})
    older = seed(c, shop_id=shop_id, customer_id="7001", first_name="Mina", order_id="o-1001", order_name="#1001")
    newer = seed(c, shop_id=shop_id, customer_id="7002", first_name="Jun", order_id="o-1002", order_name="#1002")
    surveys.answer(c, older.message_id, 2, 3, "The bag was torn.", NOW)
    surveys.answer(c, newer.message_id, 4, 5, None, NOW + timedelta(hours=2))
    content = seed(c, shop_id=shop_id, customer_id="7003", order_id="o-1003", order_name="#1003")
    surveys.answer(c, content.message_id, 5, 10, "Lovely.", NOW)  # high: no follow-up

    app.locator("#feedback-link").click()
    expect(app.locator("h1")).to_have_text("Follow-up")
    frame = page.frame(name="app-iframe")
    assert frame is not None and frame.url.startswith(f"{server.url}/admin/feedback?shop={SHOP}")
    rows = app.locator("#items tbody tr")
    expect(rows).to_have_count(2)
    expect(app.locator("#open-count")).to_have_text("2 open")
    first = rows.nth(0)  # the newest first
    expect(first.locator('[data-k="customer"]')).to_have_text("Jun · 7002@example.com")
    expect(first.locator('[data-k="nps"]')).to_have_text("5 / 10")
    expect(first.locator('[data-k="comment"]')).to_have_text("No comment")
    expect(first.locator('[data-k="reason"]')).to_have_text("Detractor (NPS)")
    second = rows.nth(1)
    expect(second.locator('[data-k="order"]')).to_have_text("#1001")
    expect(second.locator('[data-k="score"]')).to_have_text("2 / 5")
    expect(second.locator('[data-k="comment"]')).to_have_text("The bag was torn.")
    expect(second.locator('[data-k="reason"]')).to_have_text("Low satisfaction and detractor")
    expect(second.locator('[data-k="alert"]')).to_have_text("Sending")  # pending: the sweeper sends it

    # Resolve the older one: a note is required; the session token names the staff member.
    second.get_by_role("button", name="Resolve").click()
    form = app.locator(".resolve-form")
    expect(form.locator("[data-staff]")).to_be_hidden()
    form.get_by_role("button", name="Mark resolved").click()
    expect(form.locator(".problem")).to_have_text("Say what was done: a note is required.")
    assert [i.status for i in feedback.items(c, shop_id)] == ["open", "open"]
    form.locator('[name="note"]').fill("Called her; a new bag is on its way.")
    form.get_by_role("button", name="Mark resolved").click()
    expect(app.locator("#open-count")).to_have_text("1 open")
    expect(rows).to_have_count(2)
    last = rows.nth(1)
    expect(last.locator('[data-k="customer"]')).to_have_text("Mina · 7001@example.com")
    expect(last.locator('[data-k="status"]')).to_have_text(
        "ResolvedResolved by Shopify user 42: Called her; a new bag is on its way.")
    expect(last.get_by_role("button", name="Resolve")).to_have_count(0)
    done = [i for i in feedback.items(c, shop_id) if i.status == "resolved"]
    assert [(i.customer_id, i.resolved_by) for i in done] == [("7001", "Shopify user 42")]
    app.locator('#filter [name="status"]').select_option("resolved")
    expect(rows).to_have_count(1)

    # The routing settings: shown as saved, a wrong threshold refused where it is, then a good change saved.
    settings = app.locator("#settings")
    expect(settings.locator('[name="emails"]')).to_have_value("ops@example.com")
    expect(settings.locator('[name="low_nps"]')).to_have_value("6")
    expect(settings.locator('[name="webhook_secret"]')).to_have_value(re.compile(r"^whsec_"))
    settings.locator('[name="high_nps"]').fill("5")
    settings.get_by_role("button", name="Save routing").click()
    expect(settings.locator('[data-problem="high_nps"]')).to_have_text(
        "A high NPS answer is a whole number from 1 to 10, above the low one.")
    expect(app.locator("#settings-status")).to_have_text("Not saved: fix the problems shown.")
    assert feedback.settings_of(c, shop_id).high_nps == 9
    settings.locator('[name="high_nps"]').fill("10")
    settings.locator('[name="emails"]').fill("ops@example.com, Care@Example.com")
    settings.get_by_role("button", name="Save routing").click()
    expect(app.locator("#settings-status")).to_have_text("Saved.")
    expect(settings.locator('[data-problem="high_nps"]')).to_be_hidden()
    expect(settings.locator('[name="emails"]')).to_have_value("ops@example.com, care@example.com")
    routing = feedback.settings_of(c, shop_id)
    assert (routing.emails, routing.high_nps) == (("ops@example.com", "care@example.com"), 10)

    page.set_viewport_size({"width": 1280, "height": 1600})
    page.screenshot(path=SCREENSHOT)
    app.locator("#back").click()  # through Shopify's bounce for a fresh ID token, to the admin page
    expect(app.locator('#health dd[data-k="received"]')).to_have_text(re.compile(r"^\d+$"))
    errors = [m for m in console if m.startswith(("error", "pageerror")) and "favicon.ico" not in m
              and FAILS not in m]
    assert not errors, console
