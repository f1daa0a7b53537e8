"""The storefront widget's API behind Shopify's app proxy: a signed request for the logged-in customer shows
their points, tier, rewards, codes and history and redeems a reward (the code written into the store); a bad,
stale or unsigned request is 401 and changes nothing; a shop without Encore is 404; nobody logged in is 401;
a redemption the balance cannot pay, a reward that is off, or a malformed one are refused with a message; the
same click sent twice is one redemption."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from app import loyalty, rewards, storefront, tiers
from app.bootstrap import Container
from app.core.loyalty import Account, Balance, Entry, Posting, Reason
from app.core.tiers import Tier
from app.db import models as t
from connectors.shopify.proxy import sign
from tests.conftest import API_SECRET
from tests.fakes import FakeStorePlatform
from tests.helpers import add_shop

SHOP = "shop-a.myshopify.com"


def signed(customer: str | None = "7001", *, secret: str = API_SECRET, age: float = 0, shop: str = SHOP,
           **extra: str) -> str:
    params = [("shop", shop), ("logged_in_customer_id", customer or ""), ("path_prefix", "/apps/encore"),
              ("timestamp", str(int(time.time() - age))), *extra.items()]
    return urlencode([*params, ("signature", sign(params, secret))])


@pytest.fixture
def shop(container: Container) -> Iterator[dict[str, int]]:
    shop_id = add_shop(container)
    now = datetime.now(UTC)
    with container.sessions() as s, s.begin():
        loyalty.switch_on(s, shop_id, now - timedelta(days=1))
        tiers.set_tiers(s, shop_id, [Tier("member", "Member", Decimal("0")),
                                     Tier("gold", "Gold", Decimal("500"), Decimal("2"), ("Free shipping",))], now)
        s.add(t.Customer(shop_id=shop_id, external_id="7001", email="mina@example.com", external_updated_at=now))
        loyalty.post(s, shop_id, "7001", [Posting(Entry(400, Balance.AVAILABLE, Reason.ACTION, "signup"))], now)
        five = rewards.add_reward(s, shop_id, "$5 off", "amount", Decimal("5"), 300, now)
        ten = rewards.add_reward(s, shop_id, "$10 off", "amount", Decimal("10"), 600, now)
        off = rewards.add_reward(s, shop_id, "Old", "percent", Decimal("5"), 10, now, enabled=False)
    yield {"id": shop_id, "five": five, "ten": ten, "off": off}


def entries(c: Container) -> int:
    with c.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(t.LedgerEntry)) or 0)


def test_the_logged_in_shopper_sees_points_tier_rewards_and_history(
        client: FlaskClient, shop: dict[str, int]) -> None:
    got = client.get(f"/proxy/loyalty?{signed()}")
    assert got.status_code == 200
    body: dict[str, Any] = got.get_json()
    assert body["points"] == {"available": 400, "pending": 0} and body["currency"] == "USD"
    assert [(r["title"], r["cost"], r["affordable"]) for r in body["rewards"]] == [("$5 off", 300, True),
                                                                                   ("$10 off", 600, False)]
    assert body["tier"]["next"] == {"key": "gold", "name": "Gold", "remaining": "500"}
    assert [(h["points"], h["reason"]) for h in body["history"]] == [(400, "action")]


def test_redeeming_writes_the_code_and_the_same_click_twice_is_one_redemption(
        client: FlaskClient, container: Container, shop: dict[str, int], store: FakeStorePlatform) -> None:
    click = {"reward_id": shop["five"], "request_key": "click-0001"}
    first = client.post(f"/proxy/loyalty/redeem?{signed()}", json=click)
    assert first.status_code == 201
    code = first.get_json()["code"]
    assert store.discounts[code.lower()].request.customer_id == "7001"
    again = client.post(f"/proxy/loyalty/redeem?{signed()}", json=click)
    assert again.status_code == 200 and again.get_json() == {"code": code, "status": "issued", "points": 300,
                                                             "already": True}
    with container.sessions() as s:
        assert loyalty.balance(s, shop["id"], "7001") == Account(100, 0)
    assert [c["code"] for c in client.get(f"/proxy/loyalty?{signed()}").get_json()["codes"]] == [code]


@pytest.mark.parametrize(("body", "status", "error"), [
    ({"reward_id": "ten", "request_key": "click-0002"}, 400, "bad_request"),
    ({"reward_id": 1, "request_key": "x"}, 400, "bad_request"),
    ("ten", 422, "not_enough_points"),
    ("off", 404, "no_such_reward"),
    (999_999, 404, "no_such_reward"),
])
def test_refused_redemptions_say_why_and_change_nothing(
        client: FlaskClient, container: Container, shop: dict[str, int], store: FakeStorePlatform,
        body: Any, status: int, error: str) -> None:
    if not isinstance(body, dict):
        body = {"reward_id": shop.get(body, body) if isinstance(body, str) else body, "request_key": "click-0003"}
    before = entries(container)
    got = client.post(f"/proxy/loyalty/redeem?{signed()}", json=body)
    assert (got.status_code, got.get_json()["error"]) == (status, error) and got.get_json()["message"]
    assert entries(container) == before and store.discounts == {}


@pytest.mark.parametrize(("query", "status", "error"), [
    (lambda: signed(secret="not-the-apps-secret"), 401, "unauthorized"),
    (lambda: signed(age=600), 401, "unauthorized"),
    (lambda: signed().replace("logged_in_customer_id=7001", "logged_in_customer_id=7002"), 401, "unauthorized"),
    (lambda: "shop=shop-a.myshopify.com&logged_in_customer_id=7001", 401, "unauthorized"),
    (lambda: signed(customer=None), 401, "log_in"),
    (lambda: signed(shop="nobody.myshopify.com"), 404, "unknown_shop"),
])
def test_requests_not_from_the_store_or_for_nobody_are_refused(
        client: FlaskClient, container: Container, shop: dict[str, int], store: FakeStorePlatform,
        query: Any, status: int, error: str) -> None:
    before = entries(container)
    for got in (client.get(f"/proxy/loyalty?{query()}"),
                client.post(f"/proxy/loyalty/redeem?{query()}", json={"reward_id": shop["five"],
                                                                        "request_key": "click-0004"})):
        assert (got.status_code, got.get_json()["error"]) == (status, error)
    assert entries(container) == before and store.discounts == {}


@pytest.mark.parametrize(("locale", "language", "title", "redeem"), [
    ("ko-KR", "ko", "나의 리워드", "교환하기"),
    ("ja", "ja", "あなたの特典", "交換する"),
    ("en-US", "en", "Your rewards", "Redeem"),
    (None, "en", "Your rewards", "Redeem"),
    ("fr", "en", "Your rewards", "Redeem"),  # a language without a catalog falls back to English
])
def test_the_widgets_labels_come_in_the_shoppers_language(
        client: FlaskClient, shop: dict[str, int], locale: str | None, language: str, title: str, redeem: str) -> None:
    query = signed(**({"locale": locale} if locale else {}))
    body: dict[str, Any] = client.get(f"/proxy/loyalty?{query}").get_json()
    assert body["locale"] == language and body["points"]["available"] == 400
    assert (body["labels"]["title"], body["labels"]["redeem"]) == (title, redeem)
    assert set(body["labels"]) == set(storefront.LABELS)


def test_nobody_logged_in_is_asked_to_log_in_in_their_language(client: FlaskClient, shop: dict[str, int]) -> None:
    got = client.get(f"/proxy/loyalty?{signed(customer=None, locale='ja')}")
    body: dict[str, Any] = got.get_json()
    assert (got.status_code, body["error"], body["locale"]) == (401, "log_in", "ja")
    assert body["message"] == body["labels"]["log_in"] == "ログインしてポイントを確認"
    assert "points" not in body and "rewards" not in body  # nothing of anybody's account


def test_a_refusal_says_why_in_the_shoppers_language(
        client: FlaskClient, container: Container, shop: dict[str, int], store: FakeStorePlatform) -> None:
    got = client.post(f"/proxy/loyalty/redeem?{signed(locale='ko')}",
                      json={"reward_id": shop["ten"], "request_key": "click-0005"})
    assert (got.status_code, got.get_json()) == (422, {"error": "not_enough_points",
                                                       "message": "이 리워드를 교환하기에 포인트가 부족합니다."})
    with container.sessions() as s:
        assert loyalty.balance(s, shop["id"], "7001") == Account(400, 0)


def test_the_widget_shows_badges_streak_and_stamp_card_in_the_shoppers_language(
        client: FlaskClient, container: Container, shop: dict[str, int]) -> None:
    from app import badges

    now = datetime.now(UTC)
    with container.sessions() as s, s.begin():
        program = s.scalar(select(t.LoyaltyProgramRow).where(t.LoyaltyProgramRow.shop_id == shop["id"]))
        assert program is not None
        program.stamp_every, program.stamp_reward_id = 5, shop["five"]
        badges.award(s, shop["id"], "7001", "first_review", now)
    body: dict[str, Any] = client.get(f"/proxy/loyalty?{signed(locale='ja')}").get_json()
    assert body["stamp"] == {"every": 5, "stamps": 0, "reward": "$5 off", "cards_filled": 0}
    assert body["streak"] == {"months": 0, "best": 0}
    reviewer = next(b for b in body["badges"] if b["key"] == "first_review")
    assert reviewer["name"] == "レビュアー" and reviewer["earned_at"] is not None
    assert all(b["earned_at"] is None for b in body["badges"] if b["key"] != "first_review")

    with container.sessions() as s, s.begin():
        program = s.scalar(select(t.LoyaltyProgramRow).where(t.LoyaltyProgramRow.shop_id == shop["id"]))
        assert program is not None
        program.badges_enabled, program.stamp_every = False, None
    body = client.get(f"/proxy/loyalty?{signed()}").get_json()
    assert body["badges"] is None and body["streak"] is None and body["stamp"] is None


def test_the_launchers_balance_read_gives_points_tier_and_labels_in_one_statement(
        client: FlaskClient, container: Container, shop: dict[str, int]) -> None:
    from sqlalchemy import event

    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engines = {id(e): e for e in (container.engine, container.intake)}.values()  # one engine on SQLite
    for engine in engines:
        event.listen(engine, "before_cursor_execute", seen)
    try:
        got = client.get(f"/proxy/loyalty/balance?{signed(locale='ko')}")
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", seen)
    assert got.status_code == 200
    body: dict[str, Any] = got.get_json()
    assert body["points"] == {"available": 400, "pending": 0} and body["enabled"] is True and body["locale"] == "ko"
    assert body["tier"] is None  # not evaluated into a tier yet
    assert body["labels"] == storefront.labels("ko") and body["labels"]["launcher"] == "리워드"
    assert len([x for x in statements if "loyalty_accounts" in x]) == 1

    with container.sessions() as s, s.begin():
        s.execute(update(t.LoyaltyAccount).where(t.LoyaltyAccount.customer_external_id == "7001").values(tier="gold"))
    assert client.get(f"/proxy/loyalty/balance?{signed()}").get_json()["tier"] == "Gold"
    fresh = client.get(f"/proxy/loyalty/balance?{signed('7999')}").get_json()  # no account yet
    assert fresh["points"] == {"available": 0, "pending": 0} and fresh["tier"] is None

    logged_out = client.get(f"/proxy/loyalty/balance?{signed(None, locale='ja')}")
    assert logged_out.status_code == 401 and logged_out.get_json()["labels"]["launcher"] == storefront.labels("ja")[
        "launcher"]
    assert client.get(f"/proxy/loyalty/balance?{signed(secret='forged')}").status_code == 401
    with container.sessions() as s, s.begin():
        s.execute(update(t.LoyaltyProgramRow).values(enabled=False))
    assert client.get(f"/proxy/loyalty/balance?{signed()}").get_json()["enabled"] is False
