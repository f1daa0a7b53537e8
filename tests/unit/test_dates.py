"""Date rules, the pure part: local midnights, Feb 29, medians, reorder intervals, run-outs and what comes due."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from app.core import dates as d
from app.core.dates import Due, Placed, Purchase

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def at(day: str, hour: int = 12) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


# --- zones and dates -----------------------------------------------------------------------------------------


def test_local_midnight_is_the_start_of_the_day_in_the_zone_as_utc() -> None:
    assert d.local_midnight(date(2026, 3, 10), "Asia/Seoul") == datetime(2026, 3, 9, 15, 0, tzinfo=UTC)
    assert d.local_midnight(date(2026, 7, 1), "America/New_York") == datetime(2026, 7, 1, 4, 0, tzinfo=UTC)  # EDT
    assert d.local_midnight(date(2026, 1, 1), "America/New_York") == datetime(2026, 1, 1, 5, 0, tzinfo=UTC)  # EST
    assert d.local_midnight(date(2026, 1, 1), None) == datetime(2026, 1, 1, tzinfo=UTC)
    assert d.local_midnight(date(2026, 1, 1), "Not/AZone") == datetime(2026, 1, 1, tzinfo=UTC)


def test_feb_29_is_feb_28_in_a_year_without_one() -> None:
    assert d.on_date(2027, 2, 29) == date(2027, 2, 28)
    assert d.on_date(2028, 2, 29) == date(2028, 2, 29)
    assert d.on_date(2027, 3, 1) == date(2027, 3, 1)


def test_next_birthday_in_the_customers_zone() -> None:
    born = date(1990, 3, 11)
    # 12:00 UTC on the 10th is 21:00 in Seoul: the birthday (the 11th) starts at 15:00 UTC on the 10th.
    assert d.next_birthday(born, "Asia/Seoul", NOW) == datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
    # Already the 11th in Seoul: today is the birthday, still "next" until the day ends.
    assert d.next_birthday(born, "Asia/Seoul", NOW + 4 * timedelta(hours=1)) == datetime(2026, 3, 10, 15, 0,
                                                                                          tzinfo=UTC)
    # The day after it: next year's.
    assert d.next_birthday(born, "Asia/Seoul", NOW + 2 * DAY) == datetime(2027, 3, 10, 15, 0, tzinfo=UTC)
    leap = date(2000, 2, 29)
    assert d.next_birthday(leap, "UTC", NOW) == datetime(2027, 2, 28, tzinfo=UTC)
    assert d.next_birthday(leap, "UTC", datetime(2027, 3, 1, tzinfo=UTC)) == datetime(2028, 2, 29, tzinfo=UTC)


def test_next_anniversary_is_a_year_or_more_after_the_first_order() -> None:
    first = datetime(2025, 3, 12, 23, 30, tzinfo=UTC)  # 08:30 on the 13th in Seoul
    assert d.next_anniversary(first, "UTC", NOW) == datetime(2026, 3, 12, tzinfo=UTC)
    assert d.next_anniversary(first, "Asia/Seoul", NOW) == datetime(2026, 3, 12, 15, 0, tzinfo=UTC)
    recent = datetime(2026, 1, 5, tzinfo=UTC)  # not a year yet: next January
    assert d.next_anniversary(recent, "UTC", NOW) == datetime(2027, 1, 5, tzinfo=UTC)
    assert d.next_anniversary(datetime(2024, 2, 29, 12, tzinfo=UTC), "UTC", NOW) == datetime(2027, 2, 28,
                                                                                              tzinfo=UTC)


def test_yearly_moments_in_a_window_across_the_new_year() -> None:
    end = datetime(2027, 1, 1, 1, 0, tzinfo=UTC)
    assert d.yearly(12, 31, "UTC", end - 2 * DAY, end) == [(2026, datetime(2026, 12, 31, tzinfo=UTC))]
    assert d.yearly(1, 1, "UTC", end - 2 * DAY, end) == [(2027, datetime(2027, 1, 1, tzinfo=UTC))]
    assert d.yearly(1, 2, "UTC", end - 2 * DAY, end) == []
    assert d.yearly(12, 31, "UTC", end - 2 * DAY, end, after_year=2026) == []


# --- intervals -------------------------------------------------------------------------------------------------


def test_median_of_durations() -> None:
    assert d.median([]) is None
    assert d.median([3 * DAY]) == 3 * DAY
    assert d.median([10 * DAY, DAY, 4 * DAY]) == 4 * DAY
    assert d.median([DAY, 2 * DAY, 4 * DAY, 100 * DAY]) == 3 * DAY
    assert d.gaps([at("2026-01-10"), at("2026-01-01"), at("2026-01-04")]) == [3 * DAY, 6 * DAY]


def beans(customer: str, order: str, day: str, quantity: int = 1, product: str = "beans") -> Purchase:
    return Purchase(customer, order, product, at(day), quantity)


HISTORY = [
    beans("a", "a1", "2025-10-01"), beans("a", "a2", "2025-10-29"), beans("a", "a3", "2025-11-28"),  # 28, 30
    beans("b", "b1", "2025-11-01"), beans("b", "b2", "2025-12-01"),  # 30
    beans("c", "c1", "2025-12-01"), beans("c", "c1", "2025-12-01", product="mug"),  # one order: no gap
    beans("d", "d1", "2025-09-01", product="mug"), beans("d", "d2", "2025-11-01", product="mug"),  # one mug gap
]


def test_a_products_reorder_interval_is_the_median_gap_and_needs_three_gaps() -> None:
    assert d.reorder_intervals(HISTORY) == {"beans": 30 * DAY}  # gaps 28, 30, 30; the mug has one
    assert d.reorder_intervals(HISTORY[:4]) == {}  # two gaps only: not consumable
    assert d.reorder_intervals(HISTORY, min_gaps=1) == {"beans": 30 * DAY, "mug": 61 * DAY}


def test_run_out_scales_with_quantity_and_the_reminder_leads_it() -> None:
    bought = at("2026-01-01")
    assert d.run_out(bought, 30 * DAY, 2) == bought + 60 * DAY
    assert d.run_out(bought, 30 * DAY, 0) == bought + 30 * DAY
    assert d.replenish_at(bought, 30 * DAY) == bought + 25 * DAY  # five days ahead
    assert d.replenish_at(bought, 6 * DAY) == bought + 3 * DAY  # lasts less than twice the lead: halfway


# --- the rules ---------------------------------------------------------------------------------------------------


def test_birthdays_due_in_the_window_with_the_year_as_occasion() -> None:
    people = [("seoul", date(1990, 3, 11), "Asia/Seoul"), ("utc", date(1985, 3, 11), None),
              ("past", date(1980, 3, 7), "UTC"), ("leap", date(2000, 2, 29), "UTC")]
    due = d.birthdays_due(people, NOW - 2 * DAY, NOW)
    assert due == []  # the Seoul birthday starts at 15:00 UTC on the 10th; the one on the 7th is too old
    # At 16:00 UTC on the 10th it is the 11th in Seoul (from 15:00 UTC), not yet in UTC.
    later = datetime(2026, 3, 10, 16, 0, tzinfo=UTC)
    assert d.birthdays_due(people, later - 2 * DAY, later) == [
        Due("seoul", None, datetime(2026, 3, 10, 15, 0, tzinfo=UTC), "2026")]
    leap_day = datetime(2027, 2, 28, 6, 0, tzinfo=UTC)
    assert d.birthdays_due(people, leap_day - 2 * DAY, leap_day) == [
        Due("leap", None, datetime(2027, 2, 28, tzinfo=UTC), "2027")]


def test_anniversaries_due_start_a_year_after_the_first_order() -> None:
    firsts = [("ann", "1001", datetime(2025, 3, 9, 18, 0, tzinfo=UTC), "UTC"),
              ("new", "1002", datetime(2026, 3, 9, 18, 0, tzinfo=UTC), "UTC"),
              ("old", "1003", datetime(2023, 3, 10, 1, 0, tzinfo=UTC), "America/Los_Angeles")]  # the 9th in LA
    assert d.anniversaries_due(firsts, NOW - 2 * DAY, NOW) == [
        Due("ann", "1001", datetime(2026, 3, 9, tzinfo=UTC), "2026"),
        Due("old", "1003", datetime(2026, 3, 9, 7, 0, tzinfo=UTC), "2026")]  # midnight PDT (from the 8th)


def test_replenishments_due_from_the_latest_order_only() -> None:
    purchases = [*HISTORY, beans("e", "e1", "2026-01-20", quantity=2), beans("a", "a4", "2026-02-12")]
    now = at("2026-03-10")
    # a's latest beans (a4, Feb 12): run-out Mar 14, reminder Mar 9 12:00 -> due. a3 is not reminded of.
    # e bought two on Jan 20: run-out Mar 21, reminder Mar 16 -> not yet.
    assert d.replenishments_due(purchases, now - 2 * DAY, now) == [
        Due("a", "a4", at("2026-03-09"), "order:a4:product:beans")]
    later = at("2026-03-17")
    assert d.replenishments_due(purchases, later - 2 * DAY, later) == [
        Due("e", "e1", at("2026-03-16"), "order:e1:product:beans")]
    # A merchant-set interval stands for the learned one, and makes a product consumable.
    assert d.replenishments_due(purchases, now - 2 * DAY, now, intervals={"beans": 20 * DAY, "mug": 103 * DAY}) == [
        Due("c", "c1", at("2026-03-09"), "order:c1:product:mug")]


def test_win_backs_use_the_customers_own_gap_or_the_shops() -> None:
    orders = [Placed("rep", "r1", at("2026-01-01")), Placed("rep", "r2", at("2026-01-21")),
              Placed("rep", "r3", at("2026-02-18")),  # gaps 20, 28: median 24 -> Mar 14
              Placed("two", "t1", at("2025-12-01")), Placed("two", "t2", at("2026-01-10")),  # 40 -> Feb 19
              Placed("one", "o1", at("2026-02-01"))]  # shop-wide gaps 20, 28, 40: median 28 -> Mar 1
    assert d.win_backs_due(orders, at("2026-02-28"), at("2026-03-02")) == [
        Due("one", "o1", at("2026-03-01"), "after:o1")]
    assert d.win_backs_due(orders, at("2026-03-13"), at("2026-03-14")) == [
        Due("rep", "r3", at("2026-03-14"), "after:r3")]
    assert d.win_backs_due(orders, at("2026-02-19"), at("2026-02-19")) == [
        Due("two", "t2", at("2026-02-19"), "after:t2")]
    # Nobody ever ordered twice: a one-order customer has no expected gap.
    assert d.win_backs_due([Placed("one", "o1", at("2026-02-01"))], at("2020-01-01"), at("2030-01-01")) == []


@pytest.mark.parametrize("tz", ["Asia/Seoul", "America/New_York", "UTC", "Australia/Lord_Howe"])
def test_a_moment_seen_by_every_hourly_scan_is_due_in_each_while_in_the_window(tz: str) -> None:
    people = [("x", date(1999, 6, 15), tz)]
    found = set()
    for hour in range(24 * 5):
        now = datetime(2026, 6, 13, tzinfo=UTC) + timedelta(hours=hour)
        found |= {(x.customer_id, x.trigger_at, x.occasion) for x in d.birthdays_due(people, now - 2 * DAY, now)}
    assert found == {("x", d.local_midnight(date(2026, 6, 15), tz), "2026")}
