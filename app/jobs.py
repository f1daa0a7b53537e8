"""RQ entry points: ids in, a few lines each; the work lives in the modules they call."""

from __future__ import annotations

from app import inbox, shops
from app.bootstrap import current


def process_inbox(inbox_id: int) -> str:
    return inbox.process(current(), int(inbox_id))


def relay() -> int:
    return inbox.relay(current())


def sweep() -> int:
    c = current()
    shops.keep_alive(c)
    return inbox.relay(c)
