"""Webhook intake and processing against the real database: bad input, exactly once, any order, recovery."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from app import inbox
from app.bootstrap import Container
from app.db import models as t
from app.simulator.shopify import sign
from tests.helpers import add_shop, delivery, state, wipe_shop_data
from tests.samples import shopify as sample


def count(c: Container, model: Any, *where: Any) -> int:
    with c.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def post(client: FlaskClient, body: bytes, headers: dict[str, str]) -> Any:
    return client.post("/webhooks/shopify", data=body, headers=headers)


def drain(c: Container) -> None:
    assert c.queue.drain(10)  # type: ignore[attr-defined]


# --- bad input: a clear answer and nothing changed -----------------------------------------------------------

def test_forged_or_missing_signature_is_401_and_stores_nothing(client: FlaskClient, container: Container) -> None:
    add_shop(container)
    body, headers = delivery("orders/create", sample.ORDER)
    assert post(client, body, {**headers, "X-Shopify-Hmac-Sha256": sign(body, "not-the-secret")}).status_code == 401
    assert post(client, body + b" ", headers).status_code == 401
    del headers["X-Shopify-Hmac-Sha256"]
    assert post(client, body, headers).status_code == 401
    assert count(container, t.InboxRow) == 0


def test_unknown_shop_is_401_and_oversized_body_413(client: FlaskClient, container: Container) -> None:
    add_shop(container)
    body, headers = delivery("orders/create", sample.ORDER, shop="stranger.myshopify.com")
    response = post(client, body, headers)
    assert (response.status_code, response.text) == (401, "unknown shop")
    big = b'{"x": "' + b"a" * container.settings.webhook_max_bytes + b'"}'
    body, headers = delivery("orders/create", None, body=big)
    assert post(client, body, headers).status_code == 413
    assert count(container, t.InboxRow) == 0


def test_malformed_json_is_stored_parked_with_its_error_and_acknowledged(client: FlaskClient, container: Container) -> None:
    add_shop(container)
    body, headers = delivery("orders/create", None, body=b'{"id": 1, "total_price": ')
    assert post(client, body, headers).status_code == 200
    drain(container)
    with container.sessions() as s:
        row = s.scalars(select(t.InboxRow)).one()
    assert row.status == "parked" and row.last_error is not None and row.last_error.startswith("malformed payload")
    assert count(container, t.Order) == 0


def test_unknown_topic_is_acknowledged_and_ignored(client: FlaskClient, container: Container) -> None:
    add_shop(container)
    body, headers = delivery("products/update", {"id": 1})
    response = post(client, body, headers)
    assert (response.status_code, response.text) == (200, "topic ignored")
    assert count(container, t.InboxRow) == 0


def test_a_delivery_repeated_three_times_is_stored_and_applied_once(client: FlaskClient, container: Container) -> None:
    shop_id = add_shop(container)
    body, headers = delivery("orders/create", sample.ORDER, event_id="evt-42")
    for _ in range(3):
        assert post(client, body, headers).status_code == 200
    drain(container)
    assert count(container, t.InboxRow) == 1
    assert count(container, t.Order) == 1
    assert count(container, t.OrderLine) == 3
    assert {k for k, _ in state(container, shop_id)["events"]} == {
        "order:450789469:placed", "customer:207119551:2014-01-22T20:58:27+00:00"}


def test_a_nul_character_in_the_stores_text_is_dropped_not_a_parked_order(client: FlaskClient,
                                                                            container: Container) -> None:
    """JSON may carry \\u0000 in a name or a note; PostgreSQL's text cannot hold it, and the order used to fail
    there until it was parked. The character is dropped where the payload is read, on either database."""
    shop_id = add_shop(container)
    order = copy.deepcopy(sample.ORDER)
    order["customer"]["first_name"] = "Jo\x00hn"
    order["note"] = "gift\x00 wrap"
    order["line_items"][0]["title"] = "IPod\x00 Nano"
    body, headers = delivery("orders/create", order, event_id="evt-nul")
    assert b"\\u0000" in body and post(client, body, headers).status_code == 200
    drain(container)
    with container.sessions() as s:
        row = s.scalars(select(t.InboxRow)).one()
        customer = s.scalars(select(t.Customer).where(t.Customer.shop_id == shop_id)).one()
        titles = set(s.scalars(select(t.OrderLine.title).where(t.OrderLine.shop_id == shop_id)))
    assert (row.status, row.last_error) == ("done", None)
    assert customer.first_name == "John" and "IPod Nano" in titles and count(container, t.Order) == 1


def test_both_header_spellings_are_accepted(client: FlaskClient, container: Container) -> None:
    add_shop(container)
    body, headers = delivery("customers/update", sample.CUSTOMER)
    events_style = {k.replace("X-Shopify-", "Shopify-"): v for k, v in headers.items()}
    assert post(client, body, events_style).status_code == 200
    drain(container)
    assert count(container, t.Customer) == 1


# --- any order, any duplicates: the same database -----------------------------------------------------------

def _scenario() -> list[tuple[str, dict[str, Any]]]:
    created = copy.deepcopy(sample.ORDER)
    created["fulfillments"] = []
    paid = dict(copy.deepcopy(created), financial_status="paid", updated_at="2008-01-10T11:05:00-05:00")
    shipped = dict(copy.deepcopy(sample.FULFILLMENT), status="success", updated_at="2008-01-11T09:00:00-05:00")
    delivered = dict(shipped, shipment_status="delivered", updated_at="2008-01-13T09:00:00-05:00")
    refund = copy.deepcopy(sample.REFUND)
    final = dict(copy.deepcopy(paid), financial_status="partially_refunded", updated_at="2016-06-20T13:40:00-04:00",
                 fulfillments=[delivered], refunds=[refund])
    return [("orders/create", created), ("orders/paid", paid), ("fulfillments/create", shipped),
            ("fulfillments/update", delivered), ("refunds/create", refund), ("orders/updated", final),
            ("customers/update", sample.CUSTOMER)]


SCENARIO = _scenario()


def _apply(c: Container, shop_id: int, stream: list[int]) -> dict[str, Any]:
    wipe_shop_data(c, shop_id)
    for n, index in enumerate(stream):
        topic, payload = SCENARIO[index]
        # A duplicate keeps its event id; the store inserts it once.
        inbox.store(c, shop_id=shop_id, platform="shopify", topic=topic, event_id=f"ev-{index}",
                    body=json.dumps(payload).encode())
        del n
    for _ in range(len(SCENARIO)):  # what came too early is retried: run until nothing is left waiting
        drain(c)
        with c.sessions() as s, s.begin():
            s.execute(update(t.InboxRow).where(t.InboxRow.status == "pending").values(next_attempt_at=datetime.now(UTC)))
        if not inbox.relay(c):
            break
    drain(c)
    assert count(c, t.InboxRow, t.InboxRow.status != "done") == 0
    return state(c, shop_id)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.permutations(range(len(SCENARIO))), st.lists(st.integers(0, len(SCENARIO) - 1), max_size=6))
def test_shuffled_and_duplicated_deliveries_yield_the_clean_state(container: Container, order: list[int],
                                                                  dupes: list[int]) -> None:
    shop_id = container.shops.find("shopify", "prop.myshopify.com")
    if shop_id is None:
        add_shop(container, "prop.myshopify.com")
        container.shops.forget("shopify", "prop.myshopify.com")
    sid = container.shops.find("shopify", "prop.myshopify.com")
    assert sid is not None
    clean = _apply(container, sid.id, list(range(len(SCENARIO))))
    messy = _apply(container, sid.id, [*order, *dupes])
    assert messy == clean
    [o] = clean["orders"]
    assert (o[1], o[2], o[4]) == ("partially_refunded", "partially_refunded", 209)


# --- recovery: the database is the source of truth ---------------------------------------------------------

class DroppingQueue:
    """A queue that loses every job, like Redis restarted with its data gone."""

    def __init__(self) -> None:
        self.lost: list[tuple[str, tuple[Any, ...]]] = []

    def enqueue(self, job: str, *args: Any) -> None:
        self.lost.append((job, args))

    def enqueue_many(self, job: str, ids: Any, shops: Any = None) -> None:
        self.lost.extend((job, (i,)) for i in ids)

    def nudge(self) -> None:
        self.lost.append(("nudge", ()))

    def oldest_waiting(self) -> list[Any]:
        return [None]  # the jobs it took are gone

    def backlog(self) -> list[int]:
        return [0]


def test_a_lost_job_and_a_dead_worker_are_recovered_by_the_relay(container: Container) -> None:
    shop_id = add_shop(container)
    real_queue, dropping = container.queue, DroppingQueue()
    container.queue = dropping  # type: ignore[assignment]
    lost = inbox.store(container, shop_id=shop_id, platform="shopify", topic="orders/create", event_id="a",
                       body=json.dumps(sample.ORDER).encode())
    crashed = inbox.store(container, shop_id=shop_id, platform="shopify", topic="customers/update", event_id="b",
                          body=json.dumps(sample.CUSTOMER).encode())
    assert inbox.relay(container) == 2 and inbox.relay(container) == 0  # handed over once ... and lost
    assert dropping.lost[-2:] == [("process_inbox", (lost,)), ("process_inbox", (crashed,))]
    container.queue = real_queue
    past = datetime.now(UTC) - timedelta(minutes=5)
    with container.sessions() as s, s.begin():  # one row was claimed by a worker that died mid-job
        s.execute(update(t.InboxRow).where(t.InboxRow.id == crashed).values(
            status="processing", lease_until=past, attempts=1))
    assert inbox.relay(container) == 1  # the dead worker's row at once; the lost job only once it is overdue
    assert inbox.relay(container, lost_after_s=0) == 2
    drain(container)
    with container.sessions() as s:
        statuses = dict(s.execute(select(t.InboxRow.id, t.InboxRow.status)).all())
    assert statuses == {lost: "done", crashed: "done"}
    assert count(container, t.Order) == 1 and count(container, t.Customer) == 1


class RefusingQueue(DroppingQueue):
    def enqueue_many(self, job: str, ids: Any, shops: Any = None) -> None:
        raise ConnectionError("Redis is restarting")


def test_a_queue_that_refuses_the_batch_leaves_the_rows_due(container: Container) -> None:
    shop_id = add_shop(container)
    real_queue = container.queue
    container.queue = RefusingQueue()  # type: ignore[assignment]
    row = inbox.store(container, shop_id=shop_id, platform="shopify", topic="orders/create", event_id="a",
                      body=json.dumps(sample.ORDER).encode())
    with pytest.raises(ConnectionError):
        inbox.relay(container)
    with container.sessions() as s:
        stored = s.get(t.InboxRow, row)
        assert stored is not None and (stored.status, stored.enqueued_at) == ("pending", None)  # not marked handed over
    container.queue = real_queue
    assert inbox.relay(container) == 1  # at once, not a minute later as a lost job
    drain(container)
    assert count(container, t.Order) == 1


def test_a_row_that_keeps_failing_is_parked_visible_and_retryable(container: Container) -> None:
    shop_id = add_shop(container)
    row = inbox.store(container, shop_id=shop_id, platform="shopify", topic="fulfillments/create", event_id="f",
                      body=json.dumps(sample.FULFILLMENT).encode())
    assert row is not None
    drain(container)
    outcomes = []
    for _ in range(container.settings.inbox_max_attempts):
        with container.sessions() as s, s.begin():
            s.execute(update(t.InboxRow).where(t.InboxRow.id == row).values(next_attempt_at=datetime.now(UTC)))
        outcomes.append(inbox.process(container, row))
    assert outcomes[-1] == "parked" or "parked" in outcomes
    with container.sessions() as s:
        parked = s.get(t.InboxRow, row)
        assert parked is not None and parked.status == "parked"
        assert parked.last_error == "order 450789469 not received yet"
    # The order arrives; staff retry the parked row from the admin and it goes through.
    inbox.store(container, shop_id=shop_id, platform="shopify", topic="orders/create", event_id="o",
                body=json.dumps(sample.ORDER).encode())
    drain(container)
    assert inbox.retry_parked(container, shop_id, row)
    assert not inbox.retry_parked(container, shop_id + 999, row)  # another shop cannot touch it
    drain(container)
    with container.sessions() as s:
        done = s.get(t.InboxRow, row)
        assert done is not None and done.status == "done"
