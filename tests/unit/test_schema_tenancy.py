"""`shop_id` everywhere: what lets the schema be partitioned and distributed by shop (README: Scaling out).

Every table but the two global ones carries a NOT NULL `shop_id` referencing shops and is reached through an index
that starts with it. What a Citus distribution on `shop_id` would still need is listed here, exactly: a new key or
foreign key without `shop_id` fails this test, so the list (and the README's) can only shrink."""

from __future__ import annotations

from sqlalchemy import ForeignKeyConstraint, PrimaryKeyConstraint, Table, UniqueConstraint

from app.db.models import Base

GLOBAL = {"shops", "install_nonces"}  # the tenant list itself, and install nonces (no shop exists yet)
# Children found through their parent's id (journeys -> versions), not by shop: the parent's index leads with shop_id.
NOT_LED_BY_SHOP = {"journey_versions"}
# Unique keys that do not include shop_id. Each table's own `id` primary key is one (Citus wants (shop_id, id));
# these are the others, unique within a shop already because their first column belongs to one shop.
UNIQUE_WITHOUT_SHOP = {
    ("journey_versions", ("journey_id", "version")),
    ("ledger_entries", ("account_id", "key")),
    ("segment_members", ("segment_id", "customer_external_id")),
}


def tenant_tables() -> list[Table]:
    return [t for t in Base.metadata.sorted_tables if t.name not in GLOBAL]


def test_every_tenant_table_has_a_required_shop_id_referencing_shops() -> None:
    tables = tenant_tables()
    assert len(tables) >= 35
    for table in tables:
        assert "shop_id" in table.c, table.name
        assert not table.c.shop_id.nullable, table.name
        assert {fk.column.table.name for fk in table.c.shop_id.foreign_keys} == {"shops"}, table.name


def test_every_tenant_table_is_reached_through_an_index_led_by_shop_id() -> None:
    for table in tenant_tables():
        leading = {next(iter(index.columns)).name for index in table.indexes}
        leading |= {next(iter(c.columns)).name for c in table.constraints
                    if isinstance(c, UniqueConstraint | PrimaryKeyConstraint) and c.columns}
        assert ("shop_id" in leading) != (table.name in NOT_LED_BY_SHOP), table.name


def test_the_keys_a_distribution_by_shop_id_would_change_are_exactly_the_known_ones() -> None:
    found, id_keys = set(), 0
    for table in tenant_tables():
        keys = [c for c in table.constraints if isinstance(c, UniqueConstraint | PrimaryKeyConstraint)]
        keys += [i for i in table.indexes if i.unique]
        for key in keys:
            columns = tuple(col.name for col in key.columns)
            if "shop_id" in columns:
                continue
            if columns == ("id",):
                id_keys += 1
            else:
                found.add((table.name, columns))
    assert found == UNIQUE_WITHOUT_SHOP
    assert id_keys >= 30  # the serial ids (see the README: they become (shop_id, id) under Citus)


def test_foreign_keys_between_tenant_tables_name_the_parent_by_id() -> None:
    """Under Citus these become (shop_id, parent_id) -> (shop_id, id); today each is one column to the parent's id."""
    for table in tenant_tables():
        for fk in (c for c in table.constraints if isinstance(c, ForeignKeyConstraint)):
            parent = fk.referred_table.name
            assert len(fk.columns) == 1, (table.name, parent)
            if parent != "shops":
                assert parent not in GLOBAL and [e.column.name for e in fk.elements] == ["id"], (table.name, parent)
