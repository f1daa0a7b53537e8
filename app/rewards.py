"""Rewards bought with points: the catalog, redemption, and the single-use code written into the store.

Redeeming is two steps, so that points and codes can never part ways:

1. One transaction: the reward must exist and be switched on, the customer must be in its segment when it is
   limited to one (`NotForCustomer`), the request must be new (its key is unique per shop), and the points are
   debited through the ledger (`NotEnoughPoints` otherwise). The redemption is stored
   `issuing` with its code, drawn once (`core.loyalty.reward_code`: readable, unguessable, unique per shop).
2. The code is written into the store (`StorePlatform.create_discount`: single use, limited to the customer,
   valid for the reward's days). Writing the same code twice is no error for the stores, so a retry after a
   crash between the write and its record is harmless. A busy store (`StoreBusy`, a network error) is tried
   again with backoff by `issue_due`, which also picks up redemptions a killed worker left behind (their lease
   ran out); any other refusal, or `MAX_ATTEMPTS` busy answers, gives the points back with a ledger entry
   (`restored`) and keeps the error on the redemption.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import structlog
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import loyalty, segments
from app.bootstrap import Container
from app.core import backoff
from app.core.loyalty import CODE_PREFIX, Balance, Entry, LoyaltyError, Posting, Reason, reward_code
from app.core.ports import DiscountRequest, StoreBusy, StorePlatform
from app.db.models import Customer, Redemption, Reward, Segment, Shop

log = structlog.get_logger(__name__)

KINDS = ("amount", "percent", "free_shipping", "free_product")
MAX_ATTEMPTS = backoff.ATTEMPTS  # about six hours of a busy or unreachable store
LEASE = timedelta(seconds=60)


class RewardUnavailable(LoyaltyError):
    pass


class NotForCustomer(LoyaltyError):
    """The reward is limited to a segment (`rewards.segment_id`) the customer is not in."""


class AlreadyRedeemed(LoyaltyError):
    def __init__(self, redemption: Issued) -> None:
        super().__init__("this redemption was made already; its code is unchanged")
        self.redemption = redemption


@dataclass(frozen=True)
class Issued:
    id: int
    code: str
    points: int
    status: str  # issuing / issued / restored
    expires_at: datetime
    error: str | None = None


def _issued(r: Redemption) -> Issued:
    return Issued(r.id, r.code, r.points, r.status, r.expires_at, r.error)


def add_reward(s: Session, shop_id: int, title: str, kind: str, value: Decimal | None, cost: int, now: datetime,
               *, valid_days: int = 90, enabled: bool = True, product_id: str | None = None,
               segment_id: int | None = None) -> int:
    """A catalog item. A free product names the product and its unit price (`value`): its code takes that price
    off one unit of that product, which is what "free" means at a checkout that sells it at that price. With a
    `segment_id`, only that segment's members may redeem it."""
    if kind not in KINDS:
        raise LoyaltyError(f"a reward is one of {', '.join(KINDS)}")
    if cost <= 0:
        raise LoyaltyError("a reward costs at least one point")
    if kind != "free_shipping" and (value is None or value <= 0 or (kind == "percent" and value > 100)):
        raise LoyaltyError("an amount or percent reward needs a value above zero (a percent at most 100)")
    if (kind == "free_product") != bool(product_id and product_id.strip()):
        raise LoyaltyError("a free product reward names its product (and only it does)")
    if segment_id is not None and s.scalar(select(Segment.id).where(Segment.id == segment_id,
                                                                    Segment.shop_id == shop_id)) is None:
        raise LoyaltyError("a reward can only be limited to one of the shop's segments")
    reward = Reward(shop_id=shop_id, title=title, kind=kind, value=None if kind == "free_shipping" else value,
                    product_external_id=product_id.strip() if product_id else None,
                    cost=cost, enabled=enabled, valid_days=valid_days, segment_id=segment_id, created_at=now,
                    updated_at=now)
    s.add(reward)
    s.flush()
    return reward.id


def redeem(c: Container, shop_id: int, customer_id: str, reward_id: int, request_key: str, now: datetime,
           platform_for: Callable[[int], StorePlatform]) -> Issued:
    """Spend the reward's points and write its code into the store. Raises RewardUnavailable, NotForCustomer,
    NotEnoughPoints or AlreadyRedeemed (with the first redemption) and then nothing has changed."""
    for _ in range(3):  # a code drawn twice in one shop (50 bits: never, but the constraint decides) draws again
        try:
            redemption_id = _debit(c, shop_id, customer_id, reward_id, request_key, now)
            break
        except IntegrityError:
            with c.sessions() as s:
                held = s.scalar(select(Redemption).where(Redemption.shop_id == shop_id,
                                                         Redemption.request_key == request_key))
                if held is not None:  # the same request, at the same moment, elsewhere
                    raise AlreadyRedeemed(_issued(held)) from None
    else:
        raise LoyaltyError("no unused code could be drawn")
    return _write(c, redemption_id, now, platform_for)


def _debit(c: Container, shop_id: int, customer_id: str, reward_id: int, request_key: str, now: datetime) -> int:
    """Step 1: checks, the debit and the redemption, in one transaction; its id."""
    with c.sessions() as s, s.begin():
        reward = s.get(Reward, reward_id)
        if reward is None or reward.shop_id != shop_id or not reward.enabled:
            raise RewardUnavailable("this reward does not exist or is switched off")
        if reward.segment_id is not None and not segments.is_member(s, reward.segment_id, customer_id):
            raise NotForCustomer("this reward is only for the customers of one of the shop's segments, and this "
                                 "customer is not in it")
        held = s.scalar(select(Redemption).where(Redemption.shop_id == shop_id, Redemption.request_key == request_key))
        if held is not None:
            raise AlreadyRedeemed(_issued(held))
        loyalty.post(s, shop_id, customer_id, [Posting(
            Entry(-reward.cost, Balance.AVAILABLE, Reason.REDEEMED, f"redeem:{request_key}"),
            detail={"reward": str(reward.id), "title": reward.title})], now)
        redemption = Redemption(
            shop_id=shop_id, customer_external_id=customer_id, reward_id=reward.id, request_key=request_key,
            points=reward.cost, code=reward_code(CODE_PREFIX), status="issuing", attempts=0, next_attempt_at=now,
            lease_until=now + LEASE, expires_at=now + timedelta(days=reward.valid_days), created_at=now,
            updated_at=now)
        s.add(redemption)
        s.flush()
        return redemption.id


def issue_due(c: Container, now: datetime, platform_for: Callable[[int], StorePlatform], limit: int = 100) -> int:
    """Write the codes whose time has come again, and those a killed worker left (its lease ran out)."""
    with c.sessions() as s, s.begin():
        q = (select(Redemption.id).where(Redemption.status == "issuing", Redemption.next_attempt_at <= now,
                                         or_(Redemption.lease_until.is_(None), Redemption.lease_until < now))
             .order_by(Redemption.next_attempt_at).limit(limit))
        if s.get_bind().dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        ids = list(s.scalars(q))
        if ids:
            s.execute(update(Redemption).where(Redemption.id.in_(ids)).values(lease_until=now + LEASE))
    for redemption_id in ids:
        _write(c, redemption_id, now, platform_for)
    return len(ids)


def _write(c: Container, redemption_id: int, now: datetime, platform_for: Callable[[int], StorePlatform]) -> Issued:
    with c.sessions() as s:
        r = s.get(Redemption, redemption_id)
        assert r is not None
        reward = s.get(Reward, r.reward_id)
        shop = s.get(Shop, r.shop_id)
        email = s.scalar(select(Customer.email).where(Customer.shop_id == r.shop_id,
                                                      Customer.external_id == r.customer_external_id))
        assert reward is not None and shop is not None
        request = DiscountRequest(
            code=r.code, title=f"Encore reward: {reward.title}", usage_limit=1, ends_at=r.expires_at,
            customer_id=r.customer_external_id, email=email,
            percent_off=reward.value if reward.kind == "percent" else None,
            amount_off=reward.value if reward.kind in ("amount", "free_product") else None,
            currency=shop.currency if reward.kind in ("amount", "free_product") else None,
            free_shipping=reward.kind == "free_shipping", product_id=reward.product_external_id)
        attempts = r.attempts + 1
    try:
        store_id = platform_for(r.shop_id).create_discount(request)
    except (StoreBusy, OSError) as exc:  # requests' network errors are OSErrors
        if attempts >= MAX_ATTEMPTS:
            return _restore(c, redemption_id, now, f"the store stayed unavailable: {exc}"[:500], attempts)
        wait = backoff.delay(attempts)
        with c.sessions() as s, s.begin():
            s.execute(update(Redemption).where(Redemption.id == redemption_id, Redemption.status == "issuing")
                      .values(attempts=attempts, next_attempt_at=now + wait, lease_until=None,
                              error=f"{type(exc).__name__}: {exc}"[:500], updated_at=now))
        log.warning("reward_code_retry", redemption_id=redemption_id, attempts=attempts)
        return _read(c, redemption_id)
    except Exception as exc:  # refused: retrying the same code will not help
        return _restore(c, redemption_id, now, f"the store refused the code: {type(exc).__name__}: {exc}"[:500],
                        attempts)
    with c.sessions() as s, s.begin():
        s.execute(update(Redemption).where(Redemption.id == redemption_id, Redemption.status == "issuing")
                  .values(status="issued", attempts=attempts, store_id=store_id, lease_until=None,
                          next_attempt_at=None, error=None, updated_at=now))
    return _read(c, redemption_id)


def _restore(c: Container, redemption_id: int, now: datetime, error: str, attempts: int) -> Issued:
    """The code could not be written for good: the points come back, with a ledger entry saying why."""
    with c.sessions() as s, s.begin():
        r = s.scalar(select(Redemption).where(Redemption.id == redemption_id).with_for_update())
        assert r is not None
        if r.status == "issuing":
            if r.points:  # a stamp card's or a referral's code cost nothing: nothing to give back
                loyalty.post(s, r.shop_id, r.customer_external_id, [Posting(
                    Entry(r.points, Balance.AVAILABLE, Reason.RESTORED, f"redeem:{r.request_key}:restore"),
                    detail={"redemption": str(r.id)}, note=error)], now)
            r.status, r.error, r.attempts, r.lease_until, r.next_attempt_at, r.updated_at = (
                "restored", error, attempts, None, None, now)
    log.warning("reward_points_restored", redemption_id=redemption_id, error=error)
    return _read(c, redemption_id)


def _read(c: Container, redemption_id: int) -> Issued:
    with c.sessions() as s:
        r = s.get(Redemption, redemption_id)
        assert r is not None
        return _issued(r)
