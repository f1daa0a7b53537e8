"""The segments page and its JSON API under /api/admin/segments: the shop's segments with their sizes (the
merchant's rule-based ones, then the built-in RFM ones), creating, changing and deleting a segment, and a preview
of who some rules would hold for (how many, and the first 20) without saving anything.

The page opens like the loyalty page (framed by Shopify admin with App Bridge session tokens, or posted to from a
store's own admin with Encore's session token) and holds only labels and its rule builder; the data comes through
the API. The work is `app.segments`'s; this module parses, authenticates and answers. Every route is scoped to
the shop of the session token: another shop's segment is not found. A refused write changes nothing and says why,
with a message per bad rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, abort, current_app, g, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import segments
from app.bootstrap import Container
from app.core.rfm import RFM_LABELS
from app.core.segments import FIELDS, InvalidSegment
from app.db.models import Segment, Shop
from app.i18n import best_locale, translations
from app.tiers import tiers_of
from app.web import pages
from app.web.auth import session_token_required
from app.web.loyalty_admin import _invalid

bp = Blueprint("segments_admin", __name__)
PREVIEW = 20  # customers a preview shows


def _c() -> Container:
    c: Container = current_app.extensions["encore"]
    return c


def gettext(locale: str) -> Callable[[str], str]:
    return translations(locale, segments.DOMAIN).gettext



# --- the page ----------------------------------------------------------------------------------------------------


def _page(shop: str, locale: str, *, host: str = "", session_token: str = "") -> str:
    """The page holds labels and the rule builder's fields; the segments come through the API."""
    return pages.render("segments.html", shop, locale, gettext(locale), host=host, session_token=session_token,
                        fields={name: list(f.ops) for name, f in FIELDS.items()})


pages.add_page(bp, "/admin/segments", _page)


# --- the API -----------------------------------------------------------------------------------------------------


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, "a JSON object is expected")
    return body


def _locale(s: Session) -> str:
    """The admin's language (`?locale=`), else the shop's."""
    return best_locale(request.args.get("locale") or s.scalar(select(Shop.locale).where(Shop.id == g.shop_id)))


def _data(s: Session, segment: Segment, locale: str, used: segments.Usage | None = None) -> dict[str, Any]:
    titles, journeys = (segments.usage(s, g.shop_id) if used is None else used).get(segment.key, ([], []))
    return {"id": segment.id, "key": segment.key, "name": segments.display_name(segment, locale), "kind": segment.kind,
            "rules": segment.rules, "size": segment.size, "editable": segment.kind == "rule",
            "refreshed_at": segment.refreshed_at.isoformat() if segment.refreshed_at else None,
            "used_by": {"rewards": titles, "journeys": journeys}}


def _refused(exc: Exception) -> tuple[Response, int]:
    if isinstance(exc, InvalidSegment):
        return _invalid([{"field": p.field, "message": p.message} for p in exc.problems])
    if isinstance(exc, segments.CollectionsUnavailable):
        return jsonify(error=f"Not saved: {exc}. Try again when the store can be reached."), 502
    if isinstance(exc, segments.SegmentRefused):
        used = {"used_by": {"rewards": list(exc.rewards), "journeys": list(exc.journeys)}} if exc.rewards or exc.journeys \
            else {}
        return jsonify(error=str(exc), **used), 409
    if isinstance(exc, IntegrityError):  # the same key saved at the same moment elsewhere
        return _invalid([{"field": "key", "message": "key: another segment was saved with this key just now"}])
    abort(404, "no such segment")


REFUSED = (InvalidSegment, segments.CollectionsUnavailable, segments.SegmentRefused, IntegrityError,
           segments.UnknownSegment)


@bp.get("/api/admin/segments")
@session_token_required
def listing() -> Response:
    """Every segment with its size (the built-in RFM ones made on first look), and what the rule builder offers."""
    c = _c()
    try:
        with c.sessions() as s, s.begin():
            segments.sync_rfm(s, g.shop_id, c.clock.now())
    except IntegrityError:  # another request made them at the same moment
        pass
    with c.sessions() as s:
        locale = _locale(s)
        rows = s.scalars(select(Segment).where(Segment.shop_id == g.shop_id).order_by(Segment.kind.desc(), Segment.id))
        words = gettext(locale)
        used = segments.usage(s, g.shop_id)
        return jsonify(locale=locale, segments=[_data(s, x, locale, used) for x in rows],
                       fields={name: list(f.ops) for name, f in FIELDS.items()},
                       tiers=[{"key": t.key, "name": t.name} for t in tiers_of(s, g.shop_id)],
                       rfm=[{"key": label, "name": words(segments.RFM_NAMES[label])} for label in RFM_LABELS])


def _new_key(s: Session, name: object) -> str:
    """A key made from the name ("VIP spenders" -> "vip-spenders"; "segment" for a name in other letters), with a
    number when the shop has it already."""
    base = (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:56] if isinstance(name, str) else "") or "segment"
    taken = set(s.scalars(select(Segment.key).where(Segment.shop_id == g.shop_id, Segment.key.startswith(base))))
    return next(k for k in (base if n == 1 else f"{base}-{n}" for n in range(1, len(taken) + 2)) if k not in taken)


@bp.post("/api/admin/segments")
@session_token_required
def create() -> Response | tuple[Response, int]:
    """A new segment: `name`, `rules` and optionally `key` (else made from the name); refreshed at once."""
    body, c = _body(), _c()
    try:
        with c.sessions() as s, s.begin():
            key = body["key"] if body.get("key") not in (None, "") else _new_key(s, body.get("name"))
            segment = segments.create(s, g.shop_id, key, body.get("name"), body.get("rules"), c.clock.now(),
                                      collections=segments.store_collections(c, g.shop_id))
            return jsonify(_data(s, segment, _locale(s))), 201
    except REFUSED as exc:
        return _refused(exc)


@bp.put("/api/admin/segments/<int:segment_id>")
@session_token_required
def update(segment_id: int) -> Response | tuple[Response, int]:
    """A new `name` and/or `rules`; the key stays (journeys name it). Refreshed at once."""
    body, c = _body(), _c()
    unknown = sorted(set(body) - {"name", "rules"})
    if unknown:
        return _invalid([{"field": k, "message": f"{k}: only the name and the rules of a segment can change"}
                         for k in unknown])
    try:
        with c.sessions() as s, s.begin():
            segment = segments.update(s, g.shop_id, segment_id, c.clock.now(), name=body.get("name"),
                                      data=body.get("rules"), collections=segments.store_collections(c, g.shop_id))
            return jsonify(_data(s, segment, _locale(s)))
    except REFUSED as exc:
        return _refused(exc)


@bp.delete("/api/admin/segments/<int:segment_id>")
@session_token_required
def delete(segment_id: int) -> Response | tuple[Response, int]:
    try:
        with _c().sessions() as s, s.begin():
            segments.remove(s, g.shop_id, segment_id)
    except REFUSED as exc:
        return _refused(exc)
    return jsonify(deleted=segment_id)


@bp.post("/api/admin/segments/preview")
@session_token_required
def preview() -> Response | tuple[Response, int]:
    """How many customers `rules` would hold for now, and the first 20: nothing is saved."""
    body, c = _body(), _c()
    try:
        with c.sessions() as s:
            found = segments.preview(s, g.shop_id, body.get("rules"), c.clock.now(),
                                     collections=segments.store_collections(c, g.shop_id), limit=PREVIEW)
    except REFUSED as exc:
        return _refused(exc)
    return jsonify(size=found.size, customers=found.customers)
