"""The Connector protocol every platform implements."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from app.core.commands import Command


@dataclass(frozen=True)
class Delivery:
    """A webhook delivery whose signature was checked: who sent it, about what, and its raw body."""

    shop_domain: str
    topic: str
    event_id: str


@dataclass(frozen=True)
class Rejection:
    status: int
    reason: str


class MalformedPayload(ValueError):
    """The body was signed correctly but is not what the topic promises; the delivery is parked."""


class Headers(Protocol):
    """What a connector reads headers through: a dict, or the web framework's case-insensitive headers."""

    def get(self, key: str) -> str | None: ...
    def items(self) -> Iterable[tuple[str, str]]: ...


class Connector(Protocol):
    name: str
    topics: frozenset[str]

    def verify_webhook(self, body: bytes, headers: Headers, secrets: tuple[str, ...]) -> Delivery | Rejection:
        ...

    def translate(self, shop_id: int, topic: str, payload: Any) -> list[Command]:
        ...
