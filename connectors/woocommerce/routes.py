"""Connecting a WooCommerce store through wc-auth, and the admin the WordPress plugin opens. The only Flask
import in the folder."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, redirect, request

from app import connections, wordpress
from app.bootstrap import Container
from app.net import UnsafeStoreUrl, check_store_url
from app.web.admin import render_store_shell
from app.web.auth import issue_admin_token

bp = Blueprint("woocommerce", __name__, url_prefix="/woocommerce")


def _c() -> Container:
    c: Container = current_app.extensions["encore"]
    return c


@bp.get("/connect")
def connect() -> Response:
    """Send the merchant to their store's wc-auth page, for a store URL that is safe to call."""
    c = _c()
    try:
        store_url = check_store_url(request.args.get("store_url", ""), development=c.settings.development)
    except UnsafeStoreUrl as exc:
        return Response(str(exc), status=400, mimetype="text/plain")
    return redirect(connections.start(c, store_url))  # type: ignore[return-value]


@bp.post("/callback")
def callback() -> Response:
    """WooCommerce POSTs the new keys here; it deletes them unless the answer is exactly 200, so only keys
    Encore keeps get a 200."""
    try:
        connections.accept_keys(_c(), request.get_json(silent=True))
    except connections.ConnectRefused as exc:
        return Response(str(exc), status=401, mimetype="text/plain")
    return Response("connected", status=200, mimetype="text/plain")


@bp.get("/connected")
def connected() -> Response:
    ok = request.args.get("success") == "1"
    text = "Your store is connected to Encore." if ok else "The store did not grant access; nothing was connected."
    return Response(text, status=200 if ok else 400, mimetype="text/plain")


@bp.get("/admin")
def admin() -> Response:
    """The admin for a store, opened from the WordPress plugin with a short-lived, single-use signed token
    (`app/wordpress.py`); the page gets Encore's own session token instead."""
    c = _c()
    try:
        signed_in = wordpress.sign_in(c, request.args.get("token", ""))
    except wordpress.SignInRefused as exc:
        response = Response(str(exc), status=401, mimetype="text/plain")
        response.headers["Cache-Control"] = "no-store"
        return response
    token = issue_admin_token(c, signed_in.shop_id, signed_in.domain)
    return render_store_shell(signed_in.domain, signed_in.locale, token, wordpress.store_origin(signed_in.domain))
