"""The follow-up page for low survey answers, and its JSON API under /api/admin/feedback.

The page opens like the loyalty page (framed by Shopify admin with App Bridge session tokens, or posted to from a
store's own admin with Encore's session token): the open items first, each with the customer, the order, both
scores, the comment and how the alert went, a Resolve action (who resolved it and a note saying what was done),
the resolved ones after them, and the shop's routing settings (where alerts go, what counts as low and high).

The work is `app.feedback`'s; this module parses, authenticates and answers. Every route is scoped to the shop of
the session token: another shop's item is not found. A refused write changes nothing and says why, per field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from sqlalchemy import select

from app import dispatch, feedback
from app.bootstrap import Container
from app.core.feedback import InvalidRouting, Routing
from app.db.models import Shop
from app.i18n import translations
from app.web import pages
from app.web.auth import session_token_required
from app.web.loyalty_admin import _invalid, _staff

bp = Blueprint("feedback_admin", __name__)


def _c() -> Container:
    c: Container = current_app.extensions["encore"]
    return c


def gettext(locale: str) -> Callable[[str], str]:
    return translations(locale, feedback.DOMAIN).gettext



# --- the page ----------------------------------------------------------------------------------------------------


def _page(shop: str, locale: str, *, host: str = "", session_token: str = "") -> str:
    """The page holds only labels; the items and settings come through the API."""
    return pages.render("feedback.html", shop, locale, gettext(locale), host=host, session_token=session_token)


pages.add_page(bp, "/admin/feedback", _page)


# --- the API -----------------------------------------------------------------------------------------------------


@bp.get("/api/admin/feedback")
@session_token_required
def list_items() -> Response | tuple[Response, int]:
    """The shop's items, open first (or only those of `status`), with how many of each there are."""
    c, status = _c(), request.args.get("status") or None
    try:
        found = feedback.items(c, g.shop_id, status)
    except ValueError as exc:
        return jsonify(error=str(exc)), 400
    with c.sessions() as s:
        timezone = s.scalar(select(Shop.timezone).where(Shop.id == g.shop_id)) or "UTC"
    return jsonify(items=[i.data() for i in found], counts=feedback.counts(c, g.shop_id), staff=_staff(),
                   timezone=timezone)


@bp.post("/api/admin/feedback/<int:item_id>/resolve")
@session_token_required
def resolve(item_id: int) -> Response | tuple[Response, int]:
    """Resolve an open item: the staff member (the Shopify user of the session token, else `staff`) and `note`."""
    c = _c()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return jsonify(error="a JSON object is expected"), 400
    try:
        done = feedback.resolve(c, g.shop_id, item_id, staff=_staff() or body.get("staff"), note=body.get("note"),
                                now=c.clock.now())
    except feedback.UnknownItem as exc:
        return jsonify(error=str(exc)), 404
    except feedback.AlreadyResolved as exc:
        return jsonify(error=str(exc)), 409
    except feedback.InvalidResolution as exc:
        return _invalid([{"field": exc.field, "message": str(exc)}])
    return jsonify(done.data())


def _settings(routing: Routing) -> dict[str, Any]:
    """The settings, with the secret the webhook's signatures are made with (the journeys' webhooks use it too)."""
    return {**routing.data(), "webhook_secret": dispatch.webhook_secret(_c(), g.shop_id)}


@bp.get("/api/admin/feedback/settings")
@session_token_required
def get_settings() -> Response:
    return jsonify(_settings(feedback.settings_of(_c(), g.shop_id)))


@bp.put("/api/admin/feedback/settings")
@session_token_required
def put_settings() -> Response | tuple[Response, int]:
    try:
        routing = feedback.save_settings(_c(), g.shop_id, request.get_json(silent=True))
    except InvalidRouting as exc:
        return _invalid([{"field": field, "message": message} for field, message in exc.problems.items()])
    return jsonify(_settings(routing))
