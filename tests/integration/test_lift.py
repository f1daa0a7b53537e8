"""Proof of value on the real database (app.analytics.lift.report): synthetic histories where the true effect is
known (thousands of enrollments or customers, a fixed seed, orders placed at the rates each group was given, and
orders around them that must not count), recovered within the 95% interval; no effect, an interval holding 0;
exact counts and revenue against what was generated; attributed orders and revenue against the rows they come
from; and "not enough data yet", "no holdout", people still inside their window, and `since`."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from sqlalchemy import insert, select

from app import journeys as jr
from app import rendering
from app.analytics.lift import PROGRAM_WINDOW_DAYS, report
from app.bootstrap import Container
from app.core import lift
from app.core.journeys import Journey, enrollment_key, in_holdout, to_data
from app.db import models as t
from tests.helpers import add_shop

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CENT = Decimal("0.01")


@pytest.fixture
def shop(container: Container) -> int:
    return add_shop(container)


@dataclass
class Truth:
    """What was generated, per group (True: held out)."""

    n: Counter[bool] = field(default_factory=Counter)
    converted: Counter[bool] = field(default_factory=Counter)
    revenue: dict[bool, Decimal] = field(default_factory=lambda: {True: Decimal(0), False: Decimal(0)})
    waiting: int = 0

    def group(self, held: bool) -> dict[str, Any]:
        n, converted = self.n[held], self.converted[held]
        return {"n": n, "converted": converted, "rate": round(converted / n, 6) if n else None,
                "revenue": str(self.revenue[held].quantize(CENT))}


def order_row(shop_id: int, oid: str, customer: str | None, at: datetime, total: Decimal, *,
              refunded: Decimal = Decimal(0), cancelled: bool = False, currency: str = "USD",
              codes: str | None = None) -> dict[str, Any]:
    return {"shop_id": shop_id, "external_id": oid, "name": f"#{oid}", "customer_external_id": customer,
            "currency": currency, "subtotal": total, "total": total, "total_tax": Decimal(0),
            "total_shipping": Decimal(0), "total_discounts": Decimal(0), "refunded_amount": refunded,
            "payment_status": "paid", "status": "cancelled" if cancelled else "open", "created_at": at,
            "cancelled_at": at if cancelled else None, "discount_codes": codes, "external_updated_at": at}


def add_journey(c: Container, shop_id: int, key: str, holdout: int, days: int = 14) -> tuple[int, int, Journey]:
    journey = replace(jr.DEFAULTS[key], holdout_percent=holdout, attribution=timedelta(days=days))
    with c.sessions() as s, s.begin():
        row = t.JourneyRow(shop_id=shop_id, key=key, enabled=True, version=1)
        s.add(row)
        s.flush()
        version = t.JourneyVersion(shop_id=shop_id, journey_id=row.id, version=1, definition=to_data(journey),
                                   templates={})
        s.add(version)
        s.flush()
        return row.id, version.id, journey


def money(rng: np.random.Generator) -> Decimal:
    return Decimal(int(rng.integers(1000, 15000))) / 100


def insert_rows(c: Container, model: Any, rows: list[dict[str, Any]]) -> None:
    with c.sessions() as s, s.begin():
        for start in range(0, len(rows), 2000):
            s.execute(insert(model), rows[start:start + 2000])


def journey_history(c: Container, shop_id: int, journey_id: int, version_id: int, journey: Journey, n: int,
                    rates: dict[bool, float], seed: int, *, start: datetime = NOW - timedelta(days=60),
                    spread: timedelta = timedelta(days=30)) -> Truth:
    """`n` enrollments triggered over `spread` from `start`, split by the journey's own holdout; each converts with
    its group's rate, one or two orders inside the window (some partly refunded). Around them: the triggering
    order itself, orders before the trigger, after the window, and cancelled inside it, none of which count."""
    rng, truth = np.random.default_rng(seed), Truth()
    window = int(journey.attribution.total_seconds())
    enrollments: list[dict[str, Any]] = []
    orders: list[dict[str, Any]] = []
    for i in range(n):
        customer = f"{journey.key}-{i}"
        key = enrollment_key(journey, f"order:{customer}")
        held = in_holdout(journey, key)
        trigger = start + timedelta(seconds=int(rng.integers(0, int(spread.total_seconds()))))
        enrollments.append({"shop_id": shop_id, "journey_id": journey_id, "version_id": version_id, "key": key,
                            "trigger_type": journey.trigger, "trigger_key": f"order:{customer}", "trigger_at": trigger,
                            "customer_external_id": customer, "facts": {}, "holdout": held, "status": "active",
                            "created_at": trigger})

        def place(at: datetime, total: Decimal, who: str = customer, **kw: Any) -> None:
            orders.append(order_row(shop_id, f"{who}-{len(orders)}", who, at, total, **kw))

        if trigger + journey.attribution > NOW:
            truth.waiting += 1
            continue
        truth.n[held] += 1
        if rng.random() < 0.5:
            place(trigger, money(rng))  # the order that triggered it
        if rng.random() < 0.3:
            place(trigger - timedelta(days=int(rng.integers(1, 40))), money(rng))
        if rng.random() < 0.2:
            place(trigger + journey.attribution + timedelta(hours=int(rng.integers(1, 480))), money(rng))
        if rng.random() < 0.05:
            place(trigger + timedelta(seconds=int(rng.integers(1, window))), money(rng), cancelled=True)
        if rng.random() < rates[held]:
            truth.converted[held] += 1
            for _ in range(1 + int(rng.random() < 0.2)):
                total = money(rng)
                refunded = (total / 3).quantize(CENT) if rng.random() < 0.1 else Decimal(0)
                place(trigger + timedelta(seconds=int(rng.integers(1, window))), total, refunded=refunded)
                truth.revenue[held] += total - refunded
    insert_rows(c, t.Enrollment, enrollments)
    insert_rows(c, t.Order, orders)
    return truth


def entries(c: Container, shop_id: int, now: datetime = NOW, since: datetime | None = None) -> dict[str, Any]:
    with c.sessions() as s:
        found = report(s, shop_id, now, since)
    json.dumps(found)  # the JSON endpoint's promise: plain data only
    return {e["key"]: e for e in found}


def test_a_journeys_known_lift_is_recovered_within_its_interval(container: Container, shop: int) -> None:
    jid, vid, journey = add_journey(container, shop, "win_back", holdout=20, days=14)
    truth = journey_history(container, shop, jid, vid, journey, 6000, {False: 0.15, True: 0.10}, seed=11)
    got = entries(container, shop)["win_back"]
    assert (got["kind"], got["name"], got["window_days"], got["holdout_percent"]) == (
        "journey", rendering.journey("win_back").title, 14, 20)
    measured = got["lift"]
    assert measured["status"] == "measured" and measured["needs"] == []
    assert measured["treated"] == truth.group(False) and measured["holdout"] == truth.group(True)
    assert measured["waiting"] == truth.waiting == 0
    assert truth.n[True] > 1000 and truth.n[False] > 4000  # the hash split 6,000 about 20/80
    low, high = measured["ci95"]
    assert low <= 0.05 <= high  # the true effect: 15% against 10%
    assert abs(measured["difference"] - 0.05) < 0.03 and high - low < 0.06
    rates = measured["treated"]["rate"], measured["holdout"]["rate"]
    assert measured["difference"] == pytest.approx(rates[0] - rates[1], abs=1e-6)
    assert measured["relative"] == pytest.approx((rates[0] - rates[1]) / rates[1], abs=1e-5)
    extra = measured["incremental_orders"]
    n = truth.n[False]
    assert extra["value"] == pytest.approx(measured["difference"] * n, abs=0.01)
    assert extra["ci95"] == pytest.approx([low * n, high * n], abs=0.01)
    per_conversion = truth.revenue[False] / truth.converted[False]
    revenue = measured["incremental_revenue"]
    assert revenue["currency"] == "USD"
    assert Decimal(revenue["value"]) == pytest.approx(per_conversion * Decimal(str(extra["value"])), abs=Decimal("1"))
    assert Decimal(revenue["ci95"][0]) < Decimal(revenue["value"]) < Decimal(revenue["ci95"][1])


def test_a_journey_with_no_effect_has_an_interval_holding_zero(container: Container, shop: int) -> None:
    jid, vid, journey = add_journey(container, shop, "birthday", holdout=30, days=7)
    truth = journey_history(container, shop, jid, vid, journey, 5000, {False: 0.12, True: 0.12}, seed=12)
    measured = entries(container, shop)["birthday"]["lift"]
    assert measured["treated"] == truth.group(False) and measured["holdout"] == truth.group(True)
    assert measured["status"] == "measured" and measured["ci95"][0] <= 0 <= measured["ci95"][1]


def test_people_inside_their_window_wait_and_since_leaves_earlier_ones_out(container: Container, shop: int) -> None:
    jid, vid, journey = add_journey(container, shop, "anniversary", holdout=50, days=10)
    early = journey_history(container, shop, jid, vid, journey, 300, {False: 0.5, True: 0.5}, seed=13,
                            start=NOW - timedelta(days=200), spread=timedelta(days=50))
    late = journey_history(container, shop, jid, vid, replace(journey, key="anniv2"), 400, {False: 0.4, True: 0.2},
                           seed=14, start=NOW - timedelta(days=20), spread=timedelta(days=20))
    assert late.waiting > 100 and late.n[True] > 50  # about half of them are still inside their window
    everything = entries(container, shop)["anniversary"]["lift"]
    assert everything["waiting"] == late.waiting
    for held, name in ((False, "treated"), (True, "holdout")):
        assert everything[name]["n"] == early.n[held] + late.n[held]
        assert everything[name]["converted"] == early.converted[held] + late.converted[held]
    since = entries(container, shop, since=NOW - timedelta(days=21))["anniversary"]["lift"]
    assert since["treated"] == late.group(False) and since["holdout"] == late.group(True)
    # A month later everyone's window has ended: nobody waits any more.
    assert entries(container, shop, NOW + timedelta(days=30))["anniversary"]["lift"]["waiting"] == 0


def test_a_small_journey_is_not_enough_data_and_one_without_holdout_gives_no_number(
        container: Container, shop: int) -> None:
    jid, vid, journey = add_journey(container, shop, "survey", holdout=50)
    small = journey_history(container, shop, jid, vid, journey, 60, {False: 0.3, True: 0.3}, seed=15)
    jid, vid, journey = add_journey(container, shop, "thank_you", holdout=0)
    whole = journey_history(container, shop, jid, vid, journey, 800, {False: 0.2, True: 0.2}, seed=16)
    got = entries(container, shop)
    few = got["survey"]["lift"]
    assert few["status"] == "not_enough_data"
    assert few["needs"] == [{"group": "treated", "measure": "size", "have": small.n[False], "need": 100},
                            {"group": "holdout", "measure": "size", "have": small.n[True], "need": 100}]
    none = got["thank_you"]["lift"]
    assert none["status"] == "no_holdout" and none["needs"] == []
    assert none["treated"] == whole.group(False) and none["holdout"]["n"] == 0 and none["holdout"]["rate"] is None
    for verdict in (few, none):
        assert all(verdict[k] is None for k in ("difference", "ci95", "relative", "incremental_orders",
                                                "incremental_revenue"))


def test_attributed_orders_and_revenue_are_the_attribution_rows(container: Container, shop: int) -> None:
    c = container
    cart, cart_version, _ = add_journey(c, shop, "abandoned_cart", holdout=10, days=3)
    thanks, thanks_version, _ = add_journey(c, shop, "thank_you", holdout=0)
    given = [(cart, "USD", "12.50", 40), (cart, "USD", "30.00", 20), (cart, "USD", "7.25", 5), (cart, "EUR", "9.99", 4),
             (thanks, "USD", "100.00", 10)]
    with c.sessions() as s, s.begin():
        for i, (jid, currency, revenue, days_ago) in enumerate(given):
            version = cart_version if jid == cart else thanks_version
            e = t.Enrollment(shop_id=shop, journey_id=jid, version_id=version, key=f"k{i}", trigger_type="x",
                             trigger_key=f"k{i}", trigger_at=NOW - timedelta(days=days_ago), customer_external_id=f"a{i}",
                             facts={}, created_at=NOW - timedelta(days=days_ago))
            s.add(e)
            s.flush()
            m = t.Message(shop_id=shop, enrollment_id=e.id, journey_id=jid, step="message", key=f"k{i}:message",
                          category="marketing", channel="email", status="sent", created_at=e.created_at)
            s.add(m)
            s.flush()
            s.add(t.Attribution(shop_id=shop, order_external_id=f"o{i}", message_id=m.id, journey_id=jid, via="code",
                                revenue=Decimal(revenue), currency=currency, at=NOW - timedelta(days=days_ago)))

    def expected(jid: int, since: datetime | None) -> dict[str, Any]:
        with c.sessions() as s:
            rows = s.execute(select(t.Attribution.currency, t.Attribution.revenue, t.Attribution.at)
                             .where(t.Attribution.journey_id == jid)).all()
        kept = [r for r in rows if since is None or r.at >= since]
        usd = sum((r.revenue for r in kept if r.currency == "USD"), Decimal(0))
        others = [{"currency": r.currency, "amount": str(r.revenue.quantize(CENT))} for r in kept if r.currency != "USD"]
        return {"orders": len(kept), "revenue": str(usd.quantize(CENT)), "currency": "USD", "other_currencies": others}

    for since in (None, NOW - timedelta(days=30), NOW - timedelta(days=6)):
        got = entries(c, shop, since=since)
        assert got["abandoned_cart"]["attributed"] == expected(cart, since)
        assert got["thank_you"]["attributed"] == expected(thanks, since)
    assert entries(c, shop)["abandoned_cart"]["attributed"]["orders"] == 4  # the euro order counts, not its money


# --- programs -------------------------------------------------------------------------------------------------------


def program_history(c: Container, shop_id: int, started: datetime, n: int, rates: dict[bool, float], percent: int,
                    seed: int) -> Truth:
    """`n` customers whose first order came after `started`, split by the loyalty program's holdout; each orders
    again within 90 days at their group's rate. Around them: customers from before the program, repeat orders after
    the window or cancelled, cancelled orders before the first, and customers still inside their window."""
    rng, truth = np.random.default_rng(seed), Truth()
    window = PROGRAM_WINDOW_DAYS * 86400
    orders: list[dict[str, Any]] = []
    for i in range(n):
        customer = f"m{i}"
        held = lift.held_out(shop_id, lift.LOYALTY, customer, percent)

        def place(at: datetime, total: Decimal, who: str = customer, **kw: Any) -> None:
            orders.append(order_row(shop_id, f"{who}-{len(orders)}", who, at, total, **kw))

        kind = rng.random()
        if kind < 0.05:  # a customer from before the program: never counted, whatever they do
            first = started - timedelta(days=int(rng.integers(1, 100)))
            place(first, money(rng))
            place(first + timedelta(days=5), money(rng))
            continue
        if kind < 0.10:  # too recent: their 90 days have not ended
            place(NOW - timedelta(days=int(rng.integers(1, 80))), money(rng))
            truth.waiting += 1
            continue
        first = started + timedelta(seconds=int(rng.integers(1, 200 * 86400)))
        if rng.random() < 0.05:
            place(started - timedelta(days=3), money(rng), cancelled=True)  # not their first order: it was cancelled
        place(first, money(rng))
        truth.n[held] += 1
        if rng.random() < 0.2:
            place(first + timedelta(days=PROGRAM_WINDOW_DAYS, hours=int(rng.integers(1, 2000))), money(rng))
        if rng.random() < 0.05:
            place(first + timedelta(seconds=int(rng.integers(1, window))), money(rng), cancelled=True)
        if rng.random() < rates[held]:
            truth.converted[held] += 1
            total = money(rng)
            place(first + timedelta(seconds=int(rng.integers(1, window))), total)
            truth.revenue[held] += total
    insert_rows(c, t.Order, orders)
    return truth


def test_a_programs_known_lift_is_recovered_and_an_unrelated_split_shows_none(container: Container, shop: int) -> None:
    started = NOW - timedelta(days=400)
    with container.sessions() as s, s.begin():
        s.add(t.LoyaltyProgramRow(shop_id=shop, enabled=True, started_at=started, holdout_percent=20))
        s.add(t.ReferralProgramRow(shop_id=shop, enabled=True, holdout_percent=30, created_at=started))
    truth = program_history(container, shop, started, 6000, {False: 0.30, True: 0.20}, 20, seed=21)
    got = entries(container, shop)
    loyalty = got["loyalty"]
    assert (loyalty["kind"], loyalty["window_days"], loyalty["holdout_percent"]) == ("program", 90, 20)
    measured = loyalty["lift"]
    assert measured["treated"] == truth.group(False) and measured["holdout"] == truth.group(True)
    assert measured["waiting"] == truth.waiting > 0
    assert measured["status"] == "measured" and measured["ci95"][0] <= 0.10 <= measured["ci95"][1]
    assert abs(measured["difference"] - 0.10) < 0.04
    # The referral program's holdout is drawn independently of the loyalty program's, and the orders above depend
    # only on the loyalty group: split by the referral holdout, the true difference is 0.
    referrals = got["referrals"]["lift"]
    assert referrals["treated"]["n"] + referrals["holdout"]["n"] == truth.n[False] + truth.n[True]
    assert referrals["status"] == "measured" and referrals["ci95"][0] <= 0 <= referrals["ci95"][1]


def test_a_program_without_holdout_gives_no_lift(container: Container, shop: int) -> None:
    started = NOW - timedelta(days=400)
    with container.sessions() as s, s.begin():
        s.add(t.LoyaltyProgramRow(shop_id=shop, enabled=True, started_at=started))
    program_history(container, shop, started, 300, {False: 0.3, True: 0.3}, 0, seed=22)
    measured = entries(container, shop)["loyalty"]["lift"]
    assert measured["status"] == "no_holdout" and measured["holdout"]["n"] == 0 and measured["ci95"] is None
    assert "referrals" not in entries(container, shop)  # no referral program set up


def test_loyalty_attributed_orders_used_a_reward_code(container: Container, shop: int) -> None:
    c, day = container, timedelta(days=1)
    with c.sessions() as s, s.begin():
        s.add(t.LoyaltyProgramRow(shop_id=shop, enabled=True, started_at=NOW - 100 * day))
        reward = t.Reward(shop_id=shop, title="$5 off", kind="amount", value=Decimal(5), cost=500)
        s.add(reward)
        s.flush()
        for customer, code, key in (("a", "ENC-AAAA1111", "widget:a:1"), ("b", "ENC-BBBB2222", "widget:b:1"),
                                    ("c", "ENC-RRRR3333", "referral:9")):
            s.add(t.Redemption(shop_id=shop, customer_external_id=customer, reward_id=reward.id, request_key=key,
                               points=500, code=code, status="issued", expires_at=NOW + 90 * day,
                               created_at=NOW - 50 * day, updated_at=NOW - 50 * day))
    rows = [order_row(shop, "1", "a", NOW - 40 * day, Decimal("45.00"), codes="enc-aaaa1111,welcome10"),  # counts
            order_row(shop, "2", "b", NOW - 30 * day, Decimal("20.50"), codes="enc-bbbb2222"),  # counts
            order_row(shop, "3", "b", NOW - 29 * day, Decimal("99.00"), codes="enc-bbbb2222", cancelled=True),
            order_row(shop, "4", "c", NOW - 20 * day, Decimal("60.00"), codes="enc-rrrr3333"),  # a referral reward
            order_row(shop, "5", "a", NOW - 20 * day, Decimal("10.00"), codes="enc-aaaa11112"),  # another code
            order_row(shop, "6", "a", NOW - 60 * day, Decimal("10.00"), codes="enc-aaaa1111"),  # before it was bought
            order_row(shop, "7", "b", NOW - 10 * day, Decimal("15.00"), codes="welcome10"),
            order_row(shop, "8", "a", NOW - 5 * day, Decimal("8.00"), codes="enc-aaaa1111", currency="EUR")]
    insert_rows(c, t.Order, rows)
    assert entries(c, shop)["loyalty"]["attributed"] == {"orders": 3, "revenue": "65.50", "currency": "USD",
                                                         "other_currencies": []}
    assert entries(c, shop, since=NOW - 35 * day)["loyalty"]["attributed"]["orders"] == 2


def test_referral_attributed_orders_are_friends_genuine_first_orders(container: Container, shop: int) -> None:
    c = container
    rows = [order_row(shop, f"o{i}", f"f{i}", NOW - timedelta(days=10 + i), Decimal(total))
            for i, total in enumerate(("30.00", "45.25", "80.00", "12.00"))]
    insert_rows(c, t.Order, rows)
    with c.sessions() as s, s.begin():
        s.add(t.ReferralProgramRow(shop_id=shop, enabled=True, created_at=NOW - timedelta(days=100)))
        for i, status in enumerate(("ordered", "rewarded", "blocked", "void", "invited")):
            s.add(t.Referral(shop_id=shop, referrer_external_id="r1", referral_code="ABCDEFGH",
                             friend_email=f"f{i}@example.com", friend_code=f"REF-{i}", friend_code_status="issued",
                             order_external_id=f"o{i}" if status != "invited" else None, status=status,
                             created_at=NOW - timedelta(days=20), updated_at=NOW - timedelta(days=20)))
    assert entries(c, shop)["referrals"]["attributed"] == {"orders": 2, "revenue": "75.25", "currency": "USD",
                                                           "other_currencies": []}
