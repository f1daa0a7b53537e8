"""The embedded default's email channel: every message is captured as a .eml file under a directory
(instance/outbox/ by default) instead of being sent, so a person can read what customers would get.

The file is exactly the MIME that SMTP would carry (`build_email`), plus X-Encore-* headers naming the shop, the
idempotency key and the category. Its name is derived from the shop and the key, so sending the same message
twice (a re-send after a crash) captures it once. `list_messages` and `read_message` give plain data for a page.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

import structlog

from app.channels.email import InvalidMessage, build_email
from app.core.ports import OutboundMessage, SendResult

log = structlog.get_logger(__name__)

_ID = re.compile(r"^[0-9a-f]{32}$")


def outbox_id(message: OutboundMessage) -> str:
    return hashlib.sha256(f"{message.shop_id}:{message.key}".encode()).hexdigest()[:32]


class OutboxChannel:
    """Captures email to `directory` as .eml files; never sends anything."""

    name = "email"

    def __init__(self, directory: str | os.PathLike[str], *, require_https_unsubscribe: bool = False) -> None:
        self.directory = Path(directory)
        self.require_https_unsubscribe = require_https_unsubscribe

    def delivered(self, message: OutboundMessage) -> bool:
        """Whether this message (by shop and key) was captured: the dispatcher asks after a crash."""
        return (self.directory / f"{outbox_id(message)}.eml").exists()

    def send(self, message: OutboundMessage) -> SendResult:
        ident = outbox_id(message)
        path = self.directory / f"{ident}.eml"
        if path.exists():  # the same send again: already captured
            return SendResult.sent(ident)
        try:
            mail = build_email(message, require_https_unsubscribe=self.require_https_unsubscribe, extra_headers={
                "X-Encore-Shop-Id": str(message.shop_id), "X-Encore-Key": message.key,
                "X-Encore-Category": message.category,
            })
        except InvalidMessage as exc:
            return SendResult.failed(str(exc), reason=exc.reason)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(mail.as_bytes())
                os.replace(tmp, path)  # whole files only, for a reader listing the directory
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            return SendResult.retry(f"outbox not writable: {exc}", reason="unavailable")
        log.info("email.captured", shop_id=message.shop_id, idempotency=message.key, outbox_id=ident)
        return SendResult.sent(ident)


@dataclass(frozen=True)
class OutboxEntry:
    id: str
    shop_id: int | None
    key: str
    category: str
    sender: str  # the From header as a person reads it: "Shop name <hello@shop.example>"
    to: str
    subject: str
    date: datetime | None
    size: int


@dataclass(frozen=True)
class OutboxMessage:
    entry: OutboxEntry
    text: str | None
    html: str | None
    headers: list[tuple[str, str]]  # every header, decoded, in order
    list_unsubscribe: str | None
    list_unsubscribe_post: str | None
    raw: bytes


def _parse(path: Path) -> tuple[EmailMessage, OutboxEntry, bytes]:
    raw = path.read_bytes()
    mail = message_from_bytes(raw, policy=policy.default)
    try:
        date = parsedate_to_datetime(str(mail["Date"])) if mail["Date"] else None
    except (TypeError, ValueError):
        date = None
    shop = str(mail.get("X-Encore-Shop-Id", ""))
    entry = OutboxEntry(
        id=path.stem, shop_id=int(shop) if shop.isdigit() else None, key=str(mail.get("X-Encore-Key", "")),
        category=str(mail.get("X-Encore-Category", "")), sender=str(mail.get("From", "")),
        to=str(mail.get("To", "")), subject=str(mail.get("Subject", "")), date=date, size=len(raw),
    )
    return mail, entry, raw


def list_messages(directory: str | os.PathLike[str], *, shop_id: int | None = None, limit: int = 100
                  ) -> list[OutboxEntry]:
    """The most recently captured messages, newest first (optionally one shop's only); only as many files are
    parsed as it takes to find `limit` of them."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    found: list[tuple[float, Path]] = []
    for path in folder.glob("*.eml"):
        try:
            if _ID.match(path.stem):
                found.append((path.stat().st_mtime, path))
        except OSError:  # removed while listing
            continue
    entries: list[OutboxEntry] = []
    for _, path in sorted(found, reverse=True):
        if len(entries) >= limit:
            break
        try:
            _, entry, _ = _parse(path)
        except OSError:
            continue
        if shop_id is None or entry.shop_id == shop_id:
            entries.append(entry)
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(entries, key=lambda e: (e.date or oldest, e.id), reverse=True)


def _body(mail: EmailMessage, subtype: str) -> str | None:
    part = mail.get_body(preferencelist=(subtype,))
    if not isinstance(part, EmailMessage) or part.get_content_subtype() != subtype:
        return None
    content = part.get_content()
    return content if isinstance(content, str) else None


def read_message(directory: str | os.PathLike[str], message_id: str) -> OutboxMessage | None:
    """One captured message by its id (as listed); None for an unknown or malformed id."""
    if not _ID.match(message_id or ""):
        return None
    path = Path(directory) / f"{message_id}.eml"
    try:
        mail, entry, raw = _parse(path)
    except FileNotFoundError:
        return None
    unsubscribe, post = mail.get("List-Unsubscribe"), mail.get("List-Unsubscribe-Post")
    return OutboxMessage(
        entry=entry, text=_body(mail, "plain"), html=_body(mail, "html"),
        headers=[(name, str(value)) for name, value in mail.items()],
        list_unsubscribe=str(unsubscribe) if unsubscribe is not None else None,
        list_unsubscribe_post=str(post) if post is not None else None, raw=raw,
    )
