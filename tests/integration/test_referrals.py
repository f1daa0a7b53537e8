"""The referral program through the real handlers, database and web routes, with a fake store: a friend
claims a referral link's offer (their single-use code written into the store, the same email twice one code,
the referrer's own email refused, an unknown code still leads to the store), their first order is found by
that code, judged (self-referral by each signal, an existing customer, the referrer's cap), voided by a refund
or cancellation, and rewarded after the return window once, even by two sweeps at once; staff override a
blocked referral; a busy store is retried and then given up on. After each scenario the ledger balances."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app import loyalty, referrals, rewards
from app.bootstrap import Container
from app.core import commands as cmd
from app.core.loyalty import CODE_ALPHABET, Account
from app.core.model import PaymentStatus, Refund
from app.core.ports import DiscountRequest, StoreBusy
from app.core.referrals import ReferralError, ship_to
from app.db import models as t
from app.web.auth import issue_admin_token
from connectors.shopify.proxy import sign
from tests.conftest import API_SECRET
from tests.fakes import FakeStorePlatform
from tests.journeys import T0, Clock, customer, journey_shop, observe, order

SHOP = "shop-a.myshopify.com"
REFERRER, FRIEND = "100", "200"
HOME = ship_to("1 Main St", "", "Springfield", "12345", "US")


@pytest.fixture
def clock(container: Container, monkeypatch: pytest.MonkeyPatch) -> Clock:
    at = Clock(T0)
    monkeypatch.setattr(container, "clock", at)
    return at


def configure(c: Container, shop_id: int, **changes: Any) -> None:
    settings: dict[str, Any] = {"enabled": True, "friend_kind": "percent", "friend_value": Decimal("10"),
                                "friend_valid_days": 30, "referrer_points": 500, "wait_days": 30,
                                "cap_per_referrer": None, "cap_window_days": 30, **changes}
    with c.sessions() as s, s.begin():
        referrals.configure(s, shop_id, now=T0, **settings)


@pytest.fixture
def shop(container: Container, clock: Clock, store: FakeStorePlatform) -> int:
    """A shop with a program (10% for the friend, 500 points for the referrer after 30 days), and a referrer who
    has ordered before, to their home address."""
    shop_id = journey_shop(container, frozenset())
    configure(container, shop_id)
    observe(container, clock, shop_id, cmd.ObserveOrder(
        shop_id, order("900", REFERRER, T0 - timedelta(days=90), email="rita@example.com", ship_to=HOME),
        customer(REFERRER, email="rita@example.com", phone="+82 10-5555-0100")))
    return shop_id


def code_of(c: Container, shop_id: int, customer_id: str = REFERRER) -> str:
    with c.sessions() as s, s.begin():
        return referrals.code_for(s, shop_id, customer_id, T0)


def invite(c: Container, shop_id: int, store: Any, email: str = "fred@example.com") -> referrals.Claimed:
    return referrals.claim(c, shop_id, code_of(c, shop_id), email, T0, lambda _: store)


def friend_orders(c: Container, clock: Clock, shop_id: int, code: str, oid: str = "1001", *,
                  cid: str | None = FRIEND, email: str = "fred@example.com", phone: str | None = None,
                  address: str | None = None, **kw: Any) -> None:
    placed = order(oid, cid, T0 + timedelta(days=1), email=email, discount_codes=(code.lower(),),
                   ship_to=ship_to(address, "", "Springfield", "12345", "US") if address else None, **kw)
    buyer = customer(cid, email=email, phone=phone) if cid else None
    observe(c, clock, shop_id, cmd.ObserveOrder(shop_id, placed, buyer))


def referral(c: Container, referral_id: int) -> t.Referral:
    with c.sessions() as s:
        found = s.get(t.Referral, referral_id)
        assert found is not None
        return found


def balance(c: Container, shop_id: int, customer_id: str = REFERRER) -> Account:
    with c.sessions() as s:
        assert loyalty.mismatches(s) == []  # after every scenario: each snapshot is the sum of its entries
        return loyalty.balance(s, shop_id, customer_id)


def sweep(c: Container, store: Any, at: Any) -> int:
    return referrals.sweep(c, at, lambda _: store)


def signed(**extra: str) -> str:
    params = [("shop", SHOP), ("logged_in_customer_id", ""), ("path_prefix", "/apps/encore"),
              ("timestamp", str(int(time.time()))), *extra.items()]
    return urlencode([*params, ("signature", sign(params, API_SECRET))])


# --- the program and the codes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "message"), [
    ({"friend_value": Decimal("150")}, "a percent at most 100"),
    ({"friend_kind": "bogo"}, "the friend's offer is one of"),
    ({"referrer_points": None}, "either points or a reward"),
    ({"referrer_reward_id": 1}, "either points or a reward"),
    ({"wait_days": -1}, "the wait before the referrer's reward"),
    ({"cap_per_referrer": 0}, "the cap is a whole number"),
    ({"friend_valid_days": 0}, "valid for 1 to"),
])
def test_a_program_with_a_wrong_setting_is_refused_with_a_reason(
        container: Container, shop: int, change: dict[str, Any], message: str) -> None:
    with pytest.raises(ReferralError, match=message):
        configure(container, shop, **change)
    with container.sessions() as s:
        assert referrals.program_data(referrals.program(s, shop))["friend_value"] == "10"  # unchanged


def test_each_customer_has_one_code_and_the_widget_tells_them_both_offers(container: Container, shop: int) -> None:
    code = code_of(container, shop)
    assert code == code_of(container, shop) != code_of(container, shop, "101")
    assert len(code) == 8 and set(code) <= set(CODE_ALPHABET)
    with container.sessions() as s, s.begin():
        data = referrals.widget_data(s, shop, REFERRER, "en", T0)
        korean = referrals.widget_data(s, shop, REFERRER, "ko-KR", T0)
    assert data == {"code": code, "link": f"https://{SHOP}/apps/encore/r/{code}",
                    "friend_offer": "Give your friends 10% off their first order.",
                    "referrer_offer": "Get 500 points for each friend's first order.", "invited": 0, "rewarded": 0}
    assert korean is not None and korean["friend_offer"] == "친구에게 첫 주문 10% 할인을 선물하세요."
    configure(container, shop, enabled=False)
    with container.sessions() as s, s.begin():
        assert referrals.widget_data(s, shop, REFERRER, "en", T0) is None


def test_a_woocommerce_link_carries_the_code_as_a_query(container: Container) -> None:
    with container.sessions() as s, s.begin():
        shop = t.Shop(platform="woocommerce", domain="https://beans.example", installed_at=T0)
        s.add(shop)
        s.flush()
        assert referrals.link(shop, "ABCD2345") == "https://beans.example/?encore_ref=ABCD2345"
        assert referrals.shop_now(shop, "REF-X") == "https://beans.example/?coupon=REF-X"


# --- the friend's landing --------------------------------------------------------------------------------------


def test_a_friend_claims_the_offer_and_gets_a_single_use_code_for_their_email(
        client: FlaskClient, container: Container, shop: int, store: FakeStorePlatform) -> None:
    code = code_of(container, shop)
    page = client.get(f"/proxy/r/{code}?{signed()}")
    assert page.status_code == 200 and "Get 10% off your first order." in page.text
    got = client.post(f"/proxy/r/{code}?{signed()}", data={"email": " Fred@Example.com "})
    assert got.status_code == 200
    with container.sessions() as s:
        made = s.scalars(select(t.Referral)).one()
    assert (made.status, made.friend_email, made.friend_code_status, made.referrer_external_id) == (
        "invited", "fred@example.com", "issued", REFERRER)
    assert made.friend_code in got.text and f"https://{SHOP}/discount/{made.friend_code}" in got.text
    request: DiscountRequest = store.discounts[made.friend_code.lower()].request
    assert (request.usage_limit, request.email, request.percent_off, request.ends_at) == (
        1, "fred@example.com", Decimal("10"), T0 + timedelta(days=30))
    again = client.post(f"/proxy/r/{code}?{signed()}", data={"email": "fred@example.com"})
    assert made.friend_code in again.text and list(store.discounts) == [made.friend_code.lower()]
    with container.sessions() as s:
        assert s.scalar(select(func.count()).select_from(t.Referral)) == 1


def test_the_referrers_own_email_is_refused_politely(client: FlaskClient, container: Container, shop: int) -> None:
    got = client.post(f"/proxy/r/{code_of(container, shop)}?{signed()}", data={"email": "RITA@example.com"})
    assert got.status_code == 422 and "This is your own referral link." in got.text
    bad = client.post(f"/proxy/r/{code_of(container, shop)}?{signed()}", data={"email": "not-an-address"})
    assert bad.status_code == 422 and "Please enter a valid email address." in bad.text
    with container.sessions() as s:
        assert s.scalar(select(func.count()).select_from(t.Referral)) == 0


def test_an_unknown_code_still_leads_to_the_store_with_a_notice(client: FlaskClient, shop: int) -> None:
    page = client.get(f"/proxy/r/NOSUCH99?{signed(locale='ja')}")
    assert page.status_code == 200 and "この紹介リンクは無効ですが" in page.text
    assert f'href="https://{SHOP}"' in page.text
    posted = client.post(f"/proxy/r/NOSUCH99?{signed()}", data={"email": "fred@example.com"})
    assert posted.status_code == 200 and "This referral link is not valid" in posted.text
    assert client.get("/proxy/r/NOSUCH99?shop=x").status_code == 401  # unsigned: not from the store


class BusyStore(FakeStorePlatform):
    def __init__(self, busy: int) -> None:
        super().__init__()
        self.busy = busy

    def create_discount(self, request: DiscountRequest) -> str:
        if self.busy > 0:
            self.busy -= 1
            raise StoreBusy("503 from the store")
        return super().create_discount(request)


def test_a_busy_store_gets_the_code_later_and_one_that_stays_busy_fails_the_code(
        container: Container, shop: int) -> None:
    store = BusyStore(busy=1)
    got = invite(container, shop, store)
    assert got.status == "issuing" and got.error is not None and not store.discounts
    assert sweep(container, store, T0 + timedelta(seconds=10)) == 0  # backing off
    assert sweep(container, store, T0 + timedelta(minutes=5)) == 1
    assert referral(container, got.id).friend_code_status == "issued"
    assert list(store.discounts) == [got.friend_code.lower()]

    down = BusyStore(busy=100)
    lost = invite(container, shop, down, "gina@example.com")
    at = T0
    for _ in range(referrals.MAX_ATTEMPTS):
        at += timedelta(hours=2)
        sweep(container, down, at)
    failed = referral(container, lost.id)
    assert failed.friend_code_status == "failed" and "the store stayed unavailable" in (failed.detail or "")
    down.busy = 0  # the friend tries again later: the same code is written
    again = invite(container, shop, down, "gina@example.com")
    assert (again.id, again.friend_code, again.status) == (lost.id, lost.friend_code, "issued")


# --- the first order, judged -------------------------------------------------------------------------------------


def test_the_friends_order_marks_the_referral_and_the_referrer_is_rewarded_once_after_the_window(
        container: Container, clock: Clock, shop: int, store: FakeStorePlatform) -> None:
    with container.sessions() as s, s.begin():  # a loyalty program that shows badges, from after the friend's order
        loyalty.switch_on(s, shop, T0 + timedelta(days=1))
    got = invite(container, shop, store)
    friend_orders(container, clock, shop, got.friend_code)
    friend_orders(container, clock, shop, got.friend_code)  # the same webhook again
    marked = referral(container, got.id)
    assert (marked.status, marked.order_external_id, marked.friend_customer_external_id, marked.due_at) == (
        "ordered", "1001", FRIEND, T0 + timedelta(days=30))
    assert sweep(container, store, T0 + timedelta(days=29)) == 0
    assert sweep(container, store, T0 + timedelta(days=31)) == 1
    assert sweep(container, store, T0 + timedelta(days=32)) == 0
    done = referral(container, got.id)
    assert (done.status, done.reward_points, done.rewarded_at) == ("rewarded", 500, T0 + timedelta(days=31))
    assert balance(container, shop) == Account(available=500)
    with container.sessions() as s:
        entry = s.scalars(select(t.LedgerEntry).where(t.LedgerEntry.key == f"referral:{got.id}")).one()
        assert (entry.reason, entry.detail) == ("action", {"action": "referral", "referral": str(got.id),
                                                           "order": "1001"})
        data = referrals.widget_data(s, shop, REFERRER, "en", T0)
        badge = s.scalar(select(t.CustomerBadge.badge).where(t.CustomerBadge.customer_external_id == REFERRER))
    assert data is not None and (data["invited"], data["rewarded"]) == (1, 1)
    assert badge == "first_referral"  # the Ambassador badge, when the shop's loyalty program shows badges


def test_two_sweeps_at_once_reward_once(container: Container, clock: Clock, shop: int,
                                        store: FakeStorePlatform) -> None:
    got = invite(container, shop, store)
    friend_orders(container, clock, shop, got.friend_code)
    start = threading.Barrier(2)
    counts: list[int] = []

    def run() -> None:
        start.wait()
        counts.append(sweep(container, store, T0 + timedelta(days=31)))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(counts) == [0, 1] and balance(container, shop) == Account(available=500)


@pytest.mark.parametrize(("who", "detail"), [
    ({"cid": REFERRER, "email": "other@example.com"}, "the referrer's own customer account"),
    ({"email": "Rita@Example.com"}, "the order's email is the referrer's"),
    ({"phone": "+821055550100"}, "the customer's phone is the referrer's"),
    ({"address": "1  main st"}, "ships to an address the referrer's orders ship to"),
])
def test_a_self_referral_is_blocked_by_each_signal(container: Container, clock: Clock, shop: int,
                                                   store: FakeStorePlatform, who: dict[str, Any], detail: str) -> None:
    got = invite(container, shop, store)
    friend_orders(container, clock, shop, got.friend_code, **who)
    blocked = referral(container, got.id)
    assert (blocked.status, blocked.blocked_reason, blocked.due_at) == ("blocked", "self_referral", None)
    assert detail in (blocked.detail or "")
    assert sweep(container, store, T0 + timedelta(days=60)) == 0 and balance(container, shop) == Account()


@pytest.mark.parametrize("earlier", [{"cid": FRIEND, "email": "old@example.com"}, {"cid": None}])
def test_a_friend_who_had_ordered_before_is_an_existing_customer(
        container: Container, clock: Clock, shop: int, store: FakeStorePlatform, earlier: dict[str, Any]) -> None:
    before = order("500", earlier["cid"], T0 - timedelta(days=10), email=earlier.get("email", "fred@example.com"))
    observe(container, clock, shop, cmd.ObserveOrder(shop, before, customer(FRIEND) if earlier["cid"] else None))
    got = invite(container, shop, store)
    friend_orders(container, clock, shop, got.friend_code)
    assert (referral(container, got.id).status, referral(container, got.id).blocked_reason) == (
        "blocked", "existing_customer")


def test_the_referrers_cap_blocks_rewards_beyond_it_in_its_window(
        container: Container, clock: Clock, shop: int, store: FakeStorePlatform) -> None:
    configure(container, shop, cap_per_referrer=1, cap_window_days=60)
    first = invite(container, shop, store, "fred@example.com")
    friend_orders(container, clock, shop, first.friend_code)
    assert sweep(container, store, T0 + timedelta(days=31)) == 1
    second = invite(container, shop, store, "gina@example.com")
    clock.advance(days=32)
    friend_orders(container, clock, shop, second.friend_code, "1002", cid="201", email="gina@example.com")
    capped = referral(container, second.id)
    assert (capped.status, capped.blocked_reason) == ("blocked", "cap_reached")
    assert "1 rewarded referrals" in (capped.detail or "")
    assert balance(container, shop) == Account(available=500)


@pytest.mark.parametrize("undo", ["refunded", "cancelled"])
def test_a_refund_or_cancellation_before_the_reward_voids_the_referral(
        container: Container, clock: Clock, shop: int, store: FakeStorePlatform, undo: str) -> None:
    got = invite(container, shop, store)
    friend_orders(container, clock, shop, got.friend_code)
    if undo == "refunded":
        observe(container, clock, shop, cmd.ObserveRefund(shop, "1001", Refund("r1", T0 + timedelta(days=5),
                                                                               Decimal("14.50"))))
    else:
        later = T0 + timedelta(days=5)
        friend_orders(container, clock, shop, got.friend_code, updated_at=later, cancelled_at=later,
                      payment=PaymentStatus.VOIDED)
    voided = referral(container, got.id)
    assert (voided.status, voided.blocked_reason) == ("void", undo)
    assert sweep(container, store, T0 + timedelta(days=60)) == 0 and balance(container, shop) == Account()


def test_a_reward_code_for_the_referrer_is_a_redemption_of_no_points_written_into_the_store(
        container: Container, clock: Clock, shop: int, store: FakeStorePlatform) -> None:
    with container.sessions() as s, s.begin():
        reward_id = rewards.add_reward(s, shop, "$15 off", "amount", Decimal("15"), 1500, T0)
    configure(container, shop, referrer_points=None, referrer_reward_id=reward_id)
    got = invite(container, shop, store)
    friend_orders(container, clock, shop, got.friend_code)
    assert sweep(container, store, T0 + timedelta(days=31)) == 1
    rewards.issue_due(container, T0 + timedelta(days=31), lambda _: store)
    done = referral(container, got.id)
    with container.sessions() as s:
        redemption = s.scalars(select(t.Redemption)).one()
    assert done.reward_code == redemption.code and (redemption.points, redemption.status) == (0, "issued")
    assert store.discounts[redemption.code.lower()].request.amount_off == Decimal("15")
    assert balance(container, shop) == Account()


# --- admin -------------------------------------------------------------------------------------------------------


def admin(c: Container, shop_id: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_admin_token(c, shop_id, SHOP)}"}


def test_staff_reward_a_blocked_referral_anyway_with_a_note(
        client: FlaskClient, container: Container, clock: Clock, shop: int, store: FakeStorePlatform) -> None:
    got = invite(container, shop, store)
    friend_orders(container, clock, shop, got.friend_code, email="rita@example.com")
    listed = client.get("/api/admin/referrals", headers=admin(container, shop)).get_json()["referrals"]
    assert [(r["status"], r["friend_email"], r["blocked_reason"], r["order"]) for r in listed] == [
        ("blocked", "fr***@example.com", "self_referral", "1001")]
    url = f"/api/admin/referrals/{got.id}/override"
    assert client.post(url, json={"staff": "Sam", "note": " "}, headers=admin(container, shop)).status_code == 400
    assert client.post(url, json={"staff": "Sam", "note": "x"}).status_code == 401
    done = client.post(url, json={"staff": "Sam", "note": "Rita's sister, checked by phone"},
                       headers=admin(container, shop))
    assert done.status_code == 200
    assert (done.get_json()["status"], done.get_json()["override"], done.get_json()["reward"]) == (
        "rewarded", {"staff": "Sam", "note": "Rita's sister, checked by phone"}, {"points": 500, "code": None})
    assert client.post(url, json={"staff": "Sam", "note": "again"}, headers=admin(container, shop)).status_code == 409
    assert client.post("/api/admin/referrals/999/override", json={"staff": "Sam", "note": "n"},
                       headers=admin(container, shop)).status_code == 404
    with container.sessions() as s:
        entry = s.scalars(select(t.LedgerEntry).where(t.LedgerEntry.key == f"referral:{got.id}")).one()
        assert (entry.staff, entry.note) == ("Sam", "Rita's sister, checked by phone")
    assert balance(container, shop) == Account(available=500)


def test_the_program_is_read_and_saved_through_the_admin_api(client: FlaskClient, container: Container,
                                                              shop: int) -> None:
    headers = admin(container, shop)
    assert client.get("/api/admin/referrals/program", headers=headers).get_json()["referrer_points"] == 500
    body = {"enabled": True, "friend_kind": "amount", "friend_value": "5.50", "friend_valid_days": 14,
            "referrer_points": 300, "wait_days": 14, "cap_per_referrer": 5, "cap_window_days": 90}
    saved = client.put("/api/admin/referrals/program", json=body, headers=headers)
    assert saved.status_code == 200 and saved.get_json() == {**body, "friend_value": "5.5", "configured": True,
                                                          "referrer_reward_id": None, "holdout_percent": 0}
    wrong = client.put("/api/admin/referrals/program", json={**body, "friend_value": "-1"}, headers=headers)
    assert wrong.status_code == 400 and "value above zero" in wrong.get_json()["error"]
    assert client.get("/api/admin/referrals?status=nope", headers=headers).status_code == 400

