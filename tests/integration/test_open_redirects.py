"""Open redirects: the click-tracking route redirects only to the target signed inside its token, and the referral
landing page only ever links to the shop's own storefront. Tampered targets, scheme-relative `//evil.example`,
other hosts, backslashes, control characters and `javascript:` are refused (400, no Location) or never signed."""

from __future__ import annotations

import base64
import re
from urllib.parse import urlsplit

import orjson
import pytest
from flask.testing import FlaskClient

from app import links
from app.bootstrap import Container
from app.config import Settings
from tests.fakes import FakeStorePlatform
from tests.integration.test_preferences import path
from tests.integration.test_storefront_proxy import signed
from tests.integration.test_tenant_isolation import Shop, _populate

BAD_TARGETS = ["//evil.example/x", "/\\evil.example", "\\\\evil.example", "https:\\\\evil.example",
               "https://shop.example\\@evil.example/", "javascript:alert(document.domain)",
               "JavaScript://shop.example/%0aalert(1)", "data:text/html,<script>alert(1)</script>",
               "https:///evil.example", "https://shop.example/\r\nSet-Cookie: a=b", "ftp://evil.example/",
               "https://shop.example/\x00", "evil.example"]


def _sign_anyway(settings: Settings, payload: object) -> str:
    """A click token as if Encore had signed `payload` without `click_url`'s check (the read must check too)."""
    return f"/t/c/{links._dumps(settings, links.CLICK, payload)}"


def test_a_click_goes_to_the_signed_target_only(client: FlaskClient, container: Container) -> None:
    url = links.click_url(container.settings, 7, "https://shop.example/products/beans?ref=mail")
    response = client.get(path(url))
    assert response.status_code == 302 and response.headers["Location"] == "https://shop.example/products/beans?ref=mail"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example", "javascript:alert(1)"])
def test_a_tampered_target_is_refused(client: FlaskClient, container: Container, target: str) -> None:
    token = path(links.click_url(container.settings, 7, "https://shop.example/")).rsplit("/", 1)[1]
    body, signature = token.split(".")
    forged = base64.urlsafe_b64encode(orjson.dumps([7, target])).rstrip(b"=").decode()
    response = client.get(f"/t/c/{forged}.{signature}")
    assert response.status_code == 400 and "Location" not in response.headers
    # nor is the target accepted in the query or after the token
    for extra in (f"?url={target}", f"?next={target}"):
        kept = client.get(f"/t/c/{token}{extra}")
        assert kept.headers["Location"] == "https://shop.example/"


@pytest.mark.parametrize("target", BAD_TARGETS)
def test_a_bad_target_is_never_signed_nor_followed(client: FlaskClient, container: Container, target: str) -> None:
    with pytest.raises(ValueError):
        links.click_url(container.settings, 7, target)
    response = client.get(_sign_anyway(container.settings, [7, target]))
    assert response.status_code == 400 and "Location" not in response.headers


@pytest.mark.parametrize("target", ["https://evil.example\\@shop.example/", "https://shop.example/\nx"])
def test_tracking_leaves_a_bad_href_alone(container: Container, target: str) -> None:
    html = f'<a href="{target}">x</a><a href="https://shop.example/ok">ok</a>'
    tracked = links.track(html, container.settings, 7)
    assert f'href="{target}"' in tracked and tracked.count("/t/c/") == 1


@pytest.fixture
def shop(container: Container, monkeypatch: pytest.MonkeyPatch) -> Shop:
    store = FakeStorePlatform()
    monkeypatch.setattr("app.shops.store_platform", lambda c, shop_id: store)
    return _populate(container, "zqa", "71001", store)


@pytest.mark.parametrize("code", ["{code}", "UNKNOWN", "%2F%2Fevil.example", "https:%2F%2Fevil.example"])
@pytest.mark.parametrize("extra", [{}, {"return_to": "https://evil.example", "next": "//evil.example",
                                     "redirect": "javascript:x"}])  # signed by the proxy like any other query
def test_the_referral_landing_links_only_to_the_shops_storefront(client: FlaskClient, shop: Shop, code: str,
                                                                 extra: dict[str, str]) -> None:
    path = f"/proxy/r/{code.format(code=shop.ids['code'])}?{signed(None, shop=shop.domain, **extra)}"
    for response in (client.get(path), client.post(path, data={"email": "fred@example.com"})):
        if response.status_code == 308:  # Werkzeug merging the slashes of "//": to the same route on Encore's host
            to = urlsplit(response.headers["Location"])
            assert to.netloc in ("", "localhost") and to.path.startswith("/proxy/r/"), response.headers["Location"]
            continue
        assert response.status_code in (200, 404, 422) and "Location" not in response.headers
        hrefs = re.findall(r'href="([^"]*)"', response.get_data(as_text=True))
        outside = [h for h in hrefs if not h.startswith(("/static/", f"https://{shop.domain}/"))
                   and h != f"https://{shop.domain}"]
        assert not outside, outside
        assert "evil.example" not in response.get_data(as_text=True)
