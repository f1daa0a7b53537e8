"""The loyalty page in a real headless Chromium, framed by the simulated Shopify admin: opened from the admin's
header link, the program switched on (rule version 1), a reward added (which values a point in the figures), a
customer looked up by email, an adjustment with a note shown as a ledger line with the new balance and the
signed-in staff member, a refused adjustment's message with nothing written, and the way back to the admin."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from app import loyalty
from app.core.loyalty import Balance, Entry, Posting, Reason
from app.db import models as t

pytestmark = pytest.mark.browser

SHOP = "loyalty-store.myshopify.com"
SCREENSHOT = "/tmp/encore-loyalty.png"


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _entries(c: Any) -> int:
    with c.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(t.LedgerEntry)) or 0)


def test_run_the_program_from_the_loyalty_page(live: Any, page: Any, console: list[str]) -> None:
    server, sim, c = live
    expect = _expect()
    sim.add_store(SHOP, name="Loyalty Store", currency="USD", timezone="America/New_York", locale="en")
    page.goto(sim.admin_url(SHOP))
    app = page.frame_locator("#app")
    expect(app.locator('#health dd[data-k="received"]')).to_have_text(re.compile(r"^\d+$"))
    with c.sessions() as s, s.begin():
        shop_id = s.scalars(select(t.Shop.id)).one()
        s.add(t.Customer(shop_id=shop_id, external_id="7001", email="mina@example.com", first_name="Mina",
                         last_name="Park", external_updated_at=datetime.now(UTC)))
        loyalty.post(s, shop_id, "7001", [Posting(Entry(100, Balance.AVAILABLE, Reason.ACTION, "signup"))],
                     datetime.now(UTC))

    app.locator("#loyalty-link").click()
    expect(app.locator("h1")).to_have_text("Loyalty")
    frame = page.frame(name="app-iframe")
    assert frame is not None and frame.url.startswith(f"{server.url}/admin/loyalty?shop={SHOP}")
    expect(app.locator("#rule-version")).to_have_text("No earning rule yet")
    expect(app.locator('#loyalty-figures dd[data-k="members"]')).to_have_text("1")
    expect(app.locator('#loyalty-figures dd[data-k="mismatches"]')).to_have_text("0 (correct)")

    # Switch the program on: the first rule version is made.
    with page.expect_response(lambda r: r.url.endswith("/api/admin/loyalty/program")) as switched:
        app.locator("#program-enabled").check()
    assert switched.value.status == 200
    expect(app.locator("#rule-version")).to_have_text("Rule version 1")
    expect(app.locator("#program-status")).to_have_text("The program is on: orders placed from now earn points.")
    with c.sessions() as s:
        assert s.scalars(select(t.LoyaltyProgramRow.enabled)).one() is True

    # Add a reward: it joins the catalog and gives a point its value in the figures.
    form = app.locator("#reward-form")
    form.locator('[name="title"]').fill("$5 off")
    form.locator('[name="kind"]').select_option("amount")
    form.locator('[name="value"]').fill("5")
    form.locator('[name="cost"]').fill("500")
    form.get_by_role("button", name="Add reward").click()
    expect(app.locator("#rewards tbody tr")).to_have_count(1)
    expect(app.locator('#rewards tbody tr [name="title"]')).to_have_value("$5 off")
    expect(app.locator('#loyalty-figures dd[data-k="point_value"]')).to_have_text("$0.01")
    expect(app.locator('#loyalty-figures dd[data-k="liability"]')).to_have_text("$1.00")
    with c.sessions() as s:
        assert [(r.title, r.kind, r.cost) for r in s.scalars(select(t.Reward))] == [("$5 off", "amount", 500)]

    # Look the customer up by email; the session token names the staff member, so no name is asked for.
    app.locator("#customer-q").fill("MINA@example.com")
    app.get_by_role("button", name="Look up").click()
    expect(app.locator("#ledger-who")).to_have_text("Mina Park · mina@example.com · #7001")
    expect(app.locator('#ledger dd[data-k="available"]')).to_have_text("100")
    expect(app.locator("#entries tbody tr")).to_have_count(1)
    expect(app.locator("#staff-field")).to_be_hidden()

    adjust = app.locator("#adjust-form")
    adjust.locator('[name="points"]').fill("25")
    adjust.locator('[name="note"]').fill("Parcel arrived late")
    adjust.get_by_role("button", name="Adjust").click()
    expect(app.locator("#adjust-status")).to_have_text("Adjusted by +25 points. Available now: 125.")
    expect(app.locator('#ledger dd[data-k="available"]')).to_have_text("125")
    line = app.locator("#entries tbody tr").first
    expect(line.locator('[data-k="amount"]')).to_have_text("+25")
    expect(line.locator('[data-k="reason"]')).to_have_text("Adjusted")
    expect(line.locator('[data-k="note"]')).to_have_text("Parcel arrived late")
    expect(line.locator('[data-k="staff"]')).to_have_text("Shopify user 42")
    expect(line.locator('[data-k="available_after"]')).to_have_text("125")
    expect(app.locator('#loyalty-figures dd[data-k="outstanding"]')).to_have_text("125")

    # Taking more than the balance is refused with its message, and nothing is written.
    before = _entries(c)
    adjust.locator('[name="direction"]').select_option("take")
    adjust.locator('[name="points"]').fill("500")
    adjust.locator('[name="note"]').fill("Too generous")
    adjust.get_by_role("button", name="Adjust").click()
    expect(app.locator("#adjust-problem")).to_have_text("taking 500 points would leave the balance below zero")
    expect(app.locator("#entries tbody tr")).to_have_count(2)
    expect(app.locator('#ledger dd[data-k="available"]')).to_have_text("125")
    adjust.locator('[name="points"]').fill("abc")
    adjust.get_by_role("button", name="Adjust").click()
    expect(app.locator("#adjust-problem")).to_have_text(re.compile(r"^points: a whole number above zero"))
    assert _entries(c) == before
    with c.sessions() as s:
        assert loyalty.balance(s, shop_id, "7001").available == 125

    page.set_viewport_size({"width": 1280, "height": 2600})  # the frame is as tall as the window: all of the page
    page.screenshot(path=SCREENSHOT)
    app.locator("#back").click()  # through Shopify's bounce for a fresh ID token, to the admin page
    expect(app.locator('#health dd[data-k="received"]')).to_have_text(re.compile(r"^\d+$"))
    refusals = "/api/admin/loyalty/customers/7001/adjust"  # the two refused adjustments' 400s, as the browser logs them
    errors = [m for m in console if m.startswith(("error", "pageerror")) and not m.endswith(("/favicon.ico", refusals))]
    assert not errors, console
