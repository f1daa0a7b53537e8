"""The Content-Security-Policy of every admin HTML page, written once.

Encore's admin pages (the embedded admin and its own pages, framed by Shopify admin with App Bridge or by a store's
WordPress admin with Encore's session token, and Shopify's session-token bounce page) run only the scripts Encore
serves from its own origin, plus App Bridge where Shopify admin frames them; no inline script, no `eval`, no plugin,
no `<base>`, and forms post only to Encore. So markup that got into a page (a customer's name, a shop's setting,
anything a bug let through unescaped) cannot run script there.

- script-src: 'self' and, with App Bridge, the folder App Bridge is served from (`app_bridge_url` less its file name,
  so https://cdn.shopify.com/shopifycloud/ and not all of cdn.shopify.com, where any store's uploaded files live).
- connect-src: 'self' (the admin's JSON API) and, with App Bridge, App Bridge's origin (the simulated App Bridge
  fetches its session tokens there; the real one talks to Shopify admin with postMessage, which no CSP governs).
- style-src 'self' and img-src 'self' data:, except on the page with the journey editor (`email_preview`): its
  preview is an email shown in a sandboxed `srcdoc` iframe, which inherits this policy, and an email has its own
  <style>, style="" attributes and https images (the store's logo and products). The sandbox (no allow-scripts)
  and the unchanged script-src keep script out of it.
- frame-ancestors: who may frame the page (Shopify admin and the shop, or the store's origin); always first, as
  before this policy grew.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from flask import Response

HEADER = "Content-Security-Policy"
_SOURCE = re.compile(r"[A-Za-z0-9.:/*_~%@+\[\]-]+")  # nothing that could end a source or a directive (space, ; , ')


def _checked(source: str) -> str:
    if not _SOURCE.fullmatch(source):
        raise ValueError(f"not a CSP source: {source!r}")
    return source


def _split(url: str) -> tuple[str, str, str]:
    """(scheme, host[:port], path) of an absolute or scheme-relative URL; ("", "", path) for a path on Encore."""
    parts = urlsplit(url.strip())
    if not parts.netloc:
        return "", "", parts.path
    return parts.scheme or "https", parts.netloc.rpartition("@")[2], parts.path


def origin(url: str) -> str:
    """scheme://host[:port] of a URL; "" when the URL is Encore's own (no host), which 'self' already allows."""
    scheme, host, _ = _split(url)
    return _checked(f"{scheme}://{host}") if host else ""


def script_folder(url: str) -> str:
    """The URL's origin and folder (up to its last /): the narrowest source that still lets App Bridge load a
    sibling file. "" for a URL on Encore itself."""
    scheme, host, path = _split(url)
    if not host:
        return ""
    return _checked(f"{scheme}://{host}{path.rpartition('/')[0]}/")


def admin_policy(frame_ancestors: Iterable[str], *, app_bridge_url: str = "", email_preview: bool = False) -> str:
    """The policy of an admin HTML page framed by `frame_ancestors`, with App Bridge when `app_bridge_url` is set."""
    bridge_script, bridge_origin = script_folder(app_bridge_url), origin(app_bridge_url)
    directives: dict[str, list[str]] = {
        "frame-ancestors": [_checked(a) for a in frame_ancestors],
        "default-src": ["'self'"],
        "script-src": ["'self'", bridge_script],
        "style-src": ["'self'", "'unsafe-inline'" if email_preview else ""],
        "img-src": ["'self'", "data:", "https:" if email_preview else ""],
        "connect-src": ["'self'", bridge_origin],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
    }
    if not directives["frame-ancestors"]:
        directives["frame-ancestors"] = ["'none'"]
    return "; ".join(f"{name} {' '.join(s for s in sources if s)}" for name, sources in directives.items()) + ";"


def admin_response(html: str, frame_ancestors: Iterable[str], *, app_bridge_url: str = "",
                   email_preview: bool = False, private: bool = False) -> Response:
    """An admin HTML page under `admin_policy`. `private`: the page carries Encore's session token (a store's
    admin), so it is never cached and its address (which held a spent sign-in token) never sent as a referrer."""
    response = Response(html, mimetype="text/html")
    response.headers[HEADER] = admin_policy(frame_ancestors, app_bridge_url=app_bridge_url,
                                            email_preview=email_preview)
    if private:
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
    return response
