"""The satisfaction survey in a real headless Chromium, on a phone, in Japanese: the question names the order, a
tap on a score picks it, the eleven NPS choices fit a narrow phone (two rows, each a 44 px target, no sideways
scrolling) and a tap picks one, the comment and both answers are saved as one row, the thank-you page shows the
promised code, and the strict Content-Security-Policy leaves nothing on the pages broken."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app import links, surveys
from app.db import models as t
from tests.integration.test_surveys import NOW, seed
from tests.journeys import Clock

pytestmark = pytest.mark.browser
SCREENSHOT = "/tmp/encore-survey.png"


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _errors(console: list[str]) -> list[str]:
    return [m for m in console if m.startswith(("error", "pageerror")) and "favicon.ico" not in m]


def test_a_japanese_customer_taps_a_score_comments_and_gets_the_code(live: Any, page: Any, console: list[str]
                                                                      ) -> None:
    expect = _expect()
    server, _, c = live
    c.clock = Clock(NOW)  # a day after the survey was sent: its link is open
    x = seed(c, customer_id="ja-1", locale="ja-JP", first_name="美咲", code="ARIGATO-15")
    page.set_viewport_size({"width": 375, "height": 800})  # a phone
    page.goto(links.survey_url(c.settings, x.message_id))
    expect(page.locator("html")).to_have_attribute("lang", "ja")
    expect(page.get_by_role("heading", level=1)).to_have_text("ご注文 #1001 の満足度はいかがですか？")
    expect(page.locator("#intro")).to_have_text("美咲さん、Encore Coffeeをご利用いただきありがとうございます。")
    expect(page.locator("input[name=score]")).to_have_count(5)
    expect(page.locator("input[name=nps]")).to_have_count(11)
    expect(page.get_by_role("group", name="Encore Coffeeを友人に薦める可能性はどのくらいありますか？")).to_be_visible()
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
    for width in (320, 375):  # the narrowest phones still in use, and a common one
        page.set_viewport_size({"width": width, "height": 800})
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), width
        boxes = [page.locator(f"label[for=nps-{n}]").bounding_box() for n in range(11)]
        assert all(b is not None and b["width"] >= 44 and b["height"] >= 44 for b in boxes), (width, boxes)
        assert all(b is not None and b["x"] >= 0 and b["x"] + b["width"] <= width for b in boxes), (width, boxes)
        assert len({round(b["y"]) for b in boxes if b is not None}) == 2  # two rows: 0-5 and 6-10
    for n in (0, 10, 9):  # a tap on each end of the scale, then the answer
        page.locator(f"label[for=nps-{n}]").click()
        expect(page.get_by_role("radio", name=str(n), exact=True)).to_be_checked()
    expect(page.locator("#nps-10")).not_to_be_checked()
    page.screenshot(path=SCREENSHOT, full_page=True)  # at 375 px, for a person to look at
    page.get_by_label("ほかにお聞かせいただけることはありますか？（任意）").fill("袋が少し破れていました。\n味は最高です。")
    page.get_by_role("button", name="回答を送信").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("ご回答ありがとうございました！")
    expect(page.locator("#code")).to_have_text("ARIGATO-15")
    expect(page.locator("#your-answer")).to_have_text("あなたの回答：2 / 5（不満）")
    expect(page.locator("#your-nps")).to_have_text("薦める可能性：9 / 10")
    expect(page.locator("#your-comment")).to_have_text("袋が少し破れていました。\n味は最高です。")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    with c.sessions() as s:
        answers = s.scalars(select(t.SurveyResponse)).all()
        assert [(a.message_id, a.customer_external_id, a.order_external_id, a.score, a.nps, a.comment)
                for a in answers] == [(x.message_id, "ja-1", "order-1", 2, 9, "袋が少し破れていました。\n味は最高です。")]

    page.get_by_role("link", name="回答を変更する").click()  # back to the form: the answer, ready to change
    expect(page.get_by_role("radio", name="2 不満")).to_be_checked()
    expect(page.get_by_role("radio", name="9", exact=True)).to_be_checked()
    expect(page.locator("#answered")).to_be_visible()
    survey = surveys.survey_for(c, x.message_id, NOW)
    assert survey.answer is not None and (survey.answer.score, survey.answer.nps) == (2, 9)
    assert not _errors(console), console
