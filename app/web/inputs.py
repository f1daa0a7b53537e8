"""What the JSON API (`/api/...`) refuses before a view reads a request, because the database would fail on it
(a 500) while no stored row could ever match it. Registered once for the whole app (app/factory.py):

- a row id in the path beyond a BIGINT (Werkzeug's `<int:...>` takes any number of digits): 404;
- text with a NUL character in the path (404), the query or the JSON body (400): PostgreSQL's text cannot hold
  one (the driver raises DataError even for a comparison), and no id, key, name or note has one.

It runs before the views' own checks (the session token too): the answer depends on nothing stored.
"""

from __future__ import annotations

from typing import Any

from flask import abort, request

BIGINT_MAX = 2**63 - 1
NUL = "\x00"


def has_nul(value: Any) -> bool:
    """Whether a JSON value holds a NUL character in any text, key or item."""
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


def refuse_unstorable() -> None:
    """The app's `before_request` for its JSON API routes; pages and the other routes are left alone."""
    if not request.path.startswith("/api/"):
        return
    path_values = list((request.view_args or {}).values())
    if has_nul(path_values) or any(isinstance(v, int) and not 0 <= v <= BIGINT_MAX for v in path_values):
        abort(404)
    if has_nul([text for pair in request.args.items(multi=True) for text in pair]):
        abort(400, "text cannot contain NUL characters")
    if request.is_json and has_nul(request.get_json(silent=True)):
        abort(400, "text cannot contain NUL characters")
