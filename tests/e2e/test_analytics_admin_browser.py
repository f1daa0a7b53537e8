"""The analytics page in a real headless Chromium, with the figures of tests/analytics_data.py: inside Shopify admin
(App Bridge session tokens from the simulated admin) in English, then in Korean, then opened from a store's own
admin with Encore's token in Japanese. Checked: the history tiles and the lifetime model's "not enough data yet"
with what is missing; the cohort heatmap's cells (their share, their colour's strength, their description); the
NPS bars with the too-few months marked; the proof of value with a measured lift and its interval beside one that
says what it still needs; the segment bars; the customers' table; each chart's text alternative; a CSV downloaded
(its name, byte-order mark and rows); asking for a refresh and seeing its figures arrive; and a phone's width."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from app.analytics import refresh
from app.bootstrap import Container
from app.db import models as t
from app.web.auth import issue_admin_token
from tests import analytics_data as data
from tests.analytics_data import NOW, Group
from tests.journeys import Clock

pytestmark = pytest.mark.browser

SHOP = "analytics-store.myshopify.com"
STORE = "https://analytics-store.example"
SCREENSHOT = "/tmp/encore-analytics.png"


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _seed(c: Container) -> int:
    c.clock = Clock(NOW)
    with c.sessions() as s, s.begin():
        shop = t.Shop(platform="shopify", domain=SHOP, name="Analytics Store", currency="USD", timezone="Asia/Seoul",
                      locale="en", installed_at=NOW - timedelta(days=400))
        s.add(shop)
        s.flush()
        shop_id = shop.id
    data.add_run(c, shop_id, data.summary())
    data.add_segments(c, shop_id, [("vip", "VIP spenders", "rule", 12), ("rfm:champions", "Champions", "rfm", 30),
                                   ("rfm:lost", "Lost", "rfm", 5)])
    data.add_journey(c, shop_id, "thank_you", Group(120, 30, 100, 10), attributed=5)
    data.add_journey(c, shop_id, "win_back", Group(10, 1, 2, 0))
    february = NOW - timedelta(days=30)
    data.add_answers(c, shop_id, [(february, 5, 10)] * 6 + [(february, 4, 7)] * 2 + [(february, 2, 3)] * 4
                     + [(NOW - timedelta(days=2), 5, 9), (NOW - timedelta(days=2), 3, 5)])
    data.add_metrics(c, shop_id, [
        {"customer_external_id": "c1", "orders": 4, "revenue": Decimal("200.00"), "rfm_segment": "champions",
         "p_alive": 0.9, "expected_orders_90d": 1.25, "predicted_clv": Decimal("310.50")},
        {"customer_external_id": "c2", "orders": 2, "revenue": Decimal("80.00"), "rfm_segment": "at_risk"},
    ])
    with c.sessions() as s, s.begin():
        s.add(t.Customer(shop_id=shop_id, external_id="c1", email="mina@example.com", first_name="Mina",
                         last_name="Park", external_updated_at=NOW))
    return shop_id


def _errors(console: list[str]) -> list[str]:
    return [m for m in console if m.startswith(("error", "pageerror")) and not m.endswith("/favicon.ico")]


def _csv(download: Any) -> tuple[str, list[list[str]]]:
    raw = Path(download.path()).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    return download.suggested_filename, list(csv.reader(io.StringIO(raw[3:].decode("utf-8"), newline="")))


def test_the_analytics_page_shows_its_charts_and_downloads_them(live: Any, page: Any, console: list[str]) -> None:
    server, sim, c = live
    expect = _expect()
    shop_id = _seed(c)
    sim.add_store(SHOP, name="Analytics Store", currency="USD", timezone="Asia/Seoul", locale="en")
    page.goto(f"{server.url}/admin/analytics?shop={SHOP}&host=abc")
    expect(page.locator("h1")).to_have_text("Analytics")
    expect(page.locator("#run-status")).to_have_text(re.compile(r"^Figures as of Mar 15, 2026"))

    # What the history shows, and the model's missing data said plainly, never a number.
    expect(page.locator('#history dd[data-k="customers"]')).to_have_text("240")
    expect(page.locator('#history dd[data-k="revenue"]')).to_have_text("$18,250.00")
    expect(page.locator('#history dd[data-k="repeat_rate"]')).to_have_text("37.5%")
    expect(page.locator('#history dd[data-k="median_days"]')).to_have_text("34.5")
    expect(page.locator("#model-missing")).to_be_visible()
    expect(page.locator("#model-fitted")).to_be_hidden()
    expect(page.locator("#model-missing")).to_contain_text("Not enough data yet needs 50 repeat customers (now 41).")

    # The heatmap: a row a cohort, each cell its share, its colour's strength that share over the largest later one.
    rows = page.locator("#cohort-table tbody tr")
    expect(rows).to_have_count(4)
    expect(page.locator("#cohort-table thead th")).to_have_text(
        ["First order month", "Customers", "Month 0", "Month 1", "Month 2", "Month 3"])
    expect(rows.nth(0).locator("th, td")).to_have_text(["Dec 2025", "80", "100%", "25%", "12.5%", "10%"])
    expect(rows.nth(3).locator("th, td")).to_have_text(["Mar 2026", "10", "100%", "", "", ""])
    strongest = rows.nth(1).locator("td").nth(2)  # January's month 1: 30%, the largest after month 0
    expect(strongest).to_have_attribute("title", "Jan 2026, month 1: 30% of 60 customers")
    assert strongest.evaluate("td => td.style.getPropertyValue('--level')") == "1.000"
    assert rows.nth(0).locator("td").nth(2).evaluate("td => td.style.getPropertyValue('--level')") == "0.833"
    assert "dark" in (strongest.get_attribute("class") or "")

    # NPS: a bar a month, the months with too few answers marked.
    nps = page.locator("#nps-chart svg")
    expect(nps.locator("rect.bar")).to_have_count(2)
    expect(nps.locator("rect.bar.muted")).to_have_count(1)
    expect(page.locator('#nps-tiles dd[data-k="nps"]')).to_have_text("0Fewer than 10 answers: too few to read")
    expect(page.locator('#nps-tiles dd[data-k="answers"]')).to_have_text("2")
    expect(nps.locator("title").first).to_have_text("NPS")
    expect(page.locator("#nps-chart desc")).to_have_text(
        "NPS from Feb 2026 to Mar 2026; the latest month with enough answers: 16.7.")

    # Proof of value: attributed beside incremental with its interval, or what is still missing.
    thanks = page.locator('#proof-table tr[data-key="journey:thank_you"]')
    expect(thanks.locator("th")).to_have_text("Thank you")
    expect(thanks.locator('[data-k="window"]')).to_have_text("7 days")
    expect(thanks.locator('[data-k="orders"]')).to_have_text("5")
    expect(thanks.locator('[data-k="revenue"]')).to_have_text("$250.00")
    expect(thanks.locator('[data-k="lift"]')).to_contain_text("+15 points of conversion (+150%)")
    expect(thanks.locator('[data-k="lift"] small')).to_have_text(re.compile(r"^95% interval \+\d+(\.\d)? to \+\d+(\.\d)?$"))
    expect(thanks.locator('[data-k="incremental"]')).to_contain_text("$720.00")
    win_back = page.locator('#proof-table tr[data-key="journey:win_back"]')
    expect(win_back.locator('[data-k="window"]')).to_have_text("14 days")
    expect(win_back.locator('[data-k="lift"]')).to_have_text(
        "Not enough data yet — needs 100 customers who got it (now 10), 100 customers in the holdout group (now 2), "
        "and 10 orders from the two groups together (now 1).")
    expect(win_back.locator('[data-k="incremental"]')).to_have_text("–")
    proof = page.locator("#proof-chart svg")
    expect(proof.locator("rect.bar.incremental")).to_have_count(1)
    expect(proof.locator(".error-bar")).to_have_count(1)
    expect(proof.locator("text.missing")).to_have_text(["Not enough data yet", "No holdout group: set one to measure lift"])

    # Segments, largest first, the RFM ones by their names; the figures as a table for every chart.
    expect(page.locator("#segments-chart text.bar-label")).to_have_text(["Champions", "VIP spenders", "Lost"])
    page.locator("#segments-chart summary").click()
    expect(page.locator("#segments-chart details tbody tr").first.locator("th, td")).to_have_text(
        ["Champions", "RFM", "30"])
    expect(page.locator("#repeat-chart svg path.line")).to_have_count(1)
    expect(page.locator("#repeat-chart circle.dot")).to_have_count(4)
    expect(page.locator("#repeat-chart text.axis-label")).to_have_text(
        ["0%", "10%", "20%", "30%", "40%", "50%", "Dec 2025", "Jan 2026", "Feb 2026", "Mar 2026"])

    # Customers with predictions, sortable.
    customers = page.locator("#customer-table tbody tr")
    expect(customers).to_have_count(2)
    expect(customers.first.locator("th")).to_have_text("Mina Parkmina@example.com")
    expect(customers.first.locator('[data-k="predicted_clv"]')).to_have_text("$310.50")
    expect(customers.first.locator('[data-k="segment"]')).to_have_text("Champions")
    page.get_by_role("button", name="Sort by Revenue").click()  # revenue is the sort already: now lowest first
    expect(customers.first).to_have_attribute("data-id", "c2")
    expect(page.locator('#customer-table th[data-sort="revenue"]')).to_have_attribute("aria-sort", "ascending")

    # A CSV, fetched with the session token and saved under its name.
    with page.expect_download() as got:
        page.locator('a.csv[data-export="cohorts"]').click()
    name, rows_ = _csv(got.value)
    assert name == "encore-cohorts-2026-03-15.csv"
    assert rows_[1] == ["2025-12", "80", "100.0", "25.0", "12.5", "10.0"]

    page.screenshot(path=SCREENSHOT, full_page=True)

    # Asking for a refresh: the sweep runs it, and the page shows its figures when they arrive.
    page.get_by_role("button", name="Refresh now").click()
    expect(page.locator("#run-status")).to_have_text("Refresh asked for: the figures update when it has run.")
    expect(page.locator("#refresh")).to_be_disabled()
    c.clock = Clock(NOW + timedelta(minutes=5))
    assert refresh.refresh_due(c, NOW + timedelta(minutes=5)) == 1
    with c.sessions() as s:
        fresh = refresh.latest(s, shop_id)
    assert fresh is not None
    expect(page.locator('#history dd[data-k="customers"]')).to_have_text(str(fresh["customers"]))
    expect(page.locator("#run-status")).to_have_text(re.compile(r"^Figures as of Mar 15, 2026"))
    expect(page.locator("#refresh")).to_be_enabled()

    assert not _errors(console), console


def test_the_page_speaks_korean_and_japanese_and_fits_a_phone(live: Any, page: Any, console: list[str]) -> None:
    server, sim, c = live
    expect = _expect()
    shop_id = _seed(c)
    with c.sessions() as s, s.begin():
        s.execute(update(t.Shop).where(t.Shop.id == shop_id).values(locale="ko"))
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{server.url}/admin/analytics?shop={SHOP}")
    expect(page.locator("h1")).to_have_text("분석")
    expect(page.locator('#history dd[data-k="revenue"]')).to_have_text("US$18,250.00")
    expect(page.locator("#cohort-table tbody tr").first.locator("th")).to_have_text("2025년 12월")
    expect(page.locator("#model-missing")).to_contain_text(
        "아직 데이터가 충분하지 않습니다 필요한 것: 재구매 고객 50명 (현재 41명).")
    expect(page.locator('#proof-table tr[data-key="journey:win_back"] [data-k="lift"]')).to_contain_text(
        "받은 고객 100명 (현재 10명)")
    expect(page.locator('#proof-table tr[data-key="journey:thank_you"] [data-k="lift"]')).to_contain_text("전환율 +15%p")
    expect(page.locator("#customer-table tbody tr")).to_have_count(2)
    # A phone's width: the page itself never scrolls sideways (wide tables scroll in their own box).
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path="/tmp/encore-analytics-ko-phone.png", full_page=True)

    # From a store's own admin (the same figures, now a WooCommerce store's), in Japanese: the token comes in a form
    # post and stays in the page.
    with c.sessions() as s, s.begin():
        s.execute(update(t.Shop).where(t.Shop.id == shop_id).values(platform="woocommerce", domain=STORE))
    token = issue_admin_token(c, shop_id, STORE)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.set_content(f'<form method="post" action="{server.url}/admin/analytics">'
                     f'<input name="token" value="{token}"><input name="locale" value="ja"></form>')
    with page.expect_navigation():
        page.evaluate("document.forms[0].submit()")
    expect(page.locator("h1")).to_have_text("分析")
    expect(page.locator('#history dd[data-k="revenue"]')).to_have_text("$18,250.00")
    expect(page.locator("#cohort-table tbody tr").first.locator("th")).to_have_text("2025年12月")
    expect(page.locator("#cohort-table tbody tr").first.locator("td").nth(2)).to_have_text("25%")
    expect(page.locator("#model-missing")).to_contain_text("まだデータが足りません 必要なもの: リピート顧客 50 人 (現在 41 人)。")
    with page.expect_download() as got:
        page.locator('a.csv[data-export="proof-of-value"]').click()
    name, rows = _csv(got.value)
    assert name == "encore-proof-of-value-2026-03-15.csv"
    assert rows[0][:3] == ["種類", "名前", "貢献期間 (日)"]
    assert {row[1]: row[7] for row in rows[1:]} == {"Thank you": "測定済み", "Win-back": "まだデータが足りません",
                                                    "Satisfaction survey": "ホールドアウト群なし"}
    assert not _errors(console), console
