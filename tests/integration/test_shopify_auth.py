"""Install, OAuth callback, token refresh, tokens at rest and session tokens, against the real database and
(where Shopify takes part) the store simulator over real HTTP."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests
from cryptography.fernet import Fernet
from flask.testing import FlaskClient
from sqlalchemy import func, select, text, update

from app import shops
from app.bootstrap import Container
from app.db.models import InstallNonce, Order, Shop
from app.simulator.shopify import ShopifySimulator, query_hmac
from app.vault import Vault
from app.web.auth import RETRY_HEADER
from connectors.shopify.client import ShopifyAuthError
from tests.conftest import API_KEY, API_SECRET
from tests.helpers import add_shop, delivery
from tests.samples import shopify as sample

SHOP = "auth-store.myshopify.com"
OTHER = "other-store.myshopify.com"
SIM_HOST = "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvZGVtbw"  # the host parameter the simulator's admin sends


class Recorder:
    """Records every request the simulator serves, and can slow its token endpoint down."""

    def __init__(self, sim: ShopifySimulator) -> None:
        self.seen: list[str] = []
        self.token_delay = 0.0
        inner = sim.app.wsgi_app

        def app(environ: dict[str, Any], start_response: Any) -> Any:
            path = environ["PATH_INFO"]
            self.seen.append(f"{environ['REQUEST_METHOD']} {path}")
            if path.endswith("/admin/oauth/access_token") and self.token_delay:
                time.sleep(self.token_delay)
            return inner(environ, start_response)

        sim.app.wsgi_app = app  # type: ignore[method-assign]


def get(url: str, **params: str) -> requests.Response:
    return requests.get(url, params=params or None, allow_redirects=False, timeout=10)


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def start(server: Any, shop: str) -> str:
    """/shopify/install for the shop; returns the authorize URL Encore redirects to."""
    answer = get(f"{server.url}/shopify/install", shop=shop)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def authorize(authorize_url: str) -> dict[str, str]:
    """The merchant approves at the (simulated) store: returns the signed callback's query."""
    answer = get(authorize_url)
    assert answer.status_code == 302, answer.text
    return query_of(answer.headers["Location"])


def callback(server: Any, params: dict[str, str]) -> requests.Response:
    return get(f"{server.url}/shopify/callback", **params)


def resign(params: dict[str, str], **changes: str) -> dict[str, str]:
    changed = {k: v for k, v in params.items() if k != "hmac"} | changes
    return changed | {"hmac": query_hmac(changed, API_SECRET)}


def install(server: Any, sim: ShopifySimulator, c: Container, shop: str = SHOP) -> int:
    assert callback(server, authorize(start(server, shop))).status_code == 302
    with c.sessions() as s:
        found: int = s.scalars(select(Shop.id).where(Shop.domain == shop)).one()
    return found


def shop_row(c: Container, shop_id: int) -> Shop:
    with c.sessions() as s:
        shop = s.get(Shop, shop_id)
        assert shop is not None
        s.expunge(shop)
        return shop


def nonces(c: Container) -> list[InstallNonce]:
    with c.sessions() as s:
        found = list(s.scalars(select(InstallNonce)))
        s.expunge_all()
        return found


@pytest.fixture
def store(live: Any) -> tuple[Any, ShopifySimulator, Container, Recorder]:
    server, sim, c = live
    sim.add_store(SHOP, name="Auth Store", currency="JPY", timezone="Asia/Tokyo", locale="ja")
    sim.add_store(OTHER, name="Other Store")
    return server, sim, c, Recorder(sim)


# --- /shopify/install ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shop", [
    "evil.com", "x.myshopify.com.evil.com", "https://x.myshopify.com/admin", "x.myshopify.com@evil.com",
    "evil.com#.myshopify.com", "x.myshopify.com:443", "myshopify.com", "-x.myshopify.com", "", None,
])
def test_install_refuses_anything_but_a_myshopify_shop_before_any_request(store: Any, shop: str | None) -> None:
    server, sim, c, seen = store
    answer = requests.get(f"{server.url}/shopify/install", params={} if shop is None else {"shop": shop},
                          allow_redirects=False, timeout=10)
    assert (answer.status_code, answer.text) == (400, "shop must be a *.myshopify.com domain")
    assert "Location" not in answer.headers
    assert seen.seen == [] and sim.token_calls == [] and sim.graphql_calls == []
    assert nonces(c) == []


def test_install_redirects_a_valid_shop_to_its_authorize_page_with_a_fresh_state(store: Any) -> None:
    server, sim, c, seen = store
    before = datetime.now(UTC)
    first, second = start(server, SHOP), start(server, SHOP)
    parts = urlsplit(first)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{sim.origin}/shops/{SHOP}/admin/oauth/authorize"
    q = query_of(first)
    assert (q["client_id"], q["scope"], q["redirect_uri"]) == (
        API_KEY, c.settings.shopify_scopes, f"{server.url}/shopify/callback")
    assert len(q["state"]) >= 32 and q["state"] != query_of(second)["state"]
    stored = {n.nonce: n for n in nonces(c)}
    assert set(stored) == {q["state"], query_of(second)["state"]}
    nonce = stored[q["state"]]
    assert (nonce.platform, nonce.shop_domain, nonce.used_at) == ("shopify", SHOP, None)
    assert before + timedelta(minutes=9) < nonce.expires_at <= datetime.now(UTC) + timedelta(minutes=10)
    assert seen.seen == []  # the redirect is the browser's to follow; Encore itself called nobody


# --- the authorization-code grant ------------------------------------------------------------------------


def test_the_authorization_code_flow_installs_the_shop(store: Any) -> None:
    server, sim, c, seen = store
    params = authorize(start(server, SHOP))
    assert (params["shop"], params["host"]) == (SHOP, SIM_HOST)
    answer = callback(server, params)
    assert answer.status_code == 302
    assert answer.headers["Location"] == f"{server.url}/shopify/app?{urlencode({'shop': SHOP, 'host': SIM_HOST})}"
    assert sim.token_calls == ["authorization_code"]
    with c.sessions() as s:
        shop = s.scalars(select(Shop)).one()
        assert (shop.domain, shop.name, shop.currency, shop.timezone, shop.locale) == (
            SHOP, "Auth Store", "JPY", "Asia/Tokyo", "ja")
        assert shop.installed
        held = sim.stores[SHOP].tokens
        assert held is not None
        assert c.vault.open(shop.access_token) == held.access
        assert c.vault.open(shop.refresh_token) == held.refresh
        assert shop.scopes == "read_orders,read_customers,read_products,write_discounts"
    assert [n.used_at is not None for n in nonces(c)] == [True]


def test_a_replayed_callback_is_refused(store: Any) -> None:
    server, sim, c, _ = store
    params = authorize(start(server, SHOP))
    assert callback(server, params).status_code == 302
    with c.sessions() as s:
        shop_id = s.scalars(select(Shop.id).where(Shop.domain == SHOP)).one()
    sealed = shop_row(c, shop_id).access_token
    again = callback(server, params)
    assert (again.status_code, again.text) == (401, "unknown, expired or already used state")
    assert sim.token_calls == ["authorization_code"]  # the replay never reached Shopify
    assert shop_row(c, shop_id).access_token == sealed


def test_a_tampered_hmac_is_refused_and_does_not_spend_the_state(store: Any) -> None:
    server, sim, c, _ = store
    params = authorize(start(server, SHOP))
    flipped = params["hmac"][:-1] + ("0" if params["hmac"][-1] != "0" else "1")
    for forged in (params | {"hmac": flipped}, params | {"code": "attacker-code"}, params | {"shop": f"x{SHOP}"},
                   {k: v for k, v in params.items() if k != "hmac"}):
        answer = callback(server, forged)
        assert (answer.status_code, answer.text) == (401, "invalid signature, timestamp or shop")
    assert sim.token_calls == [] and nonces(c)[0].used_at is None
    with c.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Shop)) == 0
    assert callback(server, params).status_code == 302  # the genuine callback still works


@pytest.mark.parametrize("skew", [-3600, -601, 3600])
def test_a_stale_timestamp_is_refused(store: Any, skew: int) -> None:
    server, sim, c, _ = store
    params = authorize(start(server, SHOP))
    stale = resign(params, timestamp=str(int(time.time()) + skew))
    answer = callback(server, stale)
    assert (answer.status_code, answer.text) == (401, "invalid signature, timestamp or shop")
    assert sim.token_calls == []
    # The same query, re-signed with a fresh timestamp, passes: only the timestamp was wrong.
    assert callback(server, resign(params, timestamp=str(int(time.time())))).status_code == 302


def test_a_state_issued_for_another_shop_is_refused(store: Any) -> None:
    server, sim, c, _ = store
    state = query_of(start(server, SHOP))["state"]
    query = urlencode({"client_id": API_KEY, "redirect_uri": f"{server.url}/shopify/callback", "state": state})
    params = authorize(f"{sim.origin}/shops/{OTHER}/admin/oauth/authorize?{query}")
    assert (params["shop"], params["state"]) == (OTHER, state)  # correctly signed, by the other store
    answer = callback(server, params)
    assert (answer.status_code, answer.text) == (401, "unknown, expired or already used state")
    assert sim.token_calls == []
    with c.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Shop)) == 0


def test_an_unknown_or_expired_state_is_refused(store: Any) -> None:
    server, sim, c, _ = store
    params = authorize(start(server, SHOP))
    assert callback(server, resign(params, state="made-up-state")).status_code == 401
    with c.sessions() as s, s.begin():
        s.execute(update(InstallNonce).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    answer = callback(server, params)
    assert (answer.status_code, answer.text) == (401, "unknown, expired or already used state")
    assert sim.token_calls == []


def test_a_code_shopify_refuses_is_a_401_and_installs_nothing(store: Any) -> None:
    server, sim, c, _ = store
    params = authorize(start(server, SHOP))
    sim.codes.clear()  # the code expired at Shopify
    answer = callback(server, params)
    assert (answer.status_code, answer.text) == (401, "Shopify refused the authorization code")
    assert sim.token_calls == ["authorization_code"]
    with c.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Shop)) == 0


# --- refreshing the expiring offline token -------------------------------------------------------------


def _expire(c: Container, shop_id: int, access_in: timedelta, refresh_in: timedelta = timedelta(days=3)) -> None:
    now = datetime.now(UTC)
    with c.sessions() as s, s.begin():
        s.execute(update(Shop).where(Shop.id == shop_id).values(access_expires_at=now + access_in,
                                                                 refresh_expires_at=now + refresh_in))


def test_a_token_expiring_within_five_minutes_is_refreshed_and_all_four_values_saved(store: Any) -> None:
    server, sim, c, _ = store
    shop_id = install(server, sim, c)
    old = sim.stores[SHOP].tokens
    assert old is not None
    _expire(c, shop_id, timedelta(minutes=4))
    before = datetime.now(UTC)
    token = shops.access_token(c, shop_id)
    after = datetime.now(UTC)
    new = sim.stores[SHOP].tokens
    assert new is not None and token == new.access != old.access
    assert sim.token_calls == ["authorization_code", "refresh_token"]
    shop = shop_row(c, shop_id)
    assert c.vault.open(shop.access_token) == new.access
    assert c.vault.open(shop.refresh_token) == new.refresh != old.refresh
    assert shop.access_expires_at is not None and shop.refresh_expires_at is not None
    assert before + timedelta(seconds=3599) <= shop.access_expires_at <= after + timedelta(seconds=3601)
    assert before + timedelta(days=90, seconds=-1) <= shop.refresh_expires_at <= after + timedelta(days=90, seconds=1)
    # The old refresh token is spent at Shopify: it can never be used again.
    assert old.refresh in sim.stores[SHOP].spent_refresh_tokens
    with pytest.raises(ShopifyAuthError):
        c.shopify.refresh(SHOP, old.refresh)
    # The next call uses the saved token without asking Shopify again, and the token works.
    assert shops.access_token(c, shop_id) == new.access
    assert shops.platform_for(c, shop_id).shop_profile().name == "Auth Store"
    assert sim.token_calls.count("refresh_token") == 2  # the refused attempt above, and no other


def test_a_token_good_for_more_than_five_minutes_is_used_as_is(store: Any) -> None:
    server, sim, c, _ = store
    shop_id = install(server, sim, c)
    old = sim.stores[SHOP].tokens
    assert old is not None
    _expire(c, shop_id, timedelta(minutes=6))
    assert shops.access_token(c, shop_id) == old.access
    assert sim.token_calls == ["authorization_code"]
    assert c.vault.open(shop_row(c, shop_id).refresh_token) == old.refresh


def test_two_threads_at_once_cause_exactly_one_refresh(store: Any) -> None:
    server, sim, c, seen = store
    shop_id = install(server, sim, c)
    _expire(c, shop_id, timedelta(minutes=1))
    seen.token_delay = 0.4  # Shopify is slow: the second caller arrives while the first refresh is in flight
    barrier = threading.Barrier(2)
    results: list[str] = []
    errors: list[BaseException] = []

    def call() -> None:
        barrier.wait()
        try:
            results.append(shops.access_token(c, shop_id))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    new = sim.stores[SHOP].tokens
    assert new is not None
    assert errors == []
    assert results == [new.access, new.access]
    assert sim.token_calls.count("refresh_token") == 1
    assert c.vault.open(shop_row(c, shop_id).refresh_token) == new.refresh


def test_a_refused_refresh_raises_and_keeps_the_stored_tokens(store: Any) -> None:
    server, sim, c, _ = store
    shop_id = install(server, sim, c)
    before = shop_row(c, shop_id)
    _expire(c, shop_id, timedelta(minutes=1))
    sim.stores[SHOP].tokens = None  # the merchant uninstalled at Shopify
    with pytest.raises(ShopifyAuthError):
        shops.access_token(c, shop_id)
    after = shop_row(c, shop_id)
    assert (after.access_token, after.refresh_token) == (before.access_token, before.refresh_token)


# --- tokens at rest ------------------------------------------------------------------------------------


def _raw(c: Container, shop_id: int) -> tuple[bytes, bytes]:
    with c.engine.connect() as conn:
        row = conn.execute(text("SELECT access_token, refresh_token FROM shops WHERE id = :id"), {"id": shop_id}).one()
    return bytes(row[0]), bytes(row[1])


def test_tokens_are_encrypted_at_rest(store: Any) -> None:
    server, sim, c, _ = store
    shop_id = install(server, sim, c)
    held = sim.stores[SHOP].tokens
    assert held is not None
    access, refresh = _raw(c, shop_id)
    for raw, plain in ((access, held.access), (refresh, held.refresh)):
        assert plain.encode() not in raw
        assert plain.removeprefix("shpat_").removeprefix("shprt_").encode() not in raw
        assert raw.startswith(b"gAAAAA")  # a Fernet token
        assert Vault(c.settings.encryption_keys).open(raw) == plain
    with pytest.raises(ValueError, match="cannot be decrypted"):
        Vault((Fernet.generate_key().decode(),)).open(access)


def test_rotate_keys_reseals_every_token_under_the_new_first_key(store: Any) -> None:
    server, sim, c, _ = store
    shop_id = install(server, sim, c)
    other_id = add_shop(c, "sealed-elsewhere.myshopify.com")  # sealed "shpat_x", no refresh token
    held = sim.stores[SHOP].tokens
    assert held is not None
    old_key, new_key = c.settings.encryption_keys[0], Fernet.generate_key().decode()
    before = _raw(c, shop_id)
    c.vault = Vault((new_key, old_key))
    assert shops.rotate_keys(c) == 2
    access, refresh = _raw(c, shop_id)
    assert (access, refresh) != before
    only_new, only_old = Vault((new_key,)), Vault((old_key,))
    assert (only_new.open(access), only_new.open(refresh)) == (held.access, held.refresh)
    with pytest.raises(ValueError):
        only_old.open(access)
    with pytest.raises(ValueError):
        only_old.open(refresh)
    assert only_new.open(shop_row(c, other_id).access_token) == "shpat_x"
    assert shop_row(c, other_id).refresh_token is None
    c.vault = only_new  # the old key retired: Encore still reads its tokens
    assert shops.access_token(c, shop_id) == held.access


# --- session tokens on the admin API ---------------------------------------------------------------------

A, B = "shop-a.myshopify.com", "shop-b.myshopify.com"
MINTER = ShopifySimulator(api_key=API_KEY, api_secret=API_SECRET, app_url="http://127.0.0.1:1")  # never started


def _b64(part: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def _unsigned() -> str:
    claims = jwt.decode(MINTER.session_token(A), options={"verify_signature": False})
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


def _hs512() -> str:
    claims = jwt.decode(MINTER.session_token(A), options={"verify_signature": False})
    return jwt.encode(claims, API_SECRET, algorithm="HS512")


BAD_AUTH: dict[str, Callable[[], str | None]] = {
    "missing": lambda: None,
    "empty bearer": lambda: "Bearer ",
    "not a bearer": lambda: f"Token {MINTER.session_token(A)}",
    "garbage": lambda: "Bearer not.a.jwt",
    "expired": lambda: f"Bearer {MINTER.session_token(A, ttl=-100)}",
    "not yet valid": lambda: f"Bearer {MINTER.session_token(A, nbf=int(time.time()) + 300)}",
    "wrong audience": lambda: f"Bearer {MINTER.session_token(A, aud='another-apps-key')}",
    "another secret": lambda: f"Bearer {MINTER.session_token(A, secret='shpss_another_apps_secret_0123456789abcd')}",
    "alg none": lambda: f"Bearer {_unsigned()}",
    "alg HS512": lambda: f"Bearer {_hs512()}",
    "issuer is another shop": lambda: f"Bearer {MINTER.session_token(A, iss=f'https://{B}/admin')}",
    "not a myshopify shop": lambda: f"Bearer {MINTER.session_token('evil.com')}",
    "shop not installed": lambda: f"Bearer {MINTER.session_token('ghost.myshopify.com')}",
    "shop uninstalled": lambda: f"Bearer {MINTER.session_token('gone.myshopify.com')}",
}


def _send_order(client: FlaskClient, c: Container, shop: str, order_id: int) -> None:
    payload = dict(sample.ORDER, id=order_id, name=f"#{order_id}", fulfillments=[])
    body, headers = delivery("orders/create", payload, shop=shop, event_id=f"{shop}-{order_id}")
    assert client.post("/webhooks/shopify", data=body, headers=headers).status_code == 200


@pytest.fixture
def two_shops(client: FlaskClient, container: Container) -> FlaskClient:
    add_shop(container, A)
    add_shop(container, B)
    add_shop(container, "gone.myshopify.com", installed=False)
    for shop, order_id in ((A, 1001), (A, 1002), (B, 2001)):
        _send_order(client, container, shop, order_id)
    assert container.queue.drain(10)  # type: ignore[attr-defined]
    with container.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 3
    return client


@pytest.mark.parametrize("case", list(BAD_AUTH))
def test_a_bad_session_token_is_401_with_the_retry_header(two_shops: FlaskClient, case: str) -> None:
    auth = BAD_AUTH[case]()
    answer = two_shops.get("/api/admin/overview", headers={} if auth is None else {"Authorization": auth})
    assert answer.status_code == 401
    assert answer.headers.get(RETRY_HEADER) == "1"
    assert RETRY_HEADER == "X-Shopify-Retry-Invalid-Session-Request"
    body = answer.get_json()
    assert list(body) == ["error"] and A not in json.dumps(body) and "1001" not in json.dumps(body)


def test_a_valid_session_token_sees_its_own_shop_and_nothing_else(two_shops: FlaskClient) -> None:
    seen: dict[str, tuple[str, list[str]]] = {}
    for shop in (A, B):
        answer = two_shops.get("/api/admin/overview",
                               headers={"Authorization": f"Bearer {MINTER.session_token(shop)}"})
        assert answer.status_code == 200
        assert RETRY_HEADER not in answer.headers
        body = answer.get_json()
        seen[shop] = (body["shop"]["domain"], sorted(o["id"] for o in body["orders"]))
    assert seen == {A: (A, ["1001", "1002"]), B: (B, ["2001"])}
