"""What the admin API refuses before a view reads a request, because the database would fail on it (a 500):

- a row id in the path beyond a BIGINT (Werkzeug's `<int:...>` takes any number of digits): no row has it, 404;
- text with a NUL character in the path or the JSON body: PostgreSQL's text columns cannot hold one (the driver
  raises DataError even for a comparison), and no id, key, name or note has one. 404 in the path, 400 in the body.
"""

from __future__ import annotations

from typing import Any

from flask import abort, request

BIGINT_MAX = 2**63 - 1
NUL = "\x00"


def row_id(value: int) -> int:
    """`value`, or 404 when no row can have it."""
    if not 0 <= value <= BIGINT_MAX:
        abort(404)
    return value


def has_nul(value: Any) -> bool:
    """Whether a JSON value holds a NUL character in any text, key or item."""
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


def refuse_nul() -> None:
    """A blueprint's `before_request` for its JSON API routes (`/api/...`; its pages are left alone)."""
    if not request.path.startswith("/api/"):
        return
    if has_nul(list((request.view_args or {}).values())):
        abort(404)
    if request.is_json and has_nul(request.get_json(silent=True)):
        abort(400, "text cannot contain NUL characters")
