"""The development outbox: where the embedded default's captured emails can be read, as customers would get
them. Only in development and only when no SMTP server is set (so email really is captured): elsewhere every
route is 404. An email's HTML is served on its own URL under a `sandbox` Content-Security-Policy and framed in a
sandboxed iframe, so nothing in it runs. The outbox pages themselves run under the admin pages' policy
(app/web/csp.py), framed by nobody."""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, render_template

from app.bootstrap import Container
from app.channels.outbox import list_messages, read_message
from app.web import csp

bp = Blueprint("outbox", __name__, url_prefix="/dev/outbox")
SANDBOX = "sandbox; default-src 'none'; img-src data: https: http:; style-src 'unsafe-inline'"


def _folder() -> str:
    c: Container = current_app.extensions["encore"]
    if not c.settings.development or c.settings.smtp_host:
        abort(404)
    return c.settings.outbox_dir


@bp.get("")
def index() -> Response:
    return csp.admin_response(render_template("outbox.html", messages=list_messages(_folder(), limit=200),
                                              message=None), ())


@bp.get("/<message_id>")
def show(message_id: str) -> Response:
    message = read_message(_folder(), message_id)
    if message is None:
        abort(404)
    return csp.admin_response(render_template("outbox.html", messages=None, message=message), ())


@bp.get("/<message_id>/html")
def html(message_id: str) -> Response:
    message = read_message(_folder(), message_id)
    if message is None or message.html is None:
        abort(404)
    response = Response(message.html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = SANDBOX
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/<message_id>/raw")
def raw(message_id: str) -> Response:
    message = read_message(_folder(), message_id)
    if message is None:
        abort(404)
    response = Response(message.raw, mimetype="message/rfc822")
    response.headers["Content-Disposition"] = f'attachment; filename="{message_id}.eml"'
    return response
