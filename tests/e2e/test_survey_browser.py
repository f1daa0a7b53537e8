"""The satisfaction survey in a real headless Chromium, on a phone, in Japanese: the question names the order, a
tap on a score picks it, the comment and the answer are saved as one row, the thank-you page shows the promised
code, and the strict Content-Security-Policy leaves nothing on the pages broken."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app import links, surveys
from app.db import models as t
from tests.integration.test_surveys import seed

pytestmark = pytest.mark.browser


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _errors(console: list[str]) -> list[str]:
    return [m for m in console if m.startswith(("error", "pageerror")) and "favicon.ico" not in m]


def test_a_japanese_customer_taps_a_score_comments_and_gets_the_code(live: Any, page: Any, console: list[str]
                                                                      ) -> None:
    expect = _expect()
    server, _, c = live
    x = seed(c, customer_id="ja-1", locale="ja-JP", first_name="美咲", code="ARIGATO-15")
    page.set_viewport_size({"width": 375, "height": 800})  # a phone
    page.goto(links.survey_url(c.settings, x.message_id))
    expect(page.locator("html")).to_have_attribute("lang", "ja")
    expect(page.get_by_role("heading", level=1)).to_have_text("ご注文 #1001 の満足度はいかがですか？")
    expect(page.locator("#intro")).to_have_text("美咲さん、Encore Coffeeをご利用いただきありがとうございます。")
    expect(page.get_by_role("radio")).to_have_count(5)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # nothing overflows
    two = page.locator("label[for=score-2]")
    expect(two).to_contain_text("不満")
    box = two.bounding_box()
    assert box is not None and box["width"] >= 44 and box["height"] >= 44  # a large tap target
    assert page.locator("#code").count() == 0

    two.click()  # a tap on the label: the radio itself is hidden under it
    expect(page.get_by_role("radio", name="2 不満")).to_be_checked()
    # the chosen score looks chosen: the stylesheet loaded under the CSP and colours it
    assert two.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(31, 111, 235)"
    page.get_by_label("ほかにお聞かせいただけることはありますか？（任意）").fill("袋が少し破れていました。\n味は最高です。")
    page.get_by_role("button", name="回答を送信").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("ご回答ありがとうございました！")
    expect(page.locator("#code")).to_have_text("ARIGATO-15")
    expect(page.locator("#your-answer")).to_have_text("あなたの回答：2 / 5（不満）")
    expect(page.locator("#your-comment")).to_have_text("袋が少し破れていました。\n味は最高です。")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    with c.sessions() as s:
        answers = s.scalars(select(t.SurveyResponse)).all()
        assert [(a.message_id, a.customer_external_id, a.order_external_id, a.score, a.comment) for a in answers] == [
            (x.message_id, "ja-1", "order-1", 2, "袋が少し破れていました。\n味は最高です。")]

    page.get_by_role("link", name="回答を変更する").click()  # back to the form: the answer, ready to change
    expect(page.get_by_role("radio", name="2 不満")).to_be_checked()
    expect(page.locator("#answered")).to_be_visible()
    survey = surveys.survey_for(c, x.message_id)
    assert survey.answer is not None and survey.answer.score == 2
    assert not _errors(console), console
