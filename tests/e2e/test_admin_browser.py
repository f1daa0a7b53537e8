"""The embedded admin in a real headless Chromium, framed by the simulated Shopify admin.

The browser loads the simulator's /admin/<shop> page, which frames Encore with an id_token; the stand-in
App Bridge mints a fresh session token for every XHR. Encore's CSP must let that admin frame it.
"""

from __future__ import annotations

import copy
import re
import time
from typing import Any

import jwt
import pytest
import requests
from sqlalchemy import func, select, update

from app.db.models import InboxRow, Order, Shop
from app.simulator.shopify import sign
from tests.conftest import API_KEY, API_SECRET

pytestmark = pytest.mark.browser

SHOP = "browser-store.myshopify.com"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
SCREENSHOT = "/tmp/encore-admin.png"


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _open_admin(page: Any, sim: Any) -> Any:
    """Open the simulated Shopify admin; return the frame once Encore has rendered its first overview."""
    page.goto(sim.admin_url(SHOP))
    app = page.frame_locator("#app")
    _expect()(app.locator('#health dd[data-k="received"]')).to_have_text(re.compile(r"^\d+$"))
    return app


def _inbox(c: Any) -> list[InboxRow]:
    with c.sessions() as s:
        return list(s.scalars(select(InboxRow).order_by(InboxRow.id)))


def _drain(c: Any) -> None:
    assert c.queue.drain(10), "the in-process worker did not finish"


def test_admin_frames_encore_and_shows_orders_and_webhook_health(live: Any, page: Any, console: list[str]) -> None:
    server, sim, c = live
    expect = _expect()
    sim.add_store(SHOP, name="Browser Store", currency="USD", timezone="America/New_York", locale="en")

    app = _open_admin(page, sim)  # the first framed load installs Encore by token exchange
    assert sim.token_calls == [TOKEN_EXCHANGE]
    with c.sessions() as s:
        shop = s.scalars(select(Shop)).one()
        assert (shop.domain, shop.name, shop.installed) == (SHOP, "Browser Store", True)
    frame = page.frame(name="app-iframe")
    assert frame is not None and frame.url.startswith(f"{server.url}/shopify/app?")
    expect(app.locator("#shop-name")).to_have_text("Browser Store")
    expect(app.locator("#no-orders")).to_be_visible()
    expect(app.locator("html")).to_have_attribute("lang", "en")

    delivered = sim.place_order(SHOP)
    paid = sim.place_order(SHOP)
    placed = sim.place_order(SHOP, paid=False)
    shipped = sim.fulfill(SHOP, delivered["id"])
    sim.deliver(SHOP, delivered["id"])
    _drain(c)

    rows = _inbox(c)
    # 2 + 2 + 1 for the orders, fulfillments/create + orders/fulfilled, fulfillments/update + orders/updated.
    assert len(rows) == 9 and {r.status for r in rows} == {"done"}
    with c.sessions() as s:
        assert sorted(s.scalars(select(Order.status))) == ["delivered", "paid", "placed"]

    # The page polls every 3 s: the orders and the health tiles follow without a reload.
    names = app.locator("#orders tbody tr td:first-child")
    expect(names).to_have_text(["#1003", "#1002", "#1001"])
    expect(app.locator("#no-orders")).to_be_hidden()
    for order, status in ((delivered, "delivered"), (paid, "paid"), (placed, "placed")):
        row = app.locator(f'#orders tbody tr[data-order="{order["id"]}"]')
        expect(row.locator("td").first).to_have_text(order["name"])
        expect(row.locator(".status")).to_have_text(status)
        expect(row.locator(".status")).to_have_class(f"status status-{status}")
        expect(row.locator("td").nth(2)).to_have_text("$80.35")  # 2 × 18.00 + 32.50 + 5.00 shipping + 10% tax
    link = app.locator(f'#orders tbody tr[data-order="{delivered["id"]}"] td').nth(3).locator("a")
    expect(link).to_have_text(shipped["tracking_number"])
    expect(link).to_have_attribute("href", shipped["tracking_url"])

    tiles = {k: app.locator(f'#health dd[data-k="{k}"]') for k in ("received", "done", "pending", "parked")}
    expect(tiles["received"]).to_have_text(str(len(rows)))
    expect(tiles["done"]).to_have_text(str(sum(r.status == "done" for r in rows)))
    expect(tiles["pending"]).to_have_text("0")
    expect(tiles["parked"]).to_have_text("0")
    expect(app.locator("#parked")).to_be_hidden()
    expect(app.locator("#error")).to_be_hidden()

    page.screenshot(path=SCREENSHOT, full_page=True)
    errors = [m for m in console if m.startswith(("error", "pageerror")) and not m.endswith("/favicon.ico")]
    assert not errors, console  # the simulated admin has no favicon


def test_api_requests_need_a_session_token(live: Any) -> None:
    server, sim, c = live
    sim.add_store(SHOP)
    assert requests.get(sim.embedded_app_url(SHOP), timeout=10).status_code == 200  # installs
    url = f"{server.url}/api/admin/overview"
    refused = {
        "missing": {},
        "not bearer": {"Authorization": sim.session_token(SHOP)},
        "forged": {"Authorization": "Bearer " + sim.session_token(SHOP, secret="shpss_" + "f" * 32)},
        "expired": {"Authorization": "Bearer " + sim.session_token(SHOP, ttl=-600)},
        "other app": {"Authorization": "Bearer " + sim.session_token(SHOP, aud="another-app")},
        "not installed": {"Authorization": "Bearer " + sim.session_token("other-store.myshopify.com")},
        "garbage": {"Authorization": "Bearer not.a.jwt"},
    }
    for case, headers in refused.items():
        r = requests.get(url, headers=headers, timeout=5)
        assert r.status_code == 401, case
        assert r.headers.get("X-Shopify-Retry-Invalid-Session-Request") == "1", case
        assert "orders" not in r.json(), case
    retry = requests.post(f"{server.url}/api/admin/inbox/1/retry", timeout=5)
    assert (retry.status_code, retry.headers.get("X-Shopify-Retry-Invalid-Session-Request")) == (401, "1")

    ok = requests.get(url, headers={"Authorization": "Bearer " + sim.session_token(SHOP)}, timeout=5)
    assert ok.status_code == 200 and "X-Shopify-Retry-Invalid-Session-Request" not in ok.headers
    assert ok.json()["shop"]["domain"] == SHOP and ok.json()["orders"] == []


def test_frame_load_without_id_token_bounces_through_app_bridge(live: Any, page: Any) -> None:
    server, sim, c = live
    expect = _expect()
    sim.add_store(SHOP, name="Browser Store")
    app = _open_admin(page, sim)
    order = sim.place_order(SHOP)
    _drain(c)

    # Every XHR the page makes carries a fresh session token for this shop, minted by App Bridge.
    with page.expect_request(lambda r: r.url == f"{server.url}/api/admin/overview", timeout=10_000) as xhr:
        pass
    auth = xhr.value.headers.get("authorization", "")
    assert auth.startswith("Bearer ")
    claims = jwt.decode(auth[len("Bearer "):], API_SECRET, algorithms=["HS256"], audience=API_KEY)
    assert claims["dest"] == f"https://{SHOP}"

    # Shopify admin reloads the frame with no id_token: Encore answers the bounce page, App Bridge adds one.
    loads: list[Any] = []
    page.on("response", lambda r: loads.append(r) if "/shopify/app?" in r.url else None)
    bare = f"{server.url}/shopify/app?embedded=1&shop={SHOP}"
    page.evaluate("src => { document.getElementById('app').src = src; }", bare)
    frame = page.frame(name="app-iframe")
    assert frame is not None
    frame.wait_for_url(re.compile(r"[?&]id_token="))
    expect(app.locator(f'#orders tbody tr[data-order="{order["id"]}"] td').first).to_have_text("#1001")
    expect(app.locator(f'#orders tbody tr[data-order="{order["id"]}"] .status')).to_have_text("paid")

    assert [r.url for r in loads][0] == bare
    bounce = loads[0]
    assert bounce.status == 200 and "/static/bounce.js" in bounce.text()  # no inline script (app/web/csp.py)
    assert bounce.headers["content-security-policy"].startswith(f"frame-ancestors {sim.origin} https://*.myshopify.com; ")
    shell = loads[1]
    assert shell.url.startswith(bare + "&id_token=") and shell.status == 200
    assert shell.headers["content-security-policy"].startswith(f"frame-ancestors https://{SHOP} {sim.origin}; ")
    assert 'id="orders"' in shell.text() and len(loads) == 2  # one bounce, no loop
    assert frame.url.startswith(bare + "&id_token=")
    assert sim.token_calls == [TOKEN_EXCHANGE]  # already installed: the bounce exchanged nothing


def test_a_foreign_site_cannot_frame_encore(live: Any, page: Any) -> None:
    """The CSP is what lets the admin frame Encore; any other origin is refused by the browser."""
    server, sim, c = live
    sim.add_store(SHOP)
    foreign = "http://127.0.0.1:9/"  # an origin the CSP does not name; Playwright serves the page itself
    page.route(foreign, lambda route: route.fulfill(
        content_type="text/html", body=f'<iframe id="app" name="app-iframe" src="{sim.embedded_app_url(SHOP)}"></iframe>'))
    with page.expect_event("framenavigated", lambda f: f.name == "app-iframe") as framed:
        page.goto(foreign)
    assert framed.value.url == "chrome-error://chromewebdata/"  # Chromium refused to render Encore there
    assert page.frame_locator("#app").locator("#orders").count() == 0
    # The same document framed by the simulated admin renders: the refusal was the CSP, not the server.
    page.goto(sim.admin_url(SHOP))
    frame = page.frame(name="app-iframe")
    assert frame is not None
    _expect()(page.frame_locator("#app").locator("#orders")).to_be_attached()
    assert frame.url.startswith(f"{server.url}/shopify/app?")


@pytest.mark.parametrize(("locale", "currency", "heading", "received", "empty"), [
    ("ja", "JPY", "最近の注文", "受信", "まだ注文はありません。ストアから届くとここに表示されます。"),
    ("ko", "KRW", "최근 주문", "수신", "아직 주문이 없습니다. 스토어에서 주문이 들어오면 여기에 표시됩니다."),
], ids=["ja", "ko"])
def test_the_admin_speaks_the_stores_language(live: Any, page: Any, locale: str, currency: str, heading: str,
                                               received: str, empty: str) -> None:
    server, sim, c = live
    expect = _expect()
    sim.add_store(SHOP, name="店舗" if locale == "ja" else "상점", currency=currency, timezone="Asia/Tokyo", locale=locale)
    app = _open_admin(page, sim)
    with c.sessions() as s:
        assert s.scalars(select(Shop.locale)).one() == locale
    expect(app.locator("html")).to_have_attribute("lang", locale)
    expect(app.locator("#orders-title")).to_have_text(heading)
    expect(app.locator("#health dt").first).to_have_text(received)
    expect(app.locator("#no-orders")).to_have_text(empty)
    expect(app.locator("#orders thead th").first).not_to_have_text("Order")


def test_parked_deliveries_show_with_their_error_and_retry_from_the_browser(
        live: Any, page: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    server, sim, c = live
    expect = _expect()
    sim.add_store(SHOP, name="Browser Store")
    app = _open_admin(page, sim)
    _drain(c)  # the install's history import is over: what the store holds from now on comes by webhook only
    c.settings = c.settings.with_(inbox_max_attempts=1)  # park on the first failure, no backoff to wait out

    # Build an order and its fulfillment in the store without telling Encore yet.
    held: dict[str, Any] = {}
    monkeypatch.setattr(sim, "send", lambda shop, topic, payload, **kw: held.setdefault(topic, copy.deepcopy(payload)))
    order = sim.place_order(SHOP)
    sim.fulfill(SHOP, order["id"])
    monkeypatch.undo()

    # The fulfillment arrives before its order; a validly signed orders/create carries a broken body.
    assert sim.send(SHOP, "fulfillments/create", held["fulfillments/create"]).status_code == 200
    _park_a_broken_delivery(server, sim)
    _drain(c)
    assert sim.send(SHOP, "orders/create", held["orders/create"]).status_code == 200
    assert sim.send(SHOP, "orders/paid", held["orders/paid"]).status_code == 200
    _drain(c)

    early, broken = (r for r in _inbox(c) if r.status == "parked")
    assert (early.topic, early.attempts, early.last_error) == ("fulfillments/create", 1,
                                                               f"order {order['id']} not received yet")
    assert broken.topic == "orders/create" and broken.attempts == 1
    assert broken.last_error is not None and broken.last_error.startswith("malformed payload:")

    parked = app.locator("#parked tbody tr")
    expect(app.locator("#parked")).to_be_visible()
    expect(parked).to_have_count(2)
    expect(parked.locator("td:first-child")).to_have_text([str(broken.id), str(early.id)])  # newest first
    early_row = parked.filter(has_text="fulfillments/create")
    expect(early_row.locator("td").nth(2)).to_have_text(f"order {order['id']} not received yet")
    expect(parked.filter(has_text="orders/create").locator("td").nth(2)).to_have_text(broken.last_error)
    rows = _inbox(c)
    assert [r.status for r in rows] == ["parked", "parked", "done", "done"]
    tiles = {k: app.locator(f'#health dd[data-k="{k}"]') for k in ("received", "done", "pending", "parked")}
    for key, value in {"received": 4, "done": 2, "pending": 0, "parked": 2}.items():
        expect(tiles[key]).to_have_text(str(value))
    status = app.locator(f'#orders tbody tr[data-order="{order["id"]}"] .status')
    expect(status).to_have_text("paid")

    # Retry the early fulfillment: its order is known now, so it goes through and the order ships.
    with page.expect_response(lambda r: r.request.method == "POST" and "/retry" in r.url) as posted:
        early_row.get_by_role("button", name="Retry").click()
    assert posted.value.url == f"{server.url}/api/admin/inbox/{early.id}/retry" and posted.value.status == 200
    assert posted.value.request.headers["authorization"].startswith("Bearer ")
    _drain(c)
    with c.sessions() as s:
        row = s.get(InboxRow, early.id)
        assert row is not None and (row.status, row.attempts, row.last_error) == ("done", 1, None)
        assert s.scalars(select(Order.status)).one() == "fulfilled"
    expect(status).to_have_text("fulfilled")
    expect(parked).to_have_count(1)
    for key, value in {"received": 4, "done": 3, "pending": 0, "parked": 1}.items():
        expect(tiles[key]).to_have_text(str(value))
    link = app.locator(f'#orders tbody tr[data-order="{order["id"]}"] td').nth(3).locator("a")
    expect(link).to_have_text(held["fulfillments/create"]["tracking_number"])
    expect(link).to_have_attribute("href", held["fulfillments/create"]["tracking_url"])

    # Retrying the broken body runs it again from zero attempts; it parks again with the same error.
    with page.expect_response(lambda r: r.request.method == "POST" and "/retry" in r.url) as posted:
        parked.get_by_role("button", name="Retry").click()
    assert posted.value.url == f"{server.url}/api/admin/inbox/{broken.id}/retry" and posted.value.status == 200
    _drain(c)
    with c.sessions() as s:
        again = s.get(InboxRow, broken.id)
        assert again is not None and (again.status, again.attempts, again.last_error) == ("parked", 1, broken.last_error)
        assert again.processed_at is not None and broken.processed_at is not None
        assert again.processed_at > broken.processed_at
    expect(parked).to_have_count(1)
    expect(parked.locator("td").nth(2)).to_have_text(broken.last_error)
    # A row that is no longer parked cannot be retried again.
    token = sim.session_token(SHOP)
    gone = requests.post(f"{server.url}/api/admin/inbox/{early.id}/retry", headers={"Authorization": f"Bearer {token}"},
                         timeout=5)
    assert gone.status_code == 404


def _park_a_broken_delivery(server: Any, sim: Any) -> None:
    body = b'{"id": 424242, "name": "#broken", '
    _, headers = sim.delivery(SHOP, "orders/create", {})
    headers["X-Shopify-Hmac-Sha256"] = sign(body, API_SECRET)
    assert requests.post(f"{server.url}/webhooks/shopify", data=body, headers=headers, timeout=5).status_code == 200


def test_a_failed_request_shows_an_error_until_a_later_one_succeeds(live: Any, page: Any) -> None:
    server, sim, c = live
    expect = _expect()
    sim.add_store(SHOP)
    page.clock.install()  # the page polls only when the test moves its clock: no race with the 3 s timer
    app = _open_admin(page, sim)
    page.clock.pause_at(time.time() + 1)
    error = app.locator("#error")
    expect(error).to_be_hidden()

    # A passing outage shows, and the next poll that succeeds clears it.
    page.route("**/api/admin/overview", lambda route: route.fulfill(status=503, body="down"))
    page.clock.run_for(3000)
    expect(error).to_have_text("Error: /api/admin/overview: HTTP 503")
    page.unroute("**/api/admin/overview")
    page.clock.run_for(3000)
    expect(error).to_be_hidden()

    # Retrying a row that is no longer parked (another tab retried it) answers 404, shown, not swallowed.
    _park_a_broken_delivery(server, sim)
    _drain(c)
    page.clock.run_for(3000)
    parked = app.locator("#parked tbody tr")
    expect(parked).to_have_count(1)
    with c.sessions() as s, s.begin():
        row_id = s.scalars(select(InboxRow.id)).one()
        s.execute(update(InboxRow).values(status="done"))
    with page.expect_response(lambda r: r.request.method == "POST" and "/retry" in r.url) as posted:
        parked.get_by_role("button", name="Retry").click()
    assert posted.value.status == 404
    expect(error).to_have_text(f"Error: /api/admin/inbox/{row_id}/retry: HTTP 404")
    page.clock.run_for(3000)
    expect(app.locator("#parked")).to_be_hidden()
    expect(error).to_be_hidden()


def test_the_history_import_shows_its_progress_and_a_failed_one_can_be_retried(live: Any, page: Any) -> None:
    from app import imports
    from app.db.models import HistoryImport

    server, sim, c = live
    expect = _expect()
    sim.add_store(SHOP, name="Browser Store")
    sim.seed_history(SHOP, 1_500)  # a store with a past: installing imports it in the background
    app = _open_admin(page, sim)
    line = app.locator("#history-line")
    expect(line).to_have_text("Order history imported: 1,500 orders and 1,350 customers.", timeout=30_000)
    expect(app.locator("#history-bar")).to_be_hidden()
    expect(app.locator("#history-retry")).to_be_hidden()

    with c.sessions() as s:  # a later import that failed for good (its store kept answering 5xx, say)
        shop_id = s.scalars(select(Shop.id)).one()
    import_id = imports.start(c, shop_id, enqueue=False)
    with c.sessions() as s, s.begin():
        s.execute(update(HistoryImport).where(HistoryImport.id == import_id).values(
            status="failed", phase="orders", customers=1_350, error="ShopifyRetryable: HTTP 503 from the store"))
    expect(line).to_have_text("The history import stopped: ShopifyRetryable: HTTP 503 from the store")
    with page.expect_response(lambda r: r.request.method == "POST" and "/history/retry" in r.url) as posted:
        app.locator("#history-retry").click()
    assert posted.value.status == 200
    _drain(c)
    expect(line).to_have_text("Order history imported: 1,500 orders and 1,350 customers.")
    with c.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 1_500
