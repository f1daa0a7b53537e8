"""The merchant's "export all my data" download: `GET /api/admin/export.zip?format=csv|json`, behind the admin
session token, so a shop's token only ever exports that shop.

The ZIP (`app.exports`) is written to a temporary file first and then streamed in pieces: a failure while reading
the database answers a clean error instead of a cut-off download, and neither the rows nor the ZIP are ever whole
in memory.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import IO

from flask import Blueprint, Response, abort, current_app, g, request

from app import exports
from app.bootstrap import Container
from app.web.auth import session_token_required

bp = Blueprint("exports", __name__)
PIECE = 256 * 1024


def _pieces(f: IO[bytes]) -> Iterator[bytes]:
    try:
        f.seek(0)
        while piece := f.read(PIECE):
            yield piece
    finally:
        f.close()


@bp.get("/api/admin/export.zip")
@session_token_required
def export_zip() -> Response:
    c: Container = current_app.extensions["encore"]
    fmt = request.args.get("format", "csv")
    if fmt not in exports.FORMATS:
        abort(400, f"format must be one of {', '.join(exports.FORMATS)}")
    f = tempfile.TemporaryFile()
    try:
        manifest = exports.export_shop(c, g.shop_id, fmt, f)
    except BaseException:
        f.close()
        raise
    size = f.tell()
    stamp = manifest.exported_at.strftime("%Y%m%dT%H%M%SZ")
    response = Response(_pieces(f), mimetype="application/zip", direct_passthrough=True)
    response.headers["Content-Length"] = str(size)
    response.headers["Content-Disposition"] = f'attachment; filename="encore-export-{fmt}-{stamp}.zip"'
    response.headers["Cache-Control"] = "no-store"
    return response
