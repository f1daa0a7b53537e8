"""A shop's order history as figures: repeat purchase rate, time between orders, the monthly cohort retention matrix,
historic customer lifetime value, and each product's reorder interval.

The database does the counting and numpy the rest, so a shop with a million orders never has its orders in Python.
The shop's counted orders are first staged in a temporary table (`staged`), in one pass sorted by customer and
time that works out, with window functions, what every figure needs of each order (its gap since the customer's
previous order, whether it is their first that month, their first month...); each statement after that returns one
row per customer, per gap length, per pair of months or per product and gap length, and the figures are computed
on those rows with numpy, vectorised. The pure functions (the second half of the module) take those aggregates as
arrays, so they are tested on synthetic histories without a database.

What counts (the same everywhere in the analytics):

- an order counts when it is not cancelled, belongs to a known customer (a guest cannot be followed from one order
  to the next) and was placed by the end of the observation (`now`);
- its value is its total less refunds, in the shop's currency; an order in another currency still counts as an
  order, with no value (as the lift report does: sums in two currencies mean nothing);
- orders of one customer at the same instant are one order (one visit split in two by the store), so a gap between
  orders is never zero.

Times are compared in whole seconds since 1970 (`epoch_seconds`: SQLite keeps times as text). Gaps between orders
are counted in whole hours (floored) and a product's gaps in days (rounded), so "time between orders" is a median
to the hour and a reorder interval one to the day (quantiles are numpy's default, linear between the two nearest
gaps). A calendar month is the shop's: an order at 23:30 on 31 January in Seoul is January's whatever UTC says
(`local_month`: PostgreSQL's AT TIME ZONE, and on SQLite, which knows no zones, a function of ours registered on
the connection by `prepare`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    ColumnElement,
    DateTime,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    and_,
    case,
    cast,
    func,
    insert,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from app.core import dates
from app.db.models import Order, OrderLine, UtcDateTime

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

CHUNK = 20_000  # customers read from the database at a time
MONTHS = 24  # the cohorts, and the months of repeat rate, shown: the latest this many
MIN_REPEATS = dates.MIN_PRODUCT_GAPS  # a product's interval is learned from at least this many repeat purchases
GAP_BINS_DAYS = (0, 7, 14, 30, 60, 90, 180, 365)  # the histogram of time between orders: [0, 7), ..., [365, inf)
HOUR, DAY = 3600, 86_400


# --- SQL building blocks ------------------------------------------------------------------------------------------


class epoch_seconds(FunctionElement[int]):  # noqa: N801 - used like a SQL function
    """Whole seconds since 1970 of a time column (floored), the same number on SQLite and PostgreSQL."""

    type = BigInteger()
    inherit_cache = True
    name = "epoch_seconds"


@compiles(epoch_seconds)
def _epoch_sqlite(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(strftime('%s', {compiler.process(element.clauses, **kw)}) AS INTEGER)"


@compiles(epoch_seconds, "postgresql")
def _epoch_postgresql(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    # date_part is a double precision (EXTRACT a numeric since PostgreSQL 14, several times slower)
    return f"CAST(FLOOR(date_part('epoch', {compiler.process(element.clauses, **kw)})) AS BIGINT)"


class local_month(FunctionElement[int]):  # noqa: N801 - used like a SQL function
    """A time column's calendar month in a time zone, as year * 12 + month - 1 (so months subtract)."""

    type = Integer()
    inherit_cache = True
    name = "encore_local_month"


@compiles(local_month)
def _month_sqlite(element: local_month, compiler: SQLCompiler, **kw: Any) -> str:
    return f"encore_local_month({compiler.process(element.clauses, **kw)})"


@compiles(local_month, "postgresql")
def _month_postgresql(element: local_month, compiler: SQLCompiler, **kw: Any) -> str:
    at, tz = (compiler.process(c, **kw) for c in element.clauses)
    local = f"({at} AT TIME ZONE {tz})"
    return f"CAST(date_part('year', {local}) * 12 + date_part('month', {local}) - 1 AS INTEGER)"


def _sqlite_local_month(stored: str | None, tz: str) -> int | None:
    """`local_month` on SQLite: its times are UTC as text ("2026-01-31 14:30:00.000000")."""
    return None if stored is None else month_index(datetime.fromisoformat(stored).replace(tzinfo=UTC), tz)


def prepare(s: Session) -> None:
    """Make `local_month` computable on this session's connection (SQLite: a function of ours; PostgreSQL has it)."""
    if s.get_bind().dialect.name == "sqlite":
        s.connection().connection.driver_connection.create_function(  # type: ignore[union-attr]
            "encore_local_month", 2, _sqlite_local_month, deterministic=True)


def month_index(at: datetime, tz: str) -> int:
    """`local_month` of one moment, in Python."""
    local = at.astimezone(dates.zone(tz))
    return local.year * 12 + local.month - 1


def month_start(index: int, tz: str) -> datetime:
    """The first instant of a `local_month` index in the zone, in UTC."""
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=dates.zone(tz)).astimezone(UTC)


def month_label(index: int) -> str:
    """A month index as "2026-01"."""
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def counted(shop_id: int, now: datetime) -> tuple[ColumnElement[bool], ...]:
    """The orders the analytics count (see the module's docstring)."""
    o = Order
    return (o.shop_id == shop_id, o.cancelled_at.is_(None), o.status != "cancelled", o.customer_external_id.is_not(None),
            o.created_at <= now)


def order_value(currency: str) -> ColumnElement[Any]:
    """An order's value: its total less refunds in the shop's currency, 0 in another."""
    return case((Order.currency == currency, Order.total - Order.refunded_amount), else_=0)


# --- the staged orders --------------------------------------------------------------------------------------------


def _staging(postgresql: bool) -> Table:
    # Ids are compared byte by byte on PostgreSQL (COLLATE "C"): they are grouped and sorted, never read in order,
    # and a locale's rules cost several times more. SQLite compares bytes anyway.
    ids = String(64, collation="C" if postgresql else None)
    return Table(
        "analytics_orders", MetaData(),
        Column("id", BigInteger), Column("customer", ids), Column("at", UtcDateTime()),
        Column("at_s", BigInteger), Column("value", Numeric(14, 4)), Column("other", Integer),
        Column("at_first", Integer),  # 1 when placed at the customer's first instant
        Column("new_instant", Integer),  # 1 unless another order of the customer came at the same instant before it
        Column("gap_h", BigInteger),  # whole hours since the customer's previous instant (None for the first)
        Column("month", Integer), Column("cohort", Integer),  # local months of the order and of the first order
        Column("new_month", Integer),  # 1 for the customer's first order in its month
        prefixes=["TEMPORARY"])


def _month(s: Session, shop_id: int, now: datetime, tz: str) -> ColumnElement[int]:
    """`local_month` of each counted order. On PostgreSQL a binary search among the first instants of the months
    from the shop's first order to now (width_bucket), three times cheaper than taking each time into the zone."""
    o = Order
    first = s.scalar(select(func.min(o.created_at)).where(*counted(shop_id, now))) \
        if s.get_bind().dialect.name == "postgresql" else None
    if first is None:
        return local_month(o.created_at, literal(tz))
    months = range(month_index(first, tz) + 1, month_index(now, tz) + 1)  # each one after the first order's
    if not months:
        return literal(months.start - 1)
    starts = literal([month_start(i, tz) for i in months], ARRAY(DateTime(timezone=True)))
    return literal(months.start - 1) + func.width_bucket(o.created_at, starts)


def stage(s: Session, shop_id: int, now: datetime, currency: str, tz: str) -> Table:
    """The shop's counted orders in a temporary table, one row per order with what the figures need, computed in
    one pass sorted by customer and time (window functions): every aggregate afterwards is a scan, no sort, and
    all of them see the same orders. It lives as long as the connection: drop it with `unstage`."""
    postgresql = s.get_bind().dialect.name == "postgresql"
    prepare(s)
    table = _staging(postgresql)
    table.drop(s.connection(), checkfirst=True)  # left over by a run on this pooled connection that died mid-way
    table.create(s.connection())
    o = Order
    customer = o.customer_external_id.collate("C") if postgresql else o.customer_external_id
    base = select(o.id, customer.label("customer"), o.created_at.label("at"), order_value(currency).label("value"),
                  case((o.currency != currency, 1), else_=0).label("other"),
                  _month(s, shop_id, now, tz).label("month")).where(*counted(shop_id, now)).subquery()

    def over(f: Any) -> Any:  # each customer's orders in time; ROWS: no peers to look for (the id breaks ties)
        return f.over(partition_by=base.c.customer, order_by=(base.c.at, base.c.id), rows=(None, 0))

    w = select(base, over(func.lag(base.c.at)).label("before"), over(func.first_value(base.c.at)).label("first_at"),
               over(func.lag(base.c.month)).label("month_before"), over(func.first_value(base.c.month)).label("cohort")
               ).subquery()
    new_instant = or_(w.c.before.is_(None), w.c.before != w.c.at)
    rows = select(w.c.id, w.c.customer, w.c.at, epoch_seconds(w.c.at), w.c.value, w.c.other,
                  case((w.c.at == w.c.first_at, 1), else_=0), case((new_instant, 1), else_=0),
                  case((and_(w.c.before.is_not(None), w.c.before != w.c.at),
                        (epoch_seconds(w.c.at) - epoch_seconds(w.c.before)) // HOUR)),
                  w.c.month, w.c.cohort,
                  case((or_(w.c.month_before.is_(None), w.c.month_before != w.c.month), 1), else_=0))
    s.execute(insert(table).from_select([c.name for c in table.columns], rows))
    if postgresql:
        s.execute(text(f"ANALYZE {table.name}"))  # temporary tables get no statistics otherwise: plans go wrong
    return table


def unstage(s: Session, *tables: Table) -> None:
    """Drop temporary tables (`stage`'s and others), if they are there."""
    for table in tables:
        table.drop(s.connection(), checkfirst=True)


# --- reading the aggregates ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Customers:
    """Customers as read from the staged orders, one entry per customer in each array."""

    ids: list[str]
    orders: Ints  # orders counted
    instants: Ints  # distinct moments they were placed at: 1 + the repeat orders the lifetime model sees
    revenue: Floats  # net of refunds, shop currency
    first_value: Floats  # the value of the first order (of all orders at the first instant)
    first_s: Ints  # the first and last order, in seconds since 1970
    last_s: Ints
    other_currency: Ints  # orders in another currency than the shop's (counted, with no value)


def customers(s: Session, orders: Table, chunk: int = CHUNK) -> Customers:
    """Each customer's id and figures: one GROUP BY read `chunk` customers at a time (a server-side cursor on
    PostgreSQL), each chunk made arrays at once, so Python never holds a row per order."""
    o = orders.c
    query = select(o.customer, func.count(), func.sum(o.new_instant), cast(func.sum(o.value), Float),
                   cast(func.sum(case((o.at_first == 1, o.value), else_=0)), Float), func.min(o.at_s),
                   func.max(o.at_s), func.sum(o.other)).group_by(o.customer)
    ids: list[str] = []
    parts = []
    for rows in s.execute(query.execution_options(yield_per=chunk)).partitions():
        ids.extend(r[0] for r in rows)
        parts.append(np.array([tuple(r)[1:] for r in rows], dtype=np.float64))  # numpy reads Row objects slowly
    a = np.concatenate(parts) if parts else np.zeros((0, 7))
    whole = a[:, [0, 1, 4, 5, 6]].astype(np.int64)  # seconds since 1970 are exact in a float64
    return Customers(ids=ids, orders=whole[:, 0], instants=whole[:, 1], revenue=a[:, 2], first_value=a[:, 3],
                     first_s=whole[:, 2], last_s=whole[:, 3], other_currency=whole[:, 4])


def revenue(s: Session, orders: Table) -> Decimal:
    """The staged orders' value, exactly."""
    return Decimal(str(s.scalar(select(func.coalesce(func.sum(orders.c.value), 0))) or 0))


def per_customer(orders: Table) -> Any:
    """A subquery, one row per customer: customer (the id), orders, revenue, first_at, last_at."""
    o = orders.c
    return (select(o.customer, func.count().label("orders"), func.sum(o.value).label("revenue"),
                   func.min(o.at).label("first_at"), func.max(o.at).label("last_at")).group_by(o.customer).subquery())


def _columns(s: Session, query: Any, n: int) -> list[Ints]:
    rows = s.execute(query).all()
    return [np.array([r[i] for r in rows], dtype=np.int64) for i in range(n)]


def order_gaps(s: Session, orders: Table) -> tuple[Ints, Ints]:
    """The gaps between consecutive orders of the same customer, as (whole hours, how many), by hours."""
    gap = orders.c.gap_h
    hours, counts = _columns(s, select(gap, func.count()).where(gap.is_not(None)).group_by(gap).order_by(gap), 2)
    return hours, counts


def month_pairs(s: Session, orders: Table) -> tuple[Ints, Ints, Ints]:
    """(cohort, month, customers): how many customers whose first order was in month `cohort` ordered in `month`
    (months as `local_month` indexes in the shop's zone), every pair with a customer."""
    o = orders.c
    cohort, month, n = _columns(s, select(o.cohort, o.month, func.count()).where(o.new_month == 1)
                                .group_by(o.cohort, o.month).order_by(o.cohort, o.month), 3)
    return cohort, month, n


def product_gaps(s: Session, shop_id: int, orders: Table) -> tuple[list[str], Ints, Ints]:
    """(product, days, how many): the gaps between consecutive purchases of a product by the same customer (orders
    containing it, at distinct instants), to the nearest whole day (a product lasts days; hours would only make
    more rows), sorted by product and days."""
    o, line = orders.c, OrderLine
    postgresql = s.get_bind().dialect.name == "postgresql"
    product = line.product_external_id.collate("C") if postgresql else line.product_external_id
    # No DISTINCT: a product twice in an order, or in two orders at the same second, is a gap of 0, left out.
    bought = (select(o.customer, product.label("product"), o.at_s).join_from(orders, line, line.order_id == o.id)
              .where(line.shop_id == shop_id, line.product_external_id.is_not(None)).subquery())
    before = func.lag(bought.c.at_s).over(partition_by=(bought.c.customer, bought.c.product), order_by=bought.c.at_s)
    lagged = select(bought.c.product, (bought.c.at_s - before).label("gap")).subquery()
    days = ((lagged.c.gap + DAY // 2) // DAY).label("days")
    rows = s.execute(select(lagged.c.product, days, func.count()).where(lagged.c.gap > 0)
                     .group_by(lagged.c.product, days).order_by(lagged.c.product, days)).all()
    return ([r[0] for r in rows], np.array([r[1] for r in rows], dtype=np.int64),
            np.array([r[2] for r in rows], dtype=np.int64))


# --- the figures (pure) -------------------------------------------------------------------------------------------


def repeat_rate(orders: npt.ArrayLike) -> float | None:
    """Customers with two orders or more / customers with one or more; None without customers."""
    n = np.asarray(orders)
    buyers = int(np.count_nonzero(n >= 1))
    return None if buyers == 0 else int(np.count_nonzero(n >= 2)) / buyers


def grouped_quantiles(bounds: npt.ArrayLike, values: npt.ArrayLike, counts: npt.ArrayLike, q: float) -> Floats:
    """The q-quantile of each group of a weighted sample: `values` sorted within each group, each seen `counts`
    times, group g in rows bounds[g]:bounds[g + 1]. numpy's default (linear) definition, as if each value were
    repeated `counts` times: the median of an even number is the mean of the middle two."""
    b = np.asarray(bounds, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    cum = np.cumsum(np.asarray(counts, dtype=np.int64))
    if not 0.0 <= q <= 1.0:
        raise ValueError("q is a probability, from 0 to 1")
    if b.size < 2:
        return np.zeros(0)
    before = np.concatenate(([0], cum))[b[:-1]]
    n = cum[b[1:] - 1] - before
    if np.any(n <= 0):
        raise ValueError("every group needs a positive count")
    h = (n - 1) * q
    low = np.floor(h).astype(np.int64)
    high = np.minimum(low + 1, n - 1)
    at_low = v[np.searchsorted(cum, before + low, side="right")]
    at_high = v[np.searchsorted(cum, before + high, side="right")]
    return np.asarray(at_low + (h - low) * (at_high - at_low), dtype=np.float64)


def time_between_orders(hours: npt.ArrayLike, counts: npt.ArrayLike) -> dict[str, Any]:
    """Median and quartiles of the gaps between consecutive orders (in days, from whole hours; None without a
    repeat order) and their histogram over GAP_BINS_DAYS."""
    h = np.asarray(hours, dtype=np.int64)
    w = np.asarray(counts, dtype=np.int64)
    edges = np.array(GAP_BINS_DAYS, dtype=np.int64) * 24
    per_bin = np.bincount(np.searchsorted(edges, h, side="right") - 1, weights=w, minlength=edges.size)
    ends: list[int | None] = [*GAP_BINS_DAYS[1:], None]
    histogram = [{"from_days": start, "to_days": end, "count": int(n)}
                 for start, end, n in zip(GAP_BINS_DAYS, ends, per_bin, strict=True)]
    if int(w.sum()) == 0:
        return {"median_days": None, "p25_days": None, "p75_days": None, "histogram": histogram}
    order = np.argsort(h, kind="stable")
    bounds = [0, h.size]
    p25, median, p75 = (float(grouped_quantiles(bounds, h[order], w[order], q)[0]) / 24 for q in (0.25, 0.5, 0.75))
    return {"median_days": round(median, 4), "p25_days": round(p25, 4), "p75_days": round(p75, 4),
            "histogram": histogram}


def repeat_rate_by_month(cohort: npt.ArrayLike, month: npt.ArrayLike, customers: npt.ArrayLike, months: int = MONTHS
                         ) -> list[dict[str, Any]]:
    """For each of the latest `months` months with an order: its ordering customers, how many of them had ordered
    before (their first order was in an earlier month), and that share."""
    c, m, n = (np.asarray(a, dtype=np.int64) for a in (cohort, month, customers))
    if m.size == 0:
        return []
    found, where = np.unique(m, return_inverse=True)
    total = np.bincount(where, weights=n)
    returning = np.bincount(where, weights=np.where(c < m, n, 0))
    keep = slice(max(0, found.size - months), found.size)
    return [{"month": month_label(int(i)), "customers": int(t), "returning": int(r), "rate": round(float(r / t), 4)}
            for i, t, r in zip(found[keep], total[keep], returning[keep], strict=True)]


def cohorts(cohort: npt.ArrayLike, month: npt.ArrayLike, customers: npt.ArrayLike, current: int, last: int = MONTHS
            ) -> list[dict[str, Any]]:
    """The retention matrix of the latest `last` cohorts (customers by the month of their first order): cell k is
    the share of the cohort that ordered in its k-th month after (cell 0, the first month, is 1), up to the month
    `current`."""
    c, m, n = (np.asarray(a, dtype=np.int64) for a in (cohort, month, customers))
    if c.size == 0:
        return []
    if np.any(m < c) or np.any(m > current):
        raise ValueError("a customer orders in their cohort's month or later, and not after the current month")
    found = np.unique(c)[-last:]
    mine = np.isin(c, found)
    row = np.searchsorted(found, c[mine])
    width = current - int(found[0]) + 1
    matrix = np.zeros((found.size, width))
    np.add.at(matrix, (row, m[mine] - c[mine]), n[mine])
    size = matrix[:, 0]
    return [{"cohort": month_label(int(first)), "size": int(size[i]),
             "retention": [round(float(x), 4) for x in matrix[i, :current - int(first) + 1] / size[i]]}
            for i, first in enumerate(found)]


@dataclass(frozen=True)
class Intervals:
    """Products with a repeat purchase: the median days between repeat purchases (None under MIN_REPEATS), and
    how many repeats it came from."""

    products: list[str]
    median_days: list[float | None]
    repeats: list[int]


def reorder_intervals(products: list[str], days: npt.ArrayLike, counts: npt.ArrayLike, min_repeats: int = MIN_REPEATS
                      ) -> Intervals:
    """Each product's median gap between consecutive purchases of it by one customer, from rows sorted by product
    and days (`product_gaps`); learned from `min_repeats` gaps or more, and only when longer than a day's half."""
    h = np.asarray(days, dtype=np.int64)
    w = np.asarray(counts, dtype=np.int64)
    if not len(products) == h.size == w.size:
        raise ValueError("one product, gap and count per row")
    if h.size == 0:
        return Intervals([], [], [])
    codes = np.asarray(products, dtype=object)
    starts = np.flatnonzero(np.concatenate(([True], codes[1:] != codes[:-1])))
    bounds = np.append(starts, h.size)
    repeats = np.add.reduceat(w, starts)
    medians = grouped_quantiles(bounds, h, w, 0.5)
    learned = (repeats >= min_repeats) & (medians > 0)
    return Intervals(products=[str(p) for p in codes[starts]],
                     median_days=[round(float(d), 4) if ok else None for d, ok in zip(medians, learned, strict=True)],
                     repeats=[int(r) for r in repeats])
