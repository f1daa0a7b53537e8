"""A channel that delivers nowhere but keeps a journal: one line per message handed to it, appended to a file.

For load tests and benchmarks (ENCORE_EMAIL_SINK points the email channel here on a staging copy of a shop,
so the whole engine runs without mailing anyone) and for crash drills: the journal says how many times each
message was handed over, and `delivered` lets the dispatcher confirm a send after a crash, as the outbox does.
Each line is written with one O_APPEND write, whole or not at all, so concurrent dispatchers can share a file.
"""

from __future__ import annotations

import os
from pathlib import Path

from app.core.ports import OutboundMessage, SendResult


def _line(message: OutboundMessage) -> bytes:
    return f"{message.shop_id}\t{message.key}\t{message.channel}\t{message.to}\n".encode()


class SinkChannel:
    def __init__(self, journal: str | os.PathLike[str], name: str = "email") -> None:
        self.path = Path(journal)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.name = name
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def send(self, message: OutboundMessage) -> SendResult:
        os.write(self._fd, _line(message))
        return SendResult.sent(message.key)

    def delivered(self, message: OutboundMessage) -> bool:
        wanted = f"{message.shop_id}\t{message.key}\t".encode()
        with self.path.open("rb") as f:
            return any(line.startswith(wanted) for line in f)

    def close(self) -> None:
        os.close(self._fd)


def journal(path: str | os.PathLike[str]) -> list[tuple[int, str]]:
    """(shop id, message key) for every line of a journal, in order."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        shop, key, *_ = line.split("\t")
        out.append((int(shop), key))
    return out
