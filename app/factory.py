"""create_app(settings=None): config, logging, database, queue, blueprints. Nothing at import time."""

from __future__ import annotations

from pathlib import Path

import structlog
from flask import Flask, Response, jsonify
from sqlalchemy.exc import DataError
from werkzeug.exceptions import HTTPException

from app import log
from app.bootstrap import Container, bootstrap
from app.config import Settings
from app.shops import NotInstalled

ROOT = Path(__file__).resolve().parent.parent


def create_app(settings: Settings | None = None, *, container: Container | None = None) -> Flask:
    settings = settings or Settings.from_env()
    log.configure(settings.log_level)
    app = Flask(__name__, static_folder=str(ROOT / "static"), static_url_path="/static")
    app.config.update(SECRET_KEY=settings.secret_key, MAX_CONTENT_LENGTH=None)
    app.extensions["encore"] = container or bootstrap(settings)

    from app.web import (
        admin,
        analytics_admin,
        csv_import,
        feedback_admin,
        inputs,
        loyalty_admin,
        ops,
        outbox,
        pages,
        proxy,
        public,
        ratelimit,
        webhooks,
    )
    from app.web import exports as exports_web
    from app.web import journeys as journeys_web
    from app.web import openapi as openapi_web
    from app.web import referrals as referrals_web
    from app.web import segments_admin as segments_web
    from connectors.shopify import routes as shopify_routes
    from connectors.woocommerce import routes as woocommerce_routes

    app.context_processor(pages.nav_context)
    app.register_blueprint(ops.bp)  # first: its request id is bound before any other blueprint's hooks run
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(exports_web.bp)
    app.register_blueprint(analytics_admin.bp)
    app.register_blueprint(csv_import.bp)
    app.register_blueprint(journeys_web.bp)
    app.register_blueprint(loyalty_admin.bp)
    app.register_blueprint(feedback_admin.bp)
    app.register_blueprint(outbox.bp)
    app.register_blueprint(public.bp)
    app.register_blueprint(proxy.bp)
    app.register_blueprint(referrals_web.bp)
    app.register_blueprint(segments_web.bp)
    app.register_blueprint(shopify_routes.bp)
    app.register_blueprint(woocommerce_routes.bp)
    app.register_blueprint(openapi_web.bp)
    ratelimit.init(app, settings)
    app.before_request(inputs.refuse_unstorable)  # what the database cannot hold: 404 / 400, not a 500

    @app.errorhandler(NotInstalled)
    def not_installed(exc: NotInstalled) -> tuple[Response, int]:
        return jsonify(error="shop is not installed"), 401

    @app.errorhandler(DataError)
    def refused_value(exc: DataError) -> tuple[Response, int]:
        """The database refused a value the request carried (on PostgreSQL: a NUL character in text, a number out
        of its column's range, text too long). The request's transaction rolled back, so nothing changed, and the
        fault is the input's: 400 with what went wrong, not a 500. The value itself is not logged."""
        structlog.get_logger(__name__).warning("request_value_refused", error=type(exc.orig).__name__)
        return jsonify(error="the request holds a value that cannot be stored (a NUL character, or a number or "
                             "text out of range)"), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        return jsonify(error=exc.description), exc.code or 500

    return app
