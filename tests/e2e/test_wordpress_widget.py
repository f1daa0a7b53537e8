"""The storefront widget's way to Encore through the WordPress plugin, in a real WordPress and a real Chromium.

The site, its database and Encore are tests/e2e/test_wordpress_plugin.py's fixtures (a WordPress of this
module's own). The Debian package ships no theme, so the test adds the smallest one that prints wp_head and
wp_footer, as every theme does. The store keeps WordPress's plain permalinks, so the REST route is
`?rest_route=/encore/v1/proxy/...`, the address a fresh store has.

The browser calls the route as the widget does (same origin, the page's cookie, X-WP-Nonce from the script
tag's data-nonce); the plugin signs the request server to server and Encore answers for the customer WordPress
names: their points when logged in, `log_in` otherwise, whatever headers the browser adds.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests

from app import loyalty, rewards
from app.core.loyalty import Balance, Entry, Posting, Reason
from app.db import models as t
from connectors.woocommerce import proxy
from tests.e2e import test_wordpress_plugin as site
from tests.e2e.test_wordpress_plugin import Encore, WordPress, log_in

wordpress, encore = site.wordpress, site.encore  # the fixtures, for this module: a WordPress of its own

pytestmark = pytest.mark.browser

THEME_CSS = "/*\nTheme Name: Encore Test\n*/\n"
THEME_INDEX = """<!DOCTYPE html>
<html <?php language_attributes(); ?>>
<head><meta charset="utf-8"><?php wp_head(); ?></head>
<body><h1 id="store"><?php bloginfo( 'name' ); ?></h1><?php wp_footer(); ?></body>
</html>
"""

# What the widget does (static/widget/encore-widget.js, `call`): the script tag's endpoint and nonce, the page's
# cookie. The path's own query follows "?" even when the endpoint has one (plain permalinks); the plugin reads it.
CALL = """async ([path, method, body, extra]) => {
    const tag = document.querySelector("script#encore-widget");
    const headers = {"Accept": "application/json", ...extra};
    const nonce = tag.getAttribute("data-nonce");
    if (nonce) headers["X-WP-Nonce"] = nonce;
    if (body) headers["Content-Type"] = "application/json";
    const r = await fetch(tag.getAttribute("data-endpoint") + path, {method, headers, credentials: "same-origin",
                                                                       body: body || undefined});
    return {status: r.status, type: r.headers.get("content-type"), text: await r.text()};
}"""


def _shop(wp: WordPress, encore: Encore, points: int) -> tuple[str, str, int]:
    """Connect the site, give it a theme and a customer with `points`; (login, password, reward costing more)."""
    wp.run("create-keys-table")
    wp.run("add-key", "Encore", encore.consumer_key, encore.consumer_secret)
    theme = wp.root / "wp-content" / "themes" / "encore-test"
    theme.mkdir(parents=True, exist_ok=True)
    (theme / "style.css").write_text(THEME_CSS)
    (theme / "index.php").write_text(THEME_INDEX)
    wp.run("option", "template", "encore-test")
    wp.run("option", "stylesheet", "encore-test")
    login, password = f"shopper{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    user = str(wp.run("create-user", login, password))
    now = datetime.now(UTC)
    with encore.c.sessions() as s, s.begin():
        loyalty.switch_on(s, encore.shop_id, now - timedelta(days=1))
        s.add(t.Customer(shop_id=encore.shop_id, external_id=user, email=f"{login}@encore.test", external_updated_at=now))
        loyalty.post(s, encore.shop_id, user, [Posting(Entry(points, Balance.AVAILABLE, Reason.ACTION, "signup"))], now)
        dear = rewards.add_reward(s, encore.shop_id, "$50 off", "amount", Decimal("50"), points + 1000, now)
    return login, password, dear


def _call(page: Any, path: str, method: str = "GET", body: str | None = None,
          extra: dict[str, str] | None = None) -> dict[str, Any]:
    got: dict[str, Any] = page.evaluate(CALL, [path, method, body, extra or {}])
    return got


def _direct(encore: Encore, wp: WordPress, path: str, form: bytes | None = None) -> requests.Response:
    """The same request from nobody, signed here and sent to Encore itself: what the plugin must hand back."""
    method, body, stamp = "GET" if form is None else "POST", form or b"", str(int(time.time()))
    signature = proxy.sign(encore.consumer_secret, method, path, b"", stamp, wp.url, "", body)
    headers = {"X-Encore-Store": wp.url, "X-Encore-Customer": "", "X-Encore-Timestamp": stamp,
               "X-Encore-Signature": signature}
    if form is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    return requests.request(method, encore.server.url + path, data=form, headers=headers, allow_redirects=False,
                            timeout=10)


def test_a_logged_in_customer_gets_their_points_through_the_store_and_a_visitor_is_asked_to_log_in(
        wordpress: WordPress, encore: Encore, page: Any) -> None:
    wp = wordpress
    login, password, dear = _shop(wp, encore, points=320)

    # Every storefront page loads the widget, told where the route is, the language and the nonce.
    home = requests.get(f"{wp.url}/", timeout=10).text
    assert f'<link rel="stylesheet" id="encore-widget-css" href="{encore.server.url}/static/widget/encore-widget.css">' \
        in home
    page.goto(f"{wp.url}/")
    tag = page.locator("script#encore-widget")
    assert tag.get_attribute("src") == f"{encore.server.url}/static/widget/encore-widget.js"
    assert tag.get_attribute("data-endpoint") == f"{wp.url}/index.php?rest_route=/encore/v1/proxy"
    assert tag.get_attribute("data-locale") == "en_US" and tag.get_attribute("defer") is not None
    assert tag.get_attribute("data-nonce")

    # A visitor: Encore asks them to log in, even when the browser claims to be a customer.
    visitor = _call(page, "/loyalty?locale=en")
    assert visitor["status"] == 401 and json.loads(visitor["text"])["error"] == "log_in"
    claimed = _call(page, "/loyalty?locale=en", extra={"X-Encore-Customer": "1", "X-Encore-Store": wp.url})
    assert claimed["status"] == 401 and json.loads(claimed["text"])["error"] == "log_in"

    # The customer, logged in: their own points, as Encore answered them.
    log_in(page, wp, login, password)
    page.goto(f"{wp.url}/")
    mine = _call(page, "/loyalty?locale=en")
    assert mine["status"] == 200, mine
    assert mine["type"].startswith("application/json")
    body = json.loads(mine["text"])
    assert body["points"] == {"available": 320, "pending": 0} and body["locale"] == "en"

    # A POST and its body reach Encore signed: a reward the balance cannot pay is Encore's refusal, not a 401.
    refused = _call(page, "/loyalty/redeem?locale=en", "POST", json.dumps({"reward_id": dear, "request_key": "e2e-0001"}))
    assert (refused["status"], json.loads(refused["text"])["error"]) == (422, "not_enough_points")

    # Without the nonce WordPress does not trust its own cookie: the same customer is nobody.
    bare = page.evaluate("""async () => {
        const tag = document.querySelector("script#encore-widget");
        const r = await fetch(tag.getAttribute("data-endpoint") + "/loyalty", {credentials: "same-origin"});
        return {status: r.status, text: await r.text()};
    }""")
    assert bare["status"] == 401 and json.loads(bare["text"])["error"] == "log_in"
    assert not wp.plugin_notices()


def test_a_referral_link_on_any_page_goes_to_encores_referral_page_unchanged(
        wordpress: WordPress, encore: Encore) -> None:
    wp = wordpress
    _shop(wp, encore, points=10)
    landed = requests.get(f"{wp.url}/?p=1&encore_ref=FRIEND-42", allow_redirects=False, timeout=10)
    assert landed.status_code == 302
    assert landed.headers["Location"] == f"{wp.url}/index.php?rest_route=/encore/v1/proxy/r/FRIEND-42"
    through = requests.get(landed.headers["Location"], allow_redirects=False, timeout=10)
    direct = _direct(encore, wp, "/proxy/r/FRIEND-42")
    assert through.status_code == direct.status_code
    assert through.headers["Content-Type"] == direct.headers["Content-Type"]
    assert through.content == direct.content
    assert direct.status_code != 401  # the signature made here is Encore's, so this compares real answers
    # The page's form posts back to the same address: a form body, forwarded and signed as it came.
    form = b"email=friend%40example.com"
    posted = requests.post(landed.headers["Location"], data=form, allow_redirects=False, timeout=10,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    direct = _direct(encore, wp, "/proxy/r/FRIEND-42", form)
    assert (posted.status_code, posted.headers["Content-Type"]) == (direct.status_code, direct.headers["Content-Type"])
    assert posted.content == direct.content and direct.headers["Content-Type"].startswith("text/html")

    # Something that is not a referral code stays on the page.
    assert requests.get(f"{wp.url}/?encore_ref=%3Cscript%3E", allow_redirects=False, timeout=10).status_code == 200
    assert not wp.plugin_notices()
