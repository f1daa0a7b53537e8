"""The nightly analytics refresh against a real database (SQLite, or PostgreSQL when DATABASE_URL names one): a small
shop's history figures with no model (and what it lacks), a shop generated from a known BG/NBD process whose fit
recovers the process and equals the model fitted on the same histories directly, a rerun replacing the rows while
a merchant's reorder interval stays, leases (a second refresh of the same shop meanwhile does nothing; a dead run's
lease runs out), what `refresh_due` runs and when, and bad input changing nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, insert, select, update

from app.analytics import clv, history, refresh
from app.bootstrap import Container
from app.db import models as t

NOW = datetime(2026, 6, 10, 16, 0, tzinfo=UTC)  # 01:00 on the 11th in Seoul
SEOUL = "Asia/Seoul"


def add_shop(c: Container, domain: str, *, tz: str = "UTC", installed: bool = True) -> int:
    with c.sessions() as s, s.begin():
        shop = t.Shop(platform="shopify", domain=domain, currency="USD", timezone=tz,
                      installed_at=NOW - timedelta(days=900) if installed else None)
        s.add(shop)
        s.flush()
        return shop.id


def order_row(shop_id: int, oid: str, customer: str | None, at: datetime, total: str, *, refunded: str = "0",
              cancelled: bool = False, currency: str = "USD") -> dict[str, Any]:
    return {"shop_id": shop_id, "external_id": oid, "name": f"#{oid}", "customer_external_id": customer,
            "currency": currency, "subtotal": Decimal(total), "total": Decimal(total), "total_tax": Decimal(0),
            "total_shipping": Decimal(0), "total_discounts": Decimal(0), "refunded_amount": Decimal(refunded),
            "payment_status": "voided" if cancelled else "paid", "status": "cancelled" if cancelled else "open",
            "created_at": at, "cancelled_at": at if cancelled else None, "external_updated_at": at}


def add_orders(c: Container, shop_id: int, rows: list[dict[str, Any]], lines: dict[str, list[str]] | None = None) -> None:
    with c.sessions() as s, s.begin():
        s.execute(insert(t.Order), rows)
        ids = {oid: pk for oid, pk in s.execute(select(t.Order.external_id, t.Order.id).where(t.Order.shop_id == shop_id))}
        line_rows = [{"shop_id": shop_id, "order_id": ids[oid], "external_id": f"{oid}-{i}", "product_external_id": p,
                      "title": p, "quantity": 1, "price": Decimal(10), "total_discount": Decimal(0)}
                     for oid, products in (lines or {}).items() for i, p in enumerate(products)]
        if line_rows:
            s.execute(insert(t.OrderLine), line_rows)


def day(n: float) -> datetime:
    return datetime(2026, 1, 1, 12, tzinfo=UTC) + timedelta(days=n)


def metrics(c: Container, shop_id: int) -> dict[str, t.CustomerMetrics]:
    with c.sessions() as s:
        return {m.customer_external_id: m for m in s.scalars(
            select(t.CustomerMetrics).where(t.CustomerMetrics.shop_id == shop_id))}


def intervals(c: Container, shop_id: int) -> dict[str, tuple[float | None, int, int | None]]:
    with c.sessions() as s:
        p = t.ProductReorderInterval
        return {r.product_external_id: (r.median_days, r.repeats, r.merchant_days)
                for r in s.scalars(select(p).where(p.shop_id == shop_id))}


def runs(c: Container, shop_id: int) -> list[tuple[str, str | None]]:
    with c.sessions() as s:
        return [(r.status, r.error) for r in s.scalars(
            select(t.AnalyticsRun).where(t.AnalyticsRun.shop_id == shop_id).order_by(t.AnalyticsRun.id))]


# --- a small shop ---------------------------------------------------------------------------------------------------

SEOUL_APRIL = datetime(2026, 4, 30, 14, 30, tzinfo=UTC)  # 23:30 on 30 April in Seoul
SEOUL_MAY = datetime(2026, 4, 30, 15, 30, tzinfo=UTC)  # 00:30 on 1 May there, the same UTC day

SMALL = [  # (order, customer, when, total, refunded, cancelled, currency, products)
    ("o1", "ann", day(0), "30.00", "0", False, "USD", ["beans"]),
    ("o2", "ann", day(30), "20.00", "5.00", False, "USD", ["beans", "mug"]),  # 15.00 net of the refund
    ("o3", "ann", day(60), "40.00", "0", False, "USD", ["beans"]),
    ("o4", "bob", day(10), "25.00", "0", False, "USD", ["beans"]),
    ("o5", "bob", day(40), "25.00", "0", False, "USD", ["beans"]),
    ("o6", "cid", day(20), "60.00", "0", False, "USD", ["mug"]),
    ("o7", "cid", day(50), "99.00", "0", True, "USD", ["mug"]),  # cancelled: never counted
    ("o8", None, day(5), "70.00", "0", False, "USD", ["beans"]),  # a guest: nobody to follow
    ("o9", "dee", day(45), "15.00", "0", False, "EUR", ["tea"]),  # another currency: an order, with no value
    ("oa", "eve", SEOUL_APRIL, "10.00", "0", False, "USD", ["tea"]),
    ("ob", "fay", SEOUL_MAY, "10.00", "0", False, "USD", ["tea"]),
    ("oc", "gus", NOW + timedelta(hours=1), "10.00", "0", False, "USD", ["tea"]),  # after the observation
]


@pytest.fixture
def small(container: Container) -> int:
    shop_id = add_shop(container, "small.myshopify.com", tz=SEOUL)
    add_orders(container, shop_id,
               [order_row(shop_id, o, cid, when, total, refunded=ref, cancelled=x, currency=cur)
                for o, cid, when, total, ref, x, cur, _ in SMALL],
               {o: products for o, *_, products in SMALL})
    return shop_id


def test_a_small_shop_has_its_history_and_says_what_the_model_lacks(container: Container, small: int) -> None:
    summary = refresh.refresh(container, small, NOW)
    assert summary is not None
    assert (summary["customers"], summary["orders"], summary["currency"]) == (6, 9, "USD")
    assert summary["revenue"] == "215.00" and summary["other_currency_orders"] == 1  # ann 85, bob 50, cid 60, 10, 10
    assert summary["repeat_rate"] == pytest.approx(2 / 6)
    gaps = summary["time_between_orders"]  # ann 30 and 30 days, bob 30 days
    assert (gaps["median_days"], gaps["p25_days"], gaps["p75_days"]) == (30.0, 30.0, 30.0)
    assert {b["from_days"]: b["count"] for b in gaps["histogram"]} == {0: 0, 7: 0, 14: 0, 30: 3, 60: 0, 90: 0, 180: 0,
                                                                     365: 0}
    assert summary["historic_clv"] == {"mean": "35.83", "median": "30.00"}  # 0, 10, 10, 50, 60, 85
    # Seoul's months: ann's second order (21:00 on 31 January there) is January's; eve's and fay's an hour apart
    assert [(m["month"], m["customers"], m["returning"]) for m in summary["repeat_rate_by_month"]] == [
        ("2026-01", 3, 0), ("2026-02", 2, 1), ("2026-03", 1, 1), ("2026-04", 1, 0), ("2026-05", 1, 0)]
    assert [(c["cohort"], c["size"], c["retention"]) for c in summary["cohorts"]] == [
        ("2026-01", 3, [1.0, 0.3333, 0.3333, 0.0, 0.0, 0.0]),  # bob in February, ann in March; up to June
        ("2026-02", 1, [1.0, 0.0, 0.0, 0.0, 0.0]), ("2026-04", 1, [1.0, 0.0, 0.0]), ("2026-05", 1, [1.0, 0.0])]
    assert summary["model"] == {
        "status": "not_enough_data", "reason": "too_few_customers", "customers": 6, "repeat_customers": 2,
        "needs": {"customers": 200, "repeat_customers": 50}, "missing": {"customers": 194, "repeat_customers": 48}}
    assert sum(summary["rfm"].values()) == 6 and summary["reorder_intervals"] == 1

    rows = metrics(container, small)
    assert set(rows) == {"ann", "bob", "cid", "dee", "eve", "fay"}
    ann = rows["ann"]
    assert (ann.orders, ann.revenue, ann.first_order_at, ann.last_order_at) == (3, Decimal("85.00"), day(0), day(60))
    assert (rows["cid"].orders, rows["dee"].revenue) == (1, Decimal(0))
    assert (ann.rfm_r, ann.rfm_f, ann.rfm_m, ann.rfm_segment) == (3, 5, 5, "loyal")  # third most recent; most orders
    assert all(r.p_alive is None and r.expected_orders_90d is None and r.predicted_clv is None
               and r.expected_next_order_at is None and r.refreshed_at == NOW for r in rows.values())
    # beans: ann after 30 and 30 days, bob after 30 (the guest's is nobody's); the mug and tea never bought twice
    assert intervals(container, small) == {"beans": (30.0, 3, None)}
    with container.sessions() as s:
        assert refresh.latest(s, small) == summary
        figures = refresh.customer(s, small, "ann")
        assert figures is not None and (figures.orders, figures.rfm_segment) == (3, "loyal")
        assert refresh.customer(s, small, "gus") is None and refresh.customer(s, small, "ghost") is None
    assert runs(container, small) == [("done", None)]


# --- a shop from a known process ------------------------------------------------------------------------------------

TRUE = {"r": 0.9, "alpha": 30.0, "a": 0.8, "b": 2.5, "p": 6.0, "q": 4.0, "gamma": 40.0}  # days; dollars
# Each estimate within about four standard errors of the truth for 3,000 customers (20 simulated shops: 3-8% for
# r, alpha, a, b and q; the mean order value p gamma / (q - 1) within 1.2%; p and gamma alone move together widely).
WITHIN = {"r": 0.15, "alpha": 0.25, "a": 0.25, "b": 0.35, "q": 0.2}


def generate(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Customers of ages T (days) from BG/NBD with Gamma-Gamma spend: each one's repeat orders arrive as a Poisson
    process of rate lambda ~ Gamma(r, alpha) until they drop out after the K-th (K geometric in p ~ Beta(a, b)); the
    first x of N uniform arrivals on [0, T] are T S_j / S_(N+1), S the sums of exponential spacings. Returns T, and
    per repeat order its customer, its day after the first order and its value (Gamma(p, nu), nu ~ Gamma(q, gamma))."""
    T = rng.uniform(60.0, 730.0, n)
    arrivals = rng.poisson(rng.gamma(TRUE["r"], 1.0 / TRUE["alpha"], n) * T)
    x = np.minimum(rng.geometric(rng.beta(TRUE["a"], TRUE["b"], n)), arrivals)
    owner = np.repeat(np.arange(n), x)
    spacing = rng.exponential(1.0, owner.size)
    running = np.cumsum(spacing)
    first = np.repeat(np.cumsum(x) - x, x)
    sums = running - (running[first] - spacing[first])
    at = T[owner] * sums / (sums[np.repeat(np.cumsum(x) - 1, x)] + rng.gamma(arrivals[owner] - x[owner] + 1.0))
    nu = rng.gamma(TRUE["q"], 1.0 / TRUE["gamma"], n)
    return T, owner, at, nu


@pytest.fixture(scope="module")
def process() -> dict[str, Any]:
    """3,000 customers' orders, to the second and the cent, and the model fitted on their own histories."""
    rng = np.random.default_rng(2026)
    n = 3000
    T, owner, at, nu = generate(rng, n)
    customers = np.concatenate((np.arange(n), owner))
    seconds = np.round(NOW.timestamp() - np.concatenate((T, T[owner] - at)) * 86_400)
    values = np.round(rng.gamma(TRUE["p"], 1.0 / nu[customers]), 2)
    values = np.maximum(values, 0.01)
    summary = clv.summarise(customers, seconds / 86_400, values, NOW.timestamp() / 86_400)
    model = clv.fit(summary.x, summary.t_x, summary.T, summary.m_x)
    assert isinstance(model, clv.Model) and model.spend is not None
    return {"customers": customers, "seconds": seconds, "values": values, "summary": summary, "model": model}


def test_a_shop_from_a_known_process_recovers_it(container: Container, process: dict[str, Any]) -> None:
    shop_id = add_shop(container, "known.myshopify.com", tz="America/New_York")
    add_orders(container, shop_id, [
        order_row(shop_id, f"k{i}", f"c{k}", datetime.fromtimestamp(float(sec), UTC), f"{v:.2f}")
        for i, (k, sec, v) in enumerate(zip(process["customers"].tolist(), process["seconds"].tolist(),
                                            process["values"].tolist(), strict=True))])
    summary = refresh.refresh(container, shop_id, NOW)
    assert summary is not None and summary["customers"] == 3000
    model = summary["model"]
    assert model["status"] == "fitted" and model["spend"] == "fitted"
    params = model["params"]
    for name, within in WITHIN.items():
        assert params[name] == pytest.approx(TRUE[name], rel=within), name
    assert params["p"] * params["gamma"] / (params["q"] - 1) == pytest.approx(80.0, rel=0.06)
    # ... and it is the model fitted on the same histories without the database
    direct: clv.Model = process["model"]
    assert direct.spend is not None
    for name, value in {"r": direct.bgnbd.r, "alpha": direct.bgnbd.alpha, "a": direct.bgnbd.a, "b": direct.bgnbd.b,
                        "p": direct.spend.p, "q": direct.spend.q, "gamma": direct.spend.gamma}.items():
        assert params[name] == pytest.approx(value, rel=1e-4), name

    rows = metrics(container, shop_id)
    s = process["summary"]
    x = dict(zip((f"c{k}" for k in s.customer.tolist()), s.x.tolist(), strict=True))
    assert all((rows[c].p_alive is None) == (x[c] == 0) for c in rows)  # P(alive) only after a repeat order
    assert all(0.0 <= (r.p_alive or 0.0) <= 1.0 and (r.expected_orders_90d or 0.0) >= 0.0 for r in rows.values())
    assert sum(r.expected_orders_90d or 0.0 for r in rows.values()) == pytest.approx(model["expected_orders_90d"],
                                                                                   abs=0.01)
    assert sum(r.predicted_clv or Decimal(0) for r in rows.values()) == pytest.approx(
        Decimal(model["predicted_clv_total"]), abs=Decimal("0.005") * len(rows))
    nexts = [r.expected_next_order_at for r in rows.values() if r.expected_next_order_at is not None]
    assert nexts and all(NOW < at <= NOW + refresh.NEXT_ORDER_WITHIN for at in nexts)
    assert all(x[c] > 0 for c, r in rows.items() if r.expected_next_order_at is not None)
    # one customer's figures are the model's for their history
    i = int(np.flatnonzero(s.x >= 3)[0])
    row = rows[f"c{s.customer[i]}"]
    assert row.p_alive == pytest.approx(float(direct.bgnbd.p_alive(s.x[i], s.t_x[i], s.T[i])), rel=1e-4)
    assert row.expected_orders_90d == pytest.approx(
        float(direct.bgnbd.expected_orders(90, s.x[i], s.t_x[i], s.T[i])), rel=1e-4)


# --- reruns ---------------------------------------------------------------------------------------------------------


def test_a_rerun_replaces_the_rows_and_keeps_the_merchants_interval(container: Container, small: int) -> None:
    assert refresh.refresh(container, small, NOW) is not None
    with container.sessions() as s, s.begin():
        p = t.ProductReorderInterval
        s.add(p(shop_id=small, product_external_id="tea", merchant_days=21))  # set by the merchant, never learned
        s.execute(update(p).where(p.shop_id == small, p.product_external_id == "beans").values(merchant_days=45))
        # bob's orders are cancelled; ann orders beans again 20 days after her last
        s.execute(update(t.Order).where(t.Order.shop_id == small, t.Order.customer_external_id == "bob")
                  .values(status="cancelled", cancelled_at=NOW))
    add_orders(container, small, [order_row(small, "od", "ann", day(80), "12.00")], {"od": ["beans"]})

    later = NOW + timedelta(days=1)  # gus's order, an hour after NOW, counts now
    summary = refresh.refresh(container, small, later)
    assert summary is not None and summary["customers"] == 6 and summary["orders"] == 9
    rows = metrics(container, small)
    assert set(rows) == {"ann", "cid", "dee", "eve", "fay", "gus"}  # bob is no customer any more
    assert (rows["ann"].orders, rows["ann"].revenue, rows["ann"].last_order_at) == (4, Decimal("97.00"), day(80))
    assert all(r.refreshed_at == later for r in rows.values())
    # beans: ann's 30, 30 and 20 days, learned again beside the merchant's 45; tea: the merchant's alone stays
    assert intervals(container, small) == {"beans": (30.0, 3, 45), "tea": (None, 0, 21)}
    assert [status for status, _ in runs(container, small)] == ["done", "done"]
    with container.sessions() as s:
        assert refresh.latest(s, small) == summary


def test_old_runs_are_pruned_to_the_newest(container: Container, small: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(refresh, "KEEP_RUNS", 3)
    for n in range(5):
        assert refresh.refresh(container, small, NOW + timedelta(hours=n)) is not None
    with container.sessions() as s:
        kept = s.scalars(select(t.AnalyticsRun.started_at).where(t.AnalyticsRun.shop_id == small)
                         .order_by(t.AnalyticsRun.id)).all()
    assert kept == [NOW + timedelta(hours=n) for n in (2, 3, 4)]


# --- leases ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Make the next refresh stop once it holds its shop and has begun reading, until released."""
    reading, release = threading.Event(), threading.Event()
    stage = history.stage

    def slow(*args: Any, **kwargs: Any) -> Any:
        reading.set()
        assert release.wait(30)
        return stage(*args, **kwargs)

    monkeypatch.setattr(history, "stage", slow)
    yield reading, release
    release.set()


def test_a_second_refresh_of_a_shop_being_refreshed_does_nothing(
        container: Container, small: int, held: tuple[threading.Event, threading.Event]) -> None:
    reading, release = held
    first: list[Any] = []
    worker = threading.Thread(target=lambda: first.append(refresh.refresh(container, small, NOW)))
    worker.start()
    assert reading.wait(30)
    assert refresh.refresh(container, small, NOW + timedelta(minutes=1)) is None
    assert refresh.refresh_due(container, NOW + timedelta(minutes=1)) == 0
    assert runs(container, small) == [("running", None)]
    release.set()
    worker.join(30)
    assert first[0] is not None and runs(container, small) == [("done", None)]
    assert {r.refreshed_at for r in metrics(container, small).values()} == {NOW}


def test_a_dead_runs_lease_runs_out_and_the_next_refresh_takes_the_shop_over(container: Container, small: int) -> None:
    dead = refresh.claim(container, small, NOW)  # a worker that died right after claiming
    assert dead is not None
    assert refresh.refresh(container, small, NOW + refresh.LEASE - timedelta(seconds=1)) is None
    assert metrics(container, small) == {}
    after = NOW + refresh.LEASE + timedelta(seconds=1)
    assert refresh.refresh_due(container, after) == 1  # its last run died: due again
    assert runs(container, small) == [("failed", "abandoned: its lease ran out"), ("done", None)]
    assert len(metrics(container, small)) == 6


def test_a_run_whose_lease_was_taken_over_writes_nothing(container: Container, small: int,
                                                         held: tuple[threading.Event, threading.Event]) -> None:
    reading, release = held
    slow: list[Any] = []
    worker = threading.Thread(target=lambda: slow.append(refresh.refresh(container, small, NOW)))
    worker.start()
    assert reading.wait(30)
    with container.sessions() as s, s.begin():  # its lease ran out and another run took the shop meanwhile
        s.execute(update(t.AnalyticsRun).where(t.AnalyticsRun.shop_id == small)
                  .values(status="failed", error="abandoned: its lease ran out"))
    release.set()
    worker.join(30)
    assert slow == [None] and metrics(container, small) == {} and intervals(container, small) == {}


# --- what is due ----------------------------------------------------------------------------------------------------


def test_each_installed_shop_is_refreshed_once_a_night_in_its_own_zone(container: Container, small: int) -> None:
    ny = add_shop(container, "ny.myshopify.com", tz="America/New_York")
    add_shop(container, "gone.myshopify.com", installed=False)
    # 16:00 UTC on 10 June: 01:00 on the 11th in Seoul, noon in New York; neither refreshed yet: both due now
    assert refresh.refresh_due(container, NOW) == 2
    assert refresh.refresh_due(container, NOW + timedelta(minutes=5)) == 0
    # Seoul's 03:00 comes at 18:00 UTC, New York's at 07:00 UTC the next day
    assert refresh.refresh_due(container, datetime(2026, 6, 10, 17, 59, tzinfo=UTC)) == 0
    assert refresh.refresh_due(container, datetime(2026, 6, 10, 18, 0, tzinfo=UTC)) == 1
    assert refresh.refresh_due(container, datetime(2026, 6, 11, 6, 59, tzinfo=UTC)) == 0
    assert refresh.refresh_due(container, datetime(2026, 6, 11, 7, 0, tzinfo=UTC)) == 1
    with container.sessions() as s:
        analytics_at = dict(s.execute(select(t.Shop.id, t.Shop.analytics_at).where(t.Shop.id.in_([small, ny]))).all())
    assert analytics_at == {small: datetime(2026, 6, 10, 18, 0, tzinfo=UTC), ny: datetime(2026, 6, 11, 7, 0, tzinfo=UTC)}


def test_the_nightly_moment_is_the_latest_3am_in_the_zone() -> None:
    assert refresh.nightly(NOW, SEOUL) == datetime(2026, 6, 9, 18, 0, tzinfo=UTC)  # 01:00 there: yesterday's
    assert refresh.nightly(NOW, "America/New_York") == datetime(2026, 6, 10, 7, 0, tzinfo=UTC)  # EDT
    assert refresh.nightly(datetime(2026, 1, 10, 8, 0, tzinfo=UTC), "America/New_York") == \
        datetime(2026, 1, 10, 8, 0, tzinfo=UTC)  # EST, the very moment


def test_asking_for_a_refresh_makes_the_shop_due_at_the_next_sweep(container: Container, small: int) -> None:
    assert refresh.refresh(container, small, NOW) is not None
    assert refresh.refresh_due(container, NOW + timedelta(minutes=1)) == 0
    assert refresh.request(container, small, NOW + timedelta(minutes=1)) is True
    assert refresh.refresh_due(container, NOW + timedelta(minutes=2)) == 1
    assert [status for status, _ in runs(container, small)] == ["done", "done"]


def test_a_failed_refresh_is_recorded_and_tried_again_once_its_lease_runs_out(
        container: Container, small: int, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the optimiser fell over")

    monkeypatch.setattr(clv, "fit", broken)
    assert refresh.refresh_due(container, NOW) == 0  # failed: logged, the sweep goes on
    assert runs(container, small) == [("failed", "RuntimeError: the optimiser fell over")]
    assert metrics(container, small) == {}
    with pytest.raises(RuntimeError):
        refresh.refresh(container, small, NOW + timedelta(minutes=1))  # asked for directly: raised
    monkeypatch.undo()
    assert refresh.refresh_due(container, NOW + timedelta(minutes=2)) == 0  # its lease still holds
    assert refresh.refresh_due(container, NOW + refresh.LEASE + timedelta(minutes=2)) == 1
    assert len(metrics(container, small)) == 6


# --- bad input ------------------------------------------------------------------------------------------------------


def test_bad_input_is_refused_and_changes_nothing(container: Container, small: int) -> None:
    with pytest.raises(refresh.UnknownShop):
        refresh.refresh(container, small + 100, NOW)
    with pytest.raises(refresh.UnknownShop):
        refresh.request(container, small + 100, NOW)
    with pytest.raises(ValueError, match="aware"):
        refresh.refresh(container, small, NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="aware"):
        refresh.refresh_due(container, NOW.replace(tzinfo=None))
    assert runs(container, small) == [] and metrics(container, small) == {}
    with container.sessions() as s:
        assert s.scalar(select(func.count()).select_from(t.AnalyticsRun)) == 0
        assert s.scalar(select(t.Shop.analytics_at).where(t.Shop.id == small)) is None
        assert refresh.latest(s, small) is None
