"""The admin's import of orders from a CSV file (app/csv_import.py has the format): one synchronous request.

POST /api/admin/imports/csv, multipart, with the file as `file` and `platform_ids` ("1") when the file's ids
are the platform's own. The answer: {imported_orders, imported_customers, new_orders, bad_rows: [{line, order,
problems}], file_errors}; 200 once the file was read (bad rows or not), 400 when it could not be (file
errors: nothing imported), 413 beyond the size limit. A full-size file (20 MB, 100,000 rows) is parsed and
applied within the request, in some seconds.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g, jsonify, request

from app import csv_import
from app.bootstrap import Container
from app.web.auth import session_token_required

bp = Blueprint("csv_import", __name__)
SLACK = 64 * 1024  # the multipart envelope around the file


def _refused(status: int, *errors: str) -> tuple[Response, int]:
    return jsonify(error=errors[0], **csv_import.Report(file_errors=list(errors)).as_json()), status


@bp.post("/api/admin/imports/csv")
@session_token_required
def upload() -> Response | tuple[Response, int]:
    c: Container = current_app.extensions["encore"]
    too_big = f"the file is larger than {csv_import.MAX_BYTES // (1024 * 1024)} MB: split it into smaller files " \
              "and import each"
    if (request.content_length or 0) > csv_import.MAX_BYTES + SLACK:
        return _refused(413, too_big)
    upload = request.files.get("file")
    if upload is None:
        return _refused(400, "no file: send the CSV file as the form field 'file'")
    data = upload.stream.read(csv_import.MAX_BYTES + 1)
    if len(data) > csv_import.MAX_BYTES:
        return _refused(413, too_big)
    platform_ids = request.form.get("platform_ids", "").lower() in ("1", "true", "on", "yes")
    report = csv_import.import_file(c, g.shop_id, data, platform_ids=platform_ids)
    return jsonify(report.as_json()), 400 if report.file_errors else 200
