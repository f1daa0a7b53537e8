"""Where a survey answer goes: the shop's routing rules, pure.

A shop sets where alerts about low answers go (one to five email addresses, and optionally an outbound webhook,
say into its support tool) and what counts as low and high. By default an answer is low when the satisfaction
score is 2 or less or the NPS answer 6 or less (a detractor, as Net Promoter counts them), and high when the NPS
answer is 9 or more (a promoter) and the satisfaction score 4 or more. Low and high can never both hold: a high
threshold must sit above its low one on both scales, which `routing_from` checks.

A low answer opens a follow-up item and alerts the merchant; a high one invites the customer to review and refer
(the review_invite journey). What the customer gets for completing the survey never depends on the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from app.core.referrals import normal_email

MAX_EMAILS = 5
MAX_URL = 2_000
Reason = Literal["low_satisfaction", "detractor", "both"]


class InvalidRouting(ValueError):
    """Settings that cannot be saved: one message per field that is wrong (`problems`: field -> message)."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in problems.items()))
        self.problems = problems


@dataclass(frozen=True)
class Routing:
    emails: tuple[str, ...] = ()  # where alerts are emailed (normalised, lower case)
    webhook_url: str = ""  # where alerts are POSTed, signed (Standard Webhooks); "" for none
    low_satisfaction: int = 2  # a satisfaction score (1-5) at or below this is low
    low_nps: int = 6  # an NPS answer (0-10) at or below this is low: a detractor
    high_satisfaction: int = 4  # high: a satisfaction score at or above this ...
    high_nps: int = 9  # ... and an NPS answer at or above this (a promoter)

    @property
    def alerts(self) -> bool:
        """Whether a low answer has anywhere to be sent."""
        return bool(self.emails or self.webhook_url)

    def low(self, score: int, nps: int | None) -> Reason | None:
        """Why the answer is low, or None. An answer from before NPS was asked is judged on its score alone."""
        unhappy = score <= self.low_satisfaction
        detractor = nps is not None and nps <= self.low_nps
        if unhappy and detractor:
            return "both"
        return "low_satisfaction" if unhappy else "detractor" if detractor else None

    def high(self, score: int, nps: int | None) -> bool:
        return nps is not None and nps >= self.high_nps and score >= self.high_satisfaction

    def data(self) -> dict[str, Any]:
        """As stored in `shops.feedback` and shown by the admin API."""
        return {"emails": list(self.emails), "webhook_url": self.webhook_url,
                "low_satisfaction": self.low_satisfaction, "low_nps": self.low_nps,
                "high_satisfaction": self.high_satisfaction, "high_nps": self.high_nps}


def stored(data: dict[str, Any] | None) -> Routing:
    """The routing a shop saved (`Routing.data`), or the defaults; what was saved passed `routing_from`."""
    if not data:
        return Routing()
    base = Routing()
    return Routing(emails=tuple(data.get("emails") or ()), webhook_url=str(data.get("webhook_url") or ""),
                   **{k: int(data.get(k, getattr(base, k))) for k in THRESHOLDS})


# Each threshold: the whole numbers it may take.
THRESHOLDS: dict[str, range] = {"low_satisfaction": range(1, 5), "low_nps": range(0, 10),
                                "high_satisfaction": range(2, 6), "high_nps": range(1, 11)}


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


def _emails(value: Any, problems: dict[str, str]) -> tuple[str, ...]:
    raw = value.replace(";", ",").replace("\n", ",").split(",") if isinstance(value, str) else value
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        problems["emails"] = "the alert addresses are a list of email addresses"
        return ()
    found: list[str] = []
    for item in (x.strip() for x in raw):
        if not item:
            continue
        address = normal_email(item)
        if address is None:
            problems["emails"] = f"{item!r} is not an email address"
            return ()
        if address not in found:
            found.append(address)
    if len(found) > MAX_EMAILS:
        problems["emails"] = f"alerts go to at most {MAX_EMAILS} addresses"
    return tuple(found)


def _url(value: Any, problems: dict[str, str]) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_URL:
        problems["webhook_url"] = f"the webhook URL is an http(s) address of at most {MAX_URL:,} characters"
        return ""
    url = value.strip()
    if url and not (url.lower().startswith(("https://", "http://")) and len(url.split("://", 1)[1]) > 0):
        problems["webhook_url"] = "the webhook URL is an http(s) address"
    return url


def routing_from(data: Any) -> Routing:
    """Checked settings from what the admin sent (every field optional: the defaults stand for what is left
    out); InvalidRouting lists everything wrong at once."""
    if not isinstance(data, dict):
        raise InvalidRouting({"settings": "the settings are a JSON object"})
    problems: dict[str, str] = {}
    unknown = sorted(set(data) - {"emails", "webhook_url", *THRESHOLDS})
    if unknown:
        problems["settings"] = f"unknown settings: {', '.join(unknown)}"
    emails = _emails(data.get("emails"), problems)
    url = _url(data.get("webhook_url"), problems)
    base = Routing()
    levels: dict[str, int] = {}
    for name, allowed in THRESHOLDS.items():
        value = _whole(data.get(name, getattr(base, name)))
        if value is None or value not in allowed:
            problems[name] = f"{name} is a whole number from {allowed.start} to {allowed.stop - 1}"
        else:
            levels[name] = value
    if {"low_satisfaction", "high_satisfaction"} <= set(levels) and \
            levels["high_satisfaction"] <= levels["low_satisfaction"]:
        problems["high_satisfaction"] = "a high satisfaction score must be above the low one"
    if {"low_nps", "high_nps"} <= set(levels) and levels["high_nps"] <= levels["low_nps"]:
        problems["high_nps"] = "a high NPS answer must be above the low one"
    if problems:
        raise InvalidRouting(problems)
    return Routing(emails=emails, webhook_url=url, **levels)
