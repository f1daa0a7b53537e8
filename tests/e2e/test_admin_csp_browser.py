"""The admin pages' script Content-Security-Policy (app/web/csp.py) in a real headless Chromium.

Each admin page (the embedded admin, Loyalty, Analytics, Segments, Follow-up) is opened as merchants open it:
framed by the simulated Shopify admin with App Bridge, and from a store's own admin (the WordPress sign-in, then the
header's forms). On each, the page's own script must have run (something it fills is filled) and Chromium must
have refused nothing. Then script injected into a page under the policy (an inline <script>, an inline event
handler, eval) must not run, while the same injection does run on a page without the policy; and the journey
editor's email preview, a srcdoc frame that inherits the policy, keeps the email's own styles.
"""

from __future__ import annotations

import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest

from app.db import models as t

pytestmark = pytest.mark.browser

SHOP = "csp-browser.myshopify.com"
STORE, KEY, SECRET = "https://csp-woo.example", "ck_" + "7a" * 20, "cs_" + "8b" * 20
REFUSED = ("Content Security Policy", "Content-Security-Policy", "Refused to")
# (nav link id, the page's h1, an element its script fills, what it is filled with)
PAGES = [
    ("loyalty-link", "Loyalty", '#loyalty-figures dd[data-k="members"]', re.compile(r"^\d+$")),
    ("analytics-link", "Analytics", "#run-status", re.compile(r"\S")),
    ("segments-link", "Segments", '#rfm tbody tr[data-key="rfm:champions"] td[data-k="name"]', re.compile("Champions")),
    ("feedback-link", "Follow-up", "#open-count", re.compile(r"^\d+ open$")),
]
MAIN_FILLED = ('#health dd[data-k="received"]', re.compile(r"^\d+$"))

# Injected as markup would be: an inline script, an element with an inline handler, and eval. Resolves once the
# handler's error event has fired (the attribute handler, had it been allowed, runs before this listener).
INJECT = """async () => {
  window.__injected = [];
  window.__violations = [];
  document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(e.effectiveDirective));
  const script = document.createElement("script");
  script.textContent = "window.__injected.push('inline script');";
  document.body.appendChild(script);
  const holder = document.createElement("div");
  holder.innerHTML = '<img src="/no-such-image.png" onerror="window.__injected.push(\\'onerror\\')">';
  const img = holder.querySelector("img");
  await new Promise((resolve) => { img.addEventListener("error", resolve); document.body.appendChild(holder); });
  let evaluated;
  try { evaluated = eval("'eval ran'"); } catch (e) { evaluated = e.name; }
  if (evaluated === "eval ran") window.__injected.push("eval");
  return { ran: window.__injected, evaluated };
}"""
# Resolves once Chromium has reported a violation of each directive given (the events are queued, not immediate).
VIOLATIONS = """(wanted) => new Promise((resolve) => {
  const check = () => { if (wanted.every((d) => window.__violations.includes(d))) resolve(window.__violations); };
  document.addEventListener("securitypolicyviolation", () => setTimeout(check));
  check();
})"""
BLOCKED = ["script-src-elem", "script-src-attr", "script-src"]


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _refusals(console: list[str]) -> list[str]:
    return [m for m in console if any(r in m for r in REFUSED)]


def _open_shopify_admin(page: Any, sim: Any) -> Any:
    page.goto(sim.admin_url(SHOP))
    app = page.frame_locator("#app")
    _expect()(app.locator(MAIN_FILLED[0])).to_have_text(MAIN_FILLED[1])
    return app


def _frame(page: Any) -> Any:
    frame = page.frame(name="app-iframe")
    assert frame is not None
    return frame


def _policy(response: Any) -> str:
    policy: str = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "object-src 'none'" in policy, policy
    return policy


def test_every_admin_page_inside_shopify_admin_runs_its_script_and_is_refused_nothing(
        live: Any, page: Any, console: list[str]) -> None:
    server, sim, c = live
    expect = _expect()
    sim.add_store(SHOP, name="CSP Store", currency="USD", timezone="America/New_York", locale="en")
    policies: dict[str, str] = {}
    page.on("response", lambda r: policies.__setitem__(r.url.split("?")[0], r.headers.get("content-security-policy", ""))
            if r.url.startswith(server.url) and r.request.resource_type == "document" else None)

    app = _open_shopify_admin(page, sim)
    assert f"script-src 'self' {sim.origin}/;" in policies[f"{server.url}/shopify/app"]  # App Bridge's folder
    for link, title, filled, text in PAGES:
        _open_shopify_admin(page, sim)
        app.locator(f"#{link}").click()
        expect(app.locator("h1")).to_have_text(title)
        expect(app.locator(filled)).to_have_text(text)
        path = _frame(page).url.split("?")[0]
        assert policies[path].startswith(f"frame-ancestors https://{SHOP} {sim.origin}; default-src 'self'; "
                                         f"script-src 'self' {sim.origin}/; style-src 'self';"), policies[path]
    assert {f"{server.url}/admin/{p}" for p in ("loyalty", "analytics", "segments", "feedback")} <= set(policies)
    assert _refusals(console) == [], console
    assert [m for m in console if m.startswith("pageerror")] == [], console


def test_every_admin_page_from_a_stores_own_admin_runs_its_script_and_is_refused_nothing(
        live: Any, page: Any, console: list[str]) -> None:
    server, _sim, c = live
    expect = _expect()
    with c.sessions() as s, s.begin():
        s.add(t.Shop(platform="woocommerce", domain=STORE, name="Woo CSP", api_key=c.vault.seal(KEY),
                     api_secret=c.vault.seal(SECRET), installed_at=datetime.now(UTC), locale="en"))
    now = int(time.time())
    token = jwt.encode({"iss": STORE, "aud": "encore", "sub": "1", "iat": now, "exp": now + 60,
                        "jti": secrets.token_hex(16), "locale": "en_US"}, SECRET, algorithm="HS256",
                       headers={"kid": KEY[-7:]})
    with page.expect_response(lambda r: "/woocommerce/admin" in r.url) as opened:
        page.goto(f"{server.url}/woocommerce/admin?token={token}")
    assert _policy(opened.value).startswith(f"frame-ancestors {STORE}; default-src 'self'; script-src 'self';")
    expect(page.locator(MAIN_FILLED[0])).to_have_text(MAIN_FILLED[1])
    for link, title, filled, text in PAGES:
        with page.expect_response(lambda r: r.request.method == "POST" and "/admin/" in r.url) as posted:
            page.locator(f"#{link}").click()  # the header's form posts the session token
        assert _policy(posted.value).startswith(f"frame-ancestors {STORE}; default-src 'self'; script-src 'self';")
        expect(page.locator("h1")).to_have_text(title)
        expect(page.locator(filled)).to_have_text(text)
        page.locator("#back").click()  # back to the embedded admin, by form post too
        expect(page.locator(MAIN_FILLED[0])).to_have_text(MAIN_FILLED[1])
    assert _refusals(console) == [], console
    assert [m for m in console if m.startswith("pageerror")] == [], console


def test_script_injected_into_an_admin_page_does_not_run(live: Any, page: Any, console: list[str]) -> None:
    server, sim, c = live
    expect = _expect()
    sim.add_store(SHOP, name="CSP Store", currency="USD", timezone="America/New_York", locale="en")

    # The control: without the policy, the same injection runs all three ways (so "did not run" below means blocked).
    page.set_content("<!doctype html><html><head><title>no policy</title></head><body></body></html>")
    control = page.evaluate(INJECT)
    assert sorted(control["ran"]) == ["eval", "inline script", "onerror"], control

    app = _open_shopify_admin(page, sim)  # the embedded admin (App Bridge, the email preview's looser style)
    shell = _frame(page).evaluate(INJECT)
    assert shell["ran"] == [] and shell["evaluated"] == "EvalError", shell
    _frame(page).evaluate(VIOLATIONS, BLOCKED)  # blocked by the policy, each for its directive

    app.locator("#loyalty-link").click()  # an admin page of its own
    expect(app.locator(PAGES[0][2])).to_have_text(PAGES[0][3])
    before = len(console)
    loyalty = _frame(page).evaluate(INJECT)
    assert loyalty["ran"] == [] and loyalty["evaluated"] == "EvalError", loyalty
    _frame(page).evaluate(VIOLATIONS, BLOCKED)
    assert _refusals(console[before:]), console[before:]  # and Chromium says why, as the pages' checks above look for
    assert _frame(page).evaluate("() => typeof window.shopify.idToken") == "function"  # App Bridge itself ran


def test_the_email_preview_keeps_its_styles_under_the_policy(live: Any, page: Any, console: list[str]) -> None:
    server, sim, c = live
    expect = _expect()
    sim.add_store(SHOP, name="CSP Store", currency="USD", timezone="America/New_York", locale="en")
    page.route(re.compile(r"https://(cdn|shop)\.example\.com/.*"), lambda route: route.abort())  # the sample's images
    app = _open_shopify_admin(page, sim)
    app.locator('#journeys tr[data-key="thank_you"] button.title').click()
    step = app.locator('#editor [data-step="message"]')
    preview = step.frame_locator(".preview-frame")
    expect(preview.locator("body")).to_contain_text("Ethiopia Yirgacheffe")
    # The layout's <style> (app/rendering/defaults/_layouts/email.html.j2) applied in the srcdoc frame.
    expect(preview.locator("body")).to_have_css("background-color", "rgb(244, 244, 245)")
    assert _refusals(console) == [], console
