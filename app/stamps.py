"""The stamp card: every paid order stamps its customer's card, and every `stamp_every`-th stamp fills a card
and earns the program's stamp reward, a single-use code written into the store like any reward.

Everything happens in the order's own transaction (`follow`, called for every order event):

- OrderPaid of an order placed after the program started, not cancelled: one stamp (unique per order, so the
  same webhook twice stamps once). When the customer's open stamps (not void, on no card yet) reach
  `stamp_every`, the oldest of them fill card n+1 and a `Redemption` of 0 points is stored `issuing` with the
  request key `stamp:<customer>:<n+1>`; `rewards.issue_due` writes its code into the store (retries, a
  crashed worker's leftovers, and a refusal marked `restored` with the error, as for every reward).
- OrderCancelled, or a refund that leaves nothing of the order: its stamp is void if its card is not filled
  yet. A filled card stays filled: its code may already be in the customer's hands, and the stamp card gives
  codes, not points, so there is nothing to take back from a ledger.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.core.events import DomainEvent, OrderCancelled, OrderPaid, OrderRefunded
from app.core.loyalty import CODE_PREFIX, reward_code
from app.db.engine import insert_for
from app.db.models import LoyaltyProgramRow, Order, Redemption, Reward, Stamp


def follow(s: Session, event: DomainEvent, now: datetime) -> None:
    """An order event, in its transaction: stamp, fill a card, or void a stamp."""
    if not isinstance(event, OrderPaid | OrderCancelled | OrderRefunded) or event.customer_id is None:
        return
    program = s.execute(select(LoyaltyProgramRow.started_at, LoyaltyProgramRow.stamp_every,
                               LoyaltyProgramRow.stamp_reward_id)
                        .where(LoyaltyProgramRow.shop_id == event.shop_id, LoyaltyProgramRow.enabled.is_(True))).first()
    if program is None or not program.stamp_every or program.stamp_reward_id is None:
        return
    order = s.execute(select(Order.created_at, Order.cancelled_at, Order.total, Order.refunded_amount)
                      .where(Order.shop_id == event.shop_id, Order.external_id == event.order_id)).first()
    if order is None:
        return
    if isinstance(event, OrderPaid):
        if order.created_at >= program.started_at and order.cancelled_at is None:
            _stamp(s, event.shop_id, event.customer_id, event.order_id, int(program.stamp_every),
                   int(program.stamp_reward_id), now)
    elif isinstance(event, OrderCancelled) or Decimal(order.refunded_amount) >= Decimal(order.total) > 0:
        s.execute(update(Stamp).where(Stamp.shop_id == event.shop_id, Stamp.order_external_id == event.order_id,
                                      Stamp.card.is_(None)).values(void=True))


def _stamp(s: Session, shop_id: int, customer_id: str, order_id: str, every: int, reward_id: int,
           now: datetime) -> None:
    s.execute(insert_for(s, Stamp).values(shop_id=shop_id, customer_external_id=customer_id, order_external_id=order_id,
                                          void=False, card=None, created_at=now)
              .on_conflict_do_nothing(index_elements=["shop_id", "order_external_id"]))
    mine = (Stamp.shop_id == shop_id, Stamp.customer_external_id == customer_id)
    open_ = list(s.scalars(select(Stamp.id).where(*mine, Stamp.void.is_(False), Stamp.card.is_(None))
                           .order_by(Stamp.created_at, Stamp.id)))
    if len(open_) < every:
        return
    card = int(s.scalar(select(func.coalesce(func.max(Stamp.card), 0)).where(*mine)) or 0) + 1
    s.execute(update(Stamp).where(Stamp.id.in_(open_[:every])).values(card=card))
    reward = s.get(Reward, reward_id)
    if reward is None:
        return
    s.execute(insert_for(s, Redemption).values(
        shop_id=shop_id, customer_external_id=customer_id, reward_id=reward.id,
        request_key=f"stamp:{customer_id}:{card}", points=0, code=reward_code(CODE_PREFIX), status="issuing",
        attempts=0, next_attempt_at=now, lease_until=None, expires_at=now + timedelta(days=reward.valid_days),
        created_at=now, updated_at=now).on_conflict_do_nothing(index_elements=["shop_id", "request_key"]))


def card_of(s: Session, shop_id: int, customer_id: str) -> dict[str, Any] | None:
    """What the widget shows of the customer's stamp card; None when the shop has no card."""
    program = s.execute(select(LoyaltyProgramRow.stamp_every, LoyaltyProgramRow.stamp_reward_id)
                        .where(LoyaltyProgramRow.shop_id == shop_id, LoyaltyProgramRow.enabled.is_(True))).first()
    if program is None or not program.stamp_every or program.stamp_reward_id is None:
        return None
    title = s.scalar(select(Reward.title).where(Reward.id == program.stamp_reward_id))
    mine = (Stamp.shop_id == shop_id, Stamp.customer_external_id == customer_id, Stamp.void.is_(False))
    stamps = s.scalar(select(func.count()).select_from(Stamp).where(*mine, Stamp.card.is_(None))) or 0
    filled = s.scalar(select(func.coalesce(func.max(Stamp.card), 0)).where(*mine)) or 0
    return {"every": int(program.stamp_every), "stamps": int(stamps), "reward": title, "cards_filled": int(filled)}
