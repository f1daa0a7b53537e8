"""The storefront widget's API through Shopify's app proxy (`/apps/encore/...` on the store, forwarded here as
`/proxy/...`): every request's signature and age are checked (401 otherwise), the shop must have Encore
installed (404), and the shopper is the logged-in customer Shopify names (401 when nobody is logged in). No
cookie reaches here (Shopify strips them), so a request is only as good as its signature; a redemption carries
the widget's own request key, so the same click replayed is the same redemption."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from app import rewards, shops, storefront
from app.bootstrap import Container
from app.core.loyalty import LoyaltyError, NotEnoughPoints
from app.inbox import ShopDirectory
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
    """The shop and the customer of a verified storefront request (Refused otherwise): Shopify's app proxy
    signature. With `logged_in`, a request without a logged-in customer is refused (401 log_in)."""
    c = _container()
    try:
        verified = verify(list(request.args.items(multi=True)), c.settings.shopify_api_secrets, time.time())
    except ProxyRejected as exc:
        raise Refused(401, "unauthorized", f"this request is not from the store: {exc}") from None
    found = ShopDirectory(c).find("shopify", verified.shop)
    if found is None or not found.installed:
        raise Refused(404, "unknown_shop", "Encore is not installed on this store")
    if logged_in and verified.customer_id is None:
        raise Refused(401, "log_in", "log in to your account to see your points")
    return Shopper(found.id, "shopify", verified.shop, verified.customer_id)


def _shopper() -> tuple[int, str]:
    who = shopper()
    assert who.customer_id is not None  # logged_in
    return who.shop_id, who.customer_id


@bp.get("/proxy/loyalty")
def state() -> Any:
    shop_id, customer_id = _shopper()
    c = _container()
    return jsonify(storefront.widget(c, shop_id, customer_id, c.clock.now()))


@bp.post("/proxy/loyalty/redeem")
def redeem() -> Any:
    shop_id, customer_id = _shopper()
    body = request.get_json(silent=True) or {}
    reward_id, key = body.get("reward_id"), body.get("request_key")
    if not isinstance(reward_id, int) or isinstance(reward_id, bool) or not isinstance(key, str) \
            or not 8 <= len(key) <= 64:
        return _error(400, "bad_request", "a redemption names a reward (reward_id) and a request_key of 8-64 characters")
    c = _container()
    try:
        got = rewards.redeem(c, shop_id, customer_id, reward_id, f"widget:{customer_id}:{key}",
                             c.clock.now(), lambda sid: shops.store_platform(c, sid))
    except rewards.AlreadyRedeemed as exc:
        return _error(409, "already_redeemed", str(exc)) if exc.redemption.status == "restored" else (
            jsonify(code=exc.redemption.code, status=exc.redemption.status, points=exc.redemption.points,
                    already=True), 200)
    except NotEnoughPoints as exc:
        return _error(422, "not_enough_points", str(exc))
    except rewards.RewardUnavailable as exc:
        return _error(404, "no_such_reward", str(exc))
    except LoyaltyError as exc:
        return _error(422, "refused", str(exc))
    status = 201 if got.status == "issued" else 202
    return jsonify(code=got.code if got.status != "restored" else None, status=got.status, points=got.points,
                   expires_at=got.expires_at.isoformat(), error=got.error), status
