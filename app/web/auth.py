"""Session-token authentication for everything the admin asks of Encore.

Two kinds of bearer token open the admin API: Shopify's session tokens (App Bridge, inside Shopify admin) and
Encore's own admin tokens, issued to a page Encore served after a WordPress sign-in (`app/wordpress.py`).
The unverified `iss` claim tells them apart; either is then verified in full.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any, TypeVar, cast

import jwt
from flask import current_app, g, jsonify, request
from sqlalchemy import select

from app.bootstrap import Container
from app.db.models import Shop
from connectors.shopify import verify

F = TypeVar("F", bound=Callable[..., Any])
RETRY_HEADER = "X-Shopify-Retry-Invalid-Session-Request"
ADMIN_ISSUER, ADMIN_AUDIENCE = "encore", "encore-admin"
ADMIN_TOKEN_TTL = timedelta(hours=1)
ADMIN_LEEWAY_S = 10


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


def _admin_key(c: Container) -> bytes:
    """A key of its own for admin tokens, derived from the secret key (which also signs other things)."""
    return hmac.new(c.settings.secret_key.encode(), b"encore admin session token", hashlib.sha256).digest()


def issue_admin_token(c: Container, shop_id: int, domain: str, *, now: datetime | None = None) -> str:
    """Encore's own admin session token for one shop: HS256, one hour."""
    at = now or datetime.now(UTC)
    claims = {"iss": ADMIN_ISSUER, "aud": ADMIN_AUDIENCE, "sub": str(shop_id), "dest": domain,
              "iat": int(at.timestamp()), "exp": int((at + ADMIN_TOKEN_TTL).timestamp())}
    return jwt.encode(claims, _admin_key(c), algorithm="HS256")


def shop_from_admin_token(c: Container, token: str) -> tuple[str, int | None]:
    """Verify an Encore admin token; return (shop domain, the shop id while it is installed, else None).
    Raises SessionTokenError."""
    try:
        claims = jwt.decode(token, _admin_key(c), algorithms=["HS256"], audience=ADMIN_AUDIENCE, issuer=ADMIN_ISSUER,
                            leeway=ADMIN_LEEWAY_S, options={"require": ["iss", "aud", "sub", "exp", "iat", "dest"]})
        shop_id = int(claims["sub"])
    except (jwt.PyJWTError, ValueError) as exc:
        raise verify.SessionTokenError(str(exc)) from exc
    with c.sessions() as s:
        shop = s.get(Shop, shop_id)
        if shop is None or shop.domain != claims["dest"]:
            raise verify.SessionTokenError("token names no known shop")
        return shop.domain, shop.id if shop.installed else None


def _is_encore_token(token: str) -> bool:
    try:
        return jwt.decode(token, options={"verify_signature": False}).get("iss") == ADMIN_ISSUER
    except jwt.PyJWTError:
        return False


def session_token_required(view: F) -> F:
    """401 (with App Bridge's retry header) unless a valid token for an installed shop comes with the request."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        c: Container = current_app.extensions["encore"]
        auth = request.headers.get("Authorization", "")
        problem = "missing session token"
        if auth.startswith("Bearer "):
            token = auth[len("Bearer "):]
            try:
                domain, shop_id = (shop_from_admin_token if _is_encore_token(token) else shop_from_token)(c, token)
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
