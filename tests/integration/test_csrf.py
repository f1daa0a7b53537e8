"""Cross-site request forgery on every form that is not protected by an admin session token in a header.

Such a form is either a signed link's page (survey, preference center, unsubscribe), a storefront page behind the
app proxy's signature (referral landing), a page posted from a store's own admin with Encore's session token in
the form, or WooCommerce's key callback. A post another site could forge (no CSRF token, a made-up one, the
token of another link, a forged link, signature or session token, a callback Encore never asked for) is refused
with 400/401/403 and writes nothing, in either shop; the same post made properly does write (the control)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.bootstrap import Container
from app.links import form_token, preferences_url, survey_url, unsubscribe_url
from app.web.auth import issue_admin_token
from tests.fakes import FakeStorePlatform
from tests.integration.test_storefront_proxy import signed
from tests.integration.test_surveys import NOW
from tests.integration.test_tenant_isolation import ROUTES, STORE_PAGE, Shop, _populate, snapshot
from tests.journeys import Clock

REFUSED = (400, 401, 403)


@pytest.fixture
def shops(container: Container, store: FakeStorePlatform) -> tuple[Shop, Shop]:
    container.clock = Clock(NOW)  # type: ignore[assignment]  # the day after the survey was sent: it is open
    return _populate(container, "zqa", "71001", store), _populate(container, "bob", "72002", store)


def everything(c: Container, shops: tuple[Shop, Shop]) -> list[dict[str, list[str]]]:
    return [snapshot(c, s.id) for s in shops]


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def forged_posts(c: Container, a: Shop, b: Shop) -> dict[str, tuple[str, dict[str, str]]]:
    """name -> (path, form) of each forged post; none of them may change anything."""
    settings = c.settings
    survey, prefs = token_of(survey_url(settings, a.message)), token_of(preferences_url(settings, a.id, a.customer))
    other_survey = token_of(survey_url(settings, b.message))
    other_prefs = token_of(preferences_url(settings, b.id, b.customer))
    unsub = token_of(unsubscribe_url(settings, a.id, a.customer))
    answer = {"score": "1", "nps": "0", "comment": "forged"}
    save = {"action": "unsubscribe", "email": "", "sms": ""}
    return {
        "survey, no token": (f"/s/{survey}", answer),
        "survey, made-up token": (f"/s/{survey}", answer | {"csrf": "0" * 64}),
        "survey, another survey's token": (f"/s/{survey}", answer | {"csrf": form_token(settings, other_survey)}),
        "survey, the preference form's token": (f"/s/{survey}", answer | {"csrf": form_token(settings, prefs)}),
        "survey, forged link": (f"/s/{survey[:-4]}AAAA", answer | {"csrf": form_token(settings, survey[:-4] + "AAAA")}),
        "survey, non-ASCII token": (f"/s/{survey}", answer | {"csrf": "é" * 64}),  # once a 500 (compare_digest)
        "preferences, no token": (f"/p/{prefs}", save),
        "preferences, empty token": (f"/p/{prefs}", save | {"csrf": ""}),
        "preferences, another customer's token": (f"/p/{prefs}", save | {"csrf": form_token(settings, other_prefs)}),
        "preferences, the survey's token": (f"/p/{prefs}", save | {"csrf": form_token(settings, survey)}),
        "unsubscribe, not one-click": (f"/u/{unsub}", {"action": "unsubscribe"}),
        "unsubscribe, forged link": (f"/u/{unsub[:-4]}AAAA", {"List-Unsubscribe": "One-Click"}),
        "unsubscribe, a preference link": (f"/u/{prefs}", {"List-Unsubscribe": "One-Click"}),
        "referral landing, forged signature": (
            f"/proxy/r/{a.ids['code']}?{signed(None, shop=a.domain, secret='not-the-app-secret')}",
            {"email": "forged@example.com"}),
        "referral landing, non-ASCII signature": (f"/proxy/r/{a.ids['code']}?shop={a.domain}&signature=%C3%A9",
                                                  {"email": "forged@example.com"}),
        "referral landing, no signature": (f"/proxy/r/{a.ids['code']}?shop={a.domain}", {"email": "forged@example.com"}),
        "woocommerce callback, no request of Encore's": (
            "/woocommerce/callback", {"user_id": "nonce.signature", "consumer_key": "ck_x", "consumer_secret": "cs_x"}),
    }


def test_every_forged_form_post_is_refused_and_writes_nothing(client: FlaskClient, container: Container,
                                                              shops: tuple[Shop, Shop]) -> None:
    a, b = shops
    before = everything(container, shops)
    for name, (path, form) in forged_posts(container, a, b).items():
        response = client.post(path, data=form)
        assert response.status_code in REFUSED, (name, response.status_code)
        assert everything(container, shops) == before, name


def test_the_woocommerce_callback_refuses_a_forged_json_post(client: FlaskClient, container: Container,
                                                             shops: tuple[Shop, Shop]) -> None:
    before = everything(container, shops)
    for body in ({"user_id": "nonce.signature", "consumer_key": "ck_x", "consumer_secret": "cs_x"}, {}, [1], "x",
                 {"user_id": "nonce.é\ud800", "consumer_key": "ck_x", "consumer_secret": "cs_x"}):
        response = client.post("/woocommerce/callback", json=body)
        assert response.status_code == 401, body
    assert everything(container, shops) == before


@pytest.mark.parametrize("endpoint", sorted(e for e, kind in ROUTES.items() if kind == STORE_PAGE))
def test_a_store_admin_page_posted_with_a_forged_token_is_refused(app: Flask, client: FlaskClient,
                                                                  container: Container, shops: tuple[Shop, Shop],
                                                                  endpoint: str) -> None:
    a, _ = shops
    [rule] = [r for r in app.url_map.iter_rules() if r.endpoint == endpoint]
    real = issue_admin_token(container, a.id, a.domain)
    body, _, signature = real.rpartition(".")
    before = everything(container, shops)
    for token in ("", "x", f"{body}.{signature[::-1]}", real + "x", f"{body}."):
        response = client.post(rule.rule, data={"token": token, "shop": a.domain})
        assert response.status_code in REFUSED, (endpoint, token, response.status_code)
        assert a.domain not in response.get_data(as_text=True)
    assert everything(container, shops) == before
    assert client.post(rule.rule, data={"token": real}).status_code == 200  # the control: the real token opens it


def test_the_same_posts_made_properly_do_write(client: FlaskClient, container: Container,
                                               shops: tuple[Shop, Shop]) -> None:
    """The control: with the link's own form token the answer and the preferences are saved, so the refusals
    above are the CSRF check's and not some other failure."""
    a, _ = shops
    settings = container.settings
    survey, prefs = token_of(survey_url(settings, a.message)), token_of(preferences_url(settings, a.id, a.customer))
    before = snapshot(container, a.id)
    posts: list[tuple[str, dict[str, Any]]] = [
        (f"/s/{survey}", {"score": "4", "nps": "9", "comment": "fine", "csrf": form_token(settings, survey)}),
        (f"/p/{prefs}", {"action": "unsubscribe", "csrf": form_token(settings, prefs)}),
    ]
    for path, form in posts:
        after_previous = snapshot(container, a.id)
        assert client.post(path, data=form).status_code == 200, path
        assert snapshot(container, a.id) != after_previous, path
    assert snapshot(container, a.id) != before
