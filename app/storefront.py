"""What the storefront widget shows a shopper, and what it lets them do: balance and pending points, their VIP
tier and the way to the next, the rewards they can buy, their codes, and their history. The platforms' routes
(`app/web/proxy.py` for Shopify's app proxy) authenticate the shopper and call in here. A customer in the
program's holdout (`app.core.lift`) is told the program is not available to them (`held_out`), and nothing more.

The widget's script carries no words of its own: every string it shows comes with the JSON as `labels`, from
the Babel domain "widget" in the shopper's language, so a translator edits .po files and never the script.
Labels keep Python-format placeholders (`%(points)s`), which the script fills with numbers, money and dates
it formats itself in the shopper's locale."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, select
from sqlalchemy.exc import DBAPIError

from app import badges, loyalty, referrals, segments, stamps, tiers
from app.bootstrap import Container
from app.core import lift
from app.core.tiers import Basis
from app.db.models import LedgerEntry, LoyaltyAccount, LoyaltyProgramRow, LoyaltyTier, Redemption, Reward, Shop
from app.i18n import best_locale, translations

HISTORY = 20
DOMAIN = "widget"

# Every string the widget shows, by the key the script reads, with its English msgid. The reason_*, status_*,
# value_* and refused_* keys are looked up by the ledger reason, code status, reward kind and refusal the data
# names.
LABELS: dict[str, str] = {
    "launcher": "Rewards",
    "title": "Your rewards",
    "close": "Close",
    "loading": "Loading…",
    "load_failed": "Your points could not be loaded. Please try again.",
    "retry": "Try again",
    "log_in": "Log in to see your points",
    "log_in_hint": "Members earn points on every order and spend them on rewards.",
    "available": "Available points",
    "pending": "Pending points",
    "pending_hint": "Pending points become available once your order is complete.",
    "points": "%(points)s points",
    "tier": "VIP tier",
    "no_tier": "Not in a tier yet",
    "perks": "Your perks",
    "next_points": "%(remaining)s more points to reach %(tier)s",
    "next_spend": "Spend %(remaining)s more to reach %(tier)s",
    "top_tier": "You are in the top tier",
    "rewards": "Spend your points",
    "no_rewards": "No rewards are available yet.",
    "redeem": "Redeem",
    "redeeming": "Redeeming…",
    "need_more": "%(points)s more points needed",
    "value_amount": "%(amount)s off",
    "value_percent": "%(percent)s%% off",
    "value_free_shipping": "Free shipping",
    "value_free_product": "A free product",
    "your_code": "Your code",
    "code_ready": "Use this code at checkout.",
    "code_issuing": "Your code is being prepared and will work in a few minutes.",
    "copy": "Copy",
    "copied": "Copied",
    "copy_failed": "Could not copy: select the code and copy it.",
    "codes": "Your codes",
    "no_codes": "You have no codes yet.",
    "status_issued": "Ready to use",
    "status_issuing": "Being prepared",
    "status_restored": "Not issued, points returned",
    "expires": "Expires %(date)s",
    "history": "History",
    "no_history": "No points activity yet.",
    "reason_earned": "Earned on an order",
    "reason_action": "Earned for an action",
    "reason_bonus": "Bonus points",
    "reason_redeemed": "Spent on a reward",
    "reason_restored": "Points returned",
    "reason_reversed": "Order refunded or cancelled",
    "reason_expired": "Points expired",
    "reason_adjusted": "Adjusted by the store",
    "not_available": "The rewards program is not available for your account.",
    "referral": "Refer a friend",
    "referral_friend": "Your friend gets %(offer)s",
    "referral_you": "You get %(offer)s",
    "referral_link": "Your referral link",
    "referral_stats": "%(invited)s invited, %(rewarded)s rewarded",
    "share": "Share",
    "badges": "Badges",
    "badge_earned": "Earned %(date)s",
    "badge_locked": "Not earned yet",
    "streak": "Streak",
    "streak_months": "%(months)s months in a row",
    "streak_best": "Best: %(best)s months",
    "stamp": "Stamp card",
    "stamp_progress": "%(stamps)s of %(every)s stamps",
    "stamp_reward": "A full card gets you: %(reward)s",
    "stamp_filled": "Cards filled: %(count)s",
    "refused_not_enough_points": "You do not have enough points for this reward.",
    "refused_no_such_reward": "This reward is no longer available.",
    "refused_already_redeemed": "This redemption did not go through and its points were returned.",
    "refused_refused": "This reward could not be redeemed.",
    "refused_not_for_you": "This reward is only for selected customers.",
    "error": "Something went wrong. Please try again.",
}


def labels(locale: str | None) -> dict[str, str]:
    """Every widget string in the shopper's language (English for a language Encore has no catalog for)."""
    return dict(_labels(best_locale(locale)))


@cache
def _labels(locale: str) -> dict[str, str]:
    gettext = translations(locale, DOMAIN).gettext
    return {key: gettext(msgid) for key, msgid in LABELS.items()}


@cache
def labels_json(locale: str) -> str:
    """The labels of a catalog language as JSON, made once: the launcher's read sends them on every page."""
    return json.dumps(_labels(best_locale(locale)), ensure_ascii=False, separators=(",", ":"))


_P, _A, _T = (cast(Table, m.__table__) for m in (LoyaltyProgramRow, LoyaltyAccount, LoyaltyTier))
_BALANCE = (select(_P.c.enabled, _P.c.holdout_percent, _A.c.available, _A.c.pending, _T.c.name)
            .select_from(_P.outerjoin(_A, and_(_A.c.shop_id == _P.c.shop_id,
                                                _A.c.customer_external_id == bindparam("customer"))))
            .outerjoin(_T, and_(_T.c.shop_id == _P.c.shop_id, _T.c.key == _A.c.tier))
            .where(_P.c.shop_id == bindparam("shop")))


def balance(c: Container, shop_id: int, customer_id: str) -> dict[str, Any]:
    """What the launcher shows on every page: the points and the tier's name. One autocommitted statement on
    the intake's pool (no pre-ping, no BEGIN/ROLLBACK round trips): the widget's hot path, read on each page
    view of every logged-in shopper. A connection found dropped is replaced and the read made once more."""
    for attempt in (1, 2):
        try:
            with c.intake.connect() as conn:
                row = conn.execute(_BALANCE, {"shop": shop_id, "customer": customer_id}).first()
            break
        except DBAPIError as exc:
            if not exc.connection_invalidated or attempt == 2:
                raise
    if row is None or not row.enabled:
        return {"enabled": False}
    if lift.held_out(shop_id, lift.LOYALTY, customer_id, row.holdout_percent):
        return {"enabled": True, "held_out": True}
    return {"enabled": True, "points": {"available": int(row.available or 0), "pending": int(row.pending or 0)},
            "tier": row.name}


def _number(value: Decimal) -> str:
    """A decimal as plain digits, without the database's trailing zeros ("500", "12.5")."""
    return format(value.normalize(), "f")


def widget(c: Container, shop_id: int, customer_id: str, now: datetime, locale: str = "en") -> dict[str, Any]:
    """Everything the widget shows the customer, names in their language. In a transaction: the first look
    draws the customer's referral code."""
    with c.sessions() as s, s.begin():
        shop = s.get(Shop, shop_id)
        program = s.scalar(select(LoyaltyProgramRow).where(LoyaltyProgramRow.shop_id == shop_id))
        assert shop is not None
        if program is None or not program.enabled:
            return {"enabled": False}
        if lift.held_out(shop_id, lift.LOYALTY, customer_id, program.holdout_percent):  # the program's holdout
            return {"enabled": True, "held_out": True, "currency": shop.currency,
                    "referral": referrals.widget_data(s, shop_id, customer_id, locale, now)}
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
                   for r in s.scalars(select(Reward).where(Reward.shop_id == shop_id, Reward.enabled.is_(True),
                                                           segments.open_to(shop_id, customer_id))  # their segments'
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
        earned = badges.widget_data(s, shop_id, customer_id, locale, now)
        return {"enabled": True, "currency": shop.currency, "points": {"available": account.available,
                                                                       "pending": account.pending},
                "tier": tier, "rewards": rewards, "codes": codes, "history": history,
                "badges": earned[0] if earned else None, "streak": earned[1] if earned else None,
                "stamp": stamps.card_of(s, shop_id, customer_id),
                "referral": referrals.widget_data(s, shop_id, customer_id, locale, now)}
