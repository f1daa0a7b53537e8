"""Every table that carries shop_id is in SHOP_TABLES (so shop/redact deletes it), and every shop table is either
exported or excluded with a reason (app/exports.py): a table added without that decision fails here."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Column, ForeignKey, Integer, MetaData, Table

from app import exports
from app.db import models as t

SHOP_NAMES = {cast(Table, m.__table__).name for m in t.SHOP_TABLES}
WITHOUT_SHOP_ID = {"shops": "the shop itself: deleted by id", "install_nonces": "keyed by the shop's domain"}


def unlisted(metadata: MetaData, listed: set[str]) -> set[str]:
    """Tables with a shop_id column that SHOP_TABLES does not list."""
    return {x.name for x in metadata.sorted_tables if "shop_id" in x.c} - listed


def test_every_table_with_a_shop_id_is_in_shop_tables() -> None:
    assert unlisted(t.Base.metadata, SHOP_NAMES) == set(), "add the table to SHOP_TABLES in app/db/models.py"
    assert all("shop_id" in cast(Table, m.__table__).c for m in t.SHOP_TABLES)


def test_the_check_catches_a_new_shop_table_left_out_of_shop_tables() -> None:
    copy = MetaData()
    for x in t.Base.metadata.sorted_tables:
        x.to_metadata(copy)
    Table("wishlists", copy, Column("id", Integer, primary_key=True),
          Column("shop_id", Integer, ForeignKey("shops.id", ondelete="CASCADE")))
    assert unlisted(copy, SHOP_NAMES) == {"wishlists"}


def test_tables_without_a_shop_id_are_known_and_handled_by_the_uninstall() -> None:
    """A new table without shop_id needs a decision on how shop/redact finds its rows (tests/shop_rows.py)."""
    assert {x.name for x in t.Base.metadata.sorted_tables if "shop_id" not in x.c} == set(WITHOUT_SHOP_ID)


def test_every_shop_table_is_exported_or_excluded_with_a_reason() -> None:
    exported = {x.name for x in exports.exported_tables()}
    assert set(exports.EXCLUDED_TABLES) <= SHOP_NAMES
    assert all(len(reason) > 20 for reason in exports.EXCLUDED_TABLES.values())
    assert exported | set(exports.EXCLUDED_TABLES) == SHOP_NAMES | {"shops"}
    assert not exported & set(exports.EXCLUDED_TABLES)
    # The merchant-owned tables the issue names are all exported.
    assert {"orders", "order_lines", "refunds", "fulfillments", "customers", "checkouts", "loyalty_accounts",
            "ledger_entries", "redemptions", "rewards", "loyalty_tiers", "referrals", "messages", "attributions",
            "survey_responses", "feedback_items", "segments", "segment_members", "customer_metrics", "journeys",
            "journey_versions", "contact_preferences"} <= exported


def test_secrets_and_leases_never_reach_a_file() -> None:
    written = {f"{p.name}.{c.name}" for p in exports.parts() for c in p.columns}
    excluded = exports.excluded_columns()
    for name in ("access_token", "refresh_token", "api_key", "api_secret", "webhook_secret"):
        assert f"shops.{name}" in excluded and f"shops.{name}" not in written
    leases = {f"{x.name}.{c.name}" for x in exports.exported_tables() for c in x.columns if "lease" in c.name}
    assert leases and leases <= set(excluded) and not leases & written
    binary: list[Any] = [c for p in exports.parts() for c in p.columns if c.type.python_type is bytes]
    assert binary == []
