"""Rewards bought with points (app/rewards.py): the points are debited and a single-use code limited to the
customer is written into the store; bad requests change nothing; a busy store is tried again; a store that
refuses for good gives the points back with a record; a redemption a killed worker left is finished."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from app import loyalty, rewards
from app.bootstrap import Container
from app.core.loyalty import CODE_ALPHABET, Account, Balance, Entry, NotEnoughPoints, Posting, Reason
from app.core.ports import DiscountRequest, StoreBusy
from app.db import models as t
from tests.fakes import FakeStorePlatform
from tests.helpers import add_shop

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


class Flaky(FakeStorePlatform):
    """A store that answers busy, or refuses, a given number of times before it takes the code."""

    def __init__(self, busy: int = 0, refuse: bool = False) -> None:
        super().__init__()
        self.busy, self.refuse = busy, refuse

    def create_discount(self, request: DiscountRequest) -> str:
        if self.refuse:
            self.calls.append("refused")
            raise ValueError("code has already been taken")
        if self.busy > 0:
            self.busy -= 1
            self.calls.append("busy")
            raise StoreBusy("HTTP 503")
        return super().create_discount(request)


@pytest.fixture
def shop(container: Container) -> Iterator[int]:
    shop_id = add_shop(container)
    with container.sessions() as s, s.begin():
        s.add(t.Customer(shop_id=shop_id, external_id="c1", email="mina@example.com", external_updated_at=NOW))
        loyalty.post(s, shop_id, "c1", [Posting(Entry(500, Balance.AVAILABLE, Reason.ACTION, "signup"))], NOW)
    yield shop_id


def reward(c: Container, shop: int, kind: str = "amount", value: str | None = "5.00", cost: int = 300,
           enabled: bool = True) -> int:
    with c.sessions() as s, s.begin():
        return rewards.add_reward(s, shop, "$5 off", kind, Decimal(value) if value else None, cost, NOW,
                                  enabled=enabled, valid_days=30)


def state(c: Container, shop: int) -> tuple[Account, list[tuple[str, int]]]:
    with c.sessions() as s:
        assert loyalty.mismatches(s) == []
        entries = [(e.reason, e.amount) for e in s.scalars(select(t.LedgerEntry).order_by(t.LedgerEntry.id))]
        return loyalty.balance(s, shop, "c1"), entries


def test_a_redemption_debits_the_points_and_writes_a_single_use_code_for_the_customer(
        container: Container, shop: int) -> None:
    store = FakeStorePlatform()
    got = rewards.redeem(container, shop, "c1", reward(container, shop), "req-1", NOW, lambda _: store)
    assert got.status == "issued" and got.points == 300 and got.expires_at == NOW + timedelta(days=30)
    assert got.code.startswith("ENC-") and set(got.code[4:]) <= set(CODE_ALPHABET) and len(got.code) == 14
    written = store.discounts[got.code.lower()].request
    assert (written.amount_off, written.currency, written.customer_id, written.email, written.usage_limit,
            written.ends_at) == (Decimal("5.00"), "USD", "c1", "mina@example.com", 1, got.expires_at)
    assert state(container, shop) == (Account(200, 0), [("action", 500), ("redeemed", -300)])


def test_bad_redeem_requests_are_refused_and_change_nothing(container: Container, shop: int) -> None:
    store = FakeStorePlatform()
    costly, off = reward(container, shop, cost=900), reward(container, shop, enabled=False)
    with pytest.raises(NotEnoughPoints, match="costs 900 points and the balance is 500"):
        rewards.redeem(container, shop, "c1", costly, "req-1", NOW, lambda _: store)
    for missing in (off, 999_999):
        with pytest.raises(rewards.RewardUnavailable, match="does not exist or is switched off"):
            rewards.redeem(container, shop, "c1", missing, "req-2", NOW, lambda _: store)
    first = rewards.redeem(container, shop, "c1", reward(container, shop), "req-3", NOW, lambda _: store)
    with pytest.raises(rewards.AlreadyRedeemed) as again:
        rewards.redeem(container, shop, "c1", reward(container, shop), "req-3", NOW, lambda _: store)
    assert again.value.redemption.code == first.code
    assert state(container, shop)[0] == Account(200, 0) and len(store.discounts) == 1
    with container.sessions() as s:
        assert s.scalar(select(t.Redemption.id).where(t.Redemption.request_key != "req-3")) is None
    with pytest.raises(rewards.LoyaltyError):
        with container.sessions() as s, s.begin():
            rewards.add_reward(s, shop, "bad", "percent", Decimal("150"), 10, NOW)


def test_a_busy_store_is_tried_again_later(container: Container, shop: int) -> None:
    store = Flaky(busy=2)
    got = rewards.redeem(container, shop, "c1", reward(container, shop), "req-1", NOW, lambda _: store)
    assert got.status == "issuing" and got.error == "StoreBusy: HTTP 503"
    assert rewards.issue_due(container, NOW + timedelta(seconds=10), lambda _: store) == 0  # not yet
    assert rewards.issue_due(container, NOW + timedelta(minutes=1), lambda _: store) == 1  # busy again
    assert rewards.issue_due(container, NOW + timedelta(minutes=5), lambda _: store) == 1
    with container.sessions() as s:
        r = s.scalars(select(t.Redemption)).one()
        assert (r.status, r.attempts, r.error) == ("issued", 3, None)
    assert store.calls == ["busy", "busy", "create_discount"] and state(container, shop)[0] == Account(200, 0)


def test_a_store_that_refuses_gives_the_points_back_with_a_record(container: Container, shop: int) -> None:
    got = rewards.redeem(container, shop, "c1", reward(container, shop), "req-1", NOW, lambda _: Flaky(refuse=True))
    assert got.status == "restored" and "code has already been taken" in (got.error or "")
    assert state(container, shop) == (Account(500, 0), [("action", 500), ("redeemed", -300), ("restored", 300)])
    store = Flaky(busy=99)  # busy for good: after the last attempt, the points come back too
    got = rewards.redeem(container, shop, "c1", reward(container, shop), "req-2", NOW, lambda _: store)
    for n in range(1, rewards.MAX_ATTEMPTS):
        rewards.issue_due(container, NOW + timedelta(hours=n * 12), lambda _: store)
    with container.sessions() as s:
        r = s.scalars(select(t.Redemption).where(t.Redemption.request_key == "req-2")).one()
        assert (r.status, r.attempts) == ("restored", rewards.MAX_ATTEMPTS) and "unavailable" in (r.error or "")
    assert state(container, shop)[0] == Account(500, 0)


def test_a_redemption_a_killed_worker_left_is_finished_once(container: Container, shop: int) -> None:
    store = FakeStorePlatform()
    got = rewards.redeem(container, shop, "c1", reward(container, shop), "req-1", NOW, lambda _: store)
    with container.sessions() as s, s.begin():  # as if the worker died after the store took the code
        s.execute(update(t.Redemption).values(status="issuing", lease_until=NOW + timedelta(seconds=60),
                                              next_attempt_at=NOW))
    assert rewards.issue_due(container, NOW + timedelta(seconds=30), lambda _: store) == 0  # still leased
    assert rewards.issue_due(container, NOW + timedelta(seconds=61), lambda _: store) == 1
    assert len(store.discounts) == 1 and store.discounts[got.code.lower()].request.customer_id == "c1"
    with container.sessions() as s:
        assert s.scalars(select(t.Redemption.status)).one() == "issued"
    assert state(container, shop)[0] == Account(200, 0)
