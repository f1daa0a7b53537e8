"""Journeys as a shop has them: the default library installed as journeys (switched off until the merchant
switches them on), versions saved on every edit, the live version, and the shop's messaging settings.

A version is never changed once written: an edit saves a new one and makes it live; enrollments keep the
version they began with. A version's templates are the library's default copy (None: rendered in the
customer's language from the English, Korean and Japanese catalogs) or the merchant's own source.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app import rendering
from app.core.journeys import Category, Channel, Condition, Incentive, Journey, Policy, Step, from_data, to_data
from app.db.models import JourneyRow, JourneyVersion, Shop
from app.rendering import TemplateProblem, TemplateSource

if TYPE_CHECKING:
    from app.bootstrap import Container

ORDER_EXITS = frozenset({"OrderCancelled", "OrderRefunded"})

# Date rules: journeys whose trigger is a moment Encore computes (app/daterules.py), not a domain event.
DATE_RULES = ("Birthday", "FirstOrderAnniversary", "Replenishment", "WinBack", "PointsExpiring")
# Triggers that carry no incentive: a reward for a positive answer would buy the praise (app/surveys.py).
REWARD_FREE = frozenset({"OrderPraised"})


def _step(key: str, *, delay: timedelta = timedelta(0), send_at: time | None = None, latest: timedelta | None = None,
          condition: Condition | None = None, incentive: Incentive | None = None) -> tuple[Step, ...]:
    return (Step(key="message", template=key, delay=delay, send_at=send_at, latest=latest, condition=condition,
                 incentive=incentive),)


def _percent(value: int, days: int = 30) -> Incentive:
    return Incentive("percent", Decimal(value), timedelta(days=days))


# The library, ready to switch on: timing and copy a merchant can keep as they are.
DEFAULTS: dict[str, Journey] = {j.key: j for j in (
    Journey("thank_you", 1, "OrderPaid", _step("thank_you"), Category.TRANSACTIONAL, ORDER_EXITS, priority=90),
    Journey("shipped", 1, "OrderFulfilled", _step("shipped"), Category.TRANSACTIONAL, ORDER_EXITS, priority=90),
    Journey("delivered", 1, "OrderDelivered", _step("delivered", delay=timedelta(hours=2)), Category.TRANSACTIONAL,
            ORDER_EXITS, priority=80),
    Journey("survey", 1, "OrderDelivered",
            _step("survey", delay=timedelta(days=3), latest=timedelta(days=2), send_at=time(10, 0),
                  incentive=_percent(10)), Category.TRANSACTIONAL, ORDER_EXITS, priority=60,
            max_event_age=timedelta(days=5)),
    Journey("review_request", 1, "OrderDelivered", _step("review_request", delay=timedelta(days=10), send_at=time(10, 0)),
            Category.TRANSACTIONAL, ORDER_EXITS, priority=50, max_event_age=timedelta(days=10)),
    Journey("abandoned_cart", 1, "CheckoutUpdated",
            _step("abandoned_cart", delay=timedelta(hours=2), condition=Condition(first_order=False),
                  incentive=_percent(5, days=7)),
            Category.MARKETING, frozenset({"OrderPlaced", "CheckoutCompleted"}), priority=70,
            attribution=timedelta(days=3), max_event_age=timedelta(hours=12)),
    Journey("replenishment", 1, "Replenishment", _step("replenishment", send_at=time(10, 0)), Category.MARKETING,
            frozenset({"OrderPlaced"}), priority=60),
    Journey("birthday", 1, "Birthday", _step("birthday", send_at=time(9, 0), incentive=_percent(15, days=14)),
            Category.MARKETING, frozenset(), priority=65),
    Journey("anniversary", 1, "FirstOrderAnniversary", _step("anniversary", send_at=time(9, 0), incentive=_percent(10)),
            Category.MARKETING, frozenset(), priority=55),
    Journey("win_back", 1, "WinBack", _step("win_back", delay=timedelta(days=7), send_at=time(10, 0),
                                            incentive=_percent(10)),
            Category.MARKETING, frozenset({"OrderPlaced"}), priority=40, attribution=timedelta(days=14)),
    Journey("points_expiry", 1, "PointsExpiring", _step("points_expiry", send_at=time(10, 0)),
            Category.TRANSACTIONAL, frozenset(), priority=50),
    Journey("vip_tier", 1, "TierChanged", _step("vip_tier"), Category.TRANSACTIONAL, frozenset(), priority=50),
    Journey("review_invite", 1, "OrderPraised", _step("review_invite", delay=timedelta(hours=1)),
            Category.TRANSACTIONAL, ORDER_EXITS, priority=55),
)}


def install_defaults(s: Session, shop_id: int, *, enabled: frozenset[str] = frozenset()) -> int:
    """Give a shop every library journey it does not have yet (version 1, switched off unless named)."""
    have = set(s.scalars(select(JourneyRow.key).where(JourneyRow.shop_id == shop_id)))
    added = 0
    for key, journey in DEFAULTS.items():
        if key in have:
            continue
        row = JourneyRow(shop_id=shop_id, key=key, enabled=key in enabled, version=1)
        s.add(row)
        s.flush()
        s.add(JourneyVersion(shop_id=shop_id, journey_id=row.id, version=1, definition=to_data(journey),
                             templates={step.key: None for step in journey.steps}))
        added += 1
    s.flush()
    return added


@dataclass(frozen=True)
class Version:
    journey_id: int
    key: str
    enabled: bool
    version_id: int
    journey: Journey
    templates: dict[str, TemplateSource | None]


def sources(templates: dict[str, Any], journey: Journey) -> dict[str, TemplateSource | None]:
    out: dict[str, TemplateSource | None] = {}
    for step in journey.steps:
        raw = templates.get(step.key)
        out[step.key] = None if raw is None else TemplateSource(
            subject=raw["subject"], html=raw["html"], text=raw["text"], sms=raw.get("sms", ""),
            category=journey.category.value, journey=step.template)
    return out


def template_for(version: Version, step: Step) -> TemplateSource:
    """The step's copy: the merchant's own, or the library's default."""
    own = version.templates.get(step.key)
    return own if own is not None else rendering.default_template(step.template)


def live(s: Session, shop_id: int, key: str) -> Version | None:
    row = s.execute(select(JourneyRow, JourneyVersion).join(
        JourneyVersion, (JourneyVersion.journey_id == JourneyRow.id) & (JourneyVersion.version == JourneyRow.version))
        .where(JourneyRow.shop_id == shop_id, JourneyRow.key == key)).first()
    if row is None:
        return None
    j, v = row
    journey = from_data(v.definition)
    return Version(j.id, j.key, j.enabled, v.id, journey, sources(v.templates, journey))


def live_version(c: Container, shop_id: int, key: str) -> Version:
    with c.sessions() as s:
        version = live(s, shop_id, key)
    if version is None:
        raise LookupError(key)
    return version


def all_live(s: Session, shop_id: int) -> list[Version]:
    keys = list(s.scalars(select(JourneyRow.key).where(JourneyRow.shop_id == shop_id).order_by(JourneyRow.id)))
    return [v for k in keys if (v := live(s, shop_id, k)) is not None]


class InvalidJourney(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def check(journey: Journey, templates: dict[str, TemplateSource | None], language: str) -> list[str]:
    """Why a journey cannot be saved: its steps and their templates (rendered in the sandbox with sample data,
    so a template that fails to render or reaches outside the sandbox is refused with its line and reason)."""
    problems: list[str] = []
    keys = [s.key for s in journey.steps]
    if not keys or len(set(keys)) != len(keys):
        problems.append("steps need distinct keys")
    if not 0 <= journey.holdout_percent <= 50:
        problems.append("the holdout is a share from 0 to 50 percent")
    for step in journey.steps:
        if step.delay < timedelta(0):
            problems.append(f"step {step.key}: the delay cannot be negative")
        if step.incentive is not None and step.incentive.kind != "free_shipping" and step.incentive.value <= 0:
            problems.append(f"step {step.key}: the incentive needs a value above zero")
        if step.incentive is not None and step.incentive.kind == "percent" and step.incentive.value > 100:
            problems.append(f"step {step.key}: a percentage cannot be above 100")
        if step.incentive is not None and journey.trigger in REWARD_FREE:
            problems.append(f"step {step.key}: no incentive on a journey a positive survey answer starts (a reward "
                            "is for completing the survey, never for the answer)")
        source = templates.get(step.key)
        if source is not None:
            found: list[TemplateProblem] = rendering.validate(source, language)
            problems.extend(f"step {step.key}, {p}" for p in found)
    return problems


def save_version(c: Container, shop_id: int, key: str, journey: Journey,
                 templates: dict[str, TemplateSource | None], *, language: str = "en") -> Version:
    """Save an edit as a new version and make it live; raises InvalidJourney (nothing saved) when it is not
    sound. Enrolled customers keep the version they began with."""
    with c.sessions() as s, s.begin():
        row = s.scalars(select(JourneyRow).where(JourneyRow.shop_id == shop_id, JourneyRow.key == key)
                        .with_for_update()).one_or_none()
        if row is None:
            raise LookupError(key)
        number = int(s.scalar(select(func.max(JourneyVersion.version)).where(JourneyVersion.journey_id == row.id))
                     or 0) + 1
        journey = replace(journey, key=key, version=number)
        problems = check(journey, templates, language)
        if problems:
            raise InvalidJourney(problems)
        stored = {step: None if src is None else {"subject": src.subject, "html": src.html, "text": src.text,
                                                   "sms": src.sms} for step, src in templates.items()}
        s.add(JourneyVersion(shop_id=shop_id, journey_id=row.id, version=number, definition=to_data(journey),
                             templates=stored))
        row.version, row.updated_at = number, datetime.now(UTC)
        s.flush()
        version = live(s, shop_id, key)
    assert version is not None
    return version


def set_enabled(c: Container, shop_id: int, key: str, enabled: bool) -> bool:
    with c.sessions() as s, s.begin():
        done = s.execute(update(JourneyRow).where(JourneyRow.shop_id == shop_id, JourneyRow.key == key)
                         .values(enabled=enabled, updated_at=datetime.now(UTC)))
        return bool(done.rowcount)  # type: ignore[attr-defined]


# --- the shop's messaging settings --------------------------------------------------------------------------


@dataclass(frozen=True)
class Messaging:
    """Who messages come from and the rules every journey and program shares."""

    sender_name: str = ""
    sender_address: str = ""
    support_email: str = ""
    reply_to: str = ""
    webhook_url: str = ""  # where the outbound-webhook channel posts
    per_day: int = 1
    per_week: int = 3
    quiet_start: str = "21:00"
    quiet_end: str = "09:00"
    over_cap: str = "defer"

    @property
    def policy(self) -> Policy:
        return Policy(per_day=self.per_day, per_week=self.per_week, quiet_start=time.fromisoformat(self.quiet_start),
                      quiet_end=time.fromisoformat(self.quiet_end), over_cap=self.over_cap)

    @classmethod
    def of(cls, shop: Shop) -> Messaging:
        stored = shop.messaging or {}
        known = {k: v for k, v in stored.items() if k in cls.__dataclass_fields__}
        base = cls(**known)
        name = base.sender_name or shop.name or shop.domain
        return replace(base, sender_name=name, sender_address=base.sender_address or f"no-reply@{shop.domain}",
                       support_email=base.support_email or f"support@{shop.domain}")


def save_messaging(c: Container, shop_id: int, changes: dict[str, Any]) -> Messaging:
    with c.sessions() as s, s.begin():
        shop = s.get(Shop, shop_id)
        if shop is None:
            raise LookupError(shop_id)
        merged = {**(shop.messaging or {}), **{k: v for k, v in changes.items() if k in Messaging.__dataclass_fields__}}
        candidate = Messaging(**merged)
        candidate.policy  # noqa: B018  # a malformed time fails here, before anything is saved
        if candidate.over_cap not in ("defer", "skip") or candidate.per_day < 0 or candidate.per_week < 0:
            raise ValueError("over_cap is defer or skip; caps are zero or more")
        shop.messaging = asdict(candidate)
        return Messaging.of(shop)


__all__ = ["DATE_RULES", "DEFAULTS", "Channel", "InvalidJourney", "Messaging", "Version", "all_live", "check",
           "install_defaults", "live", "save_messaging", "save_version", "set_enabled", "template_for"]
