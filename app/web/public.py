"""The pages and endpoints customers reach from Encore's messages, with no login: the signed link is the key.

/p/<token> the preference center; /u/<token> RFC 8058 one-click unsubscribe (POST; a GET only asks, since mail
scanners prefetch links); /t/o/<token>.gif the open pixel; /t/c/<token> a tracked click; /s/<token> the
satisfaction survey; /sms/inbound the SMS provider's inbound webhook (STOP / START). Pages speak the customer's
language (the link's, the customer's, the shop's, else the browser's) and are served under a strict
Content-Security-Policy, never cached or referred.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import structlog
from babel.dates import get_month_names
from babel.numbers import format_decimal
from flask import Blueprint, Response, current_app, redirect, render_template, request

from app import preferences, surveys
from app.bootstrap import Container
from app.channels.sms import inbound_sms
from app.i18n import LOCALES, best_locale, translations
from app.links import (
    BadLink,
    form_token,
    preferences_url,
    read_click,
    read_open,
    read_preferences,
    read_survey,
    read_unsubscribe,
    valid_form_token,
)
from app.preferences import InvalidPreferences, Preferences, UnknownContact, UnknownMessage
from app.surveys import InvalidAnswer, Survey, SurveyClosed, UnknownSurvey

bp = Blueprint("public", __name__)
log = structlog.get_logger(__name__)
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "Referrer-Policy": "no-referrer",  # the address holds the customer's token
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
PIXEL = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
         b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")  # 1x1, transparent
TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def _c() -> Container:
    c: Container = current_app.extensions["encore"]
    return c


@bp.after_request
def _secure(response: Response) -> Response:
    response.headers.update(HEADERS)
    return response


def _language(*choices: str | None) -> str:
    """The first locale given, among the link's, the customer's and the shop's; else the browser's."""
    for choice in choices:
        if choice:
            return best_locale(choice)
    return request.accept_languages.best_match(LOCALES) or "en"


def _page(template: str, lang: str, status: int = 200, **context: Any) -> Response:
    t = translations(lang, "public")
    html = render_template(template, _=t.gettext, lang=lang, **context)
    return Response(html, status=status, mimetype="text/html")


def _link_error(status: int = 400, lang: str | None = None) -> Response:
    return _page("link_error.html", lang or _language(), status)


def _birthday(form: Any, current: date | None) -> date | None:
    month, day = form.get("birthday_month", ""), form.get("birthday_day", "")
    if not month and not day:
        return None
    if not (month.isdigit() and day.isdigit()):
        raise InvalidPreferences("a birthday needs both a month and a day")
    return preferences.birthday_from(int(month), int(day), current.year if current else None)


def _preference_page(token: str, lang: str, prefs: Preferences, status: int = 200, **context: Any) -> Response:
    return _page("preferences.html", lang, status, view="preferences", prefs=prefs,
                 csrf=form_token(_c().settings, token), action=request.path,
                 months=list(get_month_names("wide", context="stand-alone", locale=lang).items()), **context)


@bp.route("/p/<token>", methods=["GET", "POST"])
def preferences_page(token: str) -> Response:
    c = _c()
    try:
        link = read_preferences(c.settings, token)
        prefs = preferences.get(c, link.shop_id, link.customer_id)
    except (BadLink, UnknownContact):
        return _link_error(400)
    lang = _language(link.locale, prefs.locale, prefs.shop_locale)
    if request.method == "GET":
        return _preference_page(token, lang, prefs)
    _ = translations(lang, "public").gettext
    if not valid_form_token(c.settings, token, request.form.get("csrf")):
        return _preference_page(token, lang, prefs, 400, error=_("This form has expired. Please try again."))
    action = request.form.get("action", "save")
    if action == "unsubscribe":
        prefs = preferences.unsubscribe(c, link.shop_id, link.customer_id, source="preference center")
    elif action == "resubscribe":
        prefs = preferences.resubscribe(c, link.shop_id, link.customer_id, source="preference center")
    else:
        try:
            prefs = preferences.save(
                c, link.shop_id, link.customer_id, email=bool(request.form.get("email")),
                sms=bool(request.form.get("sms")), frequency=request.form.get("frequency", "normal"),
                birthday=_birthday(request.form, prefs.birthday))
        except InvalidPreferences:
            return _preference_page(token, lang, prefs, 400, error=_("Please choose a real date, or leave both empty."))
    return _preference_page(token, lang, prefs, saved=True)


def _unsubscribe_page(view: str, lang: str, prefs: Preferences) -> Response:
    manage = preferences_url(_c().settings, prefs.shop_id, prefs.customer_id, lang)
    return _page("preferences.html", lang, view=view, prefs=prefs, action=request.path, manage=manage)


@bp.route("/u/<token>", methods=["GET", "POST"])
def unsubscribe(token: str) -> Response:
    c = _c()
    try:
        link = read_unsubscribe(c.settings, token)
        prefs = preferences.get(c, link.shop_id, link.customer_id)
    except (BadLink, UnknownContact):
        return _link_error(400)
    lang = _language(prefs.locale, prefs.shop_locale)
    if request.method == "GET":  # only ask: a mail scanner's prefetch must not unsubscribe anyone
        return _unsubscribe_page("unsubscribed" if prefs.unsubscribed else "unsubscribe", lang, prefs)
    if request.form.get("List-Unsubscribe") != "One-Click":
        return _link_error(400, lang)
    source = "one-click" if link.message_id is None else f"one-click (message {link.message_id})"
    prefs = preferences.unsubscribe(c, link.shop_id, link.customer_id, source=source)
    return _unsubscribe_page("unsubscribed", lang, prefs)


@bp.get("/t/o/<token>.gif")
def open_pixel(token: str) -> Response:
    c = _c()
    try:
        message_id = read_open(c.settings, token)
        if request.method == "GET":
            preferences.record_open(c, message_id, c.clock.now())
    except (BadLink, UnknownMessage):
        pass  # the image is shown whatever: a broken image helps nobody
    return Response(PIXEL, mimetype="image/gif")


@bp.get("/t/c/<token>")
def click(token: str) -> Response:
    c = _c()
    try:
        link = read_click(c.settings, token)
    except BadLink:
        return _link_error(400)
    if request.method == "GET":  # a HEAD (a link checker) is not a person clicking
        try:
            preferences.record_click(c, link.message_id, link.target, c.clock.now())
        except UnknownMessage:
            pass  # the target was signed by Encore: still take the customer there
    return redirect(link.target, 302)  # type: ignore[return-value]


def _survey_page(token: str, lang: str, survey: Survey | None, status: int = 200, **context: Any) -> Response:
    _ = translations(lang, "public").gettext
    labels = {1: _("Very unhappy"), 2: _("Unhappy"), 3: _("Okay"), 4: _("Happy"), 5: _("Very happy")}
    context.setdefault("view", "survey")
    return _page("survey.html", lang, status, survey=survey, labels=labels, csrf=form_token(_c().settings, token),
                 action=request.path, max_comment=surveys.MAX_COMMENT, **context)


def _closed(token: str, closed: SurveyClosed) -> Response:
    """An expired survey link: said so in the customer's language (410 Gone), and nothing recorded."""
    return _survey_page(token, _language(closed.locale), None, 410, view="closed", shop_name=closed.shop_name)


def _number(raw: str) -> int:
    """A form's answer as a number (-1, which the service refuses, when it is not one)."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 3 else -1


@bp.route("/s/<token>", methods=["GET", "POST"])
def survey_page(token: str) -> Response:
    c = _c()
    try:
        survey = surveys.survey_for(c, read_survey(c.settings, token), c.clock.now())
    except SurveyClosed as closed:
        return _closed(token, closed)
    except (BadLink, UnknownSurvey):
        return _link_error(400)
    lang = _language(survey.locale, survey.shop_locale)
    if request.method == "GET":
        return _survey_page(token, lang, survey)
    _ = translations(lang, "public").gettext
    comment = request.form.get("comment", "")
    chosen, recommend = _number(request.form.get("score", "")), _number(request.form.get("nps", ""))
    if not valid_form_token(c.settings, token, request.form.get("csrf")):
        return _survey_page(token, lang, survey, 400, error=_("This form has expired. Please try again."),
                            chosen=chosen, recommend=recommend, comment=comment)
    try:
        answered = surveys.answer(c, survey.message_id, chosen, recommend, comment, c.clock.now())
    except InvalidAnswer as exc:
        error = {"score": _("Please choose a score from 1 to 5."),
                 "nps": _("Please choose how likely you are to recommend us, from 0 to 10.")}.get(exc.field) or (
            _("Your comment is too long. Please keep it to %(count)s characters or fewer.")
            % {"count": format_decimal(surveys.MAX_COMMENT, locale=lang)})
        return _survey_page(token, lang, survey, 400, error=error, chosen=chosen, recommend=recommend,
                            comment=comment)
    except SurveyClosed as closed:  # closed between the page and the answer
        return _closed(token, closed)
    except UnknownSurvey:  # redacted between the page and the answer
        return _link_error(400, lang)
    return _survey_page(token, lang, answered.survey, view="thanks", code=answered.code, first=answered.first)


@bp.post("/sms/inbound")
def sms_inbound() -> Response | tuple[str, int]:
    """The SMS provider's inbound webhook: STOP turns marketing by SMS off, START back on (Twilio answers HELP)."""
    c = _c()
    token = c.settings.sms_auth_token
    if not token:
        return "", 404
    query = f"?{request.query_string.decode()}" if request.query_string else ""
    params = list(request.form.items(multi=True))
    signature = request.headers.get("X-Twilio-Signature")
    decision = None
    for url in dict.fromkeys((c.settings.app_url + request.path + query, request.url)):
        decision = decision or inbound_sms(token, url, params, signature)
    if decision is None:
        return "", 403
    shop = request.args.get("shop", "")
    if decision.action in ("opt_out", "opt_in"):
        changed = preferences.sms_consent(c, decision.from_number, opt_in=decision.action == "opt_in",
                                          shop_id=int(shop) if shop.isdigit() else None,
                                          source=f"sms {decision.keyword or decision.action}")
        log.info("sms.inbound", action=decision.action, customers=changed)
    return Response(TWIML, mimetype="text/xml")
