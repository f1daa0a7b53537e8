"""Rate limits on the endpoints anyone can reach without an admin login: the preference center, one-click
unsubscribe, the open pixel and tracked clicks, the satisfaction survey, the referral landing page and the
storefront widget's proxy API.

Why: each of them does database work for a request nobody authenticated beyond a link or a proxy signature, and
some of them write (a survey answer, a referral claim, a redemption). A shopper opens a page a few times a
minute at most, so the limits (`settings.rate_limit_pages` for every request, `settings.rate_limit_writes` for
POSTs, Flask-Limiter's notation such as "60/minute") are far above what a person does and far below what a
script hammering one link or guessing referral codes would need.

Keys: the client's address, and also the link's token (the same link from many addresses) for the signed-link
pages. A storefront request reaches Encore from the platform's servers (Shopify's app proxy, the store's
WordPress), so there the address is the platform's and would throttle every shopper of every store at once;
such requests are counted per shop and customer as the request names them instead (before its signature is
checked: a forger who varies them only spreads his own requests thinner, and still gets 401s).

Counters live in Redis when `settings.redis_url` is set (shared by every web replica), else in this process's
memory (the embedded default). Webhooks (the platforms retry what is refused) and the admin API (session tokens)
are not limited here. A request over a limit gets 429 with `Retry-After` (seconds): a short page in the
customer's language for pages, `{"error": "rate_limited", "message"}` (the proxy's shape) for the proxy API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from limits import parse_many

from app.config import Settings
from app.i18n import LOCALES, best_locale, translations

DOMAIN = "ratelimit"
# Endpoints reached by a signed link: limited per address and per token.
LINK_PAGES = ("public.preferences_page", "public.unsubscribe", "public.open_pixel", "public.click",
              "public.survey_page")
# Endpoints reached through the store (app proxy or WordPress plugin): limited per shop and customer.
STORE_PAGES = ("referrals.landing", "proxy.state", "proxy.balance", "proxy.redeem")
LIMITED = LINK_PAGES + STORE_PAGES
WRITES = ["POST"]  # the public endpoints' only writing method


def _token() -> str:
    args = request.view_args or {}
    return f"{request.endpoint}:{args.get('token', '')}"


def _store_client() -> str:
    """Who a storefront request is from, as it names itself: the WordPress plugin's store and customer headers,
    else the Shopify app proxy's `shop` and `logged_in_customer_id` (the address when it names neither)."""
    store, customer = request.headers.get("X-Encore-Store"), request.headers.get("X-Encore-Customer")
    if store is None:
        store, customer = request.args.get("shop"), request.args.get("logged_in_customer_id")
    if not store:
        return f"addr:{get_remote_address()}"
    return f"store:{store[:200]}|{(customer or '')[:40]}|{get_remote_address() if not customer else ''}"


def _rate_limited(exc: RateLimitExceeded) -> Response:
    """429, shaped like the endpoint's other answers; Flask-Limiter adds Retry-After after this."""
    lang = best_locale(request.args.get("locale")) if request.args.get("locale") else (
        request.accept_languages.best_match(LOCALES) or "en")
    _ = translations(lang, DOMAIN).gettext
    message = _("Too many requests. Please wait a minute and try again.")
    if request.blueprint == "proxy":
        response = jsonify(error="rate_limited", message=message)
    else:
        html = render_template("rate_limited.html", _=_, lang=lang, message=message)
        response = Response(html, mimetype="text/html")
        from app.web.public import HEADERS  # the public pages' headers: no caching, no referrer, strict CSP

        response.headers.update(HEADERS)
    response.status_code = 429
    return response


def init(app: Flask, settings: Settings) -> Limiter:
    """Attach a limiter to `app` and limit the public endpoints' views (registered before this is called).
    A limit that does not parse ("60 per minute", "60/minute" are fine) raises ValueError here, at start-up."""
    for name, value in (("ENCORE_RATE_LIMIT_PAGES", settings.rate_limit_pages),
                        ("ENCORE_RATE_LIMIT_WRITES", settings.rate_limit_writes)):
        try:
            parse_many(value)
        except ValueError:
            raise ValueError(f"{name} must be a rate such as 60/minute, not {value!r}") from None
    limiter = Limiter(
        get_remote_address, app=app, storage_uri=settings.redis_url or "memory://", strategy="fixed-window",
        headers_enabled=True, key_prefix="encore-rl", swallow_errors=True, in_memory_fallback_enabled=True,
    )
    pages, writes = settings.rate_limit_pages, settings.rate_limit_writes
    for endpoint in LIMITED:
        view: Callable[..., Any] = app.view_functions[endpoint]
        key = _store_client if endpoint in STORE_PAGES else get_remote_address
        view = limiter.limit(pages, key_func=key, scope=f"{endpoint}:pages")(view)
        view = limiter.limit(writes, key_func=key, scope=f"{endpoint}:writes", methods=WRITES)(view)
        if endpoint in LINK_PAGES:
            view = limiter.limit(pages, key_func=_token, scope=f"{endpoint}:token-pages")(view)
            view = limiter.limit(writes, key_func=_token, scope=f"{endpoint}:token-writes",
                                   methods=WRITES)(view)
        app.view_functions[endpoint] = view
    app.register_error_handler(RateLimitExceeded, _rate_limited)
    return limiter
