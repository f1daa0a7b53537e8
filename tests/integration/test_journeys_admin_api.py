"""The journeys admin API on the real database (SQLite, or PostgreSQL when DATABASE_URL names one): the library
and its figures, switching, editing (bad input refused with every problem and nothing saved), live preview, test
sends into the outbox, figures counted from rows the engine really made, the messaging settings, and the
simulation of history checked against what the dispatcher really sends for a fresh copy of the same events."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from app import daterules, dispatch, preferences
from app import journeys as jr
from app.bootstrap import Container
from app.channels.outbox import OutboxChannel
from app.core import commands as cmd
from app.core.messagebus import handle
from app.core.model import CheckoutRecord, Consent, CustomerRecord, Fulfillment, OrderLine, OrderRecord, PaymentStatus
from app.core.ports import OutboundMessage, SendResult
from app.db import models as t
from app.db.uow import SqlUnitOfWork
from app.dispatch import Dispatcher
from app.simulate import mask, simulate
from app.simulator.shopify import ShopifySimulator
from app.web.auth import issue_admin_token
from tests.conftest import API_KEY, API_SECRET
from tests.fakes import FakeStorePlatform
from tests.helpers import add_shop

NY = "America/New_York"
# Whole hours, a week and a bit before now: the figures' and the simulation's windows reach back from today.
END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
# 10:00 or 11:00 in New York, 4-6 days back whatever the hour now: the seeded week (3 days long) lies inside the
# simulations' 7-day window however long the suite runs (7 days back fell out of it when run at 15:00 UTC)
B0 = (END - timedelta(days=5)).replace(hour=15)
MINTER = ShopifySimulator(api_key=API_KEY, api_secret=API_SECRET, app_url="http://127.0.0.1:1")  # never started


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def make_shop(c: Container, domain: str = "shop-a.myshopify.com", *, enabled: frozenset[str] = frozenset(),
              locale: str = "en") -> int:
    shop_id = add_shop(c, domain)
    with c.sessions() as s, s.begin():
        row = s.get(t.Shop, shop_id)
        assert row is not None
        row.name, row.currency, row.timezone, row.locale = "Bean There", "USD", NY, locale
        jr.install_defaults(s, shop_id, enabled=enabled)
    return shop_id


def auth(c: Container, shop_id: int, domain: str = "shop-a.myshopify.com") -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_admin_token(c, shop_id, domain)}"}


@pytest.fixture
def shop(container: Container) -> int:
    return make_shop(container)


@pytest.fixture
def h(container: Container, shop: int) -> dict[str, str]:
    return auth(container, shop)


@pytest.fixture
def outbox_dir(container: Container, tmp_path: Path) -> Path:
    container.settings = container.settings.with_(outbox_dir=str(tmp_path / "outbox"))
    return tmp_path / "outbox"


def customer(cid: str, *, marketing: bool = True, email: str | None = None, first: str = "Ana") -> CustomerRecord:
    return CustomerRecord(cid, B0 - timedelta(days=400), email=email or f"c{cid}@example.com", first_name=first,
                          last_name="Lee", consent=Consent(email_marketing=marketing, sms_marketing=marketing))


LINES = (OrderLine("1", "Ethiopia Guji 250 g", 2, Decimal("14.50"), product_id="p1"),
         OrderLine("2", "Paper filters", 1, Decimal("4.00"), product_id="p2"))


def order(oid: str, cid: str | None, at: datetime, **kw: Any) -> OrderRecord:
    base = OrderRecord(external_id=oid, updated_at=at, created_at=at, currency="USD", total=Decimal("33.00"),
                       subtotal=Decimal("33.00"), name=f"#{oid}", customer_id=cid,
                       email=f"c{cid}@example.com" if cid else None, payment=PaymentStatus.PAID, processed_at=at,
                       lines=LINES)
    return replace(base, **kw)


def checkout(chid: str, cid: str, at: datetime) -> CheckoutRecord:
    return CheckoutRecord(chid, at, "USD", Decimal("29.00"), email=f"c{cid}@example.com", customer_id=cid,
                          recovery_url=f"https://shop-a.myshopify.com/checkouts/{chid}/recover", lines=LINES[:1])


def observe(c: Container, clock: Clock, command: Any) -> None:
    handle(command, SqlUnitOfWork(c.sessions), clock)


def read_outbox(directory: Path) -> list[Any]:
    return [message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted(directory.glob("*.eml"))]


def versions(c: Container, shop_id: int, key: str) -> list[int]:
    with c.sessions() as s:
        return list(s.scalars(select(t.JourneyVersion.version)
                              .join(t.JourneyRow, t.JourneyRow.id == t.JourneyVersion.journey_id)
                              .where(t.JourneyRow.shop_id == shop_id, t.JourneyRow.key == key)
                              .order_by(t.JourneyVersion.version)))


# --- the library, switching, one journey -----------------------------------------------------------------------


def test_the_library_lists_every_journey_once_with_its_metadata(client: FlaskClient, container: Container) -> None:
    shop_id = add_shop(container)  # nothing installed yet: the first look installs the library
    h = auth(container, shop_id)
    first = client.get("/api/admin/journeys", headers=h)
    assert first.status_code == 200, first.json
    again = client.get("/api/admin/journeys", headers=h).json
    assert again is not None and first.json is not None
    keys = [j["key"] for j in again["journeys"]]
    assert keys == list(jr.DEFAULTS) and keys == [j["key"] for j in first.json["journeys"]]
    with container.sessions() as s:
        assert s.scalar(select(func.count()).select_from(t.JourneyRow)) == len(jr.DEFAULTS)
    thanks = again["journeys"][0]
    assert (thanks["title"], thanks["category"], thanks["trigger"], thanks["enabled"], thanks["version"]) == (
        "Thank you", "transactional", "OrderPaid", False, 1)
    assert thanks["description"].startswith("Personal thanks")
    assert thanks["definition"]["steps"][0]["template"] == "thank_you"
    assert thanks["figures"]["sent"] == {"total": 0, "by_channel": {}} and thanks["figures"]["parked"] == 0
    birthday = next(j for j in again["journeys"] if j["key"] == "birthday")
    assert birthday["date_rule"] is True and birthday["category"] == "marketing"


def test_switching_a_journey_on_and_off(client: FlaskClient, container: Container, shop: int, h: dict[str, str]) -> None:
    r = client.post("/api/admin/journeys/survey/enabled", json={"enabled": True}, headers=h)
    assert (r.status_code, r.json) == (200, {"key": "survey", "enabled": True})
    assert jr.live_version(container, shop, "survey").enabled is True
    assert client.post("/api/admin/journeys/survey/enabled", json={"enabled": "yes"}, headers=h).status_code == 400
    assert client.post("/api/admin/journeys/survey/enabled", data="x", headers=h).status_code == 400
    assert client.post("/api/admin/journeys/nope/enabled", json={"enabled": True}, headers=h).status_code == 404
    assert client.post("/api/admin/journeys/survey/enabled", json={"enabled": False}, headers=h).json == {
        "key": "survey", "enabled": False}
    assert jr.live_version(container, shop, "survey").enabled is False


def test_one_journey_with_its_steps_and_the_default_copy(client: FlaskClient, shop: int, h: dict[str, str]) -> None:
    r = client.get("/api/admin/journeys/survey", headers=h)
    assert r.status_code == 200 and r.json is not None
    body = r.json
    assert (body["key"], body["version"], body["holdout_percent"], body["attribution_days"]) == ("survey", 1, 0, 7)
    [step] = body["steps"]
    assert step["delay"] == {"value": 3, "unit": "days"} and step["latest"] == {"value": 2, "unit": "days"}
    assert step["send_at"] == "10:00" and step["channel"] == "preferred"
    assert step["incentive"] == {"kind": "percent", "value": "10", "days": 30}
    assert step["condition"] == {"customer": "any", "min_total": None, "max_total": None, "products": [],
                                 "collections": [], "segments": [], "tiers": []}
    assert step["default"] is True and "{% trans" in step["source"]["html"]
    assert client.get("/api/admin/journeys/abandoned_cart", headers=h).json["steps"][0]["condition"]["customer"] == "repeat"
    assert client.get("/api/admin/journeys/nope", headers=h).status_code == 404


OWN = {"subject": "Thanks, {{ customer.first_name }}!", "html": "<p>Thanks for {{ order.name }}</p>",
       "text": "Thanks for {{ order.name }}", "sms": ""}


def test_saving_every_setting_makes_version_2(client: FlaskClient, container: Container, shop: int,
                                              h: dict[str, str]) -> None:
    edit = {"holdout_percent": 10, "attribution_days": 14, "steps": [{
        "key": "message", "delay": {"value": 90, "unit": "minutes"}, "send_at": "11:30",
        "latest": {"value": 2, "unit": "days"}, "channel": "email",
        "condition": {"customer": "repeat", "min_total": "20", "max_total": "500.50", "products": ["p1", " p2 "],
                      "collections": ["coffee"]},
        "incentive": {"kind": "amount", "value": "5", "days": 10}, "template": OWN}]}
    r = client.put("/api/admin/journeys/thank_you", json=edit, headers=h)
    assert r.status_code == 200, r.json
    assert r.json is not None and r.json["version"] == 2
    version = jr.live_version(container, shop, "thank_you")
    j, [step] = version.journey, version.journey.steps
    assert (j.version, j.holdout_percent, j.attribution) == (2, 10, timedelta(days=14))
    assert (step.delay, step.send_at.isoformat() if step.send_at else None, step.latest) == (
        timedelta(minutes=90), "11:30:00", timedelta(days=2))
    assert step.channel.value == "email" and step.condition is not None and step.incentive is not None
    assert (step.condition.first_order, step.condition.min_total, step.condition.max_total) == (
        False, Decimal("20"), Decimal("500.50"))
    assert step.condition.any_product == {"p1", "p2"} and step.condition.any_collection == {"coffee"}
    assert (step.incentive.kind, step.incentive.value, step.incentive.expires_after) == (
        "amount", Decimal("5"), timedelta(days=10))
    own = version.templates["message"]
    assert own is not None and own.subject == OWN["subject"]
    got = client.get("/api/admin/journeys/thank_you", headers=h).json
    assert got["version"] == 2 and got["steps"][0]["default"] is False
    assert got["steps"][0]["source"]["subject"] == OWN["subject"]
    assert got["steps"][0]["delay"] == {"value": 90, "unit": "minutes"}
    # back to the default copy and no condition: version 3
    back = {"steps": [{"key": "message", "delay": {"value": 0, "unit": "minutes"}, "channel": "preferred",
                       "condition": {"customer": "any"}, "incentive": {"kind": "none"}, "template": None}]}
    assert client.put("/api/admin/journeys/thank_you", json=back, headers=h).json["version"] == 3
    step = jr.live_version(container, shop, "thank_you").journey.steps[0]
    assert step.condition is None and step.incentive is None and step.send_at is None
    assert jr.live_version(container, shop, "thank_you").templates["message"] is None
    assert versions(container, shop, "thank_you") == [1, 2, 3]


def test_bad_input_is_refused_with_every_problem_and_nothing_is_saved(
        client: FlaskClient, container: Container, shop: int, h: dict[str, str]) -> None:
    broken = {**OWN, "html": "<p>Thanks</p>\n<p>{{ order.totl }}</p>", "subject": "{% if %}"}
    edit = {"holdout_percent": 80, "steps": [{
        "key": "message", "delay": {"value": -1, "unit": "days"}, "send_at": "25:00", "channel": "fax",
        "condition": {"customer": "any", "min_total": "50", "max_total": "10"},
        "incentive": {"kind": "percent", "value": "150", "days": 0}, "template": broken}, {"key": "extra"}]}
    r = client.put("/api/admin/journeys/thank_you", json=edit, headers=h)
    assert r.status_code == 400 and r.json is not None
    problems = r.json["problems"]
    fields = {(p["step"], p["field"]) for p in problems}
    assert {("message", "delay"), ("message", "send_at"), ("message", "channel"), ("message", "min_total"),
            ("message", "incentive.days"), (None, "holdout_percent"), ("extra", None)} <= fields
    html = next(p for p in problems if p["field"] == "html")
    assert (html["step"], html["line"]) == ("message", 2) and "totl" in html["message"]
    subject = next(p for p in problems if p["field"] == "subject")
    assert subject["line"] == 1 and subject["message"]
    assert any("percentage cannot be above 100" in p["message"] for p in problems)
    assert versions(container, shop, "thank_you") == [1]
    assert client.put("/api/admin/journeys/thank_you", json={"steps": "x"}, headers=h).status_code == 400
    assert client.put("/api/admin/journeys/thank_you", json=[1], headers=h).status_code == 400
    assert client.put("/api/admin/journeys/nope", json={}, headers=h).status_code == 404
    assert versions(container, shop, "thank_you") == [1]


def test_live_preview_renders_sample_data_in_the_locale_and_shows_problems(
        client: FlaskClient, shop: int, h: dict[str, str]) -> None:
    r = client.post("/api/admin/journeys/thank_you/preview", json={"step": "message", "template": OWN}, headers=h)
    assert r.status_code == 200 and r.json is not None
    assert r.json["subject"] == "Thanks, Jane!" and "Thanks for #1001" in r.json["html"]
    ko = client.post("/api/admin/journeys/thank_you/preview", json={"template": OWN, "locale": "ko"}, headers=h).json
    assert ko["subject"] == "Thanks, 민지!"
    default = client.post("/api/admin/journeys/thank_you/preview", json={"locale": "ja"}, headers=h).json
    assert "#1001" in default["subject"] and default["html"].startswith("<!doctype html") or "<html" in default["html"]
    bad = client.post("/api/admin/journeys/thank_you/preview",
                      json={"template": {**OWN, "text": "one\ntwo {{ customer.__class__ }}"}}, headers=h)
    assert bad.status_code == 400 and bad.json is not None
    [problem] = bad.json["problems"]
    assert (problem["field"], problem["line"]) == ("text", 2) and "not allowed" in problem["message"]
    assert client.post("/api/admin/journeys/thank_you/preview", json={"step": "nope"}, headers=h).status_code == 400
    assert client.post("/api/admin/journeys/thank_you/preview", json={"locale": "<x>"}, headers=h).status_code == 400


def test_a_test_send_lands_in_the_outbox_once_per_send(client: FlaskClient, container: Container, shop: int,
                                                       h: dict[str, str], outbox_dir: Path) -> None:
    r = client.post("/api/admin/journeys/thank_you/test", json={"step": "message"}, headers=h)
    assert r.status_code == 200, r.json
    assert r.json is not None and r.json["status"] == "sent" and r.json["to"] == "support@shop-a.myshopify.com"
    again = client.post("/api/admin/journeys/abandoned_cart/test", json={"to": "me@example.com", "locale": "ko",
                                                                        "template": OWN}, headers=h).json
    assert again["status"] == "sent" and again["key"] != r.json["key"]
    mails = {str(m["To"]): m for m in read_outbox(outbox_dir)}
    assert set(mails) == {"support@shop-a.myshopify.com", "me@example.com"}
    first = mails["support@shop-a.myshopify.com"]
    assert str(first["Subject"]).startswith("[Test] ") and "#1001" in str(first["Subject"])
    assert str(first["From"]).endswith("<no-reply@shop-a.myshopify.com>")
    assert str(mails["me@example.com"]["Subject"]) == "[Test] Thanks, 민지!"
    assert mails["me@example.com"]["List-Unsubscribe"] is not None  # a marketing journey's copy, as customers get it
    assert client.post("/api/admin/journeys/thank_you/test", json={"to": "nobody"}, headers=h).status_code == 400
    assert len(read_outbox(outbox_dir)) == 2
    with container.sessions() as s:
        assert s.scalar(select(func.count()).select_from(t.Message)) == 0  # a test send is no customer's message


def test_messaging_settings_are_read_validated_and_saved(client: FlaskClient, container: Container, shop: int,
                                                         h: dict[str, str]) -> None:
    got = client.get("/api/admin/messaging", headers=h).json
    secret = got.pop("webhook_secret")  # what the merchant's endpoint verifies Encore's webhooks with
    assert secret == dispatch.webhook_secret(container, shop) and secret.startswith("whsec_")
    assert got == {"sender_name": "Bean There", "sender_address": "no-reply@shop-a.myshopify.com",
                   "support_email": "support@shop-a.myshopify.com", "reply_to": "", "webhook_url": "", "per_day": 1,
                   "per_week": 3, "quiet_start": "21:00", "quiet_end": "09:00", "over_cap": "defer"}
    changes = {"sender_name": "Bean There Roasters", "support_email": "help@beanthere.example", "per_day": 2,
               "per_week": 5, "quiet_start": "22:00", "quiet_end": "08:30", "over_cap": "skip"}
    saved = client.put("/api/admin/messaging", json=changes, headers=h)
    assert saved.status_code == 200 and saved.json == {**got, **changes}
    for bad in ({"per_day": -1}, {"per_week": "3"}, {"quiet_start": "9pm"}, {"over_cap": "drop"},
                {"support_email": "nope"}, {"colour": "red"}, {"webhook_url": "ftp://x"}):
        r = client.put("/api/admin/messaging", json=bad, headers=h)
        assert r.status_code == 400 and r.json is not None and r.json["error"], bad
    assert client.get("/api/admin/messaging", headers=h).json == {**got, **changes, "webhook_secret": secret}
    with container.sessions() as s:
        shop_row = s.get(t.Shop, shop)
        assert shop_row is not None and jr.Messaging.of(shop_row).policy.per_day == 2


ENDPOINTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/admin/journeys", None), ("GET", "/api/admin/journeys/thank_you", None),
    ("POST", "/api/admin/journeys/thank_you/enabled", {"enabled": True}),
    ("PUT", "/api/admin/journeys/thank_you", {"holdout_percent": 5}),
    ("POST", "/api/admin/journeys/thank_you/preview", {}), ("POST", "/api/admin/journeys/thank_you/test", {}),
    ("GET", "/api/admin/journeys/thank_you/figures", None), ("GET", "/api/admin/journeys/thank_you/simulate", None),
    ("POST", "/api/admin/messages/1/resend", None), ("GET", "/api/admin/messaging", None),
    ("PUT", "/api/admin/messaging", {"per_day": 4}),
]


def test_every_endpoint_needs_a_valid_token_for_an_installed_shop(client: FlaskClient, container: Container,
                                                                  shop: int, h: dict[str, str]) -> None:
    other = make_shop(container, "shop-b.myshopify.com")
    good = auth(container, shop)["Authorization"]
    tampered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    gone = add_shop(container, "gone.myshopify.com", installed=False)
    refused = {"none": {}, "tampered": {"Authorization": tampered},
               "other shop's signature": {"Authorization": "Bearer " + MINTER.session_token(
                   "shop-a.myshopify.com", secret="shpss_" + "f" * 32)},
               "not installed": auth(container, gone, "gone.myshopify.com")}
    for method, path, body in ENDPOINTS:
        for case, headers in refused.items():
            r = client.open(path, method=method, json=body, headers=headers)
            assert r.status_code == 401, (method, path, case)
    with container.sessions() as s:
        assert s.scalar(select(func.count()).select_from(t.JourneyVersion)) == 2 * len(jr.DEFAULTS)
        assert [row.messaging for row in s.scalars(select(t.Shop))] == [None, None, None]
    # Shopify's own session token opens the same API, scoped to its shop only.
    shopify = {"Authorization": "Bearer " + MINTER.session_token("shop-b.myshopify.com")}
    assert client.put("/api/admin/journeys/thank_you", json={"holdout_percent": 5}, headers=shopify).json["version"] == 2
    assert versions(container, other, "thank_you") == [1, 2] and versions(container, shop, "thank_you") == [1]


# --- figures from what the engine really did ---------------------------------------------------------------------


class Flaky:
    name = "email"

    def send(self, message: OutboundMessage) -> SendResult:
        return SendResult.failed("550 mailbox unavailable", reason="rejected", code="550")


def test_figures_count_what_the_engine_sent_skipped_clicked_and_earned(
        client: FlaskClient, container: Container, shop: int, h: dict[str, str], tmp_path: Path) -> None:
    c, clock, store = container, Clock(B0), FakeStorePlatform()
    for key in ("thank_you", "abandoned_cart"):
        jr.set_enabled(c, shop, key, True)
    version = jr.live_version(c, shop, "abandoned_cart")
    jr.save_version(c, shop, "abandoned_cart", replace(version.journey, holdout_percent=50), version.templates)
    outbox = OutboxChannel(tmp_path / "outbox")
    d = Dispatcher(c, {"email": outbox}, platform_for=lambda _: store, now=clock.now)
    many = 16  # half held out, half not: each group non-empty whatever the hash (all in one: 1 in 30,000)
    for n in range(many):  # returning customers with a first order long ago (too old to enroll)
        observe(c, clock, cmd.ObserveOrder(shop, order(f"9{n:02}", f"6{n:02}", B0 - timedelta(days=60)),
                                           customer(f"6{n:02}")))
    observe(c, clock, cmd.ObserveOrder(shop, order("1001", "500", B0), customer("500")))  # sent
    observe(c, clock, cmd.ObserveOrder(shop, order("1002", None, B0, email="not-an-address"), None))  # skipped
    for n in range(many):
        observe(c, clock, cmd.ObserveCheckout(shop, checkout(f"ch{n}", f"6{n:02}", B0), customer(f"6{n:02}")))
    clock.at = B0 + timedelta(hours=2)
    d.run_once()
    observe(c, clock, cmd.ObserveOrder(shop, order("1003", "599", clock.at), customer("599")))
    Dispatcher(c, {"email": Flaky()}, platform_for=lambda _: store, now=clock.now).run_once()  # 1003's thanks fails

    with c.sessions() as s:
        rows = s.execute(select(t.Message.id, t.Message.status, t.Message.code, t.JourneyRow.key, t.Message.reason)
                         .join(t.JourneyRow, t.JourneyRow.id == t.Message.journey_id)
                         .where(t.Message.created_at >= B0)).all()
    carts = [r for r in rows if r.key == "abandoned_cart"]
    sent_carts = [r for r in carts if r.status == "sent"]
    held = [r for r in carts if r.status == "held_out"]
    assert sent_carts and held and len(sent_carts) + len(held) == many
    preferences.record_click(c, sent_carts[0].id, "https://shop-a.myshopify.com/", clock.at)
    observe(c, clock, cmd.ObserveOrder(shop, order("1004", None, clock.at + timedelta(minutes=1), total=Decimal("41.50"),
                                                   discount_codes=(str(sent_carts[0].code).lower(),)), None))

    figures = client.get("/api/admin/journeys/abandoned_cart/figures", headers=h).json
    assert figures["sent"] == {"total": len(sent_carts), "by_channel": {"email": len(sent_carts)}}
    assert (figures["held_out"], figures["opened"], figures["clicked"]) == (len(held), 1, 1)
    assert figures["attributed"] == {"orders": 1, "revenue": [{"currency": "USD", "amount": "41.5000"}]}
    assert figures["lift"] == {"holdout": {"enrollments": len(held), "converted": 0},
                               "treated": {"enrollments": len(sent_carts), "converted": 0, "attributed": 1}}
    thanks = client.get("/api/admin/journeys/thank_you/figures?days=30", headers=h).json
    assert thanks["sent"]["total"] == 1 and thanks["skipped"] == {"total": 1, "by_reason": {"no valid email address": 1}}
    assert thanks["failed"] == 1
    [failed] = thanks["problems"]
    assert (failed["status"], failed["reason"], failed["error"]) == ("failed", "rejected", "550 mailbox unavailable")
    listed = {j["key"]: j["figures"] for j in client.get("/api/admin/journeys", headers=h).json["journeys"]}
    assert listed["abandoned_cart"]["clicked"] == 1 and listed["thank_you"]["failed"] == 1
    assert listed["abandoned_cart"]["attributed"]["revenue"] == [{"currency": "USD", "amount": "41.5000"}]

    other = make_shop(c, "shop-b.myshopify.com")
    assert client.post(f"/api/admin/messages/{failed['id']}/resend", headers=auth(c, other, "shop-b.myshopify.com")
                       ).status_code == 404  # another shop's message
    r = client.post(f"/api/admin/messages/{failed['id']}/resend", headers=h)
    assert (r.status_code, r.json) == (200, {"id": failed["id"], "status": "pending"})
    assert client.post(f"/api/admin/messages/{failed['id']}/resend", headers=h).status_code == 404  # no longer failed
    clock.at = datetime.now(UTC) + timedelta(seconds=1)
    assert d.run_once().sent == 1
    assert client.get("/api/admin/journeys/thank_you/figures", headers=h).json["failed"] == 0
    assert client.get("/api/admin/journeys/thank_you/figures?days=0", headers=h).status_code == 400


# --- the simulation --------------------------------------------------------------------------------------------


def week(shop: int) -> list[tuple[datetime, Any]]:
    """A seeded week of store events: orders, carts, a delivery, a cancellation, a night-time cart."""
    at = B0
    ana, bo, cy, di = (customer("501"), customer("502", first="Bo"), customer("503", marketing=False, first="Cy"),
                       customer("504", first="Di"))
    return [
        (at, cmd.ObserveOrder(shop, order("1001", "501", at), ana)),
        (at + timedelta(minutes=5), cmd.ObserveCheckout(shop, checkout("c1", "502", at + timedelta(minutes=5)), bo)),
        (at + timedelta(hours=1), cmd.ObserveCheckout(shop, checkout("c2", "501", at + timedelta(hours=1)), ana)),
        (at + timedelta(hours=3, minutes=30),
         cmd.ObserveCheckout(shop, checkout("c3", "501", at + timedelta(hours=3, minutes=30)), ana)),  # capped
        (at + timedelta(hours=4), cmd.ObserveCheckout(shop, checkout("c4", "503", at + timedelta(hours=4)), cy)),
        (at + timedelta(hours=5), cmd.ObserveCheckout(shop, checkout("c5", "504", at + timedelta(hours=5)), di)),
        (at + timedelta(days=1), cmd.ObserveCheckout(shop, checkout("c6", "502", at + timedelta(days=1)), bo)),
        (at + timedelta(days=1, minutes=30),
         cmd.ObserveOrder(shop, order("1002", "502", at + timedelta(days=1, minutes=30)), bo)),
        (at + timedelta(days=1, hours=12),
         cmd.ObserveCheckout(shop, checkout("c7", "502", at + timedelta(days=1, hours=12)), bo)),  # at night
        (at + timedelta(days=2), cmd.ObserveOrder(shop, order("1005", None, at + timedelta(days=2), email="not-an-address"),
                                                  None)),
        (at + timedelta(days=3), cmd.ObserveFulfillment(shop, "1001", Fulfillment(
            "f1", at + timedelta(days=3), at + timedelta(days=3), shipment_status="delivered"))),
        (at + timedelta(days=3, hours=1), cmd.ObserveFulfillment(shop, "1002", Fulfillment(
            "f2", at + timedelta(days=3, hours=1), at + timedelta(days=3, hours=1), shipment_status="delivered"))),
        (at + timedelta(days=3, hours=2), cmd.ObserveOrder(shop, order(
            "1002", "502", at + timedelta(days=1, minutes=30), cancelled_at=at + timedelta(days=3, hours=2),
            updated_at=at + timedelta(days=3, hours=2)), bo)),
    ]


COMPARED = ("thank_you", "abandoned_cart", "delivered")


def seed(c: Container, domain: str, *, live: bool) -> int:
    shop_id = make_shop(c, domain)
    clock = Clock(B0 - timedelta(days=60))
    for n in (1, 2, 3):  # repeat customers: a first order two months ago (journeys still off)
        cid = f"50{n}"
        observe(c, clock, cmd.ObserveOrder(shop_id, order(f"80{n}", cid, clock.at), customer(cid, marketing=n != 3)))
    for key in COMPARED:
        version = jr.live_version(c, shop_id, key)
        holdout = 50 if key == "thank_you" else 0
        jr.save_version(c, shop_id, key, replace(version.journey, holdout_percent=holdout), version.templates)
        if live:
            jr.set_enabled(c, shop_id, key, True)
    return shop_id


def run_forward(c: Container, shop_id: int, events: list[tuple[datetime, Any]], until: datetime,
                dispatcher: Callable[[Clock], Dispatcher]) -> None:
    """The store's events as they happen, and the dispatcher running at every moment a message comes due."""
    clock = Clock(B0)
    d = dispatcher(clock)

    def dispatch_until(moment: datetime) -> None:
        while True:
            with c.sessions() as s:
                due = s.scalar(select(func.min(t.Message.due_at)).where(
                    t.Message.shop_id == shop_id, t.Message.status == "pending", t.Message.due_at < moment))
            if due is None:
                return
            clock.at = max(clock.at, due)
            d.run_once()

    for at, command in events:
        dispatch_until(at)
        clock.at = at
        observe(c, clock, command)
        d.run_once()
    dispatch_until(until)


def test_the_simulation_matches_what_the_dispatcher_really_sends(container: Container, tmp_path: Path) -> None:
    c = container
    replay = seed(c, "replay.myshopify.com", live=False)  # history only: nothing enrolled, nothing sent
    for at, command in week(replay):
        observe(c, Clock(at), command)
    with c.sessions() as s:
        assert s.scalar(select(func.count()).select_from(t.Message).where(t.Message.shop_id == replay)) == 0
    simulated = {key: simulate(c, replay, key, days=7, now=END) for key in COMPARED}

    real = seed(c, "real.myshopify.com", live=True)
    outbox, store = OutboxChannel(tmp_path / "outbox"), FakeStorePlatform()
    run_forward(c, real, week(real), END,
                lambda clock: Dispatcher(c, {"email": outbox}, platform_for=lambda _: store, now=clock.now))
    subjects = {str(m["X-Encore-Key"]): str(m["Subject"]) for m in read_outbox(tmp_path / "outbox")}
    with c.sessions() as s:
        happened = s.execute(select(t.JourneyRow.key, t.Enrollment.key, t.Message).join(
            t.Enrollment, t.Enrollment.id == t.Message.enrollment_id).join(
            t.JourneyRow, t.JourneyRow.id == t.Message.journey_id).where(t.Message.shop_id == real)).all()

    def outcome(m: t.Message) -> tuple[str, datetime | None, str | None]:
        said = {"sent": "would send", "held_out": "held out", "skipped": f"skipped: {m.reason}",
                "cancelled": f"exited: {m.reason}"}[m.status]
        return said, m.sent_at, subjects.get(m.key)

    expected = {(key, enrollment, m.step): outcome(m) for key, enrollment, m in happened}
    got = {(key, r.enrollment, r.step): (r.outcome, r.send_at, r.subject) for key, found in simulated.items()
           for r in found.rows}
    assert got == expected
    outcomes = sorted(o for o, _, _ in got.values())
    for kind in ("would send", "held out", "skipped: no valid email address", "skipped: condition not met",
                 "skipped: no consent to marketing email", "exited: new order placed", "exited: order cancelled"):
        assert kind in outcomes, kind

    rows = {r.enrollment.split(":", 1)[1]: r for r in simulated["abandoned_cart"].rows}
    capped = rows[f"checkout:c3:{(B0 + timedelta(hours=3, minutes=30)).isoformat()}"]
    c2 = rows[f"checkout:c2:{(B0 + timedelta(hours=1)).isoformat()}"]
    assert capped.deferred == "frequency cap" and capped.send_at == c2.send_at + timedelta(days=1)  # type: ignore[operator]
    assert capped.planned_at == B0 + timedelta(hours=5, minutes=30)
    assert (capped.customer, capped.channel, capped.facts["orders_before"]) == ("Ana L. (c***@example.com)", "email", 2)
    assert (capped.timezone, capped.holdout, capped.condition) == (NY, False, True)
    held = next(r for r in simulated["thank_you"].rows if r.kind == "held_out")
    assert held.holdout and held.send_at is None and held.enrollment == "thank_you:order:1001:paid"
    first_timer = rows[f"checkout:c5:{(B0 + timedelta(hours=5)).isoformat()}"]
    assert (first_timer.condition, first_timer.facts["orders_before"]) == (False, 0)


def test_the_simulation_endpoint_and_date_rules(client: FlaskClient, container: Container, shop: int,
                                                h: dict[str, str]) -> None:
    c = container
    for at, command in week(shop):
        observe(c, Clock(at), command)
    r = client.get("/api/admin/journeys/abandoned_cart/simulate?days=7", headers=h)
    assert r.status_code == 200 and r.json is not None
    assert (r.json["trigger"], r.json["version"], r.json["unsupported"], r.json["truncated"]) == (
        "CheckoutUpdated", 1, None, False)
    rows = r.json["rows"]
    assert len(rows) == 7 and [row["trigger_at"] for row in rows] == sorted(row["trigger_at"] for row in rows)
    sent = [row for row in rows if row["kind"] == "send"]
    assert sent and all(row["subject"] and row["channel"] == "email" for row in sent)
    assert {row["customer"] for row in rows} >= {"Bo L. (c***@example.com)", "Cy L. (c***@example.com)"}
    assert "c502@example.com" not in r.get_data(as_text=True)  # addresses are masked
    assert client.get("/api/admin/journeys/abandoned_cart/simulate?days=91", headers=h).status_code == 400
    assert client.get("/api/admin/journeys/nope/simulate", headers=h).status_code == 404

    # A date rule: a birthday in the window, found by app.daterules, replayed the same way.
    born = (END - timedelta(days=3)).astimezone(ZoneInfo(NY)).date()
    with c.sessions() as s, s.begin():
        s.execute(update(t.Customer).where(t.Customer.shop_id == shop, t.Customer.external_id == "501")
                  .values(birthday=date(1992, born.month, born.day), accepts_email_marketing=True))
    birthday = client.get("/api/admin/journeys/birthday/simulate?days=7", headers=h).json
    if not hasattr(daterules, "FINDERS"):
        assert "date rule" in birthday["unsupported"]  # app.daterules offers no finder (yet)
    else:
        [row] = birthday["rows"]
        assert (row["customer_id"], row["trigger"], row["kind"]) == ("501", "Birthday", "send")
        assert row["enrollment"].startswith("birthday:Birthday:501:")
    points = client.get("/api/admin/journeys/points_expiry/simulate?days=7", headers=h).json
    assert points["unsupported"] is None and points["rows"] == []  # a finder now; no program, nothing expires


def test_masking() -> None:
    assert mask("ana@example.com") == "a***@example.com" and mask("x@y.z") == "x***@y.z" and mask(None) == ""
    assert mask("not-an-address") == ""
