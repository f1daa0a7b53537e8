"""The OpenAPI 3.1 description of Encore's JSON API, served as JSON at `GET /api/openapi.json` (public: it holds
the routes' shapes, never a secret). The source is `openapi.yaml` beside this module; tests/integration/
test_openapi.py keeps it equal to the app's routes and fuzzes every operation against it with schemathesis."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from flask import Blueprint, Response

bp = Blueprint("openapi", __name__)
SOURCE = Path(__file__).with_name("openapi.yaml")


@cache
def document() -> dict[str, Any]:
    """The description, read once per process."""
    found: dict[str, Any] = yaml.safe_load(SOURCE.read_text(encoding="utf-8"))
    return found


@cache
def _text() -> str:
    return json.dumps(document(), ensure_ascii=False, separators=(",", ":"))


@bp.get("/api/openapi.json")
def spec() -> Response:
    response = Response(_text(), mimetype="application/json")
    response.headers["Cache-Control"] = "public, max-age=300"
    response.headers["Access-Control-Allow-Origin"] = "*"  # for API explorers on another origin; nothing private
    return response
