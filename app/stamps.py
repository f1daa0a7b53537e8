"""(being written)"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from app.core.events import DomainEvent


def follow(s: Session, event: DomainEvent, now: datetime) -> None:
    """An order event, in its transaction."""
