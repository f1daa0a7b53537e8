"""From a delivered order to the review invitation, end to end through the dispatcher under a controllable clock:
the survey email goes with the code promised for completing it; the customer answers on the survey page; a high
answer enrolls them in review_invite (through the OrderPraised event, in the answer's transaction), whose email
an hour later asks for a review with the product's review link and, the referral program being on, the customer's
own referral link, and carries no incentive. Changing the answer never sends a second invitation; a low answer
sends none and opens a follow-up item instead."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from app import create_app, referrals
from app import journeys as jr
from app.bootstrap import Container
from app.channels.outbox import OutboxChannel
from app.core import commands as cmd
from app.core.journeys import Incentive
from app.core.model import Fulfillment
from app.db import models as t
from app.dispatch import Dispatcher
from tests.fakes import FakeStorePlatform
from tests.journeys import T0, Clock, customer, journey_shop, messages, observe, order, read_outbox


@pytest.fixture
def clock(container: Container) -> Clock:
    clock = Clock(T0)
    container.clock = clock  # type: ignore[assignment]  # the survey page asks the container's clock
    return clock


@pytest.fixture
def shop(container: Container, clock: Clock) -> int:
    shop_id = journey_shop(container, frozenset({"survey", "review_invite"}))
    with container.sessions() as s, s.begin():
        referrals.configure(s, shop_id, enabled=True, friend_kind="percent", friend_value=Decimal("10"),
                            friend_valid_days=30, referrer_points=500, wait_days=30, cap_per_referrer=None,
                            cap_window_days=30, now=T0)
    return shop_id


@pytest.fixture
def outbox(tmp_path: Path) -> OutboxChannel:
    return OutboxChannel(tmp_path / "outbox")


@pytest.fixture
def store() -> FakeStorePlatform:
    return FakeStorePlatform()


@pytest.fixture
def dispatcher(container: Container, clock: Clock, outbox: OutboxChannel, store: FakeStorePlatform) -> Dispatcher:
    return Dispatcher(container, {"email": outbox}, platform_for=lambda _: store, now=clock.now)


@pytest.fixture
def page(container: Container) -> FlaskClient:
    return create_app(container.settings, container=container).test_client()


def delivered_and_surveyed(c: Container, clock: Clock, shop: int, dispatcher: Dispatcher, outbox: OutboxChannel,
                           oid: str, cid: str, email: str) -> str:
    """The order placed, shipped and delivered; the survey sent three days later. Returns its link's path."""
    observe(c, clock, shop, cmd.ObserveOrder(shop, order(oid, cid, clock.at, email=email), customer(cid, email=email)))
    shipped = Fulfillment(f"f{oid}", clock.at, clock.at, shipment_status="delivered")
    observe(c, clock, shop, cmd.ObserveFulfillment(shop, oid, shipped))
    survey = next(m for m in messages(c, shop) if m["journey"] == "survey" and m["customer"] == cid)
    clock.at = survey["due_at"]
    assert dispatcher.run_once().sent >= 1
    mail = next(m for m in read_outbox(outbox) if m["To"] == email and "/s/" in m.get_body(("plain",)).get_content())
    found = re.search(r"https?://\S+/s/[\w.-]+", mail.get_body(("plain",)).get_content())
    assert found is not None
    return urlsplit(found.group(0)).path


def answer(page: FlaskClient, path: str, score: int, nps: int, comment: str = "") -> str:
    csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.get(path).get_data(as_text=True))
    assert csrf is not None
    thanks = page.post(path, data={"csrf": csrf.group(1), "score": str(score), "nps": str(nps), "comment": comment})
    assert thanks.status_code == 200, thanks.get_data(as_text=True)
    return thanks.get_data(as_text=True)


def invitations(outbox: OutboxChannel) -> list[Any]:
    return [m for m in read_outbox(outbox) if str(m["Subject"]) == "Thank you! Would you share your experience?"]


def test_a_high_answer_invites_a_review_and_a_referral_once(container: Container, clock: Clock, shop: int,
                                                            dispatcher: Dispatcher, outbox: OutboxChannel,
                                                            store: FakeStorePlatform, page: FlaskClient) -> None:
    c = container
    path = delivered_and_surveyed(c, clock, shop, dispatcher, outbox, "1001", "501", "ana@example.com")
    assert len(store.discounts) == 1  # the survey's own code, promised for completing it
    [survey] = [m for m in messages(c, shop) if m["journey"] == "survey"]
    thanks = answer(page, path, 5, 10, "Best beans in town.")
    assert f'id="code">{survey["code"]}</p>' in thanks  # the promised code, whatever the answer

    [invite] = [m for m in messages(c, shop) if m["journey"] == "review_invite"]
    assert (invite["status"], invite["due_at"], invite["customer"]) == ("pending", clock.at + timedelta(hours=1), "501")
    assert dispatcher.run_once().claimed == 0  # an hour after the answer
    clock.advance(hours=1)
    assert dispatcher.run_once().sent == 1
    [mail] = invitations(outbox)
    assert mail["To"] == "ana@example.com"
    text = mail.get_body(("plain",)).get_content()
    with c.sessions() as s:
        code = s.scalar(select(t.ReferralCode.code).where(t.ReferralCode.shop_id == shop,
                                                          t.ReferralCode.customer_external_id == "501"))
        shop_row = s.get(t.Shop, shop)
        assert code is not None and shop_row is not None
    assert f"Write a review: https://{shop_row.domain}/search?q=Ethiopia+Guji+250+g#reviews" in text
    assert f"Invite a friend: {referrals.link(shop_row, code)}" in text  # the customer's own referral link
    assert "Ethiopia Guji 250 g" in text and "#1001" in text
    [sent] = [m for m in messages(c, shop) if m["journey"] == "review_invite"]
    assert sent["status"] == "sent" and sent["code"] is None and len(store.discounts) == 1  # no incentive

    clock.advance(minutes=5)
    answer(page, path, 4, 9)  # changed, still high
    answer(page, path, 1, 2, "Actually, the bag split.")  # changed to low: followed up, no invitation
    answer(page, path, 5, 10)  # and high again
    clock.advance(hours=2)
    dispatcher.run_once()
    assert len(invitations(outbox)) == 1 and len([m for m in messages(c, shop) if m["journey"] == "review_invite"]) == 1
    with c.sessions() as s:
        assert [e.type for e in s.scalars(select(t.EventRow).where(t.EventRow.type == "OrderPraised"))] == ["OrderPraised"]
        item = s.scalars(select(t.FeedbackItem)).one()
        assert (item.customer_external_id, item.status) == ("501", "open")


def test_a_low_answer_sends_no_invitation_and_without_the_referral_program_only_the_review(
        container: Container, clock: Clock, shop: int, dispatcher: Dispatcher, outbox: OutboxChannel,
        page: FlaskClient) -> None:
    c = container
    with c.sessions() as s, s.begin():
        program = referrals.program(s, shop)
        assert program is not None
        program.enabled = False
    low = delivered_and_surveyed(c, clock, shop, dispatcher, outbox, "1001", "501", "ana@example.com")
    answer(page, low, 2, 6, "Too bitter.")
    high = delivered_and_surveyed(c, clock, shop, dispatcher, outbox, "1002", "502", "bo@example.com")
    answer(page, high, 4, 9)
    clock.advance(hours=1)
    dispatcher.run_once()
    [mail] = invitations(outbox)
    assert mail["To"] == "bo@example.com"
    text = mail.get_body(("plain",)).get_content()
    assert "Write a review: " in text and "Invite a friend" not in text  # no program: no referral link
    assert [m["customer"] for m in messages(c, shop) if m["journey"] == "review_invite"] == ["502"]
    with c.sessions() as s:
        assert s.scalar(select(t.ReferralCode.id)) is None  # nor a code drawn for nothing


def test_the_invitation_can_never_be_given_an_incentive(container: Container, shop: int) -> None:
    version = jr.live_version(container, shop, "review_invite")
    step = replace(version.journey.steps[0], incentive=Incentive("percent", Decimal("10"), timedelta(days=30)))
    with pytest.raises(jr.InvalidJourney) as refused:
        jr.save_version(container, shop, "review_invite", replace(version.journey, steps=(step,)), version.templates)
    assert "never for the answer" in str(refused.value)
    assert jr.live_version(container, shop, "review_invite").version_id == version.version_id  # nothing saved
