"""Fault drills for rewards (issue 7): the web tier killed with SIGKILL while shoppers redeem through the
storefront, and the store's Admin API answering 429 and 5xx for minutes while reward and referral codes wait to
be written. Each drill counts from the database (ledger, redemptions, referrals) and from the Shopify store
simulator (the discount codes it holds, and every write it was asked for) what was lost, duplicated and
recovered, reports it (tests/drills/report.py), then asserts none lost and none duplicated.

- A redemption is keyed by the widget's request key: a press sent again after a dropped connection or a 5xx
  from the app proxy (Encore's tier down) is the same redemption (answered with its code), never a second debit.
  The shoppers follow the widget's rules (tests/drills/shoppers.py); before the widget kept its key after a 5xx,
  this drill found 62 redemptions for 48 rewards wanted.
- Points and codes never part: one debit per redemption, each redemption's code in the store once, no code in
  the store without its debit; what a killed web tier left half-done (debited, code not yet written) is
  finished by `rewards.issue_due` once its lease has run out.
- A store that is down is asked again with backoff (`issue_due` on the container's clock, advanced in steps),
  nothing is written twice, and everything is written once the store is back.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app import loyalty, referrals, rewards, shops
from app.bootstrap import Container
from app.config import Settings
from app.core.loyalty import Balance, Entry, Posting, Reason
from app.core.ports import StorePlatform
from app.db import models as t
from connectors.shopify.client import ShopifyClient
from tests.conftest import API_KEY, API_SECRET
from tests.drills import procs
from tests.drills.report import report
from tests.drills.shoppers import Clock, Shopper, Store

POINTS, COST = 500, 100  # each customer's points, and the reward's cost


def customers(c: Container, shop_id: int, ids: list[str], points: int, now: datetime) -> None:
    with c.sessions() as s, s.begin():
        for cid in ids:
            s.add(t.Customer(shop_id=shop_id, external_id=cid, email=f"c{cid}@example.com", external_updated_at=now))
            loyalty.post(s, shop_id, cid, [Posting(Entry(points, Balance.AVAILABLE, Reason.ACTION, f"signup:{cid}"))],
                         now)


def five_off(c: Container, shop_id: int, now: datetime) -> int:
    with c.sessions() as s, s.begin():
        return rewards.add_reward(s, shop_id, "$5 off", "amount", Decimal("5.00"), COST, now, valid_days=30)


def books(c: Container, shop_id: int) -> dict[str, Any]:
    """The ledger and the redemptions as they stand: per customer what was earned, what was spent (redeemed
    less restored) and the balance; each redemption's debit entries."""
    with c.sessions() as s:
        assert loyalty.mismatches(s) == []  # every snapshot the sum of its entries
        entries = s.execute(select(t.LoyaltyAccount.customer_external_id, t.LedgerEntry.reason, t.LedgerEntry.amount,
                                   t.LedgerEntry.key).join(t.LoyaltyAccount,
                                                           t.LoyaltyAccount.id == t.LedgerEntry.account_id)
                            .where(t.LedgerEntry.shop_id == shop_id)).all()
        redemptions = list(s.scalars(select(t.Redemption).where(t.Redemption.shop_id == shop_id)))
        balances = {cid: loyalty.balance(s, shop_id, cid).available for cid in {e[0] for e in entries}}
        for r in redemptions:
            s.expunge(r)
    earned: Counter[str] = Counter()
    spent: Counter[str] = Counter()
    debits: Counter[str] = Counter()
    for cid, reason, amount, key in entries:
        if reason == Reason.ACTION:
            earned[cid] += amount
        elif reason in (Reason.REDEEMED, Reason.RESTORED):
            spent[cid] -= amount
            if reason == Reason.REDEEMED:
                debits[key.removeprefix("redeem:")] += 1
    return {"earned": earned, "spent": spent, "balances": balances, "debits": debits, "redemptions": redemptions}


# --- kill -9 of the web tier during redemptions -------------------------------------------------------------------


@pytest.fixture
def drill_store() -> Iterator[Store]:
    store = Store.start(write_latency=0.1)  # the store takes 100 ms to write a code
    yield store
    store.stop()


def test_web_tier_killed_during_redemptions_points_and_codes_never_part(
        settings: Settings, make_container: Any, pg_schema: str | None, drill_store: Store, tmp_path: Path) -> None:
    store, kills, wants, points = drill_store, 3, 4, 1000  # points enough for a press counted twice to show
    c: Container = make_container(settings.with_(shopify_shop_origin=store.sim.shop_origin_template))
    now = datetime.now(UTC)
    shop_id = store.install(c)
    ids = [str(8001 + i) for i in range(10)]
    customers(c, shop_id, ids, points, now)
    reward_id = five_off(c, shop_id, now)
    env = procs.encore_env(c, pg_schema, SHOPIFY_SHOP_ORIGIN=store.sim.shop_origin_template,
                           ENCORE_SWEEP_INTERVAL="3600",  # the drill runs issue_due itself, after the kills
                           ENCORE_RATE_LIMIT_WRITES="1000000/minute", ENCORE_RATE_LIMIT_PAGES="1000000/minute")
    issuing_after_kill: list[int] = []
    shoppers = [Shopper(store.sim, cid, reward_id, wants) for cid in ids]
    with (tmp_path / "web.log").open("wb") as log:
        web = procs.start_web(env, log)
        store.sim.app_url = web.url  # the app proxy forwards to the web tier (the same port across restarts)
        deadline = time.monotonic() + 120
        threads = [threading.Thread(target=x.run, args=(deadline,)) for x in shoppers]
        for thread in threads:
            thread.start()
        total = len(ids) * wants
        try:
            for k in range(kills):  # each kill once a share of the rewards is shown, the other presses in flight
                procs.wait_for(lambda k=k: sum(len(x.got) for x in shoppers) >= total * (k + 1) // (kills + 2),
                               timeout=60, every=0.01)
                web.kill9()
                with c.sessions() as s:
                    issuing_after_kill.append(len(s.scalars(select(t.Redemption.id).where(
                        t.Redemption.status == "issuing")).all()))
                time.sleep(0.3)
                web = web.restart()
            for thread in threads:
                thread.join(150)
        finally:
            web.kill9()
    before = books(c, shop_id)
    stranded = {r.code.lower() for r in before["redemptions"] if r.status == "issuing"}
    # What a worker's sweep does every few seconds, once the killed tier's leases (60 s) have run out.
    platform: Callable[[int], StorePlatform] = lambda sid: shops.store_platform(c, sid)  # noqa: E731
    later = datetime.now(UTC) + rewards.LEASE + timedelta(seconds=5)
    passes = 0
    while passes < 5 and rewards.issue_due(c, later + timedelta(minutes=passes), platform):
        passes += 1
    after = books(c, shop_id)
    redemptions = after["redemptions"]
    issued = {r.code.lower() for r in redemptions if r.status == "issued"}
    held_codes = set(store.discounts)
    shown = [answer["code"].lower() for x in shoppers for answer in x.got]
    per_customer = Counter(r.customer_external_id for r in redemptions)
    # Lost: a reward a shopper wanted and never saw a code for; a code shown whose redemption is not issued or
    # that the store lacks; a customer whose balance is not earned less spent; a code in the store without its
    # debit (the points never taken).
    lost = sum(wants - len(x.got) for x in shoppers) + len(set(shown) - (issued & held_codes))
    lost += sum(after["balances"][cid] != after["earned"][cid] - after["spent"][cid] for cid in ids)
    lost += len(written_without_debit := held_codes - {r.code.lower() for r in redemptions})
    # Duplicated: a redemption beyond what the shopper wanted (points spent twice for one reward), a second
    # debit for one redemption, a code the store holds twice.
    duplicated = sum(max(n - wants, 0) for n in per_customer.values())
    duplicated += sum(n - 1 for n in after["debits"].values())
    duplicated += sum(n - 1 for n in Counter(d["id"] for d in store.discounts.values()).values())
    presses = [p for x in shoppers for p in x.presses]
    report("kill -9 web during redemptions",
           f"{len(ids)} shoppers wanted {wants} rewards each and pressed the widget's button through the store's app "
           f"proxy (signed as Shopify signs) to gunicorn (2 workers x 4 threads); the web tier was SIGKILLed {kills} "
           f"times mid-stream and restarted; then rewards.issue_due ran past the leases", items=total, lost=lost,
           duplicated=duplicated, recovered=len(stranded & issued), presses=len(presses),
           requests=sum(p.requests for p in presses), dropped_requests=sum(x.dropped for x in shoppers),
           presses_again_with_the_same_key=len(presses) - len({p.key for p in presses}),
           answered_with_first_redemption=sum(bool(p.answer.get("already")) for p in presses),
           issuing_after_each_kill="/".join(map(str, issuing_after_kill)),
           codes_written_again_store_said_taken=sum(n - 1 for n in store.writes.values() if n > 1),
           redemptions=len(redemptions), codes_in_store=len(held_codes))
    assert lost == 0 and duplicated == 0
    assert not written_without_debit and held_codes == issued == set(shown)
    assert {r.status for r in redemptions} == {"issued"} and len(redemptions) == total
    assert all(n == 1 for n in after["debits"].values()) and set(after["debits"]) == {r.request_key for r in redemptions}
    assert all(after["balances"][cid] == points - COST * wants for cid in ids)
    assert sum(x.dropped for x in shoppers) > 0  # the kills really cut requests off


# --- the store answering 429 and 5xx for minutes -------------------------------------------------------------------


def test_store_answering_429_and_5xx_for_minutes_codes_wait_and_are_written_once(
        settings: Settings, make_container: Any) -> None:
    outage, step = timedelta(minutes=60), 10.0  # an hour down: longer than a few tries, within the ~6 h horizon
    clock = Clock()
    back_at = clock.now() + outage
    store = Store.start(down=lambda: clock.now() < back_at, retry_after="2")
    try:
        c: Container = make_container(settings.with_(shopify_shop_origin=store.sim.shop_origin_template))
        c.clock = clock  # type: ignore[assignment]
        waits: list[float] = []  # the client's own retries inside one call: their waits are recorded, not slept
        c.shopify = ShopifyClient(api_key=API_KEY, api_secret=API_SECRET, shop_origin=store.sim.shop_origin_template,
                                  sleep=waits.append)
        outcome = outage_drill(c, store, clock, back_at, step, waits)
    finally:
        store.stop()
    checks = outcome.pop("checks")
    report("store answering 429 and 5xx for minutes", outcome.pop("did"), **outcome)
    assert outcome["lost"] == 0 and outcome["duplicated"] == 0
    assert outcome["recovered"] == outcome["items"] == 20
    assert checks["changed_while_down"] == []  # while down: kept waiting, never given up on, never in the store
    assert checks["backoff_grows"]  # each wait longer than the one before, up to 15 minutes (app/core/backoff.py)
    assert checks["answers_seen"] == {429, 500, 502, 503}


def outage_drill(c: Container, store: Store, clock: Clock, back_at: datetime, step: float, waits: list[float]
                 ) -> dict[str, Any]:
    start = clock.now()
    shop_id = store.install(c)
    redeemers = [str(8101 + i) for i in range(10)]
    friends = [f"friend{i}@example.com" for i in range(10)]
    customers(c, shop_id, [*redeemers, "8200"], 300, start)
    reward_id = five_off(c, shop_id, start)
    with c.sessions() as s, s.begin():
        referrals.configure(s, shop_id, enabled=True, friend_kind="amount", friend_value=Decimal("10"),
                            friend_valid_days=30, referrer_points=200, wait_days=14, cap_per_referrer=None,
                            cap_window_days=365, now=start)
        referral_code = referrals.code_for(s, shop_id, "8200", start)
    platform: Callable[[int], StorePlatform] = lambda sid: shops.store_platform(c, sid)  # noqa: E731

    # The store goes down; shoppers redeem and friends claim their codes all the same.
    answers = [rewards.redeem(c, shop_id, cid, reward_id, f"widget:{cid}:outage", clock.now(), platform)
               for cid in redeemers]
    claims = [referrals.claim(c, shop_id, referral_code, email, clock.now(), platform) for email in friends]
    assert {a.status for a in answers} == {"issuing"} and {x.status for x in claims} == {"issuing"}
    codes = {a.code.lower(): "reward" for a in answers} | {x.friend_code.lower(): "referral" for x in claims}
    first_calls = len(waits)  # the client's in-call retries behind those 20 first attempts

    tries: dict[str, list[datetime]] = defaultdict(lambda: [start])  # code -> when Encore asked the store
    seen: dict[str, int] = dict.fromkeys(codes, 1)
    changed_while_down: list[tuple[str, str]] = []
    passes = 0
    while passes < 1200:  # the worker's sweep, every `step` seconds of the clock
        passes += 1
        clock.advance(step)
        rewards.issue_due(c, clock.now(), platform)
        referrals.issue_due(c, clock.now(), platform)
        now = attempts_by_code(c, shop_id)
        for code, (status, attempts) in now.items():
            if attempts != seen[code]:
                tries[code].append(clock.now())
                seen[code] = attempts
            if clock.now() < back_at and (status != "issuing" or code in store.discounts):
                changed_while_down.append((code, status))
        if all(status == "issued" for status, _ in now.values()):
            break
    final = attempts_by_code(c, shop_id)
    after = books(c, shop_id)
    written = {code for code, (status, _) in final.items() if status == "issued"}
    lost = len(set(codes) - (written & set(store.discounts)))
    lost += sum(after["balances"][cid] != after["earned"][cid] - after["spent"][cid] for cid in redeemers)
    lost += sum(after["spent"][cid] != COST for cid in redeemers)  # the points stayed spent: none came back
    duplicated = sum(n - 1 for n in store.writes.values()) + sum(n - 1 for n in after["debits"].values())
    gaps = [[(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)] for times in tries.values()]
    attempts = [a for _, a in final.values()]
    return {
        "checks": {"changed_while_down": changed_while_down, "answers_seen": set(store.refused),
                   "backoff_grows": all(g[:5] == sorted(g[:5]) and len(set(g[:5])) == len(g[:5]) and max(g) <= 1080
                                        for g in gaps)},
        "did": f"{len(answers)} reward codes and {len(claims)} referral friend codes due while the store's Admin API "
               f"answered 429 (Retry-After 2) and 500/502/503 in turn for {outage_minutes(back_at - start)} minutes of "
               f"the container's clock (advanced {step:g} s a sweep)",
        "items": len(codes), "lost": lost, "duplicated": duplicated,
        "recovered": len(written & set(store.discounts)),
        "written_once": sum(store.writes[code] == 1 for code in codes),
        "encore_attempts": sum(attempts), "attempts_per_code": f"{min(attempts)}-{max(attempts)}",
        "store_calls_refused": sum(store.refused.values()),
        "client_retries_in_call": len(waits), "client_waits_in_call_s": round(sum(waits), 1),
        "client_wait_per_first_attempt_s": round(sum(waits[:first_calls]) / max(len(answers) + len(claims), 1), 1),
        "backoff_s": "/".join(f"{min(g[i] for g in gaps if len(g) > i):g}-{max(g[i] for g in gaps if len(g) > i):g}"
                              for i in range(max(len(g) for g in gaps))),
        "minutes_to_drain": outage_minutes(clock.now() - start),
    }


def outage_minutes(span: timedelta) -> float:
    return round(span.total_seconds() / 60, 1)


def attempts_by_code(c: Container, shop_id: int) -> dict[str, tuple[str, int]]:
    """Each reward and friend code: its status in Encore (issuing / issued / restored / failed) and the tries."""
    with c.sessions() as s:
        got = {code.lower(): (status, attempts) for code, status, attempts in s.execute(
            select(t.Redemption.code, t.Redemption.status, t.Redemption.attempts).where(t.Redemption.shop_id == shop_id))}
        got |= {code.lower(): (status, attempts) for code, status, attempts in s.execute(
            select(t.Referral.friend_code, t.Referral.friend_code_status, t.Referral.attempts)
            .where(t.Referral.shop_id == shop_id))}
    return got
