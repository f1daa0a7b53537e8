"""Cross-site scripting: merchant- and customer-controlled text (shop name, customer first name, order name, survey
comment, reward title, segment name, referral friend email...) holding markup and `javascript:` links is shown
as text on every server-rendered page, never as markup: no `<script>`, no event-handler attribute, no link to
`javascript:` comes out of it. JSON answers carry it as JSON (escaped by the browser-side code, see
tests/e2e/test_xss_browser.py) with a JSON content type, never text/html."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import update

from app.bootstrap import Container
from app.db import models as t
from app.links import form_token, preferences_url, survey_url
from tests.fakes import FakeStorePlatform
from tests.integration.test_storefront_proxy import signed
from tests.integration.test_surveys import NOW
from tests.integration.test_tenant_isolation import Shop, _populate
from tests.journeys import Clock

SHORT = "\"><img src=x onerror=alert(1)>"  # fits the 64-character columns (order name, tier name)
PAYLOAD = "zx\"><script>alert(1)</script><img src=x onerror=alert(1)><a href='javascript:alert(1)'>j</a>"
# What would run if the payload came out as markup (case-insensitive: _populate title-cases some of it).
LIVE = re.compile(r"<script>alert|<img src=x|onerror=alert\(1\)>|href='javascript:", re.IGNORECASE)


@pytest.fixture
def shop(container: Container, store: FakeStorePlatform) -> Shop:
    container.clock = Clock(NOW)  # type: ignore[assignment]  # the survey link is open
    shop = _populate(container, "zqa", "71001", store)
    with container.sessions() as s, s.begin():
        s.execute(update(t.Shop).where(t.Shop.id == shop.id).values(name=PAYLOAD))
        s.execute(update(t.Customer).where(t.Customer.shop_id == shop.id).values(first_name=PAYLOAD))
        s.execute(update(t.Order).where(t.Order.shop_id == shop.id).values(name=SHORT))
        s.execute(update(t.Reward).where(t.Reward.shop_id == shop.id).values(title=PAYLOAD))
        s.execute(update(t.Segment).where(t.Segment.shop_id == shop.id).values(name=PAYLOAD))
        s.execute(update(t.SurveyResponse).where(t.SurveyResponse.shop_id == shop.id).values(comment=PAYLOAD))
    return shop


def assert_inert(html: str, where: str) -> None:
    assert not LIVE.search(html), (where, LIVE.search(html))
    assert "&lt;script&gt;" in html.lower() or "&#34;&gt;&lt;script" in html.lower() or "\\u003cscript" in html.lower(), where


def test_server_rendered_pages_show_the_payload_as_text(client: FlaskClient, container: Container, shop: Shop) -> None:
    settings = container.settings
    survey = survey_url(settings, shop.message).rsplit("/", 1)[1]
    prefs = preferences_url(settings, shop.id, shop.customer).rsplit("/", 1)[1]
    pages = {
        "survey": client.get(f"/s/{survey}"),
        "survey, answered with the payload as comment": client.post(
            f"/s/{survey}", data={"score": "4", "nps": "9", "comment": PAYLOAD, "csrf": form_token(settings, survey)}),
        "survey, refused answer echoing the comment": client.post(
            f"/s/{survey}", data={"score": "9", "nps": "9", "comment": PAYLOAD, "csrf": form_token(settings, survey)}),
        "preference center": client.get(f"/p/{prefs}"),
        "referral landing": client.get(f"/proxy/r/{shop.ids['code']}?{signed(None, shop=shop.domain)}"),
        "referral landing, refused email echoed": client.post(
            f"/proxy/r/{shop.ids['code']}?{signed(None, shop=shop.domain)}", data={"email": PAYLOAD}),
    }
    for where, response in pages.items():
        assert response.status_code < 500, where
        assert response.mimetype == "text/html", where
        assert_inert(response.get_data(as_text=True), where)


def test_json_answers_keep_the_payload_as_json(client: FlaskClient, container: Container, shop: Shop) -> None:
    """The widget's JSON carries the reward title as it was typed (the widget sets it as text), served as JSON so no
    browser ever parses it as a page."""
    widget = client.get(f"/proxy/loyalty?{signed(shop.customer, shop=shop.domain)}")
    assert widget.status_code == 200 and widget.mimetype == "application/json"
    assert PAYLOAD in {r.get("title") for r in widget.json["rewards"]}
