"""The loyalty admin on the real database (SQLite, or PostgreSQL when DATABASE_URL names one): its page in both
shells, every API route behind a session token, program settings and bonus campaigns as new rule versions (old
versions untouched), the rewards catalog, the tier ladder, a customer's ledger and manual adjustments, and the
figures (app/loyalty_figures.py) on a hand-built dataset with exact expected values. Every refused request is
checked to have changed nothing, and the page's catalog to be complete in English, Korean and Japanese."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from app import loyalty, rewards
from app import loyalty_figures as lf
from app.bootstrap import Container
from app.core.loyalty import Balance, Entry, Posting, Reason
from app.db import models as t
from app.i18n import LOCALES
from app.simulator.shopify import ShopifySimulator
from app.web.auth import issue_admin_token
from app.web.pages import NAV
from tests.conftest import API_KEY, API_SECRET
from tests.helpers import add_shop, assert_catalog_complete, page_msgids

DOMAIN = "shop-a.myshopify.com"
MINTER = ShopifySimulator(api_key=API_KEY, api_secret=API_SECRET, app_url="http://127.0.0.1:1")  # never started
API = "/api/admin/loyalty"


@pytest.fixture
def shop(container: Container) -> int:
    shop_id = add_shop(container, DOMAIN)
    with container.sessions() as s, s.begin():
        row = s.get(t.Shop, shop_id)
        assert row is not None
        row.name, row.currency, row.timezone, row.locale = "Bean There", "USD", "America/New_York", "en"
        s.add(t.Customer(shop_id=shop_id, external_id="c1", email="Mina@Example.com", first_name="Mina",
                         last_name="Park", external_updated_at=datetime.now(UTC)))
    return shop_id


@pytest.fixture
def h(container: Container, shop: int) -> dict[str, str]:
    """Encore's own admin token (as from WordPress): it names the shop, not a staff member."""
    return {"Authorization": f"Bearer {issue_admin_token(container, shop, DOMAIN)}"}


def shopify_staff() -> dict[str, str]:
    """A Shopify session token: its `sub` is the signed-in staff member (42)."""
    return {"Authorization": "Bearer " + MINTER.session_token(DOMAIN)}


def snapshot(c: Container, shop_id: int) -> dict[str, Any]:
    """Everything the loyalty admin can change, comparable before and after a refused request."""
    def rows(model: Any, *cols: str) -> list[tuple[Any, ...]]:
        with c.sessions() as s:
            return sorted((tuple(getattr(r, col) for col in cols)
                           for r in s.scalars(select(model).where(model.shop_id == shop_id))), key=repr)

    return {
        "program": rows(t.LoyaltyProgramRow, "enabled", "started_at", "confirm_after_days", "expire_after_days",
                        "actions", "tier_basis", "tier_window_days", "tier_grace_days", "stamp_every",
                        "stamp_reward_id", "badges_enabled"),
        "rules": rows(t.LoyaltyRule, "version", "definition"),
        "rewards": rows(t.Reward, "id", "title", "kind", "value", "cost", "enabled", "valid_days"),
        "tiers": rows(t.LoyaltyTier, "key", "name", "threshold", "multiplier", "perks"),
        "accounts": rows(t.LoyaltyAccount, "customer_external_id", "available", "pending"),
        "entries": rows(t.LedgerEntry, "key", "amount", "balance", "reason", "staff", "note"),
    }


def refused(client: FlaskClient, c: Container, shop_id: int, method: str, path: str, body: Any,
            headers: dict[str, str], status: int = 400) -> dict[str, Any]:
    """The request is refused with `status` and changes nothing; returns the answer's JSON."""
    before = snapshot(c, shop_id)
    r = client.open(path, method=method, json=body, headers=headers)
    assert r.status_code == status, r.get_json()
    assert snapshot(c, shop_id) == before
    data: dict[str, Any] = r.get_json()
    return data


def fields(answer: dict[str, Any]) -> dict[str, str]:
    return {p["field"]: p["message"] for p in answer["problems"]}


# --- the page -------------------------------------------------------------------------------------------------


def test_the_page_inside_shopify_admin_in_the_shops_language(client: FlaskClient, container: Container,
                                                              shop: int) -> None:
    r = client.get(f"/admin/loyalty?shop={DOMAIN}&host=abc")
    assert r.status_code == 200
    assert r.headers["Content-Security-Policy"].startswith(f"frame-ancestors https://{DOMAIN} ")
    html = r.get_data(as_text=True)
    assert '<h1>Loyalty</h1>' in html and 'name="shopify-api-key"' in html and "data-session-token" not in html
    assert f'href="/shopify/app?embedded=1&amp;shop={DOMAIN}&amp;host=abc"' in html  # back through the bounce
    with container.sessions() as s, s.begin():
        s.execute(update(t.Shop).where(t.Shop.id == shop).values(locale="ko"))
    assert "<h1>로열티</h1>" in client.get(f"/admin/loyalty?shop={DOMAIN}").get_data(as_text=True)
    assert client.get("/admin/loyalty?shop=evil.example.com").status_code == 400


def test_the_page_from_a_stores_own_admin_carries_its_token_and_goes_back(client: FlaskClient, container: Container
                                                                          ) -> None:
    with container.sessions() as s, s.begin():
        store = t.Shop(platform="woocommerce", domain="https://store.example", installed_at=datetime.now(UTC))
        s.add(store)
        s.flush()
        shop_id = store.id
    token = issue_admin_token(container, shop_id, "https://store.example")
    r = client.post("/admin/loyalty", data={"token": token, "locale": "ja"})
    assert r.status_code == 200
    assert r.headers["Content-Security-Policy"].startswith("frame-ancestors https://store.example; ")  # app/web/csp.py
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Referrer-Policy"] == "no-referrer"
    html = r.get_data(as_text=True)
    assert f'data-session-token="{token}"' in html and "<h1>ロイヤルティ</h1>" in html
    assert "app-bridge" not in html and 'action="/admin/home"' in html

    back = client.post("/admin/home", data={"token": token, "locale": "ja"})
    assert back.status_code == 200 and f'data-session-token="{token}"' in back.get_data(as_text=True)
    assert 'id="loyalty-link"' in back.get_data(as_text=True)  # the admin page's link here, posting the token
    assert "ロイヤルティ</button>" in back.get_data(as_text=True)
    for path in ("/admin/loyalty", "/admin/home"):
        assert client.post(path, data={"token": "forged"}).status_code == 401


def test_every_api_route_needs_a_session_token(client: FlaskClient, shop: int) -> None:
    routes = [("GET", "/program"), ("PUT", "/program"), ("POST", "/bonuses"), ("POST", "/bonuses/0/end"),
              ("GET", "/rewards"), ("POST", "/rewards"), ("PUT", "/rewards/1"), ("GET", "/tiers"), ("PUT", "/tiers"),
              ("GET", "/customers?q=c1"), ("GET", "/customers/c1"), ("POST", "/customers/c1/adjust"),
              ("GET", "/figures")]
    for method, path in routes:
        r = client.open(API + path, method=method, json={})
        assert r.status_code == 401, path
        assert r.headers["X-Shopify-Retry-Invalid-Session-Request"] == "1"


# --- program settings and bonus campaigns ----------------------------------------------------------------------


def rules(c: Container, shop_id: int) -> dict[int, dict[str, Any]]:
    with c.sessions() as s:
        return {r.version: r.definition for r in s.scalars(select(t.LoyaltyRule).where(t.LoyaltyRule.shop_id == shop_id))}


def test_switching_the_program_on_and_changing_the_rate_makes_rule_versions(
        client: FlaskClient, container: Container, shop: int, h: dict[str, str]) -> None:
    fresh = client.get(f"{API}/program", headers=h).get_json()
    assert (fresh["enabled"], fresh["version"], fresh["points_per_unit"], fresh["staff"]) == (False, None, "1", None)
    assert fresh["actions"] == {"signup": 0, "birthday": 0, "survey": 0, "review": 0, "referral": 0}

    on = client.put(f"{API}/program", json={"enabled": True}, headers=h).get_json()
    assert (on["enabled"], on["version"], on["points_per_unit"]) == (True, 1, "1")
    started = datetime.fromisoformat(on["started_at"])
    assert abs(datetime.now(UTC) - started) < timedelta(minutes=1)

    twice = client.put(f"{API}/program", json={"points_per_unit": "2.5"}, headers=h).get_json()
    assert (twice["version"], twice["points_per_unit"]) == (2, "2.5")
    same = client.put(f"{API}/program", json={"points_per_unit": 2.5}, headers=h).get_json()
    assert same["version"] == 2  # the same rate is no new version
    assert {v: d["points_per_unit"] for v, d in rules(container, shop).items()} == {1: "1", 2: "2.5"}

    with container.sessions() as s:
        program = s.scalars(select(t.LoyaltyProgramRow)).one()
        assert program.enabled and program.started_at == started
    off = client.put(f"{API}/program", json={"enabled": False}, headers=h).get_json()
    assert (off["enabled"], off["version"]) == (False, 2)
    assert client.get(f"{API}/program", headers=shopify_staff()).get_json()["staff"] == "Shopify user 42"


def test_settings_are_saved_and_bad_ones_are_refused_per_field_changing_nothing(
        client: FlaskClient, container: Container, shop: int, h: dict[str, str]) -> None:
    with container.sessions() as s, s.begin():
        card = rewards.add_reward(s, shop, "Free coffee", "amount", Decimal("4.00"), 300, datetime.now(UTC))
    saved = client.put(f"{API}/program", headers=h, json={
        "enabled": True, "points_per_unit": "3", "confirm_after_days": "14", "expire_after_days": 365,
        "actions": {"signup": "100", "birthday": 200, "review": 0}, "stamp_every": "10", "stamp_reward_id": card,
        "badges_enabled": False, "tier_basis": "points", "tier_window_days": "180", "tier_grace_days": 15})
    assert saved.status_code == 200, saved.get_json()
    data = saved.get_json()
    assert (data["confirm_after_days"], data["expire_after_days"], data["stamp_every"], data["stamp_reward_id"],
            data["badges_enabled"], data["tier_basis"], data["tier_window_days"], data["tier_grace_days"]) == (
        14, 365, 10, card, False, "points", 180, 15)
    assert data["actions"] == {"signup": 100, "birthday": 200, "survey": 0, "review": 0, "referral": 0}
    with container.sessions() as s:
        program = s.scalars(select(t.LoyaltyProgramRow)).one()
        assert program.actions == {"signup": 100, "birthday": 200}  # 0 gives nothing: not kept
        assert program.enabled
    assert rules(container, shop)[1]["points_per_unit"] == "3"

    bad = refused(client, container, shop, "PUT", f"{API}/program", {
        "enabled": "yes", "points_per_unit": "-1", "confirm_after_days": 0, "expire_after_days": "soon",
        "actions": {"signup": -5, "dance": 10}, "stamp_every": 1, "badges_enabled": None, "tier_basis": "age",
        "tier_window_days": 0, "tier_grace_days": 400, "colour": "red"}, h)
    assert fields(bad) == {
        "enabled": "enabled: true or false",
        "points_per_unit": "points per unit: a number from 0 to 1,000 (at most 4 decimals)",
        "confirm_after_days": "days after fulfilment: a whole number from 1 to 365, or blank",
        "expire_after_days": "expiry: a whole number of days from 1 to 3,650, or blank for never",
        "actions": "actions: no action 'dance' (signup, birthday, survey, review, referral)",
        "actions.signup": "signup: a whole number of points from 0 to 1,000,000",
        "stamp_every": "stamp card: every 2 to 100 orders, or blank for no card",
        "badges_enabled": "badges_enabled: true or false", "tier_basis": "tier basis: spend or points",
        "tier_window_days": "tier window: from 1 to 1,825 days", "tier_grace_days": "grace period: from 0 to 365 days",
        "colour": "unknown setting 'colour'"}
    # One bad field among good ones: the good ones are not saved either.
    refused(client, container, shop, "PUT", f"{API}/program", {"points_per_unit": "7", "tier_grace_days": -1}, h)
    other = add_shop(container, "shop-b.myshopify.com")
    with container.sessions() as s, s.begin():
        theirs = rewards.add_reward(s, other, "Not yours", "amount", Decimal("1"), 10, datetime.now(UTC))
    foreign = refused(client, container, shop, "PUT", f"{API}/program", {"stamp_reward_id": theirs}, h)
    assert fields(foreign) == {"stamp_reward_id": "stamp reward: no such reward in your catalog"}
    unrewarded = refused(client, container, shop, "PUT", f"{API}/program", {"stamp_reward_id": None}, h)
    assert fields(unrewarded) == {"stamp_reward_id": "stamp card: choose the reward a full card earns"}
    assert client.put(f"{API}/program", json={"stamp_every": None, "stamp_reward_id": None,
                                               "confirm_after_days": None}, headers=h).status_code == 200
    assert refused(client, container, shop, "PUT", f"{API}/program", ["enabled"], h)["error"] == \
        "a JSON object is expected"


def test_bonus_campaigns_are_added_and_ended_as_new_versions(client: FlaskClient, container: Container, shop: int,
                                                              h: dict[str, str]) -> None:
    client.put(f"{API}/program", json={"enabled": True, "points_per_unit": "2"}, headers=h)  # version 1
    now = datetime.now(UTC)
    start = (now - timedelta(days=1)).replace(microsecond=0)
    added = client.post(f"{API}/bonuses", headers=h, json={
        "multiplier": "2", "starts_at": start.isoformat(), "ends_at": (now + timedelta(days=6)).isoformat(),
        "products": "p1, p2,p1"})
    assert added.status_code == 201, added.get_json()
    assert added.get_json()["version"] == 2 and added.get_json()["bonus"]["status"] == "running"
    # A datetime-local input's value (no offset) is read in the shop's time zone (New York: UTC-5 in December).
    scheduled = client.post(f"{API}/bonuses", headers=h, json={
        "multiplier": 3, "starts_at": "2099-12-01T00:00", "ends_at": "2099-12-02T00:00"})
    assert scheduled.get_json()["version"] == 3
    program = client.get(f"{API}/program", headers=h).get_json()
    assert program["version"] == 3 and program["points_per_unit"] == "2"
    assert [(b["multiplier"], b["status"], b["products"]) for b in program["bonuses"]] == [
        ("2", "running", ["p1", "p2"]), ("3", "scheduled", None)]
    assert program["bonuses"][1]["starts_at"] == "2099-12-01T05:00:00+00:00"

    bad = refused(client, container, shop, "POST", f"{API}/bonuses", {
        "multiplier": "0", "starts_at": "tomorrow", "ends_at": "2099-01-01T00:00", "products": [1, 2]}, h)
    assert fields(bad) == {"multiplier": "multiplier: a number above 0 and at most 100 (2 doubles the points)",
                           "starts_at": "starts: a date and time such as 2026-11-27T00:00",
                           "products": "products: product ids separated by commas (at most 200), or blank for "
                                       "every product"}
    backwards = refused(client, container, shop, "POST", f"{API}/bonuses", {
        "multiplier": "2", "starts_at": "2099-01-02T00:00", "ends_at": "2099-01-01T00:00"}, h)
    assert fields(backwards) == {"ends_at": "ends: after it starts"}
    past = refused(client, container, shop, "POST", f"{API}/bonuses", {
        "multiplier": "2", "starts_at": "2020-01-01T00:00", "ends_at": "2020-01-02T00:00"}, h)
    assert fields(past) == {"ends_at": "ends: in the future"}

    stale = refused(client, container, shop, "POST", f"{API}/bonuses/0/end", {"version": 2}, h, 409)
    assert "changed at the same moment" in stale["error"]
    refused(client, container, shop, "POST", f"{API}/bonuses/5/end", {"version": 3}, h, 404)
    ended = client.post(f"{API}/bonuses/0/end", json={"version": 3}, headers=h)
    assert ended.get_json() == {"version": 4}
    dropped = client.post(f"{API}/bonuses/1/end", json={"version": 4}, headers=h)  # not begun: dropped
    assert dropped.get_json() == {"version": 5}
    versions = rules(container, shop)
    assert [len(versions[v]["bonuses"]) for v in range(1, 6)] == [0, 1, 2, 2, 1]
    assert versions[3]["bonuses"][0]["ends_at"] == (now + timedelta(days=6)).isoformat()  # never edited
    ended_at = datetime.fromisoformat(versions[5]["bonuses"][0]["ends_at"])
    assert abs(ended_at - datetime.now(UTC)) < timedelta(minutes=1)
    program = client.get(f"{API}/program", headers=h).get_json()
    assert [b["status"] for b in program["bonuses"]] == ["ended"]
    again = refused(client, container, shop, "POST", f"{API}/bonuses/0/end", {"version": 5}, h, 409)
    assert again["error"] == "this campaign has ended already"


# --- rewards and tiers -------------------------------------------------------------------------------------------


def test_the_rewards_catalog(client: FlaskClient, container: Container, shop: int, h: dict[str, str]) -> None:
    empty = client.get(f"{API}/rewards", headers=h).get_json()
    assert empty == {"kinds": list(rewards.KINDS), "rewards": [], "segments": []}
    five = client.post(f"{API}/rewards", headers=h, json={
        "title": "$5 off", "kind": "amount", "value": "5.00", "cost": "500", "valid_days": "30"})
    assert five.status_code == 201
    assert {k: v for k, v in five.get_json().items() if k != "id"} == {
        "title": "$5 off", "kind": "amount", "value": "5", "product_id": None, "cost": 500, "valid_days": 30,
        "enabled": True, "segment_id": None}
    ship = client.post(f"{API}/rewards", headers=h, json={"title": "Free shipping", "kind": "free_shipping",
                                                         "value": "", "cost": 200}).get_json()
    assert (ship["value"], ship["valid_days"]) == (None, 90)
    client.post(f"{API}/rewards", headers=h, json={"title": "10% off", "kind": "percent", "value": 10, "cost": 800})
    listed = client.get(f"{API}/rewards", headers=h).get_json()["rewards"]
    assert [(r["title"], r["cost"]) for r in listed] == [("Free shipping", 200), ("$5 off", 500), ("10% off", 800)]

    bad = refused(client, container, shop, "POST", f"{API}/rewards",
                  {"title": " ", "kind": "percent", "value": "150", "cost": 0, "valid_days": "x"}, h)
    assert fields(bad) == {"title": "title: a name of at most 255 characters",
                           "value": "value: a percentage above 0 and at most 100",
                           "cost": "cost: a whole number of points from 1 to 10,000,000",
                           "valid_days": "valid for: from 1 to 3,650 days"}
    assert fields(refused(client, container, shop, "POST", f"{API}/rewards",
                          {"title": "Gift", "kind": "gift", "cost": 5}, h))["kind"].startswith("kind: one of amount")
    assert fields(refused(client, container, shop, "POST", f"{API}/rewards",
                          {"title": "Ship", "kind": "free_shipping", "value": "3", "cost": 5}, h)) == {
        "value": "value: a free-shipping reward has no value"}
    assert fields(refused(client, container, shop, "POST", f"{API}/rewards",
                          {"title": "Cents", "kind": "amount", "value": "0.005", "cost": 5}, h)) == {
        "value": "value: an amount of money above 0 (at most 2 decimals)"}
    assert fields(refused(client, container, shop, "POST", f"{API}/rewards",
                          {"title": "Nothing", "kind": "amount", "cost": 5}, h)) == {
        "value": "value: an amount of money above 0 (at most 2 decimals)"}

    mug = client.post(f"{API}/rewards", headers=h, json={"title": "Free mug", "kind": "free_product", "value": "18",
                                                        "product_id": "632910392", "cost": 900})
    assert mug.status_code == 201 and (mug.get_json()["product_id"], mug.get_json()["value"]) == ("632910392", "18")
    assert fields(refused(client, container, shop, "POST", f"{API}/rewards",
                          {"title": "Free ?", "kind": "free_product", "value": "18", "cost": 5}, h)) == {
        "product_id": "product: the store's product id (digits) of the free product"}
    assert fields(refused(client, container, shop, "POST", f"{API}/rewards",
                          {"title": "Odd", "kind": "amount", "value": "1", "product_id": "7", "cost": 5}, h)) == {
        "product_id": "product: only a new free-product reward names a product"}

    rid = five.get_json()["id"]
    edited = client.put(f"{API}/rewards/{rid}", headers=h, json={"title": "$6 off", "value": "6", "cost": 550,
                                                                 "valid_days": 60})
    assert {k: edited.get_json()[k] for k in ("title", "value", "cost", "valid_days", "enabled")} == {
        "title": "$6 off", "value": "6", "cost": 550, "valid_days": 60, "enabled": True}
    assert client.put(f"{API}/rewards/{rid}", headers=h, json={"enabled": False}).get_json()["enabled"] is False
    assert fields(refused(client, container, shop, "PUT", f"{API}/rewards/{rid}", {"cost": "-3", "title": "ok"}, h)) \
        == {"cost": "cost: a whole number of points from 1 to 10,000,000"}
    assert fields(refused(client, container, shop, "PUT", f"{API}/rewards/{rid}", {"kind": "percent"}, h)) == {
        "kind": "kind: a reward keeps its kind; add a new reward instead"}
    other = add_shop(container, "shop-b.myshopify.com")
    with container.sessions() as s, s.begin():
        theirs = rewards.add_reward(s, other, "Not yours", "amount", Decimal("1"), 10, datetime.now(UTC))
    refused(client, container, shop, "PUT", f"{API}/rewards/{theirs}", {"enabled": False}, h, 404)


def test_the_tier_ladder_is_replaced(client: FlaskClient, container: Container, shop: int, h: dict[str, str]) -> None:
    assert client.get(f"{API}/tiers", headers=h).get_json() == {"tiers": []}
    saved = client.put(f"{API}/tiers", headers=h, json={"tiers": [
        {"name": "Gold", "threshold": "500", "multiplier": "1.5", "perks": ["Free shipping", " "]},
        {"name": "Silver Star", "threshold": 100, "multiplier": "1.25", "perks": "Early access\nBirthday gift"}]})
    assert saved.status_code == 200, saved.get_json()
    assert saved.get_json()["tiers"] == [
        {"key": "silver-star", "name": "Silver Star", "threshold": "100", "multiplier": "1.25",
         "perks": ["Early access", "Birthday gift"]},
        {"key": "gold", "name": "Gold", "threshold": "500", "multiplier": "1.5", "perks": ["Free shipping"]}]

    same = refused(client, container, shop, "PUT", f"{API}/tiers", {"tiers": [
        {"name": "A", "threshold": "100", "multiplier": "1"}, {"name": "B", "threshold": "100", "multiplier": "2"}]}, h)
    assert same["problems"] == [{"field": "tiers", "message": "tiers: each tier needs a key and a threshold of its own"}]
    bad = refused(client, container, shop, "PUT", f"{API}/tiers", {"tiers": [
        {"name": "", "threshold": "-1", "multiplier": "11", "key": "Not A Key"}, "gold"]}, h)
    assert fields(bad) == {"tiers.0.name": "tier 1: a name of at most 64 characters",
                           "tiers.0.key": "tier 1: a key of lower-case letters, digits, - and _ (at most 32)",
                           "tiers.0.threshold": "tier 1: a threshold of 0 or more (at most 2 decimals)",
                           "tiers.0.multiplier": "tier 1: a points multiplier from 0 to 10",
                           "tiers.1.name": "tier 2: a name, a threshold and a multiplier"}
    refused(client, container, shop, "PUT", f"{API}/tiers", {"tiers": "gold"}, h)
    assert client.put(f"{API}/tiers", headers=h, json={"tiers": []}).get_json() == {"tiers": []}


# --- a customer's ledger and adjustments ----------------------------------------------------------------------


def test_customers_are_found_by_id_or_email(client: FlaskClient, container: Container, shop: int,
                                            h: dict[str, str]) -> None:
    mina = {"id": "c1", "email": "Mina@Example.com", "name": "Mina Park"}
    assert client.get(f"{API}/customers?q=c1", headers=h).get_json()["customers"] == [mina]
    assert client.get(f"{API}/customers?q=mina@example.COM", headers=h).get_json()["customers"] == [mina]
    assert client.get(f"{API}/customers?q=nobody", headers=h).get_json()["customers"] == []
    with container.sessions() as s, s.begin():  # points for a customer the store has not sent yet
        loyalty.post(s, shop, "c9", [Posting(Entry(10, Balance.AVAILABLE, Reason.ACTION, "signup"))],
                     datetime.now(UTC))
    assert client.get(f"{API}/customers?q=c9", headers=h).get_json()["customers"] == [
        {"id": "c9", "email": None, "name": None}]
    assert client.get(f"{API}/customers?q=", headers=h).status_code == 400
    assert client.get(f"{API}/customers/nobody", headers=h).status_code == 404
    other = add_shop(container, "shop-b.myshopify.com")
    with container.sessions() as s, s.begin():
        s.add(t.Customer(shop_id=other, external_id="b1", email="b@example.com", external_updated_at=datetime.now(UTC)))
    assert client.get(f"{API}/customers?q=b1", headers=h).get_json()["customers"] == []
    assert client.get(f"{API}/customers/b1", headers=h).status_code == 404


def test_a_ledger_with_running_balances_and_adjustments(client: FlaskClient, container: Container, shop: int,
                                                        h: dict[str, str]) -> None:
    day = datetime(2026, 11, 1, 12, tzinfo=UTC)
    with container.sessions() as s, s.begin():
        loyalty.post(s, shop, "c1", [Posting(Entry(120, Balance.PENDING, Reason.EARNED, "o:1:l:1"), rule_version=2,
                                             order_id="1001", line_id="1")], day)
        loyalty.post(s, shop, "c1", [Posting(Entry(-120, Balance.PENDING, Reason.CONFIRMED, "o:1:c:out"), order_id="1001"),
                                     Posting(Entry(120, Balance.AVAILABLE, Reason.CONFIRMED, "o:1:c:in"), order_id="1001")],
                     day + timedelta(days=1))
        loyalty.post(s, shop, "c1", [Posting(Entry(40, Balance.PENDING, Reason.EARNED, "o:2:l:1"), rule_version=2,
                                             order_id="1002", line_id="1")], day + timedelta(days=2))
        s.add(t.LoyaltyTier(shop_id=shop, key="gold", name="Gold", threshold=Decimal(0), multiplier=Decimal(2),
                            perks=[], created_at=day))
        s.execute(update(t.LoyaltyAccount).values(tier="gold"))
    ledger = client.get(f"{API}/customers/c1", headers=h).get_json()
    assert (ledger["available"], ledger["pending"], ledger["tier"], ledger["staff"]) == (
        120, 40, {"key": "gold", "name": "Gold"}, None)
    assert [(e["amount"], e["balance"], e["available_after"], e["pending_after"], e["reason"], e["order"],
             e["rule_version"]) for e in ledger["entries"]] == [
        (40, "pending", 120, 40, "earned", "1002", 2), (120, "available", 120, 0, "confirmed", "1001", None),
        (-120, "pending", 0, 0, "confirmed", "1001", None), (120, "pending", 0, 120, "earned", "1001", 2)]
    assert ledger["entries"][0]["at"] == (day + timedelta(days=2)).isoformat()

    body = {"direction": "add", "points": "30", "note": "Parcel arrived damaged", "staff": "Jun",
            "request_key": "key-0000000001"}
    added = client.post(f"{API}/customers/c1/adjust", json=body, headers=h)
    assert added.status_code == 200, added.get_json()
    data = added.get_json()
    assert (data["adjusted"], data["repeated"], data["available"]) == (30, False, 150)
    assert {k: data["entries"][0][k] for k in ("amount", "available_after", "reason", "staff", "note")} == {
        "amount": 30, "available_after": 150, "reason": "adjusted", "staff": "Jun", "note": "Parcel arrived damaged"}
    again = client.post(f"{API}/customers/c1/adjust", json=body, headers=h).get_json()  # the same submission
    assert (again["repeated"], again["available"], len(again["entries"])) == (True, 150, 5)

    taken = client.post(f"{API}/customers/c1/adjust", headers=shopify_staff(), json={
        "direction": "take", "points": 50, "note": "Goodwill reversed", "request_key": "key-0000000002"}).get_json()
    assert (taken["available"], taken["entries"][0]["amount"], taken["entries"][0]["staff"], taken["staff"]) == (
        100, -50, "Shopify user 42", "Shopify user 42")

    def refuse(change: dict[str, Any], field: str, message: str, headers: dict[str, str] = h) -> None:
        answer = refused(client, container, shop, "POST", f"{API}/customers/c1/adjust",
                         {**body, "request_key": "key-0000000003", **change}, headers)
        assert fields(answer) == {field: message}

    whole = "points: a whole number above zero (choose “Take points away” to remove points), at most 10,000,000"
    refuse({"points": "-5"}, "points", whole)
    refuse({"points": "abc"}, "points", whole)
    refuse({"points": "0"}, "points", whole)
    refuse({"points": "1.5"}, "points", whole)
    refuse({"points": True}, "points", whole)
    refuse({"note": "  "}, "note", "note: say why (at most 2,000 characters)")
    refuse({"note": None}, "note", "note: say why (at most 2,000 characters)")
    refuse({"staff": ""}, "staff", "your name: who is making this adjustment")
    refuse({"request_key": "short"}, "request_key",
           "request key: 8 to 64 letters, digits, - or _ (one for each submitted form)")
    refuse({"direction": "sideways"}, "direction", "direction: add or take")
    refuse({"direction": "take", "points": "101"}, "points", "taking 101 points would leave the balance below zero")
    refused(client, container, shop, "POST", f"{API}/customers/nobody/adjust", {**body, "request_key": "key-x0000004"},
            h, 404)
    with container.sessions() as s:
        assert loyalty.mismatches(s) == []


# --- figures --------------------------------------------------------------------------------------------------

NOW = datetime.now(UTC).replace(microsecond=0)


def ago(days: int) -> datetime:
    return NOW - timedelta(days=days)


def post(c: Container, shop_id: int, customer: str, days: int, *entries: tuple[int, Balance, Reason]) -> None:
    with c.sessions() as s, s.begin():
        loyalty.post(s, shop_id, customer, [Posting(Entry(a, b, r, f"{customer}:{days}:{i}"))
                                            for i, (a, b, r) in enumerate(entries)], ago(days))


def order(c: Container, shop_id: int, number: int, customer: str | None, payment: str = "paid",
          cancelled: bool = False) -> None:
    with c.sessions() as s, s.begin():
        s.add(t.Order(shop_id=shop_id, external_id=str(number), name=f"#{number}", customer_external_id=customer,
                      currency="USD", subtotal=Decimal(10), total=Decimal(10), total_tax=Decimal(0),
                      total_shipping=Decimal(0), total_discounts=Decimal(0), refunded_amount=Decimal(0),
                      payment_status=payment, status="paid", created_at=ago(30),
                      cancelled_at=ago(29) if cancelled else None, external_updated_at=ago(29)))


A, P = Balance.AVAILABLE, Balance.PENDING


def dataset(c: Container, shop_id: int) -> None:
    """Members a, b, c_, e (d has an account without entries, f and g none); see the expected figures below."""
    post(c, shop_id, "a", 200, (1000, P, Reason.EARNED))
    post(c, shop_id, "a", 190, (-1000, P, Reason.CONFIRMED), (1000, A, Reason.CONFIRMED))
    post(c, shop_id, "a", 100, (-500, A, Reason.REDEEMED))
    post(c, shop_id, "a", 10, (-200, A, Reason.REDEEMED))
    post(c, shop_id, "a", 5, (-100, A, Reason.REDEEMED), (100, A, Reason.RESTORED))  # a code the store refused
    post(c, shop_id, "b", 20, (400, P, Reason.EARNED), (250, A, Reason.ACTION))
    post(c, shop_id, "b", 15, (-100, P, Reason.REVERSED))
    post(c, shop_id, "c_", 95, (200, P, Reason.EARNED))
    post(c, shop_id, "c_", 94, (-200, P, Reason.CONFIRMED), (200, A, Reason.CONFIRMED))
    post(c, shop_id, "c_", 92, (-200, A, Reason.REDEEMED))
    post(c, shop_id, "c_", 10, (-150, A, Reason.REVERSED))  # refunded after the points were spent: below zero
    post(c, shop_id, "e", 3, (25, A, Reason.ADJUSTED))
    with c.sessions() as s, s.begin():
        loyalty.account_id(s, shop_id, "d", NOW)
        for title, kind, value, cost, enabled in (("$5", "amount", "5", 500, True), ("$3", "amount", "3", 200, True),
                                                  ("$10", "amount", "10", 100, False), ("10%", "percent", "10", 100, True),
                                                  ("Ship", "free_shipping", None, 50, True)):
            rewards.add_reward(s, shop_id, title, kind, Decimal(value) if value else None, cost, NOW, enabled=enabled)
    number = iter(range(1001, 2000))
    for customer, payments in (("a", ["paid", "paid", "refunded"]), ("b", ["paid"]), ("c_", ["paid", "pending"]),
                               ("d", ["paid", "refunded"]), ("f", ["paid"]), ("g", ["partially_refunded", "paid"]),
                               (None, ["paid", "paid"])):
        for payment in payments:
            order(c, shop_id, next(number), customer, payment)
    order(c, shop_id, next(number), "b", "paid", cancelled=True)


def test_figures_on_a_hand_built_dataset(container: Container, shop: int) -> None:
    dataset(container, shop)
    other = add_shop(container, "shop-b.myshopify.com")  # another shop's rows count for nothing here
    post(container, other, "a", 5, (9999, A, Reason.ACTION))
    order(container, other, 1, "a")
    order(container, other, 2, "a")
    with container.sessions() as s:
        f = lf.figures(s, shop, "USD", NOW)
    assert f.members == 4  # a, b, c_, e: d's account has no entry
    assert (f.available, f.pending, f.outstanding) == (575, 300, 875)  # a 300 + b 250 + c_ 0 (-150) + e 25
    assert f.point_value == Decimal(3) / Decimal(200)  # $3 for 200 points beats $5 for 500; $10 is switched off
    assert f.liability == Decimal("13.13")  # 875 x 0.015 = 13.125, rounded half up to cents
    # Earned in 90 days: b 400 + 250 - 100, c_ -150 = 400; redeemed: a 200 + 100 - 100 = 200.
    assert (f.redemption_recent.part, f.redemption_recent.whole, f.redemption_recent.rate) == (200, 400, Decimal("0.5"))
    # All time: earned a 1000 + b 550 + c_ 50 = 1600; redeemed a 700 + c_ 200 = 900: 56.25%.
    assert (f.redemption_all.part, f.redemption_all.whole) == (900, 1600)
    assert f.redemption_all.data()["percent"] == "56.3"
    # Members who bought: a (3 paid), b (1 paid, 1 cancelled), c_ (1 paid, 1 unpaid); others: d (2), f (1), g (2).
    assert (f.repeat_members.part, f.repeat_members.whole) == (1, 3)
    assert (f.repeat_others.part, f.repeat_others.whole) == (2, 3)
    assert f.mismatches == 0
    with container.sessions() as s, s.begin():
        s.execute(update(t.LoyaltyAccount).where(t.LoyaltyAccount.customer_external_id == "e")
                  .values(available=26))
    with container.sessions() as s:
        assert lf.figures(s, shop, "USD", NOW).mismatches == 1


def test_figures_of_an_empty_program(container: Container, shop: int) -> None:
    with container.sessions() as s:
        f = lf.figures(s, shop, "USD", NOW)
    assert (f.members, f.outstanding, f.point_value, f.liability, f.mismatches) == (0, 0, None, None, 0)
    assert f.redemption_all.rate is None and f.repeat_members.data() == {"part": 0, "whole": 0, "percent": None}
    assert lf.money(1001, Decimal(1), 100, "JPY") == Decimal(10)  # yen have no minor unit


def test_the_figures_route_formats_money_in_the_admins_locale(client: FlaskClient, container: Container, shop: int,
                                                               h: dict[str, str]) -> None:
    dataset(container, shop)
    data = client.get(f"{API}/figures?locale=en-US", headers=h).get_json()
    assert {k: data[k] for k in ("members", "available", "pending", "outstanding", "point_value", "point_value_text",
                                 "liability", "liability_text", "mismatches", "locale")} == {
        "members": 4, "available": 575, "pending": 300, "outstanding": 875, "point_value": "0.015",
        "point_value_text": "$0.015", "liability": "13.13", "liability_text": "$13.13", "mismatches": 0,
        "locale": "en"}
    assert data["redemption"] == {"days": 90, "recent": {"part": 200, "whole": 400, "percent": "50.0"},
                                  "all": {"part": 900, "whole": 1600, "percent": "56.3"}}
    assert data["repeat"] == {"members": {"part": 1, "whole": 3, "percent": "33.3"},
                              "others": {"part": 2, "whole": 3, "percent": "66.7"}}
    assert client.get(f"{API}/figures?locale=ko", headers=h).get_json()["liability_text"] == "US$13.13"
    with container.sessions() as s, s.begin():
        s.execute(update(t.Shop).where(t.Shop.id == shop).values(locale="ja"))
    assert client.get(f"{API}/figures", headers=h).get_json()["locale"] == "ja"


# --- the page's catalog ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LOCALES)
def test_the_pages_catalog_is_complete_in_every_language(language: str) -> None:
    wanted = page_msgids(templates=["admin_page.html", "loyalty.html"],
                         extra=[p.label for p in NAV if p.domain == "loyalty_admin"])  # the admin header's link here
    assert len(wanted) > 100 and {"Loyalty", "Adjusted by {points} points. Available now: {available}."} <= wanted
    assert_catalog_complete("loyalty_admin", wanted, language, untranslated=2)  # "Encore pages" etc.


def test_nothing_is_counted_twice_in_the_members_query(container: Container, shop: int) -> None:
    post(container, shop, "a", 1, (5, A, Reason.ACTION), (6, A, Reason.BONUS))
    with container.sessions() as s:
        assert lf.members(s, shop) == 1
        assert int(s.scalar(select(func.count()).select_from(t.LedgerEntry)) or 0) == 2
