"""What targets segments, on the real database: a journey step with a segment (or tier) condition sent by the
dispatcher only to members as they are when it comes due, the simulation agreeing, the journeys API setting the
condition and refusing unknown segments; a reward limited to a segment refused to a non-member with nothing
changed, hidden from their storefront panel and refused there in their language; the loyalty admin's reward
editor choosing a segment (another shop's refused); and a targeted segment that cannot be deleted."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app import journeys as jr
from app import loyalty, rewards, segments
from app import simulate as sim
from app.bootstrap import Container
from app.channels.outbox import OutboxChannel
from app.core import commands as cmd
from app.core.journeys import Condition
from app.core.loyalty import Account, Balance, Entry, Posting, Reason
from app.db import models as t
from app.dispatch import Dispatcher
from app.web.auth import issue_admin_token
from connectors.shopify.proxy import sign
from tests.conftest import API_SECRET
from tests.fakes import FakeStorePlatform
from tests.helpers import add_shop
from tests.journeys import T0, Clock, customer, journey_shop, messages, observe, order, read_outbox

SPENDERS = {"rules": [{"field": "total_spent", "op": ">=", "value": "100"}]}


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def shop(container: Container) -> int:
    return journey_shop(container, frozenset({"thank_you"}))


@pytest.fixture
def outbox(tmp_path: Path) -> OutboxChannel:
    return OutboxChannel(tmp_path / "outbox")


@pytest.fixture
def dispatcher(container: Container, clock: Clock, outbox: OutboxChannel) -> Dispatcher:
    store = FakeStorePlatform()
    return Dispatcher(container, {"email": outbox}, platform_for=lambda _: store, now=clock.now)


def condition(c: Container, shop: int, cond: Condition) -> None:
    version = jr.live_version(c, shop, "thank_you")
    jr.save_version(c, shop, "thank_you", replace(version.journey, steps=(replace(version.journey.steps[0],
                                                                                   condition=cond),)), version.templates)


def two_customers(c: Container, clock: Clock, shop: int) -> None:
    """501 spent 80 a month ago (too old to enroll anyone) and now 33 more: 113; 502 only the 33 now."""
    observe(c, clock, shop, cmd.ObserveOrder(shop, order("900", at=T0 - timedelta(days=30), total=Decimal("80")),
                                             customer()))
    observe(c, clock, shop, cmd.ObserveOrder(shop, order("1"), customer()))
    observe(c, clock, shop, cmd.ObserveOrder(shop, order("2", cid="502"), customer("502", email="ben@example.com")))


def test_a_segment_condition_sends_only_to_members_as_they_are_when_it_comes_due(
        container: Container, clock: Clock, shop: int, dispatcher: Dispatcher, outbox: OutboxChannel) -> None:
    condition(container, shop, Condition(any_segment=frozenset({"spenders"})))
    with container.sessions() as s, s.begin():
        segments.create(s, shop, "spenders", "Spenders", SPENDERS, T0)  # nobody has spent 100 yet
    two_customers(container, clock, shop)
    with container.sessions() as s, s.begin():  # the nightly refresh, before the messages come due
        assert segments.refresh_all(s, shop, T0)["spenders"] == 1
    assert dispatcher.run_once().sent == 1
    assert [(m["customer"], m["status"], m["reason"]) for m in messages(container, shop)] == [
        ("501", "sent", None), ("502", "skipped", "condition not met")]
    assert [m["To"] for m in read_outbox(outbox)] == ["ana@example.com"]


def test_a_tier_condition_reads_the_customers_tier_now(container: Container, clock: Clock, shop: int,
                                                       dispatcher: Dispatcher) -> None:
    condition(container, shop, Condition(any_tier=frozenset({"gold"})))
    two_customers(container, clock, shop)
    with container.sessions() as s, s.begin():
        s.add(t.LoyaltyAccount(shop_id=shop, customer_external_id="502", tier="gold", created_at=T0, updated_at=T0))
    dispatcher.run_once()
    assert [(m["customer"], m["status"]) for m in messages(container, shop)] == [("501", "skipped"), ("502", "sent")]


def test_the_simulation_checks_segments_as_the_dispatcher_does(container: Container, clock: Clock, shop: int) -> None:
    two_customers(container, clock, shop)
    with container.sessions() as s, s.begin():
        segments.create(s, shop, "spenders", "Spenders", SPENDERS, T0)
    condition(container, shop, Condition(any_segment=frozenset({"spenders"})))
    found = sim.simulate(container, shop, "thank_you", days=7, now=T0 + timedelta(hours=1))
    assert sorted((r.customer_id, r.kind, r.condition) for r in found.rows) == [
        ("501", "send", True), ("502", "skipped", False)]


# --- the journeys API --------------------------------------------------------------------------------------------


def test_the_journeys_api_sets_a_segment_condition_and_refuses_unknown_ones(
        container: Container, client: FlaskClient, shop: int) -> None:
    h = {"Authorization": f"Bearer {issue_admin_token(container, shop, 'shop-a.myshopify.com')}"}
    with container.sessions() as s, s.begin():
        segments.create(s, shop, "spenders", "Spenders", SPENDERS, T0)
    step = client.get("/api/admin/journeys/thank_you", headers=h).get_json()["steps"][0]
    assert step["condition"]["segments"] == [] and step["condition"]["tiers"] == []
    wanted = {**step["condition"], "segments": ["spenders", "rfm:champions"]}

    def edit(cond: dict[str, Any]) -> dict[str, Any]:
        return {"steps": [{"key": step["key"], "delay": step["delay"], "channel": step["channel"], "condition": cond}]}
    saved = client.put("/api/admin/journeys/thank_you", headers=h, json=edit(wanted))
    assert saved.status_code == 200, saved.get_json()
    again = client.get("/api/admin/journeys/thank_you", headers=h).get_json()
    assert again["steps"][0]["condition"]["segments"] == ["rfm:champions", "spenders"]
    assert jr.live_version(container, shop, "thank_you").journey.steps[0].condition == Condition(
        any_segment=frozenset({"spenders", "rfm:champions"}))
    for bad, message in ((["spenders", "nope"], "segments: no segment nope in your store"),
                         ("spenders", "segments: a list of ids or handles (at most 200)")):
        refused = client.put("/api/admin/journeys/thank_you", headers=h, json=edit({**wanted, "segments": bad}))
        assert refused.status_code == 400 and message in refused.get_json()["error"]
    tiers = client.put("/api/admin/journeys/thank_you", headers=h, json=edit({**wanted, "tiers": ["gold"]}))
    assert tiers.status_code == 400 and "tiers: no tier gold in your loyalty program" in tiers.get_json()["error"]
    assert jr.live_version(container, shop, "thank_you").journey.version == again["version"]  # nothing saved


# --- rewards limited to a segment ----------------------------------------------------------------------------------

NOW = datetime.now(UTC)
SHOP = "shop-a.myshopify.com"
VIP, PLAIN = "7001", "7002"  # the app proxy names customers by Shopify's numeric ids


def signed(customer_id: str, **extra: str) -> str:
    params = [("shop", SHOP), ("logged_in_customer_id", customer_id), ("path_prefix", "/apps/encore"),
              ("timestamp", str(int(time.time()))), *extra.items()]
    return urlencode([*params, ("signature", sign(params, API_SECRET))])


@pytest.fixture
def program(container: Container, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A program with two customers of 500 points each; only VIP is in the segment 'vips' (refuses SMS), which one
    reward is limited to."""
    store = FakeStorePlatform()
    monkeypatch.setattr("app.shops.store_platform", lambda c, shop_id: store)
    shop_id = add_shop(container, SHOP)
    with container.sessions() as s, s.begin():
        loyalty.switch_on(s, shop_id, NOW - timedelta(days=1))
        s.add(t.LoyaltyTier(shop_id=shop_id, key="gold", name="Gold", threshold=Decimal(0), multiplier=Decimal(1),
                            perks=[], created_at=NOW))
        for cid in (VIP, PLAIN):
            s.add(t.Customer(shop_id=shop_id, external_id=cid, email=f"{cid}@example.com", external_updated_at=NOW,
                             accepts_sms_marketing=cid == PLAIN))
            loyalty.post(s, shop_id, cid, [Posting(Entry(500, Balance.AVAILABLE, Reason.ACTION, "signup"))], NOW)
        vips = segments.create(s, shop_id, "vips", "VIPs", {"match": "any", "rules": [
            {"field": "consent", "op": "refuses", "value": "sms"}, {"field": "tier", "op": "any", "value": ["gold"]}]}, NOW)
        limited = rewards.add_reward(s, shop_id, "VIP gift", "amount", Decimal("10"), 300, NOW, segment_id=vips.id)
        everyone = rewards.add_reward(s, shop_id, "$5 off", "amount", Decimal("5"), 200, NOW)
    return {"id": shop_id, "segment": vips.id, "limited": limited, "everyone": everyone, "store": store}


def ledger(c: Container, shop_id: int) -> tuple[int, int, dict[str, Account]]:
    with c.sessions() as s:
        return (int(s.scalar(select(func.count()).select_from(t.LedgerEntry)) or 0),
                int(s.scalar(select(func.count()).select_from(t.Redemption)) or 0),
                {cid: loyalty.balance(s, shop_id, cid) for cid in (VIP, PLAIN)})


def test_a_segment_limited_reward_is_refused_to_a_non_member_and_nothing_changes(
        container: Container, program: dict[str, Any]) -> None:
    store, shop_id = program["store"], program["id"]
    before = ledger(container, shop_id)
    with pytest.raises(rewards.NotForCustomer, match="only for the customers of one of the shop's segments"):
        rewards.redeem(container, shop_id, PLAIN, program["limited"], "plain-1", NOW, lambda _: store)
    assert ledger(container, shop_id) == before and store.discounts == {}
    got = rewards.redeem(container, shop_id, VIP, program["limited"], "vip-1", NOW, lambda _: store)
    assert got.status == "issued" and ledger(container, shop_id)[2][VIP] == Account(200, 0)
    assert rewards.redeem(container, shop_id, PLAIN, program["everyone"], "plain-2", NOW, lambda _: store).points == 200


def test_the_storefront_lists_only_the_rewards_the_shopper_may_redeem(
        client: FlaskClient, container: Container, program: dict[str, Any]) -> None:
    def titles(cid: str) -> list[str]:
        return [r["title"] for r in client.get(f"/proxy/loyalty?{signed(cid)}").get_json()["rewards"]]
    assert titles(VIP) == ["$5 off", "VIP gift"]
    assert titles(PLAIN) == ["$5 off"]
    before = ledger(container, program["id"])
    refused = client.post(f"/proxy/loyalty/redeem?{signed(PLAIN, locale='ja')}",
                          json={"reward_id": program["limited"], "request_key": "click-0001"})
    assert refused.status_code == 403
    assert refused.get_json() == {"error": "not_for_you", "message": "この特典は対象のお客様のみ交換できます。"}
    assert ledger(container, program["id"]) == before


def test_the_reward_editor_limits_a_reward_to_a_segment(client: FlaskClient, container: Container,
                                                        program: dict[str, Any]) -> None:
    h = {"Authorization": f"Bearer {issue_admin_token(container, program['id'], SHOP)}"}
    api = "/api/admin/loyalty/rewards"
    listed = client.get(api, headers=h).get_json()
    assert listed["segments"] == [{"id": program["segment"], "key": "vips", "name": "VIPs"}]
    assert {r["title"]: r["segment_id"] for r in listed["rewards"]} == {"$5 off": None, "VIP gift": program["segment"]}
    made = client.post(api, headers=h, json={"title": "Gold only", "kind": "percent", "value": "10", "cost": 50,
                                             "segment_id": program["segment"]})
    assert made.status_code == 201 and made.get_json()["segment_id"] == program["segment"]
    opened = client.put(f"{api}/{made.get_json()['id']}", headers=h, json={"segment_id": None})
    assert opened.get_json()["segment_id"] is None
    other = add_shop(container, "shop-b.myshopify.com")
    with container.sessions() as s, s.begin():
        theirs = segments.create(s, other, "theirs", "Theirs", {"rules": [{"field": "orders_count", "op": ">=",
                                                                           "value": 0}]}, NOW).id
    with container.sessions() as s:
        count = s.scalar(select(func.count()).select_from(t.Reward))
    for body in ({"title": "X", "kind": "amount", "value": "1", "cost": 5, "segment_id": theirs},
                 {"title": "X", "kind": "amount", "value": "1", "cost": 5, "segment_id": "vips"}):
        bad = client.post(api, headers=h, json=body)
        assert bad.status_code == 400 and [p["field"] for p in bad.get_json()["problems"]] == ["segment_id"]
    bad = client.put(f"{api}/{program['everyone']}", headers=h, json={"segment_id": theirs, "cost": 1})
    assert bad.status_code == 400 and bad.get_json()["problems"] == [
        {"field": "segment_id", "message": "segment: no such segment in your store"}]
    with container.sessions() as s:
        assert s.scalar(select(func.count()).select_from(t.Reward)) == count
        reward = s.get(t.Reward, program["everyone"])
        assert reward is not None and (reward.segment_id, reward.cost) == (None, 200)


def test_a_segment_a_reward_or_journey_targets_cannot_be_deleted(container: Container, program: dict[str, Any]
                                                                 ) -> None:
    shop_id = program["id"]
    with pytest.raises(segments.SegmentRefused, match="targeted by rewards 'VIP gift'"), \
            container.sessions() as s, s.begin():
        segments.remove(s, shop_id, program["segment"])
    with container.sessions() as s, s.begin():
        jr.install_defaults(s, shop_id, enabled=frozenset({"thank_you"}))
        for reward in s.scalars(select(t.Reward).where(t.Reward.shop_id == shop_id)):
            reward.segment_id = None
    condition(container, shop_id, Condition(any_segment=frozenset({"vips"})))
    with pytest.raises(segments.SegmentRefused, match="targeted by journeys thank_you"), \
            container.sessions() as s, s.begin():
        segments.remove(s, shop_id, program["segment"])
    with container.sessions() as s:
        assert segments.member_of(s, shop_id, VIP) == frozenset({"vips"})
    condition(container, shop_id, Condition())
    with container.sessions() as s, s.begin():
        segments.remove(s, shop_id, program["segment"])
    with container.sessions() as s:
        assert segments.member_of(s, shop_id, VIP) == frozenset()
        assert s.scalar(select(func.count()).select_from(t.SegmentMember)) == 0
