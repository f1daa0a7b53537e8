"""End to end over real HTTP: the simulator installs Encore, places orders, and they land once."""

from __future__ import annotations

from typing import Any

import requests
from sqlalchemy import func, select

from app.db.models import EventRow, InboxRow, Order, Shop
from app.queue import InProcessQueue

SHOP = "demo-store.myshopify.com"


def _install(server: Any, sim: Any) -> requests.Response:
    sim.add_store(SHOP, name="Demo Store", currency="KRW", timezone="Asia/Seoul", locale="ko")
    return requests.get(sim.embedded_app_url(SHOP), timeout=10)


def test_managed_install_exchanges_the_id_token_and_fills_the_profile(live: Any) -> None:
    server, sim, c = live
    page = _install(server, sim)
    assert page.status_code == 200
    assert page.headers["Content-Security-Policy"].startswith(f"frame-ancestors https://{SHOP} {sim.origin}; ")
    assert "최근 주문" in page.text  # the shop's locale (ko) picks the Korean catalog
    with c.sessions() as s:
        shop = s.scalars(select(Shop)).one()
        assert (shop.domain, shop.currency, shop.timezone, shop.locale) == (SHOP, "KRW", "Asia/Seoul", "ko")
        assert shop.installed and shop.refresh_token is not None and shop.access_expires_at is not None
        assert sim.stores[SHOP].tokens.access.encode() not in shop.access_token  # sealed, not plain
    assert sim.token_calls == ["urn:ietf:params:oauth:grant-type:token-exchange"]


def test_orders_flow_into_the_mirror_exactly_once(live: Any) -> None:
    server, sim, c = live
    _install(server, sim)
    order = sim.place_order(SHOP)
    sim.fulfill(SHOP, order["id"])
    sim.deliver(SHOP, order["id"])
    # Shopify delivers at least once: the same event again changes nothing.
    body, headers = sim.delivery(SHOP, "orders/paid", order, event_id="evt-1")
    for _ in range(3):
        assert requests.post(f"{server.url}/webhooks/shopify", data=body, headers=headers, timeout=5).status_code == 200
    assert isinstance(c.queue, InProcessQueue) and c.queue.drain(10)
    with c.sessions() as s:
        stored = s.scalars(select(Order)).one()
        assert stored.status == "delivered" and stored.name == order["name"]
        assert s.scalar(select(func.count()).select_from(InboxRow).where(InboxRow.event_id == "evt-1")) == 1
        assert s.scalar(select(func.count()).select_from(InboxRow).where(InboxRow.status != "done")) == 0
        kinds = sorted(s.scalars(select(EventRow.type)))
    assert kinds == sorted(["CustomerUpserted", "OrderPlaced", "OrderPaid", "OrderFulfilled", "OrderDelivered"])
