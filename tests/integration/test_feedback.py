"""Routing survey answers and following them up (app/feedback.py) on the real database: a low answer opens its
follow-up item in the answer's own transaction, a high one is recorded once as OrderPraised; the alert goes by
email (the app's own email channel: the local outbox here) and by a Standard Webhooks POST over real HTTP, each
destination's outcome kept, transient failures retried with backoff, permanent ones and too many attempts failed,
and a lease so that two workers never send one alert; staff resolve items; bad settings change nothing."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from standardwebhooks import Webhook

from app import dispatch, feedback, surveys
from app.bootstrap import Container
from app.channels.outbox import OutboxChannel
from app.core.feedback import InvalidRouting, Routing
from app.core.ports import OutboundMessage, SendResult
from app.db import models as t
from tests.integration.test_surveys import NOW, Seeded, seed
from tests.integration.test_webhook_channel import Receiver
from tests.journeys import Clock, read_outbox


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def outbox(container: Container, tmp_path: Path) -> Path:
    """The embedded default's outbox, where the app's own email channel puts what it sends."""
    container.settings = container.settings.with_(outbox_dir=str(tmp_path / "outbox"))
    return tmp_path / "outbox"


def route_to(c: Container, shop_id: int, **settings: Any) -> Routing:
    return feedback.save_settings(c, shop_id, settings)


def item_row(c: Container, shop_id: int) -> t.FeedbackItem | None:
    with c.sessions() as s:
        return s.scalars(select(t.FeedbackItem).where(t.FeedbackItem.shop_id == shop_id)).one_or_none()


def mail(box: Path) -> list[Any]:
    return read_outbox(OutboxChannel(box))


def another_survey(c: Container, x: Seeded, key: str) -> int:
    """A second survey message to the same customer of the same shop (another order's, say)."""
    with c.sessions() as s, s.begin():
        first = s.get(t.Message, x.message_id)
        assert first is not None
        message = t.Message(shop_id=x.shop_id, enrollment_id=first.enrollment_id, journey_id=first.journey_id,
                            step="survey", key=key, customer_external_id=x.customer_id, category="transactional",
                            channel="email", status="sent", due_at=first.due_at, created_at=first.created_at,
                            sent_at=first.sent_at)
        s.add(message)
        s.flush()
        return message.id


def events(c: Container, shop_id: int) -> list[tuple[str, str]]:
    with c.sessions() as s:
        return [(e.type, e.key) for e in s.scalars(select(t.EventRow).where(t.EventRow.shop_id == shop_id))]


# --- routing an answer -----------------------------------------------------------------------------------------


def test_a_low_answer_opens_one_item_that_a_changed_answer_updates(container: Container) -> None:
    c = container
    x = seed(c)
    route_to(c, x.shop_id, emails="ops@example.com")
    surveys.answer(c, x.message_id, 2, 8, "The bag was torn.", NOW)
    first = item_row(c, x.shop_id)
    assert first is not None
    assert (first.status, first.reason, first.alert_status, first.customer_external_id, first.order_external_id) == (
        "open", "low_satisfaction", "pending", x.customer_id, "order-1")
    later = NOW + timedelta(minutes=10)
    surveys.answer(c, x.message_id, 3, 4, "Still torn, and slow.", later)  # still low, now as a detractor
    again = item_row(c, x.shop_id)
    assert again is not None and (again.id, again.reason, again.created_at, again.updated_at) == (
        first.id, "detractor", NOW, later)
    surveys.answer(c, x.message_id, 5, 10, "Sorted out, thank you!", later + timedelta(minutes=1))  # high now
    kept = item_row(c, x.shop_id)
    assert kept is not None and (kept.status, kept.reason) == ("open", "detractor")  # staff close it, not the answer
    [listed] = feedback.items(c, x.shop_id)
    assert (listed.score, listed.nps, listed.comment) == (5, 10, "Sorted out, thank you!")  # the answer as it is now
    assert events(c, x.shop_id) == [("OrderPraised", f"order:order-1:praised:{x.message_id}")]


def test_an_answer_that_becomes_low_later_opens_its_item_then_and_praise_is_recorded_once(container: Container) -> None:
    c = container
    x = seed(c)
    surveys.answer(c, x.message_id, 4, 9, None, NOW)  # high: praised
    surveys.answer(c, x.message_id, 5, 10, "Even better.", NOW + timedelta(minutes=1))  # high again: not twice
    assert item_row(c, x.shop_id) is None
    assert len(events(c, x.shop_id)) == 1
    surveys.answer(c, x.message_id, 1, 2, "Broke after a day.", NOW + timedelta(days=2))
    opened = item_row(c, x.shop_id)
    assert opened is not None and (opened.reason, opened.alert_status, opened.created_at) == (
        "both", "none", NOW + timedelta(days=2))  # no destination set: nothing to send, still followed up
    surveys.answer(c, x.message_id, 4, 9, None, NOW + timedelta(days=3))  # praised again: still recorded once
    assert len(events(c, x.shop_id)) == 1


def test_middling_answers_and_answers_about_no_known_order_are_neither(container: Container) -> None:
    c = container
    x = seed(c)
    surveys.answer(c, x.message_id, 3, 8, None, NOW)  # passive
    guest = seed(c, customer_id="cust-2", order_name=None)
    with c.sessions() as s, s.begin():  # a message whose enrollment names no order at all
        s.execute(update(t.Enrollment).where(t.Enrollment.shop_id == guest.shop_id).values(order_external_id=None))
    surveys.answer(c, guest.message_id, 5, 10, None, NOW)  # high, but nothing to review
    for shop_id in (x.shop_id, guest.shop_id):
        assert item_row(c, shop_id) is None and events(c, shop_id) == []
    route_to(c, x.shop_id, low_satisfaction=3, low_nps=8, high_nps=10, high_satisfaction=5)  # the shop's own lines
    surveys.answer(c, x.message_id, 3, 8, None, NOW + timedelta(minutes=1))
    opened = item_row(c, x.shop_id)
    assert opened is not None and opened.reason == "both"


def test_an_answer_and_its_item_are_committed_together_or_not_at_all(container: Container,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    c = container
    x = seed(c)
    real = feedback.route

    def route_then_fail(*args: Any) -> feedback.Routed:
        real(*args)
        raise RuntimeError("the database went away")

    monkeypatch.setattr(feedback, "route", route_then_fail)
    with pytest.raises(RuntimeError):
        surveys.answer(c, x.message_id, 1, 0, "Awful.", NOW)
    with c.sessions() as s:
        assert s.scalar(select(t.SurveyResponse.id)) is None and s.scalar(select(t.FeedbackItem.id)) is None


# --- settings ------------------------------------------------------------------------------------------------


def test_settings_are_saved_checked_and_a_refusal_changes_nothing(container: Container) -> None:
    c = container
    x = seed(c)
    assert feedback.settings_of(c, x.shop_id) == Routing()
    saved = route_to(c, x.shop_id, emails=["Ops@Example.com", "cs@example.com"], webhook_url="http://127.0.0.1:9/hook")
    assert saved.emails == ("ops@example.com", "cs@example.com") and feedback.settings_of(c, x.shop_id) == saved
    with pytest.raises(InvalidRouting) as refused:
        route_to(c, x.shop_id, emails="nope", low_nps=9, low_satisfaction=0)  # 9 is not below the high NPS of 9
    assert set(refused.value.problems) == {"emails", "low_satisfaction", "high_nps"}
    c.settings = c.settings.with_(env="production")  # outside development: https to a public host only
    for url in ("http://hooks.example.com/x", "https://127.0.0.1/hook", "https://user:pw@hooks.example.com/"):
        with pytest.raises(InvalidRouting) as unsafe:
            route_to(c, x.shop_id, webhook_url=url)
        assert set(unsafe.value.problems) == {"webhook_url"}
    assert feedback.settings_of(c, x.shop_id) == saved


# --- alerts --------------------------------------------------------------------------------------------------


def low_answer(c: Container, **settings: Any) -> tuple[Seeded, int]:
    x = seed(c)
    route_to(c, x.shop_id, **settings)
    surveys.answer(c, x.message_id, 1, 3, "The grinder arrived broken.", NOW)
    found = item_row(c, x.shop_id)
    assert found is not None
    return x, found.id


def test_an_alert_is_emailed_and_posted_signed_once(container: Container, outbox: Path, receiver: Receiver) -> None:
    c = container
    x, item_id = low_answer(c, emails="ops@example.com, cs@example.com", webhook_url=f"{receiver.origin}/hook")
    assert feedback.deliver_due(c, NOW) == 1
    mails = mail(outbox)
    assert sorted(m["To"] for m in mails) == ["cs@example.com", "ops@example.com"]
    first = mails[0]
    assert str(first["Subject"]) == "Low survey answer from Mina: 1/5, NPS 3"
    text = first.get_body(("plain",)).get_content()
    for expected in ("Mina <cust-1@example.com>", "Order: #1001", "Satisfaction: 1 / 5", "Likelihood to recommend: 3 / 10",
                     "Comment: The grinder arrived broken.", "https://admin.shopify.com/store/cust-1/apps/test-api-key",
                     "Mar 9, 2026"):
        assert expected in text, expected
    assert "The grinder arrived broken." in first.get_body(("html",)).get_content()
    [delivery] = receiver.deliveries
    assert delivery.headers["webhook-id"] == f"feedback-alert:{item_id}"
    Webhook(dispatch.webhook_secret(c, x.shop_id)).verify(delivery.body, delivery.headers)  # raises unless signed
    body = json.loads(delivery.body)
    assert body["type"] == "feedback.low_answer"
    meta = body["data"]["metadata"]
    assert (meta["item_id"], meta["score"], meta["nps"], meta["comment"], meta["reason"]) == (
        item_id, 1, 3, "The grinder arrived broken.", "both")
    assert meta["customer"] == {"id": "cust-1", "name": "Mina", "email": "cust-1@example.com"}
    assert meta["order"] == {"id": "order-1", "name": "#1001"}
    done = item_row(c, x.shop_id)
    assert done is not None and (done.alert_status, done.alert_attempts, done.alert_lease_until) == ("sent", 1, None)
    assert {k: v["status"] for k, v in (done.alert_detail or {}).items()} == {
        "email:ops@example.com": "sent", "email:cs@example.com": "sent", "webhook": "sent"}
    assert feedback.deliver_due(c, NOW + timedelta(hours=1)) == 0  # sent: never again
    assert len(mail(outbox)) == 2 and len(receiver.deliveries) == 1


def test_the_alert_is_in_the_shops_language(container: Container, outbox: Path) -> None:
    c = container
    x = seed(c, shop_locale="ja", locale="ko")  # the merchant reads the shop's language, not the customer's
    route_to(c, x.shop_id, emails="ops@example.com")
    surveys.answer(c, x.message_id, 2, 9, None, NOW)
    feedback.deliver_due(c, NOW)
    [japanese] = mail(outbox)
    assert str(japanese["Subject"]) == "Mina様から低評価の回答：2/5、NPS 9"
    assert "コメント: コメントなし" in japanese.get_body(("plain",)).get_content()


def test_a_transient_failure_is_retried_with_backoff_without_sending_again_what_went(
        container: Container, outbox: Path, receiver: Receiver) -> None:
    c = container
    x, item_id = low_answer(c, emails="ops@example.com", webhook_url=f"{receiver.origin}/hook")
    receiver.answers = [(503, {}), (503, {"Retry-After": "600"})]
    assert feedback.any_due(c, NOW)  # what `encore worker` asks before it enqueues a delivery
    feedback.deliver_due(c, NOW)
    row = item_row(c, x.shop_id)
    assert row is not None and (row.alert_status, row.alert_attempts) == ("pending", 1)
    assert row.alert_next_at is not None and NOW + timedelta(seconds=45) <= row.alert_next_at <= NOW + timedelta(seconds=75)
    assert "webhook: HTTP 503" in (row.alert_error or "")
    assert not feedback.any_due(c, row.alert_next_at - timedelta(seconds=1)) and feedback.any_due(c, row.alert_next_at)
    assert feedback.deliver_due(c, row.alert_next_at - timedelta(seconds=1)) == 0  # not yet
    feedback.deliver_due(c, row.alert_next_at)
    row = item_row(c, x.shop_id)
    assert row is not None and row.alert_attempts == 2 and row.alert_next_at is not None
    assert row.alert_next_at - NOW >= timedelta(seconds=600)  # the receiver's Retry-After, honoured
    feedback.deliver_due(c, row.alert_next_at)
    row = item_row(c, x.shop_id)
    assert row is not None and (row.alert_status, row.alert_attempts, row.alert_error) == ("sent", 3, None)
    assert len(mail(outbox)) == 1  # the email went once
    assert [d.headers["webhook-id"] for d in receiver.deliveries] == [f"feedback-alert:{item_id}"] * 3  # one id: dedupe
    assert not feedback.any_due(c, NOW + timedelta(days=1))  # sent: nothing left to enqueue


def test_a_refusal_fails_at_once_and_retries_stop_after_the_bound(container: Container, outbox: Path,
                                                                  receiver: Receiver) -> None:
    c = container
    gone, _ = low_answer(c, webhook_url=f"{receiver.origin}/hook")
    receiver.answers = [(410, {})]
    feedback.deliver_due(c, NOW)
    row = item_row(c, gone.shop_id)
    assert row is not None and (row.alert_status, row.alert_attempts) == ("failed", 1)
    assert (row.alert_detail or {})["webhook"]["status"] == "failed" and "410" in (row.alert_error or "")

    down = seed(c, customer_id="cust-2")
    route_to(c, down.shop_id, webhook_url=f"{receiver.origin}/hook")
    surveys.answer(c, down.message_id, 1, 1, None, NOW)
    receiver.answers = [(500, {})] * feedback.MAX_ATTEMPTS
    at = NOW
    for _ in range(feedback.MAX_ATTEMPTS):
        assert feedback.deliver_due(c, at) == 1
        row = item_row(c, down.shop_id)
        assert row is not None
        at = row.alert_next_at or at
    assert (row.alert_status, row.alert_attempts, row.alert_next_at) == ("failed", feedback.MAX_ATTEMPTS, None)
    assert (row.alert_detail or {})["webhook"]["status"] == "failed"
    assert feedback.deliver_due(c, at + timedelta(days=1)) == 0
    assert len(receiver.deliveries) == 1 + feedback.MAX_ATTEMPTS


class Slow:
    """An email channel that takes its time and counts what it was given."""

    name = "email"

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.lock = threading.Lock()

    def send(self, message: OutboundMessage) -> SendResult:
        time.sleep(0.2)
        with self.lock:
            self.sent.append(message.key)
        return SendResult.sent(message.key)


def test_two_workers_never_send_one_alert_and_a_dead_workers_lease_runs_out(container: Container) -> None:
    c = container
    for n in range(1, 6):
        x = seed(c, customer_id=f"cust-{n}")
        route_to(c, x.shop_id, emails="ops@example.com")
        surveys.answer(c, x.message_id, 1, 1, None, NOW)
    channel = Slow()
    counts: list[int] = []
    workers = [threading.Thread(target=lambda: counts.append(feedback.deliver_due(c, NOW, {"email": channel})))
               for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sum(counts) == 5 and len(set(channel.sent)) == len(channel.sent) == 5

    dead = seed(c, customer_id="cust-9")  # a worker claimed this one, then died before recording anything
    route_to(c, dead.shop_id, emails="ops@example.com")
    surveys.answer(c, dead.message_id, 1, 1, None, NOW)
    with c.sessions() as s, s.begin():
        s.execute(update(t.FeedbackItem).where(t.FeedbackItem.shop_id == dead.shop_id)
                  .values(alert_lease_until=NOW + feedback.LEASE))
    assert feedback.deliver_due(c, NOW + timedelta(minutes=1), {"email": channel}) == 0  # still leased
    assert feedback.deliver_due(c, NOW + feedback.LEASE + timedelta(seconds=1), {"email": channel}) == 1
    row = item_row(c, dead.shop_id)
    assert row is not None and row.alert_status == "sent" and len(channel.sent) == 6


def test_an_alert_with_no_destination_left_is_none(container: Container) -> None:
    c = container
    x, _ = low_answer(c, emails="ops@example.com")
    route_to(c, x.shop_id)  # the shop took its address away before the alert went
    assert feedback.deliver_due(c, NOW, {"email": Slow()}) == 1
    row = item_row(c, x.shop_id)
    assert row is not None and row.alert_status == "none"


# --- staff ---------------------------------------------------------------------------------------------------


def test_items_list_open_first_and_are_resolved_once_with_a_note(container: Container) -> None:
    c = container
    c.clock = Clock(NOW)  # type: ignore[assignment]
    x, older = low_answer(c)
    surveys.answer(c, another_survey(c, x, "survey:cust-1:second"), 2, 7, None, NOW + timedelta(hours=1))
    assert [i.id for i in feedback.items(c, x.shop_id)] == [older + 1, older]  # newest first
    for staff, note, field in (("", "Called her", "staff"), ("Jun", "  ", "note"), (None, "x", "staff"),
                               ("Jun", "x" * 2001, "note"), ("J" * 256, "ok", "staff"), ("Jun", 42, "note")):
        with pytest.raises(feedback.InvalidResolution) as refused:
            feedback.resolve(c, x.shop_id, older + 1, staff=staff, note=note, now=NOW)
        assert refused.value.field == field
    done = feedback.resolve(c, x.shop_id, older + 1, staff=" Jun ", note="Sent a new grinder.", now=NOW)
    assert (done.status, done.resolved_by, done.resolution_note, done.resolved_at) == (
        "resolved", "Jun", "Sent a new grinder.", NOW)
    assert [i.id for i in feedback.items(c, x.shop_id)] == [older, older + 1]  # open first
    assert [i.id for i in feedback.items(c, x.shop_id, "resolved")] == [older + 1]
    with pytest.raises(feedback.AlreadyResolved):
        feedback.resolve(c, x.shop_id, older + 1, staff="Kim", note="again", now=NOW)
    other = seed(c, customer_id="cust-3")
    with pytest.raises(feedback.UnknownItem):  # another shop's item does not exist for this one
        feedback.resolve(c, other.shop_id, older, staff="Kim", note="not mine", now=NOW)
    with pytest.raises(ValueError):
        feedback.items(c, x.shop_id, "closed")
    [still] = feedback.items(c, x.shop_id, "open")
    assert still.id == older and still.resolved_by is None
