"""The points ledger in the database: postings written with their account's snapshot in one transaction,
idempotent by key, checked by the core's rules (`app.core.loyalty`), and a check that every snapshot is the
sum of its entries.

    with c.sessions() as s, s.begin():
        posted = loyalty.post(s, shop_id, "cust-1", [Posting(Entry(120, Balance.PENDING, Reason.EARNED, "o:1001:1"),
                                                               rule_version=3, order_id="1001", line_id="1")], now)
    posted.account   # Account(available=..., pending=...)
    posted.new       # entries written now (0: all of them were posted before)

Concurrency: the account row is locked (`FOR UPDATE` on PostgreSQL; SQLite has one writer at a time) before
its entries are read and written, so postings to one account are serial and postings to different accounts
are not. A posting the core refuses (`NotEnoughPoints`, `LoyaltyError`) raises before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, case, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from app import badges, tiers
from app.core import lift
from app.core.events import CustomerUpserted, DomainEvent
from app.core.loyalty import Account, Balance, Bonus, EarnRule, Entry, LoyaltyError, NotEnoughPoints, Posting, Reason
from app.db.engine import among, insert_for, rowcount
from app.db.models import Customer, Fulfillment, LedgerEntry, LoyaltyAccount, LoyaltyProgramRow, LoyaltyRule, Order, Shop

if TYPE_CHECKING:  # the bootstrap imports the unit of work, which imports this
    from app.bootstrap import Container


@dataclass(frozen=True)
class Posted:
    account: Account
    new: int


@dataclass(frozen=True)
class Mismatch:
    account_id: int
    shop_id: int
    customer_id: str
    snapshot: Account
    entries: Account  # what the entries add up to


def account_id(s: Session, shop_id: int, customer_id: str, now: datetime) -> int:
    """The customer's account, opened on first use (two openings at once make one account)."""
    s.execute(insert_for(s, LoyaltyAccount).values(
        shop_id=shop_id, customer_external_id=customer_id, available=0, pending=0, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["shop_id", "customer_external_id"]))
    found = s.scalar(select(LoyaltyAccount.id).where(LoyaltyAccount.shop_id == shop_id,
                                                      LoyaltyAccount.customer_external_id == customer_id))
    assert found is not None
    return int(found)


_ACCOUNTS, _ENTRIES = cast(Table, LoyaltyAccount.__table__), cast(Table, LedgerEntry.__table__)


def _locked(s: Session, shop_id: int, customer_id: str, now: datetime) -> tuple[int, Account]:
    """The customer's account id and snapshot, its row locked until the transaction ends (opened on first use;
    two openings at once make one account). One statement when the account exists."""
    a = _ACCOUNTS.c
    read = (select(a.id, a.available, a.pending).where(a.shop_id == shop_id, a.customer_external_id == customer_id)
            .with_for_update())
    conn = s.connection()
    row = conn.execute(read).first()
    if row is None:
        account_id(s, shop_id, customer_id, now)
        row = conn.execute(read).one()
    return int(row.id), Account(int(row.available), int(row.pending))


def post(s: Session, shop_id: int, customer_id: str, postings: Sequence[Posting], now: datetime) -> Posted:
    """Write `postings` to the customer's account in the caller's transaction, with the new snapshot. Entries
    whose key the account has already (the same request again) are left out; what is left must pass the core's
    rules, or nothing is written. Core statements, three when the account exists: read and lock, which keys are
    there, write the entries and the snapshot."""
    aid, before = _locked(s, shop_id, customer_id, now)
    conn = s.connection()
    keys = [p.entry.key for p in postings]
    e = _ENTRIES.c
    seen = set(conn.execute(select(e.key).where(e.account_id == aid, e.key.in_(keys))).scalars())
    fresh: list[Posting] = []
    for p in postings:
        if p.entry.key not in seen:
            seen.add(p.entry.key)
            fresh.append(p)
    if not fresh:
        return Posted(before, 0)
    after = before.post(p.entry for p in fresh)
    conn.execute(_ENTRIES.insert(), [entry_row(shop_id, aid, p, now) for p in fresh])
    conn.execute(_ACCOUNTS.update().where(_ACCOUNTS.c.id == aid).values(
        available=after.available, pending=after.pending, last_activity_at=now, updated_at=now))
    return Posted(after, len(fresh))


def post_many(s: Session, shop_id: int, batch: Sequence[tuple[str, Sequence[Posting]]], now: datetime
              ) -> dict[str, Posted]:
    """`post` for many customers at once, set-based, in the caller's transaction: open the missing accounts, lock
    them all in id order (two batches never wait on each other in a circle), read which keys they hold, write
    every new entry and every new snapshot, whatever the batch's size in five or six statements. All or nothing: a
    posting the core refuses raises before anything is written. Returns each customer's result."""
    wanted: dict[str, list[Posting]] = {}
    for customer_id, postings in batch:
        wanted.setdefault(customer_id, []).extend(postings)
    if not wanted:
        return {}
    customers = sorted(wanted)
    a, e = _ACCOUNTS.c, _ENTRIES.c
    conn = s.connection()

    mine = (a.shop_id == shop_id, among(s, a.customer_external_id, customers))
    opened = set(conn.execute(select(a.customer_external_id).where(*mine)).scalars())
    if len(opened) < len(customers):
        # Opened before any row is locked, in customer order: a batch waiting on another's new account holds no
        # lock that one could wait for, so two batches can never wait on each other in a circle.
        conn.execute(insert_for(s, LoyaltyAccount).values([
            {"shop_id": shop_id, "customer_external_id": cid, "available": 0, "pending": 0, "created_at": now,
             "updated_at": now} for cid in customers if cid not in opened])
            .on_conflict_do_nothing(index_elements=["shop_id", "customer_external_id"]))
    accounts = {r.customer_external_id: (int(r.id), Account(int(r.available), int(r.pending))) for r in conn.execute(
        select(a.id, a.customer_external_id, a.available, a.pending).where(*mine).order_by(a.id).with_for_update())}
    ids = [aid for aid, _ in accounts.values()]
    keys = sorted({p.entry.key for postings in wanted.values() for p in postings})
    seen = {(int(r.account_id), r.key) for r in conn.execute(
        select(e.account_id, e.key).where(among(s, e.account_id, ids), among(s, e.key, keys)))}
    results: dict[str, Posted] = {}
    rows: list[dict[str, Any]] = []
    snapshots: list[dict[str, Any]] = []
    for cid in customers:
        aid, before = accounts[cid]
        fresh = []
        for p in wanted[cid]:
            if (aid, p.entry.key) not in seen:
                seen.add((aid, p.entry.key))
                fresh.append(p)
        after = before.post(p.entry for p in fresh) if fresh else before
        results[cid] = Posted(after, len(fresh))
        if fresh:
            rows += [entry_row(shop_id, aid, p, now) for p in fresh]
            snapshots.append({"aid": aid, "available": after.available, "pending": after.pending})
    if rows:
        conn.execute(_ENTRIES.insert(), rows)
        conn.execute(_ACCOUNTS.update().where(a.id == bindparam("aid")).values(
            available=bindparam("available"), pending=bindparam("pending"), last_activity_at=now, updated_at=now),
            snapshots)
    return results


def entry_row(shop_id: int, account_id: int, p: Posting, now: datetime) -> dict[str, Any]:
    """The `ledger_entries` row of a posting, column for column."""
    return {"shop_id": shop_id, "account_id": account_id, "key": p.entry.key, "amount": p.entry.amount,
            "balance": p.entry.balance.value, "reason": p.entry.reason.value, "rule_version": p.rule_version,
            "order_external_id": p.order_id, "line_external_id": p.line_id, "detail": p.detail, "staff": p.staff,
            "note": p.note, "created_at": now}


def balance(s: Session, shop_id: int, customer_id: str) -> Account:
    """The snapshot (an instant read: one row)."""
    row = s.execute(select(LoyaltyAccount.available, LoyaltyAccount.pending).where(
        LoyaltyAccount.shop_id == shop_id, LoyaltyAccount.customer_external_id == customer_id)).first()
    return Account() if row is None else Account(int(row.available), int(row.pending))


def mismatches(s: Session, shop_id: int | None = None) -> list[Mismatch]:
    """Every account whose snapshot is not the sum of its entries, per balance (none, or the books are wrong)."""
    available = func.coalesce(func.sum(case((LedgerEntry.balance == Balance.AVAILABLE.value, LedgerEntry.amount),
                                            else_=0)), 0)
    pending = func.coalesce(func.sum(case((LedgerEntry.balance == Balance.PENDING.value, LedgerEntry.amount),
                                          else_=0)), 0)
    sums = (select(LedgerEntry.account_id, available.label("available"), pending.label("pending"))
            .group_by(LedgerEntry.account_id).subquery())
    a = LoyaltyAccount
    q = (select(a.id, a.shop_id, a.customer_external_id, a.available, a.pending,
                func.coalesce(sums.c.available, 0), func.coalesce(sums.c.pending, 0))
         .outerjoin(sums, sums.c.account_id == a.id)
         .where((a.available != func.coalesce(sums.c.available, 0)) | (a.pending != func.coalesce(sums.c.pending, 0))))
    if shop_id is not None:
        q = q.where(a.shop_id == shop_id)
    return [Mismatch(r[0], r[1], r[2], Account(int(r[3]), int(r[4])), Account(int(r[5]), int(r[6])))
            for r in s.execute(q)]


def rule_from(version: int, data: dict[str, Any]) -> EarnRule:
    return EarnRule(version, Decimal(str(data["points_per_unit"])), tuple(
        Bonus(Decimal(str(b["multiplier"])), datetime.fromisoformat(b["starts_at"]), datetime.fromisoformat(b["ends_at"]),
              frozenset(b["products"]) if b.get("products") is not None else None)
        for b in data.get("bonuses", ())))


def rule_data(rule: EarnRule) -> dict[str, Any]:
    return {"points_per_unit": str(rule.points_per_unit), "bonuses": [
        {"multiplier": str(b.multiplier), "starts_at": b.starts_at.isoformat(), "ends_at": b.ends_at.isoformat(),
         "products": sorted(b.products) if b.products is not None else None} for b in rule.bonuses]}


def new_rule(s: Session, shop_id: int, rule: EarnRule, now: datetime) -> int:
    """Save the shop's next earning rule version (`rule.version` is ignored); returns its number. Earnings keep
    the version that made them: a refund takes back what the old rule gave."""
    latest = s.scalar(select(func.max(LoyaltyRule.version)).where(LoyaltyRule.shop_id == shop_id)) or 0
    version = int(latest) + 1
    s.add(LoyaltyRule(shop_id=shop_id, version=version, definition=rule_data(rule), created_at=now))
    s.flush()
    return version


ACTIONS = ("signup", "birthday", "survey", "review", "referral")


def award_action(s: Session, shop_id: int, customer_id: str, action: str, key: str, now: datetime) -> int:
    """The points the shop's program gives for `action` (one of ACTIONS), once per `key`; 0 when the program is
    off, gives nothing for it, or holds the customer out. In the caller's transaction."""
    if action not in ACTIONS:
        raise LoyaltyError(f"unknown action {action!r}")
    row = s.execute(select(LoyaltyProgramRow.enabled, LoyaltyProgramRow.actions, LoyaltyProgramRow.holdout_percent)
                    .where(LoyaltyProgramRow.shop_id == shop_id)).first()
    if row is not None and lift.held_out(shop_id, lift.LOYALTY, customer_id, row.holdout_percent):
        return 0  # the program's holdout earns nothing, badges neither
    if action in badges.FOR_ACTION:  # a badge for the deed, whatever it earns in points
        badges.award(s, shop_id, customer_id, badges.FOR_ACTION[action], now, {"key": key})
    amount = int((row.actions or {}).get(action) or 0) if row is not None and row.enabled else 0
    if amount <= 0:
        return 0
    posted = post(s, shop_id, customer_id, [Posting(Entry(amount, Balance.AVAILABLE, Reason.ACTION,
                                                          f"action:{action}:{key}"), detail={"action": action})], now)
    return amount if posted.new else 0


def follow_signup(s: Session, event: DomainEvent, now: datetime) -> None:
    """A customer whose account was made in the store after the program began earns the program's sign-up
    points, once (the key is the customer's). Customers from before, or with no creation date, earn none; an
    imported history never comes here (imports record their events without reacting)."""
    if not isinstance(event, CustomerUpserted):
        return
    row = s.execute(select(Customer.external_created_at, Customer.redacted_at, LoyaltyProgramRow.started_at)
                    .join(LoyaltyProgramRow, LoyaltyProgramRow.shop_id == Customer.shop_id)
                    .where(Customer.shop_id == event.shop_id, Customer.external_id == event.customer_id,
                           LoyaltyProgramRow.enabled.is_(True))).first()
    if row is None or row.external_created_at is None or row.redacted_at is not None:
        return
    if row.external_created_at >= row.started_at:
        award_action(s, event.shop_id, event.customer_id, "signup", "signup", now)


def switch_on(s: Session, shop_id: int, now: datetime, *, points_per_unit: Decimal = Decimal("1"),
              confirm_after_days: int | None = None, expire_after_days: int | None = None,
              actions: dict[str, int] | None = None) -> None:
    """Switch the shop's program on (orders placed from `now` earn), with a first rule if it has none."""
    program = s.scalar(select(LoyaltyProgramRow).where(LoyaltyProgramRow.shop_id == shop_id))
    if program is None:
        s.add(LoyaltyProgramRow(shop_id=shop_id, enabled=True, started_at=now, confirm_after_days=confirm_after_days,
                                expire_after_days=expire_after_days, actions=actions, created_at=now, updated_at=now))
    else:
        program.enabled, program.confirm_after_days, program.updated_at = True, confirm_after_days, now
        program.expire_after_days, program.actions = expire_after_days, actions
    if s.scalar(select(func.count()).select_from(LoyaltyRule).where(LoyaltyRule.shop_id == shop_id)) == 0:
        new_rule(s, shop_id, EarnRule(1, points_per_unit), now)
    s.flush()


def update_program(s: Session, shop_id: int, changes: dict[str, Any], now: datetime) -> None:
    """The admin's checked settings (any of: enabled, points_per_unit, actions, confirm_after_days,
    expire_after_days, stamp_every, stamp_reward_id, badges_enabled, tier_basis, tier_window_days,
    tier_grace_days, holdout_percent), in the caller's transaction. A new rate is a new rule version (bonuses kept); actions
    merge, 0 removing one; switching on starts earning from `now` (nothing placed while it was off earns)."""
    program = s.scalar(select(LoyaltyProgramRow).where(LoyaltyProgramRow.shop_id == shop_id))
    if program is None:
        program = LoyaltyProgramRow(shop_id=shop_id, enabled=False, started_at=now, created_at=now, updated_at=now)
        s.add(program)
        s.flush()
    latest = s.execute(select(LoyaltyRule.version, LoyaltyRule.definition).where(LoyaltyRule.shop_id == shop_id)
                       .order_by(LoyaltyRule.version.desc()).limit(1)).first()
    rule = rule_from(latest.version, latest.definition) if latest else None
    rate = changes.get("points_per_unit")
    if rate is not None and (rule is None or rate != rule.points_per_unit):  # else switch_on makes version 1
        new_rule(s, shop_id, EarnRule(1, rate, rule.bonuses if rule else ()), now)
    actions = {**(program.actions or {}), **changes.get("actions", {})}
    program.actions = {k: v for k, v in actions.items() if v} or None
    for name in ("confirm_after_days", "expire_after_days", "stamp_every", "stamp_reward_id", "badges_enabled",
                 "tier_basis", "tier_window_days", "tier_grace_days", "holdout_percent"):
        if name in changes:
            setattr(program, name, changes[name])
    if changes.get("enabled") is True and not program.enabled:
        switch_on(s, shop_id, now, confirm_after_days=program.confirm_after_days,
                  expire_after_days=program.expire_after_days, actions=program.actions)
        program.started_at = now  # orders placed from now on earn; none placed while the program was off
    elif changes.get("enabled") is False:
        program.enabled = False
    program.updated_at = now


def adjust(s: Session, shop_id: int, customer_id: str, amount: object, staff: str, note: str, request_key: str,
           now: datetime) -> Posted:
    """A staff member's manual adjustment: a whole number of points other than zero, who made it and why (a
    note is required), never leaving the available balance below zero. The same request key twice is one
    adjustment."""
    if isinstance(amount, bool) or not isinstance(amount, int | str):
        raise LoyaltyError("an adjustment is a whole number of points")
    try:
        points = int(str(amount).strip())
    except ValueError:
        raise LoyaltyError("an adjustment is a whole number of points") from None
    if points == 0:
        raise LoyaltyError("an adjustment moves at least one point")
    if not note or not note.strip():
        raise LoyaltyError("an adjustment needs a note saying why")
    if not staff or not staff.strip():
        raise LoyaltyError("an adjustment names the staff member who made it")
    if points < 0 and balance(s, shop_id, customer_id).available + points < 0:
        raise NotEnoughPoints(f"taking {-points:,} points would leave the balance below zero")
    return post(s, shop_id, customer_id, [Posting(
        Entry(points, Balance.AVAILABLE, Reason.ADJUSTED, f"adjust:{request_key}"), staff=staff.strip()[:255],
        note=note.strip())], now)


def expire(s: Session, shop_id: int, now: datetime) -> int:
    """Available points of accounts inactive for the program's `expire_after_days` expire, as a ledger entry
    each (keyed by the last activity it ends, so running again changes nothing). Returns how many accounts."""
    days = s.scalar(select(LoyaltyProgramRow.expire_after_days).where(LoyaltyProgramRow.shop_id == shop_id,
                                                                       LoyaltyProgramRow.enabled.is_(True)))
    if not days:
        return 0
    stale = s.execute(select(LoyaltyAccount.customer_external_id, LoyaltyAccount.available,
                             LoyaltyAccount.last_activity_at)
                      .where(LoyaltyAccount.shop_id == shop_id, LoyaltyAccount.available > 0,
                             LoyaltyAccount.last_activity_at < now - timedelta(days=days))).all()
    for start in range(0, len(stale), EXPIRE_BATCH):
        post_many(s, shop_id, [(customer_id, [Posting(
            Entry(-int(available), Balance.AVAILABLE, Reason.EXPIRED, f"expire:{last.isoformat()}"),
            detail={"inactive_since": last.isoformat()})]) for customer_id, available, last in stale[start:start + EXPIRE_BATCH]
            if last is not None], now)
    return len(stale)


SWEEP_EVERY = timedelta(hours=1)
EXPIRE_BATCH = 500  # accounts expired by one set of statements (post_many)


def sweep_due(c: Container, now: datetime) -> int:
    """Every shop with a program on, last swept an hour ago or more (each shop claimed by one runner at a time):
    orders past their returns window get their points made available, inactive accounts expire, and VIP tiers
    are evaluated again. Returns how many orders and accounts changed."""
    p = LoyaltyProgramRow
    due = or_(p.swept_at.is_(None), p.swept_at <= now - SWEEP_EVERY)
    with c.sessions() as s:
        shops = list(s.scalars(select(p.shop_id).where(p.enabled.is_(True), due)))
    changed = 0
    for shop_id in shops:
        with c.sessions() as s, s.begin():
            before = s.scalar(select(p.swept_at).where(p.shop_id == shop_id))
            if not rowcount(s.execute(update(p).where(p.shop_id == shop_id, due).values(swept_at=now))):
                continue  # another runner has it
            days = s.scalar(select(p.confirm_after_days).where(p.shop_id == shop_id))
        if days is not None:
            changed += confirm_returns_windows(c, shop_id, timedelta(days=days), now)
        with c.sessions() as s, s.begin():
            changed += expire(s, shop_id, now)
            changed += birthday_points(s, shop_id, max(before or now - BIRTHDAYS_BACK, now - BIRTHDAYS_BACK), now)
        changed += reevaluate_tiers(c, shop_id, now)
    return changed


BIRTHDAYS_BACK = timedelta(days=2)  # a sweep looks this far back at most (a first sweep, a long outage)


def birthday_points(s: Session, shop_id: int, start: datetime, end: datetime) -> int:
    """The program's birthday points for every customer whose birthday began (local midnight) in [start, end],
    once a year each (the key is the year). Returns how many were given."""
    from app import daterules  # imports the unit of work, which imports this module

    tz = s.scalar(select(Shop.timezone).where(Shop.id == shop_id)) or "UTC"
    return sum(1 for d in daterules.birthdays(s, shop_id, tz, start, end)
               if award_action(s, shop_id, d.customer_id, "birthday", d.occasion, end))


def reevaluate_tiers(c: Container, shop_id: int, now: datetime) -> int:
    """Everyone in a tier, evaluated again (their window moves on; a grace period may have run out). A change is
    recorded as a TierChanged event that journeys react to, in the same transaction. Returns how many changed."""
    from app.core.enrollment import react  # the unit of work imports this module (through its loyalty repository)
    from app.db.uow import SqlUnitOfWork

    with c.sessions() as s:
        customers = tiers.due_for_evaluation(s, shop_id)
    changed = 0
    for customer_id in customers:
        uow = SqlUnitOfWork(c.sessions)
        with uow:
            change = uow.loyalty.evaluate_tier(shop_id, customer_id, now)
            if change is not None and uow.events.record(change):
                react(uow, [change], now)
                changed += 1
            uow.commit()
    return changed


def confirm_returns_windows(c: Container, shop_id: int, window: timedelta, now: datetime) -> int:
    """Orders fulfilled longer than `window` ago whose earned points are still pending: made available."""
    from app.core import points  # the unit of work imports this module (through its loyalty repository)
    from app.db.uow import SqlUnitOfWork

    e, confirmed = LedgerEntry, aliased(LedgerEntry)
    shipped = (select(Fulfillment.id).join(Order, Order.id == Fulfillment.order_id)
               .where(Order.shop_id == shop_id, Order.external_id == e.order_external_id,
                      Fulfillment.status == "success", Fulfillment.created_at <= now - window))
    with c.sessions() as s:
        due = s.execute(select(e.order_external_id, LoyaltyAccount.customer_external_id).distinct()
                        .join(LoyaltyAccount, LoyaltyAccount.id == e.account_id)
                        .where(e.shop_id == shop_id, e.reason == Reason.EARNED.value, e.order_external_id.is_not(None),
                               ~select(confirmed.id).where(confirmed.shop_id == shop_id,
                                                           confirmed.order_external_id == e.order_external_id,
                                                           confirmed.reason == Reason.CONFIRMED.value).exists(),
                               shipped.exists())).all()
    for order_id, customer_id in due:
        assert order_id is not None  # asked for above
        uow = SqlUnitOfWork(c.sessions)
        with uow:
            points.confirm_order(uow, shop_id, customer_id, order_id, now)
            uow.commit()
    return len(due)
