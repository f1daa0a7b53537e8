"""The nightly analytics refresh of a shop: its history as figures, each customer's RFM scores and segment, the
lifetime model fitted on the shop's own customers with each one's predictions, and each product's reorder interval.

One run reads, computes, then writes, on one connection (its temporary tables live as long as it):

1. **Read** (one transaction): the shop's counted orders staged in a temporary table in one pass sorted by customer
   and time (`history.stage`, which is also what makes every figure see the same orders), then per-customer
   aggregates streamed out of a GROUP BY in chunks, the gaps between orders, the (cohort, month) pairs and the
   products' repeat gaps, each counted by the database (`app.analytics.history`). Python's memory grows with the
   customers (a few arrays and their ids), never with the orders.
2. **Compute**, vectorised over customers: RFM quintiles (`app.analytics.rfm`), the BG/NBD and Gamma-Gamma fit
   (`app.analytics.clv`, in days) or why there is none, and the predictions: P(alive), expected orders in the next
   90 days, the expected next order (now + the median wait) and the CLV over 12 months, discounted monthly.
3. **Write** (one transaction): the scores and predictions into a temporary table (COPY on PostgreSQL), joined in
   SQL to the staged history to replace the shop's `customer_metrics` (delete + insert); the learned reorder
   intervals upserted (a merchant's own `merchant_days` is never touched); the segments refreshed on the new
   metrics (`app.segments.refresh_all`); the run's summary recorded. The admin reads that summary (`latest`) and
   each customer's row (`customer`). A refresh can be asked for (`request`): the next sweep runs it.

P(alive) and the expected next order are kept for customers with a repeat order only: under BG/NBD a customer drops
out only after a repeat order, so a one-time buyer is "alive" with probability 1 however long ago they bought, a
figure the merchant would misread. Their expected orders and CLV stay: those account for their age.

**Runs and leases.** A run holds its shop for `LEASE` (an `analytics_runs` row, status "running"). Claiming first
takes the shop's row (an UPDATE, which serialises claimers on both databases), then looks: a live lease means
another worker has the shop and the claim gives up. A worker that died leaves its lease to run out, and the next
claim marks that run failed and starts again; a run that finds its lease taken by then writes nothing. `refresh_due`
refreshes each installed shop once a day, at or after `NIGHTLY_AT` in its own zone (at once when never refreshed),
and again when its last run failed or died (once the lease has run out, so a broken shop is tried every `LEASE`).
"""

from __future__ import annotations

import time as timer
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import structlog
from babel.numbers import get_currency_precision
from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from app import segments
from app.analytics import clv, history, rfm
from app.core import dates
from app.core.rfm import RFM_LABELS
from app.db import bulk
from app.db.engine import insert_for, rowcount
from app.db.models import AnalyticsRun, CustomerMetrics, ProductReorderInterval, Shop, UtcDateTime

if TYPE_CHECKING:
    from app.bootstrap import Container

log = structlog.get_logger(__name__)

Floats = npt.NDArray[np.float64]

LEASE = timedelta(minutes=30)  # a run holds its shop this long; a dead worker's run is taken over after it
NIGHTLY_AT = time(3)  # local time in the shop's zone after which the day's refresh is due
HORIZON_DAYS = 90  # expected orders over this many days
CLV_DAYS = 365  # predicted CLV over this many days...
MONTHLY_DISCOUNT = 0.01  # ...each month's revenue discounted by this much more than the month before's
NEXT_ORDER_WITHIN = timedelta(days=730)  # a median wait longer than this is no expected next order
KEEP_RUNS = 30  # the newest runs kept per shop (the admin reads the newest)
WRITE_BATCH = 10_000  # customers' predictions written at a time
INTERVALS_BATCH = 1_000  # products upserted by one statement (5 parameters each: SQLite takes 32,766 at most)
WORK_MEM = "256MB"  # PostgreSQL's memory for each sort and hash of a run's reads (a million orders sort in memory)
DAY = 86_400.0


class UnknownShop(LookupError):
    """No shop with this id."""


class _LeaseLost(Exception):
    """The run's lease ran out and another run took the shop over: this one writes nothing."""


@dataclass(frozen=True)
class CustomerFigures:
    """One customer's row as of the last refresh."""

    customer_id: str
    orders: int
    revenue: Decimal
    first_order_at: datetime
    last_order_at: datetime
    rfm_r: int
    rfm_f: int
    rfm_m: int
    rfm_segment: str
    p_alive: float | None
    expected_orders_90d: float | None
    expected_next_order_at: datetime | None
    predicted_clv: Decimal | None
    refreshed_at: datetime


@dataclass(frozen=True)
class Computed:
    """What a run writes: the summary, and per customer (arrays in the order of `customers.ids`) their scores and
    predictions (NaN where there is none)."""

    summary: dict[str, Any]
    customers: history.Customers
    rfm: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]
    segments: npt.NDArray[np.object_]
    p_alive: Floats
    expected_orders: Floats
    next_order_in: Floats  # days
    clv: Floats
    intervals: history.Intervals


def _places(currency: str) -> Decimal:
    return Decimal(1).scaleb(-get_currency_precision(currency))


def _money(value: float | Decimal, unit: Decimal) -> Decimal:
    return Decimal(str(value)).quantize(unit, ROUND_HALF_EVEN)


def _model(x: Floats, t_x: Floats, T: Floats, m_x: Floats, currency: str
           ) -> tuple[dict[str, Any], Floats, Floats, Floats, Floats]:
    """The fit's summary, and per customer P(alive), expected orders, median wait (days) and CLV (NaN for none)."""
    none = np.full(x.shape, np.nan)
    fitted = clv.fit(x, t_x, T, m_x)
    if isinstance(fitted, clv.NotEnoughData):
        needs = {"customers": clv.MIN_CUSTOMERS, "repeat_customers": clv.MIN_REPEAT_CUSTOMERS}
        return ({"status": "not_enough_data", "reason": fitted.reason.value, "customers": fitted.customers,
                 "repeat_customers": fitted.repeat_customers, "needs": needs,
                 "missing": {"customers": max(0, needs["customers"] - fitted.customers),
                             "repeat_customers": max(0, needs["repeat_customers"] - fitted.repeat_customers)}},
                none, none, none, none)
    daily = (1.0 + MONTHLY_DISCOUNT) ** (12 / 365.25) - 1.0
    with np.errstate(all="ignore"):
        p = fitted.predict(x, t_x, T, m_x, horizon=HORIZON_DAYS, clv_horizon=CLV_DAYS, discount_rate=daily)
    repeat = x > 0
    expected = np.where(np.isfinite(p.expected_orders), np.maximum(p.expected_orders, 0.0), np.nan)
    value = none if p.clv is None else np.where(np.isfinite(p.clv), np.clip(p.clv, 0.0, 1e9), np.nan)
    wait = np.where(repeat & (p.next_order_in <= NEXT_ORDER_WITHIN / timedelta(days=1)), p.next_order_in, np.nan)
    bg, gg = fitted.bgnbd, fitted.spend
    params: dict[str, float | None] = {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b, "p": None, "q": None,
                                       "gamma": None}
    if gg is not None:
        params.update(p=gg.p, q=gg.q, gamma=gg.gamma)
    summary = {"status": "fitted", "params": {k: None if v is None else round(v, 6) for k, v in params.items()},
               "customers": int(x.size), "repeat_customers": int(np.count_nonzero(repeat)),
               "expected_orders_90d": round(float(np.nansum(expected)), 2),
               "predicted_clv_total": None if gg is None else str(_money(float(np.nansum(value)), _places(currency))),
               "spend": "fitted" if gg is not None else (fitted.spend_shortfall or clv.Shortfall.NO_CONVERGENCE).value,
               "horizon_days": HORIZON_DAYS, "clv_days": CLV_DAYS, "monthly_discount": MONTHLY_DISCOUNT}
    return summary, np.where(repeat, p.p_alive, np.nan), expected, wait, value


def _predictions(postgresql: bool) -> Table:
    """Scores and predictions per customer, joined to the staged orders' history when written (`write`)."""
    ids = String(64, collation="C" if postgresql else None)  # as the staged orders' (history._staging)
    return Table("analytics_predictions", MetaData(), Column("customer", ids), Column("rfm_r", Integer),
                 Column("rfm_f", Integer), Column("rfm_m", Integer), Column("rfm_segment", String(24)),
                 Column("p_alive", Float), Column("expected_orders_90d", Float),
                 Column("expected_next_order_at", UtcDateTime()), Column("predicted_clv", Float), prefixes=["TEMPORARY"])


def _lap(phases: dict[str, float], name: str, since: float) -> float:
    """Record the seconds since `since` as phase `name`; the time now."""
    reached = timer.perf_counter()
    phases[name] = round(reached - since, 3)
    return reached


def compute(s: Session, orders: Table, shop_id: int, currency: str, tz: str, now: datetime, phases: dict[str, float]
            ) -> Computed:
    """Everything a run writes, from the staged orders (`history.stage`); each phase's seconds go into `phases`."""
    at = timer.perf_counter()
    lap = partial(_lap, phases)
    c = history.customers(s, orders)
    total = history.revenue(s, orders)
    at = lap("customers_sql", at)
    gap_hours, gap_counts = history.order_gaps(s, orders)
    at = lap("gaps_sql", at)
    cohort, month, ordering = history.month_pairs(s, orders)
    at = lap("cohorts_sql", at)
    products, product_days, product_counts = history.product_gaps(s, shop_id, orders)
    at = lap("products_sql", at)

    current = history.month_index(now, tz)
    figures = {"repeat_rate": history.repeat_rate(c.orders),
               "repeat_rate_by_month": history.repeat_rate_by_month(cohort, month, ordering),
               "time_between_orders": history.time_between_orders(gap_hours, gap_counts),
               "cohorts": history.cohorts(cohort, month, ordering, current)}
    intervals = history.reorder_intervals(products, product_days, product_counts)
    at = lap("history", at)

    now_s = now.timestamp()
    scores = rfm.rfm_scores((now_s - c.last_s) / DAY, c.orders, c.revenue)
    segments = rfm.rfm_labels(*scores)
    at = lap("rfm", at)

    x = (c.instants - 1).astype(np.float64)
    m_x = np.divide(np.maximum(c.revenue - c.first_value, 0.0), x, out=np.zeros_like(x), where=x > 0)
    t_x = ((c.last_s - c.first_s) / DAY).astype(np.float64)
    model, p_alive, expected, wait, value = _model(x, t_x, ((now_s - c.first_s) / DAY).astype(np.float64), m_x, currency)
    lap("model", at)

    unit, n = _places(currency), len(c.ids)
    labels, counts = np.unique(segments.astype(str), return_counts=True) if n else (np.zeros(0), np.zeros(0))
    found = dict(zip(labels.tolist(), counts.tolist(), strict=True))
    summary: dict[str, Any] = {
        "computed_at": now.isoformat(), "currency": currency, "customers": n, "orders": int(c.orders.sum()),
        "revenue": str(_money(total, unit)), "other_currency_orders": int(c.other_currency.sum()), **figures,
        "historic_clv": {"mean": str(_money(total / n, unit)) if n else None,
                         "median": str(_money(float(np.median(c.revenue)), unit)) if n else None},
        "model": model, "rfm": {label: int(found.get(label, 0)) for label in RFM_LABELS},
        "reorder_intervals": sum(1 for d in intervals.median_days if d is not None)}
    return Computed(summary, c, scores, segments, p_alive, expected, wait, value, intervals)


def _prediction_rows(k: Computed, now: datetime, start: int, end: int) -> list[dict[str, Any]]:
    def floats(a: Floats) -> list[float | None]:
        return [None if v != v else v for v in a[start:end].tolist()]  # NaN -> None

    r, f, m = (a[start:end].tolist() for a in k.rfm)
    return [{"customer": customer, "rfm_r": rs, "rfm_f": fs, "rfm_m": ms, "rfm_segment": label, "p_alive": alive,
             "expected_orders_90d": expected, "expected_next_order_at": None if wait is None else now + timedelta(days=wait),
             "predicted_clv": value}
            for customer, rs, fs, ms, label, alive, expected, wait, value in zip(
                k.customers.ids[start:end], r, f, m, k.segments[start:end].tolist(), floats(k.p_alive),
                floats(k.expected_orders), floats(k.next_order_in), floats(k.clv), strict=True)]


def _write_metrics(s: Session, shop_id: int, orders: Table, predictions: Table, k: Computed, now: datetime) -> None:
    """The shop's customer_metrics replaced: history from the staged orders, joined in SQL to the scores and
    predictions, which go into a temporary table first (COPY on PostgreSQL, in batches)."""
    predictions.drop(s.connection(), checkfirst=True)
    predictions.create(s.connection())
    for start in range(0, len(k.customers.ids), WRITE_BATCH):
        bulk.insert_rows(s, predictions, _prediction_rows(k, now, start, start + WRITE_BATCH))
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text(f"ANALYZE {predictions.name}"))
    m, h, p = CustomerMetrics, history.per_customer(orders), predictions.c
    places = get_currency_precision(k.summary["currency"])
    columns = ["shop_id", "customer_external_id", "orders", "revenue", "first_order_at", "last_order_at", "rfm_r",
               "rfm_f", "rfm_m", "rfm_segment", "p_alive", "expected_orders_90d", "expected_next_order_at",
               "predicted_clv", "refreshed_at"]
    rows = select(literal(shop_id, BigInteger), h.c.customer, h.c.orders, h.c.revenue, h.c.first_at, h.c.last_at,
                  p.rfm_r, p.rfm_f, p.rfm_m, p.rfm_segment, p.p_alive, p.expected_orders_90d, p.expected_next_order_at,
                  func.round(cast(p.predicted_clv, Numeric(14, 4)), places), literal(now, UtcDateTime())
                  ).join_from(h, predictions, p.customer == h.c.customer)
    s.execute(delete(m).where(m.shop_id == shop_id))
    s.execute(insert(m).from_select(columns, rows))


def _write_intervals(s: Session, shop_id: int, intervals: history.Intervals, now: datetime) -> None:
    """Learned intervals replace the last run's; the merchant's own days stay; rows left with nothing go."""
    p = ProductReorderInterval
    s.execute(update(p).where(p.shop_id == shop_id).values(median_days=None, repeats=0, refreshed_at=now))
    rows = [{"shop_id": shop_id, "product_external_id": product, "median_days": days, "repeats": repeats,
             "refreshed_at": now}
            for product, days, repeats in zip(intervals.products, intervals.median_days, intervals.repeats, strict=True)]
    for start in range(0, len(rows), INTERVALS_BATCH):
        upsert = insert_for(s, p).values(rows[start:start + INTERVALS_BATCH])
        s.execute(upsert.on_conflict_do_update(
            index_elements=[p.shop_id, p.product_external_id],
            set_={"median_days": upsert.excluded.median_days, "repeats": upsert.excluded.repeats,
                  "refreshed_at": upsert.excluded.refreshed_at}))
    s.execute(delete(p).where(p.shop_id == shop_id, p.merchant_days.is_(None), p.median_days.is_(None), p.repeats == 0))


def write(s: Session, shop_id: int, run_id: int, orders: Table, predictions: Table, k: Computed, now: datetime,
          phases: dict[str, float], began: float, collections: segments.CollectionLookup | None = None
          ) -> dict[str, Any] | None:
    """Write a computed run in the session's transaction, then refresh the shop's segments on it, if the run still
    holds its lease (None if not: the caller must roll back)."""
    run = AnalyticsRun
    holding = (run.id == run_id, run.status == "running")
    if not rowcount(s.execute(update(run).where(*holding).values(lease_until=now + LEASE))):
        return None  # the lease ran out and another run took the shop over
    at = timer.perf_counter()
    _write_metrics(s, shop_id, orders, predictions, k, now)
    _write_intervals(s, shop_id, k.intervals, now)
    at = _lap(phases, "write", at)
    segments.refresh_all(s, shop_id, now, collections=collections)  # the RFM segments read customer_metrics
    _lap(phases, "segments", at)
    seconds = timer.perf_counter() - began
    summary = {**k.summary, "phases": phases, "seconds": round(seconds, 3)}
    s.execute(update(run).where(*holding).values(status="done", summary=summary, lease_until=None,
                                                 finished_at=now + timedelta(seconds=seconds)))
    keep = select(run.id).where(run.shop_id == shop_id).order_by(run.id.desc()).offset(KEEP_RUNS - 1).limit(1)
    oldest = s.scalar(keep)
    if oldest is not None:
        s.execute(delete(run).where(run.shop_id == shop_id, run.id < oldest))
    return summary


# --- runs, leases and what is due -----------------------------------------------------------------------------------


def nightly(now: datetime, tz: str) -> datetime:
    """The latest NIGHTLY_AT in the zone at or before `now`, in UTC."""
    z = dates.zone(tz)
    day = now.astimezone(z).date()
    at = datetime.combine(day, NIGHTLY_AT, z).astimezone(UTC)
    return at if at <= now else datetime.combine(day - timedelta(days=1), NIGHTLY_AT, z).astimezone(UTC)


def is_due(analytics_at: datetime | None, tz: str, last: tuple[str, datetime | None] | None, now: datetime) -> bool:
    """Whether a shop's refresh is due: never done, not since last night's NIGHTLY_AT, or the last run failed or
    died and its lease has run out. Never while a run holds the lease."""
    if last is not None and last[0] != "done":
        return last[1] is None or last[1] <= now
    return analytics_at is None or analytics_at < nightly(now, tz)


def _aware(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")


def _last_run(s: Session, shop_id: int) -> tuple[str, datetime | None] | None:
    row = s.execute(select(AnalyticsRun.status, AnalyticsRun.lease_until).where(AnalyticsRun.shop_id == shop_id)
                    .order_by(AnalyticsRun.id.desc()).limit(1)).first()
    return None if row is None else (row[0], row[1])


def claim(c: Container, shop_id: int, now: datetime, *, due_only: bool = False) -> int | None:
    """Start a run of the shop (its id), or None when another run holds the shop (or, with `due_only`, when the
    refresh is not due). UnknownShop for no such shop."""
    _aware(now)
    with c.sessions() as s, s.begin():
        # Writing the shop's row first makes concurrent claims wait for each other on both databases; what is read
        # next is what the one before committed.
        if not rowcount(s.execute(update(Shop).where(Shop.id == shop_id).values(analytics_at=Shop.analytics_at))):
            raise UnknownShop(f"no shop {shop_id}")
        analytics_at, tz = s.execute(select(Shop.analytics_at, Shop.timezone).where(Shop.id == shop_id)).one()
        last = _last_run(s, shop_id)
        if last is not None and last[0] == "running" and last[1] is not None and last[1] > now:
            return None
        if due_only and not is_due(analytics_at, tz or "UTC", last, now):
            return None
        s.execute(update(AnalyticsRun).where(AnalyticsRun.shop_id == shop_id, AnalyticsRun.status == "running")
                  .values(status="failed", error="abandoned: its lease ran out", finished_at=now))
        s.execute(update(Shop).where(Shop.id == shop_id).values(analytics_at=now))
        row = AnalyticsRun(shop_id=shop_id, status="running", lease_until=now + LEASE, started_at=now)
        s.add(row)
        s.flush()
        return row.id


def _tune(s: Session) -> None:
    """On PostgreSQL, for this transaction: room to sort and hash a million orders in memory, and no JIT (it
    compiles for longer than these scans and sorts would gain)."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(select(func.set_config("work_mem", WORK_MEM, True), func.set_config("jit", "off", True)))


def refresh(c: Container, shop_id: int, now: datetime, *, due_only: bool = False) -> dict[str, Any] | None:
    """Refresh the shop's analytics now (see the module's docstring); its summary, or None when another run holds
    the shop (or, with `due_only`, the refresh was not due). A failure is recorded on the run and raised."""
    run_id = claim(c, shop_id, now, due_only=due_only)
    if run_id is None:
        return None
    began, phases = timer.perf_counter(), {}
    orders: Table | None = None
    predictions = _predictions(c.engine.dialect.name == "postgresql")
    # One connection for both transactions: the staged orders are a temporary table, which lives as long as it.
    with c.engine.connect() as conn, Session(bind=conn) as s:
        try:
            with s.begin():
                _tune(s)
                shop = s.get(Shop, shop_id)
                assert shop is not None  # claimed above
                currency, tz = shop.currency or "USD", dates.zone(shop.timezone).key
                orders = history.stage(s, shop_id, now, currency, tz)
                phases["stage_sql"] = round(timer.perf_counter() - began, 3)
                computed = compute(s, orders, shop_id, currency, tz, now, phases)
            with s.begin():
                _tune(s)
                summary = write(s, shop_id, run_id, orders, predictions, computed, now, phases, began,
                                segments.store_collections(c, shop_id))
                if summary is None:
                    raise _LeaseLost  # rolls the transaction back
        except _LeaseLost:
            log.warning("analytics_lease_lost", shop_id=shop_id, run_id=run_id)
            return None
        except Exception as exc:
            with c.sessions() as other, other.begin():
                other.execute(update(AnalyticsRun).where(AnalyticsRun.id == run_id, AnalyticsRun.status == "running")
                              .values(status="failed", error=f"{type(exc).__name__}: {exc}"[:2000], finished_at=now))
            raise
        finally:
            with s.begin():
                history.unstage(s, predictions, *([orders] if orders is not None else []))
    log.info("analytics_refreshed", shop_id=shop_id, customers=summary["customers"], seconds=summary["seconds"],
             model=summary["model"]["status"])
    return summary


def due(c: Container, now: datetime) -> list[int]:
    """The installed shops whose refresh is due (`is_due`): the sweeper hands each to a job of its own
    (`app.jobs.refresh_analytics`), so one large shop's refresh never holds up the rest of the sweep."""
    _aware(now)
    with c.sessions() as s:
        shops = s.execute(select(Shop.id, Shop.timezone, Shop.analytics_at).where(
            Shop.installed_at.is_not(None), Shop.uninstalled_at.is_(None)).order_by(Shop.id)).all()
        newest = select(func.max(AnalyticsRun.id)).group_by(AnalyticsRun.shop_id)
        last = {shop_id: (status, lease) for shop_id, status, lease in s.execute(
            select(AnalyticsRun.shop_id, AnalyticsRun.status, AnalyticsRun.lease_until).where(AnalyticsRun.id.in_(newest)))}
    return [shop_id for shop_id, tz, analytics_at in shops if is_due(analytics_at, tz or "UTC", last.get(shop_id), now)]


def refresh_due(c: Container, now: datetime) -> int:
    """Refresh every due shop here, one after the other; how many were refreshed. A shop whose refresh fails is
    logged and tried again once its lease has run out; the others go on."""
    done = 0
    for shop_id in due(c, now):
        try:
            done += refresh(c, shop_id, now, due_only=True) is not None
        except Exception as exc:  # one shop's failure is recorded on its run; the rest go on
            log.warning("analytics_refresh_failed", shop_id=shop_id, error=f"{type(exc).__name__}: {exc}")
    return done


def request(c: Container, shop_id: int, now: datetime) -> bool:
    """Ask for a refresh of the shop at the next sweep (`refresh_due`), beside the nightly one: False when a run
    holds the shop now (its result is coming anyway). UnknownShop for no such shop."""
    _aware(now)
    with c.sessions() as s, s.begin():
        if not rowcount(s.execute(update(Shop).where(Shop.id == shop_id).values(analytics_at=Shop.analytics_at))):
            raise UnknownShop(f"no shop {shop_id}")
        last = _last_run(s, shop_id)
        if last is not None and last[0] == "running" and last[1] is not None and last[1] > now:
            return False
        s.execute(update(Shop).where(Shop.id == shop_id).values(analytics_at=None))
        return True


def latest(s: Session, shop_id: int) -> dict[str, Any] | None:
    """The summary of the shop's newest finished refresh, or None before the first."""
    summary: dict[str, Any] | None = s.scalar(
        select(AnalyticsRun.summary).where(AnalyticsRun.shop_id == shop_id, AnalyticsRun.status == "done")
        .order_by(AnalyticsRun.id.desc()).limit(1))
    return summary


def customer(s: Session, shop_id: int, customer_id: str) -> CustomerFigures | None:
    """A customer's figures and predictions as of the last refresh, or None (no counted order then, or no refresh)."""
    row = s.get(CustomerMetrics, (shop_id, customer_id))
    if row is None:
        return None
    return CustomerFigures(
        customer_id=row.customer_external_id, orders=row.orders, revenue=row.revenue, first_order_at=row.first_order_at,
        last_order_at=row.last_order_at, rfm_r=row.rfm_r, rfm_f=row.rfm_f, rfm_m=row.rfm_m,
        rfm_segment=row.rfm_segment, p_alive=row.p_alive, expected_orders_90d=row.expected_orders_90d,
        expected_next_order_at=row.expected_next_order_at, predicted_clv=row.predicted_clv,
        refreshed_at=row.refreshed_at)
