"""A shop with a row in every table the models have, generated from Base.metadata (so a table added later gets a
row too): values by column type, foreign keys pointing at the same shop's rows, every text tagged with the shop's
domain so another shop's data is recognisable. Used by the export and the clean-uninstall tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Table,
    Text,
    func,
    insert,
    select,
)

from app.bootstrap import Container
from app.db import models as t

AT = datetime(2024, 3, 4, 5, 6, 7, tzinfo=UTC)
SECRETS = ("access_token", "refresh_token", "api_key", "api_secret", "webhook_secret")


@dataclass
class Built:
    shop_id: int
    domain: str
    secrets: dict[str, str]  # Shop column -> the plaintext sealed into it
    ids: dict[str, int] = field(default_factory=dict)  # table -> its row's id (tables with an integer id)


def _value(table: Table, col: Column[Any], tag: str) -> Any:
    kind = col.type
    if isinstance(kind, LargeBinary):
        return f"raw-bytes-{tag}-{table.name}".encode()
    if isinstance(kind, Boolean):
        return True
    if isinstance(kind, DateTime) or getattr(kind, "impl", None) is not None and isinstance(kind.impl, DateTime):
        return AT
    if isinstance(kind, Date):
        return date(1990, 5, 17)
    if isinstance(kind, JSON):
        return {"note": f"{tag} {table.name}"}
    if isinstance(kind, Float):
        return 0.25
    if isinstance(kind, Numeric):
        return Decimal("12.5000")
    if isinstance(kind, Integer):
        return 3
    if isinstance(kind, String | Text):
        length = getattr(kind, "length", None)
        if length is not None and length <= 3:
            return "USD"
        text = f"{table.name}.{col.name}@{tag}"
        return text[:length] if length else text
    raise AssertionError(f"no test value for {table.name}.{col.name} ({kind!r}): teach tests/shop_rows.py")


def build_shop(c: Container, domain: str, **overrides: Any) -> Built:
    """An installed Shopify shop (its secrets sealed with the vault) and one row in every table with a shop_id,
    plus an install nonce for its domain. `overrides`: "table.column" -> value."""
    tag = domain.split(".")[0]
    secrets = {name: f"{name}-plaintext-{tag}" for name in SECRETS}
    built = Built(0, domain, secrets)
    with c.sessions() as s, s.begin():
        shop = t.Shop(platform="shopify", domain=domain, name=f"Shop {tag}", installed_at=AT,
                      **{name: c.vault.seal(plain) for name, plain in secrets.items()})
        s.add(shop)
        s.add(t.InstallNonce(nonce=f"nonce-{tag}", platform="shopify", shop_domain=domain, expires_at=AT))
        s.flush()
        built.shop_id = shop.id
        conn = s.connection()
        for table in t.Base.metadata.sorted_tables:
            if "shop_id" not in table.c:
                continue
            row: dict[str, Any] = {}
            for col in table.columns:
                key = f"{table.name}.{col.name}"
                if key in overrides:
                    row[col.name] = overrides[key]
                elif col.name == "shop_id":
                    row[col.name] = built.shop_id
                elif col.foreign_keys:
                    [fk] = col.foreign_keys
                    row[col.name] = built.ids[fk.column.table.name]
                elif col.primary_key and col.autoincrement is not False and isinstance(col.type, Integer):
                    continue
                else:
                    row[col.name] = _value(table, col, tag)
            result = conn.execute(insert(table).values(**row))
            if "id" in table.c and table.c.id.primary_key:
                built.ids[table.name] = int(result.inserted_primary_key[0])
    return built


def counts(c: Container, shop_id: int, domain: str) -> dict[str, int]:
    """Rows of the shop in every table: by shop_id, the shop row by id, install nonces by domain."""
    found: dict[str, int] = {}
    with c.sessions() as s:
        for table in t.Base.metadata.sorted_tables:
            if "shop_id" in table.c:
                where = table.c.shop_id == shop_id
            elif table.name == "shops":
                where = table.c.id == shop_id
            elif table.name == "install_nonces":
                where = table.c.shop_domain == domain
            else:
                raise AssertionError(f"{table.name} has no shop_id: say how its rows belong to a shop")
            found[table.name] = int(s.scalar(select(func.count()).select_from(table).where(where)) or 0)
    return found
