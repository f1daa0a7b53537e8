"""The segments page in a real headless Chromium, framed by the simulated Shopify admin: opened from the admin's
header link, the built-in RFM segments listed, a segment built with the rule builder (a preview first, showing
who matches without saving), a refused rule's message shown under that rule with nothing saved, the segment saved
with its size and edited; a reward limited to it on the loyalty page, which keeps it from being deleted until
no reward uses it; the database checked at each step."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update

from app.core.rfm import RFM_LABELS
from app.db import models as t

pytestmark = pytest.mark.browser

SHOP = "segments-store.myshopify.com"
SCREENSHOT = "/tmp/encore-segments.png"


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _segments(c: Any) -> list[tuple[str, str, int]]:
    with c.sessions() as s:
        return [(x.key, x.name, x.size) for x in s.scalars(select(t.Segment).where(t.Segment.kind == "rule")
                                                            .order_by(t.Segment.id))]


def _customers(c: Any) -> None:
    """Mina: two paid orders and email consent; Jun: one order, no consent; Ara: no orders, email consent."""
    now = datetime.now(UTC)
    with c.sessions() as s, s.begin():
        shop_id = s.scalars(select(t.Shop.id)).one()
        for cid, name, email in (("7001", "Mina", True), ("7002", "Jun", False), ("7003", "Ara", True)):
            s.add(t.Customer(shop_id=shop_id, external_id=cid, email=f"{name.lower()}@example.com", first_name=name,
                             accepts_email_marketing=email, external_updated_at=now))
        for n, cid in enumerate(("7001", "7001", "7002")):
            s.add(t.Order(shop_id=shop_id, external_id=f"90{n}", customer_external_id=cid, currency="USD",
                          subtotal=Decimal(20), total=Decimal(20), total_tax=Decimal(0), total_shipping=Decimal(0),
                          total_discounts=Decimal(0), refunded_amount=Decimal(0), payment_status="paid", status="paid",
                          created_at=now - timedelta(days=n + 1), external_updated_at=now))


def test_build_a_segment_on_the_segments_page(live: Any, page: Any, console: list[str]) -> None:
    server, sim, c = live
    expect = _expect()
    sim.add_store(SHOP, name="Segments Store", currency="USD", timezone="America/New_York", locale="en")
    page.goto(sim.admin_url(SHOP))
    app = page.frame_locator("#app")
    expect(app.locator('#health dd[data-k="received"]')).to_have_text(re.compile(r"^\d+$"))
    _customers(c)

    app.locator("#segments-link").click()
    expect(app.locator("h1")).to_have_text("Segments")
    frame = page.frame(name="app-iframe")
    assert frame is not None and frame.url.startswith(f"{server.url}/admin/segments?shop={SHOP}")
    expect(app.locator("#rfm tbody tr")).to_have_count(len(RFM_LABELS))
    expect(app.locator('#rfm tbody tr[data-key="rfm:champions"] td[data-k="name"]')).to_have_text("Champions")
    expect(app.locator("#no-segments")).to_be_visible()

    # A rule-based segment: two or more orders, previewed before it is saved.
    app.locator("#new-segment").click()
    form = app.locator("#segment-form")
    expect(app.locator("#editor-title")).to_have_text("New segment")
    form.locator('[name="name"]').fill("Repeat buyers")
    first = app.locator("#rules li").nth(0)
    first.locator('[name="field"]').select_option("orders_count")
    first.locator('[name="op"]').select_option(">=")
    first.locator('[name="value"]').fill("2")
    app.locator("#preview").click()
    expect(app.locator("#preview-size")).to_have_text("Customers who match now: 1. The first ones:")
    expect(app.locator("#preview-list li")).to_have_text(["Mina · mina@example.com · #7001"])
    assert _segments(c) == []  # a preview saves nothing

    # A second rule, either of the two: its value is a choice (email or SMS).
    app.locator("#add-rule").click()
    second = app.locator("#rules li").nth(1)
    second.locator('[name="field"]').select_option("consent")
    expect(second.locator('[name="op"] option')).to_have_text(["accepts", "does not accept"])
    second.locator('[name="value"]').select_option("email")
    form.locator('[name="match"]').select_option("any")

    # A wrong value is refused under its rule, and nothing is saved.
    first.locator('[name="field"]').select_option("total_spent")
    first.locator('[name="value"]').fill("lots")
    form.get_by_role("button", name="Save segment").click()
    expect(first.locator(".problem")).to_have_text("rule 1: total_spent is an amount of 0 or more (at most 2 decimals)")
    expect(second.locator(".problem")).to_be_hidden()
    expect(app.locator("#editor-status")).to_have_text("Not saved: fix the problems shown.")
    assert _segments(c) == []

    first.locator('[name="field"]').select_option("orders_count")
    first.locator('[name="op"]').select_option(">=")
    first.locator('[name="value"]').fill("2")
    form.get_by_role("button", name="Save segment").click()
    expect(app.locator("#list-status")).to_have_text("Saved. Customers in it now: 2.")
    expect(app.locator("#editor")).to_be_hidden()
    row = app.locator('#mine tbody tr[data-key="repeat-buyers"]')
    expect(row.locator('td[data-k="size"]')).to_have_text("2")
    expect(row.locator('td[data-k="used"]')).to_have_text("Nothing yet")
    assert _segments(c) == [("repeat-buyers", "Repeat buyers", 2)]
    with c.sessions() as s:
        assert set(s.scalars(select(t.SegmentMember.customer_external_id))) == {"7001", "7003"}

    # Edit: the rules come back into the builder; a new name and one rule fewer.
    row.get_by_role("button", name="Edit").click()
    expect(app.locator("#editor-title")).to_have_text("Edit Repeat buyers")
    expect(app.locator("#rules li")).to_have_count(2)
    expect(app.locator("#rules li").nth(1).locator('[name="value"]')).to_have_value("email")
    form.locator('[name="name"]').fill("Regulars")
    app.locator("#rules li").nth(1).get_by_role("button", name="Remove").click()
    form.get_by_role("button", name="Save segment").click()
    expect(app.locator("#list-status")).to_have_text("Saved. Customers in it now: 1.")
    expect(row.locator('td[data-k="name"]')).to_have_text("Regulars")
    assert _segments(c) == [("repeat-buyers", "Regulars", 1)]
    page.screenshot(path=SCREENSHOT, full_page=True)

    # The loyalty page's reward editor offers the segment: a reward for its members only.
    app.locator("#back").click()
    expect(app.locator('#health dd[data-k="received"]')).to_have_text(re.compile(r"^\d+$"))
    app.locator("#loyalty-link").click()
    expect(app.locator("h1")).to_have_text("Loyalty")
    rewards = app.locator("#reward-form")
    expect(rewards.locator('[name="segment_id"] option').nth(1)).to_have_text("Regulars")
    rewards.locator('[name="title"]').fill("Regulars' gift")
    rewards.locator('[name="kind"]').select_option("amount")
    rewards.locator('[name="value"]').fill("5")
    rewards.locator('[name="cost"]').fill("100")
    rewards.locator('[name="segment_id"]').select_option(label="Regulars")
    rewards.get_by_role("button", name="Add reward").click()
    expect(app.locator("#rewards tbody tr")).to_have_count(1)
    with c.sessions() as s:
        segment_id = s.scalars(select(t.Segment.id).where(t.Segment.key == "repeat-buyers")).one()
        assert [(r.title, r.segment_id) for r in s.scalars(select(t.Reward))] == [("Regulars' gift", segment_id)]
    expect(app.locator('#rewards tbody tr [name="segment_id"]')).to_have_value(str(segment_id))

    # Back on the segments page: a segment a reward is limited to cannot be deleted, and the page says why.
    app.locator("#back").click()
    app.locator("#segments-link").click()
    row = app.locator('#mine tbody tr[data-key="repeat-buyers"]')
    expect(row.locator('td[data-k="used"]')).to_have_text("Rewards: Regulars' gift")
    page.on("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Delete").click()
    expect(app.locator("#list-status")).to_have_text(
        "Not deleted: it is still used (Rewards: Regulars' gift). Choose another segment for them first.")
    assert _segments(c) == [("repeat-buyers", "Regulars", 1)]

    # Once no reward uses it, it is deleted (after the browser's confirmation).
    with c.sessions() as s, s.begin():
        s.execute(update(t.Reward).values(segment_id=None))
    app.locator("#back").click()
    app.locator("#segments-link").click()
    expect(row.locator('td[data-k="used"]')).to_have_text("Nothing yet")
    row.get_by_role("button", name="Delete").click()
    expect(app.locator("#list-status")).to_have_text("Deleted.")
    expect(app.locator("#mine tbody tr")).to_have_count(0)
    assert _segments(c) == []
    refused = ("status of 400 (BAD REQUEST) @ " + server.url + "/api/admin/segments",  # the wrong value
               "status of 409 (CONFLICT) @ " + server.url + "/api/admin/segments/" + str(segment_id))  # still used
    errors = [m for m in console if m.startswith(("error", "pageerror")) and not m.endswith("/favicon.ico")]
    assert [m for m in errors if not m.endswith(refused)] == [] and len(errors) == 2, console
