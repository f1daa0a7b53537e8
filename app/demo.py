"""`encore demo`: Encore on the embedded default beside a simulated Shopify store that keeps selling."""

from __future__ import annotations

import itertools
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import requests
from sqlalchemy import select
from werkzeug.serving import make_server

from app import create_app, dispatch, loyalty, referrals, rewards, tiers
from app.bootstrap import Container
from app.config import Settings
from app.core.loyalty import Balance, Entry, Posting, Reason
from app.core.tiers import Tier
from app.db.engine import make_engine
from app.db.models import LoyaltyProgramRow, Shop
from app.journeys import set_enabled
from app.migrate import upgrade
from app.simulator.shopify import ShopifySimulator

SHOP = "demo-store.myshopify.com"
DEMO_JOURNEYS = frozenset({"thank_you", "shipped", "delivered", "survey", "review_request", "abandoned_cart"})


def _sell(sim: ShopifySimulator, every: float, stop: threading.Event) -> None:
    """Place an order every few seconds and move earlier ones along: shipped, delivered, now and then a refund."""
    placed: list[int] = []
    for n in itertools.count():
        if stop.wait(every):
            return
        try:
            placed.append(sim.place_order(SHOP, customer=random.randrange(8))["id"])
            if len(placed) >= 2:
                sim.fulfill(SHOP, placed[-2])
            if len(placed) >= 3:
                sim.deliver(SHOP, placed[-3])
            if n % 7 == 6:
                sim.refund(SHOP, placed[-3])
        except requests.RequestException as exc:
            print(f"demo store could not reach Encore: {exc}")


def _loyalty(c: Container, shop_id: int) -> None:
    """The demo shop's loyalty and referral programs, once: points on every order, three tiers, a catalog, a
    stamp card, and a welcome gift for the customer the storefront link logs in as."""
    now = datetime.now(UTC)
    with c.sessions() as s, s.begin():
        if s.scalar(select(LoyaltyProgramRow.id).where(LoyaltyProgramRow.shop_id == shop_id)) is not None:
            return  # set up by an earlier run on the same database
        loyalty.switch_on(s, shop_id, now - timedelta(days=1), expire_after_days=365,
                          actions={"signup": 100, "birthday": 200, "survey": 50, "review": 100, "referral": 500})
        tiers.set_tiers(s, shop_id, [Tier("member", "Member", Decimal(0)),
                                     Tier("gold", "Gold", Decimal(100), Decimal("1.5"), ("Free shipping",)),
                                     Tier("black", "Black", Decimal(300), Decimal(2), ("Free shipping", "Early access"))],
                        now)
        five = rewards.add_reward(s, shop_id, "$5 off", "amount", Decimal(5), 500, now)
        rewards.add_reward(s, shop_id, "10% off", "percent", Decimal(10), 900, now)
        rewards.add_reward(s, shop_id, "Free shipping", "free_shipping", None, 300, now)
        program = s.scalar(select(LoyaltyProgramRow).where(LoyaltyProgramRow.shop_id == shop_id))
        assert program is not None
        program.stamp_every, program.stamp_reward_id = 5, five
        referrals.configure(s, shop_id, enabled=True, friend_kind="percent", friend_value=Decimal(15),
                            friend_valid_days=30, referrer_points=500, wait_days=14, cap_per_referrer=10,
                            cap_window_days=30, now=now)
        loyalty.post(s, shop_id, "7000", [Posting(Entry(1200, Balance.AVAILABLE, Reason.BONUS, "demo:welcome"),
                                                  detail={"campaign": "demo welcome"})], now)


def run_demo(*, port: int = 8000, orders_every: float = 4.0) -> None:
    base = Settings.from_env()
    sim = ShopifySimulator(api_key=base.shopify_api_key, api_secret=base.shopify_api_secrets[0],
                           app_url=f"http://127.0.0.1:{port}")
    sim.start(port=port + 1)
    sim.add_store(SHOP, name="Encore Demo Coffee", currency="USD", timezone="America/New_York", locale="en")
    sim.seed_history(SHOP, 1_000)  # a past to import: the admin shows the history import as it runs
    settings = base.with_(app_url=f"http://127.0.0.1:{port}", shopify_shop_origin=sim.shop_origin_template,
                          shopify_admin_origin=sim.origin, app_bridge_url=f"{sim.origin}/app-bridge.js",
                          sweep_interval_s=5.0)
    upgrade(make_engine(settings.database_url))
    app = create_app(settings)
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    requests.get(sim.embedded_app_url(SHOP), timeout=10).raise_for_status()  # the managed install
    c = app.extensions["encore"]
    with c.sessions() as s:
        shop_id = s.scalar(select(Shop.id).where(Shop.platform == "shopify", Shop.domain == SHOP))
    for key in DEMO_JOURNEYS:  # the install gave the shop the library; the demo switches the order journeys on
        set_enabled(c, shop_id, key, True)
    _loyalty(c, shop_id)
    dispatch.start_thread(c)
    stop = threading.Event()
    threading.Thread(target=_sell, args=(sim, orders_every, stop), daemon=True).start()
    print(f"\nEncore is running on the embedded default ({settings.database_url}).\n"
          f"Open the simulated Shopify admin with Encore inside it:\n\n    {sim.admin_url(SHOP)}\n\n"
          f"A new demo order arrives every {orders_every:g} seconds; the emails its journeys send are captured "
          f"at\n\n    http://127.0.0.1:{port}/dev/outbox\n\nThe storefront with the loyalty widget, as a shopper "
          f"(Mina, who orders now and then):\n\n    {sim.storefront_url(SHOP, customer=7000)}\n\nCtrl-C stops.\n",
          flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        stop.set()
        server.shutdown()
        sim.stop()
