"""The analytics admin: a page of its own beside the loyalty page, opened the same ways (framed by Shopify admin with
App Bridge session tokens, or from a store's own admin with Encore's session token posted to it), and the JSON API
behind it under /api/admin/analytics.

What the page shows comes from four places, read here and never recomputed: the shop's last analytics refresh
(`app.analytics.refresh`: repeat rate, cohorts, time between orders, the lifetime model's fit or why there is none),
the per-customer figures and predictions that refresh wrote (`customer_metrics`), the segments' sizes, and the proof
of value (`app.analytics.lift`: attributed orders and revenue next to the incremental lift measured on holdout
groups). The NPS trend is counted on each request from the survey answers (`app.analytics.nps`), month by month in
the shop's time zone: one grouped statement, and it moves as soon as an answer comes in.

Each chart's CSV (`app.web.analytics_csv`) is written from the very figures the overview returns, so a download
always says what the chart shows. Every route is scoped to the shop of the session token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, abort, current_app, g, jsonify, request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.analytics import lift, nps, refresh
from app.bootstrap import Container
from app.core.dates import zone
from app.db.models import AnalyticsRun, Customer, CustomerMetrics, Segment, Shop
from app.i18n import best_locale, translations
from app.web import analytics_csv, pages
from app.web.auth import session_token_required
from app.web.loyalty_admin import Form, _invalid

bp = Blueprint("analytics_admin", __name__)

DOMAIN = "analytics_admin"  # the page's Babel catalog (app/translations/<language>/LC_MESSAGES/analytics_admin.po)
PER_PAGE, MAX_PER_PAGE = 50, 200
SORTS: dict[str, Any] = {
    "customer": CustomerMetrics.customer_external_id, "orders": CustomerMetrics.orders,
    "revenue": CustomerMetrics.revenue, "first_order_at": CustomerMetrics.first_order_at,
    "last_order_at": CustomerMetrics.last_order_at, "rfm_segment": CustomerMetrics.rfm_segment,
    "p_alive": CustomerMetrics.p_alive, "expected_orders_90d": CustomerMetrics.expected_orders_90d,
    "expected_next_order_at": CustomerMetrics.expected_next_order_at, "predicted_clv": CustomerMetrics.predicted_clv,
}


def _c() -> Container:
    c: Container = current_app.extensions["encore"]
    return c


def gettext(locale: str) -> Callable[[str], str]:
    return translations(locale, DOMAIN).gettext


# --- the page ----------------------------------------------------------------------------------------------------


def _page(shop: str, locale: str, *, host: str = "", session_token: str = "") -> str:
    """The page holds only labels; its figures come through the API."""
    return pages.render("analytics.html", shop, locale, gettext(locale), host=host, session_token=session_token,
                        rfm_names=analytics_csv.rfm_names(gettext(locale)))


pages.add_page(bp, "/admin/analytics", _page)


# --- the figures -------------------------------------------------------------------------------------------------


def _shop(s: Session) -> Shop:
    shop = s.get(Shop, g.shop_id)
    assert shop is not None  # the session token named an installed shop
    return shop


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _run(s: Session) -> dict[str, Any] | None:
    """The newest refresh, whatever its state: the page says when one is running or the last one failed."""
    run = s.scalars(select(AnalyticsRun).where(AnalyticsRun.shop_id == g.shop_id)
                    .order_by(AnalyticsRun.id.desc()).limit(1)).first()
    if run is None:
        return None
    return {"id": run.id, "status": run.status, "started_at": _iso(run.started_at), "finished_at": _iso(run.finished_at),
            "error": run.error}


def segment_sizes(s: Session) -> list[dict[str, Any]]:
    return [{"key": x.key, "name": x.name, "kind": x.kind, "size": x.size, "refreshed_at": _iso(x.refreshed_at)}
            for x in s.scalars(select(Segment).where(Segment.shop_id == g.shop_id)
                               .order_by(Segment.size.desc(), Segment.name, Segment.id))]


@bp.get("/api/admin/analytics/overview")
@session_token_required
def overview() -> Response:
    """Everything the page's charts show, in one answer; money as decimal strings in the summary's currency."""
    now = _c().clock.now()
    with _c().sessions() as s:
        shop = _shop(s)
        return jsonify(
            shop={"domain": shop.domain, "name": shop.name, "currency": shop.currency,
                  "timezone": str(zone(shop.timezone)), "locale": best_locale(shop.locale)},
            run=_run(s), summary=refresh.latest(s, g.shop_id), nps=nps.trend(s, shop.id, shop.timezone, now),
            segments=segment_sizes(s), proof=lift.report(s, g.shop_id, now))


@bp.post("/api/admin/analytics/refresh")
@session_token_required
def ask_for_refresh() -> tuple[Response, int]:
    """A refresh soon, beside the nightly one (`refresh.request`: the next sweep runs it); `asked` is false when a
    run is under way already. The page polls the overview until a newer run is done."""
    c = _c()
    asked = refresh.request(c, g.shop_id, c.clock.now())
    with c.sessions() as s:
        return jsonify(asked=asked, run=_run(s)), 202


# --- customers with predictions ----------------------------------------------------------------------------------


def _customer_data(m: CustomerMetrics, email: str | None, first: str | None, last: str | None) -> dict[str, Any]:
    name = " ".join(p for p in (first, last) if p)
    return {"id": m.customer_external_id, "email": email, "name": name or None, "orders": m.orders,
            "revenue": str(m.revenue), "first_order_at": _iso(m.first_order_at), "last_order_at": _iso(m.last_order_at),
            "rfm": {"r": m.rfm_r, "f": m.rfm_f, "m": m.rfm_m, "segment": m.rfm_segment}, "p_alive": m.p_alive,
            "expected_orders_90d": m.expected_orders_90d, "expected_next_order_at": _iso(m.expected_next_order_at),
            "predicted_clv": None if m.predicted_clv is None else str(m.predicted_clv)}


def customers_query(shop_id: int, sort: str, descending: bool) -> Any:
    """The shop's customers with their figures, sorted (unknown values last either way, then by id); the store's
    name and email beside them unless the customer was redacted."""
    column, c = SORTS[sort], Customer
    return (select(CustomerMetrics, c.email, c.first_name, c.last_name)
            .outerjoin(c, (c.shop_id == CustomerMetrics.shop_id) & (c.external_id == CustomerMetrics.customer_external_id)
                       & c.redacted_at.is_(None))
            .where(CustomerMetrics.shop_id == shop_id)
            .order_by(column.is_(None), column.desc() if descending else column.asc(),
                      CustomerMetrics.customer_external_id))


def _listing() -> tuple[dict[str, Any], list[dict[str, str]]]:
    """page, per_page, sort and order of the query string, each checked."""
    form = Form(request.args.to_dict())
    page = form.whole("page", 1, 1_000_000, "page: a whole number from 1") if "page" in form.body else 1
    per_page = (form.whole("per_page", 1, MAX_PER_PAGE, f"per_page: a whole number from 1 to {MAX_PER_PAGE}")
                if "per_page" in form.body else PER_PAGE)
    sort = form.choice("sort", list(SORTS), "sort: one of " + ", ".join(SORTS)) if "sort" in form.body else "revenue"
    order = form.choice("order", ["asc", "desc"], "order: asc or desc") if "order" in form.body else "desc"
    return {"page": page, "per_page": per_page, "sort": sort, "order": order}, form.problems


@bp.get("/api/admin/analytics/customers")
@session_token_required
def customers() -> Response | tuple[Response, int]:
    """One page of the customers' figures and predictions, sorted by any of SORTS."""
    listing, problems = _listing()
    if problems:
        return _invalid(problems)
    page, per_page = listing["page"], listing["per_page"]
    with _c().sessions() as s:
        total = s.scalar(select(func.count()).select_from(CustomerMetrics).where(CustomerMetrics.shop_id == g.shop_id))
        rows = s.execute(customers_query(g.shop_id, listing["sort"], listing["order"] == "desc")
                         .limit(per_page).offset((page - 1) * per_page)).all()
        return jsonify(**listing, total=total or 0, pages=-(-(total or 0) // per_page), currency=_shop(s).currency,
                       customers=[_customer_data(*row) for row in rows])


def _customer_rows(c: Container, shop_id: int) -> Iterator[dict[str, Any]]:
    """Every customer, by revenue, read in batches from a session of its own (the CSV streams as it is read)."""
    with c.sessions() as s:
        for row in s.execute(customers_query(shop_id, "revenue", True).execution_options(yield_per=1000)):
            yield _customer_data(*row)


# --- CSV exports -------------------------------------------------------------------------------------------------


def _figures(name: str, s: Session, shop: Shop, now: datetime) -> Any:
    """What the export `name` is written from: the overview's own figures (customers: a stream of them)."""
    if name in ("repeat-rate", "cohorts"):
        return refresh.latest(s, shop.id)
    if name == "nps":
        return nps.trend(s, shop.id, shop.timezone, now)
    if name == "proof-of-value":
        return lift.report(s, shop.id, now)
    if name == "segments":
        return segment_sizes(s)
    return _customer_rows(_c(), shop.id)


@bp.get("/api/admin/analytics/export/<name>.csv")
@session_token_required
def export(name: str) -> Response:
    """One chart's figures as CSV, in the admin's language (`locale`, else the shop's), named for the shop's date."""
    if name not in analytics_csv.EXPORTS:
        abort(404, "no such export: one of " + ", ".join(analytics_csv.EXPORTS))
    now = _c().clock.now()
    with _c().sessions() as s:
        shop = _shop(s)
        tz = zone(shop.timezone)
        cells = analytics_csv.Cells(best_locale(request.args.get("locale") or shop.locale), shop.currency, tz)
        table = analytics_csv.EXPORTS[name](_figures(name, s, shop, now), cells)
    return analytics_csv.response(table, f"{name}-{now.astimezone(tz).date().isoformat()}.csv")
