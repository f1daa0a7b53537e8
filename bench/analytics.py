"""Analytics refresh benchmark: the nightly refresh (`app.analytics.refresh.refresh`) of one shop with 1,000,000
orders of 200,000 customers, phase by phase, and its peak memory. Measured on PostgreSQL, in a fresh schema of its
own that is dropped at the end.

    .venv/bin/python bench/analytics.py [--customers 200000] [--orders 1000000] [--quick] [--keep]

Setup: one installed shop (Bench Coffee, USD, New York) and its customers, each generated from a known BG/NBD
process with Gamma-Gamma spend (r 0.9, alpha 60 days, a 0.6, b 3.0; p 6, q 4, gamma 40): first orders spread over
three years, repeat orders thinned at random to make exactly `--orders` orders. 1% of the orders are cancelled
and 3% partly refunded; each has 1-3 lines from the 46-product coffee catalogue (a customer's own coffee in most
of their orders, so that products have reorder intervals to learn). Generated with numpy and written with COPY,
indexes and constraints made afterwards, then VACUUM ANALYZE, as a restore would.

Measurements, each printed:

1. Baseline, in the same run: `SELECT count(*), sum(total) FROM orders WHERE shop_id = ...`, the least any
   figure over every order costs (best of three). Refresh / baseline is the ratio.
2. The refresh, in a process of its own started before any data is generated (so its peak resident memory,
   `resource.getrusage`, is its own): total time and each phase as the refresh records them
   (`summary["phases"]`): the SQL aggregates (staging the orders in one sorted pass, then customers, gaps between
   orders, cohort pairs, products' repeat gaps), the history figures with numpy (cohort matrix, repeat rates,
   quantiles, reorder medians), RFM, the model fit and predictions, the writes (the predictions by COPY into a
   temporary table, joined in SQL to the staged history into customer_metrics; reorder intervals; the run) and the
   segments refreshed on the new metrics (`app.segments.refresh_all`). Then a second refresh, which replaces the
   first's rows.
3. Peak RSS of the refresh process, next to the same process's RSS before it began; CPU seconds of the refresh
   and of PostgreSQL, and how busy the rest of the machine was (other people's work skews the timings); the
   model's fitted parameters next to the generating ones (thinning and refunds move the spend ones).

It prints PASS/MISS against the target (the refresh in under 30 s); it never fails on timings, only when the
refresh does not write one metrics row per customer, or finds other customers, orders, revenue, repeat rate, cohort
matrix or repeat rate by month than were generated (each order's month taken in the zone one by one here; exit 1).
Results go to bench/results/analytics.json.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
from dispatch import (  # noqa: E402
    DEFAULT_DB,
    World,
    _copy,
    catalog,
    container_for,
    finish,
    machine_busy,
    postgres_cpu,
    save_results,
)

from app.analytics import history  # noqa: E402
from app.db import models as t  # noqa: E402

SHOP = "bench-analytics.myshopify.com"
TZ = "America/New_York"
TARGET_S = 30.0
TRUE = {"r": 0.9, "alpha": 60.0, "a": 0.6, "b": 3.0, "p": 6.0, "q": 4.0, "gamma": 40.0}
YEARS = 3


def simulate(customers: int, orders: int, rng: np.random.Generator) -> dict[str, Any]:
    """Every order as arrays: owner (customer index), days after the owner's first order, value; and each customer's
    age in days. BG/NBD (as in tests/unit/test_clv.py, with every repeat time drawn): repeat orders arrive as a
    Poisson process of rate lambda ~ Gamma(r, alpha) until the K-th, K geometric in p ~ Beta(a, b); the first x of
    N uniform arrivals on [0, T] are T S_j / S_(N+1), S_j the sums of exponential spacings (S_(N+1) = S_x plus a
    Gamma(N + 1 - x) draw)."""
    r, alpha, a, b = TRUE["r"], TRUE["alpha"], TRUE["a"], TRUE["b"]
    T = rng.uniform(0.0, 365.0 * YEARS, customers)
    lam = rng.gamma(r, 1.0 / alpha, customers)
    arrivals = rng.poisson(lam * T)
    x = np.minimum(rng.geometric(rng.beta(a, b, customers)), arrivals)
    owner = np.repeat(np.arange(customers), x)
    spacing = rng.exponential(1.0, owner.size)
    starts = np.minimum(np.concatenate(([0], np.cumsum(x)[:-1])), max(owner.size - 1, 0))  # x = 0: never used
    running = np.cumsum(spacing)
    cumulated = running - np.repeat(running[starts] - spacing[starts], x)  # S_1..S_x of each customer
    last = np.repeat(cumulated[np.maximum(starts + x - 1, 0)], x)  # their S_x
    at = T[owner] * cumulated / (last + rng.gamma(arrivals[owner] - x[owner] + 1.0))  # S_j / S_(N+1)
    surplus = customers + owner.size - orders
    if surplus < 0:
        raise SystemExit(f"the process made {customers + owner.size:,} orders, fewer than {orders:,}: raise r/alpha")
    keep = np.ones(owner.size, dtype=bool)
    keep[rng.choice(owner.size, surplus, replace=False)] = False  # thinning a Poisson process leaves one
    owner = np.concatenate((np.arange(customers), owner[keep]))
    at = np.concatenate((np.zeros(customers), at[keep]))
    nu = rng.gamma(TRUE["q"], 1.0 / TRUE["gamma"], customers)
    value = np.round(rng.gamma(TRUE["p"], 1.0 / nu[owner]), 2)
    return {"owner": owner, "days": at, "value": value, "T": T}


def load(world: World, sim: dict[str, Any], now: datetime, rng: np.random.Generator
         ) -> tuple[dict[str, int], dict[str, Any]]:
    """Customers, orders and lines into the bench schema with COPY; the rows written, and what the refresh must
    find in them, counted here with numpy (customers, orders and revenue of the orders not cancelled, repeat rate)."""
    conn, shop_id = world.db(), world.shop_id
    customers = sim["T"].size
    counts = {"customers": _copy(conn, "customers", (
        "id", "shop_id", "external_id", "email", "accepts_email_marketing", "accepts_sms_marketing", "preferred_channel",
        "external_updated_at"), ((i + 1, shop_id, f"c{i}", f"c{i}@example.com", True, False, "email", now)
                                 for i in range(customers)))}
    owner, value = sim["owner"], sim["value"]
    n = owner.size
    before = sim["T"][owner] - sim["days"]  # days before now
    order = np.argsort(-before, kind="stable")  # oldest first: ids follow time, as in a store's own table
    owner, value = owner[order], value[order]
    ago = (before[order] * 86_400_000_000).astype("timedelta64[us]")  # to the microsecond
    created = np.datetime64(now.replace(tzinfo=None), "us") - ago
    stamps = np.char.add(np.datetime_as_string(created, unit="us"), "+00:00").tolist()
    cancelled = rng.random(n) < 0.01
    refunded = np.where(rng.random(n) < 0.03, np.round(value * rng.uniform(0.1, 1.0, n), 2), 0.0)
    counts["orders"] = _copy(conn, "orders", (
        "id", "shop_id", "external_id", "name", "customer_external_id", "email", "currency", "subtotal", "total",
        "total_tax", "total_shipping", "total_discounts", "refunded_amount", "payment_status", "status", "created_at",
        "cancelled_at", "external_updated_at"),
        ((i + 1, shop_id, str(5_000_000_000 + i), f"#{1001 + i}", f"c{o}", f"c{o}@example.com", "USD", v, v, 0, 0, 0, rf,
          "voided" if cx else "paid", "cancelled" if cx else "open", at, at if cx else None, at)
         for i, (o, v, rf, cx, at) in enumerate(zip(owner.tolist(), value.tolist(), refunded.tolist(), cancelled.tolist(),
                                                    stamps, strict=True))))
    products = [p for p, _, _ in catalog()]
    coffees = np.array(products[:40])
    favourite = rng.integers(0, coffees.size, customers)
    lines_per_order = rng.choice((1, 2, 3), n, p=(0.5, 0.3, 0.2))
    line_order = np.repeat(np.arange(n), lines_per_order)
    first_line = np.concatenate(([True], line_order[1:] != line_order[:-1]))
    own = first_line & (rng.random(line_order.size) < 0.7)
    product = np.where(own, coffees[favourite[owner[line_order]]],
                       np.array(products)[rng.integers(0, len(products), line_order.size)])
    quantity = rng.choice((1, 2), line_order.size, p=(0.85, 0.15))
    counts["order_lines"] = _copy(conn, "order_lines", (
        "id", "shop_id", "order_id", "external_id", "product_external_id", "title", "quantity", "price", "total_discount"),
        ((i + 1, shop_id, o + 1, str(i + 1), p, p, q, 10, 0)
         for i, (o, p, q) in enumerate(zip(line_order.tolist(), product.tolist(), quantity.tolist(), strict=True))))
    conn.commit()
    live = ~cancelled
    per_customer = np.bincount(owner[live], minlength=customers)
    cents = int(np.round(value[live] * 100).sum() - np.round(refunded[live] * 100).sum())
    # Each order's month in the shop's zone, one datetime at a time (independent of the refresh's own way), and the
    # cohort matrix from the (cohort, month) pairs with the same pure function the refresh uses.
    zone = ZoneInfo(TZ)
    month = np.array([(d := at.replace(tzinfo=UTC).astimezone(zone)).year * 12 + d.month - 1
                      for at in created[live].astype(datetime)])
    who = owner[live]
    cohort_of = np.full(customers, np.iinfo(np.int64).max)
    np.minimum.at(cohort_of, who, month)
    distinct = np.unique(np.stack((cohort_of[who], month, who)), axis=1)  # each (cohort, month, customer) once
    (cohort, months), people = np.unique(distinct[:2], axis=1, return_counts=True)
    expected = {"customers": int(np.count_nonzero(per_customer)), "orders": int(live.sum()),
                "revenue": f"{cents // 100}.{cents % 100:02d}",
                "repeat_rate": float(np.count_nonzero(per_customer >= 2) / np.count_nonzero(per_customer)),
                "cohorts": history.cohorts(cohort, months, people, history.month_index(now, TZ)),
                "repeat_rate_by_month": history.repeat_rate_by_month(cohort, months, people)}
    return counts, expected


def scan(world: World) -> float:
    """The baseline: one plain pass over the shop's orders (best of three)."""
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        world.scalar("SELECT count(*), sum(total) FROM orders WHERE shop_id = %s", (world.shop_id,))
        best = min(best, time.perf_counter() - began)
    return best


def _refresh_worker(url: str, schema: str, key: str, commands: Any, out: Any) -> None:
    """A process of its own, started before any data is generated (a child's peak RSS starts from its parent's at
    the fork): for each shop id received, one refresh, with its wall time and peak RSS (kB) before and after."""
    from app.analytics import refresh

    while (command := commands.recv()) is not None:
        c = container_for(url, schema, key)  # the schema exists by the first command
        shop_id, now = command
        with c.sessions() as s:  # connect first: the pool's memory is not the refresh's
            s.execute(t.Shop.__table__.select().limit(1))
        usage = resource.getrusage(resource.RUSAGE_SELF)
        began = time.perf_counter()
        summary = refresh.refresh(c, shop_id, datetime.fromisoformat(now))
        wall = time.perf_counter() - began
        after = resource.getrusage(resource.RUSAGE_SELF)
        out.send({"summary": summary, "wall": wall, "rss_before_kb": usage.ru_maxrss, "rss_peak_kb": after.ru_maxrss,
                  "cpu": after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime})
        c.engine.dispose()


class Worker:
    """The refresh's process, and the pipes to it."""

    def __init__(self, world: World) -> None:
        ctx = mp.get_context("spawn")
        self.commands, commands = ctx.Pipe()
        results, self.results = ctx.Pipe(duplex=False)
        self.process = ctx.Process(target=_refresh_worker, args=(world.url, world.schema, world.key, commands, self.results))
        self.process.start()
        self.receive = results

    def refresh(self, shop_id: int, now: datetime) -> dict[str, Any]:
        """One refresh, with the CPU PostgreSQL spent meanwhile and how busy the whole machine was."""
        pg, (busy, total) = postgres_cpu(), machine_busy()
        self.commands.send((shop_id, now.isoformat()))
        result: dict[str, Any] = self.receive.recv()
        busy_after, total_after = machine_busy()
        result["pg_cpu"] = postgres_cpu() - pg
        result["machine_busy_cpu"] = busy_after - busy
        result["machine_cpu"] = total_after - total
        return result

    def stop(self) -> None:
        if self.process.is_alive():
            self.commands.send(None)
            self.process.join(30)


def report(label: str, run: dict[str, Any], base: float) -> None:
    s = run["summary"]
    phases = s["phases"]
    sql = sum(phases[k] for k in ("stage_sql", "customers_sql", "gaps_sql", "cohorts_sql", "products_sql"))
    print(f"\n{label}: {run['wall']:.2f} s wall ({s['seconds']:.2f} s inside), {run['wall'] / base:.0f} x the scan; "
          f"{'PASS' if run['wall'] < TARGET_S else 'MISS'} (target < {TARGET_S:.0f} s)")
    print(f"  SQL aggregates {sql:6.2f} s   (staging {phases['stage_sql']:.2f}, customers {phases['customers_sql']:.2f}, "
          f"gaps {phases['gaps_sql']:.2f}, "
          f"cohort pairs {phases['cohorts_sql']:.2f}, product gaps {phases['products_sql']:.2f})")
    print(f"  history figures {phases['history']:5.2f} s   (cohort matrix, repeat rates, quantiles, reorder medians)")
    print(f"  RFM            {phases['rfm']:6.2f} s")
    print(f"  model          {phases['model']:6.2f} s   (fit + predictions: {s['model']['status']})")
    print(f"  writes         {phases['write']:6.2f} s   ({s['customers']:,} customer_metrics rows, "
          f"{s['reorder_intervals']} reorder intervals)")
    print(f"  segments       {phases.get('segments', 0.0):6.2f} s   (app.segments.refresh_all: the RFM segments and the "
          "merchant's)")
    print(f"  peak RSS {run['rss_peak_kb'] / 1024:.0f} MB (the process before the refresh: "
          f"{run['rss_before_kb'] / 1024:.0f} MB)")
    others = run["machine_busy_cpu"] - run["cpu"] - run["pg_cpu"]
    print(f"  CPU: the refresh {run['cpu']:.1f} s, PostgreSQL {run['pg_cpu']:.1f} s; other processes {max(others, 0):.1f} s "
          f"of the machine's {run['machine_cpu']:.0f} CPU-s" + ("  (busy: other people's work skews the figures)"
                                                                if others > 0.25 * run["machine_cpu"] else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="small numbers for a smoke run")
    parser.add_argument("--keep", action="store_true", help="keep the schema (for a look afterwards)")
    env = os.environ.get("DATABASE_URL", "")
    parser.add_argument("--db", default=env if env.startswith(("postgres://", "postgresql")) else DEFAULT_DB)
    if "--quick" in (sys.argv[1:] if argv is None else argv):
        parser.set_defaults(customers=20_000, orders=100_000)
    a = parser.parse_args(argv)
    libpq = a.db.replace("postgresql+psycopg://", "postgresql://").replace("postgres://", "postgresql://", 1)
    world = World(libpq, f"bench_analytics_{uuid.uuid4().hex[:8]}")
    rng = np.random.default_rng(a.seed)
    now = datetime.now(UTC).replace(microsecond=0)
    begun = time.monotonic()
    launched: list[Any] = []
    results: dict[str, Any] = {"when": now.isoformat(), "machine": platform.platform(), "cpus": os.cpu_count(),
                               "customers": a.customers, "orders": a.orders, "target_s": TARGET_S}
    try:
        print(f"analytics benchmark: {os.cpu_count()} cores; PostgreSQL {libpq.split('@')[-1]} schema {world.schema}")
        setup = time.monotonic()
        worker = Worker(world)  # first, while this process is small: a child's peak RSS starts from its parent's
        launched.append(worker.process)
        world.create()
        assert world.c is not None
        with world.c.sessions() as s, s.begin():
            shop = t.Shop(platform="shopify", domain=SHOP, name="Bench Coffee", currency="USD",
                          timezone=TZ, locale="en", installed_at=now - timedelta(days=365 * YEARS))
            s.add(shop)
            s.flush()
            world.shop_id = shop.id
        sim = simulate(a.customers, a.orders, rng)
        with world.loading("customers", "orders", "order_lines"):
            made, expected = load(world, sim, now, rng)
        del sim
        world.sequences()
        world.vacuum("customers", "orders", "order_lines")
        print(f"setup {time.monotonic() - setup:.0f} s: " + ", ".join(f"{k} {v:,}" for k, v in made.items()), flush=True)
        results["rows"] = made
        base = scan(world)
        print(f"\nbaseline: SELECT count(*), sum(total) FROM orders: {base * 1000:.0f} ms")
        results["baseline_s"] = base
        for label in ("first refresh", "second refresh (replaces the first's rows)"):
            run = worker.refresh(world.shop_id, now)
            report(label, run, base)
            written = world.scalar("SELECT count(*) FROM customer_metrics WHERE shop_id = %s", (world.shop_id,))
            found = {k: run["summary"][k] for k in expected}
            differ = [k for k in expected if found[k] != expected[k] and k != "repeat_rate"]
            if abs(found["repeat_rate"] - expected["repeat_rate"]) > 1e-12:
                differ.append("repeat_rate")
            if written != run["summary"]["customers"] or differ:
                print(f"FAIL: {written} customer_metrics rows; these differ from what was generated: {differ}")
                return 1
            results.setdefault("runs", []).append({
                "label": label, "wall_s": run["wall"], "ratio_to_scan": run["wall"] / base,
                "phases": run["summary"]["phases"], "rss_peak_mb": run["rss_peak_kb"] / 1024,
                "rss_before_mb": run["rss_before_kb"] / 1024, "cpu_s": run["cpu"], "pg_cpu_s": run["pg_cpu"],
                "machine_busy_cpu_s": run["machine_busy_cpu"], "machine_cpu_s": run["machine_cpu"],
                "pass": run["wall"] < TARGET_S})
        model = run["summary"]["model"]
        results["model"] = model
        if model["status"] == "fitted":
            print("\nmodel: " + ", ".join(f"{k} {v:.3g} (true {TRUE[k]:g})" for k, v in model["params"].items()
                                          if v is not None))
        else:
            print(f"\nmodel: {model['status']} ({model['reason']})")
        results["summary"] = {k: v for k, v in run["summary"].items() if k not in ("cohorts", "repeat_rate_by_month")}
        worker.stop()
    finally:
        finish(world, launched, keep=a.keep)
    save_results("analytics", results, time.monotonic() - begun)
    return 0


if __name__ == "__main__":
    sys.exit(main())
