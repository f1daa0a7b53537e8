"""Signed links in the messages customers get: the preference center, one-click unsubscribe, open and click tracking,
the satisfaction survey.

Each purpose signs with its own salt under `settings.secret_key` (HMAC-SHA256, itsdangerous), so a token made for
one purpose never reads as another. The links carry no expiry: an unsubscribe link must keep working as long as
the email sits in an inbox. A token that does not verify, or verifies to a payload of the wrong shape, raises
`BadLink`. A click's target lives only inside its signed token, so the click route can never redirect elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from functools import lru_cache
from html import escape, unescape
from typing import Any
from urllib.parse import urlsplit

import orjson
from itsdangerous import BadData, URLSafeSerializer

from app.config import Settings

PREFERENCES, UNSUBSCRIBE, OPEN, CLICK = "encore.preferences", "encore.unsubscribe", "encore.open", "encore.click"
SURVEY = "encore.survey"
FORM = b"encore.preferences.form"


class BadLink(ValueError):
    """A token that was tampered with, forged, cut short or made for another purpose."""


@dataclass(frozen=True)
class PreferenceLink:
    shop_id: int
    customer_id: str
    locale: str | None = None


@dataclass(frozen=True)
class UnsubscribeLink:
    shop_id: int
    customer_id: str
    message_id: int | None = None


@dataclass(frozen=True)
class ClickLink:
    message_id: int
    target: str


def _serializer(settings: Settings, salt: str) -> URLSafeSerializer:
    if not settings.secret_key:
        raise RuntimeError("settings.secret_key is empty: links cannot be signed")
    return _serializer_for(settings.secret_key, salt)


@lru_cache(maxsize=64)
def _serializer_for(secret_key: str, salt: str) -> URLSafeSerializer:
    """One serializer per key and purpose (a dispatcher signs several links in every message)."""
    return URLSafeSerializer(secret_key, salt=salt, signer_kwargs={"digest_method": hashlib.sha256})


@lru_cache(maxsize=64)
def _signing_hmac(secret_key: str, salt: str) -> hmac.HMAC:
    """HMAC-SHA256 under itsdangerous's derived key for a salt ("django-concat"), keyed once; each token signs
    with a copy of it (the key's own hashing done once, not per link)."""
    if not secret_key:
        raise RuntimeError("settings.secret_key is empty: links cannot be signed")
    return hmac.new(hashlib.sha256(salt.encode() + b"signer" + secret_key.encode()).digest(), digestmod=hashlib.sha256)


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _dumps(settings: Settings, salt: str, payload: Any) -> str:
    """The token `URLSafeSerializer(secret_key, salt, digest SHA-256).dumps(payload)` would make, less its
    optional zlib step: compact JSON, base64url, "." and the HMAC-SHA256 of that. The serializer reads it
    (`_loads`); a dispatcher signs several links in every message, and this is a tenth of the serializer's cost."""
    body = _b64(orjson.dumps(payload))
    mac = _signing_hmac(settings.secret_key, salt).copy()
    mac.update(body)
    return (body + b"." + _b64(mac.digest())).decode()


def _loads(settings: Settings, salt: str, token: str) -> Any:
    try:
        return _serializer(settings, salt).loads(token)
    except BadData as exc:
        raise BadLink(f"bad {salt.rsplit('.', 1)[-1]} link") from exc
    except (UnicodeError, ValueError) as exc:  # undecodable bytes inside a signed-looking token
        raise BadLink("bad link") from exc


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


# A backslash (browsers read it as "/", Python's URL parser does not, so the two can disagree on the host) or a
# control character (a header break in Location) has no place in a link Encore redirects to.
_UNSAFE = re.compile(r"[\\\x00-\x1f\x7f]")


def _web_url(target: str) -> bool:
    parts = urlsplit(target)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not _UNSAFE.search(target)


# --- making links ------------------------------------------------------------------------------------------------


def preferences_url(settings: Settings, shop_id: int, customer_id: str, locale: str | None = None) -> str:
    payload: list[Any] = [shop_id, customer_id] + ([locale] if locale else [])
    return f"{settings.app_url}/p/{_dumps(settings, PREFERENCES, payload)}"


def unsubscribe_url(settings: Settings, shop_id: int, customer_id: str, message_id: int | None = None) -> str:
    """The RFC 8058 one-click target (List-Unsubscribe + List-Unsubscribe-Post); a GET shows a confirmation."""
    return f"{settings.app_url}/u/{_dumps(settings, UNSUBSCRIBE, [shop_id, customer_id, message_id])}"


def open_pixel_url(settings: Settings, message_id: int) -> str:
    return f"{settings.app_url}/t/o/{_dumps(settings, OPEN, message_id)}.gif"


def click_url(settings: Settings, message_id: int, target: str) -> str:
    """A tracked link to `target`; only absolute http(s) targets (ValueError otherwise)."""
    if not _web_url(target):
        raise ValueError(f"only http(s) links are tracked, not {target[:40]!r}")
    return f"{settings.app_url}/t/c/{_dumps(settings, CLICK, [message_id, target])}"


def survey_url(settings: Settings, message_id: int) -> str:
    """The satisfaction survey about the order the message `message_id` was sent for."""
    return f"{settings.app_url}/s/{_dumps(settings, SURVEY, message_id)}"


def form_token(settings: Settings, link_token: str) -> str:
    """The preference form's CSRF token: an HMAC of the link token it was served under."""
    key = hmac.new(settings.secret_key.encode(), FORM, hashlib.sha256).digest()
    return hmac.new(key, link_token.encode(), hashlib.sha256).hexdigest()


def valid_form_token(settings: Settings, link_token: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(  # bytes: on text, compare_digest raises TypeError for non-ASCII
        form_token(settings, link_token).encode(), str(given).encode("utf-8", "replace"))


# --- reading links -----------------------------------------------------------------------------------------------


def read_preferences(settings: Settings, token: str) -> PreferenceLink:
    data = _loads(settings, PREFERENCES, token)
    if (isinstance(data, list) and len(data) in (2, 3) and _is_id(data[0]) and isinstance(data[1], str) and data[1]
            and (len(data) == 2 or isinstance(data[2], str))):
        return PreferenceLink(data[0], data[1], data[2] if len(data) == 3 else None)
    raise BadLink("bad preferences link")


def read_unsubscribe(settings: Settings, token: str) -> UnsubscribeLink:
    data = _loads(settings, UNSUBSCRIBE, token)
    if (isinstance(data, list) and len(data) == 3 and _is_id(data[0]) and isinstance(data[1], str) and data[1]
            and (data[2] is None or _is_id(data[2]))):
        return UnsubscribeLink(data[0], data[1], data[2])
    raise BadLink("bad unsubscribe link")


def read_open(settings: Settings, token: str) -> int:
    data = _loads(settings, OPEN, token)
    if _is_id(data):
        return int(data)
    raise BadLink("bad open link")


def read_click(settings: Settings, token: str) -> ClickLink:
    data = _loads(settings, CLICK, token)
    if isinstance(data, list) and len(data) == 2 and _is_id(data[0]) and isinstance(data[1], str) and _web_url(data[1]):
        return ClickLink(data[0], data[1])
    raise BadLink("bad click link")


def read_survey(settings: Settings, token: str) -> int:
    """The id of the message whose survey link this is."""
    data = _loads(settings, SURVEY, token)
    if _is_id(data):
        return int(data)
    raise BadLink("bad survey link")


# --- tracking a rendered email -----------------------------------------------------------------------------------

# One attribute of a start tag: its name, then optionally = and a double-quoted, single-quoted or bare value.
_ATTR = re.compile(r"""[\s/]*([^\s"'>/=]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]+))?""")
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


# Where a comment, a script or style element, or an <a> start tag begins; what follows an "<a": its attributes,
# whose quoted values may hold ">", up to the tag's end; where a script or style element closes.
_START = re.compile(r"<(?:(!--)|((?i:script|style))\b|[aA](?=[\s/>]))")
_TAG_REST = re.compile(r"""(?:[^>"']++|"[^"]*+"|'[^']*+')*+>""")
_CLOSE = {"script": re.compile(r"</(?i:script)\s*>"), "style": re.compile(r"</(?i:style)\s*>")}


def _retarget(tag: str, rewrite: Any) -> str:
    """The start tag with its first href's value replaced by rewrite(url), or unchanged if rewrite gives None."""
    position = 2  # after "<a"
    while (m := _ATTR.match(tag, position)) and m.end() > position:
        position = m.end()
        if m.group(1).lower() != "href":
            continue
        if m.group(2) is None:
            return tag
        raw = m.group(2)
        quote = raw[0] if raw[0] in "\"'" else ""
        new = rewrite(unescape(raw[1:-1] if quote else raw).strip())
        if new is None:
            return tag
        quote = quote or '"'
        return tag[: m.start(2)] + quote + escape(new, quote=True) + quote + tag[m.end(2):]
    return tag


def _anchors(html: str, rewrite: Any) -> str:
    """`html` with each <a> start tag's href given to `rewrite` (`_retarget`); comments, scripts and styles left
    as they are. A comment or element that never closes, or a tag that never ends, is read as plain text."""
    out: list[str] = []
    done = scan = 0
    while (m := _START.search(html, scan)) is not None:
        if m.group(1) is not None:  # <!-- ... -->
            end = html.find("-->", m.end())
            scan = m.start() + 1 if end < 0 else end + 3
        elif m.group(2) is not None:  # <script ...> ... </script>, <style ...> ... </style>
            close = _CLOSE[m.group(2).lower()].search(html, m.end())
            scan = m.start() + 1 if close is None else close.end()
        elif (rest := _TAG_REST.match(html, m.end())) is None:
            scan = m.start() + 1
        else:
            out.append(html[done:m.start()])
            out.append(_retarget(html[m.start():rest.end()], rewrite))
            done = scan = rest.end()
    out.append(html[done:])
    return "".join(out)


def track(html: str, settings: Settings, message_id: int) -> str:
    """The email's HTML with each http(s) <a href> sent through its click URL (but not Encore's own preference,
    unsubscribe or tracking links) and a 1x1 open pixel before </body> (or at the end); nothing else changes."""
    own = tuple(f"{settings.app_url}/{p}/" for p in ("p", "u", "t"))

    def rewrite(url: str) -> str | None:
        if not _web_url(url) or url.startswith(own):
            return None
        return click_url(settings, message_id, url)

    tracked = _anchors(html, rewrite)
    pixel = (f'<img src="{escape(open_pixel_url(settings, message_id))}" width="1" height="1" alt="" '
             'style="display:block;width:1px;height:1px;border:0">')
    ends = list(_BODY_END.finditer(tracked))
    if not ends:
        return tracked + pixel
    at = ends[-1].start()
    return tracked[:at] + pixel + tracked[at:]
