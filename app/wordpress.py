"""Signing in from the WordPress companion plugin (connectors/woocommerce/wordpress/encore).

The plugin and Encore share a secret without any exchange of their own: WooCommerce's wc-auth created a REST
key for Encore (`WC_Auth::create_keys`, woocommerce/includes/class-wc-auth.php), kept its consumer secret in
plain text in the store's `woocommerce_api_keys` table and posted it to Encore, which keeps it sealed. On
demand the plugin signs a JWT (HS256) with that consumer secret: header `kid` = the key's `truncated_key`
(the consumer key's last 7 characters), claims iss = the store's home URL, aud = "encore", sub = the
WordPress user, iat, exp = iat + 60, jti = 32 random hex characters, locale = the user's WordPress locale.

Encore finds the store by the (unverified) iss, verifies everything against that store's secret, and spends
the jti once. No cookie is involved, so browsers that block third-party cookies in the framed page change
nothing.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import jwt
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.db.models import InstallNonce, Shop
from app.i18n import best_locale
from connectors.woocommerce.verify import normalize_store_url

if TYPE_CHECKING:
    from app.bootstrap import Container

AUDIENCE = "encore"
MAX_LIFETIME_S = 120  # the plugin's tokens live 60 s; one that claims longer was not made by it
LEEWAY_S = 30  # the store's clock and Encore's may differ a little
_JTI = re.compile(r"[A-Za-z0-9_-]{16,64}")
NOT_VALID = "This sign-in token is not valid for any store connected to Encore."
AGAIN = "Open Encore again from your WordPress admin."


class SignInRefused(Exception):
    """The token does not sign anyone in; the message says why, for the merchant."""


@dataclass(frozen=True)
class SignIn:
    shop_id: int
    domain: str
    locale: str
    user: str


def _peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise SignInRefused("This sign-in token is malformed.") from exc
    return header, claims


def _store(c: Container, iss: Any) -> tuple[int, str, str, str]:
    """(shop id, domain, consumer key, consumer secret) of the connected store the token claims to come from."""
    domain = normalize_store_url(iss) if isinstance(iss, str) else None
    if domain is None:
        raise SignInRefused(NOT_VALID)
    with c.sessions() as s:
        shop = s.scalars(select(Shop).where(Shop.platform == "woocommerce", Shop.domain == domain)).first()
        if shop is None or not shop.installed:
            raise SignInRefused(NOT_VALID)
        key, secret = c.vault.open(shop.api_key), c.vault.open(shop.api_secret)
        if not key or not secret:
            raise SignInRefused(NOT_VALID)
        return shop.id, shop.domain, key, secret


def sign_in(c: Container, token: str) -> SignIn:
    """Verify a token the plugin minted and spend it; raise SignInRefused, having changed nothing, otherwise."""
    header, peeked = _peek(token)
    if header.get("alg") != "HS256":
        raise SignInRefused(NOT_VALID)
    shop_id, domain, key, secret = _store(c, peeked.get("iss"))
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], audience=AUDIENCE, issuer=peeked["iss"],
                            leeway=LEEWAY_S, options={"require": ["iss", "aud", "sub", "iat", "exp", "jti"]})
    except jwt.ExpiredSignatureError as exc:
        raise SignInRefused(f"This sign-in token has expired. {AGAIN}") from exc
    except jwt.PyJWTError as exc:
        raise SignInRefused(NOT_VALID) from exc
    if not hmac.compare_digest(str(header.get("kid", "")).encode("utf-8", "replace"), key[-7:].encode()):
        raise SignInRefused("This sign-in token was signed with another key than the one Encore holds for this store; "
                            "connect the store to Encore again.")
    iat, exp, jti, sub = claims["iat"], claims["exp"], claims["jti"], claims["sub"]
    if not all(isinstance(t, int | float) and not isinstance(t, bool) for t in (iat, exp)) or not isinstance(sub, str) \
            or not isinstance(jti, str) or not _JTI.fullmatch(jti):
        raise SignInRefused("This sign-in token is malformed.")
    if exp - iat > MAX_LIFETIME_S:
        raise SignInRefused(f"This sign-in token lives longer than {MAX_LIFETIME_S} seconds.")
    try:
        with c.sessions() as s, s.begin():
            # Kept until the token could no longer pass, leeway included, so a replay always finds it.
            s.add(InstallNonce(nonce=jti, platform="wordpress", shop_domain=domain,
                               expires_at=datetime.fromtimestamp(exp + LEEWAY_S, UTC), used_at=datetime.now(UTC)))
    except IntegrityError as exc:
        raise SignInRefused(f"This sign-in token was used already. {AGAIN}") from exc
    locale = claims.get("locale")
    return SignIn(shop_id=shop_id, domain=domain, locale=best_locale(locale if isinstance(locale, str) else None),
                  user=sub)


def store_origin(domain: str) -> str:
    """scheme://host[:port] of a store URL, for frame-ancestors (a path would narrow nothing there)."""
    scheme, _, rest = domain.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"

