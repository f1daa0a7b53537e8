"""The points-expiry reminder: the PointsExpiring date rule enrolls a customer whose available points expire in
14 days (their last activity + the program's inactivity period), the points_expiry journey's email says how many
and when, activity since the reminder was planned makes it say nothing (skipped: the points no longer expire
then), and the expiry itself is a ledger entry."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from app import daterules, loyalty
from app.bootstrap import Container
from app.channels.outbox import OutboxChannel
from app.core import commands as cmd
from app.core.loyalty import Balance, Entry, Posting, Reason
from app.db import models as t
from app.dispatch import Dispatcher
from tests.fakes import FakeStorePlatform
from tests.journeys import T0, Clock, customer, journey_shop, messages, observe, read_outbox


def _shop(c: Container) -> int:
    shop_id = journey_shop(c, frozenset({"points_expiry"}))
    with c.sessions() as s, s.begin():
        loyalty.switch_on(s, shop_id, T0 - timedelta(days=1), expire_after_days=90)
    for cid, email in (("501", "ana@example.com"), ("502", "ben@example.com")):
        observe(c, Clock(T0), shop_id, cmd.ObserveCustomer(shop_id, customer(cid, email=email)))
        with c.sessions() as s, s.begin():
            loyalty.post(s, shop_id, cid, [Posting(Entry(1200, Balance.AVAILABLE, Reason.ACTION, f"gift:{cid}"))], T0)
    return shop_id


def _send(c: Container, outbox: OutboxChannel, at: timedelta) -> None:
    store = FakeStorePlatform()
    Dispatcher(c, {"email": outbox}, platform_for=lambda _: store, now=lambda: T0 + at).run_once()


def test_a_reminder_two_weeks_before_the_points_expire_and_none_after_new_activity(
        container: Container, tmp_path: Path) -> None:
    shop = _shop(container)
    outbox = OutboxChannel(tmp_path / "outbox")
    assert daterules.scan(container, shop, T0 + timedelta(days=75))["PointsExpiring"] == 0  # not yet
    remind_at = timedelta(days=90 - 14)
    assert daterules.scan(container, shop, T0 + remind_at + timedelta(hours=1))["PointsExpiring"] == 2
    assert daterules.scan(container, shop, T0 + remind_at + timedelta(hours=2))["PointsExpiring"] == 0  # once

    with container.sessions() as s, s.begin():  # Ben spends some points before the reminder goes out
        loyalty.adjust(s, shop, "502", -200, "staff@example.com", "redeemed at the till", "till-1",
                       T0 + remind_at + timedelta(hours=3))
    _send(container, outbox, remind_at + timedelta(days=1))
    sent = read_outbox(outbox)
    assert [m["to"] for m in sent] == ["ana@example.com"]
    body = sent[0].get_body(("plain",)).get_content()
    assert "You have 1,200 points with Bean There." in body
    assert "1,200 of them expire on" in body
    skipped = {m["customer"]: m for m in messages(container, shop)}["502"]
    assert skipped["status"] == "skipped" and "points" in skipped["reason"]

    # Ben's activity made a new expiry moment: a new reminder 14 days before it, Ana's points expire.
    assert daterules.scan(container, shop, T0 + remind_at + timedelta(hours=4) + remind_at)["PointsExpiring"] == 1
    with container.sessions() as s, s.begin():
        assert loyalty.expire(s, shop, T0 + timedelta(days=91)) == 1
    with container.sessions() as s:
        assert loyalty.balance(s, shop, "501").available == 0
        entry = s.scalar(select(t.LedgerEntry).where(t.LedgerEntry.reason == "expired"))
        assert entry is not None and entry.amount == -1200
        assert loyalty.mismatches(s) == []
