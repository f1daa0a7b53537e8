"""The points ledger in the database (app/loyalty.py): postings written with the snapshot in one transaction,
the same posting twice written once, a refused posting writing nothing, the check that every snapshot is the
sum of its entries (and that it notices when one is not), and one hot account posted to from many threads."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from app import loyalty
from app.bootstrap import Container
from app.core.loyalty import Account, Balance, Entry, LoyaltyError, NotEnoughPoints, Posting, Reason, confirm
from app.db import models as t
from tests.conftest import USE_PG
from tests.helpers import add_shop

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def earned(points: int, key: str) -> Posting:
    return Posting(Entry(points, Balance.PENDING, Reason.EARNED, key), rule_version=1, order_id=key.split(":")[0],
                   line_id=key.split(":")[-1], detail={"amount": str(points), "rate": "1"})


def in_threads(count: int, work: Callable[[int], None]) -> list[BaseException]:
    """Run work(0) ... work(count - 1) at once, each in a thread; what they raised."""
    errors: list[BaseException] = []

    def guarded(n: int) -> None:
        try:
            work(n)
        except BaseException as exc:  # noqa: BLE001  (returned to the test)
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(count)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return errors


def entries(c: Container) -> int:
    with c.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(t.LedgerEntry)) or 0)


def test_postings_keep_the_snapshot_and_the_same_posting_twice_is_one(container: Container) -> None:
    shop = add_shop(container)
    with container.sessions() as s, s.begin():
        first = loyalty.post(s, shop, "c1", [earned(120, "1001:1"), earned(30, "1001:2")], NOW)
    assert (first.account, first.new) == (Account(available=0, pending=150), 2)
    with container.sessions() as s, s.begin():  # the same webhook again, and the order confirmed
        again = loyalty.post(s, shop, "c1", [earned(120, "1001:1"), earned(30, "1001:2"),
                                             *(Posting(e) for e in confirm(150, "1001:confirm"))], NOW)
    assert (again.account, again.new) == (Account(available=150, pending=0), 2)
    with container.sessions() as s:
        assert loyalty.balance(s, shop, "c1") == Account(150, 0)
        assert loyalty.balance(s, shop, "nobody") == Account()
        assert loyalty.mismatches(s) == []
        row = s.scalars(select(t.LedgerEntry).where(t.LedgerEntry.key == "1001:1")).one()
        assert (row.amount, row.balance, row.reason, row.rule_version, row.order_external_id) == (
            120, "pending", "earned", 1, "1001")


def test_a_refused_redemption_writes_nothing(container: Container) -> None:
    shop = add_shop(container)
    with container.sessions() as s, s.begin():
        loyalty.post(s, shop, "c1", [Posting(Entry(100, Balance.AVAILABLE, Reason.ACTION, "signup"))], NOW)
    before = entries(container)
    with pytest.raises(NotEnoughPoints, match="costs 500 points and the balance is 100"):
        with container.sessions() as s, s.begin():
            loyalty.post(s, shop, "c1", [Posting(Entry(-500, Balance.AVAILABLE, Reason.REDEEMED, "r1"))], NOW)
    assert entries(container) == before
    with container.sessions() as s:
        assert loyalty.balance(s, shop, "c1") == Account(100, 0)


def test_the_check_finds_a_snapshot_that_is_not_the_sum_of_its_entries(container: Container) -> None:
    shop = add_shop(container)
    with container.sessions() as s, s.begin():
        loyalty.post(s, shop, "c1", [earned(40, "7:1")], NOW)
        loyalty.post(s, shop, "c2", [Posting(Entry(5, Balance.AVAILABLE, Reason.BONUS, "b"))], NOW)
    with container.sessions() as s, s.begin():
        s.execute(update(t.LoyaltyAccount).where(t.LoyaltyAccount.customer_external_id == "c2")
                  .values(available=t.LoyaltyAccount.available + 1))
    with container.sessions() as s:
        (wrong,) = loyalty.mismatches(s)
        assert (wrong.customer_id, wrong.snapshot, wrong.entries) == ("c2", Account(6, 0), Account(5, 0))
        assert loyalty.mismatches(s, shop_id=shop + 1) == []


@pytest.mark.skipif(not USE_PG, reason="concurrent writers need PostgreSQL")
def test_one_hot_account_posted_to_from_many_threads_stays_exact(container: Container) -> None:
    shop = add_shop(container)

    def work(n: int) -> None:
        for i in range(25):
            k = (n * 25 + i) % 120  # 200 postings of 120 keys: some are posted by two threads
            with container.sessions() as s, s.begin():
                loyalty.post(s, shop, "hot", [earned(1 + k % 5, f"{k}:1")], NOW)

    assert in_threads(8, work) == []
    with container.sessions() as s:
        assert entries(container) == 120  # 200 postings of 120 distinct keys
        assert loyalty.balance(s, shop, "hot") == Account(0, sum(1 + k % 5 for k in range(120)))
        assert loyalty.mismatches(s) == []
        assert s.scalar(select(func.count()).select_from(t.LoyaltyAccount)) == 1


def test_manual_adjustments_need_a_whole_number_a_note_and_the_points(container: Container) -> None:
    shop = add_shop(container)
    with container.sessions() as s, s.begin():
        posted = loyalty.adjust(s, shop, "c1", "250", "ana@shop.example", "apology for a late parcel", "a1", NOW)
        assert posted.account == Account(250, 0)
        assert loyalty.adjust(s, shop, "c1", 250, "ana@shop.example", "again", "a1", NOW).new == 0  # same request
    for amount, note, message in [("abc", "x", "whole number"), ("2.5", "x", "whole number"), (None, "x", "whole"),
                                  (0, "x", "at least one point"), (-10, "", "needs a note"),
                                  (10, "   ", "needs a note"), (-251, "too many", "below zero")]:
        with pytest.raises(LoyaltyError, match=message), container.sessions() as s, s.begin():
            loyalty.adjust(s, shop, "c1", amount, "ana@shop.example", note, f"bad-{amount}", NOW)
    with container.sessions() as s, s.begin():
        loyalty.adjust(s, shop, "c1", -50, "ben@shop.example", "double credit", "a2", NOW)
    with container.sessions() as s:
        assert loyalty.balance(s, shop, "c1") == Account(200, 0) and loyalty.mismatches(s) == []
        rows = [(e.amount, e.reason, e.staff, e.note) for e in s.scalars(select(t.LedgerEntry).order_by(t.LedgerEntry.id))]
        assert rows == [(250, "adjusted", "ana@shop.example", "apology for a late parcel"),
                        (-50, "adjusted", "ben@shop.example", "double credit")]


def test_points_expire_after_the_programs_days_without_activity(container: Container) -> None:
    shop = add_shop(container)
    with container.sessions() as s, s.begin():
        loyalty.switch_on(s, shop, NOW - timedelta(days=400), expire_after_days=365)
        loyalty.post(s, shop, "idle", [Posting(Entry(300, Balance.AVAILABLE, Reason.ACTION, "signup"))],
                     NOW - timedelta(days=366))
        loyalty.post(s, shop, "active", [Posting(Entry(80, Balance.AVAILABLE, Reason.ACTION, "signup"))],
                     NOW - timedelta(days=366))
        loyalty.post(s, shop, "active", [earned(10, "9:1")], NOW - timedelta(days=30))  # activity since
    with container.sessions() as s, s.begin():
        assert loyalty.expire(s, shop, NOW) == 1
    with container.sessions() as s, s.begin():
        assert loyalty.expire(s, shop, NOW + timedelta(days=1)) == 0  # nothing left to expire
        assert loyalty.balance(s, shop, "idle") == Account(0, 0)
        assert loyalty.balance(s, shop, "active") == Account(80, 10)
        expired = s.scalars(select(t.LedgerEntry).where(t.LedgerEntry.reason == "expired")).one()
        assert expired.amount == -300 and loyalty.mismatches(s) == []
    other = add_shop(container, "shop-b.myshopify.com")  # a program without expiry expires nothing
    with container.sessions() as s, s.begin():
        loyalty.switch_on(s, other, NOW - timedelta(days=400))
        assert loyalty.expire(s, other, NOW + timedelta(days=3650)) == 0


def test_expiry_runs_at_most_hourly_per_shop(container: Container) -> None:
    shop = add_shop(container)
    with container.sessions() as s, s.begin():
        loyalty.switch_on(s, shop, NOW - timedelta(days=400), expire_after_days=30)
        loyalty.post(s, shop, "a", [Posting(Entry(10, Balance.AVAILABLE, Reason.ACTION, "x"))], NOW - timedelta(days=31))
    assert loyalty.sweep_due(container, NOW) == 1
    with container.sessions() as s, s.begin():
        loyalty.post(s, shop, "b", [Posting(Entry(10, Balance.AVAILABLE, Reason.ACTION, "x"))], NOW - timedelta(days=31))
    assert loyalty.sweep_due(container, NOW + timedelta(minutes=59)) == 0  # looked at within the hour
    assert loyalty.sweep_due(container, NOW + timedelta(hours=1)) == 1
    with container.sessions() as s:
        assert loyalty.balance(s, shop, "b") == Account(0, 0) and loyalty.mismatches(s) == []


def _books(c: Container, shop: int) -> dict[str, tuple[int, int, list[tuple[str, int, str]]]]:
    """customer -> (available, pending, entries as (key, amount, balance) in key order)."""
    with c.sessions() as s:
        out = {}
        for a in s.scalars(select(t.LoyaltyAccount).where(t.LoyaltyAccount.shop_id == shop)):
            got = s.execute(select(t.LedgerEntry.key, t.LedgerEntry.amount, t.LedgerEntry.balance)
                            .where(t.LedgerEntry.account_id == a.id).order_by(t.LedgerEntry.key)).all()
            out[a.customer_external_id] = (a.available, a.pending, [(k, int(n), b) for k, n, b in got])
        return out


def test_post_many_writes_what_post_would_customer_by_customer(container: Container) -> None:
    rng = random.Random(7)
    one, many = add_shop(container, "one.myshopify.com"), add_shop(container, "many.myshopify.com")
    batch: list[tuple[str, list[Posting]]] = []
    for _ in range(300):
        cid = f"c{rng.randrange(40)}"
        key = f"{rng.randrange(250)}:1"  # some keys twice: the same request again
        batch.append((cid, [earned(rng.randint(1, 50), key)]))
    with container.sessions() as s, s.begin():
        for cid, postings in batch:
            loyalty.post(s, one, cid, postings, NOW)
    with container.sessions() as s, s.begin():
        results = loyalty.post_many(s, many, batch, NOW)
    assert _books(container, one) == _books(container, many)
    assert sum(r.new for r in results.values()) == entries(container) // 2
    with container.sessions() as s, s.begin():  # the whole batch again writes nothing
        again = loyalty.post_many(s, many, batch, NOW)
    assert sum(r.new for r in again.values()) == 0
    with container.sessions() as s:
        assert loyalty.mismatches(s) == []


def test_post_many_refused_anywhere_writes_nothing(container: Container) -> None:
    shop = add_shop(container)
    with container.sessions() as s, s.begin():
        loyalty.post(s, shop, "rich", [Posting(Entry(100, Balance.AVAILABLE, Reason.ACTION, "gift"))], NOW)
    before = entries(container)
    spend = [("rich", [Posting(Entry(-50, Balance.AVAILABLE, Reason.REDEEMED, "r1"))]),
             ("new", [earned(10, "9:1")]),
             ("poor", [Posting(Entry(-1, Balance.AVAILABLE, Reason.REDEEMED, "r2"))])]
    with pytest.raises(NotEnoughPoints), container.sessions() as s, s.begin():
        loyalty.post_many(s, shop, spend, NOW)
    assert entries(container) == before
    with container.sessions() as s:
        assert loyalty.balance(s, shop, "rich") == Account(100, 0)
        assert loyalty.balance(s, shop, "new") == Account()


@pytest.mark.skipif(not USE_PG, reason="concurrent writers need PostgreSQL")
def test_post_many_from_many_threads_with_overlapping_customers_neither_deadlocks_nor_loses(
        container: Container) -> None:
    shop = add_shop(container)

    def work(n: int) -> None:
        rng = random.Random(n)
        for i in range(10):
            customers = rng.sample(range(30), 12)  # new accounts too, opened by several threads at once
            batch = [(f"c{x}", [earned(1, f"{n}-{i}-{x}:1")]) for x in customers]
            with container.sessions() as s, s.begin():
                loyalty.post_many(s, shop, batch, NOW)

    assert in_threads(6, work) == []
    with container.sessions() as s:
        assert entries(container) == 6 * 10 * 12
        total = s.scalar(select(func.sum(t.LoyaltyAccount.pending)).where(t.LoyaltyAccount.shop_id == shop))
        assert total == 6 * 10 * 12
        assert loyalty.mismatches(s) == []
