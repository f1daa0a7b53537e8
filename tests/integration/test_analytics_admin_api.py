"""The analytics admin on the real database (SQLite, or PostgreSQL when DATABASE_URL names one): its page in both
shells, every API route behind a session token and scoped to its shop, the overview's figures against what was
inserted (tests/analytics_data.py), the NPS trend by the shop's calendar months, the customers' pages and sorting,
asking for a refresh (and the sweep running it), each chart's CSV (byte-order mark, the admin's language, numbers,
formula-like text neutralised), and the page's catalog complete in English, Korean and Japanese."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import update

from app.analytics import refresh
from app.bootstrap import Container
from app.core import lift
from app.db import models as t
from app.i18n import LOCALES
from app.web.auth import issue_admin_token
from tests import analytics_data as data
from tests.analytics_data import NOW, Group
from tests.helpers import add_shop, assert_catalog_complete, page_msgids
from tests.journeys import Clock

DOMAIN, OTHER = "shop-a.myshopify.com", "shop-b.myshopify.com"
API = "/api/admin/analytics"
SEOUL = "Asia/Seoul"


def _shop(c: Container, domain: str, *, timezone: str = SEOUL, locale: str = "en") -> int:
    shop_id = add_shop(c, domain)
    with c.sessions() as s, s.begin():
        s.execute(update(t.Shop).where(t.Shop.id == shop_id).values(
            name="Bean There", currency="USD", timezone=timezone, locale=locale))
    return shop_id


@pytest.fixture
def shop(container: Container) -> int:
    container.clock = Clock(NOW)
    return _shop(container, DOMAIN)


@pytest.fixture
def h(container: Container, shop: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_admin_token(container, shop, DOMAIN, now=datetime.now(UTC))}"}


@pytest.fixture
def other(container: Container, shop: int) -> tuple[int, dict[str, str]]:
    """Another shop with figures of its own, and its token."""
    shop_id = _shop(container, OTHER, timezone="UTC")
    data.add_run(container, shop_id, data.summary(customers=999))
    data.add_segments(container, shop_id, [("b-secret", "B's secret segment", "rule", 99)])
    data.add_metrics(container, shop_id, [{"customer_external_id": "b-1", "revenue": Decimal("999.00")}])
    data.add_answers(container, shop_id, [(NOW - timedelta(days=1), 1, 0)] * 3)
    return shop_id, {"Authorization": f"Bearer {issue_admin_token(container, shop_id, OTHER)}"}


def get(client: FlaskClient, path: str, headers: dict[str, str], status: int = 200) -> Any:
    r = client.get(API + path, headers=headers)
    assert r.status_code == status, r.get_data(as_text=True)
    return r.get_json()


def download(client: FlaskClient, name: str, headers: dict[str, str], locale: str | None = None) -> list[list[str]]:
    r = client.get(f"{API}/export/{name}.csv" + (f"?locale={locale}" if locale else ""), headers=headers)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(rf'attachment; filename="encore-{name}-2026-03-15\.csv"', r.headers["Content-Disposition"])
    body = r.get_data()
    assert body.startswith(b"\xef\xbb\xbf")  # UTF-8's byte-order mark: Excel then reads Korean and Japanese right
    return list(csv.reader(io.StringIO(body[3:].decode("utf-8"), newline="")))


# --- the page -------------------------------------------------------------------------------------------------


def test_the_page_inside_shopify_admin_in_the_shops_language(client: FlaskClient, container: Container, shop: int
                                                              ) -> None:
    r = client.get(f"/admin/analytics?shop={DOMAIN}&host=abc")
    assert r.status_code == 200
    assert r.headers["Content-Security-Policy"].startswith(f"frame-ancestors https://{DOMAIN} ")
    html = r.get_data(as_text=True)
    assert "<h1>Analytics</h1>" in html and 'name="shopify-api-key"' in html and "data-session-token" not in html
    assert f'href="/shopify/app?embedded=1&amp;shop={DOMAIN}&amp;host=abc"' in html
    assert f'href="{API}/export/cohorts.csv"' in html and "Download CSV" in html
    with container.sessions() as s, s.begin():
        s.execute(update(t.Shop).where(t.Shop.id == shop).values(locale="ko"))
    html = client.get(f"/admin/analytics?shop={DOMAIN}").get_data(as_text=True)
    assert '<html lang="ko">' in html and "<h1>분석</h1>" in html and "CSV 다운로드" in html
    assert client.get("/admin/analytics?shop=evil.example.com").status_code == 400


def test_the_page_from_a_stores_own_admin_carries_its_token(client: FlaskClient, container: Container) -> None:
    with container.sessions() as s, s.begin():
        store = t.Shop(platform="woocommerce", domain="https://store.example", installed_at=datetime.now(UTC))
        s.add(store)
        s.flush()
        shop_id = store.id
    token = issue_admin_token(container, shop_id, "https://store.example")
    r = client.post("/admin/analytics", data={"token": token, "locale": "ja"})
    assert r.status_code == 200
    assert r.headers["Content-Security-Policy"].startswith("frame-ancestors https://store.example; ")  # app/web/csp.py
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Referrer-Policy"] == "no-referrer"
    html = r.get_data(as_text=True)
    assert f'data-session-token="{token}"' in html and "<h1>分析</h1>" in html and "app-bridge" not in html
    assert 'action="/admin/home"' in html  # back to the store's admin page, posting the token
    assert client.post("/admin/analytics", data={"token": "forged"}).status_code == 401


def test_every_api_route_needs_a_session_token(client: FlaskClient, shop: int) -> None:
    routes = [("GET", "/overview"), ("GET", "/customers"), ("POST", "/refresh"), ("GET", "/export/nps.csv"),
              ("GET", "/export/customers.csv")]
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer forged"}):
            r = client.open(API + path, method=method, headers=headers)
            assert r.status_code == 401, (method, path)
            assert r.headers["X-Shopify-Retry-Invalid-Session-Request"] == "1"


# --- the overview ---------------------------------------------------------------------------------------------


def test_the_overview_returns_the_last_finished_refresh_and_the_runs_state(client: FlaskClient, container: Container,
                                                                           shop: int, h: dict[str, str]) -> None:
    empty = get(client, "/overview", h)
    assert empty["summary"] is None and empty["run"] is None and empty["segments"] == [] and empty["proof"] == []
    assert empty["nps"] == {"months": [], "min_answers": 10}
    assert empty["shop"] == {"domain": DOMAIN, "name": "Bean There", "currency": "USD", "timezone": SEOUL,
                             "locale": "en"}

    old = data.summary(customers=100)
    data.add_run(container, shop, old, at=NOW - timedelta(days=1))
    newest = data.summary(data.FITTED)
    data.add_run(container, shop, newest)
    data.add_run(container, shop, None, status="failed", at=NOW - timedelta(minutes=5), error="boom")
    found = get(client, "/overview", h)
    assert found["summary"] == newest  # the newest finished one, as the refresh wrote it
    assert found["summary"]["model"]["expected_orders_90d"] == 57.25
    assert found["run"]["status"] == "failed" and found["run"]["error"] == "boom"  # and the newest run's state

    running = data.add_run(container, shop, None, status="running", at=NOW - timedelta(minutes=1))
    found = get(client, "/overview", h)
    assert found["run"]["id"] == running and found["run"]["status"] == "running" and found["summary"] == newest


def test_segment_sizes_largest_first(client: FlaskClient, container: Container, shop: int, h: dict[str, str]) -> None:
    data.add_segments(container, shop, [("vip", "VIP spenders", "rule", 12), ("rfm:champions", "Champions", "rfm", 30),
                                        ("rfm:lost", "Lost", "rfm", 5)])
    found = get(client, "/overview", h)["segments"]
    assert [(x["key"], x["kind"], x["size"]) for x in found] == [("rfm:champions", "rfm", 30), ("vip", "rule", 12),
                                                                  ("rfm:lost", "rfm", 5)]
    assert found[0]["refreshed_at"] == (NOW - timedelta(hours=1)).isoformat()


def test_the_nps_trend_counts_by_the_shops_calendar_month(client: FlaskClient, container: Container, shop: int,
                                                          h: dict[str, str]) -> None:
    seoul_jan_31 = datetime(2026, 1, 31, 14, 30, tzinfo=UTC)  # 23:30 in Seoul: January's
    seoul_feb_1 = datetime(2026, 1, 31, 15, 30, tzinfo=UTC)  # 00:30 on 1 February in Seoul: February's
    february = [(seoul_feb_1, 5, 10)] * 6 + [(seoul_feb_1, 4, 7)] * 2 + [(seoul_feb_1 + timedelta(days=3), 2, 3)] * 4
    data.add_answers(container, shop, [
        (datetime(2025, 2, 10, tzinfo=UTC), 1, 0),  # 13 months back: before the trend's twelve
        (datetime(2025, 11, 20, tzinfo=UTC), 4, 9),
        (seoul_jan_31, 3, 6), (seoul_jan_31, 5, 9), (seoul_jan_31, 5, None),
        *february,
        (NOW - timedelta(hours=2), 4, None), (NOW + timedelta(hours=1), 1, 0),  # the last one is still to come
    ])
    months = get(client, "/overview", h)["nps"]["months"]
    assert [m["month"] for m in months] == ["2025-11", "2025-12", "2026-01", "2026-02", "2026-03"]
    by = {m["month"]: m for m in months}
    assert by["2025-11"] == {"month": "2025-11", "answers": 1, "promoters": 1, "passives": 0, "detractors": 0,
                             "nps": 100.0, "ratings": 1, "satisfaction": 4.0, "too_few": True}
    assert by["2025-12"] == {"month": "2025-12", "answers": 0, "promoters": 0, "passives": 0, "detractors": 0,
                             "nps": None, "ratings": 0, "satisfaction": None, "too_few": True}
    assert by["2026-01"] == {"month": "2026-01", "answers": 2, "promoters": 1, "passives": 0, "detractors": 1,
                             "nps": 0.0, "ratings": 3, "satisfaction": 4.33, "too_few": True}
    # 6 promoters, 2 passives, 4 detractors of 12: (6 - 4) / 12 = 16.7 points; satisfaction (30 + 8 + 8) / 12.
    assert by["2026-02"] == {"month": "2026-02", "answers": 12, "promoters": 6, "passives": 2, "detractors": 4,
                             "nps": 16.7, "ratings": 12, "satisfaction": 3.83, "too_few": False}
    assert by["2026-03"]["answers"] == 0 and by["2026-03"]["ratings"] == 1 and by["2026-03"]["nps"] is None


def test_the_proof_of_value_shows_attribution_next_to_lift(client: FlaskClient, container: Container, shop: int,
                                                           h: dict[str, str]) -> None:
    data.add_journey(container, shop, "thank_you", Group(120, 30, 100, 10), attributed=5)
    data.add_journey(container, shop, "win_back", Group(10, 1, 2, 0))
    proof = {row["key"]: row for row in get(client, "/overview", h)["proof"]}
    thanks = proof["thank_you"]
    assert thanks["name"] == "Thank you" and thanks["window_days"] == 7
    assert thanks["attributed"]["orders"] == 5 and Decimal(thanks["attributed"]["revenue"]) == Decimal("250.00")
    measured = thanks["lift"]
    assert measured["status"] == "measured"
    assert (measured["treated"]["n"], measured["treated"]["converted"]) == (120, 30)
    assert (measured["holdout"]["n"], measured["holdout"]["converted"]) == (100, 10)
    assert measured["difference"] == pytest.approx(0.15)  # 25% against 10%
    assert measured["ci95"] == pytest.approx(list(lift.newcombe(30, 120, 10, 100)), abs=1e-6)
    assert measured["incremental_orders"]["value"] == pytest.approx(18.0)  # 0.15 of the 120 who got it
    assert Decimal(measured["incremental_revenue"]["value"]) == Decimal("720.00")  # at $40 an order
    waiting = proof["win_back"]["lift"]
    assert waiting["status"] == "not_enough_data" and waiting["difference"] is None
    assert {(x["group"], x["measure"], x["have"], x["need"]) for x in waiting["needs"]} == {
        ("treated", "size", 10, 100), ("holdout", "size", 2, 100), ("both", "conversions", 1, 10)}


def test_another_shops_token_sees_nothing_of_this_one(client: FlaskClient, container: Container, shop: int,
                                                      h: dict[str, str], other: tuple[int, dict[str, str]]) -> None:
    data.add_run(container, shop, data.summary())
    data.add_segments(container, shop, [("vip", "VIP spenders", "rule", 12)])
    data.add_metrics(container, shop, [{"customer_external_id": "a-1"}])
    _, theirs = other
    mine = get(client, "/overview", h)
    assert mine["summary"]["customers"] == 240 and [x["key"] for x in mine["segments"]] == ["vip"]
    assert mine["nps"]["months"] == []
    seen = get(client, "/overview", theirs)
    assert seen["summary"]["customers"] == 999 and [x["key"] for x in seen["segments"]] == ["b-secret"]
    assert [c["id"] for c in get(client, "/customers", theirs)["customers"]] == ["b-1"]
    assert [c["id"] for c in get(client, "/customers", h)["customers"]] == ["a-1"]
    assert [row[0] for row in download(client, "customers", theirs)[1:]] == ["b-1"]
    assert [row[1] for row in download(client, "segments", h)[1:]] == ["vip"]


# --- customers with predictions ---------------------------------------------------------------------------------


def test_customers_come_a_page_at_a_time_sorted_unknown_last(client: FlaskClient, container: Container, shop: int,
                                                             h: dict[str, str]) -> None:
    with container.sessions() as s, s.begin():
        s.add(t.Customer(shop_id=shop, external_id="c2", email="mina@example.com", first_name="Mina", last_name="Park",
                         external_updated_at=NOW))
        s.add(t.Customer(shop_id=shop, external_id="c3", email="gone@example.com", first_name="Gone",
                         external_updated_at=NOW, redacted_at=NOW))
    data.add_metrics(container, shop, [
        {"customer_external_id": "c1", "orders": 4, "revenue": Decimal("200.00"), "rfm_segment": "champions",
         "p_alive": 0.9, "expected_orders_90d": 1.25, "predicted_clv": Decimal("310.50"),
         "expected_next_order_at": NOW + timedelta(days=20)},
        {"customer_external_id": "c2", "orders": 2, "revenue": Decimal("80.00"), "p_alive": 0.4,
         "expected_orders_90d": 0.3, "predicted_clv": Decimal("45.00")},
        {"customer_external_id": "c3", "orders": 1, "revenue": Decimal("120.00")},
    ])
    first = get(client, "/customers?per_page=2", h)
    assert (first["total"], first["pages"], first["page"], first["sort"], first["order"]) == (3, 2, 1, "revenue", "desc")
    assert [c["id"] for c in first["customers"]] == ["c1", "c3"] and first["currency"] == "USD"
    c1 = first["customers"][0]
    assert Decimal(c1["revenue"]) == Decimal("200.00") and Decimal(c1["predicted_clv"]) == Decimal("310.50")
    assert (c1["orders"], c1["p_alive"], c1["expected_orders_90d"]) == (4, 0.9, 1.25)
    assert c1["rfm"] == {"r": 1, "f": 1, "m": 1, "segment": "champions"}
    assert c1["expected_next_order_at"] == (NOW + timedelta(days=20)).isoformat()
    assert first["customers"][1]["email"] is None and first["customers"][1]["name"] is None  # redacted
    second = get(client, "/customers?per_page=2&page=2", h)
    assert [c["id"] for c in second["customers"]] == ["c2"]
    assert (second["customers"][0]["name"], second["customers"][0]["email"]) == ("Mina Park", "mina@example.com")
    for order in ("desc", "asc"):  # a customer without a prediction comes last either way
        ids = [c["id"] for c in get(client, f"/customers?sort=predicted_clv&order={order}", h)["customers"]]
        assert ids == (["c1", "c2", "c3"] if order == "desc" else ["c2", "c1", "c3"])
    assert [c["id"] for c in get(client, "/customers?sort=customer&order=asc", h)["customers"]] == ["c1", "c2", "c3"]


def test_bad_listing_parameters_are_refused_each_with_its_message(client: FlaskClient, shop: int,
                                                                   h: dict[str, str]) -> None:
    answer = get(client, "/customers?page=0&per_page=500&sort=email&order=sideways", h, 400)
    assert {p["field"] for p in answer["problems"]} == {"page", "per_page", "sort", "order"}
    assert "sort: one of customer, orders, revenue" in answer["error"]
    assert get(client, "/customers?page=abc", h, 400)["problems"][0]["field"] == "page"


# --- a refresh --------------------------------------------------------------------------------------------------


def test_asking_for_a_refresh_lets_the_sweep_run_it_and_a_small_shop_says_what_it_lacks(
        client: FlaskClient, container: Container, shop: int, h: dict[str, str]) -> None:
    with container.sessions() as s, s.begin():
        for i in range(6):  # six customers, two of whom ordered again
            s.add(data.order(shop, f"a{i}", f"c{i}", NOW - timedelta(days=60 - i), "30.00"))
        s.add(data.order(shop, "b0", "c0", NOW - timedelta(days=20), "50.00"))
        s.add(data.order(shop, "b1", "c1", NOW - timedelta(days=10), "20.00"))
    assert refresh.refresh(container, shop, NOW - timedelta(hours=3)) is not None  # last night's
    assert refresh.refresh_due(container, NOW) == 0  # nothing due until tomorrow night

    r = client.post(f"{API}/refresh", headers=h)
    assert r.status_code == 202 and r.get_json()["asked"] is True and r.get_json()["run"]["status"] == "done"
    assert refresh.refresh_due(container, NOW) == 1  # the next sweep runs it
    found = get(client, "/overview", h)
    assert found["run"]["status"] == "done" and found["summary"]["computed_at"] == NOW.isoformat()
    assert (found["summary"]["customers"], found["summary"]["orders"]) == (6, 8)
    assert Decimal(found["summary"]["revenue"]) == Decimal("250.00") and found["summary"]["repeat_rate"] == pytest.approx(2 / 6)
    model = found["summary"]["model"]
    assert model["status"] == "not_enough_data" and (model["customers"], model["repeat_customers"]) == (6, 2)
    assert model["needs"] == {"customers": 200, "repeat_customers": 50}
    listed = get(client, "/customers?sort=customer&order=asc", h)["customers"]
    assert [(c["id"], c["orders"], c["predicted_clv"]) for c in listed][:2] == [("c0", 2, None), ("c1", 2, None)]

    data.add_run(container, shop, None, status="running", at=NOW)  # a run under way: nothing more to ask for
    again = client.post(f"{API}/refresh", headers=h)
    assert again.status_code == 202 and again.get_json()["asked"] is False


# --- CSV ------------------------------------------------------------------------------------------------------------


def test_each_chart_downloads_as_csv_with_its_figures(client: FlaskClient, container: Container, shop: int,
                                                       h: dict[str, str]) -> None:
    data.add_run(container, shop, data.summary())
    rows = download(client, "repeat-rate", h)
    assert rows == [["Month", "Customers", "Returning customers", "Repeat rate (%)"], ["2025-12", "80", "20", "25.0"],
                    ["2026-01", "90", "36", "40.0"], ["2026-02", "100", "45", "45.0"], ["2026-03", "40", "13", "32.5"]]
    rows = download(client, "cohorts", h)
    assert rows[0] == ["First order month", "Customers", "Month 0 (%)", "Month 1 (%)", "Month 2 (%)", "Month 3 (%)"]
    assert rows[1] == ["2025-12", "80", "100.0", "25.0", "12.5", "10.0"]
    assert rows[4] == ["2026-03", "10", "100.0", "", "", ""]

    data.add_answers(container, shop, [(NOW - timedelta(days=1), 5, 10), (NOW - timedelta(days=1), 2, 3)])
    rows = download(client, "nps", h, "ja")
    assert rows[0][:3] == ["月", "NPS", "回答数"]
    assert rows[1] == ["2026-03", "0.0", "2", "1", "0", "1", "3.50", "2", "はい"]


def test_the_proof_of_value_csv_keeps_negative_numbers_and_says_what_is_missing(
        client: FlaskClient, container: Container, shop: int, h: dict[str, str]) -> None:
    data.add_journey(container, shop, "thank_you", Group(100, 10, 120, 30), attributed=2)  # the holdout did better
    data.add_journey(container, shop, "win_back", Group(10, 1, 2, 0))
    rows = download(client, "proof-of-value", h, "ko")
    head, body = rows[0], {row[1]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    assert head[:3] == ["종류", "이름", "기여 기간 (일)"]
    thanks = body["Thank you"]
    assert thanks["기여 주문"] == "2" and thanks["기여 매출"] == "100.00" and thanks["통화"] == "USD"
    assert thanks["효과"] == "측정됨" and thanks["차이 (%p)"] == "-15.0"  # 10% against 25%: a number, no apostrophe
    low, high = lift.newcombe(10, 100, 30, 120)
    assert thanks["95% 구간, 하한 (%p)"] == f"{100 * low:.1f}" and thanks["95% 구간, 상한 (%p)"] == f"{100 * high:.1f}"
    assert thanks["증분 주문"] == "-15.00" and thanks["증분 매출"] == "-600.00"
    win_back = body["Win-back"]
    assert win_back["효과"] == "아직 데이터가 충분하지 않습니다" and win_back["차이 (%p)"] == ""
    assert win_back["아직 필요한 것"] == ("받은 고객 100명 (현재 10명); 홀드아웃 그룹 고객 100명 (현재 2명); "
                                    "두 그룹을 합친 주문 10건 (현재 1건)")


def test_formula_like_text_is_neutralised_and_every_customer_is_listed(client: FlaskClient, container: Container,
                                                                      shop: int, h: dict[str, str]) -> None:
    with container.sessions() as s, s.begin():
        s.add(t.Customer(shop_id=shop, external_id="=HYPERLINK(\"http://x\")", email="@evil.example",
                         first_name="+SUM(A1)", last_name="Kim", external_updated_at=NOW))
    data.add_segments(container, shop, [("minus", "-1+2 segment", "rule", 3), ("tab", "\tTabbed", "rule", 2)])
    data.add_metrics(container, shop, [{"customer_external_id": "=HYPERLINK(\"http://x\")", "revenue": Decimal("500"),
                                        "rfm_segment": "at_risk", "p_alive": 0.125, "expected_orders_90d": 0.5,
                                        "predicted_clv": Decimal("12.3456"),
                                        "expected_next_order_at": datetime(2026, 3, 31, 16, tzinfo=UTC)}]
                      + [{"customer_external_id": f"n{i:03d}"} for i in range(250)])
    segments = download(client, "segments", h)
    assert segments[1:] == [["'-1+2 segment", "minus", "Your rules", "3", "2026-03-15"],
                            ["'\tTabbed", "tab", "Your rules", "2", "2026-03-15"]]
    rows = download(client, "customers", h, "ko")
    assert rows[0][:5] == ["고객 ID", "이메일", "이름", "주문", "매출 (USD)"]
    assert len(rows) == 1 + 251  # every customer, not a page of them
    evil = rows[1]
    assert evil[:3] == ["'=HYPERLINK(\"http://x\")", "'@evil.example", "'+SUM(A1) Kim"]
    assert evil[3:] == ["1", "500.00", "2025-12-05", "2025-12-05", "이탈 위험", "1", "1", "1", "12.5", "0.50",
                        "2026-04-01", "12.35"]  # the next order falls on 1 April in Seoul


def test_an_unknown_export_is_refused(client: FlaskClient, shop: int, h: dict[str, str]) -> None:
    r = client.get(f"{API}/export/everything.csv", headers=h)
    assert r.status_code == 404 and "repeat-rate, cohorts, nps, proof-of-value, segments, customers" in r.get_json()["error"]


# --- the catalog ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LOCALES)
def test_the_pages_catalog_is_complete_in_every_language(language: str) -> None:
    wanted = page_msgids(templates=["admin_page.html", "analytics.html"], python=["web/analytics_csv.py"])
    assert len(wanted) > 100 and {"Cohort retention", "Not enough data yet", "Month {n} (%)"} <= wanted
    assert_catalog_complete("analytics_admin", wanted, language, untranslated=3)  # "NPS", "RFM"...

