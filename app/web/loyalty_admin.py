"""The loyalty admin: a page of its own beside the embedded admin, opened the same ways (framed by Shopify admin
with App Bridge session tokens, or from WordPress with Encore's own session token), and the JSON API behind it
under /api/admin/loyalty: the program's settings and bonus campaigns, the rewards catalog, the VIP tier ladder,
one customer's ledger with manual adjustments, and the program's figures (`app.loyalty_figures`).

Earning is versioned: a new rate or a campaign added or ended is a new rule version (`loyalty.new_rule`), never an
edit, because every earning keeps the version that made it and a refund takes back what that version gave. Every
write reads the whole request first and refuses it with a message per field, changing nothing, when any part
is wrong. Every route is scoped to the shop of the session token.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jwt
from babel.numbers import format_currency
from flask import Blueprint, Response, abort, current_app, g, jsonify, request
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import loyalty, rewards, segments, tiers
from app import loyalty_figures as lf
from app.bootstrap import Container
from app.core import lift
from app.core.loyalty import Account, Bonus, EarnRule, LoyaltyError
from app.core.tiers import Basis, Tier
from app.db.models import Customer, LedgerEntry, LoyaltyAccount, LoyaltyProgramRow, LoyaltyRule, Reward, Segment, Shop
from app.i18n import best_locale, translations
from app.web import pages
from app.web.admin import render_store_shell
from app.web.auth import ADMIN_ISSUER, session_token_required
from app.wordpress import store_origin

bp = Blueprint("loyalty_admin", __name__)

DOMAIN = "loyalty_admin"  # the page's Babel catalog (app/translations/<language>/LC_MESSAGES/loyalty_admin.po)
REQUEST_KEY = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
TIER_KEY = re.compile(r"^[a-z0-9_-]{1,32}$")
LEDGER_ROWS = 200  # the newest entries shown; the balances are the account's, whatever its length
Problems = list[dict[str, str]]


def _c() -> Container:
    c: Container = current_app.extensions["encore"]
    return c


def _now() -> datetime:
    return datetime.now(UTC)


def gettext(locale: str) -> Callable[[str], str]:
    return translations(locale, DOMAIN).gettext



# --- the page ----------------------------------------------------------------------------------------------------


def _page(shop: str, locale: str, *, host: str = "", session_token: str = "") -> str:
    """The page holds nothing but labels; its data comes through the API with the page's session tokens."""
    return pages.render("loyalty.html", shop, locale, gettext(locale), host=host, session_token=session_token)


pages.add_page(bp, "/admin/loyalty", _page)


@bp.post("/admin/home")
def store_home() -> Response:
    """Back from this page to a store's admin page, with the same session token."""
    domain, locale, token = pages._store_shop()
    return render_store_shell(domain, locale, token, store_origin(domain))


# --- reading a request --------------------------------------------------------------------------------------------


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, "a JSON object is expected")
    return body


def _invalid(problems: Problems, status: int = 400) -> tuple[Response, int]:
    return jsonify(error="; ".join(p["message"] for p in problems), problems=problems), status


class Form:
    """The fields of one request, read with a message for each one that is wrong (all of them, not the first)."""

    def __init__(self, body: dict[str, Any], prefix: str = "") -> None:
        self.body, self.prefix = body, prefix
        self.problems: Problems = []

    def bad(self, field: str, message: str) -> None:
        self.problems.append({"field": self.prefix + field, "message": message})

    def blank(self, field: str) -> bool:
        value = self.body.get(field)
        return value is None or (isinstance(value, str) and not value.strip())

    def whole(self, field: str, low: int, high: int, message: str) -> int | None:
        value = self.body.get(field)
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,12}\s*", value):
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return value
        self.bad(field, message)
        return None

    def optional_whole(self, field: str, low: int, high: int, message: str) -> int | None:
        return None if self.blank(field) else self.whole(field, low, high, message)

    def decimal(self, field: str, low: Decimal, high: Decimal, message: str, *, places: int = 4,
                above: bool = False) -> Decimal | None:
        raw = self.body.get(field)
        try:
            value = Decimal(str(raw).strip()) if isinstance(raw, int | float | str) and not isinstance(raw, bool) \
                else Decimal("NaN")
        except InvalidOperation:
            value = Decimal("NaN")
        if value.is_finite() and low <= value <= high and not (above and value == low) \
                and -int(value.as_tuple().exponent) <= places:
            return value
        self.bad(field, message)
        return None

    def text(self, field: str, high: int, message: str) -> str | None:
        value = self.body.get(field)
        if isinstance(value, str) and 0 < len(value.strip()) <= high:
            return value.strip()
        self.bad(field, message)
        return None

    def choice(self, field: str, allowed: list[str], message: str) -> str | None:
        value = self.body.get(field)
        if isinstance(value, str) and value in allowed:
            return value
        self.bad(field, message)
        return None

    def flag(self, field: str) -> bool | None:
        value = self.body.get(field)
        if isinstance(value, bool):
            return value
        self.bad(field, f"{field}: true or false")
        return None

    def ids(self, field: str) -> frozenset[str] | None:
        """A list of ids, or their text separated by commas; None when blank (every product)."""
        raw = self.body.get(field)
        if self.blank(field) or raw == []:
            return None
        items = raw.split(",") if isinstance(raw, str) else raw
        if (isinstance(items, list) and all(isinstance(x, str) for x in items)
                and 0 < len(found := {x.strip() for x in items if x.strip()}) <= 200
                and all(len(x) <= 64 for x in found)):
            return frozenset(found)
        self.bad(field, "products: product ids separated by commas (at most 200), or blank for every product")
        return None


# --- the program and its rule ------------------------------------------------------------------------------------


def _shop(s: Session) -> Shop:
    shop = s.get(Shop, g.shop_id)
    assert shop is not None  # the session token named an installed shop
    return shop


def _program(s: Session) -> LoyaltyProgramRow | None:
    return s.scalar(select(LoyaltyProgramRow).where(LoyaltyProgramRow.shop_id == g.shop_id))


def _rule(s: Session) -> EarnRule | None:
    row = s.execute(select(LoyaltyRule.version, LoyaltyRule.definition).where(LoyaltyRule.shop_id == g.shop_id)
                    .order_by(LoyaltyRule.version.desc()).limit(1)).first()
    return None if row is None else loyalty.rule_from(row.version, row.definition)


def _zone(shop: Shop) -> ZoneInfo:
    try:
        return ZoneInfo(shop.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _bonus_data(index: int, bonus: Bonus, now: datetime) -> dict[str, Any]:
    status = "scheduled" if now < bonus.starts_at else "running" if now < bonus.ends_at else "ended"
    return {"index": index, "multiplier": str(bonus.multiplier), "starts_at": bonus.starts_at.isoformat(),
            "ends_at": bonus.ends_at.isoformat(), "status": status,
            "products": None if bonus.products is None else sorted(bonus.products)}


def _staff() -> str | None:
    """The staff member the request's session token names. Shopify's session tokens carry the signed-in user's
    id in `sub`; Encore's own (from WordPress) name only the shop. `session_token_required` verified the token
    in full before the view ran, so its claims are read here without verifying it again."""
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    claims = jwt.decode(token, options={"verify_signature": False})
    sub = claims.get("sub")
    return None if claims.get("iss") == ADMIN_ISSUER or not sub else f"Shopify user {sub}"


def _program_data(s: Session, now: datetime) -> dict[str, Any]:
    shop, program, rule = _shop(s), _program(s), _rule(s)
    actions = (program.actions if program else None) or {}
    return {
        "enabled": bool(program and program.enabled),
        "started_at": program.started_at.isoformat() if program else None,
        "version": rule.version if rule else None,
        "points_per_unit": str(rule.points_per_unit) if rule else "1",
        "confirm_after_days": program.confirm_after_days if program else None,
        "expire_after_days": program.expire_after_days if program else None,
        "actions": {a: int(actions.get(a) or 0) for a in loyalty.ACTIONS},
        "stamp_every": program.stamp_every if program else None,
        "stamp_reward_id": program.stamp_reward_id if program else None,
        "badges_enabled": program.badges_enabled if program else True,
        "tier_basis": program.tier_basis if program else Basis.SPEND.value,
        "tier_window_days": program.tier_window_days if program else 365,
        "tier_grace_days": program.tier_grace_days if program else 30,
        "holdout_percent": program.holdout_percent if program else 0,
        "bonuses": [_bonus_data(i, b, now) for i, b in enumerate(rule.bonuses)] if rule else [],
        "currency": shop.currency, "timezone": str(_zone(shop)), "staff": _staff(),
    }


@bp.get("/api/admin/loyalty/program")
@session_token_required
def program() -> Response:
    with _c().sessions() as s:
        return jsonify(_program_data(s, _now()))


SETTINGS = ("enabled", "points_per_unit", "confirm_after_days", "expire_after_days", "actions", "stamp_every",
            "stamp_reward_id", "badges_enabled", "tier_basis", "tier_window_days", "tier_grace_days", "holdout_percent")


def _read_actions(form: Form) -> dict[str, int] | None:
    raw = form.body.get("actions")
    if not isinstance(raw, dict):
        form.bad("actions", "actions: points for each of " + ", ".join(loyalty.ACTIONS))
        return None
    found: dict[str, int] = {}
    for name, value in raw.items():
        if name not in loyalty.ACTIONS:
            form.bad("actions", f"actions: no action {name!r} (" + ", ".join(loyalty.ACTIONS) + ")")
            continue
        points = Form({name: value}, "actions.").whole(name, 0, 1_000_000, "")
        if points is None:
            form.bad(f"actions.{name}", f"{name}: a whole number of points from 0 to 1,000,000")
        else:
            found[name] = points
    return found


def _read_settings(s: Session, body: dict[str, Any]) -> tuple[dict[str, Any], Problems]:
    """The settings the body changes, checked; every problem, each with its field."""
    form, changes = Form(body), dict[str, Any]()
    for unknown in sorted(set(body) - set(SETTINGS)):
        form.bad(unknown, f"unknown setting {unknown!r}")
    readers: dict[str, Callable[[], Any]] = {
        "enabled": lambda: form.flag("enabled"),
        "badges_enabled": lambda: form.flag("badges_enabled"),
        "points_per_unit": lambda: form.decimal("points_per_unit", Decimal(0), Decimal(1000),
                                                "points per unit: a number from 0 to 1,000 (at most 4 decimals)"),
        "confirm_after_days": lambda: form.optional_whole(
            "confirm_after_days", 1, 365, "days after fulfilment: a whole number from 1 to 365, or blank"),
        "expire_after_days": lambda: form.optional_whole(
            "expire_after_days", 1, 3650, "expiry: a whole number of days from 1 to 3,650, or blank for never"),
        "actions": lambda: _read_actions(form),
        "stamp_every": lambda: form.optional_whole(
            "stamp_every", 2, 100, "stamp card: every 2 to 100 orders, or blank for no card"),
        "stamp_reward_id": lambda: form.optional_whole("stamp_reward_id", 1, 2**62, "stamp reward: a reward"),
        "tier_basis": lambda: form.choice("tier_basis", [b.value for b in Basis], "tier basis: spend or points"),
        "tier_window_days": lambda: form.whole("tier_window_days", 1, 1825, "tier window: from 1 to 1,825 days"),
        "tier_grace_days": lambda: form.whole("tier_grace_days", 0, 365, "grace period: from 0 to 365 days"),
        "holdout_percent": lambda: form.whole("holdout_percent", 0, lift.MAX_HOLDOUT_PERCENT,
                                              f"holdout: a whole percentage from 0 to {lift.MAX_HOLDOUT_PERCENT}"),
    }
    for name in SETTINGS:
        if name in body:
            before = len(form.problems)
            value = readers[name]()
            if len(form.problems) == before:
                changes[name] = value
    _check_stamp_card(s, form, changes)
    return changes, form.problems


def _check_stamp_card(s: Session, form: Form, changes: dict[str, Any]) -> None:
    program = _program(s)
    every = changes.get("stamp_every", program.stamp_every if program else None)
    reward_id = changes.get("stamp_reward_id", program.stamp_reward_id if program else None)
    if every is not None and reward_id is None and {"stamp_every", "stamp_reward_id"} & set(changes):
        form.bad("stamp_reward_id", "stamp card: choose the reward a full card earns")
    if reward_id is not None and "stamp_reward_id" in changes:
        reward = s.get(Reward, reward_id)
        if reward is None or reward.shop_id != g.shop_id:
            form.bad("stamp_reward_id", "stamp reward: no such reward in your catalog")


def _conflict() -> tuple[Response, int]:
    return jsonify(error="The program was changed at the same moment elsewhere. Reload the page and try again."), 409


@bp.put("/api/admin/loyalty/program")
@session_token_required
def save_program() -> Response | tuple[Response, int]:
    body, now = _body(), _now()
    try:
        with _c().sessions() as s, s.begin():
            changes, problems = _read_settings(s, body)
            if problems:
                return _invalid(problems)
            loyalty.update_program(s, g.shop_id, changes, now)
    except IntegrityError:  # a rule version saved elsewhere at the same moment
        return _conflict()
    with _c().sessions() as s:
        return jsonify(_program_data(s, now))


# --- bonus campaigns: a new rule version each -------------------------------------------------------------------


def _moment(form: Form, field: str, label: str, zone: ZoneInfo) -> datetime | None:
    """A date and time: with an offset, or without one (as a datetime-local input gives it) in the shop's zone."""
    raw = form.body.get(field)
    try:
        at = datetime.fromisoformat(raw) if isinstance(raw, str) and len(raw) <= 40 else None
    except ValueError:
        at = None
    if at is None:
        form.bad(field, f"{label}: a date and time such as 2026-11-27T00:00")
        return None
    return (at if at.tzinfo else at.replace(tzinfo=zone)).astimezone(UTC)


def _read_bonus(body: dict[str, Any], zone: ZoneInfo, now: datetime) -> tuple[Bonus | None, Problems]:
    form = Form(body)
    multiplier = form.decimal("multiplier", Decimal(0), Decimal(100),
                              "multiplier: a number above 0 and at most 100 (2 doubles the points)", above=True)
    starts, ends = _moment(form, "starts_at", "starts", zone), _moment(form, "ends_at", "ends", zone)
    products = form.ids("products")
    if starts and ends and ends <= starts:
        form.bad("ends_at", "ends: after it starts")
    elif ends and ends <= now:
        form.bad("ends_at", "ends: in the future")
    if form.problems or multiplier is None or starts is None or ends is None:
        return None, form.problems
    return Bonus(multiplier, starts, ends, products), []


@bp.post("/api/admin/loyalty/bonuses")
@session_token_required
def add_bonus() -> Response | tuple[Response, int]:
    body, now = _body(), _now()
    try:
        with _c().sessions() as s, s.begin():
            bonus, problems = _read_bonus(body, _zone(_shop(s)), now)
            if bonus is None:
                return _invalid(problems)
            rule = _rule(s) or EarnRule(1, Decimal(1))
            version = loyalty.new_rule(s, g.shop_id, replace(rule, bonuses=(*rule.bonuses, bonus)), now)
    except IntegrityError:
        return _conflict()
    return jsonify(version=version, bonus=_bonus_data(len(rule.bonuses), bonus, now)), 201


@bp.post("/api/admin/loyalty/bonuses/<int:index>/end")
@session_token_required
def end_bonus(index: int) -> Response | tuple[Response, int]:
    """End a campaign now (one not yet begun is dropped), as a new version. The request names the version it
    was read from, so a campaign is never ended by its place in a list that has changed since."""
    body, now = _body(), _now()
    try:
        with _c().sessions() as s, s.begin():
            rule = _rule(s)
            if rule is None or body.get("version") != rule.version:
                return _conflict()
            if not 0 <= index < len(rule.bonuses):
                abort(404, "no such campaign in this version")
            bonus = rule.bonuses[index]
            if bonus.ends_at <= now:
                return _invalid([{"field": "bonus", "message": "this campaign has ended already"}], 409)
            kept = () if bonus.starts_at > now else (replace(bonus, ends_at=now),)
            bonuses = (*rule.bonuses[:index], *kept, *rule.bonuses[index + 1:])
            version = loyalty.new_rule(s, g.shop_id, replace(rule, bonuses=bonuses), now)
    except IntegrityError:
        return _conflict()
    return jsonify(version=version)


# --- the rewards catalog -----------------------------------------------------------------------------------------


def _plain(value: Decimal) -> str:
    """A stored amount as a person writes it: 5, 2.5 (the column keeps four places: 5.0000)."""
    return format(value.normalize(), "f")


def _reward_data(r: Reward) -> dict[str, Any]:
    return {"id": r.id, "title": r.title, "kind": r.kind, "value": None if r.value is None else _plain(r.value),
            "product_id": r.product_external_id, "cost": r.cost, "valid_days": r.valid_days, "enabled": r.enabled,
            "segment_id": r.segment_id}


@bp.get("/api/admin/loyalty/rewards")
@session_token_required
def catalog() -> Response:
    with _c().sessions() as s:
        found = s.scalars(select(Reward).where(Reward.shop_id == g.shop_id).order_by(Reward.cost, Reward.id))
        locale = best_locale(_shop(s).locale)  # the segments a reward may be limited to, named for the admin
        choices = [{"id": x.id, "key": x.key, "name": segments.display_name(x, locale)}
                   for x in s.scalars(select(Segment).where(Segment.shop_id == g.shop_id)
                                      .order_by(Segment.kind.desc(), Segment.id))]  # the merchant's own first
        return jsonify(kinds=list(rewards.KINDS), rewards=[_reward_data(r) for r in found], segments=choices)


VALUED = ("amount", "percent", "free_product")  # a free product's value is its unit price


def _read_reward(body: dict[str, Any], kind: str, *, partial: bool) -> tuple[dict[str, Any], Problems]:
    form, found = Form(body), dict[str, Any]()
    for unknown in sorted(set(body) - {"title", "kind", "value", "cost", "valid_days", "enabled", "product_id", "segment_id"}):
        form.bad(unknown, f"unknown field {unknown!r}")
    if kind == "free_product" and not partial:
        product = body.get("product_id")
        if not isinstance(product, str | int) or isinstance(product, bool) or not str(product).strip().isdigit():
            form.bad("product_id", "product: the store's product id (digits) of the free product")
        else:
            found["product_id"] = str(product).strip()
    elif "product_id" in body and (partial or body["product_id"] not in (None, "")):
        form.bad("product_id", "product: only a new free-product reward names a product")
    fields: dict[str, Callable[[], Any]] = {
        "title": lambda: form.text("title", 255, "title: a name of at most 255 characters"),
        "cost": lambda: form.whole("cost", 1, 10_000_000, "cost: a whole number of points from 1 to 10,000,000"),
        "valid_days": lambda: form.whole("valid_days", 1, 3650, "valid for: from 1 to 3,650 days"),
        "enabled": lambda: form.flag("enabled"),
        "value": lambda: _reward_value(form, kind),
        "segment_id": lambda: None if form.blank("segment_id") else form.whole(
            "segment_id", 1, 2**62, "segment: one of your segments, or blank for every customer"),
    }
    for name, read in fields.items():
        required = not partial and (name in ("title", "cost") or (name == "value" and kind in VALUED))
        if name in body or required:
            before = len(form.problems)
            value = read()
            if len(form.problems) == before:
                found[name] = value
    return found, form.problems


def _reward_value(form: Form, kind: str) -> Decimal | None:
    if kind not in VALUED:
        if not form.blank("value"):
            form.bad("value", "value: a free-shipping reward has no value")
        return None
    high = Decimal(100) if kind == "percent" else Decimal("1000000")
    message = ("value: a percentage above 0 and at most 100" if kind == "percent"
               else "value: an amount of money above 0 (at most 2 decimals)")
    return form.decimal("value", Decimal(0), high, message, places=2, above=True)


@bp.post("/api/admin/loyalty/rewards")
@session_token_required
def add_reward() -> Response | tuple[Response, int]:
    body, now = _body(), _now()
    kind = body.get("kind")
    if kind not in rewards.KINDS:
        return _invalid([{"field": "kind", "message": "kind: one of " + ", ".join(rewards.KINDS)}])
    found, problems = _read_reward({k: v for k, v in body.items() if k != "kind"}, kind, partial=False)
    with _c().sessions() as s, s.begin():
        problems += _segment_problems(s, found)
        if problems:
            return _invalid(problems)
        reward_id = rewards.add_reward(s, g.shop_id, found["title"], kind, found.get("value"), found["cost"], now,
                                       valid_days=found.get("valid_days", 90), enabled=found.get("enabled", True),
                                       product_id=found.get("product_id"), segment_id=found.get("segment_id"))
        return jsonify(_reward_data(_own_reward(s, reward_id))), 201


def _segment_problems(s: Session, found: dict[str, Any]) -> Problems:
    """A reward limited to a segment names one of the shop's (only its members may redeem it)."""
    segment = s.get(Segment, found["segment_id"]) if found.get("segment_id") is not None else None
    if found.get("segment_id") is not None and (segment is None or segment.shop_id != g.shop_id):
        return [{"field": "segment_id", "message": "segment: no such segment in your store"}]
    return []


def _own_reward(s: Session, reward_id: int) -> Reward:
    reward = s.get(Reward, reward_id)
    if reward is None or reward.shop_id != g.shop_id:
        abort(404, "no such reward")
    return reward


@bp.put("/api/admin/loyalty/rewards/<int:reward_id>")
@session_token_required
def edit_reward(reward_id: int) -> Response | tuple[Response, int]:
    """Title, cost, value, days valid, on/off and the segment it is limited to; the kind stays. Codes already
    bought keep what they were."""
    body = _body()
    with _c().sessions() as s, s.begin():
        reward = _own_reward(s, reward_id)
        if "kind" in body and body["kind"] != reward.kind:
            return _invalid([{"field": "kind", "message": "kind: a reward keeps its kind; add a new reward instead"}])
        found, problems = _read_reward({k: v for k, v in body.items() if k != "kind"}, reward.kind, partial=True)
        problems += _segment_problems(s, found)
        if problems:
            return _invalid(problems)
        for name, value in found.items():
            setattr(reward, name, value)
        reward.updated_at = _now()
        s.flush()
        return jsonify(_reward_data(reward))


# --- VIP tiers ------------------------------------------------------------------------------------------------------


def _tier_data(t: Tier) -> dict[str, Any]:
    return {"key": t.key, "name": t.name, "threshold": _plain(t.threshold), "multiplier": _plain(t.multiplier),
            "perks": list(t.perks)}


@bp.get("/api/admin/loyalty/tiers")
@session_token_required
def ladder() -> Response:
    with _c().sessions() as s:
        return jsonify(tiers=[_tier_data(t) for t in tiers.tiers_of(s, g.shop_id)])


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:32]


def _read_tier(raw: object, i: int) -> tuple[Tier | None, Problems]:
    form = Form(raw if isinstance(raw, dict) else {}, f"tiers.{i}.")
    if not isinstance(raw, dict):
        form.bad("name", f"tier {i + 1}: a name, a threshold and a multiplier")
        return None, form.problems
    name = form.text("name", 64, f"tier {i + 1}: a name of at most 64 characters")
    key = raw.get("key") or _slug(name or "") or f"tier-{i + 1}"
    if not isinstance(key, str) or not TIER_KEY.match(key):
        form.bad("key", f"tier {i + 1}: a key of lower-case letters, digits, - and _ (at most 32)")
    threshold = form.decimal("threshold", Decimal(0), Decimal("1000000000"),
                             f"tier {i + 1}: a threshold of 0 or more (at most 2 decimals)", places=2)
    multiplier = form.decimal("multiplier", Decimal(0), Decimal(10),
                              f"tier {i + 1}: a points multiplier from 0 to 10", places=2)
    perks = raw.get("perks", [])
    perks = [p for p in perks.splitlines()] if isinstance(perks, str) else perks
    if not isinstance(perks, list) or len(perks) > 20 or not all(isinstance(p, str) and len(p) <= 200 for p in perks):
        form.bad("perks", f"tier {i + 1}: perks, one a line (at most 20, 200 characters each)")
    if form.problems or name is None or threshold is None or multiplier is None:
        return None, form.problems
    return Tier(str(key), name, threshold, multiplier, tuple(p.strip() for p in perks if p.strip())), []


@bp.put("/api/admin/loyalty/tiers")
@session_token_required
def save_ladder() -> Response | tuple[Response, int]:
    given = _body().get("tiers")
    if not isinstance(given, list) or len(given) > 10:
        return _invalid([{"field": "tiers", "message": "tiers: a list of at most 10 tiers"}])
    read = [_read_tier(raw, i) for i, raw in enumerate(given)]
    problems = [p for _, found in read for p in found]
    if problems:
        return _invalid(problems)
    found = [t for t, _ in read if t is not None]
    try:
        with _c().sessions() as s, s.begin():
            tiers.set_tiers(s, g.shop_id, found, _now())
    except LoyaltyError as exc:  # the core's check of the ladder: keys and thresholds each its own
        return _invalid([{"field": "tiers", "message": f"tiers: {exc}"}])
    with _c().sessions() as s:
        return jsonify(tiers=[_tier_data(t) for t in tiers.tiers_of(s, g.shop_id)])


# --- one customer's ledger ---------------------------------------------------------------------------------------


def _customer_ids(s: Session, q: str) -> list[str]:
    """Customers whose id is `q` or whose email is `q` (in any case), and an account of that id without a
    customer record (a customer the store has not sent yet)."""
    c = Customer
    found = list(s.scalars(select(c.external_id).where(
        c.shop_id == g.shop_id, c.redacted_at.is_(None),
        or_(c.external_id == q, func.lower(c.email) == q.lower())).order_by(c.external_id).limit(20)))
    if q not in found and s.scalar(select(LoyaltyAccount.id).where(
            LoyaltyAccount.shop_id == g.shop_id, LoyaltyAccount.customer_external_id == q)) is not None:
        found.insert(0, q)
    return found


@bp.get("/api/admin/loyalty/customers")
@session_token_required
def find_customers() -> Response | tuple[Response, int]:
    q = request.args.get("q", "").strip()
    if not q or len(q) > 320:
        return _invalid([{"field": "q", "message": "search: a customer id or an email address"}])
    with _c().sessions() as s:
        return jsonify(q=q, customers=[_person(s, cid) for cid in _customer_ids(s, q)])


def _person(s: Session, customer_id: str) -> dict[str, Any]:
    row = s.scalar(select(Customer).where(Customer.shop_id == g.shop_id, Customer.external_id == customer_id))
    name = " ".join(p for p in (row.first_name, row.last_name) if p) if row else ""
    return {"id": customer_id, "email": row.email if row else None, "name": name or None}


def _known(s: Session, customer_id: str) -> bool:
    return bool(s.scalar(select(Customer.id).where(Customer.shop_id == g.shop_id,
                                                   Customer.external_id == customer_id))
                or s.scalar(select(LoyaltyAccount.id).where(LoyaltyAccount.shop_id == g.shop_id,
                                                            LoyaltyAccount.customer_external_id == customer_id)))


def _entries(s: Session, customer_id: str, snapshot: Account) -> list[dict[str, Any]]:
    """The newest entries, each with the balances just after it: worked back from the snapshot, which is the sum
    of all the entries, so the figures are right however many older entries are not shown."""
    e = LedgerEntry
    rows = s.scalars(select(e).join(LoyaltyAccount, LoyaltyAccount.id == e.account_id)
                     .where(LoyaltyAccount.shop_id == g.shop_id, LoyaltyAccount.customer_external_id == customer_id)
                     .order_by(e.id.desc()).limit(LEDGER_ROWS)).all()
    available, pending, shown = snapshot.available, snapshot.pending, []
    for r in rows:
        shown.append({"id": r.id, "at": r.created_at.isoformat(), "amount": r.amount, "balance": r.balance,
                      "available_after": available, "pending_after": pending, "reason": r.reason,
                      "order": r.order_external_id, "rule_version": r.rule_version, "staff": r.staff, "note": r.note})
        if r.balance == "available":
            available -= r.amount
        else:
            pending -= r.amount
    return shown


def _ledger(s: Session, customer_id: str) -> dict[str, Any]:
    snapshot = loyalty.balance(s, g.shop_id, customer_id)
    key = s.scalar(select(LoyaltyAccount.tier).where(LoyaltyAccount.shop_id == g.shop_id,
                                                     LoyaltyAccount.customer_external_id == customer_id))
    tier = next((t for t in tiers.tiers_of(s, g.shop_id) if t.key == key), None)
    return {"customer": _person(s, customer_id), "available": snapshot.available, "pending": snapshot.pending,
            "tier": None if tier is None else {"key": tier.key, "name": tier.name},
            "entries": _entries(s, customer_id, snapshot), "staff": _staff()}


@bp.get("/api/admin/loyalty/customers/<customer_id>")
@session_token_required
def customer_ledger(customer_id: str) -> Response:
    with _c().sessions() as s:
        if not _known(s, customer_id):
            abort(404, "no customer with that id")
        return jsonify(_ledger(s, customer_id))


def _read_adjustment(body: dict[str, Any]) -> tuple[int | None, str | None, str | None, Problems]:
    """(signed points, staff, note): points are a whole number above zero, added or taken by `direction`."""
    form = Form(body)
    direction = body.get("direction", "add")
    if direction not in ("add", "take"):
        form.bad("direction", "direction: add or take")
    points = form.whole("points", 1, 10_000_000, "points: a whole number above zero (choose “Take points away” to remove "
                                                 "points), at most 10,000,000")
    note = form.text("note", 2000, "note: say why (at most 2,000 characters)")
    staff = _staff() or form.text("staff", 255, "your name: who is making this adjustment")
    if not isinstance(body.get("request_key"), str) or not REQUEST_KEY.match(body["request_key"]):
        form.bad("request_key", "request key: 8 to 64 letters, digits, - or _ (one for each submitted form)")
    if form.problems or points is None:
        return None, None, None, form.problems
    return (-points if direction == "take" else points), staff, note, []


@bp.post("/api/admin/loyalty/customers/<customer_id>/adjust")
@session_token_required
def adjust(customer_id: str) -> Response | tuple[Response, int]:
    """A manual adjustment (`loyalty.adjust`): the same request key again is the same adjustment, once."""
    body = _body()
    points, staff, note, problems = _read_adjustment(body)
    if problems:
        return _invalid(problems)
    assert points is not None and staff is not None and note is not None
    with _c().sessions() as s:
        if not _known(s, customer_id):
            abort(404, "no customer with that id")
    try:
        with _c().sessions() as s, s.begin():
            posted = loyalty.adjust(s, g.shop_id, customer_id, points, staff, note, body["request_key"], _now())
    except LoyaltyError as exc:  # taking more than the balance holds, among others: nothing was written
        return _invalid([{"field": "points", "message": str(exc)}])
    with _c().sessions() as s:
        return jsonify(**_ledger(s, customer_id), adjusted=points, repeated=posted.new == 0)


# --- figures -----------------------------------------------------------------------------------------------------


def _money(amount: Decimal | None, currency: str, locale: str, *, exact: bool = False) -> str | None:
    if amount is None:
        return None
    return str(format_currency(amount, currency, locale=locale.replace("-", "_"), decimal_quantization=not exact))


@bp.get("/api/admin/loyalty/figures")
@session_token_required
def figures() -> Response:
    """The program's figures, money formatted by Babel in the admin's locale (`locale`, else the shop's)."""
    with _c().sessions() as s:
        shop = _shop(s)
        locale = best_locale(request.args.get("locale") or shop.locale)
        f = lf.figures(s, g.shop_id, shop.currency, _now())
    value = None if f.point_value is None else f.point_value.quantize(Decimal("0.0001")).normalize()
    return jsonify(
        members=f.members, available=f.available, pending=f.pending, outstanding=f.outstanding,
        currency=f.currency, locale=locale,
        point_value=None if value is None else str(value), point_value_text=_money(value, f.currency, locale, exact=True),
        liability=None if f.liability is None else str(f.liability),
        liability_text=_money(f.liability, f.currency, locale),
        redemption={"recent": f.redemption_recent.data(), "all": f.redemption_all.data(), "days": lf.RECENT.days},
        repeat={"members": f.repeat_members.data(), "others": f.repeat_others.data()},
        mismatches=f.mismatches)
