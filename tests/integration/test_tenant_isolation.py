"""Tenant isolation across every route: a table classifies each route of `app.url_map` by how it is
authenticated, so a route added later without a line here fails `test_every_route_is_classified`. Two shops, A
and B, each get orders, customers, journeys and a sent message, a loyalty program with a reward and a
redemption, a segment, a feedback item, a referral, an inbox row, a data export and an analytics run. Then:

- every admin-API route is called with shop B's session token (Encore's own, and a Shopify one) on A's ids (in
  the path and the query) and answers 4xx, or 2xx with nothing of A's in it; A's rows, every column of every
  shop table, are the same afterwards;
- the admin pages' store shell posted with B's token is B's page;
- storefront requests signed for B with A's customer id, A's reward id and A's referral code see nothing of A
  and change nothing of A;
- a signed link made for A's message or customer cannot be bent to B's: a token whose payload is changed, or a
  token of another purpose, is refused.
"""

from __future__ import annotations

import base64
import io
import json
import zipfile
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

import orjson
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app import feedback, loyalty, referrals, rewards, surveys
from app.bootstrap import Container
from app.core.loyalty import Balance, Entry, Posting, Reason
from app.db import models as t
from app.links import preferences_url, survey_url, unsubscribe_url
from app.simulator.shopify import ShopifySimulator
from app.web.auth import issue_admin_token
from tests import analytics_data
from tests.conftest import API_KEY, API_SECRET
from tests.fakes import FakeStorePlatform
from tests.integration.test_storefront_proxy import signed
from tests.integration.test_surveys import NOW, seed

MINTER = ShopifySimulator(api_key=API_KEY, api_secret=API_SECRET, app_url="http://127.0.0.1:1")  # never started

ADMIN_API, ADMIN_PAGE, STORE_PAGE = "admin session token", "admin page shell (no data)", "admin token in the form"
PROXY, LINK, WEBHOOK, INSTALL, PUBLIC, DEV, OPERATOR = (
    "app proxy signature", "signed link", "webhook signature", "install / OAuth", "public", "development only",
    "operator's bearer token")

# endpoint -> how a request to it is authenticated
ROUTES: dict[str, str] = {
    "ops.healthz": PUBLIC, "ops.readyz": PUBLIC, "static": PUBLIC, "ops.metrics": OPERATOR,
    "openapi.spec": PUBLIC,
    "webhooks.receive": WEBHOOK, "public.sms_inbound": WEBHOOK,
    "shopify.install": INSTALL, "shopify.callback": INSTALL, "shopify.app_home": INSTALL,
    "woocommerce.connect": INSTALL, "woocommerce.callback": INSTALL, "woocommerce.connected": INSTALL,
    "woocommerce.admin": INSTALL,
    "outbox.index": DEV, "outbox.show": DEV, "outbox.html": DEV, "outbox.raw": DEV,
    "public.preferences_page": LINK, "public.unsubscribe": LINK, "public.open_pixel": LINK, "public.click": LINK,
    "public.survey_page": LINK,
    "proxy.state": PROXY, "proxy.balance": PROXY, "proxy.redeem": PROXY, "referrals.landing": PROXY,
    **{f"{bp}.page": ADMIN_PAGE for bp in ("analytics_admin", "feedback_admin", "loyalty_admin", "segments_admin")},
    **{f"{bp}.store_page": STORE_PAGE for bp in ("analytics_admin", "feedback_admin", "loyalty_admin",
                                                  "segments_admin")},
    "loyalty_admin.store_home": STORE_PAGE,
}

# Each admin-API route, called by B on A's ids: (method, path, JSON body). `{x}` is A's id of x.
ADMIN_CALLS: dict[str, tuple[str, str, Any]] = {
    "admin.overview": ("GET", "/api/admin/overview", None),
    "admin.retry_history": ("POST", "/api/admin/history/retry", None),
    "admin.retry": ("POST", "/api/admin/inbox/{inbox}/retry", None),
    "admin.download_export": ("GET", "/api/admin/exports/{export}", None),
    "exports.export_zip": ("GET", "/api/admin/export.zip?format=json&shop={shop}", None),
    "analytics_admin.overview": ("GET", "/api/admin/analytics/overview?shop={shop}", None),
    "analytics_admin.ask_for_refresh": ("POST", "/api/admin/analytics/refresh", {"shop": "{shop}"}),
    "analytics_admin.customers": ("GET", "/api/admin/analytics/customers?segment={segment_key}&q={customer}", None),
    "analytics_admin.export": ("GET", "/api/admin/analytics/export/customers.csv", None),
    "csv_import.upload": ("POST", "/api/admin/imports/csv", None),
    "feedback_admin.list_items": ("GET", "/api/admin/feedback?customer={customer}", None),
    "feedback_admin.resolve": ("POST", "/api/admin/feedback/{item}/resolve", {"staff": "Bo", "note": "closed by B"}),
    "feedback_admin.get_settings": ("GET", "/api/admin/feedback/settings", None),
    "feedback_admin.put_settings": ("PUT", "/api/admin/feedback/settings", {"shop_id": "{shop}"}),
    "journeys.library": ("GET", "/api/admin/journeys", None),
    "journeys.journey": ("GET", "/api/admin/journeys/survey", None),
    "journeys.save": ("PUT", "/api/admin/journeys/survey", {"shop_id": "{shop}"}),
    "journeys.enabled": ("POST", "/api/admin/journeys/survey/enabled", {"enabled": True}),
    "journeys.journey_figures": ("GET", "/api/admin/journeys/survey/figures", None),
    "journeys.preview": ("POST", "/api/admin/journeys/survey/preview", {"customer": "{customer}"}),
    "journeys.simulate": ("GET", "/api/admin/journeys/survey/simulate?customer={customer}", None),
    "journeys.test_send": ("POST", "/api/admin/journeys/survey/test", {"email": "b@example.com"}),
    "journeys.resend": ("POST", "/api/admin/messages/{message}/resend", None),
    "journeys.messaging": ("GET", "/api/admin/messaging", None),
    "journeys.save_messaging": ("PUT", "/api/admin/messaging", {"shop_id": "{shop}"}),
    "loyalty_admin.program": ("GET", "/api/admin/loyalty/program", None),
    "loyalty_admin.save_program": ("PUT", "/api/admin/loyalty/program", {"shop_id": "{shop}"}),
    "loyalty_admin.add_bonus": ("POST", "/api/admin/loyalty/bonuses", {"shop_id": "{shop}"}),
    "loyalty_admin.end_bonus": ("POST", "/api/admin/loyalty/bonuses/0/end", {}),
    "loyalty_admin.catalog": ("GET", "/api/admin/loyalty/rewards", None),
    "loyalty_admin.add_reward": ("POST", "/api/admin/loyalty/rewards", {"shop_id": "{shop}"}),
    "loyalty_admin.edit_reward": ("PUT", "/api/admin/loyalty/rewards/{reward}", {"title": "B's now", "cost": 1}),
    "loyalty_admin.ladder": ("GET", "/api/admin/loyalty/tiers", None),
    "loyalty_admin.save_ladder": ("PUT", "/api/admin/loyalty/tiers", {"tiers": []}),
    "loyalty_admin.find_customers": ("GET", "/api/admin/loyalty/customers?q={email}", None),
    "loyalty_admin.customer_ledger": ("GET", "/api/admin/loyalty/customers/{customer}", None),
    "loyalty_admin.adjust": ("POST", "/api/admin/loyalty/customers/{customer}/adjust",
                             {"points": 1000, "staff": "Bo", "note": "from B", "request_key": "b-adjust-0001"}),
    "loyalty_admin.figures": ("GET", "/api/admin/loyalty/figures", None),
    "referrals.list_referrals": ("GET", "/api/admin/referrals?customer={customer}", None),
    "referrals.override": ("POST", "/api/admin/referrals/{referral}/override", {"staff": "Bo", "note": "B says so"}),
    "referrals.get_program": ("GET", "/api/admin/referrals/program", None),
    "referrals.put_program": ("PUT", "/api/admin/referrals/program", {"enabled": False}),
    "segments_admin.listing": ("GET", "/api/admin/segments", None),
    "segments_admin.create": ("POST", "/api/admin/segments", {"name": "B", "key": "{segment_key}"}),
    "segments_admin.update": ("PUT", "/api/admin/segments/{segment}",
                              {"name": "B's", "rules": {"match": "all", "rules": []}}),
    "segments_admin.delete": ("DELETE", "/api/admin/segments/{segment}", None),
    "segments_admin.preview": ("POST", "/api/admin/segments/preview", {"match": "all", "rules": []}),
}
# Path ids that name one of A's rows: B must be refused outright, not answered with an empty page.
BY_ID = {"admin.retry", "admin.download_export", "feedback_admin.resolve", "journeys.resend",
         "loyalty_admin.edit_reward", "referrals.override", "segments_admin.update", "segments_admin.delete",
         "loyalty_admin.customer_ledger", "loyalty_admin.adjust"}


@dataclass
class Shop:
    id: int
    domain: str
    customer: str
    email: str
    message: int
    marks: tuple[str, ...]  # text only this shop's data holds
    ids: dict[str, Any]


def _populate(c: Container, name: str, customer: str, store: FakeStorePlatform) -> Shop:
    x = seed(c, customer_id=customer, first_name=f"{name.title()}first", order_name=f"#{name.upper()}-1001")
    feedback.save_settings(c, x.shop_id, {})
    surveys.answer(c, x.message_id, 2, 4, f"{name} comment about cold coffee", NOW)
    [item] = feedback.items(c, x.shop_id)
    with c.sessions() as s, s.begin():
        shop = s.get(t.Shop, x.shop_id)
        assert shop is not None
        shop.name = f"{name.title()} Coffee Roasters"
        loyalty.switch_on(s, x.shop_id, NOW - timedelta(days=1))
        loyalty.post(s, x.shop_id, customer, [Posting(Entry(900, Balance.AVAILABLE, Reason.ACTION, "signup"))], NOW)
        reward = rewards.add_reward(s, x.shop_id, f"{name} reward", "amount", Decimal("5"), 300, NOW)
        referrals.configure(s, x.shop_id, now=NOW, enabled=True, friend_kind="percent", friend_value=Decimal("10"),
                            friend_valid_days=30, referrer_points=500, wait_days=30, cap_per_referrer=None,
                            cap_window_days=30)
        code = referrals.code_for(s, x.shop_id, customer, NOW)
        inbox = t.InboxRow(shop_id=x.shop_id, platform="shopify", topic="orders/paid", event_id=f"{name}-e1",
                           body=b"{}", status="parked", attempts=5, last_error="boom")
        export = t.DataExport(shop_id=x.shop_id, request_id=f"{name}-r1", customer_external_id=customer,
                              content={"email": x.customer_id + "@example.com", "note": f"{name} export"})
        s.add_all([inbox, export])
        s.flush()
        inbox_id, export_id = inbox.id, export.id
    rewards.redeem(c, x.shop_id, customer, reward, f"{name}-req", NOW, lambda _: store)
    claimed = referrals.claim(c, x.shop_id, code, f"{name}-friend@example.com", NOW, lambda _: store)
    analytics_data.add_segments(c, x.shop_id, [(f"{name}-vip", f"{name} segment", "rule", 1)])
    analytics_data.add_run(c, x.shop_id, analytics_data.summary())
    with c.sessions() as s:
        segment = s.scalars(select(t.Segment.id).where(t.Segment.shop_id == x.shop_id)).one()
    email = f"{customer}@example.com"
    return Shop(x.shop_id, f"{customer}.myshopify.com", customer, email, x.message_id,
                (email, f"{customer}.myshopify.com", f"{name} reward", f"{name} segment", f"{name} comment",
                 f"{name.title()}first", f"#{name.upper()}-1001", f"{name} export", f"{name.title()} Coffee"),
                {"shop": x.shop_id, "customer": customer, "email": email, "inbox": inbox_id, "export": export_id,
                 "item": item.id, "message": x.message_id, "reward": reward, "referral": claimed.id,
                 "segment": segment, "segment_key": f"{name}-vip", "code": code})


def snapshot(c: Container, shop_id: int) -> dict[str, list[str]]:
    """Every column of every row the shop owns, in every shop table, and its shop row."""
    found: dict[str, list[str]] = {}
    with c.sessions() as s:
        for model in (*t.SHOP_TABLES, t.Shop):
            table = model.__table__
            column = table.c.id if model is t.Shop else table.c.shop_id
            found[table.name] = sorted(repr(tuple(row)) for row in s.execute(select(table).where(column == shop_id)))
    return found


@pytest.fixture
def shops(container: Container, store: FakeStorePlatform) -> tuple[Shop, Shop]:
    return _populate(container, "zqa", "71001", store), _populate(container, "bob", "72002", store)


def _text(response: Any) -> str:
    """A response's text, a ZIP's members included (compressed, they would hide what they hold)."""
    data: bytes = response.get_data()
    if data[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            data = b"\n".join(z.read(n) for n in z.namelist())
    return data.decode("utf-8", "replace")


def _fill(value: Any, ids: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def test_every_route_is_classified(app: Flask) -> None:
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    unclassified = endpoints - set(ROUTES) - set(ADMIN_CALLS)
    assert not unclassified, f"classify these routes in ROUTES or ADMIN_CALLS: {sorted(unclassified)}"
    assert not (set(ROUTES) | set(ADMIN_CALLS)) - endpoints, "drop the routes that are gone from the table"
    assert not set(ROUTES) & set(ADMIN_CALLS)


def test_admin_session_token_routes_really_need_one(app: Flask, client: FlaskClient, shops: tuple[Shop, Shop]
                                                    ) -> None:
    """What the table calls an admin-API route is refused without a token (so the table cannot lie)."""
    a, _b = shops
    for endpoint, (method, path, body) in ADMIN_CALLS.items():
        response = client.open(_fill(path, a.ids), method=method, json=_fill(body, a.ids))
        assert response.status_code == 401, endpoint


@pytest.mark.parametrize("kind", ["encore", "shopify"])
def test_shop_bs_token_never_reads_or_changes_shop_as_data(client: FlaskClient, container: Container,
                                                           shops: tuple[Shop, Shop], kind: str) -> None:
    a, b = shops
    token = issue_admin_token(container, b.id, b.domain) if kind == "encore" else MINTER.session_token(b.domain)
    headers = {"Authorization": f"Bearer {token}"}
    before = snapshot(container, a.id)
    assert sum(map(len, before.values())) > 20  # A has rows in many tables
    for endpoint, (method, path, body) in ADMIN_CALLS.items():
        response = client.open(_fill(path, a.ids), method=method, json=_fill(body, a.ids), headers=headers)
        assert response.status_code < 500, (endpoint, response.status_code, response.get_data()[:300])
        if endpoint in BY_ID:
            assert response.status_code in (403, 404), (endpoint, response.status_code)
        text, sent = _text(response).lower(), (unquote(_fill(path, a.ids)) + json.dumps(_fill(body, a.ids))).lower()
        leaked = [mark for mark in a.marks if mark.lower() in text and mark.lower() not in sent]  # B may get its own
        assert not leaked, (endpoint, leaked)
    assert snapshot(container, a.id) == before


def test_the_same_calls_with_as_token_do_reach_as_data(client: FlaskClient, container: Container,
                                                       shops: tuple[Shop, Shop]) -> None:
    """The control: A's own token sees A's marks through these routes, so the check above can fail."""
    a, _b = shops
    headers = {"Authorization": f"Bearer {issue_admin_token(container, a.id, a.domain)}"}
    seen: set[str] = set()
    for endpoint in ("feedback_admin.list_items", "loyalty_admin.catalog", "segments_admin.listing",
                     "admin.download_export", "loyalty_admin.find_customers"):
        method, path, body = ADMIN_CALLS[endpoint]
        response = client.open(_fill(path, a.ids), method=method, json=_fill(body, a.ids), headers=headers)
        assert response.status_code == 200, endpoint
        seen |= {mark for mark in a.marks if mark.lower() in _text(response).lower()}
    assert {"zqa comment", "zqa reward", "zqa segment", "zqa export"} <= seen


@pytest.mark.parametrize("endpoint", sorted(e for e, kind in ROUTES.items() if kind == STORE_PAGE))
def test_a_store_page_posted_with_bs_token_is_bs_page(client: FlaskClient, container: Container,
                                                      shops: tuple[Shop, Shop], endpoint: str, app: Flask) -> None:
    a, b = shops
    [rule] = [r for r in app.url_map.iter_rules() if r.endpoint == endpoint]
    response = client.post(rule.rule, data={"token": issue_admin_token(container, b.id, b.domain), "shop": a.domain})
    assert response.status_code in (200, 302, 303)
    text = _text(response) + response.headers.get("Location", "")
    assert a.domain not in text


def test_a_storefront_request_signed_for_b_sees_nothing_of_a(client: FlaskClient, container: Container,
                                                             shops: tuple[Shop, Shop]) -> None:
    a, b = shops
    before = snapshot(container, a.id)
    answers = [
        client.get(f"/proxy/loyalty?{signed(a.customer, shop=b.domain)}"),
        client.get(f"/proxy/loyalty/balance?{signed(a.customer, shop=b.domain)}"),
        client.post(f"/proxy/loyalty/redeem?{signed(a.customer, shop=b.domain)}",
                    json={"reward_id": a.ids["reward"], "request_key": "b-1"}),
        client.get(f"/proxy/r/{a.ids['code']}?{signed(None, shop=b.domain)}"),
        client.post(f"/proxy/r/{a.ids['code']}?{signed(None, shop=b.domain)}", data={"email": "eve@example.com"}),
    ]
    for response in answers:
        assert response.status_code < 500
        assert not [mark for mark in a.marks if mark.lower() in _text(response).lower()]
    assert snapshot(container, a.id) == before
    # the same request for A's own shop does show A's data: the check above can fail
    assert "zqa reward" in _text(client.get(f"/proxy/loyalty?{signed(a.customer, shop=a.domain)}"))


def _tampered(token: str, change: Any) -> str:
    """The token with its payload replaced and its signature kept."""
    body, signature = token.split(".")
    payload = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    new = base64.urlsafe_b64encode(json.dumps(change(payload), separators=(",", ":")).encode()).rstrip(b"=").decode()
    return f"{new}.{signature}"


def test_a_link_made_for_a_cannot_be_bent_to_reach_b(client: FlaskClient, container: Container,
                                                     shops: tuple[Shop, Shop]) -> None:
    a, b = shops
    settings = container.settings
    before = snapshot(container, b.id)
    prefs = preferences_url(settings, a.id, a.customer).rsplit("/", 1)[1]
    unsub = unsubscribe_url(settings, a.id, a.customer).rsplit("/", 1)[1]
    survey = survey_url(settings, a.message).rsplit("/", 1)[1]
    bent = {
        f"/p/{_tampered(prefs, lambda p: [b.id, b.customer])}": "GET",
        f"/u/{_tampered(unsub, lambda p: [b.id, b.customer, None])}": "POST",
        f"/s/{_tampered(survey, lambda p: b.message)}": "GET",
        f"/p/{unsub}": "GET", f"/u/{prefs}": "POST", f"/s/{prefs}": "GET", f"/p/{survey}": "GET",  # other purposes
    }
    for path, method in bent.items():
        response = client.open(path, method=method, data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 400, path
        assert not [mark for mark in b.marks if mark.lower() in _text(response).lower()], path
    # A's links, as made, show A's own data and nothing of B's
    for path in (f"/p/{prefs}", f"/s/{survey}"):
        text = _text(client.get(path))
        assert not [mark for mark in b.marks if mark.lower() in text.lower()]
    assert "Zqa Coffee" in _text(client.get(f"/s/{survey}"))
    assert snapshot(container, b.id) == before
