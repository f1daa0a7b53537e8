"""Admin pages of their own beside the embedded admin (the analytics page, and any other page opened the same ways),
served in the two shells the loyalty page set out (`app.web.loyalty_admin`):

- inside Shopify admin: GET with `?shop=&host=`, App Bridge in the page for session tokens, only that shop's admin
  may frame it, in the shop's language, and back to the admin through Shopify's entry;
- from a store's own admin (WordPress): its Encore session token POSTed (never in an address) and carried on by the
  page, only the store's origin may frame it, and back by posting the token to /admin/home.

A page's template extends app/templates/admin_page.html (the head, App Bridge or the token, the header and the way
back); its module gives `render` the template and catalog and routes its GET and POST to `in_shopify_admin` and
`in_store_admin`, so the shells are written once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from flask import Blueprint, Response, abort, current_app, render_template, request, url_for
from sqlalchemy import select

from app.bootstrap import Container
from app.db.models import Shop
from app.i18n import best_locale, translations
from app.web.auth import shop_from_admin_token
from app.web.csp import admin_response
from app.wordpress import store_origin
from connectors.shopify import verify


@dataclass(frozen=True)
class NavPage:
    """A page the embedded admin's header links to: its blueprint (routes `page` and `store_page`), the catalog its
    label is translated in, the label, and the link's element id prefix."""

    blueprint: str
    domain: str
    label: str
    id: str


NAV = (NavPage("loyalty_admin", "loyalty_admin", "Loyalty", "loyalty"),
       NavPage("analytics_admin", "analytics_admin", "Analytics", "analytics"),
       NavPage("segments_admin", "segments_admin", "Segments", "segments"),
       NavPage("feedback_admin", "feedback_admin", "Follow-up", "feedback"))


def nav_context() -> dict[str, Any]:
    """What app/templates/nav_links.html needs: the pages, and each label's catalog in the admin's language."""
    return {"nav_pages": NAV, "nav_gettext": lambda domain, locale: translations(locale, domain).gettext}


class Page(Protocol):
    def __call__(self, shop: str, locale: str, *, host: str = "", session_token: str = "") -> str: ...


def _c() -> Container:
    c: Container = current_app.extensions["encore"]
    return c


def render(template: str, shop: str, locale: str, gettext: Callable[[str], str], *, host: str = "",
           session_token: str = "", **context: Any) -> str:
    """The page in either shell: App Bridge and the way back through Shopify when framed, else the session token."""
    c = _c()
    framed = not session_token
    return render_template(
        template, shop=shop, locale=locale, _=gettext, session_token=session_token, host=host,
        api_key=c.settings.shopify_api_key if framed else "", app_bridge_url=c.settings.app_bridge_url if framed else "",
        admin_url=url_for("shopify.app_home", embedded="1", shop=shop, host=host) if framed else "", **context)


def add_page(bp: Blueprint, path: str, page: Page) -> None:
    """An admin page's two routes on its blueprint: GET inside Shopify admin, in the shop's language (endpoint
    `page`), and POST from a store's own admin (WordPress), which posts its session token (never in an address)
    for the page to carry on (endpoint `store_page`)."""
    bp.add_url_rule(path, "page", lambda: in_shopify_admin(page), methods=["GET"])
    bp.add_url_rule(path, "store_page", lambda: in_store_admin(page), methods=["POST"])


def in_shopify_admin(page: Page) -> Response:
    """The GET of a page inside Shopify admin: only that shop's admin may frame it (`app.web.csp`)."""
    c = _c()
    shop = verify.sanitize_shop(request.args.get("shop"))
    if shop is None:
        abort(400, "shop must be a *.myshopify.com domain")
    with c.sessions() as s:
        locale = s.scalar(select(Shop.locale).where(Shop.platform == "shopify", Shop.domain == shop))
    html = page(shop, best_locale(locale), host=request.args.get("host", ""))
    return admin_response(html, (f"https://{shop}", c.settings.shopify_admin_origin),
                          app_bridge_url=c.settings.app_bridge_url)


def _store_shop() -> tuple[str, str, str]:
    """(domain, locale, token) of a store page's form post: Encore's own admin token, verified."""
    token = request.form.get("token", "")
    try:
        domain, shop_id = shop_from_admin_token(_c(), token)
    except verify.SessionTokenError:
        abort(401, "Your Encore session has expired. Open Encore again from your WordPress admin.")
    if shop_id is None:
        abort(401, "shop is not installed")
    return domain, best_locale(request.form.get("locale")), token


def _store_response(html: str, domain: str) -> Response:
    """A store admin's page: only the store's origin may frame it; it carries the session token (`app.web.csp`)."""
    return admin_response(html, (store_origin(domain),), private=True)


def in_store_admin(page: Page) -> Response:
    """The POST of a page from a store's own admin, with the session token it posted."""
    domain, locale, token = _store_shop()
    return _store_response(page(domain, locale, session_token=token), domain)
