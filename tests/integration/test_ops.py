"""The probes, request ids and /metrics against the real database (SQLite, or PostgreSQL when DATABASE_URL is set)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, create_engine

from app import create_app
from app.bootstrap import Container
from app.config import Settings
from app.db import models as t
from app.queue import InProcessQueue
from app.web import ops
from tests.helpers import add_shop
from tests.journeys import Clock, seed_enrollment

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
TOKEN = "metrics-token-0123456789"


def log_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


# Probes

def unreachable(tmp_path: Path) -> Engine:
    """An engine whose database cannot be opened: its folder is a file."""
    (tmp_path / "not-a-folder").write_text("")
    return create_engine(f"sqlite:///{tmp_path / 'not-a-folder' / 'encore.db'}")


def test_healthz_answers_without_the_database(client: FlaskClient, container: Container, monkeypatch: Any,
                                              tmp_path: Path) -> None:
    monkeypatch.setattr(container, "engine", unreachable(tmp_path))
    answer = client.get("/healthz")
    assert (answer.status_code, answer.get_json()) == (200, {"ok": True})


def test_readyz_is_ready_when_the_database_answers_at_the_newest_migration(client: FlaskClient) -> None:
    answer = client.get("/readyz")
    assert answer.status_code == 200
    assert answer.get_json() == {"ok": True, "checks": {"database": "ok", "migrations": "ok"}}


def test_readyz_names_a_schema_behind_the_code(client: FlaskClient, monkeypatch: Any) -> None:
    monkeypatch.setattr(ops, "_migration_heads", lambda: frozenset({"a_newer_revision"}))
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.get_json()["checks"] == {"database": "ok", "migrations": "behind"}


def test_readyz_names_an_unreachable_database_without_its_address(client: FlaskClient, container: Container,
                                                                    monkeypatch: Any, tmp_path: Path) -> None:
    monkeypatch.setattr(container, "engine", unreachable(tmp_path))
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.get_json()["checks"] == {"database": "unreachable", "migrations": "unknown"}
    assert "not-a-folder" not in answer.get_data(as_text=True)


def test_readyz_checks_redis_only_when_it_is_configured(client: FlaskClient, container: Container) -> None:
    container.settings = container.settings.with_(redis_url="redis://:hunter2@127.0.0.1:1/0", ready_timeout_s=0.5)
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.get_json()["checks"] == {"database": "ok", "migrations": "ok", "redis": "unreachable"}
    assert "hunter2" not in answer.get_data(as_text=True) and "127.0.0.1" not in answer.get_data(as_text=True)


def test_readyz_gives_up_on_a_check_past_its_deadline(client: FlaskClient, container: Container,
                                                      monkeypatch: Any) -> None:
    container.settings = container.settings.with_(ready_timeout_s=0.1)
    monkeypatch.setattr(ops, "_database", lambda c, timeout_s: time.sleep(1.5) or {"database": "ok"})
    started = time.monotonic()
    answer = client.get("/readyz")
    assert time.monotonic() - started < 1.2
    assert answer.status_code == 503
    assert answer.get_json()["checks"] == {"database": "timeout", "migrations": "unknown"}


# Request ids

@pytest.fixture
def logging_app(settings: Settings, container: Container) -> Flask:
    app = create_app(settings, container=container)

    @app.get("/test-logs")
    def logs_something() -> str:
        structlog.get_logger("test").info("inside_request")
        return "ok"

    return app


def test_a_sane_incoming_request_id_is_kept_logged_and_returned(logging_app: Flask, capsys: Any) -> None:
    capsys.readouterr()
    answer = logging_app.test_client().get("/test-logs", headers={"X-Request-Id": "edge-7f3a:42"})
    assert answer.headers["X-Request-Id"] == "edge-7f3a:42"
    [line] = [x for x in log_lines(capsys.readouterr().err) if x["event"] == "inside_request"]
    assert line["request_id"] == "edge-7f3a:42"


@pytest.mark.parametrize("given", [None, "", "has space", "quote\"d", "x" * 200, "-leading-dash", "ü-not-ascii"])
def test_a_missing_or_odd_request_id_is_replaced_by_a_new_one(logging_app: Flask, capsys: Any, given: str | None
                                                               ) -> None:
    client = logging_app.test_client()
    headers = {} if given is None else {"X-Request-Id": given}
    capsys.readouterr()
    first, second = client.get("/test-logs", headers=headers), client.get("/test-logs", headers=headers)
    ids = [first.headers["X-Request-Id"], second.headers["X-Request-Id"]]
    assert ids[0] != ids[1] and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    logged = [x["request_id"] for x in log_lines(capsys.readouterr().err) if x["event"] == "inside_request"]
    assert logged == ids


def test_a_request_id_does_not_outlive_its_request(logging_app: Flask, capsys: Any) -> None:
    logging_app.test_client().get("/test-logs", headers={"X-Request-Id": "abc123"})
    capsys.readouterr()
    structlog.get_logger("test").info("after_request")
    [line] = [x for x in log_lines(capsys.readouterr().err) if x["event"] == "after_request"]
    assert "request_id" not in line


def test_error_answers_carry_the_request_id_too(client: FlaskClient) -> None:
    answer = client.get("/no-such-page", headers={"X-Request-Id": "req-404"})
    assert (answer.status_code, answer.headers["X-Request-Id"]) == (404, "req-404")


# Metrics

def scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.content_type.startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.get_data(as_text=True)) for s in family.samples}


@pytest.fixture
def metered(container: Container, client: FlaskClient) -> tuple[Container, FlaskClient]:
    container.settings = container.settings.with_(metrics_token=TOKEN)
    container.clock = Clock(NOW)  # type: ignore[assignment]
    return container, client


def test_metrics_are_not_served_without_a_configured_token(client: FlaskClient) -> None:
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


@pytest.mark.parametrize("authorization", [None, "", f"Basic {TOKEN}", "Bearer wrong", f"Bearer {TOKEN}x", "Bearer"])
def test_metrics_refuse_a_request_without_the_token(metered: tuple[Container, FlaskClient],
                                                    authorization: str | None) -> None:
    _, client = metered
    answer = client.get("/metrics", headers={} if authorization is None else {"Authorization": authorization})
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert "encore_" not in answer.get_data(as_text=True)


def test_metrics_on_an_empty_database_are_zero(metered: tuple[Container, FlaskClient]) -> None:
    figures = scrape(metered[1])
    assert figures[("encore_webhooks_received", ())] == 0
    assert figures[("encore_webhooks", (("status", "parked"),))] == 0
    assert figures[("encore_dispatcher_lag_seconds", ())] == 0
    assert figures[("encore_queue_depth", ())] == 0


def _seed(c: Container) -> int:
    shop_id = add_shop(c)
    with c.sessions() as s, s.begin():
        inbox = [("done", 1), ("done", 2), ("done", 30), ("parked", 3), ("parked", 50), ("pending", 0),
                 ("processing", 0), ("ignored", 40)]  # (status, hours before NOW)
        for n, (status, hours) in enumerate(inbox):
            s.add(t.InboxRow(shop_id=shop_id, platform="shopify", topic="orders/paid", event_id=f"e{n}", body=b"{}",
                             status=status, received_at=NOW - timedelta(hours=hours, minutes=1)))
        enrollment = seed_enrollment(s, shop_id, "thank_you", "501", NOW - timedelta(days=1),
                                     trigger_type="order_paid")
        messages = [("sent", None), ("sent", None), ("skipped", None), ("failed", None), ("parked", None),
                    ("pending", NOW - timedelta(seconds=90)), ("pending", NOW - timedelta(seconds=30)),
                    ("pending", NOW + timedelta(hours=2)), ("waiting", None)]
        for n, (status, due) in enumerate(messages):
            s.add(t.Message(shop_id=shop_id, enrollment_id=enrollment.id, journey_id=enrollment.journey_id,
                            step=f"s{n}", key=f"k{n}", category="transactional", channel="email", status=status,
                            due_at=due, created_at=NOW - timedelta(days=1)))
        s.flush()
        for status in ("running", "queued", "queued", "done", "failed"):
            s.add(t.HistoryImport(shop_id=shop_id, platform="shopify", status=status))
        answered = s.query(t.Message).filter(t.Message.key.in_(["k0", "k1"])).order_by(t.Message.id).all()
        for message, alert_status in zip(answered, ("pending", "sent"), strict=True):
            response = t.SurveyResponse(shop_id=shop_id, message_id=message.id, score=1, created_at=NOW, updated_at=NOW)
            s.add(response)
            s.flush()
            s.add(t.FeedbackItem(shop_id=shop_id, response_id=response.id, reason="low_satisfaction",
                                 alert_status=alert_status, created_at=NOW, updated_at=NOW))
        for status, hours in (("failed", 2), ("failed", 48), ("done", 1), ("running", 0)):
            s.add(t.AnalyticsRun(shop_id=shop_id, status=status, started_at=NOW - timedelta(hours=hours)))
    return shop_id


def test_metrics_equal_what_the_database_holds(metered: tuple[Container, FlaskClient]) -> None:
    c, client = metered
    _seed(c)
    f = scrape(client)

    def status(name: str, value: str) -> float:
        return f[(name, (("status", value),))]

    assert f[("encore_webhooks_received", ())] == 8
    assert {s: status("encore_webhooks", s) for s in ops.INBOX_STATUSES} == {
        "pending": 1, "processing": 1, "done": 3, "parked": 2, "ignored": 1}
    assert f[("encore_webhooks_received_24h", ())] == 5
    assert {s: status("encore_webhooks_24h", s) for s in ops.INBOX_STATUSES} == {
        "pending": 1, "processing": 1, "done": 2, "parked": 1, "ignored": 0}
    assert {s: status("encore_messages", s) for s in ("sent", "skipped", "failed", "parked", "pending", "waiting")} == {
        "sent": 2, "skipped": 1, "failed": 1, "parked": 1, "pending": 3, "waiting": 1}
    assert f[("encore_dispatcher_lag_seconds", ())] == 90
    assert (status("encore_history_imports", "running"), status("encore_history_imports", "queued")) == (1, 2)
    assert f[("encore_feedback_alerts_pending", ())] == 1
    assert (f[("encore_analytics_runs_failed", ())], f[("encore_analytics_runs_failed_24h", ())]) == (2, 1)


def test_dispatcher_lag_is_zero_when_nothing_is_overdue(metered: tuple[Container, FlaskClient]) -> None:
    c, client = metered
    _seed(c)
    c.clock = Clock(NOW - timedelta(minutes=5))  # type: ignore[assignment]
    assert scrape(client)[("encore_dispatcher_lag_seconds", ())] == 0


def test_queue_depth_is_the_in_process_queues_backlog(settings: Settings, make_container: Any) -> None:
    queue = InProcessQueue(sweep_every=3600, autostart=False)
    c: Container = make_container(settings.with_(metrics_token=TOKEN), queue=queue)
    for _ in range(3):
        queue.enqueue("relay")
    try:
        assert scrape(create_app(c.settings, container=c).test_client())[("encore_queue_depth", ())] == 3
    finally:
        queue.start()  # let the fixture drain what was queued
