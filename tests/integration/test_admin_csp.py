"""The script Content-Security-Policy of the admin pages (app/web/csp.py), checked by walking every route.

Every rule in the app's URL map is called, with credentials that open whatever it guards: GET with a Shopify ID
token, a WordPress sign-in token, the shop and host (and once more with none, as Shopify's bounce sees it), POST
with Encore's admin token as a store's page posts it. Every HTML page answered (2xx) must carry a policy under which
no inline or foreign script runs; a page that may be framed (an admin page) must carry the admin policy, and every
script, stylesheet and style its markup has must be one that policy allows. The walk must reach each admin page
named here, in both shells, so it cannot pass by reaching nothing; and a page added without the policy fails it
(`test_a_new_admin_page_without_the_policy_fails_the_walk`).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import jwt
import pytest
from flask import Flask, Response, render_template
from flask.testing import FlaskClient

from app import create_app
from app.bootstrap import Container
from app.config import Settings
from app.db.models import Shop
from app.simulator.shopify import ShopifySimulator
from app.web import csp
from app.web.auth import issue_admin_token
from app.web.pages import NAV
from tests.conftest import API_KEY, API_SECRET
from tests.helpers import add_shop

DOMAIN = "csp-shop.myshopify.com"
STORE = "https://csp-store.example"
CONSUMER_KEY, CONSUMER_SECRET = "ck_" + "e5" * 20, "cs_" + "f6" * 20
BRIDGE = "https://bridge.example.net/shopifycloud/v4/app-bridge.js"  # not the default: the policy follows settings
BRIDGE_SCRIPTS, BRIDGE_ORIGIN = "https://bridge.example.net/shopifycloud/v4/", "https://bridge.example.net"
MINTER = ShopifySimulator(api_key=API_KEY, api_secret=API_SECRET, app_url="http://127.0.0.1:1")  # never started

# Pages that must be reached, as (endpoint, how): the walk proves itself on them.
ADMIN_PAGES = {("shopify.app_home", "signed"), ("shopify.app_home", "plain"), ("woocommerce.admin", "signed"),
               ("loyalty_admin.store_home", "post")}
ADMIN_PAGES |= {(f"{p.blueprint}.page", how) for p in NAV for how in ("signed", "plain")}
ADMIN_PAGES |= {(f"{p.blueprint}.store_page", "post") for p in NAV}
# HTML that is not an admin page and has no policy yet, with the reason; nothing else may be here.
UNPOLICED: dict[str, str] = {}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_(app_bridge_url=BRIDGE)


@dataclass(frozen=True)
class Seen:
    endpoint: str
    how: str
    path: str
    response: Any


def parse(policy: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            assert words[0].lower() not in directives, f"{words[0]} twice in {policy!r}"
            directives[words[0].lower()] = words[1:]
    return directives


class Markup(HTMLParser):
    """What a page's markup asks of the policy: scripts (src, or inline with its type), stylesheets, inline styles."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[str | None, str]] = []
        self.stylesheets: list[str] = []
        self.inline_styles = 0
        self.handlers: list[str] = []
        self.preview_frame = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script":
            self.scripts.append((a.get("src"), (a.get("type") or "").lower()))
        elif tag == "link" and (a.get("rel") or "").lower() == "stylesheet":
            self.stylesheets.append(a.get("href") or "")
        elif tag == "style":
            self.inline_styles += 1
        elif tag == "iframe" and "preview-frame" in (a.get("class") or "").split():
            self.preview_frame = True
        if "style" in a:
            self.inline_styles += 1
        self.handlers += [f"{tag} {name}" for name in a if name.startswith("on")]


def _allowed(url: str, sources: list[str]) -> bool:
    if url.startswith("/") and not url.startswith("//"):
        return "'self'" in sources
    return any(s.endswith("/") and url.startswith(s) for s in sources)


def problems(seen: Seen) -> list[str]:
    """What is wrong with one HTML page's policy; [] when it is right."""
    where, r = f"{seen.endpoint} ({seen.how} {seen.path})", seen.response
    policy = r.headers.get(csp.HEADER)
    if policy is None:
        return [] if seen.endpoint in UNPOLICED else [f"{where}: HTML without a Content-Security-Policy"]
    d = parse(policy)
    found: list[str] = []
    script = d.get("script-src", d.get("default-src"))
    if script is None or not set(script) <= {"'self'", "'none'", BRIDGE_SCRIPTS}:
        found.append(f"{where}: script-src {script} lets more than Encore's and App Bridge's files run")
    if d.get("object-src", d.get("default-src")) != ["'none'"] or d.get("base-uri") != ["'none'"]:
        found.append(f"{where}: object-src and base-uri must be 'none'")
    if d.get("frame-ancestors") == ["'none'"]:
        return found  # a page no one frames (the shoppers' pages, app/web/public.py): stricter, its own policy
    # An admin page: the admin policy, frame-ancestors first (as it always was), and markup it allows.
    markup = Markup()
    markup.feed(r.get_data(as_text=True))
    if next(iter(d)) != "frame-ancestors" or not d["frame-ancestors"]:
        found.append(f"{where}: frame-ancestors must come first")
    for name, value in (("default-src", ["'self'"]), ("form-action", ["'self'"])):
        if d.get(name) != value:
            found.append(f"{where}: {name} {d.get(name)}, not {value}")
    if not set(d.get("connect-src", ["?"])) <= {"'self'", BRIDGE_ORIGIN}:
        found.append(f"{where}: connect-src {d.get('connect-src')}")
    loose = {"style-src": "'unsafe-inline'", "img-src": "https:"}
    for name, base in (("style-src", ["'self'"]), ("img-src", ["'self'", "data:"])):
        # Looser only where the email preview (a srcdoc frame, which inherits the policy) needs it.
        if d.get(name) not in (base, base + [loose[name]] if markup.preview_frame else base):
            found.append(f"{where}: {name} {d.get(name)}")
    for src, kind in markup.scripts:
        if src is None and kind != "application/json":
            found.append(f"{where}: an inline script, which the policy blocks")
        elif src is not None and not _allowed(src, script or []):
            found.append(f"{where}: script {src} is not allowed by script-src {script}")
    style = d.get("style-src", d.get("default-src", []))
    found += [f"{where}: stylesheet {h} not allowed" for h in markup.stylesheets if not _allowed(h, style)]
    if markup.inline_styles and "'unsafe-inline'" not in style:
        found.append(f"{where}: {markup.inline_styles} inline style(s), which style-src blocks")
    found += [f"{where}: an inline event handler ({h}), which the policy blocks" for h in markup.handlers]
    if ('name="shopify-api-key"' in r.get_data(as_text=True)) != (BRIDGE_SCRIPTS in (script or [])):
        found.append(f"{where}: App Bridge in the page and in script-src must go together")
    return found


def _path(rule: Any) -> str:
    values = {name: 1 if type(conv).__name__ == "IntegerConverter" else "x" for name, conv in rule._converters.items()}
    return str(rule.build(values, append_unknown=False)[1])


def wp_token() -> str:
    """A sign-in token as the WordPress plugin mints it (connectors/woocommerce/wordpress), single use."""
    now = int(time.time())
    claims = {"iss": STORE, "aud": "encore", "sub": "1", "iat": now, "exp": now + 60, "jti": secrets.token_hex(16),
              "locale": "en_US"}
    return jwt.encode(claims, CONSUMER_SECRET, algorithm="HS256", headers={"kid": CONSUMER_KEY[-7:]})


def walk(app: Flask, client: FlaskClient, admin_token: str) -> Iterator[Seen]:
    """Every rule, every way in; the 2xx HTML answers."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = _path(rule)
        methods = rule.methods or set()
        calls: list[tuple[str, str, dict[str, Any]]] = []
        if "GET" in methods:
            calls.append(("signed", "GET", {"query_string": {
                "shop": DOMAIN, "host": "YWRtaW4", "id_token": MINTER.session_token(DOMAIN), "token": wp_token(),
                "locale": "en"}}))
            calls.append(("plain", "GET", {"query_string": {"shop": DOMAIN, "host": "YWRtaW4", "embedded": "1"}}))
        if "POST" in methods:
            calls.append(("post", "POST", {"data": {"token": admin_token, "locale": "en"}}))
        for how, method, options in calls:
            response = client.open(path, method=method, **options)
            if 200 <= response.status_code < 300 and response.mimetype == "text/html":
                yield Seen(rule.endpoint, how, path, response)


@pytest.fixture
def admin_token(container: Container) -> str:
    add_shop(container, DOMAIN)
    with container.sessions() as s, s.begin():
        store = Shop(platform="woocommerce", domain=STORE, name="CSP Store", api_key=container.vault.seal(CONSUMER_KEY),
                     api_secret=container.vault.seal(CONSUMER_SECRET), installed_at=datetime.now(UTC))
        s.add(store)
        s.flush()
        store_id = store.id
    return issue_admin_token(container, store_id, STORE)


def test_every_admin_html_page_runs_only_encores_and_app_bridges_scripts(app: Flask, client: FlaskClient,
                                                                          admin_token: str) -> None:
    seen = list(walk(app, client, admin_token))
    reached = {(s.endpoint, s.how) for s in seen if s.endpoint not in UNPOLICED}
    assert ADMIN_PAGES <= reached, f"the walk did not reach {sorted(ADMIN_PAGES - reached)}"
    assert [p for s in seen for p in problems(s)] == []
    assert {s.endpoint for s in seen if csp.HEADER not in s.response.headers} <= set(UNPOLICED)

    # Spot checks of what the walk accepted: the policy is the one app/web/csp.py writes, from the settings.
    shell = next(s.response for s in seen if (s.endpoint, s.how) == ("shopify.app_home", "signed"))
    assert 'id="orders"' in shell.get_data(as_text=True)  # the embedded admin itself, not the bounce
    assert shell.headers[csp.HEADER] == (
        f"frame-ancestors https://{DOMAIN} https://admin.shopify.com; default-src 'self'; "
        f"script-src 'self' {BRIDGE_SCRIPTS}; style-src 'self' 'unsafe-inline'; img-src 'self' data: https:; "
        f"connect-src 'self' {BRIDGE_ORIGIN}; object-src 'none'; base-uri 'none'; form-action 'self';")
    bounce = next(s.response for s in seen if (s.endpoint, s.how) == ("shopify.app_home", "plain"))
    assert "/static/bounce.js" in bounce.get_data(as_text=True)
    assert bounce.headers[csp.HEADER] == csp.admin_policy(("https://admin.shopify.com", "https://*.myshopify.com"),
                                                          app_bridge_url=BRIDGE)
    loyalty = next(s.response for s in seen if (s.endpoint, s.how) == ("loyalty_admin.page", "plain"))
    assert loyalty.headers[csp.HEADER] == csp.admin_policy((f"https://{DOMAIN}", "https://admin.shopify.com"),
                                                           app_bridge_url=BRIDGE)
    assert "'unsafe-inline'" not in loyalty.headers[csp.HEADER]
    store_page = next(s.response for s in seen if (s.endpoint, s.how) == ("segments_admin.store_page", "post"))
    assert store_page.headers[csp.HEADER] == (
        f"frame-ancestors {STORE}; default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self';")
    assert store_page.headers["Cache-Control"] == "no-store" and store_page.headers["Referrer-Policy"] == "no-referrer"
    wordpress = next(s.response for s in seen if s.endpoint == "woocommerce.admin")
    assert wordpress.headers[csp.HEADER] == csp.admin_policy((STORE,), email_preview=True)
    assert wordpress.headers["Cache-Control"] == "no-store"


def test_a_new_admin_page_without_the_policy_fails_the_walk(settings: Settings, container: Container,
                                                            admin_token: str) -> None:
    app = create_app(settings, container=container)

    def frame_only() -> Response:  # what every admin page sent before: frame-ancestors and nothing else
        html = render_template("admin_page.html", shop=DOMAIN, locale="en", _=str, session_token="", host="",
                               api_key=API_KEY, app_bridge_url=BRIDGE, admin_url="/")
        response = Response(html, mimetype="text/html")
        response.headers[csp.HEADER] = f"frame-ancestors https://{DOMAIN} https://admin.shopify.com;"
        return response

    def inline_script() -> Response:  # the policy, but markup it would block
        html = '<!doctype html><html><head><script>alert(1)</script></head><body style="color: red"></body></html>'
        return csp.admin_response(html, (STORE,))

    def no_policy() -> Response:
        return Response("<!doctype html><p>hello</p>", mimetype="text/html")

    app.add_url_rule("/admin/new-page", "new_admin.page", frame_only)
    app.add_url_rule("/admin/inline", "new_admin.inline", inline_script)
    app.add_url_rule("/admin/bare", "new_admin.bare", no_policy)
    found = [p for s in walk(app, app.test_client(), admin_token) for p in problems(s)]
    assert any(p.startswith("new_admin.page (signed") and "script-src None" in p for p in found), found
    assert any(p.startswith("new_admin.page") and "default-src None" in p for p in found), found
    assert any(p.startswith("new_admin.inline") and "an inline script" in p for p in found), found
    assert any(p.startswith("new_admin.inline") and "inline style" in p for p in found), found
    assert any(p.startswith("new_admin.bare") and "without a Content-Security-Policy" in p for p in found), found
    assert all(p.startswith("new_admin.") for p in found), found


# --- the policy itself ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "scripts", "origin"), [
    ("https://cdn.shopify.com/shopifycloud/app-bridge.js", "https://cdn.shopify.com/shopifycloud/",
     "https://cdn.shopify.com"),
    ("http://127.0.0.1:8123/app-bridge.js", "http://127.0.0.1:8123/", "http://127.0.0.1:8123"),
    ("//cdn.example.com/ab/app-bridge.js?v=4", "https://cdn.example.com/ab/", "https://cdn.example.com"),
    ("/static/app-bridge.js", "", ""),  # Encore's own: 'self' already allows it
    ("", "", ""),
])
def test_app_bridge_sources_come_from_the_setting(url: str, scripts: str, origin: str) -> None:
    assert (csp.script_folder(url), csp.origin(url)) == (scripts, origin)
    policy = parse(csp.admin_policy(("https://a.example",), app_bridge_url=url))
    assert policy["script-src"] == ["'self'"] + ([scripts] if scripts else [])
    assert policy["connect-src"] == ["'self'"] + ([origin] if origin else [])


@pytest.mark.parametrize("url", ["https://cdn.example.com; script-src *", "https://cdn.example.com/a b/x.js",
                                 "https://cdn.example.com/'unsafe-inline'/x.js"])
def test_a_setting_that_would_change_the_policy_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="not a CSP source"):
        csp.admin_policy(("https://a.example",), app_bridge_url=url)
    with pytest.raises(ValueError, match="not a CSP source"):
        csp.admin_policy((url,))
