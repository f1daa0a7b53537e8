"""The referral program's pages and API.

Storefront, `/proxy/r/<code>` here, reached through Shopify's app proxy (`/apps/encore/r/<code>` on the store)
or the WordPress plugin's signed route (`?encore_ref=<code>` on the store redirects to it): the friend's landing
page, in the shopper's language (the `locale` query, else the shop's), with the offer and an
email form; posting the email gives the friend their first-order code and a link that applies it. A code that
does not exist, or a program that has ended, still lets the friend go on to the store (200, with a notice): a
mistyped link must not look like a broken shop. The form carries no CSRF token on purpose: Shopify's proxy
strips cookies, and all a forged post could do is claim an offer for an address the forger typed.

Admin (session token): the program's settings, the list of referrals with why any was blocked, and a staff
override that rewards a blocked referral anyway.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Blueprint, Response, abort, current_app, g, jsonify, render_template, request
from sqlalchemy import select

from app import referrals, shops
from app.bootstrap import Container
from app.core.referrals import ReferralError, mask_email
from app.db.models import Referral, Shop
from app.i18n import LOCALES, best_locale, translations
from app.web import inputs
from app.web.auth import session_token_required
from app.web.proxy import Refused, refused, shopper
from app.web.public import HEADERS

bp = Blueprint("referrals", __name__)
bp.register_error_handler(Refused, refused)
STATUSES = ("invited", "ordered", "rewarded", "blocked", "void")
PAGE = 200


def _c() -> Container:
    c: Container = current_app.extensions["encore"]
    return c


# --- the friend's landing page -------------------------------------------------------------------------------


def _language(shop_locale: str | None) -> str:
    for choice in (request.args.get("locale"), shop_locale):
        if choice:
            return best_locale(choice)
    return request.accept_languages.best_match(LOCALES) or "en"


def _page(lang: str, status: int = 200, **context: Any) -> Response:
    t = translations(lang, referrals.DOMAIN)
    html = render_template("referral.html", _=t.gettext, lang=lang, **context)
    response = Response(html, status=status, mimetype="text/html")
    response.headers.update(HEADERS)
    return response


@bp.route("/proxy/r/<code>", methods=["GET", "POST"])
def landing(code: str) -> Response:
    who = shopper(logged_in=False)
    c = _c()
    with c.sessions() as s:
        shop = s.get(Shop, who.shop_id)
        assert shop is not None  # shopper() found it installed
        lang = _language(shop.locale)
        view = referrals.landing(s, who.shop_id, "" if inputs.NUL in code else code, lang)  # NUL: no such code
    context: dict[str, Any] = {"shop_name": view.shop_name, "store_url": view.store_url, "offer": view.offer}
    if not view.enabled:
        return _page(lang, view="ended", **context)
    if not view.known:
        return _page(lang, view="unknown", **context)
    if request.method == "GET":
        return _page(lang, view="offer", **context)
    return _claim(c, who.shop_id, code, lang, context)


def _claim(c: Container, shop_id: int, code: str, lang: str, context: dict[str, Any]) -> Response:
    _ = translations(lang, referrals.DOMAIN).gettext
    email = request.form.get("email", "")
    try:
        if inputs.NUL in email:  # no address has one, and PostgreSQL's text cannot hold one
            raise referrals.InvalidEmail("please enter a valid email address")
        got = referrals.claim(c, shop_id, code, email, c.clock.now(), lambda sid: shops.store_platform(c, sid))
    except referrals.InvalidEmail:
        return _page(lang, 422, view="offer", email=email, error=_("Please enter a valid email address."), **context)
    except referrals.OwnReferral:
        return _page(lang, 422, view="offer", email=email, error=_(
            "This is your own referral link. Share it with your friends, and thank you!"), **context)
    except referrals.ProgramOff:
        return _page(lang, view="ended", **context)
    except referrals.UnknownCode:
        return _page(lang, view="unknown", **context)
    if got.status != "issued":
        return _page(lang, view="later", email=email, **context)
    return _page(lang, view="claimed", code=got.friend_code, shop_now=got.shop_now, **context)


# --- admin ---------------------------------------------------------------------------------------------------


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, "a JSON object is expected")
    return body


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def _row(r: Referral) -> dict[str, Any]:
    reward = None
    if r.reward_points is not None or r.reward_code is not None:
        reward = {"points": r.reward_points, "code": r.reward_code}
    override = None if r.overridden_by is None else {"staff": r.overridden_by, "note": r.override_note}
    return {"id": r.id, "status": r.status, "referrer": r.referrer_external_id, "referral_code": r.referral_code,
            "friend_email": mask_email(r.friend_email), "friend_customer": r.friend_customer_external_id,
            "friend_code": r.friend_code, "friend_code_status": r.friend_code_status,
            "order": r.order_external_id, "blocked_reason": r.blocked_reason, "detail": r.detail, "reward": reward,
            "override": override, "created_at": _iso(r.created_at), "due_at": _iso(r.due_at),
            "rewarded_at": _iso(r.rewarded_at)}


@bp.get("/api/admin/referrals")
@session_token_required
def list_referrals() -> Any:
    status = request.args.get("status")
    q = select(Referral).where(Referral.shop_id == g.shop_id)
    if status:
        if status not in STATUSES:
            abort(400, f"status is one of {', '.join(STATUSES)}")
        q = q.where(Referral.status == status)
    with _c().sessions() as s:
        rows = s.scalars(q.order_by(Referral.created_at.desc(), Referral.id.desc()).limit(PAGE))
        return jsonify(referrals=[_row(r) for r in rows])


@bp.post("/api/admin/referrals/<int:referral_id>/override")
@session_token_required
def override(referral_id: int) -> Any:
    body, c = _body(), _c()
    staff, note = body.get("staff"), body.get("note")
    if not isinstance(staff, str) or not isinstance(note, str):
        abort(400, "an override names the staff member (staff) and says why (note)")
    with c.sessions() as s:
        if s.scalar(select(Referral.id).where(Referral.id == referral_id, Referral.shop_id == g.shop_id)) is None:
            abort(404, f"no referral {referral_id}")
    try:
        referrals.override(c, g.shop_id, referral_id, staff=staff, note=note, now=c.clock.now())
    except ReferralError as exc:
        return jsonify(error=str(exc)), 409 if note.strip() and staff.strip() else 400
    with c.sessions() as s:
        found = s.get(Referral, referral_id)
        assert found is not None
        return jsonify(_row(found))


@bp.get("/api/admin/referrals/program")
@session_token_required
def get_program() -> Any:
    with _c().sessions() as s:
        return jsonify(referrals.program_data(referrals.program(s, g.shop_id)))


def _int(body: dict[str, Any], name: str, default: int | None) -> int | None:
    value = body.get(name, default)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise ReferralError(f"{name} is a whole number")


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value)) if not isinstance(value, bool) else None
    except InvalidOperation:
        raise ReferralError("the friend's offer value is a number") from None


@bp.put("/api/admin/referrals/program")
@session_token_required
def put_program() -> Any:
    body, c = _body(), _c()
    try:
        with c.sessions() as s, s.begin():
            row = referrals.configure(
                s, g.shop_id, enabled=bool(body.get("enabled", False)), friend_kind=str(body.get("friend_kind", "")),
                friend_value=_decimal(body.get("friend_value")),
                friend_valid_days=_int(body, "friend_valid_days", 30) or 0,
                referrer_points=_int(body, "referrer_points", None),
                referrer_reward_id=_int(body, "referrer_reward_id", None), wait_days=_int(body, "wait_days", 30) or 0,
                cap_per_referrer=_int(body, "cap_per_referrer", None),
                cap_window_days=_int(body, "cap_window_days", 30) or 0,
                holdout_percent=_int(body, "holdout_percent", None), now=c.clock.now())
            data = referrals.program_data(row)
    except ReferralError as exc:
        return jsonify(error=str(exc)), 400
    return jsonify(data)
