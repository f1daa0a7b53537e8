"""The follow-up admin (app/web/feedback_admin.py) on the real database: its page in both shells (Shopify admin,
a store's own admin) and the admin header's link to it, every API route behind a session token and scoped to its
shop (another shop's token neither sees nor resolves an item), listing with the answer and the alert's state,
resolving with who and a note, the routing settings, refused requests that change nothing, and the page's
catalog complete in English, Korean and Japanese."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from app import dispatch, feedback, surveys
from app.bootstrap import Container
from app.db import models as t
from app.i18n import LOCALES
from app.simulator.shopify import ShopifySimulator
from app.web.auth import issue_admin_token
from app.web.pages import NAV
from tests.conftest import API_KEY, API_SECRET
from tests.helpers import assert_catalog_complete, page_msgids
from tests.integration.test_surveys import NOW, Seeded, seed

MINTER = ShopifySimulator(api_key=API_KEY, api_secret=API_SECRET, app_url="http://127.0.0.1:1")  # never started
API = "/api/admin/feedback"


def token(c: Container, x: Seeded) -> dict[str, str]:
    """Encore's own admin token (as from WordPress): it names the shop, not a staff member."""
    return {"Authorization": f"Bearer {issue_admin_token(c, x.shop_id, f'{x.customer_id}.myshopify.com')}"}


def shopify_staff(x: Seeded) -> dict[str, str]:
    """A Shopify session token: its `sub` is the signed-in staff member (42)."""
    return {"Authorization": "Bearer " + MINTER.session_token(f"{x.customer_id}.myshopify.com")}


def low(c: Container, customer_id: str = "cust-1", **settings: Any) -> tuple[Seeded, int]:
    x = seed(c, customer_id=customer_id)
    feedback.save_settings(c, x.shop_id, settings)
    surveys.answer(c, x.message_id, 2, 4, "Cold coffee <again>", NOW)
    [item] = feedback.items(c, x.shop_id)
    return x, item.id


def snapshot(c: Container) -> list[tuple[Any, ...]]:
    with c.sessions() as s:
        items = [(i.id, i.status, i.resolved_by, i.resolution_note) for i in s.scalars(select(t.FeedbackItem))]
        shops = [(sh.id, sh.feedback) for sh in s.scalars(select(t.Shop))]
        return sorted(items) + sorted(shops, key=repr)


# --- the page ----------------------------------------------------------------------------------------------------


def test_the_page_inside_shopify_admin_in_the_shops_language(client: FlaskClient, container: Container) -> None:
    x = seed(container)
    domain = f"{x.customer_id}.myshopify.com"
    r = client.get(f"/admin/feedback?shop={domain}&host=abc")
    assert r.status_code == 200
    assert r.headers["Content-Security-Policy"].startswith(f"frame-ancestors https://{domain} ")
    html = r.get_data(as_text=True)
    assert "<h1>Follow-up</h1>" in html and 'name="shopify-api-key"' in html and "data-session-token" not in html
    assert f'href="/shopify/app?embedded=1&amp;shop={domain}&amp;host=abc"' in html  # back through the bounce
    with container.sessions() as s, s.begin():
        s.execute(update(t.Shop).where(t.Shop.id == x.shop_id).values(locale="ko"))
    assert "<h1>후속 조치</h1>" in client.get(f"/admin/feedback?shop={domain}").get_data(as_text=True)
    assert client.get("/admin/feedback?shop=evil.example.com").status_code == 400


def test_the_page_from_a_stores_own_admin_carries_its_token_and_the_admin_links_to_it(
        client: FlaskClient, container: Container) -> None:
    with container.sessions() as s, s.begin():
        store = t.Shop(platform="woocommerce", domain="https://store.example", installed_at=datetime.now(UTC))
        s.add(store)
        s.flush()
        shop_id = store.id
    admin = issue_admin_token(container, shop_id, "https://store.example")
    r = client.post("/admin/feedback", data={"token": admin, "locale": "ja"})
    assert r.status_code == 200
    assert r.headers["Content-Security-Policy"].startswith("frame-ancestors https://store.example; ")  # app/web/csp.py
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Referrer-Policy"] == "no-referrer"
    html = r.get_data(as_text=True)
    assert f'data-session-token="{admin}"' in html and "<h1>フォローアップ</h1>" in html
    assert "app-bridge" not in html and 'action="/admin/home"' in html
    home = client.post("/admin/home", data={"token": admin, "locale": "ja"}).get_data(as_text=True)
    assert 'action="/admin/feedback"' in home and 'id="feedback-link">フォローアップ</button>' in home
    assert client.post("/admin/feedback", data={"token": "forged"}).status_code == 401


def test_every_api_route_needs_a_session_token(client: FlaskClient, container: Container) -> None:
    low(container)
    for method, path in (("GET", ""), ("GET", "/settings"), ("PUT", "/settings"), ("POST", "/1/resolve")):
        for headers in ({}, {"Authorization": "Bearer forged"}):
            r = client.open(API + path, method=method, json={}, headers=headers)
            assert r.status_code == 401, (method, path)
    assert snapshot(container)[0][1] == "open"


# --- the API -----------------------------------------------------------------------------------------------------


def test_items_come_with_the_customer_the_order_the_answer_and_the_alert(client: FlaskClient,
                                                                         container: Container) -> None:
    c = container
    x, item_id = low(c, emails="ops@example.com")
    r = client.get(API, headers=token(c, x))
    assert r.status_code == 200
    [item] = r.json["items"]
    assert {k: item[k] for k in ("id", "status", "reason", "customer_id", "customer_name", "customer_email",
                                 "order_id", "order_name", "score", "nps", "comment", "alert_status")} == {
        "id": item_id, "status": "open", "reason": "both", "customer_id": "cust-1", "customer_name": "Mina",
        "customer_email": "cust-1@example.com", "order_id": "order-1", "order_name": "#1001", "score": 2, "nps": 4,
        "comment": "Cold coffee <again>", "alert_status": "pending"}
    assert item["answered_at"] == NOW.isoformat() and item["resolved_at"] is None
    assert r.json["counts"] == {"open": 1, "resolved": 0} and r.json["staff"] is None
    assert client.get(API + "?status=resolved", headers=token(c, x)).json["items"] == []
    assert client.get(API + "?status=closed", headers=token(c, x)).status_code == 400


def test_resolving_names_who_and_what_once_and_another_shop_can_do_nothing(client: FlaskClient,
                                                                           container: Container) -> None:
    c = container
    x, item_id = low(c)
    other, other_item = low(c, "cust-2")
    before = snapshot(c)
    assert [i["id"] for i in client.get(API, headers=token(c, other)).json["items"]] == [other_item]  # not ours
    for headers in (token(c, other), shopify_staff(other)):
        r = client.post(f"{API}/{item_id}/resolve", json={"staff": "Eve", "note": "closing it"}, headers=headers)
        assert r.status_code == 404
    for body in ({"note": "Called her"}, {"staff": "Jun", "note": "  "}, {"staff": "Jun"}, ["note"]):
        r = client.post(f"{API}/{item_id}/resolve", json=body, headers=token(c, x))
        assert r.status_code == 400 and r.json["error"], body
    assert client.post(f"{API}/{item_id}/resolve", json={"staff": "Jun", "note": "x"},
                       headers=token(c, x) | {"Content-Type": "text/plain"}).status_code == 400
    assert snapshot(c) == before  # nothing changed
    assert client.post(f"{API}/{item_id}/resolve", json={"note": "Called her"}, headers=token(c, x)).json[
        "problems"] == [{"field": "staff", "message": "a resolution names the staff member who resolved it (up to 255 "
                                                               "characters)"}]

    done = client.post(f"{API}/{item_id}/resolve", json={"note": "Refunded the coffee."}, headers=shopify_staff(x))
    assert done.status_code == 200
    assert (done.json["status"], done.json["resolved_by"], done.json["resolution_note"]) == (
        "resolved", "Shopify user 42", "Refunded the coffee.")  # the signed-in staff member, from the token
    again = client.post(f"{API}/{item_id}/resolve", json={"staff": "Jun", "note": "again"}, headers=token(c, x))
    assert again.status_code == 409
    listed = client.get(API, headers=token(c, x)).json
    assert listed["counts"] == {"open": 0, "resolved": 1}
    assert client.get(API, headers=token(c, other)).json["counts"] == {"open": 1, "resolved": 0}


def test_the_routing_settings_are_read_and_replaced_and_a_bad_one_changes_nothing(client: FlaskClient,
                                                                                  container: Container) -> None:
    c = container
    x = seed(c)
    r = client.get(API + "/settings", headers=token(c, x))
    assert r.json == {"emails": [], "webhook_url": "", "low_satisfaction": 2, "low_nps": 6, "high_satisfaction": 4,
                      "high_nps": 9, "webhook_secret": dispatch.webhook_secret(c, x.shop_id)}
    before = snapshot(c)
    bad = client.put(API + "/settings", json={"emails": "ops@example.com, nope", "webhook_url": "mailto:x@y",
                                              "low_satisfaction": "3", "high_satisfaction": "3"}, headers=token(c, x))
    assert bad.status_code == 400
    assert {p["field"] for p in bad.json["problems"]} == {"emails", "webhook_url", "high_satisfaction"}
    assert client.put(API + "/settings", json=["emails"], headers=token(c, x)).status_code == 400
    assert snapshot(c) == before
    good = client.put(API + "/settings", json={"emails": "Ops@Example.com", "webhook_url": "http://127.0.0.1:9/hook",
                                               "low_satisfaction": "1", "low_nps": "5", "high_satisfaction": "5",
                                               "high_nps": "10"}, headers=token(c, x))
    assert good.status_code == 200 and good.json["emails"] == ["ops@example.com"] and good.json["high_nps"] == 10
    assert client.get(API + "/settings", headers=token(c, x)).json == good.json
    assert feedback.settings_of(c, x.shop_id).low_satisfaction == 1


# --- the catalog ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LOCALES)
def test_the_pages_and_alerts_catalog_is_complete_in_every_language(language: str) -> None:
    wanted = page_msgids(templates=["admin_page.html", "feedback.html"], python=["feedback.py"],  # the alert's too
                         extra=[p.label for p in NAV if p.domain == feedback.DOMAIN])  # the admin header's link here
    assert len(wanted) > 60 and {"Follow-up", "Low survey answer from %(customer)s: %(score)s/5, NPS %(nps)s"} <= wanted
    # every translation keeps the values the page and the alert fill in
    assert_catalog_complete(feedback.DOMAIN, wanted, language, untranslated=1,  # "NPS"
                            placeholders=r"\{\w+\}|%\(\w+\)s")
