"""The journeys core: planning under a controllable clock, holdout, conditions, and the checks before every
send (consent, unsubscribed, reachability, quiet hours in the customer's zone, one shared frequency cap)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from app.core import journeys as j

T0 = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)  # 12:00 in Seoul, 19:00 the day before in Los Angeles
THANK_YOU = j.Journey("thank_you", 1, "OrderPlaced", (j.Step("thanks", "thank_you"),), j.Category.TRANSACTIONAL)
SURVEY = j.Journey("survey", 2, "OrderFulfilled", (
    j.Step("delivered", "delivered", wait_for="OrderDelivered", wait_timeout=timedelta(days=14)),
    j.Step("survey", "survey", delay=timedelta(days=4), after="previous", send_at=time(10, 0)),
), j.Category.TRANSACTIONAL)
WIN_BACK = j.Journey("win_back", 1, "ReorderOverdue", (
    j.Step("nudge", "win_back", send_at=time(10, 0)),
    j.Step("code", "win_back", delay=timedelta(days=5), after="previous", incentive=j.Incentive("percent", Decimal("10"))),
), exits=frozenset({"OrderPlaced"}), holdout_percent=10)


def test_a_plan_gives_each_step_its_time_and_a_wait_makes_the_rest_wait() -> None:
    assert j.plan(THANK_YOU, T0, "Asia/Seoul") == [j.Planned("thanks", T0)]
    delivered, survey = j.plan(SURVEY, T0, "Asia/Seoul")
    assert delivered == j.Planned("delivered", None, "OrderDelivered", T0 + timedelta(days=14))
    assert survey.due_at is None and survey.waiting_for is None  # after a wait: due once it ends
    # Delivered at 15:00 UTC on the 5th (00:00 on the 6th in Seoul): four days later, at 10:00 Seoul time.
    due = j.resume(SURVEY.steps[1], datetime(2026, 11, 5, 15, 0, tzinfo=UTC), "Asia/Seoul")
    assert due == datetime(2026, 11, 10, 1, 0, tzinfo=UTC)


def test_local_send_times_follow_the_customers_zone() -> None:
    nudge, code = j.plan(WIN_BACK, T0, "America/Los_Angeles")
    assert nudge.due_at == datetime(2026, 11, 2, 18, 0, tzinfo=UTC)  # 10:00 in LA (PST, UTC-8)
    assert code.due_at == nudge.due_at + timedelta(days=5)
    seoul = j.plan(WIN_BACK, T0, "Asia/Seoul")[0].due_at
    assert seoul == datetime(2026, 11, 3, 1, 0, tzinfo=UTC)  # 12:00 in Seoul has passed 10:00: the next day
    assert j.plan(WIN_BACK, T0, "Not/AZone")[0].due_at == datetime(2026, 11, 2, 10, 0, tzinfo=UTC)  # UTC


def test_enrollment_is_keyed_by_journey_and_event_and_old_events_enroll_nobody() -> None:
    assert j.enrollment_key(WIN_BACK, "order:1:placed") == "win_back:order:1:placed"
    assert j.enrolls(THANK_YOU, "OrderPlaced", T0, T0 + timedelta(hours=1))
    assert not j.enrolls(THANK_YOU, "OrderPlaced", T0 - timedelta(days=400), T0)  # an imported order of last year
    assert not j.enrolls(THANK_YOU, "OrderPaid", T0, T0)
    assert j.exits(WIN_BACK, "OrderPlaced") and not j.exits(THANK_YOU, "OrderPlaced")


def test_the_holdout_is_stable_and_close_to_its_share() -> None:
    keys = [j.enrollment_key(WIN_BACK, f"order:{n}:placed") for n in range(10_000)]
    held = [k for k in keys if j.in_holdout(WIN_BACK, k)]
    assert held == [k for k in keys if j.in_holdout(WIN_BACK, k)]  # asked again: the same answer
    assert 0.09 < len(held) / len(keys) < 0.11  # 10% of 10,000 (a fixed set: the same count every run)
    firsts = [j.in_holdout(WIN_BACK, k) for k in keys[:40]]
    assert any(firsts) and not all(firsts)  # mixed, not in runs
    assert not any(j.in_holdout(THANK_YOU, k) for k in keys[:50])  # no holdout configured


def test_conditions() -> None:
    first = j.Facts(orders_before=0, order_total=Decimal("80"), products=frozenset({"beans"}), tier="gold")
    repeat = j.Facts(orders_before=3, order_total=Decimal("20"))
    assert j.holds(None, repeat) and j.holds(j.Condition(), repeat)
    assert j.holds(j.Condition(first_order=True), first) and not j.holds(j.Condition(first_order=True), repeat)
    assert j.holds(j.Condition(min_total=Decimal("50")), first) and not j.holds(j.Condition(min_total=Decimal("50")), repeat)
    assert not j.holds(j.Condition(max_total=Decimal("50")), first)
    assert j.holds(j.Condition(any_product=frozenset({"beans", "mug"})), first)
    assert not j.holds(j.Condition(any_product=frozenset({"mug"})), first)
    gold = j.Condition(any_tier=frozenset({"gold"}))
    assert j.holds(gold, first) and not j.holds(gold, repeat)
    assert not j.holds(j.Condition(any_segment=frozenset({"vip"})), first)


POLICY = j.Policy()
ANN = j.Contact(email="ann@example.com", phone="+821055501234", email_marketing=True, sms_marketing=True,
                timezone="Asia/Seoul")
NOON_SEOUL = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
MIDNIGHT_SEOUL = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)


def test_consent_and_unsubscription_bind_marketing_only() -> None:
    cold = j.Contact(email="bo@example.com", timezone="Asia/Seoul")
    assert j.check(j.Category.MARKETING, j.Channel.EMAIL, cold, POLICY, NOON_SEOUL, [], NOON_SEOUL) == j.Skip(
        "no consent to marketing email")
    assert j.check(j.Category.TRANSACTIONAL, j.Channel.EMAIL, cold, POLICY, NOON_SEOUL, [], NOON_SEOUL) == j.Send(
        j.Channel.EMAIL)
    gone = j.Contact(email="c@example.com", email_marketing=True, unsubscribed=True)
    assert j.check(j.Category.MARKETING, j.Channel.EMAIL, gone, POLICY, NOON_SEOUL, [], NOON_SEOUL) == j.Skip("unsubscribed")
    sms = j.check(j.Category.MARKETING, j.Channel.SMS, j.Contact(phone="+821055501234"), POLICY, NOON_SEOUL, [], NOON_SEOUL)
    assert sms == j.Skip("no consent to marketing SMS")


def test_unreachable_addresses_are_skipped_with_the_reason() -> None:
    for contact, channel, reason in [
        (j.Contact(email="not-an-address"), j.Channel.EMAIL, "no valid email address"),
        (j.Contact(email=None), j.Channel.EMAIL, "no valid email address"),
        (j.Contact(phone="010-5550-1234"), j.Channel.SMS, "no valid phone number (E.164)"),
    ]:
        assert j.check(j.Category.TRANSACTIONAL, channel, contact, POLICY, NOON_SEOUL, [], NOON_SEOUL) == j.Skip(reason)


def test_the_preferred_channel_is_the_customers() -> None:
    texter = j.Contact(phone="+821055501234", preferred=j.Channel.SMS, timezone="Asia/Seoul")
    assert j.check(j.Category.TRANSACTIONAL, j.Channel.PREFERRED, texter, POLICY, NOON_SEOUL, [], NOON_SEOUL) == j.Send(
        j.Channel.SMS)


def test_quiet_hours_defer_to_the_morning_in_the_customers_zone() -> None:
    decision = j.check(j.Category.MARKETING, j.Channel.EMAIL, ANN, POLICY, MIDNIGHT_SEOUL, [], MIDNIGHT_SEOUL)
    assert decision == j.Defer(datetime(2026, 11, 3, 0, 0, tzinfo=UTC), "quiet hours")  # 09:00 Seoul
    late = datetime(2026, 11, 2, 13, 30, tzinfo=UTC)  # 22:30 in Seoul: quiet until 09:00 tomorrow
    assert j.check(j.Category.TRANSACTIONAL, j.Channel.SMS, ANN, POLICY, late, [], late) == j.Defer(
        datetime(2026, 11, 3, 0, 0, tzinfo=UTC), "quiet hours")
    # A shipping email at night goes: only texts wake people, and transactional mail is expected.
    assert j.check(j.Category.TRANSACTIONAL, j.Channel.EMAIL, ANN, POLICY, late, [], late) == j.Send(j.Channel.EMAIL)


def test_one_frequency_cap_for_all_marketing_defers_or_skips_by_rule() -> None:
    yesterday, today = NOON_SEOUL - timedelta(hours=26), NOON_SEOUL - timedelta(hours=2)
    assert j.check(j.Category.MARKETING, j.Channel.EMAIL, ANN, POLICY, NOON_SEOUL, [yesterday], NOON_SEOUL) == j.Send(
        j.Channel.EMAIL)  # one a day, over a rolling 24 hours: yesterday's has left the window
    capped = j.check(j.Category.MARKETING, j.Channel.EMAIL, ANN, POLICY, NOON_SEOUL, [today], NOON_SEOUL)
    assert capped == j.Defer(today + timedelta(days=1), "frequency cap")
    week = [NOON_SEOUL - timedelta(days=d) for d in (6, 4, 2)]  # three this week: the next when the oldest leaves
    assert j.check(j.Category.MARKETING, j.Channel.EMAIL, ANN, POLICY, NOON_SEOUL, week, NOON_SEOUL) == j.Defer(
        week[0] + timedelta(days=7), "frequency cap")
    strict = j.Policy(over_cap="skip")
    assert j.check(j.Category.MARKETING, j.Channel.EMAIL, ANN, strict, NOON_SEOUL, [today], NOON_SEOUL) == j.Skip(
        "frequency cap")
    stale = NOON_SEOUL - timedelta(days=7)  # first due a week ago, deferred since: no longer worth sending
    assert j.check(j.Category.MARKETING, j.Channel.EMAIL, ANN, POLICY, NOON_SEOUL, [today], stale) == j.Skip("frequency cap")
    assert j.check(j.Category.TRANSACTIONAL, j.Channel.EMAIL, ANN, POLICY, NOON_SEOUL, [today] * 5, NOON_SEOUL) == j.Send(
        j.Channel.EMAIL)  # transactional messages are exempt
