"""The storefront widget's API through Shopify's app proxy (`/apps/encore/...` on the store, forwarded here as
`/proxy/...`): every request's signature and age are checked (401 otherwise), the shop must have Encore
installed (404), and the shopper is the logged-in customer Shopify names (401 when nobody is logged in). No
cookie reaches here (Shopify strips them), so a request is only as good as its signature; a redemption carries
the widget's own request key, so the same click replayed is the same redemption. The widget's words come with
its answers (`labels`, `message`) in the language it asks for with `?locale=`."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from app import rewards, shops, storefront
from app.bootstrap import Container
from app.core.loyalty import LoyaltyError, NotEnoughPoints
from app.i18n import best_locale
from connectors.shopify.proxy import ProxyRejected, verify

bp = Blueprint("proxy", __name__)


def _container() -> Container:
    c: Container = current_app.extensions["encore"]
    return c


def _error(status: int, error: str, message: str) -> tuple[Response, int]:
    return jsonify(error=error, message=message), status


class Refused(Exception):
    """A storefront request refused: answered as JSON `{"error", "message"}` with its status by any blueprint
    that registers `refused` as its handler."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error = status, error


@bp.errorhandler(Refused)
def refused(exc: Refused) -> tuple[Response, int]:
    return _error(exc.status, exc.error, str(exc))


@dataclass(frozen=True)
class Shopper:
    """Who a verified storefront request comes from: the shop (Encore's id, its platform and domain) and the
    logged-in customer (None when nobody is logged in)."""

    shop_id: int
    platform: str
    domain: str
    customer_id: str | None


def shopper(*, logged_in: bool = True) -> Shopper:
    """The shop and the customer of a verified storefront request (Refused otherwise): a WooCommerce store's
    request as its WordPress plugin forwards and signs it (connectors/woocommerce/proxy.py) when it carries the
    plugin's headers, else Shopify's app proxy signature. With `logged_in`, a request without a logged-in
    customer is refused (401 log_in)."""
    from connectors.woocommerce import proxy as woocommerce  # imported here: this function is its one user

    c = _container()
    if woocommerce.signed_by_plugin(request.headers):
        try:
            signed = woocommerce.verify(request.method, request.path, request.query_string, request.get_data(),
                                        request.headers, woocommerce.store_keys(c), time.time())
        except woocommerce.ProxyRejected as exc:
            raise Refused(401, "unauthorized", f"this request is not from the store: {exc}") from None
        except woocommerce.UnknownStore as exc:
            raise Refused(404, "unknown_shop", str(exc)) from None
        who = Shopper(signed.shop_id, "woocommerce", signed.domain, signed.customer_id)
    else:
        try:
            verified = verify(list(request.args.items(multi=True)), c.settings.shopify_api_secrets, time.time())
        except ProxyRejected as exc:
            raise Refused(401, "unauthorized", f"this request is not from the store: {exc}") from None
        found = c.shops.find("shopify", verified.shop)  # the intake's directory: cached a few seconds
        if found is None or not found.installed:
            raise Refused(404, "unknown_shop", "Encore is not installed on this store")
        who = Shopper(found.id, "shopify", verified.shop, verified.customer_id)
    if logged_in and who.customer_id is None:
        raise Refused(401, "log_in", "log in to your account to see your points")
    return who


def _locale() -> str:
    """The language the widget asked for (`?locale=ko`), as one Encore has a catalog for."""
    return best_locale(request.args.get("locale"))


def _refused(status: int, error: str, locale: str) -> tuple[Response, int]:
    """A refusal the widget shows as it is: the message in the shopper's language."""
    words = storefront.labels(locale)
    return _error(status, error, words.get(f"refused_{error}", words["error"]))


@bp.get("/proxy/loyalty/balance")
def balance() -> Any:
    """The launcher's read on every page: the points and the tier's name, with the labels (made once per
    language). Nobody logged in: 401 `log_in` with the labels, as for the panel."""
    who = shopper(logged_in=False)
    locale = _locale()
    if who.customer_id is None:
        body = {"error": "log_in", "message": storefront.labels(locale)["log_in"], "locale": locale}
        status = 401
    else:
        body, status = {**storefront.balance(_container(), who.shop_id, who.customer_id), "locale": locale}, 200
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(f'{text[:-1]},"labels":{storefront.labels_json(locale)}}}', status, mimetype="application/json")


@bp.get("/proxy/loyalty")
def state() -> Any:
    """What the widget shows, with its labels in the shopper's language. Nobody logged in is still 401
    `log_in`, but with the labels, so the widget can ask them to log in in their own language."""
    who = shopper(logged_in=False)
    locale = _locale()
    words = storefront.labels(locale)
    if who.customer_id is None:
        return jsonify(error="log_in", message=words["log_in"], locale=locale, labels=words), 401
    c = _container()
    body = storefront.widget(c, who.shop_id, who.customer_id, c.clock.now(), locale)
    return jsonify({**body, "locale": locale, "labels": words})


@bp.post("/proxy/loyalty/redeem")
def redeem() -> Any:
    who = shopper(logged_in=False)
    locale = _locale()
    if who.customer_id is None:
        return _error(401, "log_in", storefront.labels(locale)["log_in"])
    shop_id, customer_id = who.shop_id, who.customer_id
    body = request.get_json(silent=True) or {}
    reward_id, key = body.get("reward_id"), body.get("request_key")
    if not isinstance(reward_id, int) or isinstance(reward_id, bool) or not isinstance(key, str) \
            or not 8 <= len(key) <= 64 or "\x00" in key:  # PostgreSQL's text cannot hold a NUL
        return _error(400, "bad_request", "a redemption names a reward (reward_id) and a request_key of 8-64 characters")
    c = _container()
    try:
        got = rewards.redeem(c, shop_id, customer_id, reward_id, f"widget:{customer_id}:{key}",
                             c.clock.now(), lambda sid: shops.store_platform(c, sid))
    except rewards.AlreadyRedeemed as exc:
        return _refused(409, "already_redeemed", locale) if exc.redemption.status == "restored" else (
            jsonify(code=exc.redemption.code, status=exc.redemption.status, points=exc.redemption.points,
                    already=True), 200)
    except NotEnoughPoints:
        return _refused(422, "not_enough_points", locale)
    except rewards.RewardUnavailable:
        return _refused(404, "no_such_reward", locale)
    except rewards.NotForCustomer:  # limited to a segment the shopper is not in
        return _refused(403, "not_for_you", locale)
    except LoyaltyError:
        return _refused(422, "refused", locale)
    status = 201 if got.status == "issued" else 202
    return jsonify(code=got.code if got.status != "restored" else None, status=got.status, points=got.points,
                   expires_at=got.expires_at.isoformat(), error=got.error), status
