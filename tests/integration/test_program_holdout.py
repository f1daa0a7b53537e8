"""The programs' holdouts, through the real handlers and database: a customer in the loyalty program's holdout
earns no points, stamps, badges or tier and the widget tells them the program is not available to them; one in
the referral program's holdout gets no code or link; each stays in their group whatever happens; and the share is
set through both admin APIs, from 0 to 50, a wrong one refused with nothing changed."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app import loyalty, referrals, rewards, storefront, tiers
from app.bootstrap import Container
from app.core import commands as cmd
from app.core import lift
from app.core.loyalty import Account
from app.core.tiers import Tier
from app.db import models as t
from app.web.auth import issue_admin_token
from tests.integration.test_storefront_proxy import signed
from tests.journeys import T0, Clock, customer, journey_shop, observe, order

DOMAIN = "shop-a.myshopify.com"


def split(shop_id: int, program: str, percent: int = 50) -> tuple[str, str]:
    """A customer the program holds out at `percent`, and one it does not."""
    ids = [str(700 + i) for i in range(100)]
    return (next(c for c in ids if lift.held_out(shop_id, program, c, percent)),
            next(c for c in ids if not lift.held_out(shop_id, program, c, percent)))


@pytest.fixture
def shop(container: Container) -> int:
    """A program with sign-up and survey points, a stamp card every 2 orders, an entry tier everyone reaches, and
    half the customers held out."""
    shop_id = journey_shop(container, frozenset())
    with container.sessions() as s, s.begin():
        loyalty.switch_on(s, shop_id, T0 - timedelta(days=1), actions={"signup": 50, "survey": 20})
        card = rewards.add_reward(s, shop_id, "Free coffee", "amount", Decimal("5"), 100, T0)
        loyalty.update_program(s, shop_id, {"holdout_percent": 50, "stamp_every": 2, "stamp_reward_id": card}, T0)
        tiers.set_tiers(s, shop_id, [Tier("member", "Member", Decimal("0"))], T0)
    return shop_id


def pay(c: Container, shop_id: int, oid: str, cid: str, hours: int = 0) -> None:
    at = T0 + timedelta(hours=hours)
    observe(c, Clock(at), shop_id, cmd.ObserveOrder(shop_id, order(oid, cid, at), customer(cid)))


def count(c: Container, model: Any, customer_id: str) -> int:
    with c.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(model.customer_external_id == customer_id))
                   or 0)


def test_a_held_out_customer_earns_nothing_at_all_and_stays_held_out(container: Container, shop: int) -> None:
    c = container
    held, treated = split(shop, lift.LOYALTY)
    for n, who in enumerate((held, treated, held, treated)):
        pay(c, shop, f"10{n}", who, hours=n)
    with c.sessions() as s, s.begin():
        assert loyalty.balance(s, shop, treated) == Account(0, 2 * 33)  # two orders of $33.00 at 1 point per $1
        assert loyalty.balance(s, shop, held) == Account(0, 0)
        assert loyalty.award_action(s, shop, treated, "survey", "m1", T0) == 20
        assert loyalty.award_action(s, shop, held, "survey", "m2", T0) == 0
        tier = {a.customer_external_id: a.tier for a in s.scalars(select(t.LoyaltyAccount))}
    assert tier.get(treated) == "member" and tier.get(held) is None
    assert count(c, t.Stamp, treated) == 2 and count(c, t.Stamp, held) == 0
    assert count(c, t.Redemption, treated) == 1 and count(c, t.Redemption, held) == 0  # the full card's reward
    assert count(c, t.CustomerBadge, treated) > 0 and count(c, t.CustomerBadge, held) == 0
    with c.sessions() as s:
        assert loyalty.mismatches(s) == []
        held_entries = s.scalar(select(func.count()).select_from(t.LedgerEntry).join(
            t.LoyaltyAccount, t.LoyaltyAccount.id == t.LedgerEntry.account_id)
            .where(t.LoyaltyAccount.customer_external_id == held))
    assert held_entries == 0


def test_the_widget_tells_a_held_out_customer_the_program_is_not_available(
        client: FlaskClient, container: Container, shop: int) -> None:
    c = container
    held, treated = split(shop, lift.LOYALTY)
    pay(c, shop, "1001", treated)
    assert storefront.balance(c, shop, held) == {"enabled": True, "held_out": True}
    assert storefront.widget(c, shop, held, T0) == {"enabled": True, "held_out": True, "currency": "USD",
                                                    "referral": None}
    assert storefront.widget(c, shop, treated, T0)["points"] == {"available": 0, "pending": 33}
    got = client.get(f"/proxy/loyalty?{signed(held)}")
    assert got.status_code == 200 and got.json["held_out"] is True and "points" not in got.json
    assert got.json["labels"]["not_available"] == "The rewards program is not available for your account."
    korean = client.get(f"/proxy/loyalty/balance?{signed(held, locale='ko')}").json
    assert korean["held_out"] is True
    assert korean["labels"]["not_available"] == "이 계정에서는 리워드 프로그램을 이용할 수 없습니다."
    assert client.get(f"/proxy/loyalty?{signed(treated)}").json["points"]["pending"] == 33


def test_a_customer_held_out_of_referrals_gets_no_code_or_link(container: Container, shop: int) -> None:
    c = container
    with c.sessions() as s, s.begin():
        referrals.configure(s, shop, enabled=True, friend_kind="percent", friend_value=Decimal("10"),
                            friend_valid_days=30, referrer_points=500, wait_days=30, cap_per_referrer=None,
                            cap_window_days=30, holdout_percent=40, now=T0)
    held, treated = split(shop, lift.REFERRALS, 40)
    for _ in range(2):  # asked again, the same answer
        with c.sessions() as s, s.begin():
            assert referrals.widget_data(s, shop, held, "en", T0) is None
            mine = referrals.widget_data(s, shop, treated, "en", T0)
            assert mine is not None and mine["code"] in mine["link"]
    assert count(c, t.ReferralCode, held) == 0 and count(c, t.ReferralCode, treated) == 1


def _auth(c: Container, shop_id: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_admin_token(c, shop_id, DOMAIN)}"}


def _loyalty_row(c: Container, shop_id: int) -> tuple[Any, ...]:
    with c.sessions() as s:
        row = s.scalar(select(t.LoyaltyProgramRow).where(t.LoyaltyProgramRow.shop_id == shop_id))
        assert row is not None
        return row.holdout_percent, row.updated_at, row.stamp_every


def test_the_loyalty_programs_holdout_is_set_through_its_admin_api(
        client: FlaskClient, container: Container, shop: int) -> None:
    h, api = _auth(container, shop), "/api/admin/loyalty/program"
    assert client.get(api, headers=h).json["holdout_percent"] == 50
    before = _loyalty_row(container, shop)
    for wrong in (51, -1, "ten", 12.5, None):
        r = client.put(api, json={"holdout_percent": wrong, "stamp_every": 3}, headers=h)
        assert r.status_code == 400
        assert r.json["problems"] == [{"field": "holdout_percent", "message": "holdout: a whole percentage from 0 to 50"}]
        assert _loyalty_row(container, shop) == before  # the good stamp_every was not saved either
    saved = client.put(api, json={"holdout_percent": "20"}, headers=h)  # the form sends what was typed
    assert saved.status_code == 200 and saved.json["holdout_percent"] == 20
    assert client.get(api, headers=h).json["holdout_percent"] == 20 and _loyalty_row(container, shop)[0] == 20


def test_the_referral_programs_holdout_is_set_through_its_admin_api(
        client: FlaskClient, container: Container, shop: int) -> None:
    h, api = _auth(container, shop), "/api/admin/referrals/program"
    body = {"enabled": True, "friend_kind": "percent", "friend_value": "10", "friend_valid_days": 30,
            "referrer_points": 500, "wait_days": 30, "cap_per_referrer": None, "cap_window_days": 30}
    assert client.put(api, json={**body, "holdout_percent": 25}, headers=h).json["holdout_percent"] == 25
    for wrong, message in ((51, "holdout: a whole percentage from 0 to 50"), (-5, "holdout: a whole percentage"),
                           ("ten", "holdout_percent is a whole number")):
        r = client.put(api, json={**body, "wait_days": 7, "holdout_percent": wrong}, headers=h)
        assert r.status_code == 400 and r.json["error"].startswith(message)
        assert (client.get(api, headers=h).json["holdout_percent"], client.get(api, headers=h).json["wait_days"]) == (
            25, 30)
    assert client.put(api, json=body, headers=h).json["holdout_percent"] == 25  # not given: kept
    assert client.put(api, json={**body, "holdout_percent": 0}, headers=h).json["holdout_percent"] == 0
