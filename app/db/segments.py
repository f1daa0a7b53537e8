"""Segment rules (app.core.segments) compiled to SQL: one SELECT of the customer ids the rules hold for.

Aggregates (paid orders, spend net of refunds, first and last order) come from one grouped subquery of the
shop's orders, joined only when a rule needs them; "bought", "tier", "latest survey answer", "consent" and "RFM
segment" are uncorrelated IN subqueries (which SQLite runs once, where a correlated EXISTS would search each
customer's rows again). The latest answer is picked with ROW_NUMBER() over the customer's answers. Everything here
runs the same on SQLite and PostgreSQL. Redacted customers are never selected.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, func, not_, or_, select

from app.core.model import WAS_PAID
from app.core.segments import Rule, Rules
from app.db.models import ContactPreference, Customer, CustomerMetrics, LoyaltyAccount, Order, OrderLine, SurveyResponse


def _live(shop_id: int) -> list[ColumnElement[bool]]:
    """Orders that count: paid, not cancelled, with a customer."""
    return [Order.shop_id == shop_id, Order.customer_external_id.is_not(None), Order.cancelled_at.is_(None),
            Order.payment_status.in_(sorted(p.value for p in WAS_PAID))]


@dataclass
class _Compiler:
    shop_id: int
    now: datetime
    collections: Mapping[str, frozenset[str]]
    stats: Any = None  # the grouped subquery of orders, made when a rule needs it

    def _stats(self) -> Any:
        if self.stats is None:
            o = Order
            self.stats = (select(o.customer_external_id.label("customer"), func.count().label("orders"),
                                 func.sum(o.total - o.refunded_amount).label("spent"),
                                 func.min(o.created_at).label("first"), func.max(o.created_at).label("last"))
                          .where(*_live(self.shop_id)).group_by(o.customer_external_id).subquery("stats"))
        return self.stats

    def _bought(self, product_ids: Iterable[str]) -> ColumnElement[bool]:
        wanted = sorted(product_ids)
        if not wanted:
            return false()
        return Customer.external_id.in_(select(Order.customer_external_id).join(OrderLine, OrderLine.order_id == Order.id)
                                        .where(*_live(self.shop_id), OrderLine.shop_id == self.shop_id,
                                               OrderLine.product_external_id.in_(wanted)))

    def _latest(self, column: Any, op: str, value: int) -> ColumnElement[bool]:
        """The customer's latest answer (the one given or changed last) on `column` is at most / at least `value`."""
        r = SurveyResponse
        ranked = (select(r.customer_external_id.label("customer"), column.label("value"),
                         func.row_number().over(partition_by=r.customer_external_id,
                                                order_by=(r.updated_at.desc(), r.id.desc())).label("n"))
                  .where(r.shop_id == self.shop_id, r.customer_external_id.is_not(None), column.is_not(None))
                  .subquery("latest"))
        within = ranked.c.value <= value if op == "<=" else ranked.c.value >= value
        return Customer.external_id.in_(select(ranked.c.customer).where(ranked.c.n == 1, within))

    def _accepts(self, channel: str) -> ColumnElement[bool]:
        """The store's consent, less Encore's own opt-outs (that channel, or all marketing)."""
        p = ContactPreference
        opted_out = select(p.customer_external_id).where(
            p.shop_id == self.shop_id, or_((p.email if channel == "email" else p.sms).is_(False), p.unsubscribed_at.is_not(None)))
        consent = Customer.accepts_email_marketing if channel == "email" else Customer.accepts_sms_marketing
        return and_(consent.is_(True), Customer.external_id.not_in(opted_out))

    def _any_of(self, field: str, names: tuple[str, ...]) -> ColumnElement[bool]:
        if field == "bought_product":
            return self._bought(names)
        if field == "bought_collection":
            return self._bought(pid for pid, found in self.collections.items() if found & set(names))
        if field == "tier":
            return Customer.external_id.in_(select(LoyaltyAccount.customer_external_id).where(
                LoyaltyAccount.shop_id == self.shop_id, LoyaltyAccount.tier.in_(names)))
        assert field == "rfm_segment"
        return Customer.external_id.in_(select(CustomerMetrics.customer_external_id).where(
            CustomerMetrics.shop_id == self.shop_id, CustomerMetrics.rfm_segment.in_(names)))

    def condition(self, rule: Rule) -> ColumnElement[bool]:
        v = rule.value
        if isinstance(v, tuple):
            return self._any_of(rule.field, v)
        if rule.field in ("orders_count", "total_spent"):
            column: ColumnElement[Any] = func.coalesce(
                self._stats().c.orders if rule.field == "orders_count" else self._stats().c.spent, 0)
            return column >= v if rule.op == ">=" else column <= v if rule.op == "<=" else column == v
        if rule.field in ("last_order", "first_order"):
            assert isinstance(v, int)
            at: ColumnElement[datetime] = self._stats().c.last if rule.field == "last_order" else self._stats().c.first
            cutoff = self.now - timedelta(days=v)
            return at >= cutoff if rule.op == "within" else at < cutoff
        if rule.field in ("survey_score", "nps"):
            assert isinstance(v, int)
            return self._latest(SurveyResponse.score if rule.field == "survey_score" else SurveyResponse.nps, rule.op, v)
        assert rule.field == "consent"
        accepts = self._accepts(str(v))
        return accepts if rule.op == "accepts" else not_(accepts)


def members_query(shop_id: int, rules: Rules, now: datetime,
                  collections: Mapping[str, frozenset[str]] | None = None) -> Select[Any]:
    """SELECT customer_external_id of the customers the rules hold for (never a redacted one). `collections`:
    each bought product's collections, for a bought_collection rule."""
    compiler = _Compiler(shop_id, now, collections or {})
    conditions = [compiler.condition(r) for r in rules.rules]
    c = Customer
    q = select(c.external_id).where(c.shop_id == shop_id, c.redacted_at.is_(None),
                                    and_(*conditions) if rules.match == "all" else or_(*conditions))
    if compiler.stats is not None:
        q = q.outerjoin(compiler.stats, compiler.stats.c.customer == c.external_id)
    return q


__all__ = ["members_query"]
