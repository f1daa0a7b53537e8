"""A merchant's export of everything Encore holds for their shop: one ZIP, one file per table, CSV or JSON Lines.

The list of tables comes from the models, not from a hand-kept copy: every table in `SHOP_TABLES` (and the shop's
own row) is exported unless `EXCLUDED_TABLES` names it with a reason, so a table added later is exported by
default and `tests/unit/test_exports_tables.py` fails until someone decides. Inside an exported table, a column
is left out when it holds bytes (encrypted tokens, API keys and webhook secrets are stored as Fernet bytes; no
plaintext secret is stored anywhere else) or a worker's lease (bookkeeping that means nothing outside Encore).
`manifest.json` names every file with its row count and columns, and every table and column left out with why,
the export's time and the database's schema version (the Alembic revision), so a reader can tell what they have.

Memory stays bounded whatever the shop's size: rows are read `yield_per` (a server-side cursor on PostgreSQL)
and written straight into the ZIP member as they come, and the ZIP itself goes to a file object the caller gives
(a temporary file the web layer then streams). CSV follows the analytics downloads (`app/web/analytics_csv.py`):
UTF-8 with a byte-order mark, a header row, and formula-like text neutralised with the same `safe`. Values are
written exactly: amounts as their decimal text, times in UTC ISO 8601, JSON columns as JSON text in CSV and as
JSON in JSON Lines.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import IO, Any, Literal, cast

from sqlalchemy import Column, LargeBinary, Table, column, select, table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.bootstrap import Container
from app.db import models as t
from app.web.analytics_csv import BOM, safe

Format = Literal["csv", "json"]
FORMATS: tuple[Format, ...] = ("csv", "json")
BATCH = 1000  # rows fetched at a time
FLUSH = 64 * 1024  # CSV characters buffered before they go into the ZIP member

# Shop tables not exported, each with the reason the manifest gives.
EXCLUDED_TABLES: Mapping[str, str] = {
    "inbox": "raw webhook deliveries and their retry state: internal bookkeeping (the store keeps the originals)",
    "domain_events": "Encore's record of store events already handled (idempotency keys); what they produced "
                     "(orders, ledger, messages) is exported",
    "history_imports": "progress and cursors of history imports: internal bookkeeping",
    "data_exports": "answers to customers' data requests: copies of exported rows, each downloadable under "
                    "Customer data requests",
}
BYTES_REASON = "encrypted secret or raw bytes (access tokens, API keys, webhook secrets, webhook bodies)"
LEASE_REASON = "a worker's lease: internal bookkeeping"


class ExportError(ValueError):
    """The export cannot be made as asked (an unknown format or shop); nothing was written."""


@dataclass(frozen=True)
class Part:
    """One exported table: its file in the ZIP and the columns written, in order."""

    table: Table
    columns: tuple[Column[Any], ...]

    @property
    def name(self) -> str:
        return str(self.table.name)


@dataclass
class Manifest:
    format: Format
    exported_at: datetime
    schema_version: str | None
    shop: dict[str, Any]
    files: list[dict[str, Any]] = field(default_factory=list)

    def data(self) -> dict[str, Any]:
        return {"format": self.format, "exported_at": self.exported_at.isoformat(), "schema_version": self.schema_version,
                "shop": self.shop, "files": self.files, "excluded_tables": dict(sorted(EXCLUDED_TABLES.items())),
                "excluded_columns": excluded_columns()}


def _column_reason(c: Column[Any]) -> str | None:
    if isinstance(c.type, LargeBinary):
        return BYTES_REASON
    if c.name.endswith("lease_until"):
        return LEASE_REASON
    return None


def exported_tables() -> list[Table]:
    """The shop's row first, then every shop table not excluded, parents before children (the models' order)."""
    owned = {cast(Table, m.__table__).name for m in t.SHOP_TABLES}
    return [x for x in t.Base.metadata.sorted_tables if x.name == "shops" or (x.name in owned and x.name not in EXCLUDED_TABLES)]


def parts() -> list[Part]:
    return [Part(x, tuple(c for c in x.columns if _column_reason(c) is None)) for x in exported_tables()]


def excluded_columns() -> dict[str, str]:
    """"table.column" -> why it is left out, over the exported tables."""
    return {f"{x.name}.{c.name}": reason for x in exported_tables() for c in x.columns
            if (reason := _column_reason(c)) is not None}


def _plain(value: Any) -> Any:
    """A value as JSON has it: exact decimals as text, times as ISO 8601."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return safe(str(_plain(value)))


def _rows(s: Session, part: Part, shop_id: int) -> Iterator[tuple[Any, ...]]:
    key = part.table.c.id if part.name == "shops" else part.table.c.shop_id
    q = select(*part.columns).where(key == shop_id).order_by(*part.table.primary_key.columns)
    for row in s.execute(q.execution_options(yield_per=BATCH)):
        yield tuple(row)


def _write_csv(out: IO[bytes], part: Part, rows: Iterator[tuple[Any, ...]]) -> int:
    buffer = io.StringIO()
    buffer.write(BOM)
    writer = csv.writer(buffer)
    writer.writerow([c.name for c in part.columns])
    n = 0
    for row in rows:
        writer.writerow([_cell(v) for v in row])
        n += 1
        if buffer.tell() >= FLUSH:
            out.write(buffer.getvalue().encode())
            buffer.seek(0)
            buffer.truncate()
    out.write(buffer.getvalue().encode())
    return n


def _write_jsonl(out: IO[bytes], part: Part, rows: Iterator[tuple[Any, ...]]) -> int:
    names = [c.name for c in part.columns]
    n = 0
    for row in rows:
        out.write(json.dumps(dict(zip(names, map(_plain, row), strict=True)), ensure_ascii=False).encode() + b"\n")
        n += 1
    return n


def schema_version(s: Session) -> str | None:
    """The Alembic revision the database is at (None when it was made without migrations)."""
    try:
        with s.begin_nested():
            return s.scalar(select(column("version_num")).select_from(table("alembic_version")))
    except SQLAlchemyError:
        return None


def export_shop(c: Container, shop_id: int, fmt: str, out: IO[bytes]) -> Manifest:
    """Write the shop's export as a ZIP into `out` (any writable binary file; need not be seekable) and return its
    manifest. Raises ExportError, writing nothing, for an unknown format or shop."""
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    with c.sessions() as s, s.begin():
        shop = s.get(t.Shop, shop_id)
        if shop is None:
            raise ExportError(f"no shop {shop_id}")
        manifest = Manifest("csv" if fmt == "csv" else "json", c.clock.now(), schema_version(s),
                            {"id": shop.id, "platform": shop.platform, "domain": shop.domain, "name": shop.name})
        suffix, write = (".csv", _write_csv) if fmt == "csv" else (".jsonl", _write_jsonl)
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for part in parts():
                name = part.name + suffix
                with archive.open(name, "w", force_zip64=True) as member:
                    count = write(member, part, _rows(s, part, shop_id))
                manifest.files.append({"name": name, "table": part.name, "rows": count,
                                       "columns": [x.name for x in part.columns]})
            archive.writestr("manifest.json", json.dumps(manifest.data(), ensure_ascii=False, indent=2))
    return manifest
