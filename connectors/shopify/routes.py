"""Shopify install and OAuth: managed install with token exchange, the authorization-code grant for
installs started outside the admin, and the embedded app's entry page. The only Flask import here."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import structlog
from flask import Blueprint, Response, current_app, redirect, render_template, request
from sqlalchemy import update

from app.bootstrap import Container
from app.db.engine import rowcount
from app.db.models import InstallNonce, Shop
from app.shops import install_shopify
from app.web.admin import render_shell
from app.web.auth import shop_from_token
from app.web.csp import admin_response
from connectors.shopify import verify
from connectors.shopify.client import ShopifyApiError

bp = Blueprint("shopify", __name__, url_prefix="/shopify")
log = structlog.get_logger(__name__)
NONCE_TTL = timedelta(minutes=10)


def _c() -> Container:
    c: Container = current_app.extensions["encore"]
    return c


def _bad(message: str, status: int = 400) -> Response:
    return Response(message, status=status, mimetype="text/plain")


@bp.get("/install")
def install() -> Response:
    """Start the authorization-code grant; refuse anything but a *.myshopify.com shop before any request."""
    c = _c()
    shop = verify.sanitize_shop(request.args.get("shop"))
    if shop is None:
        return _bad("shop must be a *.myshopify.com domain")
    nonce = secrets.token_urlsafe(24)
    with c.sessions() as s, s.begin():
        s.add(InstallNonce(nonce=nonce, platform="shopify", shop_domain=shop,
                           expires_at=datetime.now(UTC) + NONCE_TTL))
    url = c.shopify.authorize_url(shop, scopes=c.settings.shopify_scopes,
                                  redirect_uri=f"{c.settings.app_url}/shopify/callback", state=nonce)
    return redirect(url)  # type: ignore[return-value]


def _consume_nonce(c: Container, nonce: str, shop: str) -> bool:
    """Single use: the first callback with this state wins, any replay finds it spent."""
    now = datetime.now(UTC)
    with c.sessions() as s, s.begin():
        used = rowcount(s.execute(update(InstallNonce).where(
            InstallNonce.nonce == nonce, InstallNonce.shop_domain == shop, InstallNonce.used_at.is_(None),
            InstallNonce.expires_at > now).values(used_at=now)))
    return bool(used)


@bp.get("/callback")
def callback() -> Response:
    c = _c()
    params = request.args.to_dict(flat=True)
    for key in request.args:
        if key.endswith("[]"):
            params[key] = request.args.getlist(key)  # type: ignore[assignment]
    shop = verify.verify_query(params, c.settings.shopify_api_secrets)
    if shop is None:
        return _bad("invalid signature, timestamp or shop", 401)
    if not _consume_nonce(c, params.get("state", ""), shop):
        return _bad("unknown, expired or already used state", 401)
    try:
        tokens = c.shopify.exchange_code(shop, params.get("code", ""))
    except ShopifyApiError as exc:
        log.warning("install_code_refused", shop=shop, error=str(exc))
        return _bad("Shopify refused the authorization code", 401)
    install_shopify(c, shop, tokens)
    host = params.get("host", "")
    return redirect(f"{c.settings.shopify_admin_origin}/store/{shop.split('.')[0]}/apps/{c.settings.shopify_api_key}"
                    if not host else f"{c.settings.app_url}/shopify/app?{urlencode({'shop': shop, 'host': host})}")  # type: ignore[return-value]


@bp.get("/app")
def app_home() -> Response:
    """The embedded entry: validate the ID token, install by token exchange if needed, render the shell."""
    c = _c()
    id_token = request.args.get("id_token", "")
    shop_param = verify.sanitize_shop(request.args.get("shop"))
    if not id_token:
        if request.args.get("embedded") == "1" or shop_param is None:
            return bounce()
        return redirect(f"{c.settings.app_url}/shopify/install?{urlencode({'shop': shop_param})}")  # type: ignore[return-value]
    try:
        shop, shop_id = shop_from_token(c, id_token)
    except verify.SessionTokenError:
        return bounce()
    if shop_id is None:
        try:
            install_shopify(c, shop, c.shopify.exchange_id_token(shop, id_token))
        except ShopifyApiError as exc:
            log.warning("token_exchange_failed", shop=shop, error=str(exc))
            return _bad("Shopify refused the token exchange; reload the app", 401)
    with c.sessions() as s:
        locale = s.query(Shop.locale).filter(Shop.platform == "shopify", Shop.domain == shop).scalar() or "en"
    return render_shell(shop, request.args.get("host", ""), locale)


def bounce() -> Response:
    """A page that lets App Bridge fetch a fresh ID token and reload (Shopify's session-token bounce); its script is
    static/bounce.js, as the admin pages' policy (`app.web.csp`) runs no inline script."""
    c = _c()
    html = render_template("bounce.html", api_key=c.settings.shopify_api_key, app_bridge_url=c.settings.app_bridge_url)
    return admin_response(html, (c.settings.shopify_admin_origin, "https://*.myshopify.com"),
                          app_bridge_url=c.settings.app_bridge_url)
