"""The preference center, one-click unsubscribe, open and click tracking and SMS STOP, on the real database: the
service directly, and the public routes through Flask's test client."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from app import links, preferences
from app.bootstrap import Container
from app.channels.sms import twilio_signature
from app.db import models as t
from tests.journeys import seed_enrollment

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Seeded:
    shop_id: int
    customer_id: str
    marketing: int  # an active marketing enrollment: one message sent, one pending, one waiting
    transactional: int  # an active transactional enrollment with one pending message
    sent: int  # the marketing enrollment's sent message


def seed(c: Container, *, customer_id: str = "cust-1", locale: str | None = "en", shop_locale: str = "en",
         first_name: str | None = "Mina", phone: str | None = None, domain: str | None = None) -> Seeded:
    """A shop, a customer, and two journeys with an active enrollment each, inserted directly."""
    with c.sessions() as s, s.begin():
        shop = t.Shop(platform="shopify", domain=domain or f"{customer_id}.myshopify.com", name="Encore Coffee",
                      locale=shop_locale, installed_at=NOW)
        s.add(shop)
        s.flush()
        s.add(t.Customer(shop_id=shop.id, external_id=customer_id, email=f"{customer_id}@example.com", phone=phone,
                         first_name=first_name, locale=locale, external_updated_at=NOW))
        ids: dict[str, int] = {}
        sent = 0
        for key, category, steps in (("win_back", "marketing", ("sent", "pending", "waiting")),
                                     ("shipped", "transactional", ("pending",))):
            enrollment = seed_enrollment(s, shop.id, key, customer_id, NOW, trigger_type="OrderPaid")
            ids[category] = enrollment.id
            for n, status in enumerate(steps):
                message = t.Message(
                    shop_id=shop.id, enrollment_id=enrollment.id, journey_id=enrollment.journey_id, step=f"step{n}",
                    key=f"{key}:{customer_id}:step{n}", customer_external_id=customer_id, category=category,
                    channel="email", status=status, due_at=NOW + timedelta(days=n), created_at=NOW,
                    sent_at=NOW if status == "sent" else None)
                s.add(message)
                s.flush()
                if status == "sent":
                    sent = message.id
        return Seeded(shop.id, customer_id, ids["marketing"], ids["transactional"], sent)


def path(url: str) -> str:
    return urlsplit(url).path


def messages(c: Container, enrollment_id: int) -> list[tuple[str, str, str | None]]:
    with c.sessions() as s:
        return [(m.step, m.status, m.reason) for m in s.scalars(
            select(t.Message).where(t.Message.enrollment_id == enrollment_id).order_by(t.Message.step))]


def enrollment(c: Container, enrollment_id: int) -> tuple[str, str | None]:
    with c.sessions() as s:
        e = s.get(t.Enrollment, enrollment_id)
        assert e is not None
        return e.status, e.exit_reason


def snapshot(c: Container) -> dict[str, Any]:
    """Everything a link could change."""
    with c.sessions() as s:
        return {
            "prefs": [(p.customer_external_id, p.email, p.sms, p.frequency, p.unsubscribed_at)
                      for p in s.scalars(select(t.ContactPreference).order_by(t.ContactPreference.id))],
            "clicks": s.scalar(select(func.count()).select_from(t.MessageClick)),
            "messages": [(m.id, m.status, m.opened_at, m.clicked_at)
                         for m in s.scalars(select(t.Message).order_by(t.Message.id))],
            "enrollments": [(e.id, e.status) for e in s.scalars(select(t.Enrollment).order_by(t.Enrollment.id))],
            "birthdays": list(s.scalars(select(t.Customer.birthday).order_by(t.Customer.id))),
        }


def assert_secure(response: Any) -> None:
    csp = response.headers["Content-Security-Policy"]
    for part in ("default-src 'none'", "style-src 'self'", "form-action 'self'", "frame-ancestors 'none'"):
        assert part in csp
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"


# --- the service ------------------------------------------------------------------------------------------------


def test_saving_takes_effect_at_once_and_is_validated(container: Container) -> None:
    c = container
    x = seed(c)
    before = preferences.get(c, x.shop_id, x.customer_id)
    assert (before.email, before.sms, before.frequency, before.unsubscribed, before.birthday) == (
        True, True, "normal", False, None)
    assert (before.first_name, before.shop_name, before.locale) == ("Mina", "Encore Coffee", "en")

    saved = preferences.save(c, x.shop_id, x.customer_id, email=False, sms=True, frequency="weekly",
                             birthday=date(2000, 2, 29))
    assert saved == preferences.get(c, x.shop_id, x.customer_id)
    with c.sessions() as s:  # a new session sees it: it was committed
        pref = s.scalars(select(t.ContactPreference)).one()
        assert (pref.email, pref.sms, pref.frequency, pref.unsubscribed_at) == (False, True, "weekly", None)
        assert s.scalar(select(t.Customer.birthday)) == date(2000, 2, 29)

    state = snapshot(c)
    for bad in ({"frequency": "daily"}, {"birthday": datetime(2000, 1, 1, tzinfo=UTC)}, {"birthday": "2000-01-01"}):
        args: dict[str, Any] = {"email": True, "sms": True, "frequency": "monthly", "birthday": None} | bad
        with pytest.raises(preferences.InvalidPreferences):
            preferences.save(c, x.shop_id, x.customer_id, **args)
    with pytest.raises(preferences.InvalidPreferences):
        preferences.unsubscribe(c, x.shop_id, x.customer_id, channel="pigeon", source="test")
    assert snapshot(c) == state
    assert preferences.birthday_from(2, 29, 1990) == date(2000, 2, 29)  # no such day in 1990: the stored year
    assert preferences.birthday_from(5, 3, 1990) == date(1990, 5, 3)
    with pytest.raises(preferences.InvalidPreferences):
        preferences.birthday_from(2, 30)


def test_unknown_shop_customer_or_message_raise_and_write_nothing(container: Container) -> None:
    c = container
    x = seed(c)
    state = snapshot(c)
    for shop_id, customer_id in ((x.shop_id + 100, x.customer_id), (x.shop_id, "nobody")):
        with pytest.raises(preferences.UnknownContact):
            preferences.get(c, shop_id, customer_id)
        with pytest.raises(preferences.UnknownContact):
            preferences.save(c, shop_id, customer_id, email=True, sms=True, frequency="normal", birthday=None)
        with pytest.raises(preferences.UnknownContact):
            preferences.unsubscribe(c, shop_id, customer_id, source="test")
        with pytest.raises(preferences.UnknownContact):
            preferences.resubscribe(c, shop_id, customer_id, source="test")
    with pytest.raises(preferences.UnknownMessage):
        preferences.record_open(c, 10_000, NOW)
    with pytest.raises(preferences.UnknownMessage):
        preferences.record_click(c, 10_000, "https://shop.example/", NOW)
    assert snapshot(c) == state


def test_unsubscribing_from_all_marketing_ends_scheduled_marketing_only(container: Container) -> None:
    c = container
    x = seed(c)
    other = seed(c, customer_id="cust-2")
    prefs = preferences.unsubscribe(c, x.shop_id, x.customer_id, source="test")
    assert prefs.unsubscribed and prefs.email and prefs.sms  # the channels' own choices are kept
    assert enrollment(c, x.marketing) == ("exited", "unsubscribed")
    assert messages(c, x.marketing) == [("step0", "sent", None), ("step1", "cancelled", "unsubscribed"),
                                        ("step2", "cancelled", "unsubscribed")]
    assert enrollment(c, x.transactional) == ("active", None)
    assert messages(c, x.transactional) == [("step0", "pending", None)]
    assert enrollment(c, other.marketing) == ("active", None)  # another customer's, untouched
    with c.sessions() as s:
        first = s.scalar(select(t.ContactPreference.unsubscribed_at))
    preferences.unsubscribe(c, x.shop_id, x.customer_id, source="test again")  # twice: the first time stays
    with c.sessions() as s:
        assert s.scalar(select(t.ContactPreference.unsubscribed_at).where(
            t.ContactPreference.customer_external_id == x.customer_id)) == first

    again = preferences.resubscribe(c, x.shop_id, x.customer_id, source="test")
    assert not again.unsubscribed
    assert enrollment(c, x.marketing) == ("exited", "unsubscribed")  # what was cancelled stays cancelled


def test_one_channel_unsubscribes_only_that_channel(container: Container) -> None:
    c = container
    x = seed(c)
    prefs = preferences.unsubscribe(c, x.shop_id, x.customer_id, channel="sms", source="sms STOP")
    assert (prefs.email, prefs.sms, prefs.unsubscribed) == (True, False, False)
    prefs = preferences.unsubscribe(c, x.shop_id, x.customer_id, channel="email", source="test")
    assert (prefs.email, prefs.sms, prefs.unsubscribed) == (False, False, False)
    assert enrollment(c, x.marketing) == ("active", None)  # the dispatcher's consent check skips them
    assert preferences.resubscribe(c, x.shop_id, x.customer_id, channel="sms", source="sms START").sms


def test_the_first_open_wins_and_a_click_counts_as_an_open(container: Container) -> None:
    c = container
    x = seed(c)
    assert preferences.record_open(c, x.sent, NOW)
    assert not preferences.record_open(c, x.sent, NOW + timedelta(hours=1))
    preferences.record_click(c, x.sent, "https://shop.example/a", NOW + timedelta(hours=2))
    preferences.record_click(c, x.sent, "https://shop.example/b", NOW + timedelta(hours=3))
    with c.sessions() as s:
        m = s.get(t.Message, x.sent)
        assert m is not None and (m.opened_at, m.clicked_at) == (NOW, NOW + timedelta(hours=2))
        clicks = s.scalars(select(t.MessageClick).order_by(t.MessageClick.id)).all()
        assert [(k.shop_id, k.customer_external_id, k.url) for k in clicks] == [
            (x.shop_id, x.customer_id, "https://shop.example/a"), (x.shop_id, x.customer_id, "https://shop.example/b")]
    y = seed(c, customer_id="cust-3")  # images blocked: the click is the first sign it was opened
    preferences.record_click(c, y.sent, "https://shop.example/c", NOW)
    with c.sessions() as s:
        m = s.get(t.Message, y.sent)
        assert m is not None and (m.opened_at, m.clicked_at) == (NOW, NOW)


def test_a_redacted_customer_is_unknown(container: Container, client: FlaskClient) -> None:
    c = container
    x = seed(c)
    with c.sessions() as s, s.begin():
        s.execute(update(t.Customer).values(redacted_at=NOW))
    state = snapshot(c)
    with pytest.raises(preferences.UnknownContact):
        preferences.get(c, x.shop_id, x.customer_id)
    with pytest.raises(preferences.UnknownContact):
        preferences.unsubscribe(c, x.shop_id, x.customer_id, source="test")
    with pytest.raises(preferences.UnknownMessage):
        preferences.record_open(c, x.sent, NOW)
    with pytest.raises(preferences.UnknownMessage):
        preferences.record_click(c, x.sent, "https://shop.example/", NOW)
    cfg = c.settings
    assert client.get(path(links.preferences_url(cfg, x.shop_id, x.customer_id))).status_code == 400
    assert client.post(path(links.unsubscribe_url(cfg, x.shop_id, x.customer_id)),
                       data={"List-Unsubscribe": "One-Click"}).status_code == 400
    assert client.get(path(links.open_pixel_url(cfg, x.sent))).mimetype == "image/gif"
    response = client.get(path(links.click_url(cfg, x.sent, "https://shop.example/")))
    assert (response.status_code, response.headers["Location"]) == (302, "https://shop.example/")
    assert snapshot(c) == state


# --- the routes ---------------------------------------------------------------------------------------------------


def test_the_preference_page_saves_and_shows_the_saved_state(container: Container, client: FlaskClient) -> None:
    c = container
    x = seed(c)
    url = path(links.preferences_url(c.settings, x.shop_id, x.customer_id))
    page = client.get(url)
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert_secure(page)
    html = page.get_data(as_text=True)
    assert '<html lang="en">' in html and "Hi Mina, choose what Encore Coffee sends you." in html
    assert 'id="email" name="email" value="1" checked' in html and 'value="normal" checked' in html
    csrf = links.form_token(c.settings, url.rsplit("/", 1)[1])
    assert f'name="csrf" value="{csrf}"' in html

    form = {"csrf": csrf, "email": "1", "frequency": "monthly", "birthday_month": "7", "birthday_day": "14",
            "action": "save"}
    saved = client.post(url, data=form)
    assert saved.status_code == 200
    assert_secure(saved)
    html = saved.get_data(as_text=True)
    assert "Your preferences are saved." in html
    assert 'id="sms" name="sms" value="1">' in html and 'value="monthly" checked' in html
    assert '<option value="7" selected>July</option>' in html and '<option value="14" selected>14</option>' in html
    prefs = preferences.get(c, x.shop_id, x.customer_id)
    assert (prefs.email, prefs.sms, prefs.frequency, prefs.birthday) == (True, False, "monthly", date(2000, 7, 14))

    state = snapshot(c)
    for bad in ({"csrf": ""}, {"csrf": "0" * 64}, {"csrf": links.form_token(c.settings, "another-token")}):
        response = client.post(url, data=form | bad | {"frequency": "weekly"})
        assert response.status_code == 400 and "This form has expired" in response.get_data(as_text=True)
    for bad in ({"birthday_month": "2", "birthday_day": "30"}, {"birthday_month": "2", "birthday_day": ""},
                {"birthday_month": "13", "birthday_day": "1"}, {"frequency": "hourly"}):
        response = client.post(url, data=form | bad)
        assert response.status_code == 400 and 'role="alert"' in response.get_data(as_text=True)
    assert snapshot(c) == state

    client.post(url, data={"csrf": csrf, "frequency": "normal", "birthday_month": "", "birthday_day": ""})
    prefs = preferences.get(c, x.shop_id, x.customer_id)
    assert (prefs.email, prefs.sms, prefs.frequency, prefs.birthday) == (False, False, "normal", None)

    response = client.post(url, data={"csrf": csrf, "action": "unsubscribe"})
    assert response.status_code == 200 and 'id="unsubscribed"' in response.get_data(as_text=True)
    assert enrollment(c, x.marketing) == ("exited", "unsubscribed")
    response = client.post(url, data={"csrf": csrf, "action": "resubscribe"})
    assert 'id="unsubscribed"' not in response.get_data(as_text=True)
    assert not preferences.get(c, x.shop_id, x.customer_id).unsubscribed


def test_one_click_unsubscribe_exits_marketing_and_keeps_transactional(container: Container, client: FlaskClient
                                                                       ) -> None:
    c = container
    x = seed(c)
    url = path(links.unsubscribe_url(c.settings, x.shop_id, x.customer_id, x.sent))
    state = snapshot(c)
    confirm = client.get(url)  # what a mail scanner's prefetch does: nothing changes
    assert confirm.status_code == 200
    assert_secure(confirm)
    html = confirm.get_data(as_text=True)
    assert f'action="{url}"' in html and 'name="List-Unsubscribe" value="One-Click"' in html
    assert client.post(url).status_code == 400  # not RFC 8058's body
    assert snapshot(c) == state

    response = client.post(url, data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200 and len(response.data) < 4096
    assert "You are unsubscribed" in response.get_data(as_text=True)
    assert preferences.get(c, x.shop_id, x.customer_id).unsubscribed
    assert enrollment(c, x.marketing) == ("exited", "unsubscribed")
    assert messages(c, x.marketing) == [("step0", "sent", None), ("step1", "cancelled", "unsubscribed"),
                                        ("step2", "cancelled", "unsubscribed")]
    assert enrollment(c, x.transactional) == ("active", None)
    assert messages(c, x.transactional) == [("step0", "pending", None)]
    assert client.post(url, data={"List-Unsubscribe": "One-Click"}).status_code == 200  # a second POST is fine
    assert "You are unsubscribed" in client.get(url).get_data(as_text=True)


def _forge(token: str, payload: object) -> str:
    """The token's signature on another payload."""
    raw = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")
    return raw + "." + token.rsplit(".", 1)[1]


def _flip(token: str, at: int) -> str:
    """The token with one character changed (a whole base64 digit, not only its unused low bits)."""
    return token[:at] + ("A" if token[at] != "A" else "Q") + token[at + 1:]


def test_tampered_links_change_nothing(container: Container, client: FlaskClient) -> None:
    c = container
    x = seed(c)
    other = seed(c, customer_id="cust-2")
    s = c.settings
    p = path(links.preferences_url(s, x.shop_id, x.customer_id)).rsplit("/", 1)[1]
    u = path(links.unsubscribe_url(s, x.shop_id, x.customer_id)).rsplit("/", 1)[1]
    o = path(links.open_pixel_url(s, x.sent)).rsplit("/", 1)[1].removesuffix(".gif")
    k = path(links.click_url(s, x.sent, "https://shop.example/")).rsplit("/", 1)[1]
    state = snapshot(c)
    bad: list[str] = ["", "x", "a.b", "." + p.rsplit(".", 1)[1]]
    for token, payload in ((p, [other.shop_id, other.customer_id]), (u, [other.shop_id, other.customer_id, None]),
                           (o, other.sent), (k, [other.sent, "https://shop.example/"])):
        bad += [_forge(token, payload), _flip(token, token.rindex(".") + 1), token.split(".")[0]]
    for token in bad + [u, o, k]:  # tampered, forged, or made for another purpose
        assert client.get(f"/p/{token}").status_code in (400, 404)
        csrf = links.form_token(s, token)
        assert client.post(f"/p/{token}", data={"csrf": csrf, "email": "", "frequency": "monthly"}).status_code in (
            400, 404, 405)
    for token in bad + [p, o, k]:
        assert client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}).status_code in (400, 404, 405)
    for token in [b for b in bad if b] + [p, u, k]:
        gif = client.get(f"/t/o/{token}.gif")
        assert (gif.status_code, gif.mimetype) == (200, "image/gif")
    for token in [b for b in bad if b] + [p, u, o]:
        refused = client.get(f"/t/c/{token}")
        assert refused.status_code == 400 and "Location" not in refused.headers
        assert "This link does not work" in refused.get_data(as_text=True)
        assert_secure(refused)
    assert snapshot(c) == state


def test_opens_and_clicks_are_recorded_once_and_clicks_redirect(container: Container, client: FlaskClient) -> None:
    c = container
    x = seed(c)
    s = c.settings
    pixel = client.get(path(links.open_pixel_url(s, x.sent)))
    assert (pixel.status_code, pixel.mimetype, pixel.data[:6]) == (200, "image/gif", b"GIF89a")
    assert pixel.headers["Cache-Control"] == "no-store"
    with c.sessions() as db:
        first = db.scalar(select(t.Message.opened_at).where(t.Message.id == x.sent))
    assert first is not None
    client.get(path(links.open_pixel_url(s, x.sent)))
    target = "https://shop.example/products/mug?utm_source=encore&a=1"
    url = path(links.click_url(s, x.sent, target))
    for _ in range(2):
        response = client.get(url)
        assert (response.status_code, response.headers["Location"]) == (302, target)
        assert response.headers["Referrer-Policy"] == "no-referrer"
    with c.sessions() as db:
        m = db.get(t.Message, x.sent)
        assert m is not None and m.opened_at == first and m.clicked_at is not None
        first_click = m.clicked_at
        assert [(k.url, k.customer_external_id) for k in db.scalars(select(t.MessageClick))] == [
            (target, x.customer_id)] * 2
    client.get(url)
    with c.sessions() as db:
        assert db.scalar(select(t.Message.clicked_at).where(t.Message.id == x.sent)) == first_click
    assert client.head(url).status_code == 302  # a link checker: not a click
    with c.sessions() as db:
        assert db.scalar(select(func.count()).select_from(t.MessageClick)) == 3


def test_a_click_never_redirects_anywhere_but_its_signed_target(container: Container, client: FlaskClient) -> None:
    c = container
    x = seed(c)
    token = path(links.click_url(c.settings, x.sent, "https://shop.example/")).rsplit("/", 1)[1]
    response = client.get(f"/t/c/{token}?url=https://evil.example/&next=https://evil.example/")
    assert response.headers["Location"] == "https://shop.example/"
    for evil in (_forge(token, [x.sent, "https://evil.example/"]), "https://evil.example", "//evil.example",
                 _forge(token, [x.sent, "javascript:alert(1)"])):
        refused = client.get(f"/t/c/{evil}")
        if refused.status_code == 308:  # Werkzeug merging the slashes of the path: a redirect to itself
            assert urlsplit(refused.headers["Location"]).netloc in ("", "localhost")
            refused = client.get(refused.headers["Location"])
        assert refused.status_code in (400, 404) and "Location" not in refused.headers
    with c.sessions() as db:
        assert [k.url for k in db.scalars(select(t.MessageClick))] == ["https://shop.example/"]


def test_pages_speak_the_customers_language(container: Container, client: FlaskClient) -> None:
    c = container
    ko = seed(c, customer_id="ko-1", locale="ko-KR", first_name="민아")
    ja = seed(c, customer_id="ja-1", locale=None, shop_locale="ja", first_name=None)
    html = client.get(path(links.preferences_url(c.settings, ko.shop_id, ko.customer_id))).get_data(as_text=True)
    assert '<html lang="ko">' in html and "민아님, Encore Coffee에서 받을 메시지를 선택하세요." in html
    assert "최대 주 1회" in html and "<option value=\"1\">1월</option>" in html
    html = client.get(path(links.unsubscribe_url(c.settings, ja.shop_id, ja.customer_id))).get_data(as_text=True)
    assert '<html lang="ja">' in html and "配信停止" in html
    html = client.get(path(links.preferences_url(c.settings, ja.shop_id, ja.customer_id, "ko"))).get_data(as_text=True)
    assert '<html lang="ko">' in html  # the language the email was written in, when the link says
    error = client.get("/p/nonsense", headers={"Accept-Language": "ja-JP,ja;q=0.9,en;q=0.5"})
    assert error.status_code == 400 and "このリンクは使用できません" in error.get_data(as_text=True)
    assert "This link does not work" in client.get("/u/nonsense").get_data(as_text=True)


def test_an_inbound_sms_stop_and_start_change_sms_consent(container: Container, client: FlaskClient) -> None:
    c = container
    phone = "+821055501234"
    x = seed(c, phone=phone)
    y = seed(c, customer_id="cust-2", phone=phone)  # the same number in another shop
    z = seed(c, customer_id="cust-3", phone="+819012345678")
    assert client.post("/sms/inbound", data={"Body": "STOP"}).status_code == 404  # SMS is off: no auth token
    c.settings = c.settings.with_(sms_auth_token="sms-auth-token")

    def send(body: str, token: str = "sms-auth-token", query: str = "") -> Any:
        params = {"From": phone, "To": "+15005550006", "Body": body, "MessageSid": "SM1", "AccountSid": "AC1"}
        url = f"{c.settings.app_url}/sms/inbound{query}"
        return client.post(f"/sms/inbound{query}", data=params,
                           headers={"X-Twilio-Signature": twilio_signature(token, url, params)})

    state = snapshot(c)
    assert send("STOP", token="not-the-token").status_code == 403
    assert snapshot(c) == state
    response = send("Stop")
    assert response.status_code == 200 and response.mimetype == "text/xml" and b"<Response>" in response.data
    assert [preferences.get(c, v.shop_id, v.customer_id).sms for v in (x, y, z)] == [False, False, True]
    assert preferences.get(c, x.shop_id, x.customer_id).email and enrollment(c, x.marketing) == ("active", None)
    send("START", query=f"?shop={y.shop_id}")
    assert [preferences.get(c, v.shop_id, v.customer_id).sms for v in (x, y)] == [False, True]
    before = snapshot(c)
    send("stop texting me")  # an ordinary message, not a keyword
    assert snapshot(c) == before
