"""Loyalty ledger benchmark: how many postings a second `app.loyalty.post` writes, each in a transaction of its
own, spread over many customers and all on one hot account, and `app.loyalty.post_many` a batch to a
transaction, next to plain INSERTs of the same rows. Measured on PostgreSQL, in a fresh schema of its own that
is dropped at the end.

    .venv/bin/python bench/ledger.py [--postings 10000] [--customers 10000] [--processes 1,2] [--batch 100] [--quick]

Setup: one installed shop (Bench Coffee, USD) with `--customers` loyalty accounts open and empty (COPY), plus the
hot account and a warm-up account. The runs add their entries to the same tables (later runs find a slightly
bigger ledger); VACUUM ANALYZE runs before each, as autovacuum would.

Measurements, each printed:

1. Across customers: `--postings` postings a run (split evenly between the processes), in 1 process and in 2
   side by side (`--processes`; this machine has 2 cores). Each posting is one entry in a transaction of its
   own (`with c.sessions() as s, s.begin(): loyalty.post(...)`) to a customer picked at random among
   `--customers`: a pending earning of 1-50 points under a key of its own, except that `--repeat` of them (1%,
   at least one a process) post again an entry the process posted earlier in the run (the same request twice),
   which must write nothing.
   postings/s = postings (repeats included) / wall time from the start signal to the last process done.
2. Across customers, batched: the same postings `--batch` (100) to a transaction through `loyalty.post_many`,
   the set-based path the sweeps take (expiry, birthdays): five or six statements a batch whatever its size.
   Its baseline is one multi-row INSERT of the same rows a transaction.
3. One hot account: the same as 1, every posting to one customer; the processes serialize on its row lock.
4. Baseline, in the same run: as many rows written with a plain `INSERT INTO ledger_entries` (the same columns,
   through the same session, one transaction each) into the same, already open accounts: no account lookup,
   no lock, no key check, no snapshot update. Encore / baseline is the ratio. The baseline's rows are deleted
   once counted, so the books balance again.
5. After every run the books are checked: `loyalty.mismatches` finds nothing (every snapshot is the sum of its
   entries), the ledger grew by exactly the entries posted, every key was written once (repeats included), and
   the points posted are what both the entries and the snapshots went up by.

Each run also reports CPU per posting, the workers' own and PostgreSQL's (its backends), and how busy the machine
was. It prints PASS/MISS against the targets, each for the best process count (>= 2,000 postings/s across
customers; >= 200 postings/s on one account); it never fails on timings, only when a check of the books fails
(exit 1). Results go to bench/results/ledger.json.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import random
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from dispatch import (  # noqa: E402
    DEFAULT_DB,
    World,
    _copy,
    container_for,
    finish,
    machine_busy,
    postgres_cpu,
    save_results,
)
from sqlalchemy import insert, select  # noqa: E402

from app import loyalty  # noqa: E402
from app.core.loyalty import Balance, Entry, Posting, Reason  # noqa: E402
from app.db import models as t  # noqa: E402

SHOP = "bench-ledger.myshopify.com"
TARGET_ACROSS = 2000.0
TARGET_HOT = 200.0
HOT, WARM = "hot-1", "warm-1"
SCENARIOS = {"across": "across customers", "batched": "across, batched", "hot": "one account"}
LABELS = {"encore": "Encore (loyalty.post)", "baseline": "plain INSERT"}


def customer(i: int) -> str:
    return str(7_000_000_000 + i)


@dataclass(frozen=True)
class Totals:
    entries: int
    last_id: int
    in_entries: int  # points, summed over every entry
    in_snapshots: int  # points, summed over every account's snapshot (available + pending)


class Books(World):
    """dispatch.py's schema and connections, with a shop and its loyalty accounts in it."""

    def shop(self) -> None:
        assert self.c is not None
        with self.c.sessions() as s, s.begin():
            shop = t.Shop(platform="shopify", domain=SHOP, name="Bench Coffee", currency="USD",
                          timezone="America/New_York", locale="en", installed_at=self.now - timedelta(days=400),
                          access_token=self.c.vault.seal("shpat_bench"))
            s.add(shop)
            s.flush()
            self.shop_id = shop.id

    def accounts(self, customers: int) -> int:
        now = self.now
        ids = [*(customer(i) for i in range(customers)), HOT, WARM]
        n = _copy(self.db(), "loyalty_accounts", ("shop_id", "customer_external_id", "available", "pending",
                                                  "created_at", "updated_at"),
                  ((self.shop_id, cid, 0, 0, now, now) for cid in ids))
        self.db().commit()
        return n

    def totals(self) -> Totals:
        row = self.rows("SELECT (SELECT count(*) FROM ledger_entries), (SELECT coalesce(max(id), 0) FROM ledger_entries), "
                        "(SELECT coalesce(sum(amount), 0) FROM ledger_entries), "
                        "(SELECT coalesce(sum(available + pending), 0) FROM loyalty_accounts)")[0]
        return Totals(*(int(x) for x in row))

    def delete_after(self, last_id: int) -> int:
        conn = self.db()
        n = conn.execute("DELETE FROM ledger_entries WHERE id > %s", (last_id,)).rowcount
        conn.commit()
        return int(n)


# --- the workers ----------------------------------------------------------------------------------------------------

def plan(spec: dict[str, Any]) -> list[tuple[str, Any, bool]]:
    """(customer, posting, is a repeat) for every posting of a worker, made before the clock starts."""
    rng, n = random.Random(spec["seed"]), spec["postings"]
    repeats = set(rng.sample(range(1, n), min(n - 1, max(1, round(n * spec["repeat"]))))) if spec["repeat"] and n > 1 else set()
    made: list[tuple[str, Any, bool]] = []
    for i in range(n):
        if i in repeats:
            cid, posting, _ = rng.choice(made)
            made.append((cid, posting, True))
            continue
        cid = HOT if spec["scenario"] == "hot" else customer(rng.randrange(spec["customers"]))
        amount = rng.randint(1, 50)
        order = f"{spec['prefix']}{i}"
        made.append((cid, Posting(Entry(amount, Balance.PENDING, Reason.EARNED, f"o:{order}:1"), rule_version=1,
                                          order_id=order, line_id="1", detail={"amount": f"{amount}.00", "rate": "1"}),
                     False))
    return made


def row(shop_id: int, account_id: int, p: Any, now: datetime) -> dict[str, Any]:
    """The row `loyalty.post` writes for a posting, column for column."""
    return loyalty.entry_row(shop_id, account_id, p, now)


def worker(spec: dict[str, Any], start: Any, out: Any, done: Any) -> None:
    c = container_for(spec["url"], spec["schema"], spec["key"])
    todo = plan(spec)
    shop_id, encore = spec["shop_id"], spec["kind"] == "encore"
    accounts: dict[str, int] = {}
    warm_up = Posting(Entry(1, Balance.PENDING, Reason.EARNED, f"o:{spec['prefix']}warm:1"))
    with c.sessions() as s, s.begin():  # a pooled connection open, the statements compiled: one posting, untimed
        if encore:
            loyalty.post(s, shop_id, WARM, [warm_up], datetime.now(UTC))
        else:
            accounts = {str(k): int(v) for k, v in s.execute(select(
                t.LoyaltyAccount.customer_external_id, t.LoyaltyAccount.id).where(t.LoyaltyAccount.shop_id == shop_id))}
            s.execute(insert(t.LedgerEntry), [row(shop_id, accounts[WARM], warm_up, datetime.now(UTC))])
    start.wait()
    started, cpu = time.monotonic(), time.process_time()
    new = points = fresh = missed = twice = failed = 0
    error = ""
    if spec["batch"] > 1:
        new, points, fresh, missed, twice, failed, error = batched(c, spec, todo, accounts)
    for cid, p, again in todo if spec["batch"] == 1 else ():
        try:
            with c.sessions() as s, s.begin():
                if encore:
                    got = loyalty.post(s, shop_id, cid, [p], datetime.now(UTC)).new
                else:
                    s.execute(insert(t.LedgerEntry), [row(shop_id, accounts[cid], p, datetime.now(UTC))])
                    got = 1
        except Exception as e:
            failed += 1
            error = error or f"{type(e).__name__}: {e}"[:300]
            continue
        new += got
        if again:
            twice += got
        else:
            fresh += 1
            points += p.entry.amount * got
            missed += 1 - got
    out.put({"started": started, "ended": time.monotonic(), "cpu": time.process_time() - cpu, "postings": len(todo),
             "repeats": sum(1 for *_, again in todo if again), "new": new, "fresh": fresh, "points": points,
             "missed": missed, "twice": twice, "failed": failed, "error": error})
    done.wait()  # until the parent has read PostgreSQL's CPU time: a backend's goes when its connection closes
    c.engine.dispose()


def batched(c: Any, spec: dict[str, Any], todo: list[tuple[str, Any, bool]], accounts: dict[str, int]
            ) -> tuple[int, int, int, int, int, int, str]:
    """The postings `spec["batch"]` to a transaction: `loyalty.post_many` (Encore) or one multi-row INSERT of the
    same rows (the baseline). Returns new, points, fresh, missed, twice, failed and the first error."""
    shop_id, encore, size = spec["shop_id"], spec["kind"] == "encore", spec["batch"]
    new = points = fresh = missed = twice = failed = 0
    error = ""
    for i in range(0, len(todo), size):
        chunk = todo[i:i + size]
        try:
            with c.sessions() as s, s.begin():
                if encore:
                    got = sum(r.new for r in loyalty.post_many(s, shop_id, [(cid, [p]) for cid, p, _ in chunk],
                                                               datetime.now(UTC)).values())
                else:
                    now = datetime.now(UTC)
                    s.execute(insert(t.LedgerEntry), [row(shop_id, accounts[cid], p, now) for cid, p, _ in chunk])
                    got = len(chunk)
        except Exception as e:
            failed += len(chunk)
            error = error or f"{type(e).__name__}: {e}"[:300]
            continue
        wanted = sum(1 for *_, again in chunk if not again)
        new += got
        fresh += wanted
        points += sum(p.entry.amount for _, p, again in chunk if not again)
        missed += max(0, wanted - got)
        twice += max(0, got - wanted)
    return new, points, fresh, missed, twice, failed, error


# --- a run and its checks -------------------------------------------------------------------------------------------

_launched: list[Any] = []


def check(world: Books, kind: str, prefix: str, before: Totals, reports: list[dict[str, Any]]) -> list[str]:
    """The books after a run: every entry posted there once, the points in both the entries and the snapshots."""
    processes = len(reports)
    problems = []
    if failed := sum(r["failed"] for r in reports):
        problems.append(f"{failed:,} postings failed (e.g. {next(r['error'] for r in reports if r['error'])})")
    if missed := sum(r["missed"] for r in reports):
        problems.append(f"{missed:,} new postings wrote nothing")
    if twice := sum(r["twice"] for r in reports):
        problems.append(f"{twice:,} repeated postings were written again")
    after = world.totals()
    expected = sum(r["new"] for r in reports) + processes  # and one warm-up entry a process
    if after.entries - before.entries != expected:
        problems.append(f"the ledger grew by {after.entries - before.entries:,} entries, not {expected:,}")
    keys, dupes = world.rows("SELECT count(*), count(*) FILTER (WHERE n > 1) FROM (SELECT key, count(*) AS n FROM "
                             "ledger_entries WHERE key LIKE %s GROUP BY key) k", (f"o:{prefix}%",))[0]
    fresh = sum(r["fresh"] for r in reports) + processes
    if dupes or keys != fresh:
        problems.append(f"{keys:,} keys in the ledger for {fresh:,} distinct postings, {dupes:,} of them twice")
    points = sum(r["points"] for r in reports) + processes
    if kind == "baseline":
        world.delete_after(before.last_id)  # the plain rows updated no snapshot: out they go
        after = world.totals()
        if after.entries != before.entries or after.in_entries != before.in_entries:
            problems.append("the baseline's rows were not all deleted")
    elif after.in_entries - before.in_entries != points or after.in_snapshots - before.in_snapshots != points:
        problems.append(f"{points:,} points posted, but the entries went up by {after.in_entries - before.in_entries:,} "
                        f"and the snapshots by {after.in_snapshots - before.in_snapshots:,}")
    assert world.c is not None
    with world.c.sessions() as s:
        wrong = loyalty.mismatches(s)
    if wrong:
        w = wrong[0]
        problems.append(f"{len(wrong):,} accounts' snapshots are not the sum of their entries (e.g. customer "
                        f"{w.customer_id}: {w.snapshot} against {w.entries})")
    return problems


def run(world: Books, number: int, scenario: str, kind: str, processes: int, postings: int, customers: int,
        repeat: float, batch: int) -> dict[str, Any]:
    world.vacuum("ledger_entries", "loyalty_accounts")
    before = world.totals()
    prefix = f"r{number}-"
    ctx = mp.get_context("spawn")
    start, done, out = ctx.Barrier(processes + 1), ctx.Barrier(processes + 1), ctx.Queue()
    procs = []
    for w in range(processes):
        share = postings // processes + (1 if w < postings % processes else 0)
        spec = {"url": world.url, "schema": world.schema, "key": world.key, "shop_id": world.shop_id, "kind": kind,
                "scenario": scenario, "postings": share, "customers": customers,
                "repeat": repeat if kind == "encore" else 0.0, "prefix": f"{prefix}{w}-", "seed": 1000 * number + w,
                "batch": batch if scenario == "batched" else 1}
        proc = ctx.Process(target=worker, args=(spec, start, out, done), daemon=True)
        proc.start()
        _launched.append(proc)
        procs.append(proc)
    start.wait(timeout=120)
    t0, pg0, busy0 = time.monotonic(), postgres_cpu(), machine_busy()
    reports = [out.get(timeout=3600) for _ in procs]
    pg1, busy1 = postgres_cpu(), machine_busy()
    done.wait(timeout=60)
    for proc in procs:
        proc.join(30)
        _launched.remove(proc)
    elapsed = max(r["ended"] for r in reports) - t0
    made = sum(r["postings"] for r in reports)
    problems = check(world, kind, prefix, before, reports)
    cpu = sum(r["cpu"] for r in reports)
    result: dict[str, Any] = {
        "scenario": scenario, "kind": kind, "processes": processes, "postings": made,
        "repeats": sum(r["repeats"] for r in reports), "customers": 1 if scenario == "hot" else customers,
        "entries_before": before.entries, "seconds": elapsed, "per_s": made / elapsed,
        "by_process": [r["postings"] for r in reports], "worker_cpu_ms": 1000 * cpu / max(made, 1),
        "postgres_cpu_ms": 1000 * (pg1 - pg0) / max(made, 1), "problems": problems}
    capacity = max(busy1[1] - busy0[1], 1e-9)  # CPU seconds the machine had (all cores) in the window
    result["machine_busy"] = (busy1[0] - busy0[0]) / capacity
    result["others_busy"] = max(0.0, busy1[0] - busy0[0] - cpu - (pg1 - pg0)) / capacity
    repeats = f" ({result['repeats']:,} repeats)" if result["repeats"] else ""
    print(f"  {SCENARIOS[scenario]:<17}{LABELS[kind]:<22}{processes} proc {made:>8,} postings{repeats:<16}"
          f"{elapsed:7.2f} s {result['per_s']:>8,.0f} postings/s   cpu/posting: workers "
          f"{result['worker_cpu_ms']:.2f} ms, postgres {result['postgres_cpu_ms']:.2f} ms; machine "
          f"{result['machine_busy']:.0%} busy, {result['others_busy']:.0%} unaccounted   "
          f"{'ok' if not problems else 'FAIL: ' + '; '.join(problems)}", flush=True)
    return result


# --- main -----------------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postings", type=int, default=10_000, help="postings a run, split between the processes")
    parser.add_argument("--customers", type=int, default=10_000, help="accounts the across-customers runs post to")
    parser.add_argument("--processes", default="1,2", help="process counts for the runs")
    parser.add_argument("--repeat", type=float, default=0.01, help="share of postings that repeat an earlier one")
    parser.add_argument("--only", default="across,batched,hot",
                        help="scenarios: across (customers), batched (across, --batch a transaction), hot (one account)")
    parser.add_argument("--batch", type=int, default=100, help="postings a transaction in the batched scenario")
    parser.add_argument("--quick", action="store_true", help="small numbers for a smoke run")
    parser.add_argument("--keep", action="store_true", help="keep the schema (for a look afterwards)")
    env = os.environ.get("DATABASE_URL", "")
    parser.add_argument("--db", default=env if env.startswith(("postgres://", "postgresql")) else DEFAULT_DB)
    if "--quick" in (sys.argv[1:] if argv is None else argv):  # small numbers, unless given
        parser.set_defaults(postings=400, customers=200)
    a = parser.parse_args(argv)
    counts = [int(x) for x in a.processes.split(",")]
    scenarios = [x for x in a.only.split(",") if x]
    libpq = a.db.replace("postgresql+psycopg://", "postgresql://").replace("postgres://", "postgresql://", 1)
    schema = f"bench_ledger_{uuid.uuid4().hex[:8]}"
    world = Books(libpq, schema)
    begun = time.monotonic()
    results: dict[str, Any] = {"when": datetime.now(UTC).isoformat(), "machine": platform.platform(),
                               "cpus": os.cpu_count(), "postings": a.postings, "customers": a.customers,
                               "repeat": a.repeat}
    try:
        print(f"ledger benchmark: {os.cpu_count()} cores; PostgreSQL {libpq.split('@')[-1]} schema {schema}; "
              f"{a.postings:,} postings a run, {a.repeat:.0%} of Encore's repeating an earlier one", flush=True)
        world.create()
        world.shop()
        print(f"setup: {world.accounts(a.customers):,} loyalty accounts open, empty", flush=True)
        runs, number = [], 0
        for scenario in scenarios:
            for processes in counts:
                for kind in ("baseline", "encore"):
                    number += 1
                    runs.append(run(world, number, scenario, kind, processes, a.postings, a.customers, a.repeat,
                                    a.batch))
        results["runs"] = runs
        results["entries"] = world.totals().entries
    finally:
        finish(world, _launched, keep=a.keep)
    return report(results, counts, time.monotonic() - begun)


def report(results: dict[str, Any], counts: list[int], elapsed: float) -> int:
    by = {(r["scenario"], r["kind"], r["processes"]): float(r["per_s"]) for r in results.get("runs", [])}
    heads = [f"{n} process{'es' if n > 1 else ''}" for n in counts]
    print(f"\n{'':<17}{'':<24}" + "".join(f"{h:>16}" for h in heads))
    for scenario, title in SCENARIOS.items():
        if not any(k[0] == scenario for k in by):
            continue
        for i, kind in enumerate(("encore", "baseline")):
            cells = [by.get((scenario, kind, n)) for n in counts]
            print(f"{title if i == 0 else '':<17}{LABELS[kind]:<24}"
                  + "".join(f"{(f'{c:,.0f}/s' if c else '-'):>16}" for c in cells))
        ratios = [(by[(scenario, "encore", n)] / by[(scenario, "baseline", n)]
                   if (scenario, "encore", n) in by and by.get((scenario, "baseline", n)) else None) for n in counts]
        print(f"{'':<17}{'Encore / baseline':<24}" + "".join(f"{(f'{r:.2f}x' if r else '-'):>16}" for r in ratios))
    checks: list[tuple[str, bool, str]] = []
    across = [(v, k[2]) for k, v in by.items() if k[0] == "across" and k[1] == "encore"]
    batched_ = [(v, k[2]) for k, v in by.items() if k[0] == "batched" and k[1] == "encore"]
    hot = [(v, k[2]) for k, v in by.items() if k[0] == "hot" and k[1] == "encore"]
    if across:
        best, n = max(across)
        checks.append((f">= {TARGET_ACROSS:,.0f} postings/s across customers", best >= TARGET_ACROSS,
                       f"{best:,.0f} postings/s (best: {n} process{'es' if n > 1 else ''})"))
    if batched_:
        best, n = max(batched_)
        checks.append((f">= {TARGET_ACROSS:,.0f} postings/s across, batched", best >= TARGET_ACROSS,
                       f"{best:,.0f} postings/s (best: {n} process{'es' if n > 1 else ''})"))
    if hot:
        best, n = max(hot)
        checks.append((f">= {TARGET_HOT:,.0f} postings/s on one account", best >= TARGET_HOT,
                       f"{best:,.0f} postings/s (best: {n} process{'es' if n > 1 else ''})"))
    print()
    for name, ok, shown in checks:
        print(f"{'PASS' if ok else 'MISS'}  {name:<40} {shown}")
    problems = [f"{r['scenario']} {r['kind']} {r['processes']} proc: {p}"
                for r in results.get("runs", []) for p in r["problems"]]
    if problems:
        print("FAIL  the books did not check out:\n  " + "\n  ".join(problems))
    save_results("ledger", results, elapsed)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
