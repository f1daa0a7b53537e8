"""VIP tiers in the database: a shop's tiers, a customer's progress over the program's rolling window (money
spent on paid orders less refunds, or points earned), and each evaluation's outcome stored on the account with
every change recorded (`tier_changes`). The rules are the core's (`app.core.tiers`). Evaluated on every order
(`core.points.react`) and by the hourly loyalty sweep, where grace periods run out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.core.events import TierChanged
from app.core.loyalty import LoyaltyError, Reason
from app.core.model import WAS_PAID
from app.core.tiers import Basis, Standing, Tier, evaluate, ladder, multiplier
from app.db.models import LedgerEntry, LoyaltyAccount, LoyaltyProgramRow, LoyaltyTier, Order, TierChange

GAINS = (Reason.EARNED.value, Reason.ACTION.value, Reason.BONUS.value, Reason.REVERSED.value)


def set_tiers(s: Session, shop_id: int, tiers: Sequence[Tier], now: datetime) -> None:
    """The shop's tiers, replaced (checked by the core: distinct keys and thresholds)."""
    ladder(tiers)
    s.execute(delete(LoyaltyTier).where(LoyaltyTier.shop_id == shop_id))
    s.add_all(LoyaltyTier(shop_id=shop_id, key=t.key, name=t.name, threshold=t.threshold, multiplier=t.multiplier,
                          perks=list(t.perks), created_at=now) for t in tiers)
    s.flush()


def tiers_of(s: Session, shop_id: int) -> tuple[Tier, ...]:
    return ladder([Tier(r.key, r.name, r.threshold, r.multiplier, tuple(r.perks))
                   for r in s.scalars(select(LoyaltyTier).where(LoyaltyTier.shop_id == shop_id))])


def progress(s: Session, shop_id: int, customer_id: str, basis: Basis, since: datetime) -> Decimal:
    """Spend (paid, not cancelled orders placed since, less their refunds) or points earned since (earnings,
    actions and bonuses, less what refunds took back)."""
    if basis is Basis.SPEND:
        spent = s.scalar(select(func.coalesce(func.sum(Order.total - Order.refunded_amount), 0)).where(
            Order.shop_id == shop_id, Order.customer_external_id == customer_id, Order.created_at >= since,
            Order.cancelled_at.is_(None), Order.payment_status.in_([p.value for p in WAS_PAID])))
        return Decimal(str(spent or 0))
    earned = s.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0))
                      .join(LoyaltyAccount, LoyaltyAccount.id == LedgerEntry.account_id)
                      .where(LoyaltyAccount.shop_id == shop_id, LoyaltyAccount.customer_external_id == customer_id,
                             LedgerEntry.reason.in_(GAINS), LedgerEntry.created_at >= since))
    return Decimal(int(earned or 0))


def tier_multiplier(s: Session, shop_id: int, customer_id: str) -> Decimal:
    key = s.scalar(select(LoyaltyAccount.tier).where(LoyaltyAccount.shop_id == shop_id,
                                                     LoyaltyAccount.customer_external_id == customer_id))
    if key is None:
        return Decimal("1")
    return multiplier(tiers_of(s, shop_id), key)


def evaluate_customer(s: Session, shop_id: int, customer_id: str, now: datetime) -> TierChanged | None:
    """Evaluate one customer's tier now; the standing is stored and a change recorded and returned."""
    program = s.execute(select(LoyaltyProgramRow.enabled, LoyaltyProgramRow.tier_basis,
                               LoyaltyProgramRow.tier_window_days, LoyaltyProgramRow.tier_grace_days)
                        .where(LoyaltyProgramRow.shop_id == shop_id)).first()
    if program is None or not program.enabled:
        return None
    tiers = tiers_of(s, shop_id)
    if not tiers:
        return None
    account = s.scalar(select(LoyaltyAccount).where(LoyaltyAccount.shop_id == shop_id,
                                                    LoyaltyAccount.customer_external_id == customer_id)
                       .with_for_update())
    if account is None:
        return None
    try:
        basis = Basis(program.tier_basis)
    except ValueError:
        raise LoyaltyError(f"unknown tier basis {program.tier_basis!r}") from None
    reached = progress(s, shop_id, customer_id, basis, now - timedelta(days=program.tier_window_days))
    standing, change = evaluate(tiers, Standing(account.tier, account.below_since), reached, now,
                                timedelta(days=program.tier_grace_days))
    account.tier, account.below_since = standing.tier, standing.below_since
    if change is None:
        return None
    account.tier_since = now
    s.add(TierChange(shop_id=shop_id, customer_external_id=customer_id, old=change.old, new=change.new,
                     upgraded=change.upgraded, progress=reached, at=now))
    s.flush()
    return TierChanged(shop_id, now, customer_id, change.old, change.new, change.upgraded)


def due_for_evaluation(s: Session, shop_id: int) -> list[str]:
    """Customers whose standing may change with time alone: those in a tier (their window moves on)."""
    return list(s.scalars(select(LoyaltyAccount.customer_external_id).where(
        LoyaltyAccount.shop_id == shop_id, LoyaltyAccount.tier.is_not(None)).order_by(LoyaltyAccount.id)))
