"""The embedded admin shell and the JSON API behind it. Later capabilities add their pages here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, abort, current_app, g, jsonify, render_template
from sqlalchemy import func, select

from app import imports, inbox
from app.bootstrap import Container
from app.db.models import DataExport, Fulfillment, InboxRow, Order, Shop
from app.i18n import translations
from app.web.auth import session_token_required
from app.web.csp import admin_response

bp = Blueprint("admin", __name__)


def _c() -> Container:
    c: Container = current_app.extensions["encore"]
    return c


def render_shell(shop_domain: str, host: str, locale: str) -> Response:
    """The page Shopify admin frames; only that shop's admin may frame it."""
    c = _c()
    html = render_template("admin.html", api_key=c.settings.shopify_api_key, app_bridge_url=c.settings.app_bridge_url,
                           shop=shop_domain, host=host, _=translations(locale).gettext, locale=locale)
    return admin_response(html, (f"https://{shop_domain}", c.settings.shopify_admin_origin),
                          app_bridge_url=c.settings.app_bridge_url, email_preview=True)


def render_store_shell(shop_domain: str, locale: str, session_token: str, store_origin: str) -> Response:
    """The same page for a store's own admin (the WordPress plugin frames it, or a tab opens it): no App
    Bridge, Encore's own session token in the page (never cached, its address, which held a spent sign-in token,
    never a referrer), and only the store's origin may frame it."""
    html = render_template("admin.html", api_key="", app_bridge_url="", shop=shop_domain, host="",
                           session_token=session_token, _=translations(locale).gettext, locale=locale)
    return admin_response(html, (store_origin,), email_preview=True, private=True)


def _health(s: Any, shop_id: int) -> dict[str, int]:
    since = datetime.now(UTC) - timedelta(hours=24)
    rows = s.execute(select(InboxRow.status, func.count()).where(
        InboxRow.shop_id == shop_id, InboxRow.received_at >= since).group_by(InboxRow.status)).all()
    counts = {"pending": 0, "processing": 0, "done": 0, "parked": 0, "ignored": 0}
    counts.update({status: n for status, n in rows})
    counts["received"] = sum(n for _, n in rows)
    return counts


def _history(p: imports.Progress | None) -> dict[str, Any] | None:
    """The latest history import, as the admin's progress line shows it."""
    if p is None:
        return None
    total = p.total_orders if p.phase in ("orders", "done") else p.total_customers
    done = p.orders if p.phase in ("orders", "done") else p.customers
    return {"status": p.status, "phase": p.phase, "customers": p.customers, "orders": p.orders,
            "total_orders": p.total_orders, "total_customers": p.total_customers, "skipped": p.skipped,
            "error": p.error, "percent": None if not total else min(100, round(100 * done / total))}


@bp.get("/api/admin/overview")
@session_token_required
def overview() -> Response:
    shop_id: int = g.shop_id
    with _c().sessions() as s:
        shop = s.get(Shop, shop_id)
        assert shop is not None
        orders = s.scalars(select(Order).where(Order.shop_id == shop_id)
                           .order_by(Order.created_at.desc(), Order.id.desc()).limit(25)).all()
        tracking = {f.order_id: f for f in s.scalars(select(Fulfillment).where(
            Fulfillment.shop_id == shop_id, Fulfillment.order_id.in_([o.id for o in orders])))}
        parked = s.scalars(select(InboxRow).where(InboxRow.shop_id == shop_id, InboxRow.status == "parked")
                           .order_by(InboxRow.id.desc()).limit(20)).all()
        exports = s.scalars(select(DataExport).where(DataExport.shop_id == shop_id)
                            .order_by(DataExport.id.desc()).limit(20)).all()
        return jsonify(
            shop={"domain": shop.domain, "name": shop.name, "currency": shop.currency, "timezone": shop.timezone},
            orders=[{
                "id": o.external_id, "name": o.name, "status": o.status, "total": str(o.total), "currency": o.currency,
                "created_at": o.created_at.isoformat(),
                "tracking": {"number": tracking[o.id].tracking_number, "url": tracking[o.id].tracking_url}
                if o.id in tracking else None,
            } for o in orders],
            health=_health(s, shop_id),
            webhooks=None if shop.webhooks_checked_at is None else {
                **(shop.webhooks_health or {}), "checked_at": shop.webhooks_checked_at.isoformat()},
            history=_history(imports.latest(_c(), shop_id)),
            parked=[{"id": r.id, "topic": r.topic, "error": r.last_error, "received_at": r.received_at.isoformat()}
                    for r in parked],
            exports=[{"id": e.id, "customer_id": e.customer_external_id, "created_at": e.created_at.isoformat()}
                     for e in exports],
        )


@bp.post("/api/admin/history/retry")
@session_token_required
def retry_history() -> Response:
    if imports.retry(_c(), g.shop_id) is None:
        abort(404)
    return jsonify(ok=True)


@bp.post("/api/admin/inbox/<int:row_id>/retry")
@session_token_required
def retry(row_id: int) -> Response:
    if not inbox.retry_parked(_c(), g.shop_id, row_id):
        abort(404)
    return jsonify(ok=True)


@bp.get("/api/admin/exports/<int:export_id>")
@session_token_required
def download_export(export_id: int) -> Response:
    with _c().sessions() as s:
        export = s.scalars(select(DataExport).where(DataExport.id == export_id, DataExport.shop_id == g.shop_id)).first()
        if export is None:
            abort(404)
        response = jsonify(export.content)
    response.headers["Content-Disposition"] = f'attachment; filename="customer-data-{export_id}.json"'
    return response
