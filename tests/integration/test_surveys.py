"""The satisfaction survey a `survey` message links to, on the real database: the service directly, and the
public route /s/<token> through Flask's test client. Two questions (satisfaction 1-5 and NPS 0-10, both required)
and a comment; a tampered, forged or expired link records nothing; an answer is routed in its own transaction (a
low one opens its follow-up item, a high one records OrderPraised once)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from app import journeys as jr
from app import links, surveys
from app.bootstrap import Container
from app.db import models as t
from tests.integration.test_preferences import _flip, _forge, assert_secure
from tests.journeys import Clock

NOW = datetime(2026, 3, 9, 10, 0, tzinfo=UTC)
SENT = NOW - timedelta(days=1)


@pytest.fixture(autouse=True)
def _clock(container: Container) -> None:
    """The routes ask the container's clock: a day after the message was sent (its link is open)."""
    container.clock = Clock(NOW)  # type: ignore[assignment]


@dataclass(frozen=True)
class Seeded:
    shop_id: int
    customer_id: str
    message_id: int


def seed(c: Container, *, customer_id: str = "cust-1", locale: str | None = "en", shop_locale: str = "en",
         first_name: str | None = "Mina", order_name: str | None = "#1001", code: str | None = "THANKS-7Q2K",
         status: str = "sent", customer: bool = True, sent: datetime = SENT, shop_id: int | None = None,
         order_id: str = "order-1") -> Seeded:
    """A shop (or the one given), its customer and order, and the survey journey's message about that order,
    inserted directly. The shop has the journey library, as installed (switched off)."""
    with c.sessions() as s, s.begin():
        if shop_id is None:
            shop = t.Shop(platform="shopify", domain=f"{customer_id}.myshopify.com", name="Encore Coffee",
                          locale=shop_locale, installed_at=NOW)
            s.add(shop)
            s.flush()
            shop_id = shop.id
        jr.install_defaults(s, shop_id)
        if customer:
            s.add(t.Customer(shop_id=shop_id, external_id=customer_id, email=f"{customer_id}@example.com",
                             first_name=first_name, locale=locale, external_updated_at=NOW))
        if order_name is not None:
            s.add(t.Order(shop_id=shop_id, external_id=order_id, name=order_name, customer_external_id=customer_id,
                          currency="USD", subtotal=20, total=22, total_tax=2, total_shipping=0, total_discounts=0,
                          refunded_amount=0, payment_status="paid", status="fulfilled", created_at=NOW,
                          external_updated_at=NOW))
        survey = jr.live(s, shop_id, "survey")
        assert survey is not None
        enrollment = t.Enrollment(
            shop_id=shop_id, journey_id=survey.journey_id, version_id=survey.version_id,
            key=f"survey:{customer_id}:{order_id}", trigger_type="OrderDelivered", trigger_key=f"order:{order_id}",
            trigger_at=NOW, customer_external_id=customer_id, email=f"{customer_id}@example.com",
            order_external_id=order_id, facts={}, created_at=NOW)
        s.add(enrollment)
        s.flush()
        went = status == "sent"
        message = t.Message(
            shop_id=shop_id, enrollment_id=enrollment.id, journey_id=enrollment.journey_id, step="message",
            key=f"{enrollment.key}:message", customer_external_id=customer_id, category="transactional",
            channel="email", status=status, due_at=sent, created_at=sent, sent_at=sent if went else None,
            code=code if went else None)
        s.add(message)
        s.flush()
        return Seeded(shop_id, customer_id, message.id)


def rows(c: Container) -> list[tuple[Any, ...]]:
    """Every stored answer."""
    with c.sessions() as s:
        return [(r.shop_id, r.message_id, r.customer_external_id, r.order_external_id, r.score, r.nps, r.comment,
                 r.created_at, r.updated_at)
                for r in s.scalars(select(t.SurveyResponse).order_by(t.SurveyResponse.id))]


def path(c: Container, message_id: int) -> str:
    return urlsplit(links.survey_url(c.settings, message_id)).path


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert found, html
    return found.group(1)


# --- the link -----------------------------------------------------------------------------------------------------


def test_the_survey_link_reads_back_its_message_and_refuses_anything_else(container: Container) -> None:
    settings = container.settings
    url = links.survey_url(settings, 42)
    assert url.startswith(f"{settings.app_url}/s/")
    token = url.rsplit("/", 1)[1]
    assert all(ch.isalnum() or ch in "-_." for ch in token)
    assert links.read_survey(settings, token) == 42
    open_token = links.open_pixel_url(settings, 42).rsplit("/", 1)[1].removesuffix(".gif")  # the same payload
    for bad in ("", "x", open_token, _forge(token, 43), _forge(token, [42]), _forge(token, True), _forge(token, 0),
                _flip(token, token.rindex(".") + 1), token.split(".")[0],
                links.survey_url(settings.with_(secret_key="another"), 42).rsplit("/", 1)[1]):
        with pytest.raises(links.BadLink):
            links.read_survey(settings, bad)
    with pytest.raises(links.BadLink):
        links.read_open(settings, token)  # nor does a survey token read as another purpose


# --- the service --------------------------------------------------------------------------------------------------


def test_the_first_answer_inserts_and_returns_the_promised_code(container: Container) -> None:
    c = container
    x = seed(c)
    survey = surveys.survey_for(c, x.message_id, NOW)
    assert survey == surveys.Survey(
        message_id=x.message_id, shop_id=x.shop_id, shop_name="Encore Coffee", shop_locale="en",
        customer_id=x.customer_id, first_name="Mina", locale="en", order_id="order-1", order_name="#1001", answer=None)
    answered = surveys.answer(c, x.message_id, 4, 8, "  Lovely beans.\r\nFast delivery.  ", NOW)
    assert (answered.code, answered.first) == ("THANKS-7Q2K", True)
    assert answered.survey.answer == surveys.Answer(4, 8, "Lovely beans.\nFast delivery.", NOW, NOW)
    assert rows(c) == [(x.shop_id, x.message_id, x.customer_id, "order-1", 4, 8, "Lovely beans.\nFast delivery.",
                        NOW, NOW)]
    assert surveys.survey_for(c, x.message_id, NOW) == answered.survey  # committed: a new session sees it


def test_answering_again_updates_the_same_row_and_returns_the_same_code(container: Container) -> None:
    c = container
    x = seed(c)
    first = surveys.answer(c, x.message_id, 2, 3, "The bag was torn.", NOW)
    later = NOW + timedelta(hours=3)
    again = surveys.answer(c, x.message_id, 5, 10, "   ", later)  # a blank comment is no comment
    assert (first.first, again.first) == (True, False)
    assert first.code == again.code == "THANKS-7Q2K"  # the same code, whatever the answer: never a second one
    assert again.survey.answer == surveys.Answer(5, 10, None, NOW, later)
    assert rows(c) == [(x.shop_id, x.message_id, x.customer_id, "order-1", 5, 10, None, NOW, later)]
    surveys.answer(c, x.message_id, 3, 0, "x" * surveys.MAX_COMMENT, later)  # exactly the limit is fine; 0 is an answer
    assert [r[4:6] for r in rows(c)] == [(3, 0)]

    y = seed(c, customer_id="cust-2", code=None, order_name=None)  # no reward promised, no known order
    answered = surveys.answer(c, y.message_id, 1, 5, None, NOW)
    assert (answered.code, answered.first, answered.survey.order_name) == (None, True, None)
    assert len(rows(c)) == 2


def test_an_invalid_answer_is_refused_and_writes_nothing(container: Container) -> None:
    c = container
    x = seed(c)
    for score in (0, 6, -1, 10, True, "3", 3.0, None):
        with pytest.raises(surveys.InvalidAnswer) as refused:
            surveys.answer(c, x.message_id, score, 7, "ok", NOW)  # type: ignore[arg-type]
        assert refused.value.field == "score" and "1 to 5" in str(refused.value)
    for nps in (-1, 11, 100, True, False, "9", 9.0, None):
        with pytest.raises(surveys.InvalidAnswer) as refused:
            surveys.answer(c, x.message_id, 3, nps, "ok", NOW)  # type: ignore[arg-type]
        assert refused.value.field == "nps" and "0 to 10" in str(refused.value)
    with pytest.raises(surveys.InvalidAnswer) as too_long:
        surveys.answer(c, x.message_id, 3, 7, "x" * (surveys.MAX_COMMENT + 1), NOW)
    assert too_long.value.field == "comment"
    assert rows(c) == []
    surveys.answer(c, x.message_id, 3, 7, "fine", NOW)
    state = rows(c)
    for score, nps in ((9, 7), (3, 12)):  # a bad re-answer leaves the first answer as it was
        with pytest.raises(surveys.InvalidAnswer):
            surveys.answer(c, x.message_id, score, nps, "changed", NOW + timedelta(hours=1))
    assert rows(c) == state


def test_unknown_unsent_and_redacted_have_no_survey(container: Container) -> None:
    c = container
    x = seed(c)
    pending = seed(c, customer_id="cust-2", status="pending")
    redacted = seed(c, customer_id="cust-3")
    with c.sessions() as s, s.begin():
        s.execute(update(t.Customer).where(t.Customer.external_id == "cust-3").values(redacted_at=NOW))
    for message_id in (x.message_id + 1000, pending.message_id, redacted.message_id):
        with pytest.raises(surveys.UnknownSurvey):
            surveys.survey_for(c, message_id, NOW)
        with pytest.raises(surveys.UnknownSurvey):
            surveys.answer(c, message_id, 5, 10, "great", NOW)
    assert rows(c) == []
    guest = seed(c, customer_id="guest-1", customer=False)  # a guest checkout: no customer row, still a survey
    assert surveys.survey_for(c, guest.message_id, NOW).first_name is None
    assert surveys.answer(c, guest.message_id, 4, 8, None, NOW).first


def test_a_survey_closes_when_its_link_expires_and_records_nothing(container: Container) -> None:
    c = container
    x = seed(c, locale="ko-KR")
    last = SENT + surveys.OPEN_FOR
    assert surveys.survey_for(c, x.message_id, last).answer is None  # open to the very end
    for at in (last + timedelta(seconds=1), SENT + timedelta(days=400)):
        with pytest.raises(surveys.SurveyClosed) as closed:
            surveys.survey_for(c, x.message_id, at)
        assert (closed.value.shop_name, closed.value.locale) == ("Encore Coffee", "ko-KR")
        with pytest.raises(surveys.SurveyClosed):
            surveys.answer(c, x.message_id, 5, 10, "late", at)
    assert rows(c) == []
    with c.sessions() as s:
        assert s.scalar(select(t.EventRow.id)) is None and s.scalar(select(t.FeedbackItem.id)) is None


# --- the routes ---------------------------------------------------------------------------------------------------


def test_the_page_asks_saves_and_thanks_with_the_code(container: Container, client: FlaskClient) -> None:
    c = container
    x = seed(c)
    url = path(c, x.message_id)
    page = client.get(url)
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert_secure(page)
    html = page.get_data(as_text=True)
    assert '<html lang="en">' in html and "How happy are you with your order #1001?" in html
    assert "Hi Mina, thank you for shopping at Encore Coffee." in html
    for n, label in enumerate(("Very unhappy", "Unhappy", "Okay", "Happy", "Very happy"), start=1):
        assert f'id="score-{n}" name="score" value="{n}" required>' in html and label in html
    assert "How likely are you to recommend Encore Coffee to a friend?" in html
    assert all(f'id="nps-{n}" name="nps" value="{n}" required>' in html for n in range(0, 11))
    assert "0 = not at all likely" in html and "10 = extremely likely" in html
    assert 'maxlength="2000"' in html and "THANKS-7Q2K" not in html  # the code comes with the answer
    csrf = csrf_of(html)
    assert csrf == links.form_token(c.settings, url.rsplit("/", 1)[1])
    assert rows(c) == []  # opening the page records nothing

    thanks = client.post(url, data={"csrf": csrf, "score": "4", "nps": "8", "comment": " Lovely <b>beans</b> "})
    assert thanks.status_code == 200
    assert_secure(thanks)
    html = thanks.get_data(as_text=True)
    assert "Thank you for your answer!" in html and '<p class="code" id="code">THANKS-7Q2K</p>' in html
    assert "Your answer: 4 / 5 (Happy)" in html and "Lovely &lt;b&gt;beans&lt;/b&gt;" in html
    assert "How likely you are to recommend us: 8 / 10" in html
    assert 'id="updated"' not in html
    assert [r[4:7] for r in rows(c)] == [(4, 8, "Lovely <b>beans</b>")]

    again = client.get(url).get_data(as_text=True)  # back on the page: the current answer, ready to change
    assert 'id="score-4" name="score" value="4" required checked>' in again and 'id="answered"' in again
    assert 'id="nps-8" name="nps" value="8" required checked>' in again and again.count(" checked>") == 2
    assert ">Lovely &lt;b&gt;beans&lt;/b&gt;</textarea>" in again
    changed = client.post(url, data={"csrf": csrf, "score": "2", "nps": "0", "comment": ""})
    html = changed.get_data(as_text=True)
    assert changed.status_code == 200 and 'id="updated"' in html and "THANKS-7Q2K" in html
    assert "Your answer: 2 / 5 (Unhappy)" in html and "How likely you are to recommend us: 0 / 10" in html
    assert [r[4:7] for r in rows(c)] == [(2, 0, None)]


def test_a_bad_form_is_refused_with_a_message_and_writes_nothing(container: Container, client: FlaskClient) -> None:
    c = container
    x = seed(c)
    url = path(c, x.message_id)
    csrf = csrf_of(client.get(url).get_data(as_text=True))
    for score in ("0", "6", "-1", "", "abc", "3.5", "٣", "1" * 5000):
        refused = client.post(url, data={"csrf": csrf, "score": score, "nps": "9", "comment": "kept"})
        html = refused.get_data(as_text=True)
        assert refused.status_code == 400 and 'role="alert"' in html, score
        assert "Please choose a score from 1 to 5." in html and ">kept</textarea>" in html
        assert 'id="nps-9" name="nps" value="9" required checked>' in html  # what was chosen stays chosen
        assert "THANKS-7Q2K" not in html
        assert_secure(refused)
    for nps in ("11", "-1", "", "x", "7.5", "٧", "9" * 5000):
        refused = client.post(url, data={"csrf": csrf, "score": "4", "nps": nps, "comment": "kept"})
        html = refused.get_data(as_text=True)
        assert refused.status_code == 400 and 'role="alert"' in html, nps
        assert "Please choose how likely you are to recommend us, from 0 to 10." in html
        assert 'id="score-4" name="score" value="4" required checked>' in html and ">kept</textarea>" in html
        assert not re.search(r'name="nps" value="\d+" required checked', html)  # nothing valid was chosen
    refused = client.post(url, data={"csrf": csrf, "comment": "no score at all"})
    assert refused.status_code == 400 and "Please choose a score from 1 to 5." in refused.get_data(as_text=True)
    long = client.post(url, data={"csrf": csrf, "score": "3", "nps": "5", "comment": "x" * 2001})
    assert long.status_code == 400 and "keep it to 2,000 characters or fewer" in long.get_data(as_text=True)
    for bad in ({"csrf": ""}, {"csrf": "0" * 64}, {"csrf": links.form_token(c.settings, "another-token")}):
        expired = client.post(url, data={"csrf": csrf, "score": "5", "nps": "10"} | bad)
        assert expired.status_code == 400 and "This form has expired" in expired.get_data(as_text=True)
    assert rows(c) == []


def test_tampered_unknown_unsent_and_redacted_links_show_the_link_error(container: Container,
                                                                          client: FlaskClient) -> None:
    c = container
    x = seed(c)
    other = seed(c, customer_id="cust-2")
    pending = seed(c, customer_id="cust-3", status="pending")
    redacted = seed(c, customer_id="cust-4")
    with c.sessions() as s, s.begin():
        s.execute(update(t.Customer).where(t.Customer.external_id == "cust-4").values(redacted_at=NOW))
    settings = c.settings
    token = path(c, x.message_id).rsplit("/", 1)[1]
    bad = ["x", "a.b", _forge(token, other.message_id), _forge(token, str(x.message_id)),
           _flip(token, token.rindex(".") + 1), token.split(".")[0],
           links.open_pixel_url(settings, x.message_id).rsplit("/", 1)[1].removesuffix(".gif"),  # another purpose
           urlsplit(links.preferences_url(settings, x.shop_id, x.customer_id)).path.rsplit("/", 1)[1]]
    bad += [path(c, m).rsplit("/", 1)[1] for m in (x.message_id + 1000, pending.message_id, redacted.message_id)]
    for b in bad:
        page = client.get(f"/s/{b}")
        assert page.status_code == 400 and "This link does not work" in page.get_data(as_text=True), b
        assert_secure(page)
        posted = client.post(f"/s/{b}", data={"csrf": links.form_token(settings, b), "score": "5", "nps": "10"})
        assert posted.status_code == 400 and "This link does not work" in posted.get_data(as_text=True)
    assert rows(c) == []


def test_an_expired_link_says_the_survey_has_closed_and_records_nothing(container: Container,
                                                                        client: FlaskClient) -> None:
    c = container
    ja = seed(c, customer_id="ja-1", locale="ja-JP")
    url = path(c, ja.message_id)
    csrf = csrf_of(client.get(url).get_data(as_text=True))  # the page served while the link was open
    c.clock = Clock(SENT + surveys.OPEN_FOR + timedelta(minutes=1))  # type: ignore[assignment]
    page = client.get(url, headers={"Accept-Language": "en"})
    html = page.get_data(as_text=True)
    assert page.status_code == 410 and '<html lang="ja">' in html and "このアンケートは終了しました" in html
    assert "Encore Coffee" in html and 'name="score"' not in html
    assert_secure(page)
    posted = client.post(url, data={"csrf": csrf, "score": "5", "nps": "10", "comment": "late"})
    assert posted.status_code == 410 and "このアンケートは終了しました" in posted.get_data(as_text=True)
    english = seed(c, customer_id="en-1", sent=c.clock.now() - surveys.OPEN_FOR - timedelta(days=1))
    html = client.get(path(c, english.message_id)).get_data(as_text=True)
    assert "This survey has closed" in html and "nothing was recorded" in html
    assert rows(c) == []


def test_the_page_speaks_the_customers_language(container: Container, client: FlaskClient) -> None:
    c = container
    ko = seed(c, customer_id="ko-1", locale="ko-KR", first_name="민아")
    ja = seed(c, customer_id="ja-1", locale=None, shop_locale="ja", first_name=None, order_name="#2002")
    html = client.get(path(c, ko.message_id)).get_data(as_text=True)
    assert '<html lang="ko">' in html and "주문 #1001에 얼마나 만족하시나요?" in html
    assert "민아님, Encore Coffee에서 쇼핑해 주셔서 감사합니다." in html and "매우 만족" in html
    assert "Encore Coffee을(를) 친구에게 추천할 가능성은 얼마나 되나요?" in html and "10 = 꼭 추천함" in html
    url = path(c, ja.message_id)
    html = client.get(url, headers={"Accept-Language": "ko"}).get_data(as_text=True)  # the shop's, not the browser's
    assert '<html lang="ja">' in html and "ご注文 #2002 の満足度はいかがですか？" in html and "とても不満" in html
    assert "Encore Coffeeを友人に薦める可能性はどのくらいありますか？" in html and "0 = まったく薦めない" in html
    refused = client.post(url, data={"csrf": csrf_of(html), "score": "7", "nps": "9"})
    assert refused.status_code == 400 and "1から5までの数字を選んでください。" in refused.get_data(as_text=True)
    refused = client.post(url, data={"csrf": csrf_of(html), "score": "5"})
    assert refused.status_code == 400 and "薦める可能性を0から10までの数字で選んでください。" in refused.get_data(as_text=True)
    thanks = client.post(url, data={"csrf": csrf_of(html), "score": "5", "nps": "9"}).get_data(as_text=True)
    assert "ご回答ありがとうございました！" in thanks and "あなたの回答：5 / 5（とても満足）" in thanks
    assert "薦める可能性：9 / 10" in thanks
    error = client.get("/s/nonsense", headers={"Accept-Language": "ja-JP,ja;q=0.9,en;q=0.5"})
    assert error.status_code == 400 and "このリンクは使用できません" in error.get_data(as_text=True)


def test_completing_a_survey_earns_the_programs_points_once_whatever_the_answer(container: Container) -> None:
    from app import loyalty
    from app.core.loyalty import Account

    x = seed(container)
    with container.sessions() as s, s.begin():
        loyalty.switch_on(s, x.shop_id, NOW - timedelta(days=30), actions={"survey": 50})
    surveys.answer(container, x.message_id, 1, 0, "Not good.", NOW)  # a low score earns the same: no reward for praise
    surveys.answer(container, x.message_id, 5, 10, None, NOW + timedelta(minutes=5))  # changing the answer: no more
    with container.sessions() as s:
        assert loyalty.balance(s, x.shop_id, x.customer_id) == Account(50, 0)
        assert loyalty.mismatches(s) == []


def test_a_written_comment_is_a_review_worth_the_programs_review_points_once(container: Container) -> None:
    from app import loyalty
    from app.core.loyalty import Account

    x = seed(container)
    with container.sessions() as s, s.begin():
        loyalty.switch_on(s, x.shop_id, NOW - timedelta(days=30), actions={"survey": 50, "review": 100})
    surveys.answer(container, x.message_id, 4, 8, "Fine.", NOW)  # too short to be a review
    with container.sessions() as s:
        assert loyalty.balance(s, x.shop_id, x.customer_id) == Account(50, 0)
    surveys.answer(container, x.message_id, 4, 8, "Lovely beans, arrived a day early.", NOW + timedelta(minutes=2))
    surveys.answer(container, x.message_id, 5, 9, "Lovely beans, arrived a day early!", NOW + timedelta(minutes=4))
    with container.sessions() as s:
        assert loyalty.balance(s, x.shop_id, x.customer_id) == Account(150, 0)  # the review counted once
        assert s.scalar(select(t.CustomerBadge.badge).where(t.CustomerBadge.customer_external_id == x.customer_id)) \
            == "first_review"
        assert loyalty.mismatches(s) == []


def test_a_nul_character_in_the_answer_is_refused_on_postgresql_and_writes_nothing(container: Container,
                                                                                 client: FlaskClient) -> None:
    """PostgreSQL's text cannot hold a NUL (a browser never sends one; a crafted post can). The database's refusal
    rolls the answer back and comes out as a 400 naming the problem, not a 500 (app/factory.py); SQLite stores
    the text as sent, so there the answer is simply recorded."""
    c = container
    url = path(c, seed(c).message_id)
    csrf = csrf_of(client.get(url).get_data(as_text=True))
    posted = client.post(url, data={"csrf": csrf, "score": "4", "nps": "8", "comment": "a\x00b"})
    if c.engine.dialect.name == "postgresql":
        assert posted.status_code == 400 and "NUL" in posted.get_json()["error"]
        assert rows(c) == []
    else:
        assert posted.status_code == 200 and [r[4:7] for r in rows(c)] == [(4, 8, "a\x00b")]
