"""The segments admin on the real database: its page in both shells and its catalog complete in English, Korean
and Japanese; the API behind a session token (another shop's token sees and changes none of this shop's
segments); the list with sizes and the built-in RFM segments named in the admin's language; create (a key made
from the name), update, delete, and a preview that saves nothing; every refused request answered with a message
per bad rule and checked to have changed nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from app import rewards, segments
from app.bootstrap import Container
from app.core.rfm import RFM_LABELS
from app.db import models as t
from app.i18n import LOCALES
from app.web.auth import issue_admin_token
from app.web.pages import NAV
from tests.fakes import FakeStorePlatform
from tests.helpers import add_shop, assert_catalog_complete, page_msgids

DOMAIN, OTHER = "shop-a.myshopify.com", "shop-b.myshopify.com"
API = "/api/admin/segments"
REPEAT = {"match": "all", "rules": [{"field": "orders_count", "op": ">=", "value": 2}]}


@pytest.fixture
def shop(container: Container) -> int:
    """Three customers: c1 with two paid orders (p1, p2), c2 with one (p2), c3 with none."""
    shop_id = add_shop(container, DOMAIN)
    now = datetime.now(UTC)
    with container.sessions() as s, s.begin():
        s.get_one(t.Shop, shop_id).locale = "en"
        for n, cid in enumerate(("c1", "c2", "c3")):
            s.add(t.Customer(shop_id=shop_id, external_id=cid, email=f"{cid}@example.com", first_name=f"Name{n}",
                             external_updated_at=now))
        for n, (cid, pid) in enumerate((("c1", "p1"), ("c1", "p2"), ("c2", "p2"))):
            o = t.Order(shop_id=shop_id, external_id=f"o{n}", customer_external_id=cid, currency="USD",
                        subtotal=Decimal(10), total=Decimal(10), total_tax=Decimal(0), total_shipping=Decimal(0),
                        total_discounts=Decimal(0), refunded_amount=Decimal(0), payment_status="paid", status="paid",
                        created_at=now - timedelta(days=n + 1), external_updated_at=now)
            s.add(o)
            s.flush()
            s.add(t.OrderLine(shop_id=shop_id, order_id=o.id, external_id=f"l{n}", product_external_id=pid, title=pid,
                              quantity=1, price=Decimal(10), total_discount=Decimal(0)))
    return shop_id


@pytest.fixture
def h(container: Container, shop: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_admin_token(container, shop, DOMAIN)}"}


def snapshot(c: Container) -> list[tuple[Any, ...]]:
    with c.sessions() as s:
        rows = [(x.shop_id, x.key, x.name, x.kind, x.rules, x.size) for x in s.scalars(select(t.Segment).order_by(t.Segment.id))]
        members = sorted((m, cid) for m, cid in s.execute(select(t.SegmentMember.segment_id,
                                                                  t.SegmentMember.customer_external_id)))
        return [*rows, *members]


def refused(client: FlaskClient, c: Container, method: str, path: str, body: Any, headers: dict[str, str],
            status: int = 400) -> dict[str, Any]:
    before = snapshot(c)
    r = client.open(path, method=method, json=body, headers=headers)
    assert r.status_code == status, r.get_json()
    assert snapshot(c) == before
    data: dict[str, Any] = r.get_json()
    return data


def test_every_route_needs_a_session_token(client: FlaskClient, shop: int) -> None:
    for method, path in (("GET", API), ("POST", API), ("PUT", f"{API}/1"), ("DELETE", f"{API}/1"),
                         ("POST", f"{API}/preview")):
        assert client.open(path, method=method, json={}).status_code == 401
        assert client.open(path, method=method, json={}, headers={"Authorization": "Bearer forged"}).status_code == 401


def test_the_list_has_the_rfm_segments_named_in_the_admins_language(client: FlaskClient, h: dict[str, str]) -> None:
    got = client.get(API, headers=h).get_json()
    assert [x["key"] for x in got["segments"]] == [f"rfm:{label}" for label in RFM_LABELS]
    assert all(x["kind"] == "rfm" and not x["editable"] and x["size"] == 0 for x in got["segments"])
    assert got["segments"][0]["name"] == "Champions" and got["rfm"][0] == {"key": "champions", "name": "Champions"}
    assert got["fields"]["consent"] == ["accepts", "refuses"] and got["tiers"] == []
    ja = client.get(f"{API}?locale=ja", headers=h).get_json()
    assert ja["locale"] == "ja" and ja["segments"][0]["name"] == "チャンピオン" and ja["rfm"][-1]["name"] == "離反顧客"
    assert len(client.get(API, headers=h).get_json()["segments"]) == len(RFM_LABELS)  # made once


def test_create_update_delete(client: FlaskClient, container: Container, h: dict[str, str], store: FakeStorePlatform
                              ) -> None:
    made = client.post(API, headers=h, json={"name": "Repeat buyers", "rules": REPEAT})
    assert made.status_code == 201, made.get_json()
    seg = made.get_json()
    assert {k: seg[k] for k in ("key", "name", "kind", "size", "editable", "used_by")} == {
        "key": "repeat-buyers", "name": "Repeat buyers", "kind": "rule", "size": 1, "editable": True,
        "used_by": {"rewards": [], "journeys": []}}
    assert seg["rules"] == REPEAT and seg["refreshed_at"] is not None
    again = client.post(API, headers=h, json={"name": "Repeat buyers!", "rules": REPEAT}).get_json()
    assert again["key"] == "repeat-buyers-2"  # made from the name, numbered when taken
    korean = client.post(API, headers=h, json={"name": "충성 고객", "key": "", "rules": REPEAT}).get_json()
    assert korean["key"] == "segment" and korean["name"] == "충성 고객"
    listed = client.get(API, headers=h).get_json()["segments"]
    assert [(x["key"], x["size"]) for x in listed[:3]] == [("repeat-buyers", 1), ("repeat-buyers-2", 1), ("segment", 1)]

    wider = {"match": "any", "rules": [*REPEAT["rules"], {"field": "bought_collection", "op": "any", "value": ["tea"]}]}
    store.collections = {"p2": frozenset({"tea"})}
    changed = client.put(f"{API}/{seg['id']}", headers=h, json={"name": "Regulars", "rules": wider})
    assert changed.status_code == 200, changed.get_json()
    assert (changed.get_json()["name"], changed.get_json()["size"], changed.get_json()["key"]) == ("Regulars", 2, "repeat-buyers")
    assert "product_collections" in store.calls
    renamed = client.put(f"{API}/{seg['id']}", headers=h, json={"name": "Regular customers"}).get_json()
    assert (renamed["name"], renamed["rules"], renamed["size"]) == ("Regular customers", wider, 2)

    assert client.delete(f"{API}/{again['id']}", headers=h).get_json() == {"deleted": again["id"]}
    assert [x["key"] for x in client.get(API, headers=h).get_json()["segments"] if x["editable"]] == [
        "repeat-buyers", "segment"]


def test_bad_requests_say_what_is_wrong_per_rule_and_change_nothing(
        client: FlaskClient, container: Container, h: dict[str, str]) -> None:
    seg = client.post(API, headers=h, json={"key": "repeat", "name": "Repeat", "rules": REPEAT}).get_json()
    bad = refused(client, container, "POST", API, {"name": "", "key": "Bad Key", "rules": {"match": "most", "rules": [
        {"field": "colour", "op": "=", "value": "red"},
        {"field": "orders_count", "op": "within", "value": 3},
        {"field": "total_spent", "op": ">=", "value": "12.345"},
        {"field": "rfm_segment", "op": "any", "value": ["champions", "heroes"]},
        {"field": "last_order", "op": "within", "value": 30}]}}, h)
    assert bad["problems"] == [
        {"field": "name", "message": "name: a name of at most 255 characters"},
        {"field": "key", "message": "key: lower-case letters, digits, - and _ (at most 64), starting with a letter or digit"},
        {"field": "match", "message": "match: all (every rule holds) or any (at least one does)"},
        {"field": "rules.0", "message": "rule 1: unknown field 'colour' (one of orders_count, total_spent, last_order, "
                                        "first_order, bought_product, bought_collection, tier, survey_score, nps, consent, "
                                        "rfm_segment)"},
        {"field": "rules.1", "message": "rule 2: orders_count takes >= or <= or =, not 'within'"},
        {"field": "rules.2", "message": "rule 3: total_spent is an amount of 0 or more (at most 2 decimals)"},
        {"field": "rules.3", "message": "rule 4: rfm_segment is a list of RFM segments (" + ", ".join(RFM_LABELS) + ")"}]
    assert refused(client, container, "POST", API, {"name": "Dup", "key": "repeat", "rules": REPEAT}, h)["problems"] == [
        {"field": "key", "message": "key: another segment is called 'repeat' already"}]
    assert refused(client, container, "POST", API, {"name": "None", "rules": {"rules": []}}, h)["problems"] == [
        {"field": "rules", "message": "rules: a list of 1 to 20 rules"}]
    assert refused(client, container, "PUT", f"{API}/{seg['id']}", {"rules": {"rules": [
        {"field": "tier", "op": "any", "value": ["gold"]}]}}, h)["problems"] == [
        {"field": "rules.0", "message": "rule 1: not a tier of your program: gold"}]
    assert refused(client, container, "PUT", f"{API}/{seg['id']}", {"key": "new-key"}, h)["problems"] == [
        {"field": "key", "message": "key: only the name and the rules of a segment can change"}]
    for body in (None, [], "x"):
        assert refused(client, container, "POST", API, body, h)["error"] == "a JSON object is expected"
    rfm = client.get(API, headers=h).get_json()["segments"][-1]
    assert refused(client, container, "PUT", f"{API}/{rfm['id']}", {"name": "Mine"}, h, 409)["error"] == (
        "the RFM segments are computed every night and cannot be changed")
    assert refused(client, container, "DELETE", f"{API}/{rfm['id']}", None, h, 409)["error"] == (
        "the RFM segments are built in and cannot be deleted")
    refused(client, container, "PUT", f"{API}/999999", {"name": "x"}, h, 404)


def test_a_store_that_cannot_be_reached_saves_nothing(client: FlaskClient, container: Container, h: dict[str, str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def down(c: Any, shop_id: int) -> Any:
        raise ConnectionError("store down")
    monkeypatch.setattr("app.shops.store_platform", down)
    rules = {"rules": [{"field": "bought_collection", "op": "any", "value": ["tea"]}]}
    got = refused(client, container, "POST", API, {"name": "Tea", "rules": rules}, h, 502)
    assert got["error"].startswith("Not saved: the store's collections could not be read: ConnectionError: store down")
    assert client.post(API, headers=h, json={"name": "Repeat", "rules": REPEAT}).status_code == 201  # no store needed


def test_a_segment_a_reward_uses_cannot_be_deleted(client: FlaskClient, container: Container, shop: int,
                                                   h: dict[str, str]) -> None:
    seg = client.post(API, headers=h, json={"name": "Repeat", "rules": REPEAT}).get_json()
    with container.sessions() as s, s.begin():
        rewards.add_reward(s, shop, "Thank-you gift", "amount", Decimal(5), 100, datetime.now(UTC), segment_id=seg["id"])
    listed = [x for x in client.get(API, headers=h).get_json()["segments"] if x["key"] == "repeat"]
    assert listed[0]["used_by"] == {"rewards": ["Thank-you gift"], "journeys": []}
    assert refused(client, container, "DELETE", f"{API}/{seg['id']}", None, h, 409) == {
        "error": "this segment is still targeted by rewards 'Thank-you gift': choose another segment for them first",
        "used_by": {"rewards": ["Thank-you gift"], "journeys": []}}


def test_preview_counts_and_lists_the_first_customers_without_saving(
        client: FlaskClient, container: Container, h: dict[str, str]) -> None:
    body = {"rules": {"match": "any", "rules": [{"field": "bought_product", "op": "any", "value": "p2"}]}}
    got = refused(client, container, "POST", f"{API}/preview", body, h, 200)
    assert got == {"size": 2, "customers": [{"id": "c1", "email": "c1@example.com", "name": "Name0"},
                                            {"id": "c2", "email": "c2@example.com", "name": "Name1"}]}
    bad = refused(client, container, "POST", f"{API}/preview", {"rules": {"rules": [{"field": "nps", "op": ">=",
                                                                                     "value": 11}]}}, h)
    assert bad["problems"] == [{"field": "rules.0", "message": "rule 1: nps is a whole number from 0 to 10"}]


def test_another_shops_token_sees_and_changes_nothing_of_this_shop(
        client: FlaskClient, container: Container, shop: int, h: dict[str, str]) -> None:
    seg = client.post(API, headers=h, json={"key": "repeat", "name": "Repeat", "rules": REPEAT}).get_json()
    other = add_shop(container, OTHER)
    theirs = {"Authorization": f"Bearer {issue_admin_token(container, other, OTHER)}"}
    assert [x["key"] for x in client.get(API, headers=theirs).get_json()["segments"] if x["editable"]] == []
    refused(client, container, "PUT", f"{API}/{seg['id']}", {"name": "Mine"}, theirs, 404)
    refused(client, container, "DELETE", f"{API}/{seg['id']}", None, theirs, 404)
    preview = client.post(f"{API}/preview", headers=theirs, json={"rules": REPEAT}).get_json()
    assert preview == {"size": 0, "customers": []}  # this shop's customers are not theirs
    same_key = client.post(API, headers=theirs, json={"key": "repeat", "name": "Theirs", "rules": REPEAT})
    assert same_key.status_code == 201 and same_key.get_json()["size"] == 0  # keys are per shop
    with container.sessions() as s:
        assert segments.member_of(s, shop, "c1") == frozenset({"repeat"})


# --- the page ------------------------------------------------------------------------------------------------------


def test_the_page_inside_shopify_admin_and_from_a_stores_admin(client: FlaskClient, container: Container, shop: int
                                                               ) -> None:
    r = client.get(f"/admin/segments?shop={DOMAIN}&host=abc")
    assert r.status_code == 200 and r.headers["Content-Security-Policy"].startswith(f"frame-ancestors https://{DOMAIN} ")
    html = r.get_data(as_text=True)
    assert "<h1>Segments</h1>" in html and 'name="shopify-api-key"' in html and "data-session-token" not in html
    with container.sessions() as s, s.begin():
        s.execute(update(t.Shop).where(t.Shop.id == shop).values(locale="ko"))
    assert "<h1>세그먼트</h1>" in client.get(f"/admin/segments?shop={DOMAIN}").get_data(as_text=True)
    assert client.get("/admin/segments?shop=evil.example.com").status_code == 400
    token = issue_admin_token(container, shop, DOMAIN)
    posted = client.post("/admin/segments", data={"token": token, "locale": "ja"})
    assert posted.status_code == 200 and "<h1>セグメント</h1>" in posted.get_data(as_text=True)
    assert f'data-session-token="{token}"' in posted.get_data(as_text=True)
    assert client.post("/admin/segments", data={"token": "forged"}).status_code == 401
    home = client.post("/admin/home", data={"token": token, "locale": "ja"}).get_data(as_text=True)
    assert 'id="segments-link"' in home and ">セグメント<" in home  # the admin's header links here


@pytest.mark.parametrize("language", LOCALES)
def test_the_pages_catalog_is_complete_in_every_language(language: str) -> None:
    wanted = page_msgids(templates=["admin_page.html", "segments.html"], extra=[
        *segments.RFM_NAMES.values(), *(p.label for p in NAV if p.domain == segments.DOMAIN)])  # the header's link
    assert len(wanted) > 60 and {"Segments", "Champions", "Saved. Customers in it now: {count}."} <= wanted
    assert_catalog_complete(segments.DOMAIN, wanted, language, untranslated=2)  # "SMS"
