"""Importing a store's history end to end over HTTP, on both platforms: Shopify through a bulk operation
(JSONL streamed, resumed with a Range request), WooCommerce through paginated REST (a failing page retried,
never skipped). The import must equal what the webhooks alone would have produced, also while they arrive."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests
from sqlalchemy import func, select, update

from app import imports, inbox
from app.db.models import HistoryImport, InboxRow, Order, Shop
from app.simulator.woocommerce import WooCommerceSimulator
from tests.helpers import state, wipe_shop_data

SHOP = "history-store.myshopify.com"


def _install(sim: Any, c: Any) -> int:
    sim.add_store(SHOP, name="History Store", currency="USD", timezone="America/New_York", locale="en")
    assert requests.get(sim.embedded_app_url(SHOP), timeout=10).status_code == 200
    assert c.queue.drain(20)
    with c.sessions() as s:
        return int(s.scalars(select(Shop.id).where(Shop.domain == SHOP)).one())


def _activity(sim: Any, n: int) -> None:
    """Orders with a life: paid, shipped, delivered, refunded, cancelled, each told by its webhooks."""
    for i in range(n):
        order = sim.place_order(SHOP)
        if i % 2 == 0:
            sim.fulfill(SHOP, order["id"])
        if i % 4 == 0:
            sim.deliver(SHOP, order["id"])
        if i % 3 == 0:
            sim.refund(SHOP, order["id"])
        if i % 5 == 4:
            sim.cancel(SHOP, order["id"])


def _replay_webhooks_alone(c: Any, shop_id: int) -> dict[str, Any]:
    """What the webhooks alone produce: the shop's data wiped, every stored delivery processed again."""
    with c.sessions() as s, s.begin():
        bodies = [(r.topic, r.event_id, r.body) for r in s.scalars(select(InboxRow).where(InboxRow.shop_id == shop_id))]
    wipe_shop_data(c, shop_id)
    for topic, event_id, body in bodies:
        inbox.store(c, shop_id=shop_id, platform="shopify", topic=topic, event_id=event_id, body=body)
    assert c.queue.drain(30)
    for _ in range(20):  # a fulfillment that came before its order waits out a short backoff
        with c.sessions() as s:
            if not s.scalar(select(func.count()).select_from(InboxRow).where(InboxRow.status.in_(("pending", "processing")))):
                break
            s.execute(update(InboxRow).values(next_attempt_at=None))
            s.commit()
        inbox.relay(c)
        assert c.queue.drain(30)
    return state(c, shop_id)


def test_the_shopify_import_equals_what_the_webhooks_produced(live: Any) -> None:
    _, sim, c = live
    shop_id = _install(sim, c)  # installing queues an import of the (empty) history, which finishes
    assert imports.latest(c, shop_id) is not None and imports.latest(c, shop_id).status == "done"  # type: ignore[union-attr]
    _activity(sim, 12)
    assert c.queue.drain(30)
    by_webhooks = state(c, shop_id)
    assert len(by_webhooks["orders"]) == 12 and by_webhooks["refunds"] and by_webhooks["fulfillments"]

    # Importing what the webhooks already brought changes nothing and records no new event.
    import_id = imports.start(c, shop_id, enqueue=False)
    assert imports.run(c, import_id) == "done"
    assert state(c, shop_id) == by_webhooks

    # From nothing, the import alone gives exactly what the webhooks gave.
    wipe_shop_data(c, shop_id)
    with c.sessions() as s, s.begin():
        s.execute(update(Shop).where(Shop.id == shop_id).values(installed_at=func.now()))
    with c.sessions() as s, s.begin():  # analytics refreshed last night...
        s.execute(update(Shop).where(Shop.id == shop_id).values(analytics_at=func.now()))
    import_id = imports.start(c, shop_id, enqueue=False)
    assert imports.run(c, import_id) == "done"
    assert state(c, shop_id) == by_webhooks
    with c.sessions() as s:  # ... are refreshed again at the next sweep, on the whole history
        assert s.scalar(select(Shop.analytics_at).where(Shop.id == shop_id)) is None
    progress = imports.latest(c, shop_id)
    assert progress is not None and (progress.orders, progress.total_orders, progress.customers) == (12, 12, 12)
    assert any("refundLineItems" in q for q in sim.graphql_calls)  # refund lines come from nodes(ids:)


def test_importing_while_webhooks_arrive_ends_as_the_webhooks_alone_would(live: Any) -> None:
    _, sim, c = live
    shop_id = _install(sim, c)
    _activity(sim, 10)
    assert c.queue.drain(30)
    sim.bulk_delay = 0.3
    import_id = imports.start(c, shop_id, enqueue=False)
    outcome: list[str] = []
    worker = threading.Thread(target=lambda: outcome.append(imports.run(c, import_id)))
    worker.start()
    _activity(sim, 8)  # while the bulk operation runs and its result is read
    worker.join(60)
    assert outcome == ["done"]
    assert c.queue.drain(30)
    together = state(c, shop_id)
    assert len(together["orders"]) == 18
    assert _replay_webhooks_alone(c, shop_id) == together


def test_a_shopify_import_resumes_after_a_crash_from_where_it_stopped(live: Any) -> None:
    _, sim, c = live
    shop_id = _install(sim, c)
    sim.seed_history(SHOP, 2_500)  # generated past orders: no webhooks ever told of them
    import_id = imports.start(c, shop_id, enqueue=False)

    def crash(progress: imports.Progress) -> None:
        if progress.phase == "orders" and progress.orders >= 1_000:
            raise KeyboardInterrupt("the worker is killed")

    with pytest.raises(KeyboardInterrupt):
        imports.run(c, import_id, on_progress=crash)
    with c.sessions() as s:
        row = s.get(HistoryImport, import_id)
        assert row is not None and (row.status, row.phase) == ("running", "orders")
        offset = row.cursor["offset"]
        # The cursor and counts are committed with the orders they stand for (a batch already being written
        # when the worker stopped may have landed too): resuming starts right after what is in.
        stored = s.scalar(select(func.count()).select_from(Order).where(Order.shop_id == shop_id))
        assert offset > 0 and row.orders == stored and row.orders in (1_000, 2_000)
    assert imports.run(c, import_id) == "skipped"  # its lease still holds: nobody else takes it yet
    with c.sessions() as s, s.begin():  # ...time passes: the dead worker's lease runs out
        s.execute(update(HistoryImport).where(HistoryImport.id == import_id).values(lease_until=func.now()))
    assert imports.relay(c) == 1  # the sweeper queues it again; the in-process worker resumes it
    assert c.queue.drain(60)
    assert sim.bulk_range_requests[-1] == f"bytes={offset}-"  # only the rest of the file was read
    progress = imports.latest(c, shop_id)
    assert progress is not None and (progress.status, progress.orders, progress.total_orders) == ("done", 2_500, 2_500)
    with c.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Order).where(Order.shop_id == shop_id)) == 2_500
        refunded = s.scalar(select(func.count()).select_from(Order).where(
            Order.shop_id == shop_id, Order.status == "partially_refunded"))
        cancelled = s.scalar(select(func.count()).select_from(Order).where(
            Order.shop_id == shop_id, Order.status == "cancelled"))
    assert refunded == len([i for i in range(2_500) if i % 17 == 0 and i % 23 != 0])
    assert cancelled == len([i for i in range(2_500) if i % 23 == 0])


def test_an_expired_bulk_result_starts_the_phase_again(live: Any) -> None:
    _, sim, c = live
    shop_id = _install(sim, c)
    sim.seed_history(SHOP, 30)
    import_id = imports.start(c, shop_id, enqueue=False)
    assert imports.run(c, import_id) == "done"
    with c.sessions() as s, s.begin():  # a resumed import whose operation Shopify no longer has
        s.execute(update(HistoryImport).where(HistoryImport.id == import_id).values(
            status="queued", phase="orders", cursor={"operation": "gid://shopify/BulkOperation/1", "offset": 10}))
    assert imports.run(c, import_id) == "continued"
    with c.sessions() as s:
        row = s.get(HistoryImport, import_id)
        assert row is not None and "operation" not in row.cursor
    assert c.queue.drain(30)
    assert imports.latest(c, shop_id).status == "done"  # type: ignore[union-attr]


def _connect_woo(server: Any, woo: WooCommerceSimulator, c: Any) -> int:
    start = requests.get(f"{server.url}/woocommerce/connect", params={"store_url": woo.home_url},
                         allow_redirects=False, timeout=10)
    assert requests.get(start.headers["Location"], timeout=20).status_code == 200
    assert c.queue.drain(30)
    with c.sessions() as s:
        return int(s.scalars(select(Shop.id).where(Shop.platform == "woocommerce")).one())


def test_a_woocommerce_store_is_imported_on_connect_and_a_failing_page_is_read_again(
        live: Any, woocommerce_store: WooCommerceSimulator) -> None:
    server, _, c = live
    woo = woocommerce_store
    people = [woo.add_customer(f"p{i}@example.com", first_name=f"P{i}") for i in range(7)]
    placed = [woo.place_order(customer_id=people[i % 7]["id"], email=f"p{i % 7}@example.com",
                              status=["processing", "completed", "on-hold", "cancelled"][i % 4]) for i in range(850)]
    woo.place_order(status="checkout-draft")  # a cart in progress: never imported
    woo.fail_page(7, status=503, times=50)  # page 7 keeps failing for a while (pages go five to a transaction)
    shop_id = _connect_woo(server, woo, c)  # connecting queues the import
    progress = imports.latest(c, shop_id)
    assert progress is not None and progress.status == "queued" and "503" in (progress.error or "")
    with c.sessions() as s:
        stuck = s.scalars(select(HistoryImport).where(HistoryImport.shop_id == shop_id)).one()
        assert stuck.cursor.get("page") == 6  # it stopped before the group holding the failing page, not past it
    woo.page_faults.clear()
    with c.sessions() as s, s.begin():  # the backoff is over
        s.execute(update(HistoryImport).values(next_attempt_at=func.now()))
    assert imports.relay(c) == 1 and c.queue.drain(60)
    progress = imports.latest(c, shop_id)
    assert progress is not None and progress.status == "done", progress
    assert (progress.customers, progress.orders, progress.total_orders) == (7, 851, 851)
    with c.sessions() as s:
        stored = set(s.scalars(select(Order.external_id).where(Order.shop_id == shop_id)))
    assert stored == {str(o["id"]) for o in placed}
    pages = [q.get("page") for m, p, q in woo.requests if m == "GET" and p == "orders"]
    assert pages.count("7") >= 2 and pages.count("1") == 1 and pages[-1] == "9"


def test_orders_deleted_during_a_woocommerce_import_do_not_make_it_skip_others(
        live: Any, woocommerce_store: WooCommerceSimulator) -> None:
    server, _, c = live
    woo = woocommerce_store
    placed = [woo.place_order() for _ in range(30)]
    shop_id = _connect_woo(server, woo, c)
    wipe_shop_data(c, shop_id)
    with c.sessions() as s, s.begin():
        s.execute(update(Shop).where(Shop.id == shop_id).values(installed_at=func.now()))
    import_id = imports.start(c, shop_id, enqueue=False)
    assert imports.start(c, shop_id) == import_id  # while one is queued or running, it is the one

    def delete_after_first_page(progress: imports.Progress) -> None:
        if progress.phase == "orders" and progress.orders == 10:
            for order in placed[:5]:  # five orders of the page already read go away: the rest move up
                woo.delete_order(order["id"])

    from app.connections import store_client
    from connectors.woocommerce.history import WooCommerceHistory

    client, _ = store_client(c, shop_id)
    original = imports.source_for
    imports.source_for = lambda c, shop_id: WooCommerceHistory(client, shop_id, per_page=10)  # type: ignore[assignment]
    try:
        assert imports.run(c, import_id, on_progress=delete_after_first_page) == "done"
    finally:
        imports.source_for = original
    with c.sessions() as s:
        stored = set(s.scalars(select(Order.external_id).where(Order.shop_id == shop_id)))
    assert {str(o["id"]) for o in placed[5:]} <= stored  # none of those still in the store was skipped


def test_the_cli_imports_in_the_foreground_with_a_progress_bar(live: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    import app.bootstrap
    from app.cli import main

    _, sim, c = live
    shop_id = _install(sim, c)
    sim.seed_history(SHOP, 650)
    monkeypatch.setattr(app.bootstrap, "bootstrap", lambda settings: c)  # the command's container is the test's
    result = CliRunner().invoke(main, ["import", SHOP])
    assert result.exit_code == 0, result.output
    assert "orders" in result.output and "done: 585 customers, 650 orders read" in result.output
    with c.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Order).where(Order.shop_id == shop_id)) == 650
    assert CliRunner().invoke(main, ["import", "nowhere.myshopify.com"]).exit_code == 2  # no such shop: usage error


def test_a_big_woocommerce_history_is_read_page_by_page(live: Any, woocommerce_store: WooCommerceSimulator) -> None:
    server, _, c = live
    woo = woocommerce_store
    woo.seed_history(430)
    woo.place_order(status="completed")  # newer than the history: the last page
    shop_id = _connect_woo(server, woo, c)
    progress = imports.latest(c, shop_id)
    assert progress is not None and (progress.status, progress.orders, progress.total_orders) == ("done", 431, 431)
    with c.sessions() as s:
        statuses = dict(s.execute(select(Order.status, func.count()).where(Order.shop_id == shop_id)
                                  .group_by(Order.status)).all())
    assert statuses == {"fulfilled": 172 + 1, "paid": 86, "cancelled": 86, "refunded": 86}
    assert [q.get("page") for m, p, q in woo.requests if p == "orders" and q.get("orderby") == "id"] == [
        str(n) for n in range(1, 6)]
