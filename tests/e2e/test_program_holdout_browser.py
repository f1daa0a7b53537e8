"""The programs' holdouts in a real headless Chromium: the loyalty page's "Customers held out (%)" field saves the
loyalty program's share (a share above 50 refused at the field, nothing saved), the referrals view saves the
referral program's; and in the simulated store, a shopper the loyalty program holds out opens the widget and is
told, in their language, that the program is not available to them, with no points, rewards or history."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from app import loyalty, referrals
from app.core import lift
from app.db import models as t
from tests.e2e.test_widget_browser import SHOP as WIDGET_SHOP
from tests.e2e.test_widget_browser import installed, open_widget

pytestmark = pytest.mark.browser

SHOP = "holdout-store.myshopify.com"


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _holdouts(c: Any) -> tuple[int, int]:
    with c.sessions() as s:
        return (s.scalars(select(t.LoyaltyProgramRow.holdout_percent)).one(),
                s.scalars(select(t.ReferralProgramRow.holdout_percent)).one())


def test_the_holdout_shares_are_set_on_the_loyalty_page(live: Any, page: Any, console: list[str]) -> None:
    server, sim, c = live
    expect = _expect()
    sim.add_store(SHOP, name="Holdout Store", currency="USD", timezone="UTC", locale="en")
    page.goto(sim.admin_url(SHOP))
    app = page.frame_locator("#app")
    expect(app.locator('#health dd[data-k="received"]')).to_have_text(re.compile(r"^\d+$"))
    now = datetime.now(UTC)
    with c.sessions() as s, s.begin():
        shop_id = s.scalars(select(t.Shop.id)).one()
        loyalty.switch_on(s, shop_id, now)
        referrals.configure(s, shop_id, enabled=True, friend_kind="percent", friend_value=Decimal("10"),
                            friend_valid_days=30, referrer_points=500, wait_days=30, cap_per_referrer=None,
                            cap_window_days=30, now=now)

    app.locator("#loyalty-link").click()
    settings = app.locator("#settings")
    held = settings.locator('[name="holdout_percent"]')
    expect(held).to_have_value("0")
    held.fill("60")
    with page.expect_response(lambda r: r.url.endswith("/api/admin/loyalty/program") and r.request.method == "PUT"
                              ) as refused:
        settings.get_by_role("button", name="Save settings").click()
    assert refused.value.status == 400
    expect(settings.locator('[data-problem="holdout_percent"]')).to_have_text("holdout: a whole percentage from 0 to 50")
    assert _holdouts(c) == (0, 0)
    held.fill("10")
    settings.get_by_role("button", name="Save settings").click()
    expect(app.locator("#settings-status")).to_have_text("Saved.")
    expect(settings.locator('[data-problem="holdout_percent"]')).to_be_hidden()
    assert _holdouts(c) == (10, 0)

    app.locator("#referrals-link").click()
    form = app.locator("#referral-settings")
    field = form.locator('[name="holdout_percent"]')
    expect(field).to_have_value("0")
    field.fill("51")
    form.get_by_role("button", name="Save referral settings").click()
    expect(form.locator('[data-problem="holdout_percent"]')).to_have_text("The holdout is a whole percentage from 0 to 50.")
    assert _holdouts(c) == (10, 0)
    field.fill("20")
    form.get_by_role("button", name="Save referral settings").click()
    expect(app.locator("#referral-settings-status")).to_have_text("Saved.")
    assert _holdouts(c) == (10, 20)
    assert [m for m in console if m.startswith("pageerror")] == []


@pytest.mark.parametrize(("locale", "launcher", "title", "text"), [
    ("en", "Rewards", "Your rewards", "The rewards program is not available for your account."),
    ("ko", "리워드", "나의 리워드", "이 계정에서는 리워드 프로그램을 이용할 수 없습니다."),
])
def test_a_held_out_shopper_is_told_the_program_is_not_available(live: Any, page: Any, console: list[str],
                                                                 locale: str, launcher: str, title: str,
                                                                 text: str) -> None:
    expect = _expect()
    store = installed(live, locale=locale)
    sim, c, shop_id = store["sim"], store["c"], store["id"]
    with c.sessions() as s, s.begin():
        loyalty.update_program(s, shop_id, {"holdout_percent": 50}, datetime.now(UTC))
    customer = next(n for n in range(7000, 7100) if lift.held_out(shop_id, lift.LOYALTY, str(n), 50))
    page.goto(sim.storefront_url(WIDGET_SHOP, customer=customer, locale=locale))
    expect(page.get_by_role("button", name=launcher, exact=True)).to_be_visible()  # no points beside it
    dialog = open_widget(page, launcher, title)
    expect(dialog.locator(".enc-held-out")).to_have_text(text)
    expect(dialog.locator("section, .enc-balance")).to_have_count(0)  # no balance, rewards, codes or history
    assert [m for m in console if m.startswith("pageerror")] == []
