"""The referrals view of the loyalty page in a real headless Chromium, framed by the simulated Shopify admin: found
by the loyalty page's "Referrals" link, the program (switched off) switched on with new settings, a wrong value
refused at its field with nothing saved, a friend's order that used the referrer's own email listed as blocked
with its reason, the list filtered by status, an override refused without a note, and then, with a note, the
referral rewarded by the signed-in staff member with the program's points in the referrer's ledger."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from app import loyalty, referrals
from app.bootstrap import Container
from app.core import commands as cmd
from app.core.loyalty import Account
from app.core.messagebus import handle
from app.db import models as t
from app.db.uow import SqlUnitOfWork
from tests.fakes import FakeStorePlatform
from tests.journeys import Clock, order

pytestmark = pytest.mark.browser

SHOP = "referral-admin-store.myshopify.com"
SCREENSHOT = "/tmp/encore-referrals.png"
REFERRER = "100"
NOTE = "Her sister, checked by phone"


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _configure(c: Container, shop_id: int, now: datetime, *, enabled: bool) -> None:
    with c.sessions() as s, s.begin():
        referrals.configure(s, shop_id, enabled=enabled, friend_kind="percent", friend_value=Decimal("10"),
                            friend_valid_days=30, referrer_points=500, wait_days=30, cap_per_referrer=None,
                            cap_window_days=30, now=now)


def _blocked_self_referral(c: Container, shop_id: int) -> int:
    """A friend claims the referrer's link, and the first order with their code uses the referrer's own email:
    blocked as a self-referral. The program is then switched off, for the page to switch it on."""
    now = datetime.now(UTC) - timedelta(minutes=5)
    _configure(c, shop_id, now, enabled=True)
    with c.sessions() as s, s.begin():
        s.add(t.Customer(shop_id=shop_id, external_id=REFERRER, email="rita@example.com", first_name="Rita",
                         external_updated_at=now))
        code = referrals.code_for(s, shop_id, REFERRER, now)
    store = FakeStorePlatform()
    got = referrals.claim(c, shop_id, code, "fred@example.com", now, lambda _: store)
    assert got.status == "issued" and got.friend_code is not None
    placed = order("1001", None, now + timedelta(minutes=1), email="rita@example.com",
                   discount_codes=(got.friend_code.lower(),))
    handle(cmd.ObserveOrder(shop_id, placed), SqlUnitOfWork(c.sessions), Clock(now + timedelta(minutes=1)))
    with c.sessions() as s:
        blocked = s.get(t.Referral, got.id)
        assert blocked is not None and (blocked.status, blocked.blocked_reason) == ("blocked", "self_referral")
    _configure(c, shop_id, now, enabled=False)
    return got.id


def _program(c: Container) -> dict[str, Any]:
    with c.sessions() as s:
        return referrals.program_data(s.scalars(select(t.ReferralProgramRow)).one())


def test_run_the_referral_program_from_the_loyalty_page(live: Any, page: Any, console: list[str]) -> None:
    server, sim, c = live
    expect = _expect()
    sim.add_store(SHOP, name="Referral Store", currency="USD", timezone="America/New_York", locale="en")
    page.goto(sim.admin_url(SHOP))
    app = page.frame_locator("#app")
    expect(app.locator('#health dd[data-k="received"]')).to_have_text(re.compile(r"^\d+$"))
    with c.sessions() as s:
        shop_id = s.scalars(select(t.Shop.id)).one()
    referral_id = _blocked_self_referral(c, shop_id)

    # From the admin to the loyalty page, and from there to its referrals.
    app.locator("#loyalty-link").click()
    expect(app.locator("h1")).to_have_text("Loyalty")
    expect(app.locator("#referrals")).to_be_hidden()
    app.locator("#referrals-link").click()
    expect(app.locator("#referrals-title")).to_have_text("Referrals")
    expect(app.locator("#program-title")).to_be_hidden()
    frame = page.frame(name="app-iframe")
    assert frame is not None and frame.url.startswith(f"{server.url}/admin/loyalty?shop={SHOP}")
    assert frame.url.endswith("#referrals")

    # The program as it was saved: off, 10% for the friend, 500 points for the referrer.
    form = app.locator("#referral-settings")
    field = lambda name: form.locator(f'[name="{name}"]')  # noqa: E731
    expect(field("friend_value")).to_have_value("10")
    expect(field("referrer_points")).to_have_value("500")
    expect(field("enabled")).not_to_be_checked()

    # Switched on with new settings, one of them wrong: refused at its field, nothing saved.
    field("enabled").check()
    field("friend_kind").select_option("amount")
    field("friend_value").fill("0")
    field("friend_valid_days").fill("14")
    field("referrer_points").fill("300")
    field("wait_days").fill("14")
    field("cap_per_referrer").fill("3")
    field("cap_window_days").fill("90")
    with page.expect_response(lambda r: r.url.endswith("/api/admin/referrals/program")
                              and r.request.method == "PUT") as refused:
        form.get_by_role("button", name="Save referral settings").click()
    assert refused.value.status == 400
    expect(form.locator('[data-problem="friend_value"]')).to_have_text(
        "A percent or amount discount needs a value above zero (a percent at most 100).")
    expect(app.locator("#referral-settings-status")).to_have_text("Not saved: fix the problems shown.")
    assert _program(c)["enabled"] is False and _program(c)["friend_kind"] == "percent"

    field("friend_value").fill("5.50")
    form.get_by_role("button", name="Save referral settings").click()
    expect(app.locator("#referral-settings-status")).to_have_text("Saved.")
    expect(form.locator('[data-problem="friend_value"]')).to_be_hidden()
    expect(field("friend_value")).to_have_value("5.5")
    assert _program(c) == {"enabled": True, "configured": True, "friend_kind": "amount", "friend_value": "5.5",
                           "friend_valid_days": 14, "referrer_points": 300, "referrer_reward_id": None,
                           "wait_days": 14, "cap_per_referrer": 3, "cap_window_days": 90, "holdout_percent": 0}

    # The blocked referral, with its reason in words; the filter finds it among the blocked, not the rewarded.
    rows = app.locator("#referral-list tbody tr")
    expect(rows).to_have_count(1)
    row = app.locator(f'#referral-list tr[data-referral="{referral_id}"]')
    expect(row.locator('[data-k="status"]')).to_have_text("Blocked")
    expect(row.locator('[data-k="reason"]')).to_contain_text("Self-referral")
    expect(row.locator('[data-k="detail"]')).to_have_text("the order's email is the referrer's")
    expect(row.locator('[data-k="friend"]')).to_have_text("fr***@example.com")
    expect(row.locator('[data-k="order"]')).to_have_text("1001")
    expect(row.locator('[data-k="referrer"]')).to_have_text("#100")
    filter_ = app.locator('#referral-filter [name="status"]')
    filter_.select_option("rewarded")
    expect(app.locator("#no-referrals")).to_be_visible()
    expect(rows).to_have_count(0)
    filter_.select_option("blocked")
    expect(rows).to_have_count(1)

    # Override: the session token names the staff member, so only a note is asked for; without one, refused.
    row.get_by_role("button", name="Override").click()
    override = app.locator("#referral-list tr.override-row form")
    expect(override.locator('[name="note"]')).to_be_visible()
    expect(override.locator('[name="staff"]')).to_be_hidden()
    override.get_by_role("button", name="Reward anyway").click()
    expect(override.locator(".problem")).to_have_text("an override needs a note saying why")
    with c.sessions() as s:
        assert s.get(t.Referral, referral_id).status == "blocked"  # type: ignore[union-attr]

    override.locator('[name="note"]').fill(NOTE)
    override.get_by_role("button", name="Reward anyway").click()
    expect(row.locator('[data-k="status"]')).to_have_text("Rewarded")
    expect(row.locator('[data-k="reward"]')).to_have_text("300 points")
    expect(row.locator('[data-k="override"]')).to_have_text(f"Shopify user 42: {NOTE}")
    expect(row.get_by_role("button", name="Override")).to_have_count(0)
    expect(app.locator("#referral-list tr.override-row")).to_have_count(0)
    expect(app.locator("#referral-list-status")).to_have_text("Rewarded by Shopify user 42.")
    with c.sessions() as s:
        done = s.get(t.Referral, referral_id)
        assert done is not None and (done.status, done.overridden_by, done.override_note, done.reward_points) == (
            "rewarded", "Shopify user 42", NOTE, 300)
        entry = s.scalars(select(t.LedgerEntry).where(t.LedgerEntry.key == f"referral:{referral_id}")).one()
        assert (entry.amount, entry.staff, entry.note) == (300, "Shopify user 42", NOTE)
        assert loyalty.balance(s, shop_id, REFERRER) == Account(available=300) and loyalty.mismatches(s) == []

    page.set_viewport_size({"width": 1280, "height": 1600})
    page.screenshot(path=SCREENSHOT)

    # Back to the loyalty program's view.
    app.locator("#loyalty-tab").click()
    expect(app.locator("#program-title")).to_be_visible()
    expect(app.locator("#referrals")).to_be_hidden()
    refusals = ("/api/admin/referrals/program", f"/api/admin/referrals/{referral_id}/override")  # the 400s above
    errors = [m for m in console if m.startswith(("error", "pageerror")) and not m.endswith(("/favicon.ico", *refusals))]
    assert not errors, console
