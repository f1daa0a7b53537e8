"""The default journey library: one folder per journey under `defaults/`, with its metadata (`journey.toml`)
next to its four templates (`subject.j2`, `html.j2`, `txt.j2`, `sms.j2`).

`journey.toml` holds the key, an English title and description for the admin, the category (transactional or
marketing: marketing mail carries the unsubscribe footer and needs consent), the default trigger as a small
table, and `needs`: the parts of the render context the engine must fill for the default copy to make sense
(`Journey.missing(context)` lists the ones that are not). A trigger is either an `event` (a domain event's
name: OrderPaid, OrderFulfilled, OrderDelivered, CheckoutUpdated, TierChanged) or a `schedule` (a moment the
engine computes: a birthday, a predicted run-out), with `delay` after it and/or `lead` before it (ISO 8601
durations in days, hours and minutes), optionally `latest` (do not send later than this after the trigger),
`at` (a local time of day) and `when` (a condition in words).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

from app.rendering.context import Category, RenderContext
from app.rendering.render import TemplateSource

DEFAULTS = Path(__file__).parent / "defaults"
ORDER = (
    "thank_you", "shipped", "delivered", "survey", "review_request", "abandoned_cart", "replenishment",
    "birthday", "anniversary", "win_back", "points_expiry", "vip_tier", "review_invite",
)
FILES = {"subject": "subject.j2", "html": "html.j2", "text": "txt.j2", "sms": "sms.j2"}
_DURATION = re.compile(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?")


def duration(text: str) -> timedelta:
    """An ISO 8601 duration in days, hours and minutes: "P3D", "PT2H", "P1DT12H", "PT0M"."""
    match = _DURATION.fullmatch(text)
    if not match or text in ("P", "PT") or text.endswith("T"):
        raise ValueError(f"not a duration in days, hours and minutes: {text!r}")
    days, hours, minutes = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes)


@dataclass(frozen=True)
class Journey:
    key: str
    title: str
    description: str
    category: Category
    trigger: Mapping[str, str]
    needs: tuple[str, ...]

    @property
    def delay(self) -> timedelta:
        """When to send relative to the trigger: `delay` after it, minus `lead` before it."""
        return duration(self.trigger.get("delay", "PT0M")) - duration(self.trigger.get("lead", "PT0M"))

    @property
    def latest(self) -> timedelta | None:
        """Do not send later than this after the trigger (the survey: 3 to 5 days after delivery)."""
        latest = self.trigger.get("latest")
        return None if latest is None else duration(latest)

    def template(self) -> TemplateSource:
        return default_template(self.key)

    def missing(self, context: RenderContext) -> list[str]:
        """The needed parts of the context that are empty: render only when this is []."""
        return [path for path in self.needs if not _resolve(context, path)]


def _resolve(context: RenderContext, path: str) -> object:
    value: object = context
    for name in path.split("."):
        value = getattr(value, name, None)
        if value is None:
            return None
    return value


def _load(key: str) -> Journey:
    with (DEFAULTS / key / "journey.toml").open("rb") as f:
        meta: dict[str, Any] = tomllib.load(f)
    if meta.get("key") != key or meta.get("category") not in ("transactional", "marketing"):
        raise ValueError(f"defaults/{key}/journey.toml: key must be {key!r} and category transactional or marketing")
    trigger = {str(k): str(v) for k, v in meta.get("trigger", {}).items()}
    if ("event" in trigger) == ("schedule" in trigger):
        raise ValueError(f"defaults/{key}/journey.toml: the trigger needs an event or a schedule")
    journey = Journey(
        key=key, title=str(meta["title"]), description=str(meta["description"]),
        category=cast(Category, meta["category"]), trigger=MappingProxyType(trigger),
        needs=tuple(str(n) for n in meta.get("needs", ())),
    )
    journey.delay  # noqa: B018  # a malformed duration fails at load, not at send
    return journey


@cache
def journeys() -> tuple[Journey, ...]:
    """The default library, in the order the admin lists it."""
    return tuple(_load(key) for key in ORDER)


def journey(key: str) -> Journey:
    for item in journeys():
        if item.key == key:
            return item
    raise KeyError(f"no default journey {key!r}")


@cache
def default_template(key: str) -> TemplateSource:
    """A journey's default copy, as the merchant starts editing it."""
    item = journey(key)
    folder = DEFAULTS / key
    parts = {part: (folder / file).read_text(encoding="utf-8") for part, file in FILES.items()}
    return TemplateSource(
        subject=parts["subject"], html=parts["html"], text=parts["text"], sms=parts["sms"],
        category=item.category, journey=key,
    )
