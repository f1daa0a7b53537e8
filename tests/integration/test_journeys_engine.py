"""The journeys engine end to end on the real database, under a controllable clock: store events enroll
customers in the same transaction, the dispatcher claims due messages, checks, renders and sends them to the
embedded default's outbox, and records exactly what went out when, on which channel, and what was skipped
and why."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select, update

from app import journeys as jr
from app.bootstrap import Container
from app.channels.outbox import OutboxChannel
from app.core import commands as cmd
from app.core.journeys import Category, Condition, Step
from app.core.messagebus import handle
from app.core.model import CheckoutRecord, Fulfillment, OrderLine
from app.core.ports import OutboundMessage, SendResult
from app.db import models as t
from app.db.uow import SqlUnitOfWork
from app.dispatch import MAX_ATTEMPTS, Dispatcher
from app.rendering import TemplateSource
from tests.conftest import USE_PG
from tests.fakes import FakeStorePlatform
from tests.journeys import T0, Clock, customer, journey_shop, messages, observe, order, read_outbox


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def shop(container: Container) -> int:
    return journey_shop(container, frozenset({"thank_you", "shipped", "delivered", "abandoned_cart"}))


@pytest.fixture
def store() -> FakeStorePlatform:
    return FakeStorePlatform()


@pytest.fixture
def outbox(tmp_path: Path) -> OutboxChannel:
    return OutboxChannel(tmp_path / "outbox")


@pytest.fixture
def dispatcher(container: Container, clock: Clock, outbox: OutboxChannel, store: FakeStorePlatform) -> Dispatcher:
    return Dispatcher(container, {"email": outbox}, platform_for=lambda _: store, now=clock.now)


def test_an_order_enrolls_in_the_same_transaction_and_the_thank_you_goes_once(
        container: Container, clock: Clock, shop: int, dispatcher: Dispatcher, outbox: OutboxChannel) -> None:
    observe(container, clock, shop, cmd.ObserveOrder(shop, order(), customer()))
    observe(container, clock, shop, cmd.ObserveOrder(shop, order(), customer()))  # the same webhook again
    [m] = messages(container, shop)
    assert (m["journey"], m["status"], m["due_at"]) == ("thank_you", "pending", T0)

    stats = dispatcher.run_once()
    assert (stats.claimed, stats.sent) == (1, 1)
    assert dispatcher.run_once().claimed == 0
    [m] = messages(container, shop)
    assert (m["status"], m["channel"], m["sent_at"]) == ("sent", "email", T0)
    [mail] = read_outbox(outbox)
    assert mail["To"] == "ana@example.com"
    assert "#1001" in str(mail["Subject"])
    assert mail["List-Unsubscribe"] is None  # transactional: no unsubscribe header needed
    html = mail.get_body(("html",)).get_content()
    assert "Ethiopia Guji" in html and "/t/o/" in html  # the order summary, and the open pixel
    assert mail.get_body(("plain",)).get_content().count("Ethiopia Guji") == 1


def test_a_failed_handler_leaves_no_enrollment(container: Container, clock: Clock, shop: int) -> None:
    class Boom(Exception):
        pass

    uow = SqlUnitOfWork(container.sessions, on_commit=lambda s: (_ for _ in ()).throw(Boom()))
    with pytest.raises(Boom):
        handle(cmd.ObserveOrder(shop, order(), customer()), uow, clock)
    assert messages(container, shop) == []
    with container.sessions() as s:
        assert s.scalar(select(t.Enrollment.id)) is None and s.scalar(select(t.Order.id)) is None


def test_timing_over_days_shipped_delivered_and_what_is_skipped(
        container: Container, clock: Clock, shop: int, dispatcher: Dispatcher, outbox: OutboxChannel) -> None:
    with container.sessions() as s, s.begin():
        s.execute(update(t.JourneyRow).where(t.JourneyRow.shop_id == shop, t.JourneyRow.key.in_(
            ("survey", "review_request"))).values(enabled=True))
    observe(container, clock, shop, cmd.ObserveOrder(shop, order(), customer()))
    dispatcher.run_once()
    clock.advance(days=1)
    shipped = Fulfillment("f1", clock.at, clock.at, tracking=replace(Fulfillment("x", T0, T0).tracking,
                                                                      number="1Z999", url="https://track.example/1Z999"))
    observe(container, clock, shop, cmd.ObserveFulfillment(shop, "1001", shipped))
    assert dispatcher.run_once().sent == 1  # shipped, at once
    clock.advance(days=2)
    delivered_at = clock.at
    observe(container, clock, shop, cmd.ObserveFulfillment(shop, "1001", replace(
        shipped, updated_at=delivered_at, shipment_status="delivered")))
    assert dispatcher.run_once().claimed == 0  # delivered waits two hours
    clock.advance(hours=2)
    assert dispatcher.run_once().sent == 1
    clock.advance(days=3)  # the survey: due 3 days after delivery at 10:00 New York time
    survey = next(m for m in messages(container, shop) if m["journey"] == "survey")
    local = survey["due_at"].astimezone(__import__("zoneinfo").ZoneInfo("America/New_York"))
    assert local.time() == time(10, 0) and survey["due_at"] >= delivered_at + timedelta(days=3)
    clock.at = survey["due_at"]
    dispatcher.run_once()
    clock.at = delivered_at + timedelta(days=10, hours=20)
    dispatcher.run_once()
    got = {m["journey"]: (m["status"], m["reason"]) for m in messages(container, shop)}
    assert got["thank_you"] == ("sent", None) and got["shipped"] == ("sent", None) and got["delivered"] == ("sent", None)
    assert got["review_request"] == ("sent", None) and got["survey"] == ("sent", None)
    survey_mail = next(m for m in read_outbox(outbox) if "/s/" in m.get_body(("plain",)).get_content())
    assert "10%" in survey_mail.get_body(("plain",)).get_content()  # the reward promised for completing it
    sent = [str(m["Subject"]) for m in read_outbox(outbox)]
    assert len(sent) == len([v for v in got.values() if v[0] == "sent"])
    assert any("1Z999" in m.get_body(("plain",)).get_content() for m in read_outbox(outbox))


def test_cancelled_order_exits_and_its_messages_are_cancelled(
        container: Container, clock: Clock, shop: int, dispatcher: Dispatcher) -> None:
    observe(container, clock, shop, cmd.ObserveOrder(shop, order(), customer()))
    clock.advance(days=1)
    observe(container, clock, shop, cmd.ObserveFulfillment(shop, "1001", Fulfillment(
        "f1", clock.at, clock.at, shipment_status="delivered")))
    clock.advance(minutes=30)
    observe(container, clock, shop, cmd.ObserveOrder(shop, order(cancelled_at=clock.at, updated_at=clock.at)))
    clock.advance(hours=3)
    dispatcher.run_once()
    got = {m["journey"]: (m["status"], m["reason"]) for m in messages(container, shop)}
    assert got["delivered"] == ("cancelled", "order cancelled")
    assert got["thank_you"] == ("cancelled", "order cancelled")  # never dispatched before the cancellation


def _checkout(cid: str = "501", at: datetime = T0) -> CheckoutRecord:
    return CheckoutRecord("c1", at, "USD", Decimal("29.00"), email="ana@example.com", customer_id=cid,
                          recovery_url="https://shop-a.myshopify.com/checkouts/c1/recover",
                          lines=(OrderLine("1", "Ethiopia Guji 250 g", 2, Decimal("14.50"), product_id="p1"),))


def test_abandoned_cart_for_a_returning_customer_with_a_personal_code_exits_on_a_new_order(
        container: Container, clock: Clock, shop: int, dispatcher: Dispatcher, outbox: OutboxChannel,
        store: FakeStorePlatform) -> None:
    observe(container, clock, shop, cmd.ObserveOrder(shop, order("900", at=T0 - timedelta(days=40)), customer()))
    observe(container, clock, shop, cmd.ObserveCheckout(shop, _checkout(), customer()))
    clock.advance(hours=2)
    dispatcher.run_once()
    cart = next(m for m in messages(container, shop) if m["journey"] == "abandoned_cart")
    assert cart["status"] == "sent" and cart["code"] and cart["code"].startswith("ENC-")
    assert store.discounts[cart["code"].lower()].request.percent_off == Decimal(5)
    mail = next(m for m in read_outbox(outbox) if "c1/recover" in m.get_body(("plain",)).get_content())
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert cart["code"] in mail.get_body(("plain",)).get_content()
    # the order that used the code is attributed to the message
    clock.advance(hours=1)
    observe(container, clock, shop, cmd.ObserveOrder(shop, order("1002", at=clock.at, discount_codes=(
        cart["code"].lower(),))))
    with container.sessions() as s:
        [a] = s.scalars(select(t.Attribution)).all()
        assert (a.order_external_id, a.via, a.message_id, a.revenue) == ("1002", "code", cart["id"], Decimal("33.00"))


def test_cart_of_a_first_time_customer_is_skipped_by_condition_and_a_new_order_exits_another(
        container: Container, clock: Clock, shop: int, dispatcher: Dispatcher) -> None:
    observe(container, clock, shop, cmd.ObserveCheckout(shop, _checkout(), customer()))
    clock.advance(hours=2)
    dispatcher.run_once()
    [m] = messages(container, shop)
    assert (m["status"], m["reason"]) == ("skipped", "condition not met")
    # a returning customer who completes the purchase before the reminder: the cart journey exits
    observe(container, clock, shop, cmd.ObserveOrder(shop, order("800", cid="502", at=T0 - timedelta(days=90)),
                                                     customer("502", email="bo@example.com")))
    clock.advance(minutes=5)
    observe(container, clock, shop, cmd.ObserveCheckout(shop, replace(_checkout("502", clock.at), external_id="c2"),
                                                        customer("502", email="bo@example.com")))
    clock.advance(minutes=30)
    observe(container, clock, shop, cmd.ObserveOrder(shop, order("1003", cid="502", at=clock.at),
                                                     customer("502", email="bo@example.com")))
    carts = [m for m in messages(container, shop) if m["journey"] == "abandoned_cart" and m["customer"] == "502"]
    assert [(m["status"], m["reason"]) for m in carts] == [("cancelled", "new order placed")]


def test_marketing_without_consent_is_skipped_with_the_reason(
        container: Container, clock: Clock, shop: int, dispatcher: Dispatcher) -> None:
    observe(container, clock, shop, cmd.ObserveOrder(shop, order("900", at=T0 - timedelta(days=40)),
                                                     customer(marketing=False)))
    observe(container, clock, shop, cmd.ObserveCheckout(shop, _checkout(), customer(marketing=False)))
    clock.advance(hours=2)
    dispatcher.run_once()
    cart = next(m for m in messages(container, shop) if m["journey"] == "abandoned_cart")
    assert (cart["status"], cart["reason"]) == ("skipped", "no consent to marketing email")


def test_one_frequency_cap_for_all_marketing_defers_to_the_next_day(
        container: Container, clock: Clock, shop: int, dispatcher: Dispatcher) -> None:
    observe(container, clock, shop, cmd.ObserveOrder(shop, order("900", at=T0 - timedelta(days=40)), customer()))
    observe(container, clock, shop, cmd.ObserveCheckout(shop, _checkout(), customer()))
    clock.advance(minutes=10)
    observe(container, clock, shop, cmd.ObserveCheckout(shop, replace(_checkout(at=clock.at), external_id="c2"),
                                                        customer()))
    clock.advance(hours=2)
    stats = dispatcher.run_once()
    assert (stats.sent, stats.deferred) == (1, 1)
    second = [m for m in messages(container, shop) if m["journey"] == "abandoned_cart"][1]
    assert second["status"] == "pending" and second["deferred"] == "frequency cap"
    first_sent = [m for m in messages(container, shop) if m["journey"] == "abandoned_cart"][0]["sent_at"]
    assert second["due_at"] == first_sent + timedelta(days=1)
    clock.at = second["due_at"]
    assert dispatcher.run_once().sent == 1


@pytest.mark.skipif(not USE_PG, reason="dispatchers side by side need PostgreSQL (SKIP LOCKED, advisory locks)")
def test_the_cap_holds_across_two_dispatchers_sending_at_once(
        container: Container, clock: Clock, shop: int, outbox: OutboxChannel, store: FakeStorePlatform) -> None:
    """Two dispatchers each claim one of a customer's two marketing messages at the same moment. Without a lock
    both would read an empty history and both would send; the second waits for the first and then sees it."""
    observe(container, clock, shop, cmd.ObserveOrder(shop, order("900", at=T0 - timedelta(days=40)), customer()))
    observe(container, clock, shop, cmd.ObserveCheckout(shop, _checkout(), customer()))
    observe(container, clock, shop, cmd.ObserveCheckout(shop, replace(_checkout(), external_id="c2"), customer()))
    clock.advance(hours=2)
    sending, go_on = threading.Event(), threading.Event()

    class Slow:
        """The outbox, holding the first send until the other dispatcher has had its turn."""

        def send(self, message: OutboundMessage) -> SendResult:
            sending.set()
            assert go_on.wait(10)
            return outbox.send(message)

    first = Dispatcher(container, {"email": Slow()}, platform_for=lambda _: store, now=clock.now, batch=1)
    second = Dispatcher(container, {"email": outbox}, platform_for=lambda _: store, now=clock.now, batch=1)
    worker = threading.Thread(target=first.run_once)
    worker.start()
    assert sending.wait(10)
    held = second.run_once()  # claims the other cart message while the first is being sent
    go_on.set()
    worker.join(10)
    carts = [m for m in messages(container, shop) if m["journey"] == "abandoned_cart"]
    assert held.claimed == 1 and sorted(m["status"] for m in carts) == ["pending", "sent"]
    waiting = next(m for m in carts if m["status"] == "pending")
    assert waiting["deferred"] == "another dispatcher is sending this customer marketing"
    assert waiting["due_at"] == clock.at + timedelta(seconds=5)
    clock.advance(seconds=5)
    second.run_once()  # now it sees what the first one sent: the day's one marketing message has gone
    waiting = next(m for m in messages(container, shop) if m["id"] == waiting["id"])
    assert (waiting["status"], waiting["deferred"]) == ("pending", "frequency cap")
    assert len(read_outbox(outbox)) == 1


def test_holdout_share_receives_nothing_and_is_recorded(
        container: Container, clock: Clock, shop: int, dispatcher: Dispatcher) -> None:
    version = jr.live_version(container, shop, "thank_you")
    jr.save_version(container, shop, "thank_you", replace(version.journey, holdout_percent=50), version.templates)
    for i in range(40):
        observe(container, clock, shop, cmd.ObserveOrder(shop, order(str(2000 + i), cid=str(600 + i)),
                                                         customer(str(600 + i))))
    dispatcher.run_once()
    with container.sessions() as s:
        held = s.scalar(select(__import__("sqlalchemy").func.count()).select_from(t.Enrollment)
                        .where(t.Enrollment.holdout.is_(True)))
    statuses = [m["status"] for m in messages(container, shop)]
    assert statuses.count("held_out") == held and statuses.count("sent") == 40 - held
    assert 8 <= held <= 32  # a share near half, decided per enrollment


def test_editing_a_live_journey_keeps_what_enrolled_customers_were_promised(
        container: Container, clock: Clock, shop: int, dispatcher: Dispatcher, outbox: OutboxChannel) -> None:
    observe(container, clock, shop, cmd.ObserveOrder(shop, order("1001"), customer()))
    version = jr.live_version(container, shop, "thank_you")
    own = TemplateSource(subject="Thanks, {{ customer.first_name }}!", html="<p>Thanks for {{ order.name }}</p>",
                         text="Thanks for {{ order.name }}", category="transactional", journey="thank_you")
    edited = replace(version.journey, steps=(replace(version.journey.steps[0], delay=timedelta(hours=1)),))
    jr.save_version(container, shop, "thank_you", edited, {"message": own})
    observe(container, clock, shop, cmd.ObserveOrder(shop, order("1002"), customer()))
    dispatcher.run_once()
    clock.advance(hours=1)
    dispatcher.run_once()
    subjects = {str(m["X-Encore-Key"]).split(":")[2]: str(m["Subject"]) for m in read_outbox(outbox)}
    assert subjects["1002"] == "Thanks, Ana!"  # v2's copy, an hour later
    assert "#1001" in subjects["1001"] and subjects["1001"] != "Thanks, Ana!"  # v1's copy, at once
    assert [m["sent_at"] for m in messages(container, shop)] == [T0, T0 + timedelta(hours=1)]


def test_a_template_that_reaches_outside_its_sandbox_is_refused_when_saved(container: Container, shop: int) -> None:
    version = jr.live_version(container, shop, "thank_you")
    bad = TemplateSource(subject="Hi", html="<p>\n{{ customer.__class__.__mro__ }}</p>", text="x",
                         category="transactional", journey="thank_you")
    with pytest.raises(jr.InvalidJourney) as caught:
        jr.save_version(container, shop, "thank_you", version.journey, {"message": bad})
    assert "html, line 2" in str(caught.value)
    assert jr.live_version(container, shop, "thank_you").journey.version == 1  # nothing saved


def test_wait_for_delivery_with_a_timeout(container: Container, clock: Clock, shop: int, dispatcher: Dispatcher,
                                          outbox: OutboxChannel) -> None:
    version = jr.live_version(container, shop, "thank_you")
    two_steps = replace(version.journey, steps=(
        version.journey.steps[0],
        Step("after_delivery", "delivered", delay=timedelta(days=1), wait_for="OrderDelivered",
             wait_timeout=timedelta(days=14))))
    jr.save_version(container, shop, "thank_you", two_steps, {"message": None, "after_delivery": None})
    observe(container, clock, shop, cmd.ObserveOrder(shop, order("1001"), customer()))
    observe(container, clock, shop, cmd.ObserveOrder(shop, order("1002", cid="502"), customer("502", email="b@e.com")))
    dispatcher.run_once()
    clock.advance(days=3)
    observe(container, clock, shop, cmd.ObserveFulfillment(shop, "1001", Fulfillment(
        "f1", clock.at, clock.at, shipment_status="delivered")))
    waiting = {m["customer"]: m for m in messages(container, shop) if m["step"] == "after_delivery"}
    assert waiting["501"]["status"] == "pending" and waiting["501"]["due_at"] == clock.at + timedelta(days=1)
    assert waiting["502"]["status"] == "waiting"
    clock.advance(days=12)
    dispatcher.run_once()
    dispatcher.recover()
    waiting = {m["customer"]: m for m in messages(container, shop) if m["step"] == "after_delivery"}
    assert waiting["501"]["status"] == "sent"
    assert (waiting["502"]["status"], waiting["502"]["reason"]) == (
        "skipped", "the awaited event did not happen in time")


class Flaky:
    """A provider that is down for the first `down` calls, then works."""

    name = "email"

    def __init__(self, down: int, permanent: str | None = None) -> None:
        self.down, self.calls, self.permanent = down, 0, permanent

    def send(self, message: OutboundMessage) -> SendResult:
        self.calls += 1
        if self.permanent:
            return SendResult.failed("550 no such user", reason=self.permanent, code="550")
        if self.calls <= self.down:
            return SendResult.retry("421 try later", code="421")
        return SendResult.sent(f"id-{self.calls}")


def test_provider_errors_are_retried_with_backoff_then_parked(
        container: Container, clock: Clock, shop: int, store: FakeStorePlatform) -> None:
    flaky = Flaky(down=100)
    d = Dispatcher(container, {"email": flaky}, platform_for=lambda _: store, now=clock.now)
    observe(container, clock, shop, cmd.ObserveOrder(shop, order(), customer()))
    waits = []
    started = clock.at
    for _ in range(MAX_ATTEMPTS + 2):
        d.run_once()
        [m] = messages(container, shop)
        if m["status"] != "pending":
            break
        waits.append(m["due_at"] - clock.at)
        clock.at = m["due_at"]
    assert m["status"] == "parked" and m["reason"] == "gave up after retries"
    assert flaky.calls == MAX_ATTEMPTS
    assert all(b > a for a, b in zip(waits[:5], waits[1:5], strict=False))  # doubling from 30 s ...
    assert max(waits) <= timedelta(minutes=18)  # ... to 15 minutes (±20%)
    assert clock.at - started >= timedelta(hours=5)  # an outage of hours is waited out before a person is asked
    with container.sessions() as s:
        assert "421" in (s.scalar(select(t.Message.error)) or "")


def test_an_invalid_address_is_skipped_with_that_reason(
        container: Container, clock: Clock, shop: int, dispatcher: Dispatcher) -> None:
    observe(container, clock, shop, cmd.ObserveOrder(shop, order(email="not-an-address"),
                                                     customer(email="not-an-address")))
    dispatcher.run_once()
    [m] = messages(container, shop)
    assert (m["status"], m["reason"]) == ("skipped", "no valid email address")


def test_provider_rejection_of_the_recipient_is_a_skip(container: Container, clock: Clock, shop: int,
                                                       store: FakeStorePlatform) -> None:
    d = Dispatcher(container, {"email": Flaky(0, permanent="invalid_recipient")}, platform_for=lambda _: store,
                   now=clock.now)
    observe(container, clock, shop, cmd.ObserveOrder(shop, order(), customer()))
    d.run_once()
    [m] = messages(container, shop)
    assert (m["status"], m["reason"]) == ("skipped", "invalid recipient")


def test_switching_a_journey_off_stops_its_pending_messages(
        container: Container, clock: Clock, shop: int, dispatcher: Dispatcher) -> None:
    observe(container, clock, shop, cmd.ObserveOrder(shop, order(), customer()))
    jr.set_enabled(container, shop, "thank_you", False)
    dispatcher.run_once()
    [m] = messages(container, shop)
    assert (m["status"], m["reason"]) == ("cancelled", "journey switched off")


def test_old_events_from_an_import_enroll_nobody(container: Container, clock: Clock, shop: int) -> None:
    old = order("1", at=T0 - timedelta(days=30))
    handle(cmd.ImportHistory(shop, orders=((old, customer()),)), SqlUnitOfWork(container.sessions), clock)
    observe(container, clock, shop, cmd.ObserveOrder(shop, order("2", at=T0 - timedelta(days=3)), customer()))
    assert messages(container, shop) == []


def test_conditions_on_order_total(container: Container, clock: Clock, shop: int, dispatcher: Dispatcher) -> None:
    version = jr.live_version(container, shop, "thank_you")
    jr.save_version(container, shop, "thank_you", replace(version.journey, steps=(replace(
        version.journey.steps[0], condition=Condition(min_total=Decimal("50"))),)), version.templates)
    observe(container, clock, shop, cmd.ObserveOrder(shop, order("1"), customer()))
    observe(container, clock, shop, cmd.ObserveOrder(shop, order("2", total=Decimal("80")), customer()))
    dispatcher.run_once()
    assert [(m["status"], m["reason"]) for m in messages(container, shop)] == [
        ("skipped", "condition not met"), ("sent", None)]


def test_category_is_kept_per_message(container: Container, clock: Clock, shop: int) -> None:
    observe(container, clock, shop, cmd.ObserveOrder(shop, order(), customer()))
    with container.sessions() as s:
        assert s.scalar(select(t.Message.category)) == Category.TRANSACTIONAL.value


def test_when_the_cap_must_choose_the_higher_priority_goes_first(
        container: Container, clock: Clock, shop: int, dispatcher: Dispatcher) -> None:
    from app.core.enrollment import enroll_on_date

    jr.set_enabled(container, shop, "win_back", True)
    observe(container, clock, shop, cmd.ObserveOrder(shop, order("900", at=T0 - timedelta(days=60)), customer()))
    with SqlUnitOfWork(container.sessions) as uow:  # win-back (priority 40): due 7 days later at 10:00
        [win_back] = [j for j in uow.journeys.live(shop) if j.journey.key == "win_back"]
        assert enroll_on_date(uow, shop, win_back, "WinBack", "501", "900", T0, "after:900", T0)
        uow.commit()
    clock.at = T0 + timedelta(days=7, hours=-2)
    observe(container, clock, shop, cmd.ObserveCheckout(shop, _checkout(at=clock.at), customer()))  # priority 70
    clock.at = max(m["due_at"] for m in messages(container, shop)) + timedelta(minutes=1)
    dispatcher.run_once()
    got = {m["journey"]: (m["status"], m["deferred"]) for m in messages(container, shop)}
    assert got["abandoned_cart"] == ("sent", None) and got["win_back"] == ("pending", "frequency cap")


def test_a_shop_that_skips_over_the_cap_records_the_skip(
        container: Container, clock: Clock, shop: int, dispatcher: Dispatcher) -> None:
    jr.save_messaging(container, shop, {"over_cap": "skip"})
    observe(container, clock, shop, cmd.ObserveOrder(shop, order("900", at=T0 - timedelta(days=40)), customer()))
    observe(container, clock, shop, cmd.ObserveCheckout(shop, _checkout(), customer()))
    observe(container, clock, shop, cmd.ObserveCheckout(shop, replace(_checkout(), external_id="c2"), customer()))
    clock.advance(hours=2)
    dispatcher.run_once()
    carts = [(m["status"], m["reason"]) for m in messages(container, shop) if m["journey"] == "abandoned_cart"]
    assert sorted(carts, key=str) == [("sent", None), ("skipped", "frequency cap")]


def test_the_thank_you_recommends_what_others_bought_with_these_items(
        container: Container, clock: Clock, shop: int, dispatcher: Dispatcher, outbox: OutboxChannel) -> None:
    grinder = OrderLine("9", "Hand grinder", 1, Decimal("59.00"), product_id="p9")
    mug = OrderLine("8", "Enamel mug", 1, Decimal("12.00"), product_id="p8")
    for i, extra in enumerate((grinder, grinder, mug)):
        past = order(str(700 + i), cid=str(800 + i), at=T0 - timedelta(days=30))
        observe(container, clock, shop, cmd.ObserveOrder(shop, replace(past, lines=(past.lines[0], extra)),
                                                         customer(str(800 + i), email=f"c{i}@example.com")))
    observe(container, clock, shop, cmd.ObserveOrder(shop, order(), customer()))
    dispatcher.run_once()
    [mail] = [m for m in read_outbox(outbox) if m["To"] == "ana@example.com"]
    html = mail.get_body(("html",)).get_content()
    assert "Hand grinder" in html and "Enamel mug" not in html  # one subtle pick: the most bought together


def test_a_collection_condition_asks_the_store_what_the_products_belong_to(
        container: Container, clock: Clock, shop: int, dispatcher: Dispatcher, store: FakeStorePlatform) -> None:
    store.collections = {"p1": frozenset({"coffee"}), "p2": frozenset({"brewing"})}
    version = jr.live_version(container, shop, "thank_you")
    jr.save_version(container, shop, "thank_you", replace(version.journey, steps=(replace(
        version.journey.steps[0], condition=Condition(any_collection=frozenset({"coffee"}))),)), version.templates)
    observe(container, clock, shop, cmd.ObserveOrder(shop, order("1"), customer()))
    filters_only = order("2")
    observe(container, clock, shop, cmd.ObserveOrder(shop, replace(filters_only, lines=filters_only.lines[1:]),
                                                     customer()))
    dispatcher.run_once()
    assert [(m["status"], m["reason"]) for m in messages(container, shop)] == [
        ("sent", None), ("skipped", "condition not met")]
