"""Signing in from the WordPress plugin: the token Encore accepts (once), the ones it refuses (changing nothing),
and the admin session it hands the page, which reaches only its own store.

Tokens here are built with PyJWT exactly as the plugin builds them (connectors/woocommerce/wordpress/encore/
encore.php, `encore_token`); tests/e2e/test_wordpress_plugin.py has the real PHP mint them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from app.bootstrap import Container
from app.db.models import DataExport, InboxRow, InstallNonce, Shop
from app.web.auth import issue_admin_token

STORE, OTHER = "http://127.0.0.1:8123", "https://other-store.example"
CONSUMER_KEY, CONSUMER_SECRET = "ck_" + "a1" * 20, "cs_" + "b2" * 20
OTHER_KEY, OTHER_SECRET = "ck_" + "c3" * 20, "cs_" + "d4" * 20


def add_store(c: Container, domain: str, key: str, secret: str, name: str) -> int:
    with c.sessions() as s, s.begin():
        shop = Shop(platform="woocommerce", domain=domain, name=name, api_key=c.vault.seal(key),
                    api_secret=c.vault.seal(secret), installed_at=datetime.now(UTC))
        s.add(shop)
        s.flush()
        return shop.id


@pytest.fixture
def stores(container: Container) -> tuple[int, int]:
    return (add_store(container, STORE, CONSUMER_KEY, CONSUMER_SECRET, "Encore Test Store"),
            add_store(container, OTHER, OTHER_KEY, OTHER_SECRET, "Other Store"))


def token(*, secret: str = CONSUMER_SECRET, kid: str = CONSUMER_KEY[-7:], algorithm: str = "HS256",
          drop: tuple[str, ...] = (), **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": STORE, "aud": "encore", "sub": "1", "iat": now, "exp": now + 60, "jti": secrets.token_hex(16),
            "locale": "en_US", **claims}
    for name in drop:
        body.pop(name)
    return jwt.encode(body, secret, algorithm=algorithm, headers={"kid": kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return ".".join([_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()), ""])


def hs256_with_header(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A token with the given header, HMAC-signed with the right secret (so only the header is wrong)."""
    head = unsigned(header, claims)[:-1]
    return f"{head}.{_b64(hmac.new(CONSUMER_SECRET.encode(), head.encode(), hashlib.sha256).digest())}"


def nonces(c: Container) -> int:
    with c.sessions() as s:
        return s.scalar(select(func.count()).select_from(InstallNonce)) or 0


def open_admin(client: FlaskClient, value: str) -> Any:
    return client.get("/woocommerce/admin", query_string={"token": value})


def page_token(html: str) -> str:
    match = re.search(r'data-session-token="([^"]+)"', html)
    assert match, "the page carries no session token"
    return match.group(1)


def test_a_valid_token_opens_the_stores_admin_once(client: FlaskClient, container: Container,
                                                   stores: tuple[int, int]) -> None:
    signed = token()
    page = open_admin(client, signed)
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert 'id="orders"' in html and f'data-shop="{STORE}"' in html and '<html lang="en">' in html
    assert page.headers["Content-Security-Policy"].startswith(f"frame-ancestors {STORE}; ")  # app/web/csp.py
    assert page.headers["Cache-Control"] == "no-store" and page.headers["Referrer-Policy"] == "no-referrer"
    assert "app-bridge" not in html and "shopify-api-key" not in html  # no App Bridge outside Shopify
    claims = jwt.decode(signed, options={"verify_signature": False})
    with container.sessions() as s:
        spent = s.get(InstallNonce, claims["jti"])
        assert spent is not None and (spent.platform, spent.shop_domain) == ("wordpress", STORE)
        assert spent.used_at is not None and spent.expires_at >= datetime.fromtimestamp(claims["exp"], UTC)

    replay = open_admin(client, signed)
    assert replay.status_code == 401 and replay.mimetype == "text/plain"
    assert replay.get_data(as_text=True) == ("This sign-in token was used already. "
                                             "Open Encore again from your WordPress admin.")
    assert nonces(container) == 1


def test_the_frame_ancestor_is_the_stores_origin_without_its_path(client: FlaskClient, container: Container) -> None:
    add_store(container, "https://shop.example/blog", CONSUMER_KEY, CONSUMER_SECRET, "Blog Store")
    page = open_admin(client, token(iss="https://Shop.Example/blog/"))  # home_url() as WordPress spells it
    assert page.status_code == 200
    assert page.headers["Content-Security-Policy"].startswith("frame-ancestors https://shop.example; ")


@pytest.mark.parametrize(("wp_locale", "lang", "heading"), [
    ("ko_KR", "ko", "최근 주문"), ("ja", "ja", "最近の注文"), ("de_DE", "en", "Recent orders"), (None, "en", "Recent orders"),
])
def test_the_page_speaks_the_wordpress_users_language(client: FlaskClient, stores: tuple[int, int], wp_locale: str | None,
                                                      lang: str, heading: str) -> None:
    html = open_admin(client, token(locale=wp_locale) if wp_locale else token(drop=("locale",))).get_data(as_text=True)
    assert f'<html lang="{lang}">' in html and f'<h2 id="orders-title">{heading}</h2>' in html


def _refusals() -> dict[str, tuple[Any, str]]:
    now = int(time.time())
    claims = {"iss": STORE, "aud": "encore", "sub": "1", "iat": now, "exp": now + 60, "jti": secrets.token_hex(16)}
    kid = CONSUMER_KEY[-7:]
    not_valid = "This sign-in token is not valid for any store connected to Encore."
    return {
        "expired": (lambda: token(iat=now - 200, exp=now - 140), "This sign-in token has expired. "
                                                                  "Open Encore again from your WordPress admin."),
        "wrong secret": (lambda: token(secret=OTHER_SECRET), not_valid),
        "the consumer key as secret": (lambda: token(secret=CONSUMER_KEY), not_valid),
        "wrong kid": (lambda: token(kid=OTHER_KEY[-7:]), "This sign-in token was signed with another key than the one "
                                                          "Encore holds for this store; connect the store to Encore again."),
        "no kid": (lambda: hs256_with_header({"alg": "HS256", "typ": "JWT"}, claims), "This sign-in token was signed with "
                   "another key than the one Encore holds for this store; connect the store to Encore again."),
        "wrong audience": (lambda: token(aud="encore-admin"), not_valid),
        "another store's secret for this store": (lambda: token(secret=OTHER_SECRET, kid=OTHER_KEY[-7:]), not_valid),
        "unknown store": (lambda: token(iss="https://stranger.example"), not_valid),
        "not a URL": (lambda: token(iss="encore"), not_valid),
        "alg none": (lambda: unsigned({"alg": "none", "kid": kid}, claims), not_valid),
        "RS256 header": (lambda: hs256_with_header({"alg": "RS256", "kid": kid}, claims), not_valid),
        "HS512": (lambda: token(algorithm="HS512"), not_valid),
        "lives too long": (lambda: token(exp=now + 600), "This sign-in token lives longer than 120 seconds."),
        "issued in the future": (lambda: token(iat=now + 300, exp=now + 360), not_valid),
        "no jti": (lambda: token(drop=("jti",)), not_valid),
        "no exp": (lambda: token(drop=("exp",)), not_valid),
        "no sub": (lambda: token(drop=("sub",)), not_valid),
        "a jti that is no token id": (lambda: token(jti="x" * 200), "This sign-in token is malformed."),
        "garbage": (lambda: "not.a.jwt", "This sign-in token is malformed."),
        "empty": (lambda: "", "This sign-in token is malformed."),
    }


@pytest.mark.parametrize("case", list(_refusals()))
def test_tokens_that_do_not_sign_in_are_refused_and_change_nothing(client: FlaskClient, container: Container,
                                                                    stores: tuple[int, int], case: str) -> None:
    make, message = _refusals()[case]
    answer = open_admin(client, make())
    assert (answer.status_code, answer.mimetype, answer.get_data(as_text=True)) == (401, "text/plain", message)
    assert "Set-Cookie" not in answer.headers and "Content-Security-Policy" not in answer.headers
    assert nonces(container) == 0


def test_a_store_that_is_no_longer_installed_cannot_sign_in(client: FlaskClient, container: Container,
                                                            stores: tuple[int, int]) -> None:
    with container.sessions() as s, s.begin():
        s.execute(update(Shop).where(Shop.id == stores[0]).values(uninstalled_at=datetime.now(UTC)))
    assert open_admin(client, token()).status_code == 401 and nonces(container) == 0


def _park(c: Container, shop_id: int, topic: str) -> int:
    with c.sessions() as s, s.begin():
        row = InboxRow(shop_id=shop_id, platform="woocommerce", topic=topic, event_id=secrets.token_hex(8),
                       body=b"{}", status="parked", attempts=5, last_error="broken")
        s.add(row)
        s.add(DataExport(shop_id=shop_id, request_id=secrets.token_hex(8), customer_external_id=topic, content={}))
        s.flush()
        return row.id


def test_the_admin_session_reaches_its_own_store_only(client: FlaskClient, container: Container,
                                                      stores: tuple[int, int]) -> None:
    mine, theirs = stores
    my_row, their_row = _park(container, mine, "order.created"), _park(container, theirs, "order.updated")
    with container.sessions() as s:
        my_export, their_export = (s.scalars(select(DataExport.id).where(DataExport.shop_id == i)).one()
                                   for i in (mine, theirs))
    session = page_token(open_admin(client, token()).get_data(as_text=True))
    claims = jwt.decode(session, options={"verify_signature": False})
    assert (claims["iss"], claims["aud"], claims["sub"], claims["dest"]) == ("encore", "encore-admin", str(mine), STORE)
    assert claims["exp"] - claims["iat"] == 3600
    auth = {"Authorization": f"Bearer {session}"}

    overview = client.get("/api/admin/overview", headers=auth)
    assert overview.status_code == 200
    data = overview.get_json()
    assert data["shop"]["domain"] == STORE and data["shop"]["name"] == "Encore Test Store"
    assert [p["id"] for p in data["parked"]] == [my_row] and [e["id"] for e in data["exports"]] == [my_export]
    assert data["health"]["parked"] == 1

    assert client.post(f"/api/admin/inbox/{their_row}/retry", headers=auth).status_code == 404
    assert client.get(f"/api/admin/exports/{their_export}", headers=auth).status_code == 404
    assert client.get(f"/api/admin/exports/{my_export}", headers=auth).status_code == 200
    assert client.post(f"/api/admin/inbox/{my_row}/retry", headers=auth).status_code == 200
    with container.sessions() as s:
        assert s.get(InboxRow, their_row).status == "parked"  # type: ignore[union-attr]


def test_admin_sessions_that_do_not_verify_are_refused(client: FlaskClient, container: Container,
                                                       stores: tuple[int, int]) -> None:
    mine, theirs = stores
    good = issue_admin_token(container, mine, STORE)
    claims = jwt.decode(good, options={"verify_signature": False})
    forged_key = jwt.encode(claims, "another-secret-key-of-at-least-32-bytes!", algorithm="HS256")
    other_shop = jwt.encode({**claims, "sub": str(theirs)}, "another-secret-key-of-at-least-32-bytes!", algorithm="HS256")
    expired = issue_admin_token(container, mine, STORE, now=datetime.now(UTC) - timedelta(hours=2))
    mismatched = issue_admin_token(container, theirs, STORE)  # the shop id and its domain disagree
    for case, value in {"forged": forged_key, "another shop, forged": other_shop, "expired": expired,
                        "shop and domain disagree": mismatched, "a plugin token": token(),
                        "alg none": unsigned({"alg": "none"}, claims)}.items():
        answer = client.get("/api/admin/overview", headers={"Authorization": f"Bearer {value}"})
        assert answer.status_code == 401, case
        assert answer.get_json()["error"].startswith("invalid session token"), case

    assert client.get("/api/admin/overview", headers={"Authorization": f"Bearer {good}"}).status_code == 200
    with container.sessions() as s, s.begin():
        s.execute(update(Shop).where(Shop.id == mine).values(uninstalled_at=datetime.now(UTC)))
    gone = client.get("/api/admin/overview", headers={"Authorization": f"Bearer {good}"})
    assert gone.status_code == 401 and gone.get_json()["error"] == "shop is not installed"
