"""The journeys page in a real headless Chromium: inside the simulated Shopify admin (App Bridge tokens), and
opened from WordPress (Encore's page token). The library, a switch, the editor with its live preview in a
sandboxed frame, a template error shown with its line, a save that makes version 2, a test send into the
outbox, figures with "send again", the simulation, the messaging settings, and the page in Korean."""

from __future__ import annotations

import re
import secrets
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import jwt
import pytest
from sqlalchemy import select, update

from app import journeys as jr
from app.channels.outbox import OutboxChannel
from app.db import models as t
from app.dispatch import Dispatcher
from tests.fakes import FakeStorePlatform

pytestmark = pytest.mark.browser

SHOP = "journeys-store.myshopify.com"
SCREENSHOT = "/tmp/encore-journeys.png"


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _open_admin(page: Any, sim: Any) -> Any:
    """The simulated Shopify admin framing Encore, once the journeys list has rendered."""
    page.route(re.compile(r"https://(cdn|shop)\.example\.com/.*"), lambda route: route.abort())  # the sample's images
    page.goto(sim.admin_url(SHOP))
    app = page.frame_locator("#app")
    _expect()(app.locator("#journeys tbody tr")).to_have_count(len(jr.DEFAULTS))
    return app


def _shop_id(c: Any) -> int:
    with c.sessions() as s:
        shop_id: int = s.scalars(select(t.Shop.id)).one()
        return shop_id


def _messages(c: Any) -> int:
    with c.sessions() as s:
        return len(s.scalars(select(t.Message.id)).all())


def _outbox(directory: Path) -> list[Any]:
    return [message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted(directory.glob("*.eml"))]


def test_edit_a_journey_with_live_preview_save_and_test_send(live: Any, page: Any, console: list[str],
                                                             tmp_path: Path) -> None:
    server, sim, c = live
    expect = _expect()
    c.settings = c.settings.with_(outbox_dir=str(tmp_path / "outbox"))
    sim.add_store(SHOP, name="Journey Store", currency="USD", timezone="America/New_York", locale="en")
    app = _open_admin(page, sim)
    shop_id = _shop_id(c)

    rows = app.locator("#journeys tbody tr")
    expect(rows.first.locator("button.title")).to_have_text("Thank you")
    thanks = app.locator('#journeys tr[data-key="thank_you"]')
    expect(thanks.locator('[data-k="sent"]')).to_have_text("0")
    with page.expect_response(lambda r: r.url.endswith("/api/admin/journeys/thank_you/enabled")) as switched:
        thanks.get_by_role("switch").check()
    assert switched.value.status == 200
    assert jr.live_version(c, shop_id, "thank_you").enabled is True

    thanks.locator("button.title").click()
    editor = app.locator("#editor")
    expect(editor).to_be_visible()
    expect(app.locator("#editor-title")).to_have_text("Thank you")
    expect(app.locator("#editor-version")).to_have_text("Version 1")
    step = editor.locator('[data-step="message"]')
    expect(step.locator(".preview-subject")).to_have_text("Thank you for your order #1001")
    expect(step.locator('[data-f="default"]')).to_be_checked()
    preview = step.frame_locator(".preview-frame")
    expect(preview.locator("body")).to_contain_text("Ethiopia Yirgacheffe")  # the sample order, in the layout
    assert step.locator(".preview-frame").get_attribute("sandbox") == ""

    # Typing updates the preview (debounced) and makes the copy the merchant's own.
    step.locator('[data-f="subject"]').fill("Hello {{ customer.first_name }}")
    expect(step.locator(".preview-subject")).to_have_text("Hello Jane")
    expect(step.locator('[data-f="default"]')).not_to_be_checked()
    page.screenshot(path=SCREENSHOT.replace(".png", "-editor.png"))
    step.locator('[data-f="html"]').fill("<p>Hi {{ customer.first_name }}, thanks for {{ order.name }}!</p>")
    expect(preview.locator("body")).to_have_text("Hi Jane, thanks for #1001!")

    # A mistake on line 2 shows next to the HTML field with its line and reason; saving is refused.
    step.locator('[data-f="html"]').fill("<p>Hi {{ customer.first_name }}</p>\n<p>{{ order.totl }}</p>")
    problem = step.locator('.problem[data-problem="html"]')
    expect(problem).to_be_visible()
    expect(problem).to_contain_text("line 2")
    expect(problem).to_contain_text("totl")
    expect(preview.locator("body")).to_have_text("Hi Jane, thanks for #1001!")  # the last preview that rendered
    with page.expect_response(lambda r: r.request.method == "PUT") as refused:
        app.locator("#save").click()
    assert refused.value.status == 400
    expect(app.locator("#save-status")).to_have_text("Not saved: fix the problems shown.")
    assert jr.live_version(c, shop_id, "thank_you").journey.version == 1

    step.locator('[data-f="html"]').fill("<p>Hi {{ customer.first_name }}</p>")
    expect(problem).to_be_hidden()
    expect(preview.locator("body")).to_have_text("Hi Jane")
    step.locator('[data-f="delay"]').fill("2")
    step.locator('[data-f="delay-unit"]').select_option("hours")
    app.locator("#save").click()
    expect(app.locator("#save-status")).to_have_text("Saved as version 2.")
    expect(app.locator("#editor-version")).to_have_text("Version 2")
    version = jr.live_version(c, shop_id, "thank_you")
    own = version.templates["message"]
    assert version.journey.version == 2 and version.journey.steps[0].delay.total_seconds() == 7200
    assert own is not None and own.subject == "Hello {{ customer.first_name }}"
    assert own.html == "<p>Hi {{ customer.first_name }}</p>"

    # A condition may name segments and tiers; one the shop does not have is refused next to its field.
    step.locator('[data-f="segments"]').fill("rfm:champions, no-such-segment")
    app.locator("#save").click()
    expect(step.locator('.problem[data-problem="segments"]')).to_contain_text("no segment no-such-segment")
    assert jr.live_version(c, shop_id, "thank_you").journey.version == 2
    step.locator('[data-f="segments"]').fill("")

    # A test send goes through the configured email channel (the outbox here) at once.
    step.locator('[data-f="test-to"]').fill("merchant@example.com")
    step.locator(".test-send").click()
    expect(step.locator(".test-status")).to_have_text("Sent to merchant@example.com.")
    [mail] = _outbox(tmp_path / "outbox")
    assert (str(mail["To"]), str(mail["Subject"])) == ("merchant@example.com", "[Test] Hello Jane")

    # An order through the store: the simulation shows who would get what; the dispatcher then really sends it.
    order = sim.place_order(SHOP)
    assert c.queue.drain(10)
    app.locator("#simulate-days").select_option("7")
    app.locator("#simulate").click()
    simulated = app.locator("#simulation tbody tr")
    expect(simulated).to_have_count(1)
    expect(simulated.locator("td").nth(6)).to_have_text("Would send")
    expect(simulated.locator("td").nth(7)).to_have_text("Hello " + (order["customer"]["first_name"] or ""))
    app.locator("#simulation").scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOT)
    store = FakeStorePlatform()
    later = datetime.now(UTC) + timedelta(hours=3)  # version 2 waits two hours
    dispatcher = Dispatcher(c, {"email": OutboxChannel(tmp_path / "sent")}, platform_for=lambda _: store,
                            now=lambda: later)
    assert dispatcher.run_once().sent == 1
    app.locator("#editor-close").click()
    page.reload()
    app = page.frame_locator("#app")
    expect(app.locator('#journeys tr[data-key="thank_you"] [data-k="sent"]')).to_have_text("1")
    app.locator('#journeys tr[data-key="thank_you"] button.title').click()
    expect(app.locator('#figures dd[data-k="sent"]')).to_have_text("1")

    # The shop's messaging settings.
    form = app.locator("#messaging")
    expect(form.locator('[name="support_email"]')).to_have_value(f"support@{SHOP}")
    form.locator('[name="support_email"]').fill("help@journey.example")
    form.locator('[name="per_day"]').fill("2")
    form.locator('button[type="submit"]').click()
    expect(app.locator("#messaging-status")).to_have_text("Settings saved.")
    with c.sessions() as s:
        shop = s.get(t.Shop, shop_id)
        assert shop is not None and (shop.messaging or {})["support_email"] == "help@journey.example"
        assert jr.Messaging.of(shop).per_day == 2
    form.locator('[name="per_day"]').fill("-1")
    form.locator('button[type="submit"]').click()
    expect(app.locator("#messaging-status")).to_contain_text("per_day")

    errors = [m for m in console if m.startswith("pageerror")]
    assert not errors, console


def test_parked_messages_show_a_badge_and_are_sent_again(live: Any, page: Any) -> None:
    server, sim, c = live
    expect = _expect()
    sim.add_store(SHOP, name="Journey Store")
    _open_admin(page, sim)
    shop_id = _shop_id(c)
    jr.set_enabled(c, shop_id, "thank_you", True)
    sim.place_order(SHOP)
    deadline = time.monotonic() + 20  # the order's row may wait for a retry (SQLite busy with the admin's reads)
    while c.queue.drain(10) and not _messages(c) and time.monotonic() < deadline:
        time.sleep(0.2)
    with c.sessions() as s, s.begin():  # a dispatcher died while sending it: in doubt, parked
        message_id = s.scalars(select(t.Message.id)).one()
        s.execute(update(t.Message).values(status="parked", reason="in doubt", error="the dispatcher stopped"))
    page.reload()
    app = page.frame_locator("#app")
    row = app.locator('#journeys tr[data-key="thank_you"]')
    expect(row.locator(".badge.parked")).to_have_text("1 parked")
    row.get_by_role("button", name="Edit").click()
    failed = app.locator(f'#failed tr[data-message="{message_id}"]')
    expect(failed.locator("td").nth(3)).to_have_text("the dispatcher stopped")
    with page.expect_response(lambda r: r.url.endswith(f"/api/admin/messages/{message_id}/resend")) as resent:
        failed.get_by_role("button", name="Send again").click()
    assert resent.value.status == 200
    expect(app.locator("#failed")).to_be_hidden()
    expect(row.locator(".badge.parked")).to_have_count(0)
    with c.sessions() as s:
        assert s.scalar(select(t.Message.status)) == "pending"


def test_the_journeys_page_speaks_korean(live: Any, page: Any) -> None:
    server, sim, c = live
    expect = _expect()
    sim.add_store(SHOP, name="상점", currency="KRW", timezone="Asia/Seoul", locale="ko")
    app = _open_admin(page, sim)
    expect(app.locator("html")).to_have_attribute("lang", "ko")
    expect(app.locator("#journeys-title")).to_have_text("여정")
    expect(app.locator("#journeys thead th")).to_have_text(["여정", "켜기", "발송", "클릭", "기여 매출", ""])
    expect(app.locator("#messaging-title")).to_have_text("메시지 설정")
    app.locator('#journeys tr[data-key="survey"]').get_by_role("button", name="편집").click()
    expect(app.locator("#editor-version")).to_have_text("버전 1")
    expect(app.locator("#save")).to_have_text("저장")
    step = app.locator('#steps [data-step="message"]')
    expect(step.locator("legend")).to_have_text("단계: message")
    expect(step.locator('[data-f="locale"]')).to_have_value("ko")
    expect(step.locator(".preview-subject")).to_have_text("서울 커피 로스터스 주문은 만족스러우셨나요?")  # Korean sample
    expect(step.locator('[data-f="delay-unit"] option:checked')).to_have_text("일")
    app.locator("#simulate").click()
    expect(app.locator("#simulate-status")).to_have_text("이 기간에는 이 여정을 받았을 고객이 없습니다.")


# --- opened from WordPress: Encore's own page token, no App Bridge --------------------------------------------

STORE = "http://127.0.0.1:8123"
KEY, SECRET = "ck_" + "a1" * 20, "cs_" + "b2" * 20


def test_the_journeys_page_works_from_wordpress_with_the_page_token(live: Any, page: Any) -> None:
    server, sim, c = live
    expect = _expect()
    with c.sessions() as s, s.begin():
        shop = t.Shop(platform="woocommerce", domain=STORE, name="Woo Store", api_key=c.vault.seal(KEY),
                      api_secret=c.vault.seal(SECRET), installed_at=datetime.now(UTC), locale="ja")
        s.add(shop)
        s.flush()
        shop_id = shop.id
    now = int(time.time())
    token = jwt.encode({"iss": STORE, "aud": "encore", "sub": "1", "iat": now, "exp": now + 60,
                        "jti": secrets.token_hex(16), "locale": "ja"}, SECRET, algorithm="HS256", headers={"kid": KEY[-7:]})
    requests_seen: list[str] = []
    page.on("request", lambda r: requests_seen.append(r.headers.get("authorization", "")) if "/api/admin/" in r.url else None)
    page.goto(f"{server.url}/woocommerce/admin?token={token}")
    expect(page.locator("#journeys tbody tr")).to_have_count(len(jr.DEFAULTS))
    expect(page.locator("#journeys-title")).to_have_text("ジャーニー")
    row = page.locator('#journeys tr[data-key="review_request"]')
    with page.expect_response(lambda r: r.url.endswith("/api/admin/journeys/review_request/enabled")) as switched:
        row.get_by_role("switch").check()
    assert switched.value.status == 200
    assert jr.live_version(c, shop_id, "review_request").enabled is True
    page_token = page.locator("body").get_attribute("data-session-token")
    assert page_token and all(a == f"Bearer {page_token}" for a in requests_seen) and requests_seen
