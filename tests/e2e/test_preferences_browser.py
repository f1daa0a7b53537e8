"""The preference center and the unsubscribe confirmation in a real headless Chromium, in Korean and Japanese:
the labels are translated, the form saves what a person picks, the confirmation button unsubscribes, and the
strict Content-Security-Policy leaves nothing on the pages broken."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from app import links, preferences
from app.db import models as t
from tests.integration.test_preferences import enrollment, messages, seed

pytestmark = pytest.mark.browser


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _errors(console: list[str]) -> list[str]:
    return [m for m in console if m.startswith(("error", "pageerror")) and "favicon.ico" not in m]


def test_a_korean_customer_sets_frequency_and_birthday(live: Any, page: Any, console: list[str]) -> None:
    expect = _expect()
    server, _, c = live
    x = seed(c, customer_id="ko-1", locale="ko-KR", first_name="민아")
    page.goto(links.preferences_url(c.settings, x.shop_id, x.customer_id))
    expect(page.locator("html")).to_have_attribute("lang", "ko")
    expect(page.get_by_role("heading", level=1)).to_have_text("메시지 수신 설정")
    expect(page.locator("#intro")).to_have_text("민아님, Encore Coffee에서 받을 메시지를 선택하세요.")
    expect(page.get_by_label("이메일로 받기")).to_be_checked()
    expect(page.get_by_label("문자 메시지(SMS)로 받기")).to_be_checked()
    expect(page.get_by_label("스토어가 보낼 때마다")).to_be_checked()
    expect(page.get_by_role("group", name="생일 (선택 사항)")).to_be_visible()

    page.get_by_label("최대 월 1회").check()
    page.get_by_label("월", exact=True).select_option(label="7월")
    page.get_by_label("일", exact=True).select_option("14")
    page.get_by_role("button", name="설정 저장").click()
    expect(page.locator("#saved")).to_have_text("설정이 저장되었습니다.")
    expect(page.get_by_label("최대 월 1회")).to_be_checked()  # the saved state, shown at once
    expect(page.get_by_label("월", exact=True)).to_have_value("7")
    expect(page.get_by_label("일", exact=True)).to_have_value("14")

    prefs = preferences.get(c, x.shop_id, x.customer_id)
    assert (prefs.email, prefs.sms, prefs.frequency, prefs.birthday) == (True, True, "monthly", date(2000, 7, 14))
    with c.sessions() as s:
        assert s.scalar(select(t.ContactPreference.frequency)) == "monthly"
    assert not _errors(console), console


def test_a_japanese_customer_saves_then_unsubscribes_from_the_confirmation_page(live: Any, page: Any,
                                                                                console: list[str]) -> None:
    expect = _expect()
    server, _, c = live
    x = seed(c, customer_id="ja-1", locale=None, shop_locale="ja", first_name="美咲")
    page.set_viewport_size({"width": 375, "height": 800})  # a phone
    page.goto(links.preferences_url(c.settings, x.shop_id, x.customer_id))
    expect(page.locator("html")).to_have_attribute("lang", "ja")
    expect(page.get_by_role("heading", level=1)).to_have_text("メッセージの受信設定")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # nothing overflows

    page.get_by_label("SMSで受け取る").uncheck()
    page.get_by_label("多くても週1回").check()
    page.get_by_label("月", exact=True).select_option("2")
    page.get_by_label("日", exact=True).select_option("29")
    page.get_by_role("button", name="設定を保存").click()
    expect(page.locator("#saved")).to_have_text("設定を保存しました。")
    expect(page.get_by_label("SMSで受け取る")).not_to_be_checked()
    prefs = preferences.get(c, x.shop_id, x.customer_id)
    assert (prefs.email, prefs.sms, prefs.frequency, prefs.birthday) == (True, False, "weekly", date(2000, 2, 29))

    page.goto(links.unsubscribe_url(c.settings, x.shop_id, x.customer_id, x.sent))
    expect(page.get_by_role("heading", level=1)).to_have_text("配信停止")
    expect(page.get_by_text("ご注文に関するお知らせは引き続きお届けします。")).to_be_visible()
    assert not preferences.get(c, x.shop_id, x.customer_id).unsubscribed  # opening the page changes nothing
    assert enrollment(c, x.marketing) == ("active", None)

    page.get_by_role("button", name="配信停止").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("配信を停止しました")
    assert preferences.get(c, x.shop_id, x.customer_id).unsubscribed
    assert enrollment(c, x.marketing) == ("exited", "unsubscribed")
    assert messages(c, x.marketing)[1:] == [("step1", "cancelled", "unsubscribed"), ("step2", "cancelled", "unsubscribed")]
    assert messages(c, x.transactional) == [("step0", "pending", None)]

    page.get_by_role("link", name="受信設定を管理").click()  # back to the preference center: it says so
    expect(page.locator("#unsubscribed")).to_contain_text("すべてのマーケティング配信を停止しています。")
    page.get_by_role("button", name="マーケティング配信を再開する").click()
    expect(page.locator("#unsubscribed")).to_have_count(0)
    assert not preferences.get(c, x.shop_id, x.customer_id).unsubscribed
    assert not _errors(console), console
