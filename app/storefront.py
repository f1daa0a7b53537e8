"""What the storefront widget shows a shopper, and what it lets them do: balance and pending points, their VIP
tier and the way to the next, the rewards they can buy, their codes, and their history. The platforms' routes
(`app/web/proxy.py` for Shopify's app proxy) authenticate the shopper and call in here."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from app import loyalty, tiers
from app.bootstrap import Container
from app.core.tiers import Basis
from app.db.models import LedgerEntry, LoyaltyAccount, LoyaltyProgramRow, Redemption, Reward, Shop

HISTORY = 20


def _number(value: Decimal) -> str:
    """A decimal as plain digits, without the database's trailing zeros ("500", "12.5")."""
    return format(value.normalize(), "f")


def widget(c: Container, shop_id: int, customer_id: str, now: datetime) -> dict[str, Any]:
    with c.sessions() as s:
        shop = s.get(Shop, shop_id)
        program = s.scalar(select(LoyaltyProgramRow).where(LoyaltyProgramRow.shop_id == shop_id))
        assert shop is not None
        if program is None or not program.enabled:
            return {"enabled": False}
        account = loyalty.balance(s, shop_id, customer_id)
        row = s.scalar(select(LoyaltyAccount).where(LoyaltyAccount.shop_id == shop_id,
                                                    LoyaltyAccount.customer_external_id == customer_id))
        ladder = tiers.tiers_of(s, shop_id)
        current = row.tier if row is not None else None
        basis = Basis(program.tier_basis)
        tier: dict[str, Any] | None = None
        if ladder:
            made = tiers.progress(s, shop_id, customer_id, basis, now - timedelta(days=program.tier_window_days))
            higher = [t for t in ladder if t.threshold > made]
            named = next((t for t in ladder if t.key == current), None)
            tier = {"key": current, "name": named.name if named else None,
                    "perks": list(named.perks) if named else [], "basis": basis.value, "progress": _number(made),
                    "next": None if not higher else {"key": higher[0].key, "name": higher[0].name,
                                                     "remaining": _number(higher[0].threshold - made)}}
        rewards = [{"id": r.id, "title": r.title, "kind": r.kind, "value": None if r.value is None else _number(r.value),
                    "cost": r.cost, "affordable": account.available >= r.cost}
                   for r in s.scalars(select(Reward).where(Reward.shop_id == shop_id, Reward.enabled.is_(True))
                                      .order_by(Reward.cost, Reward.id))]
        codes = [{"code": r.code, "points": r.points, "status": r.status, "expires_at": r.expires_at.isoformat()}
                 for r in s.scalars(select(Redemption).where(Redemption.shop_id == shop_id,
                                                             Redemption.customer_external_id == customer_id)
                                    .order_by(Redemption.created_at.desc()).limit(HISTORY))]
        history = [{"at": e.created_at.isoformat(), "points": e.amount, "balance": e.balance, "reason": e.reason,
                    "order": e.order_external_id}
                   for e in s.scalars(select(LedgerEntry).join(LoyaltyAccount, LoyaltyAccount.id == LedgerEntry.account_id)
                                      .where(LoyaltyAccount.shop_id == shop_id,
                                             LoyaltyAccount.customer_external_id == customer_id,
                                             LedgerEntry.reason != "confirmed")
                                      .order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc()).limit(HISTORY))]
        return {"enabled": True, "currency": shop.currency, "points": {"available": account.available,
                                                                       "pending": account.pending},
                "tier": tier, "rewards": rewards, "codes": codes, "history": history}
