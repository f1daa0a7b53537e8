"""The storefront widget's API through Shopify's app proxy (`/apps/encore/...` on the store, forwarded here as
`/proxy/...`): every request's signature and age are checked (401 otherwise), the shop must have Encore
installed (404), and the shopper is the logged-in customer Shopify names (401 when nobody is logged in). No
cookie reaches here (Shopify strips them), so a request is only as good as its signature; a redemption carries
the widget's own request key, so the same click replayed is the same redemption."""

from __future__ import annotations

import time
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


class _Refused(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error = status, error


@bp.errorhandler(_Refused)
def _refused(exc: _Refused) -> tuple[Response, int]:
    return _error(exc.status, exc.error, str(exc))


def _shopper() -> tuple[int, str]:
    """The shop and the logged-in customer of a verified proxy request (_Refused otherwise)."""
    c = _container()
    try:
        verified = verify(list(request.args.items(multi=True)), c.settings.shopify_api_secrets, time.time())
    except ProxyRejected as exc:
        raise _Refused(401, "unauthorized", f"this request is not from the store: {exc}") from None
    found = ShopDirectory(c).find("shopify", verified.shop)
    if found is None or not found.installed:
        raise _Refused(404, "unknown_shop", "Encore is not installed on this store")
    if verified.customer_id is None:
        raise _Refused(401, "log_in", "log in to your account to see your points")
    return found.id, verified.customer_id


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
