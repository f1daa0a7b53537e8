"""A shop's analytics, inserted directly, for the analytics page's tests (tests/integration/test_analytics_admin_api.py,
tests/e2e/test_analytics_admin_browser.py): a finished refresh with a hand-written summary (the contract of
`app.analytics.refresh`), survey answers across months of a Seoul shop, segments, customers' figures and
predictions, and two journeys with enrollments, holdouts and orders (one with enough of them for a lift, one not).

Every figure the page shows is one these functions wrote, so the tests compare against numbers stated here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from app.bootstrap import Container
from app.core.journeys import to_data
from app.db import models as t
from app.journeys import DEFAULTS

NOW = datetime(2026, 3, 15, 3, 0, tzinfo=UTC)  # 12:00 in Seoul

FITTED = {"status": "fitted", "params": {"r": 0.24, "alpha": 4.4, "a": 0.79, "b": 2.43, "p": 6.25, "q": 3.74,
                                         "gamma": 15.45},
          "customers": 240, "repeat_customers": 90, "expected_orders_90d": 57.25, "predicted_clv_total": "12345.60"}
NOT_ENOUGH = {"status": "not_enough_data", "reason": "too_few_repeat_customers", "customers": 240,
              "repeat_customers": 41, "needs": {"customers": 200, "repeat_customers": 50},
              "missing": {"customers": 0, "repeat_customers": 9}}


def summary(model: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    """A refresh's summary as `app.analytics.refresh` writes it."""
    found: dict[str, Any] = {
        "computed_at": "2026-03-15T02:00:00+00:00", "currency": "USD", "customers": 240, "orders": 410,
        "revenue": "18250.00", "repeat_rate": 0.375,
        "repeat_rate_by_month": [{"month": "2025-12", "customers": 80, "returning": 20, "rate": 0.25},
                                 {"month": "2026-01", "customers": 90, "returning": 36, "rate": 0.4},
                                 {"month": "2026-02", "customers": 100, "returning": 45, "rate": 0.45},
                                 {"month": "2026-03", "customers": 40, "returning": 13, "rate": 0.325}],
        "time_between_orders": {"median_days": 34.5, "p25_days": 20.0, "p75_days": 61.25,
                                "histogram": [{"from_days": 0, "to_days": 7, "count": 12},
                                              {"from_days": 7, "to_days": None, "count": 158}]},
        "cohorts": [{"cohort": "2025-12", "size": 80, "retention": [1.0, 0.25, 0.125, 0.1]},
                    {"cohort": "2026-01", "size": 60, "retention": [1.0, 0.3, 0.15]},
                    {"cohort": "2026-02", "size": 40, "retention": [1.0, 0.2]},
                    {"cohort": "2026-03", "size": 10, "retention": [1.0]}],
        "historic_clv": {"mean": "76.04", "median": "52.00"},
        "model": model or NOT_ENOUGH,
        "rfm": {"champions": 30, "lost": 5}, "reorder_intervals": 3, "seconds": 0.5,
    }
    found.update(changes)
    return found


def add_run(c: Container, shop_id: int, found: dict[str, Any] | None, *, status: str = "done",
            at: datetime = NOW - timedelta(hours=1), error: str | None = None) -> int:
    with c.sessions() as s, s.begin():
        run = t.AnalyticsRun(shop_id=shop_id, status=status, summary=found, error=error, started_at=at,
                             finished_at=None if status == "running" else at + timedelta(seconds=1),
                             lease_until=at + timedelta(minutes=30) if status == "running" else None)
        s.add(run)
        s.flush()
        return run.id


def _journey(s: Any, shop_id: int, key: str) -> t.JourneyVersion:
    """The library journey `key`, switched on, as version 1."""
    journey = t.JourneyRow(shop_id=shop_id, key=key, enabled=True, version=1)
    s.add(journey)
    s.flush()
    version = t.JourneyVersion(shop_id=shop_id, journey_id=journey.id, version=1, definition=to_data(DEFAULTS[key]),
                               templates={})
    s.add(version)
    s.flush()
    return version


def order(shop_id: int, oid: str, customer: str, at: datetime, total: str = "40.00") -> t.Order:
    """A paid order in USD, inserted as the store sent it."""
    return t.Order(shop_id=shop_id, external_id=oid, name=f"#{oid}", customer_external_id=customer, currency="USD",
                   subtotal=Decimal(total), total=Decimal(total), total_tax=0, total_shipping=0, total_discounts=0,
                   refunded_amount=0, payment_status="paid", status="paid", created_at=at, external_updated_at=at)


@dataclass(frozen=True)
class Group:
    """Enrollments in a journey: how many got it and converted, how many were held out and converted."""

    treated: int
    treated_converted: int
    holdout: int
    holdout_converted: int


def add_journey(c: Container, shop_id: int, key: str, group: Group, *, attributed: int = 0,
                trigger_at: datetime = NOW - timedelta(days=30)) -> None:
    """A library journey (thank_you's window is 7 days, win_back's 14) with its enrollments, each converter's order
    a day after the trigger ($40), and `attributed` of the treated converters' orders attributed to a message of the
    journey ($50 each)."""
    with c.sessions() as s, s.begin():
        version = _journey(s, shop_id, key)
        plan = [(False, i, i < group.treated_converted) for i in range(group.treated)] + \
               [(True, i, i < group.holdout_converted) for i in range(group.holdout)]
        for holdout, i, converts in plan:
            customer = f"{key}-{'h' if holdout else 't'}{i}"
            enrollment = t.Enrollment(shop_id=shop_id, journey_id=version.journey_id, version_id=version.id,
                                      key=f"{key}:{customer}", trigger_type="OrderPaid", trigger_key=customer,
                                      trigger_at=trigger_at, customer_external_id=customer, facts={}, holdout=holdout,
                                      created_at=trigger_at)
            s.add(enrollment)
            if not converts:
                continue
            s.add(order(shop_id, f"o-{customer}", customer, trigger_at + timedelta(days=1)))
            if not holdout and i < attributed:
                s.flush()
                message = t.Message(shop_id=shop_id, enrollment_id=enrollment.id, journey_id=version.journey_id,
                                    step="email", key=f"m-{customer}", customer_external_id=customer,
                                    category="marketing", channel="email", status="sent", due_at=trigger_at,
                                    sent_at=trigger_at, created_at=trigger_at)
                s.add(message)
                s.flush()
                s.add(t.Attribution(shop_id=shop_id, order_external_id=f"o-{customer}", message_id=message.id,
                                    journey_id=version.journey_id, via="code", revenue=Decimal("50.00"), currency="USD",
                                    at=trigger_at + timedelta(days=1)))


def add_answers(c: Container, shop_id: int, answers: list[tuple[datetime, int, int | None]]) -> None:
    """Survey answers (when first given, score 1-5, NPS 0-10 or None), each on a message of its own."""
    with c.sessions() as s, s.begin():
        version = _journey(s, shop_id, "survey")
        enrollment = t.Enrollment(shop_id=shop_id, journey_id=version.journey_id, version_id=version.id, key="survey:x",
                                  trigger_type="OrderDelivered", trigger_key="x", trigger_at=NOW, customer_external_id=None,
                                  facts={}, created_at=NOW)
        s.add(enrollment)
        s.flush()
        for i, (at, score, nps) in enumerate(answers):
            message = t.Message(shop_id=shop_id, enrollment_id=enrollment.id, journey_id=version.journey_id,
                                step="survey", key=f"survey:{i}", customer_external_id=f"s{i}", category="transactional",
                                channel="email", status="sent", due_at=at, sent_at=at, created_at=at)
            s.add(message)
            s.flush()
            s.add(t.SurveyResponse(shop_id=shop_id, message_id=message.id, customer_external_id=f"s{i}", score=score,
                                   nps=nps, created_at=at, updated_at=at + timedelta(days=3)))


def add_segments(c: Container, shop_id: int, segments: list[tuple[str, str, str, int]]) -> None:
    """(key, name, kind, size) each."""
    with c.sessions() as s, s.begin():
        for key, name, kind, size in segments:
            s.add(t.Segment(shop_id=shop_id, key=key, name=name, kind=kind, rules={}, size=size,
                            refreshed_at=NOW - timedelta(hours=1)))


def add_metrics(c: Container, shop_id: int, rows: list[dict[str, Any]]) -> None:
    """customer_metrics rows: the given fields over a one-order customer's defaults."""
    with c.sessions() as s, s.begin():
        for row in rows:
            values: dict[str, Any] = {
                "orders": 1, "revenue": Decimal("10.00"), "first_order_at": NOW - timedelta(days=100),
                "last_order_at": NOW - timedelta(days=100), "rfm_r": 1, "rfm_f": 1, "rfm_m": 1, "rfm_segment": "lost",
                "p_alive": None, "expected_orders_90d": None, "expected_next_order_at": None, "predicted_clv": None,
                "refreshed_at": NOW - timedelta(hours=1), **row}
            s.add(t.CustomerMetrics(shop_id=shop_id, **values))
