"""Segments on the real database (SQLite, or PostgreSQL when DATABASE_URL names one): a shop built by hand with
orders (paid, refunded, cancelled, unpaid), lines, tiers, survey answers (satisfaction and NPS, answered again),
consent and preference-center opt-outs, customer metrics, and a redacted customer; each field's members checked
against the customers the dataset was built to put there, any/all, materialised members replaced by a refresh,
the built-in RFM segments, and what journeys and rewards read (membership, tiers)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update

from app import segments
from app.bootstrap import Container
from app.core.rfm import RFM_LABELS
from app.core.segments import InvalidSegment
from app.db import models as t
from tests.helpers import add_shop

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ALL = {"ana", "ben", "cho", "dee", "fay"}  # eve is redacted: never a member


def days(n: float) -> datetime:
    return NOW - timedelta(days=n)


class Shop:
    """One shop's rows, written as the store and Encore would have them."""

    def __init__(self, c: Container, domain: str = "seg-a.myshopify.com") -> None:
        self.c, self.id = c, add_shop(c, domain)
        self.orders = 0
        with c.sessions() as s, s.begin():
            journey = t.JourneyRow(shop_id=self.id, key="survey", enabled=True)
            s.add(journey)
            s.flush()
            version = t.JourneyVersion(shop_id=self.id, journey_id=journey.id, version=1, definition={}, templates={})
            s.add(version)
            s.flush()
            self.journey_id, self.version_id = journey.id, version.id

    def customer(self, cid: str, *, email: bool = False, sms: bool = False, redacted: bool = False) -> None:
        with self.c.sessions() as s, s.begin():
            s.add(t.Customer(shop_id=self.id, external_id=cid, email=f"{cid}@example.com", first_name=cid.title(),
                             accepts_email_marketing=email, accepts_sms_marketing=sms,
                             redacted_at=NOW if redacted else None, external_updated_at=NOW))

    def order(self, cid: str, at: datetime, total: str, products: tuple[str, ...] = (), *, refunded: str = "0",
              payment: str = "paid", cancelled: bool = False) -> None:
        self.orders += 1
        with self.c.sessions() as s, s.begin():
            o = t.Order(shop_id=self.id, external_id=f"o{self.orders}", customer_external_id=cid, currency="USD",
                        subtotal=Decimal(total), total=Decimal(total), total_tax=Decimal(0), total_shipping=Decimal(0),
                        total_discounts=Decimal(0), refunded_amount=Decimal(refunded), payment_status=payment,
                        status="cancelled" if cancelled else "paid", created_at=at,
                        cancelled_at=at if cancelled else None, external_updated_at=at)
            s.add(o)
            s.flush()
            for n, pid in enumerate(products):
                s.add(t.OrderLine(shop_id=self.id, order_id=o.id, external_id=f"{o.external_id}-{n}",
                                  product_external_id=pid, title=pid, quantity=1, price=Decimal(1),
                                  total_discount=Decimal(0)))

    def tier(self, cid: str, tier: str | None) -> None:
        with self.c.sessions() as s, s.begin():
            s.add(t.LoyaltyAccount(shop_id=self.id, customer_external_id=cid, tier=tier, created_at=NOW, updated_at=NOW))

    def answer(self, cid: str, score: int, nps: int | None, at: datetime, *, changed: datetime | None = None) -> None:
        with self.c.sessions() as s, s.begin():
            e = t.Enrollment(shop_id=self.id, journey_id=self.journey_id, version_id=self.version_id,
                             key=f"survey:{cid}:{at.isoformat()}", trigger_type="OrderDelivered", trigger_key="x",
                             trigger_at=at, customer_external_id=cid, facts={}, created_at=at)
            s.add(e)
            s.flush()
            m = t.Message(shop_id=self.id, enrollment_id=e.id, journey_id=self.journey_id, step="ask",
                          key=f"m:{e.key}", customer_external_id=cid, category="transactional", channel="email",
                          status="sent", sent_at=at, created_at=at)
            s.add(m)
            s.flush()
            s.add(t.SurveyResponse(shop_id=self.id, message_id=m.id, customer_external_id=cid, score=score, nps=nps,
                                   created_at=at, updated_at=changed or at))

    def preference(self, cid: str, *, email: bool = True, sms: bool = True, unsubscribed: bool = False) -> None:
        with self.c.sessions() as s, s.begin():
            s.add(t.ContactPreference(shop_id=self.id, customer_external_id=cid, email=email, sms=sms,
                                      unsubscribed_at=NOW if unsubscribed else None))

    def metrics(self, cid: str, label: str) -> None:
        with self.c.sessions() as s, s.begin():
            s.add(t.CustomerMetrics(shop_id=self.id, customer_external_id=cid, orders=1, revenue=Decimal(1),
                                    first_order_at=NOW, last_order_at=NOW, rfm_r=3, rfm_f=3, rfm_m=3, rfm_segment=label,
                                    refreshed_at=NOW))


def build(c: Container, domain: str = "seg-a.myshopify.com") -> Shop:
    shop = Shop(c, domain)
    shop.customer("ana", email=True, sms=True)
    shop.customer("ben", email=True)
    shop.customer("cho", email=True)
    shop.customer("dee", sms=True)
    shop.customer("eve", email=True, sms=True, redacted=True)
    shop.customer("fay")
    # ana: 3 paid orders, 160 net (one partly refunded), first 400 days ago, last 10
    shop.order("ana", days(400), "100.00", ("p1",))
    shop.order("ana", days(100), "50.00", ("p2",), refunded="20.00", payment="partially_refunded")
    shop.order("ana", days(10), "30.00", ("p1", "p9"))
    # ben: one order 200 days ago; cho: only a cancelled order and an unpaid one (neither counts)
    shop.order("ben", days(200), "20.00", ("p3",))
    shop.order("cho", days(20), "500.00", ("p1",), cancelled=True)
    shop.order("cho", days(2), "80.00", ("p3",), payment="pending")
    # eve (redacted) would match nearly everything; fay: two recent orders, 500 net
    for n in range(5):
        shop.order("eve", days(5 + n), "999.00", ("p1", "p2", "p3"))
    shop.order("fay", days(5), "300.00", ("p2",))
    shop.order("fay", days(3), "200.00")
    shop.tier("ana", "gold")
    shop.tier("ben", "silver")
    shop.tier("eve", "gold")
    shop.tier("dee", None)
    with c.sessions() as s, s.begin():
        s.add_all(t.LoyaltyTier(shop_id=shop.id, key=k, name=k.title(), threshold=Decimal(n * 100),
                                multiplier=Decimal(1), perks=[], created_at=NOW) for n, k in enumerate(("silver", "gold")))
    # ana answered 2 then 5 (NPS 4 then 9); ben's first answer (1, NPS 3) was changed later than his newer one
    shop.answer("ana", 2, 4, days(90))
    shop.answer("ana", 5, 9, days(8))
    shop.answer("ben", 1, 3, days(60), changed=days(1))
    shop.answer("ben", 4, None, days(30))  # no NPS asked: the latest NPS is still the older answer's
    shop.answer("eve", 1, 0, days(3))
    shop.preference("ben", unsubscribed=True)  # from all marketing
    shop.preference("dee", sms=False)
    shop.preference("ana", email=True, sms=True)
    shop.metrics("ana", "champions")
    shop.metrics("ben", "hibernating")
    shop.metrics("fay", "new")
    shop.metrics("eve", "champions")
    return shop


@pytest.fixture
def shop(container: Container) -> Shop:
    return build(container)


def who(c: Container, shop: Shop, *rules: dict[str, Any], match: str = "all",
        collections: Mapping[str, frozenset[str]] | None = None) -> set[str]:
    with c.sessions() as s:
        found = segments.preview(s, shop.id, {"match": match, "rules": list(rules)}, NOW, limit=100,
                                 collections=None if collections is None else lambda ids: {i: collections.get(i, frozenset())
                                                                                             for i in ids})
    assert found.size == len(found.customers)
    return {x["id"] for x in found.customers if x["id"]}


def rule(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


@pytest.mark.parametrize(("field", "op", "value", "members"), [
    ("orders_count", ">=", 2, {"ana", "fay"}),
    ("orders_count", "=", 1, {"ben"}),
    ("orders_count", "=", 0, {"cho", "dee"}),  # cancelled and unpaid orders do not count
    ("orders_count", "<=", 1, {"ben", "cho", "dee"}),
    ("total_spent", ">=", "160", {"ana", "fay"}),  # ana: 100 + 50 - 20 + 30
    ("total_spent", ">=", "160.01", {"fay"}),
    ("total_spent", "<=", 20, {"ben", "cho", "dee"}),
    ("last_order", "within", 7, {"fay"}),
    ("last_order", "within", 10, {"ana", "fay"}),
    ("last_order", "more_than", 30, {"ben"}),  # customers without orders have no last order
    ("first_order", "within", 30, {"fay"}),
    ("first_order", "more_than", 150, {"ana", "ben"}),
    ("bought_product", "any", ["p2"], {"ana", "fay"}),
    ("bought_product", "any", "p3, p9", {"ana", "ben"}),  # cho's p3 was never paid for
    ("tier", "any", ["gold"], {"ana"}),
    ("tier", "any", ["gold", "silver"], {"ana", "ben"}),
    ("survey_score", "<=", 2, {"ben"}),  # ben's changed answer is his latest; ana's latest is 5
    ("survey_score", ">=", 5, {"ana"}),
    ("nps", ">=", 9, {"ana"}),
    ("nps", "<=", 6, {"ben"}),  # his newer answer has no NPS: the latest NPS is 3
    ("consent", "accepts", "email", {"ana", "cho"}),  # ben unsubscribed from all marketing
    ("consent", "accepts", "sms", {"ana"}),  # dee turned SMS off in the preference center
    ("consent", "refuses", "email", {"ben", "dee", "fay"}),
    ("rfm_segment", "any", ["champions", "new"], {"ana", "fay"}),
])
def test_each_field(container: Container, shop: Shop, field: str, op: str, value: Any, members: set[str]) -> None:
    assert who(container, shop, rule(field, op, value)) == members


def test_bought_collection_asks_the_store_for_the_bought_products_collections(container: Container, shop: Shop) -> None:
    asked: list[list[str]] = []

    def lookup(ids: list[str]) -> dict[str, frozenset[str]]:
        asked.append(ids)
        return {"p1": frozenset({"coffee"}), "p3": frozenset({"gear", "gifts"})}

    with container.sessions() as s:
        found = segments.preview(s, shop.id, {"rules": [rule("bought_collection", "any", ["gifts"])]}, NOW,
                                 collections=lookup)
        assert {x["id"] for x in found.customers} == {"ben"}
        assert asked == [["p1", "p2", "p3", "p9"]]  # every product bought in the shop, once, in order
        with pytest.raises(segments.CollectionsUnavailable):
            segments.preview(s, shop.id, {"rules": [rule("bought_collection", "any", ["gifts"])]}, NOW)

        def down(ids: list[str]) -> dict[str, frozenset[str]]:
            raise ConnectionError("store down")
        with pytest.raises(segments.CollectionsUnavailable, match="store down"):
            segments.preview(s, shop.id, {"rules": [rule("bought_collection", "any", ["gifts"])]}, NOW, collections=down)
    assert who(container, shop, rule("bought_collection", "any", ["coffee", "none"]),
               collections={"p1": frozenset({"coffee"})}) == {"ana"}


def test_all_and_any(container: Container, shop: Shop) -> None:
    loyal = rule("orders_count", ">=", 2)
    emailable = rule("consent", "accepts", "email")
    assert who(container, shop, loyal, emailable) == {"ana"}
    assert who(container, shop, loyal, emailable, match="any") == {"ana", "cho", "fay"}
    assert who(container, shop, rule("last_order", "within", 7), rule("tier", "any", ["silver"]), match="any") == {
        "fay", "ben"}


def test_redacted_customers_are_never_members(container: Container, shop: Shop) -> None:
    every = [rule("orders_count", ">=", 0), rule("tier", "any", ["gold"]), rule("survey_score", "<=", 1),
             rule("rfm_segment", "any", ["champions"]), rule("bought_product", "any", ["p1"])]
    assert who(container, shop, *every, match="any") == ALL
    assert who(container, shop, every[0]) == ALL


def test_another_shops_rows_never_count(container: Container, shop: Shop) -> None:
    other = Shop(container, "seg-b.myshopify.com")
    other.customer("ana", email=True)
    other.order("ben", days(1), "9999.00", ("p7",))  # the same customer id in another shop
    other.tier("ben", "gold")
    assert who(container, shop, rule("total_spent", ">=", 1000)) == set()
    assert who(container, shop, rule("bought_product", "any", ["p7"])) == set()
    assert who(container, shop, rule("tier", "any", ["gold"])) == {"ana"}


def members(c: Container, segment_id: int) -> set[str]:
    with c.sessions() as s:
        return set(s.scalars(select(t.SegmentMember.customer_external_id).where(t.SegmentMember.segment_id == segment_id)))


def test_a_saved_segment_is_refreshed_at_once_and_a_refresh_replaces_its_members(container: Container, shop: Shop
                                                                                  ) -> None:
    with container.sessions() as s, s.begin():
        seg = segments.create(s, shop.id, "repeat", " Repeat buyers ", {"rules": [rule("orders_count", ">=", 2)]}, NOW)
        sid = seg.id
    with container.sessions() as s:
        row = s.get(t.Segment, sid)
        assert row is not None and (row.name, row.size, row.refreshed_at, row.kind) == ("Repeat buyers", 2, NOW, "rule")
    assert members(container, sid) == {"ana", "fay"}
    shop.order("ben", days(1), "5.00")  # ben becomes a repeat buyer; fay is erased
    with container.sessions() as s, s.begin():
        s.execute(update(t.Customer).where(t.Customer.shop_id == shop.id, t.Customer.external_id == "fay")
                  .values(redacted_at=NOW))
    assert members(container, sid) == {"ana", "fay"}  # until refreshed
    later = NOW + timedelta(hours=1)
    with container.sessions() as s, s.begin():
        assert segments.refresh(s, shop.id, sid, later) == 2
    assert members(container, sid) == {"ana", "ben"}
    with container.sessions() as s:
        row = s.get(t.Segment, sid)
        assert row is not None and (row.size, row.refreshed_at) == (2, later)
        assert segments.member_of(s, shop.id, "ben") == frozenset({"repeat"})
        with pytest.raises(LookupError):
            segments.refresh(s, shop.id + 1000, sid, later)


def test_an_update_changes_the_rules_and_members_a_failed_one_nothing(container: Container, shop: Shop) -> None:
    with container.sessions() as s, s.begin():
        sid = segments.create(s, shop.id, "gold", "Gold", {"rules": [rule("tier", "any", ["gold"])]}, NOW).id
    with container.sessions() as s, s.begin():
        segments.update(s, shop.id, sid, NOW, name="Gold or silver", data={"rules": [rule("tier", "any", ["gold", "silver"])]})
    assert members(container, sid) == {"ana", "ben"}
    with pytest.raises(InvalidSegment) as bad, container.sessions() as s, s.begin():
        segments.update(s, shop.id, sid, NOW, name="", data={"rules": [rule("tier", "any", ["platinum"])]})
    assert [(p.field, p.message) for p in bad.value.problems] == [
        ("name", "name: a name of at most 255 characters"),
        ("rules.0", "rule 1: not a tier of your program: platinum")]
    with container.sessions() as s:
        row = s.get(t.Segment, sid)
        assert row is not None and row.name == "Gold or silver" and row.size == 2
    assert members(container, sid) == {"ana", "ben"}


def test_keys_are_checked_and_unique(container: Container, shop: Shop) -> None:
    good = {"rules": [rule("orders_count", ">=", 1)]}
    with container.sessions() as s, s.begin():
        segments.create(s, shop.id, "buyers", "Buyers", good, NOW)
    for key, message in (("buyers", "key: another segment is called 'buyers' already"),
                         ("rfm:champions", "key: lower-case letters"), ("Big Spenders", "key: lower-case letters"),
                         ("", "key: lower-case letters")):
        with pytest.raises(InvalidSegment, match=message), container.sessions() as s, s.begin():
            segments.create(s, shop.id, key, "X", good, NOW)
    with container.sessions() as s:
        assert s.scalar(select(t.Segment.key).where(t.Segment.shop_id == shop.id)) == "buyers"


def test_refresh_all_keeps_the_rfm_segments_in_step(container: Container, shop: Shop) -> None:
    with container.sessions() as s, s.begin():
        segments.create(s, shop.id, "emailable", "Emailable", {"rules": [rule("consent", "accepts", "email")]}, NOW)
        bad = segments.create(s, shop.id, "gifts", "Gift buyers", {"rules": [rule("bought_collection", "any", ["gifts"])]},
                              NOW, collections=lambda ids: {"p3": frozenset({"gifts"})})
        assert bad.size == 1
    with container.sessions() as s, s.begin():
        sizes = segments.refresh_all(s, shop.id, NOW)  # no store connection: the collection segment keeps its members
    assert sizes == {"emailable": 2, **{f"rfm:{label}": {"champions": 1, "hibernating": 1, "new": 1}.get(label, 0)
                                        for label in RFM_LABELS}}
    with container.sessions() as s:
        rows = {r.key: r for r in s.scalars(select(t.Segment).where(t.Segment.shop_id == shop.id))}
        assert rows["rfm:champions"].kind == "rfm" and rows["rfm:champions"].name == "Champions"
        assert segments.display_name(rows["rfm:at_risk"], "ko") == "이탈 위험"
        assert segments.display_name(rows["emailable"], "ko") == "Emailable"
        assert segments.member_of(s, shop.id, "ana") == frozenset({"emailable", "rfm:champions"})
        assert segments.member_of(s, shop.id, "ben") == frozenset({"gifts", "rfm:hibernating"})
        assert segments.member_of(s, shop.id, "eve") == frozenset()  # redacted, though a champion in the metrics
    with container.sessions() as s, s.begin():  # nightly again, with the store: the same rows, new members
        s.execute(update(t.CustomerMetrics).where(t.CustomerMetrics.customer_external_id == "ana")
                  .values(rfm_segment="at_risk"))
        again = segments.refresh_all(s, shop.id, NOW, collections=lambda ids: {"p2": frozenset({"gifts"})})
    assert again["gifts"] == 2 and again["rfm:champions"] == 0 and again["rfm:at_risk"] == 1
    with container.sessions() as s:
        assert len(s.scalars(select(t.Segment).where(t.Segment.shop_id == shop.id)).all()) == 2 + len(RFM_LABELS)
        assert segments.member_of(s, shop.id, "ana") == frozenset({"emailable", "gifts", "rfm:at_risk"})


def test_built_in_segments_cannot_be_changed_or_deleted(container: Container, shop: Shop) -> None:
    with container.sessions() as s, s.begin():
        segments.sync_rfm(s, shop.id, NOW)
        sid = s.scalar(select(t.Segment.id).where(t.Segment.shop_id == shop.id, t.Segment.key == "rfm:lost"))
        assert sid is not None
    with pytest.raises(segments.SegmentRefused, match="cannot be changed"), container.sessions() as s, s.begin():
        segments.update(s, shop.id, sid, NOW, name="Mine now")
    with pytest.raises(segments.SegmentRefused, match="cannot be deleted"), container.sessions() as s, s.begin():
        segments.remove(s, shop.id, sid)


def test_targeting_reads_a_batch_of_customers_segments_and_tiers(container: Container, shop: Shop) -> None:
    with container.sessions() as s, s.begin():
        segments.create(s, shop.id, "repeat", "Repeat", {"rules": [rule("orders_count", ">=", 2)]}, NOW)
        segments.create(s, shop.id, "survey-low", "Unhappy", {"rules": [rule("survey_score", "<=", 2)]}, NOW)
    with container.sessions() as s:
        found = segments.targeting(s, [(shop.id, "ana"), (shop.id, "ben"), (shop.id, "dee"), (shop.id, "zed"),
                                       (shop.id, None), (shop.id + 1000, "ana")])
    assert found == {(shop.id, "ana"): (frozenset({"repeat"}), "gold"), (shop.id, "ben"): (frozenset({"survey-low"}), "silver"),
                     (shop.id, "dee"): (frozenset(), None), (shop.id, "zed"): (frozenset(), None),
                     (shop.id + 1000, "ana"): (frozenset(), None)}
