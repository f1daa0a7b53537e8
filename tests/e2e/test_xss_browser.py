"""Markup in customer text, in a real Chromium: a survey comment and a first name holding `<script>`, an
`onerror` image and a `javascript:` link show literally on the merchant's follow-up list (built in the browser
from the admin API's JSON) and on the customer's survey page, and no dialog ever opens."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app import feedback, links, surveys
from app.db import models as t
from tests.integration.test_surveys import NOW, seed
from tests.journeys import Clock

pytestmark = pytest.mark.browser

SHOP = "xss-store.myshopify.com"
PAYLOAD = "\"><script>alert(1)</script><img src=x onerror=alert(1)><a href='javascript:alert(1)'>j</a>"
NAME = "<img src=x onerror=alert(2)>"


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def test_markup_in_customer_text_shows_as_text_and_never_runs(live: Any, page: Any) -> None:
    server, sim, c = live
    expect = _expect()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    c.clock = Clock(NOW)  # the survey link is open
    sim.add_store(SHOP, name="Xss Store", currency="USD", timezone="UTC", locale="en")
    page.goto(sim.admin_url(SHOP))
    app = page.frame_locator("#app")
    expect(app.locator("#feedback-link")).to_be_visible()
    with c.sessions() as s:
        shop_id = s.scalars(select(t.Shop.id)).one()
    feedback.save_settings(c, shop_id, {"emails": "ops@example.com"})
    x = seed(c, shop_id=shop_id, customer_id="7001", first_name=NAME, order_id="o-1", order_name="#1001")
    surveys.answer(c, x.message_id, 1, 2, PAYLOAD, NOW)

    app.locator("#feedback-link").click()
    row = app.locator("#items tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator('[data-k="comment"]')).to_have_text(PAYLOAD)
    expect(row.locator('[data-k="customer"]')).to_contain_text(NAME)
    assert app.locator("#items img, #items script").count() == 0

    page.goto(links.survey_url(c.settings, x.message_id))
    expect(page.locator("#intro")).to_contain_text(NAME)
    expect(page.locator("textarea[name=comment]")).to_have_value(PAYLOAD)  # the answer given, shown back as text
    assert page.locator("main img[src=x], main script").count() == 0
    assert dialogs == []
