"""`encore demo`: Encore on the embedded default beside a simulated Shopify store that keeps selling."""

from __future__ import annotations

import itertools
import random
import threading
import time

import requests
from sqlalchemy import select
from werkzeug.serving import make_server

from app import create_app, dispatch
from app.config import Settings
from app.db.engine import make_engine
from app.db.models import Shop
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
    dispatch.start_thread(c)
    stop = threading.Event()
    threading.Thread(target=_sell, args=(sim, orders_every, stop), daemon=True).start()
    print(f"\nEncore is running on the embedded default ({settings.database_url}).\n"
          f"Open the simulated Shopify admin with Encore inside it:\n\n    {sim.admin_url(SHOP)}\n\n"
          f"A new demo order arrives every {orders_every:g} seconds; the emails its journeys send are captured "
          f"at\n\n    http://127.0.0.1:{port}/dev/outbox\n\nCtrl-C stops.\n", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        stop.set()
        server.shutdown()
        sim.stop()
