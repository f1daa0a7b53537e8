"""The history figures, the pure part (app.analytics.history): repeat rate, quantiles of weighted gaps, time between
orders, the cohort matrix and repeat rate by month, and products' reorder intervals, each on a synthetic history
small enough to check by hand. The aggregates the database would return are made here from the history by plain
Python (the reference), so each test states the history, not the aggregate."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.analytics import history as h
from app.core import dates

DAY = timedelta(days=1)
T0 = datetime(2026, 1, 5, 12, tzinfo=UTC)

# customer -> the days (after T0) of their orders
HISTORY = {"a": [0, 10, 40], "b": [0, 30], "c": [3], "d": [7, 7.5, 8]}


def gap_hours(history: dict[str, list[float]]) -> tuple[list[int], list[int]]:
    """(whole hours, count) of the gaps between consecutive orders of each customer, as order_gaps returns them."""
    found: Counter[int] = Counter()
    for days in history.values():
        ordered = sorted(days)
        for before, after in zip(ordered, ordered[1:], strict=False):
            found[int((after - before) * 24)] += 1
    hours = sorted(found)
    return hours, [found[x] for x in hours]


def pairs(months: dict[str, list[int]]) -> tuple[list[int], list[int], list[int]]:
    """(cohort, month, customers) from each customer's order months, as month_pairs returns them."""
    found: Counter[tuple[int, int]] = Counter()
    for ordered in months.values():
        for month in set(ordered):
            found[(min(ordered), month)] += 1
    keys = sorted(found)
    return [k[0] for k in keys], [k[1] for k in keys], [found[k] for k in keys]


# --- repeat rate and quantiles ------------------------------------------------------------------------------------


def test_repeat_rate_is_customers_with_two_orders_or_more_among_those_with_one() -> None:
    orders = [len(days) for days in HISTORY.values()]  # 3, 2, 1, 3
    assert h.repeat_rate(orders) == 0.75
    assert h.repeat_rate([1, 1, 0]) == 0.0  # a customer with no order is no customer
    assert h.repeat_rate([]) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(0, 50), st.integers(1, 4)), min_size=1, max_size=8), min_size=1,
                max_size=5),
       st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]))
def test_grouped_quantiles_are_numpys_on_the_repeated_values(groups: list[list[tuple[int, int]]], q: float) -> None:
    values, counts, bounds = [], [], [0]
    for group in groups:
        for value, count in sorted(group):
            values.append(value)
            counts.append(count)
        bounds.append(len(values))
    got = h.grouped_quantiles(bounds, values, counts, q)
    expected = [np.quantile(np.repeat([v for v, _ in sorted(g)], [c for _, c in sorted(g)]), q) for g in groups]
    np.testing.assert_allclose(got, expected)


def test_grouped_quantiles_refuse_a_probability_out_of_range() -> None:
    with pytest.raises(ValueError, match="probability"):
        h.grouped_quantiles([0, 1], [1], [1], 1.5)


# --- time between orders ------------------------------------------------------------------------------------------


def test_time_between_orders_from_the_gaps_of_each_customer() -> None:
    hours, counts = gap_hours(HISTORY)  # a: 10 and 30 days; b: 30 days; d: 12 hours twice; c: none
    figures = h.time_between_orders(hours, counts)
    # five gaps: 0.5, 0.5, 10, 30, 30 days
    assert figures["median_days"] == 10.0
    assert figures["p25_days"] == 0.5
    assert figures["p75_days"] == 30.0
    assert [(b["from_days"], b["to_days"], b["count"]) for b in figures["histogram"]] == [
        (0, 7, 2), (7, 14, 1), (14, 30, 0), (30, 60, 2), (60, 90, 0), (90, 180, 0), (180, 365, 0), (365, None, 0)]


def test_a_gap_on_a_bins_edge_counts_in_the_bin_it_starts() -> None:
    figures = h.time_between_orders([7 * 24 - 1, 7 * 24, 365 * 24, 400 * 24], [1, 1, 1, 1])
    counts = {b["from_days"]: b["count"] for b in figures["histogram"]}
    assert counts[0] == 1 and counts[7] == 1 and counts[365] == 2


def test_no_repeat_order_has_no_time_between_orders_and_an_empty_histogram() -> None:
    figures = h.time_between_orders([], [])
    assert figures["median_days"] is None and figures["p25_days"] is None and figures["p75_days"] is None
    assert sum(b["count"] for b in figures["histogram"]) == 0


# --- months and cohorts -------------------------------------------------------------------------------------------

JAN, FEB, MAR, APR = (2026 * 12 + m for m in range(4))
MONTHS = {"a": [JAN, FEB, APR], "b": [JAN, MAR], "c": [FEB, FEB, MAR], "d": [FEB], "e": [APR]}


def test_the_cohort_matrix_by_hand() -> None:
    cohort, month, customers = pairs(MONTHS)
    assert h.cohorts(cohort, month, customers, current=APR) == [
        # a and b: both in January; a in February; b in March; a in April
        {"cohort": "2026-01", "size": 2, "retention": [1.0, 0.5, 0.5, 0.5]},
        # c and d: c again in March (its second February order is no new month)
        {"cohort": "2026-02", "size": 2, "retention": [1.0, 0.5, 0.0]},
        {"cohort": "2026-04", "size": 1, "retention": [1.0]},
    ]


def test_only_the_latest_cohorts_are_kept_each_up_to_the_current_month() -> None:
    cohort, month, customers = pairs(MONTHS)
    kept = h.cohorts(cohort, month, customers, current=APR + 2, last=2)
    assert [(c["cohort"], c["retention"]) for c in kept] == [("2026-02", [1.0, 0.5, 0.0, 0.0, 0.0]),
                                                            ("2026-04", [1.0, 0.0, 0.0])]


def test_a_month_before_its_cohort_or_after_now_is_refused() -> None:
    with pytest.raises(ValueError):
        h.cohorts([FEB], [JAN], [1], current=APR)
    with pytest.raises(ValueError):
        h.cohorts([FEB], [APR], [1], current=MAR)


def test_repeat_rate_by_month_counts_those_who_had_ordered_before() -> None:
    cohort, month, customers = pairs(MONTHS)
    assert h.repeat_rate_by_month(cohort, month, customers) == [
        {"month": "2026-01", "customers": 2, "returning": 0, "rate": 0.0},
        {"month": "2026-02", "customers": 3, "returning": 1, "rate": 0.3333},  # a came back; c and d are new
        {"month": "2026-03", "customers": 2, "returning": 2, "rate": 1.0},
        {"month": "2026-04", "customers": 2, "returning": 1, "rate": 0.5},  # a came back; e is new
    ]
    assert [m["month"] for m in h.repeat_rate_by_month(cohort, month, customers, months=2)] == ["2026-03", "2026-04"]
    assert h.repeat_rate_by_month([], [], []) == []


@pytest.mark.parametrize(("moment", "tz", "label"), [
    ("2026-01-31T14:30", "Asia/Seoul", "2026-01"),  # 23:30 on 31 January in Seoul
    ("2026-01-31T15:30", "Asia/Seoul", "2026-02"),  # 00:30 on 1 February there
    ("2026-03-01T04:59", "America/New_York", "2026-02"),  # 23:59 on 28 February in New York
    ("2026-03-01T05:00", "America/New_York", "2026-03"),
])
def test_a_month_is_the_shops_calendar_month(moment: str, tz: str, label: str) -> None:
    at = datetime.fromisoformat(moment).replace(tzinfo=UTC)
    index = h.month_index(at, tz)
    assert h.month_label(index) == label
    assert h.month_start(index, tz) <= at < h.month_start(index + 1, tz)


# --- reorder intervals --------------------------------------------------------------------------------------------

# (customer, order, product, day): beans reordered after 28, 30 and 30 days; the mug once after 61; tea twice
PURCHASES = [("a", "1", "beans", 0), ("a", "2", "beans", 28), ("a", "2", "mug", 28), ("a", "3", "beans", 58),
             ("b", "4", "beans", 10), ("b", "5", "beans", 40), ("b", "5", "mug", 40), ("b", "6", "mug", 101),
             ("c", "7", "tea", 0), ("c", "8", "tea", 5), ("c", "9", "tea", 25), ("c", "9", "beans", 25)]


def product_days(purchases: list[tuple[str, str, str, int]]) -> tuple[list[str], list[int], list[int]]:
    """(product, days, count) of the gaps between consecutive purchases of a product by one customer."""
    by: dict[tuple[str, str], list[int]] = {}
    for customer, _, product, day in purchases:
        by.setdefault((product, customer), []).append(day)
    found: Counter[tuple[str, int]] = Counter()
    for (product, _), days in by.items():
        ordered = sorted(set(days))
        for before, after in zip(ordered, ordered[1:], strict=False):
            found[(product, after - before)] += 1
    keys = sorted(found)
    return [k[0] for k in keys], [k[1] for k in keys], [found[k] for k in keys]


def test_a_products_interval_is_the_median_of_three_repeats_or_more() -> None:
    learned = h.reorder_intervals(*product_days(PURCHASES))
    assert list(zip(learned.products, learned.median_days, learned.repeats, strict=True)) == [
        ("beans", 30.0, 3), ("mug", None, 1), ("tea", None, 2)]
    loose = h.reorder_intervals(*product_days(PURCHASES), min_repeats=1)
    assert dict(zip(loose.products, loose.median_days, strict=True)) == {"beans": 30.0, "mug": 61.0, "tea": 12.5}


def test_reorder_intervals_agree_with_the_hourly_scans_own_learning() -> None:
    """The nightly refresh learns what app.core.dates learns from the same purchases (in whole days)."""
    learned = h.reorder_intervals(*product_days(PURCHASES), min_repeats=2)
    scan = dates.reorder_intervals([dates.Purchase(c, o, p, T0 + d * DAY) for c, o, p, d in PURCHASES], min_gaps=2)
    assert {p: timedelta(days=d) for p, d in zip(learned.products, learned.median_days, strict=True) if d} == scan


def test_reorder_intervals_need_one_gap_and_count_per_product_row() -> None:
    assert h.reorder_intervals([], [], []).products == []
    with pytest.raises(ValueError):
        h.reorder_intervals(["beans"], [1, 2], [1, 1])
