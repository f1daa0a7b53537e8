"""Session-token authentication for everything the embedded admin asks of Encore."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import current_app, g, jsonify, request
from sqlalchemy import select

from app.bootstrap import Container
from app.db.models import Shop
from connectors.shopify import verify

F = TypeVar("F", bound=Callable[..., Any])
RETRY_HEADER = "X-Shopify-Retry-Invalid-Session-Request"


def installed_shop_id(c: Container, domain: str) -> int | None:
    with c.sessions() as s:
        shop = s.scalars(select(Shop).where(Shop.platform == "shopify", Shop.domain == domain)).first()
        return shop.id if shop is not None and shop.installed else None


def shop_from_token(c: Container, token: str) -> tuple[str, int | None]:
    """Decode the token and return (shop domain, installed shop id or None); raises SessionTokenError."""
    claims = verify.decode_session_token(token, c.settings.shopify_api_key, c.settings.shopify_api_secrets)
    domain = verify.shop_from_claims(claims)
    if domain is None:
        raise verify.SessionTokenError("token names no valid shop")
    return domain, installed_shop_id(c, domain)


def session_token_required(view: F) -> F:
    """401 with App Bridge's retry header unless a valid token for an installed shop comes with the request."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        c: Container = current_app.extensions["encore"]
        auth = request.headers.get("Authorization", "")
        problem = "missing session token"
        if auth.startswith("Bearer "):
            try:
                domain, shop_id = shop_from_token(c, auth[len("Bearer "):])
            except verify.SessionTokenError as exc:
                problem = f"invalid session token: {exc}"
            else:
                if shop_id is not None:
                    g.shop_id, g.shop_domain = shop_id, domain
                    return view(*args, **kwargs)
                problem = "shop is not installed"
        response = jsonify(error=problem)
        response.status_code = 401
        response.headers[RETRY_HEADER] = "1"
        return response

    return cast(F, wrapper)
