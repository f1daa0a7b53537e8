"""Signed customer links: each reads back what it was made with, any change to any part of a token is refused,
a token made for one purpose never reads as another, and track() rewrites only what it should."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app import links
from app.config import Settings
from app.links import BadLink

SETTINGS = Settings(secret_key="unit-test-secret", app_url="https://encore.example")
OTHER_KEY = SETTINGS.with_(secret_key="another-secret")


def _token(url: str, prefix: str) -> str:
    assert url.startswith(f"https://encore.example/{prefix}/"), url
    return url.removeprefix(f"https://encore.example/{prefix}/").removesuffix(".gif")


def test_each_link_reads_back_what_it_was_made_with() -> None:
    p = _token(links.preferences_url(SETTINGS, 4, "cust-1", "ko"), "p")
    assert links.read_preferences(SETTINGS, p) == links.PreferenceLink(4, "cust-1", "ko")
    assert links.read_preferences(SETTINGS, _token(links.preferences_url(SETTINGS, 4, "c"), "p")).locale is None
    u = _token(links.unsubscribe_url(SETTINGS, 4, "cust-1", 99), "u")
    assert links.read_unsubscribe(SETTINGS, u) == links.UnsubscribeLink(4, "cust-1", 99)
    assert links.read_unsubscribe(SETTINGS, _token(links.unsubscribe_url(SETTINGS, 4, "c"), "u")).message_id is None
    o = _token(links.open_pixel_url(SETTINGS, 99), "t/o")
    assert links.open_pixel_url(SETTINGS, 99).endswith(".gif") and links.read_open(SETTINGS, o) == 99
    target = "https://shop.example/products/mug?utm_source=encore&x=%E2%9C%93#reviews"
    c = _token(links.click_url(SETTINGS, 99, target), "t/c")
    assert links.read_click(SETTINGS, c) == links.ClickLink(99, target)
    for token in (p, u, o, c):
        assert all(ch.isalnum() or ch in "-_." for ch in token)  # safe in a path as it is


def test_tokens_are_what_itsdangerous_makes_and_reads() -> None:
    """The links are signed by hand for speed, in itsdangerous's own format: where the serializer would not
    compress (short payloads), it makes the very same token; a token it compresses reads back all the same."""
    import hashlib

    from itsdangerous import URLSafeSerializer

    def serializer(salt: str) -> URLSafeSerializer:
        return URLSafeSerializer(SETTINGS.secret_key, salt=salt, signer_kwargs={"digest_method": hashlib.sha256})

    assert _token(links.open_pixel_url(SETTINGS, 4242), "t/o") == serializer(links.OPEN).dumps(4242)
    assert (_token(links.unsubscribe_url(SETTINGS, 7, "c-1", 9), "u")
            == serializer(links.UNSUBSCRIBE).dumps([7, "c-1", 9]))
    long_target = "https://shop.example/" + "products/" * 40
    compressed = serializer(links.CLICK).dumps([5, long_target])
    assert compressed.startswith(".")  # itsdangerous chose zlib here; Encore reads it as well
    assert links.read_click(SETTINGS, compressed) == links.ClickLink(5, long_target)
    assert links.read_click(SETTINGS, _token(links.click_url(SETTINGS, 5, long_target), "t/c")).target == long_target


@pytest.mark.parametrize("target", ["javascript:alert(1)", "mailto:a@example.com", "/relative", "//evil.example/x",
                                    "ftp://files.example/x", "https:///no-host", "data:text/html,hi"])
def test_only_web_targets_are_tracked(target: str) -> None:
    with pytest.raises(ValueError):
        links.click_url(SETTINGS, 1, target)


def _tampered(token: str) -> list[str]:
    payload, _, signature = token.rpartition(".")

    def flip(text: str, at: int) -> str:  # a whole base64 digit, not only the unused low bits of the last one
        return text[:at] + ("A" if text[at] != "A" else "Q") + text[at + 1:]

    return [
        flip(payload, 0) + "." + signature,  # payload changed
        flip(payload, len(payload) // 2) + "." + signature,
        payload + "." + flip(signature, 0),  # signature changed
        payload + "." + flip(signature, len(signature) // 2),
        payload + "." + signature[:-2],  # signature cut short
        payload,  # no signature
        "." + signature,  # no payload
        "",
        token + "x",
    ]


def _forged(payload: object) -> str:
    """A token with a well-formed payload and a made-up signature."""
    raw = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")
    return raw + "." + "A" * 43


@pytest.mark.parametrize("make, read", [
    (lambda s: links.preferences_url(s, 4, "cust-1"), links.read_preferences),
    (lambda s: links.unsubscribe_url(s, 4, "cust-1", 7), links.read_unsubscribe),
    (lambda s: links.open_pixel_url(s, 7), links.read_open),
    (lambda s: links.click_url(s, 7, "https://shop.example/"), links.read_click),
])
def test_any_change_to_any_part_of_a_token_is_refused(make: object, read: object) -> None:
    url = make(SETTINGS)  # type: ignore[operator]
    token = url.rsplit("/", 1)[1].removesuffix(".gif")
    for bad in _tampered(token):
        with pytest.raises(BadLink):
            read(SETTINGS, bad)  # type: ignore[operator]
    with pytest.raises(BadLink):  # signed with another key
        read(SETTINGS, make(OTHER_KEY).rsplit("/", 1)[1].removesuffix(".gif"))  # type: ignore[operator]
    with pytest.raises(BadLink):
        read(SETTINGS, _forged([5, "cust-2", None]))  # type: ignore[operator]


def test_a_token_for_one_purpose_never_reads_as_another() -> None:
    tokens = {
        "p": _token(links.preferences_url(SETTINGS, 4, "cust-1"), "p"),
        "u": _token(links.unsubscribe_url(SETTINGS, 4, "cust-1", None), "u"),
        "o": _token(links.open_pixel_url(SETTINGS, 4), "t/o"),
        "c": _token(links.click_url(SETTINGS, 4, "https://shop.example/"), "t/c"),
    }
    readers = {"p": links.read_preferences, "u": links.read_unsubscribe, "o": links.read_open, "c": links.read_click}
    for kind, token in tokens.items():
        for other, read in readers.items():
            if other != kind:
                with pytest.raises(BadLink):
                    read(SETTINGS, token)


def test_the_form_token_is_bound_to_its_link() -> None:
    a, b = _token(links.preferences_url(SETTINGS, 4, "a"), "p"), _token(links.preferences_url(SETTINGS, 4, "b"), "p")
    csrf = links.form_token(SETTINGS, a)
    assert links.valid_form_token(SETTINGS, a, csrf)
    assert not links.valid_form_token(SETTINGS, b, csrf)
    assert not links.valid_form_token(OTHER_KEY, a, csrf)
    assert not links.valid_form_token(SETTINGS, a, None) and not links.valid_form_token(SETTINGS, a, "")


EMAIL = """<!doctype html>
<html><head><style>a { color: red }</style></head>
<BODY>
<p>Hi Mina, <a href="https://shop.example/p/1?a=1&amp;b=2" class="btn">See the mug</a>
and <a class=x HREF='http://shop.example/q'>this</a> or <a href=https://shop.example/r>that</a>.</p>
<a href="mailto:help@shop.example">Mail us</a> <a href="tel:+821055501234">Call</a> <a href="#top">Top</a>
<a name="anchor">no href</a> <a href="/relative">relative</a>
<a title="href=https://not.this" href="https://shop.example/s">s</a>
<script>var x = '<a href="https://inside.script">';</script>
<!-- <a href="https://inside.comment"> -->
<a href="{prefs}">Preferences</a> <a href="{unsub}">Unsubscribe</a>
<img src="https://shop.example/logo.png" alt="Logo">
</BODY>
</html>
"""


def test_track_rewrites_web_links_and_adds_the_pixel_and_changes_nothing_else() -> None:
    prefs = links.preferences_url(SETTINGS, 4, "cust-1")
    unsub = links.unsubscribe_url(SETTINGS, 4, "cust-1", 9)
    html = EMAIL.replace("{prefs}", prefs).replace("{unsub}", unsub)
    tracked = links.track(html, SETTINGS, 9)
    expected = html
    for target, quote, raw in [
        ("https://shop.example/p/1?a=1&b=2", '"', '"https://shop.example/p/1?a=1&amp;b=2"'),
        ("http://shop.example/q", "'", "'http://shop.example/q'"),
        ("https://shop.example/r", '"', "https://shop.example/r"),
        ("https://shop.example/s", '"', '"https://shop.example/s"'),
    ]:
        assert expected.count(raw) == 1
        expected = expected.replace(raw, quote + links.click_url(SETTINGS, 9, target) + quote)
    pixel = (f'<img src="{links.open_pixel_url(SETTINGS, 9)}" width="1" height="1" alt="" '
             'style="display:block;width:1px;height:1px;border:0">')
    expected = expected.replace("</BODY>", pixel + "</BODY>")
    assert tracked == expected
    for untouched in ("mailto:help@shop.example", "tel:+821055501234", 'href="#top"', 'href="/relative"',
                      "https://inside.script", "https://inside.comment", prefs, unsub, 'title="href=https://not.this"'):
        assert untouched in tracked
    clicks = [links.read_click(SETTINGS, part.split('"')[0].split("'")[0])
              for part in tracked.split("https://encore.example/t/c/")[1:]]
    assert [c.target for c in clicks] == ["https://shop.example/p/1?a=1&b=2", "http://shop.example/q",
                                          "https://shop.example/r", "https://shop.example/s"]
    assert {c.message_id for c in clicks} == {9}


def test_track_without_a_body_puts_the_pixel_at_the_end_and_keeps_odd_html() -> None:
    fragment = "<p>caf\u00e9 \u2615</p>\r\n<a href='https://shop.example/x'>x</a><br/>&nbsp;"
    tracked = links.track(fragment, SETTINGS, 3)
    link = links.click_url(SETTINGS, 3, "https://shop.example/x")
    assert tracked.startswith("<p>caf\u00e9 \u2615</p>\r\n<a href='" + link + "'>")
    assert tracked.endswith("<br/>&nbsp;" + f'<img src="{links.open_pixel_url(SETTINGS, 3)}" width="1" height="1" '
                            'alt="" style="display:block;width:1px;height:1px;border:0">')
    assert links.track("", SETTINGS, 3).startswith("<img ")


# The single pattern track() once used, kept here as the reference its faster scanner must agree with.
_REFERENCE = re.compile(r"""<!--.*?-->|<(script|style)\b.*?</\1\s*>|<a(?=[\s/>])(?:[^>"']|"[^"]*"|'[^']*')*>""",
                        re.IGNORECASE | re.DOTALL)


def _reference_anchors(html: str, rewrite: Any) -> str:
    def anchor(m: re.Match[str]) -> str:
        tag = m.group(0)
        return tag if tag.startswith("<!--") or m.group(1) else links._retarget(tag, rewrite)
    return _REFERENCE.sub(anchor, html)


_PIECES = st.sampled_from([
    "<a href='https://shop.example/a'>", '<A HREF="https://shop.example/b?x=1&amp;y=2">', "<a href=https://s.example/c>",
    '<a title="x>y" href="https://shop.example/d">', "<a", "<a ", "<abbr>", "</a>", ">", "'", '"', "<!--", "-->",
    "<!-- <a href='https://c.example/'> -->", "<script>", "</script>", "<SCRIPT type=x>", "</Script >", "<style>",
    "</style>", "<styles>", "<a\nhref='https://shop.example/e'\n>", "<p>", "text", " ", "\u00e9", "<a/>",
])


@given(st.lists(_PIECES, max_size=14).map("".join))
@settings(max_examples=400, deadline=None)
def test_the_anchor_scanner_rewrites_exactly_what_the_reference_pattern_rewrites(html: str) -> None:
    def rewrite(url: str) -> str:
        return f"https://t.example/{len(url)}?u={url}"
    assert links._anchors(html, rewrite) == _reference_anchors(html, rewrite)
