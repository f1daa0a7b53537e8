"""The loyalty repository the core asks for (`ports.LoyaltyRepository`): the shop's program and current rule,
what the ledger holds for an order, and postings through `app.loyalty.post`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import badges, loyalty, referrals, stamps, tiers
from app.core import lift
from app.core.events import DomainEvent, TierChanged
from app.core.loyalty import LineEarning, Posting, Reason
from app.core.ports import LoyaltyProgram, OrderPoints
from app.db.models import LedgerEntry, LoyaltyProgramRow, LoyaltyRule
from app.loyalty import rule_from


class Loyalty:
    def __init__(self, s: Session) -> None:
        self.s = s
        self._holdout: dict[int, int] = {}  # shop -> the program's holdout share, read once per unit of work

    def program(self, shop_id: int) -> LoyaltyProgram | None:
        row = self.s.execute(select(LoyaltyProgramRow.enabled, LoyaltyProgramRow.started_at,
                                    LoyaltyProgramRow.confirm_after_days, LoyaltyProgramRow.holdout_percent)
                             .where(LoyaltyProgramRow.shop_id == shop_id)).first()
        if row is None or not row.enabled:
            return None
        rule = self.s.execute(select(LoyaltyRule.version, LoyaltyRule.definition).where(LoyaltyRule.shop_id == shop_id)
                              .order_by(LoyaltyRule.version.desc()).limit(1)).first()
        if rule is None:
            return None
        after = None if row.confirm_after_days is None else timedelta(days=row.confirm_after_days)
        return LoyaltyProgram(rule_from(rule.version, rule.definition), row.started_at, after, row.holdout_percent)

    def order_points(self, shop_id: int, order_id: str) -> OrderPoints:
        e = LedgerEntry
        rows = self.s.execute(select(e.key, e.amount, e.reason, e.line_external_id, e.rule_version, e.detail,
                                     e.account_id)
                              .where(e.shop_id == shop_id, e.order_external_id == order_id)).all()
        earned: list[LineEarning] = []
        reversed_: dict[str, int] = {}
        confirmed = False
        for key, amount, reason, line_id, version, detail, _ in rows:
            if reason == Reason.EARNED.value and line_id is not None and detail:
                earned.append(LineEarning(line_id, Decimal(detail["amount"]), Decimal(detail["rate"]), int(amount),
                                          int(version or 0)))
            elif reason == Reason.REVERSED.value and line_id is not None:
                reversed_[line_id] = reversed_.get(line_id, 0) - int(amount)
            elif reason == Reason.CONFIRMED.value and key.endswith(":in"):
                confirmed = True
        earned.sort(key=lambda x: x.line_id)
        return OrderPoints(None, tuple(earned), reversed_, confirmed)

    def multiplier(self, shop_id: int, customer_id: str) -> Decimal:
        return tiers.tier_multiplier(self.s, shop_id, customer_id)

    def evaluate_tier(self, shop_id: int, customer_id: str, now: datetime) -> TierChanged | None:
        change = tiers.evaluate_customer(self.s, shop_id, customer_id, now)
        if change is not None and change.new is not None:
            badges.award(self.s, shop_id, customer_id, "vip", now, {"tier": change.new})
        return change

    def post(self, shop_id: int, customer_id: str, postings: Sequence[Posting], now: datetime) -> None:
        if postings:
            loyalty.post(self.s, shop_id, customer_id, postings, now)

    def follow(self, event: DomainEvent, now: datetime) -> None:
        program = (loyalty.follow_signup, stamps.follow, badges.follow)
        for follower in (*(() if self._held_out(event) else program), referrals.follow):
            follower(self.s, event, now)

    def _held_out(self, event: DomainEvent) -> bool:
        """Whether the event's customer is in the program's holdout: no sign-up points, stamps or badges."""
        customer_id = getattr(event, "customer_id", None)
        if customer_id is None:
            return False
        if event.shop_id not in self._holdout:
            self._holdout[event.shop_id] = self.s.scalar(select(LoyaltyProgramRow.holdout_percent).where(
                LoyaltyProgramRow.shop_id == event.shop_id)) or 0
        return lift.held_out(event.shop_id, lift.LOYALTY, customer_id, self._holdout[event.shop_id])
