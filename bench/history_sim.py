"""The Shopify store simulator for bench/history_import.py, in a process of its own (so that the importer's
peak memory is its own): a store with N generated past orders and an access token, on a free port. Prints
its origin, then serves until killed."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.simulator.shopify import ShopifySimulator, Tokens  # noqa: E402
from app.simulator.woocommerce import WooCommerceSimulator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shop", required=True)
    parser.add_argument("--orders", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--platform", choices=["shopify", "woocommerce"], default="shopify")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    if args.platform == "woocommerce":  # prints its origin, then the consumer key and secret
        woo = WooCommerceSimulator(name="Bench Store")
        woo.seed_history(args.orders)
        key = woo.add_key()
        print(woo.start(), key.consumer_key, key.consumer_secret, flush=True)
        threading.Event().wait()
    sim = ShopifySimulator(api_key="bench-api-key", api_secret="bench-api-secret", app_url="http://127.0.0.1:1")
    store = sim.add_store(args.shop, name="Bench Store")
    sim.seed_history(args.shop, args.orders)
    sim.prerender(args.shop, tempfile.mkdtemp(prefix="encore-bulk-"))  # Shopify has the file ready too
    store.tokens = Tokens(access=args.token, access_expires=time.time() + 86_400, refresh="shprt_bench")
    print(sim.start(), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
