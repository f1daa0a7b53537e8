"""Segments in the database: the merchant's rule-based segments and the built-in RFM ones, their members
materialised in `segment_members`, and what journeys and rewards read of them.

A segment's rules (`app.core.segments`) compile to one SELECT of customer ids over customers, orders, order lines,
loyalty accounts, survey answers, contact preferences and customer metrics; the aggregates (orders, spend net of
refunds, first and last order) are computed by the database in a grouped subquery, never by looping over orders
here. The same SQL runs on SQLite and PostgreSQL. Redacted customers are never members.

Members are materialised because journeys and rewards ask "is this customer in it?" far more often than the
answer changes: `refresh` replaces one segment's members in the caller's transaction (its row locked, so two
refreshes of one segment queue instead of colliding), as a DELETE and an INSERT ... SELECT, and records the size.
A segment is refreshed when it is saved and, with every other one, by the nightly analytics run (`refresh_all`),
which also keeps the built-in RFM segments in step: one per label of `app.core.rfm` (key "rfm:<label>"), whose
members are the customers `customer_metrics.rfm_segment` puts there. Those cannot be edited or deleted.

Collections are not stored in Encore: a `bought_collection` rule asks the store which collections the products
the shop's customers bought belong to (`StorePlatform.product_collections`, through a `CollectionLookup`). Without
a lookup such a segment cannot be computed: saving it says so, and `refresh_all` keeps its last members.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import ColumnElement, and_, delete, func, insert, literal, or_, select
from sqlalchemy.orm import Session

from app.core.rfm import RFM_LABELS
from app.core.segments import KEY, InvalidSegment, Problem, Rule, Rules, parse
from app.db.engine import among, insert_for
from app.db.models import (
    Customer,
    JourneyRow,
    JourneyVersion,
    LoyaltyAccount,
    OrderLine,
    Reward,
    Segment,
    SegmentMember,
)
from app.db.segments import members_query
from app.i18n import translations
from app.tiers import tiers_of

if TYPE_CHECKING:
    from app.bootstrap import Container

log = structlog.get_logger(__name__)

DOMAIN = "segments_admin"  # the segments page's Babel catalog; also names the built-in segments
RFM_PREFIX = "rfm:"
MAX_SEGMENTS = 100  # the merchant's own, per shop
RFM_NAMES: dict[str, str] = {  # msgids of the segments_admin catalog
    "champions": "Champions", "loyal": "Loyal", "potential_loyalist": "Potential loyalists",
    "new": "New customers", "promising": "Promising", "need_attention": "Need attention",
    "about_to_sleep": "About to sleep", "at_risk": "At risk", "cannot_lose": "Can't lose them",
    "hibernating": "Hibernating", "lost": "Lost",
}

CollectionLookup = Callable[[list[str]], Mapping[str, frozenset[str]]]  # product ids -> each one's collections


class SegmentRefused(Exception):
    """A segment cannot be changed or deleted (built in, or in use); the message says why, and what uses it."""

    def __init__(self, message: str, *, rewards: tuple[str, ...] = (), journeys: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.rewards, self.journeys = rewards, journeys


class UnknownSegment(LookupError):
    """No such segment in this shop."""


class CollectionsUnavailable(RuntimeError):
    """A bought_collection rule needs the store's collections and they could not be read."""


def _collections(s: Session, shop_id: int, rules: Rules, lookup: CollectionLookup | None
                 ) -> Mapping[str, frozenset[str]] | None:
    """Each product the shop's customers bought, with its collections: asked of the store, only when needed."""
    if "bought_collection" not in rules.fields():
        return None
    if lookup is None:
        raise CollectionsUnavailable("a bought_collection rule needs the store's collections, and no store "
                                     "connection was given")
    bought = sorted(p for p in s.scalars(select(OrderLine.product_external_id).distinct().where(
        OrderLine.shop_id == shop_id, OrderLine.product_external_id.is_not(None))) if p)
    try:
        return lookup(bought) if bought else {}
    except Exception as exc:  # the store is down or refused: the segment cannot be computed now
        raise CollectionsUnavailable(f"the store's collections could not be read: {type(exc).__name__}: {exc}") from exc


def store_collections(c: Container, shop_id: int) -> CollectionLookup:
    """The shop's store as a CollectionLookup (its platform connection made when first asked)."""
    from app import shops  # shops imports the connectors; only this needs them

    def lookup(product_ids: list[str]) -> Mapping[str, frozenset[str]]:
        return shops.store_platform(c, shop_id).product_collections(product_ids)
    return lookup


# --- materialised members --------------------------------------------------------------------------------------


def _rules_of(segment: Segment) -> Rules:
    return parse(segment.rules)  # checked when saved; tiers deleted since simply match nobody


def _fill(s: Session, segment: Segment, now: datetime, collections: Mapping[str, frozenset[str]] | None) -> int:
    s.execute(select(Segment.id).where(Segment.id == segment.id).with_for_update())
    q = members_query(segment.shop_id, _rules_of(segment), now, collections)
    s.execute(delete(SegmentMember).where(SegmentMember.segment_id == segment.id))
    s.execute(insert(SegmentMember).from_select(
        ["segment_id", "customer_external_id", "shop_id"],
        q.with_only_columns(literal(segment.id), Customer.external_id, literal(segment.shop_id))))
    size = int(s.scalar(select(func.count()).select_from(SegmentMember).where(SegmentMember.segment_id == segment.id))
               or 0)
    segment.size, segment.refreshed_at = size, now
    s.flush()
    return size


def _own(s: Session, shop_id: int, segment_id: int) -> Segment:
    segment = s.get(Segment, segment_id)
    if segment is None or segment.shop_id != shop_id:
        raise UnknownSegment(f"no segment {segment_id}")
    return segment


def refresh(s: Session, shop_id: int, segment_id: int, now: datetime, *, collections: CollectionLookup | None = None
            ) -> int:
    """Replace the segment's members with who its rules hold for now, in the caller's transaction; the new size.
    UnknownSegment for another shop's (or no) segment; CollectionsUnavailable when a collection rule cannot be
    read."""
    segment = _own(s, shop_id, segment_id)
    return _fill(s, segment, now, _collections(s, shop_id, _rules_of(segment), collections))


def sync_rfm(s: Session, shop_id: int, now: datetime) -> None:
    """The built-in RFM segments, one per label, made if missing (two runs at once make each once)."""
    s.execute(insert_for(s, Segment).values([
        {"shop_id": shop_id, "key": RFM_PREFIX + label, "name": RFM_NAMES[label], "kind": "rfm", "size": 0,
         "rules": Rules("all", (Rule("rfm_segment", "any", (label,)),)).to_data(), "created_at": now,
         "updated_at": now} for label in RFM_LABELS]).on_conflict_do_nothing(index_elements=["shop_id", "key"]))


def refresh_all(s: Session, shop_id: int, now: datetime, *, collections: CollectionLookup | None = None
                ) -> dict[str, int]:
    """Every segment of the shop refreshed (the RFM ones from `customer_metrics`, made first if missing), in the
    caller's transaction; each refreshed segment's key and size. A segment whose collections cannot be read
    keeps its last members (logged), so one store outage does not empty it."""
    sync_rfm(s, shop_id, now)
    sizes: dict[str, int] = {}
    known: Mapping[str, frozenset[str]] | None = None
    for segment in s.scalars(select(Segment).where(Segment.shop_id == shop_id).order_by(Segment.id)).all():
        try:
            rules = _rules_of(segment)
            if known is None and "bought_collection" in rules.fields():
                known = _collections(s, shop_id, rules, collections)  # asked of the store once per run
            sizes[segment.key] = _fill(s, segment, now, known)
        except (CollectionsUnavailable, InvalidSegment) as exc:
            log.warning("segments.refresh_skipped", shop_id=shop_id, segment=segment.key, error=str(exc))
    return sizes


def member_of(s: Session, shop_id: int, customer_id: str) -> frozenset[str]:
    """The keys of the segments the customer is in (as of each one's last refresh)."""
    return frozenset(s.scalars(select(Segment.key).join(SegmentMember, SegmentMember.segment_id == Segment.id).where(
        SegmentMember.shop_id == shop_id, SegmentMember.customer_external_id == customer_id)))


def is_member(s: Session, segment_id: int, customer_id: str) -> bool:
    return s.scalar(select(SegmentMember.segment_id).where(SegmentMember.segment_id == segment_id,
                                                           SegmentMember.customer_external_id == customer_id)) is not None


def open_to(shop_id: int, customer_id: str) -> ColumnElement[bool]:
    """A condition on rewards: those the customer may redeem (not limited to a segment, or to one of theirs)."""
    return or_(Reward.segment_id.is_(None), Reward.segment_id.in_(select(SegmentMember.segment_id).where(
        SegmentMember.shop_id == shop_id, SegmentMember.customer_external_id == customer_id)))


Targets = dict[tuple[int, str], tuple[frozenset[str], str | None]]


def targeting(s: Session, customers: Iterable[tuple[int, str | None]]) -> Targets:
    """Each customer's segment keys and VIP tier, for journey conditions (`Facts.segments`, `Facts.tier`): two
    queries per shop for a whole batch of customers, whatever its size."""
    by_shop: dict[int, set[str]] = {}
    for shop_id, customer_id in customers:
        if customer_id:
            by_shop.setdefault(shop_id, set()).add(customer_id)
    keys: dict[tuple[int, str], set[str]] = {}
    tiers: dict[tuple[int, str], str | None] = {}
    for shop_id, ids in by_shop.items():
        for customer_id, key in s.execute(select(SegmentMember.customer_external_id, Segment.key)
                                          .join(Segment, Segment.id == SegmentMember.segment_id)
                                          .where(SegmentMember.shop_id == shop_id,
                                                 among(s, SegmentMember.customer_external_id, sorted(ids)))):
            keys.setdefault((shop_id, customer_id), set()).add(key)
        for customer_id, tier in s.execute(select(LoyaltyAccount.customer_external_id, LoyaltyAccount.tier).where(
                LoyaltyAccount.shop_id == shop_id, among(s, LoyaltyAccount.customer_external_id, sorted(ids)))):
            tiers[(shop_id, customer_id)] = tier
    return {(shop_id, cid): (frozenset(keys.get((shop_id, cid), ())), tiers.get((shop_id, cid)))
            for shop_id, ids in by_shop.items() for cid in ids}


# --- the merchant's segments -----------------------------------------------------------------------------------


def display_name(segment: Segment, locale: str) -> str:
    """A built-in segment's name in the admin's language; the merchant's own as they wrote it."""
    if segment.kind == "rfm":
        label = segment.key.removeprefix(RFM_PREFIX)
        return translations(locale, DOMAIN).gettext(RFM_NAMES.get(label, segment.name))
    return segment.name


def known_keys(s: Session, shop_id: int) -> frozenset[str]:
    """Keys a journey condition may name: the shop's segments and the built-in RFM ones (made on first refresh)."""
    return frozenset(s.scalars(select(Segment.key).where(Segment.shop_id == shop_id))) | {
        RFM_PREFIX + label for label in RFM_LABELS}


def check(s: Session, shop_id: int, data: object, *, name: object = None, key: object = None,
          segment_id: int | None = None) -> Rules:
    """The segment's rules (and its name and new key, when given) checked: InvalidSegment with every problem."""
    problems: list[Problem] = []
    if name is not None and not (isinstance(name, str) and 0 < len(name.strip()) <= 255):
        problems.append(Problem(None, "name: a name of at most 255 characters", "name"))
    if key is not None:
        if not isinstance(key, str) or not KEY.match(key):
            problems.append(Problem(None, "key: lower-case letters, digits, - and _ (at most 64), starting with a "
                                          "letter or digit", "key"))
        elif s.scalar(select(Segment.id).where(Segment.shop_id == shop_id, Segment.key == key,
                                               Segment.id != (segment_id or 0))) is not None:
            problems.append(Problem(None, f"key: another segment is called {key!r} already", "key"))
    try:
        rules = parse(data, tiers=frozenset(x.key for x in tiers_of(s, shop_id)))
    except InvalidSegment as exc:
        problems += exc.problems
    if problems:
        raise InvalidSegment(problems)
    return rules


def create(s: Session, shop_id: int, key: object, name: object, data: object, now: datetime, *,
           collections: CollectionLookup | None = None) -> Segment:
    """A new rule-based segment, refreshed at once (its size is known when this returns). InvalidSegment with
    every problem, or CollectionsUnavailable; the caller's transaction then holds nothing of it."""
    rules = check(s, shop_id, data, name="" if name is None else name, key="" if key is None else key)
    assert isinstance(key, str) and isinstance(name, str)  # checked
    mine = s.scalar(select(func.count()).select_from(Segment).where(Segment.shop_id == shop_id, Segment.kind == "rule"))
    if int(mine or 0) >= MAX_SEGMENTS:
        raise InvalidSegment([Problem(None, f"segments: at most {MAX_SEGMENTS} of your own; delete one first", "key")])
    found = _collections(s, shop_id, rules, collections)
    segment = Segment(shop_id=shop_id, key=key, name=name.strip(), kind="rule", rules=rules.to_data(), size=0,
                      created_at=now, updated_at=now)
    s.add(segment)
    s.flush()
    _fill(s, segment, now, found)
    return segment


def update(s: Session, shop_id: int, segment_id: int, now: datetime, *, name: object = None, data: object = None,
           collections: CollectionLookup | None = None) -> Segment:
    """A new name and/or rules (the key stays: journeys name it), refreshed at once. UnknownSegment, SegmentRefused
    (a built-in segment), InvalidSegment or CollectionsUnavailable, and then nothing is changed."""
    segment = _own(s, shop_id, segment_id)
    if segment.kind != "rule":
        raise SegmentRefused("the RFM segments are computed every night and cannot be changed")
    rules = check(s, shop_id, segment.rules if data is None else data, name=name)
    found = _collections(s, shop_id, rules, collections)
    if name is not None:
        segment.name = str(name).strip()
    segment.rules, segment.updated_at = rules.to_data(), now
    _fill(s, segment, now, found)
    return segment


Usage = dict[str, tuple[list[str], list[str]]]  # segment key -> (reward titles, journey keys)


def usage(s: Session, shop_id: int) -> Usage:
    """What targets each of the shop's segments: the rewards limited to it and the journeys whose live version has
    a step naming it. Two queries for all of them."""
    found: Usage = {}
    for key, title in s.execute(select(Segment.key, Reward.title).join(Segment, Segment.id == Reward.segment_id)
                                .where(Reward.shop_id == shop_id).order_by(Reward.id)):
        found.setdefault(key, ([], []))[0].append(title)
    for journey, definition in s.execute(select(JourneyRow.key, JourneyVersion.definition).join(
            JourneyVersion, and_(JourneyVersion.journey_id == JourneyRow.id, JourneyVersion.version == JourneyRow.version))
            .where(JourneyRow.shop_id == shop_id).order_by(JourneyRow.key)):
        steps = definition.get("steps") if isinstance(definition, dict) else None
        named = {k for st in steps or () if isinstance(st, dict) for k in (st.get("condition") or {}).get("any_segment") or ()}
        for key in sorted(named):
            found.setdefault(key, ([], []))[1].append(journey)
    return found


def remove(s: Session, shop_id: int, segment_id: int) -> None:
    """Delete a segment of the merchant's with its members. UnknownSegment, or SegmentRefused when it is built in
    or a reward or a journey targets it (saying which), and then nothing is changed."""
    segment = _own(s, shop_id, segment_id)
    if segment.kind != "rule":
        raise SegmentRefused("the RFM segments are built in and cannot be deleted")
    titles, journeys = usage(s, shop_id).get(segment.key, ([], []))
    if titles or journeys:
        uses = ([f"rewards {', '.join(repr(t) for t in titles)}"] if titles else []) + (
            [f"journeys {', '.join(journeys)}"] if journeys else [])
        raise SegmentRefused(f"this segment is still targeted by {' and '.join(uses)}: choose another segment for "
                             "them first", rewards=tuple(titles), journeys=tuple(journeys))
    s.delete(segment)
    s.flush()


@dataclass(frozen=True)
class Preview:
    size: int
    customers: list[dict[str, str | None]]  # the first few, by id: id, email, name


def preview(s: Session, shop_id: int, data: object, now: datetime, *, collections: CollectionLookup | None = None,
            limit: int = 20) -> Preview:
    """Who the rules would hold for now, without saving anything: how many, and the first `limit`."""
    rules = check(s, shop_id, data)
    q = members_query(shop_id, rules, now, _collections(s, shop_id, rules, collections)).subquery()
    size = int(s.scalar(select(func.count()).select_from(q)) or 0)
    c = Customer
    first = s.execute(select(c.external_id, c.email, c.first_name, c.last_name).where(
        c.shop_id == shop_id, c.external_id.in_(select(q.c.external_id))).order_by(c.external_id).limit(limit))
    return Preview(size, [{"id": cid, "email": email, "name": " ".join(p for p in (first_name, last_name) if p) or None}
                          for cid, email, first_name, last_name in first])


__all__ = ["DOMAIN", "MAX_SEGMENTS", "RFM_NAMES", "RFM_PREFIX", "CollectionLookup", "CollectionsUnavailable",
           "Preview", "SegmentRefused", "Targets", "UnknownSegment", "Usage", "check", "create", "display_name",
           "is_member", "known_keys", "member_of", "open_to", "preview", "refresh", "refresh_all", "remove",
           "store_collections", "sync_rfm", "targeting", "update", "usage"]
