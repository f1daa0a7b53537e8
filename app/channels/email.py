"""Email over SMTP: one message per connection, with timeouts, STARTTLS, implicit TLS or plain, optional auth.

`build_email` makes the MIME with the standard library's `email` package: multipart/alternative with a text/plain
and a text/html part (UTF-8, base64 or quoted-printable as the package judges best, so Korean and Japanese
bodies survive 7-bit relays), the subject and the display name encoded per RFC 2047, From with the shop's own
display name and address, a Message-ID derived from the idempotency key (the same send always has the same
Message-ID, so a re-send after a crash is recognizable downstream), and on marketing mail the one-click
unsubscribe pair of RFC 8058:

    List-Unsubscribe: <https://...>
    List-Unsubscribe-Post: List-Unsubscribe=One-Click

RFC 8058 also requires a DKIM signature covering both headers: that is the sending MTA's job (sign with the
shop's or Encore's domain there). The HTML's <style> rules are inlined into style="" attributes with
`css-inline` (many mail clients drop <style>); @media rules are kept in a <style> for the clients that honour
them, and no stylesheet is ever fetched from anywhere.

SMTP answers are classified for the dispatcher: 4xx (and a refused, reset or timed-out connection) is "retry",
5xx is "failed". A timeout after the message data was sent is ambiguous; it is retried (at least once), and the
stable Message-ID lets the receiving side fold a duplicate.
"""

from __future__ import annotations

import hashlib
import re
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime
from html.parser import HTMLParser
from typing import Literal
from urllib.parse import urlsplit

import css_inline
import structlog

from app.core.ports import OutboundMessage, SendResult

log = structlog.get_logger(__name__)

Security = Literal["starttls", "ssl", "none"]
ONE_CLICK = "List-Unsubscribe=One-Click"
# Headers written exactly as given: the email package would otherwise fold a long URL into RFC 2047
# encoded-words, which no mail client reads as a List-Unsubscribe URL.
_VERBATIM = frozenset({"list-unsubscribe", "list-unsubscribe-post", "message-id"})
_MAX_LINE = 998  # RFC 5322 2.1.1


class _Policy(EmailPolicy):
    def fold(self, name: str, value: str) -> str:
        if name.lower() in _VERBATIM:
            return f"{name}: {value}{self.linesep}"
        folded: str = super().fold(name, value)
        return folded

    def fold_binary(self, name: str, value: str) -> bytes:
        if name.lower() in _VERBATIM:
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


POLICY = _Policy(linesep="\r\n", cte_type="7bit")  # email.policy.SMTP, 7-bit bodies, verbatim headers kept


class InvalidMessage(ValueError):
    """The message cannot be sent as it is (a bad address, a missing unsubscribe URL...): retrying won't help."""

    def __init__(self, message: str, reason: str = "rejected") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class EmailConfig:
    host: str
    port: int = 587
    security: Security = "starttls"
    username: str = ""
    password: str = ""
    timeout_s: float = 15.0
    bounce_address: str = ""  # envelope sender (Return-Path); empty = the From address
    require_https_unsubscribe: bool = True

    def __repr__(self) -> str:  # never show the password
        return f"EmailConfig(host={self.host!r}, port={self.port}, security={self.security!r})"


_CSS = css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True, keep_link_tags=False)


def inline_css(html: str) -> str:
    """Move <style> rules into style="" attributes; keep @media rules; never load a linked stylesheet."""
    return _CSS.inline(html)


class _Text(HTMLParser):
    _BLOCK = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "section"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "head", "title"):
            self._skip += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")
        elif tag == "a":
            self._href = dict(attrs).get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "head", "title"):
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")
        elif tag == "a" and self._href:
            self.parts.append(f" ({self._href})")
            self._href = None

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """A plain-text rendering of an HTML body, for a message that came without one."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    lines = (re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in "".join(parser.parts).split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def _address(value: str, what: str, display_name: str = "", reason: str = "config") -> Address:
    value = (value or "").strip()
    local, at, domain = value.rpartition("@")
    if not at or not local or "." not in domain or not value.isascii() or re.search(r"[\s<>,;\"]", value):
        raise InvalidMessage(f"{what} is not a valid email address: {value!r}", reason)
    try:
        return Address(display_name=display_name.strip(), addr_spec=value)
    except (ValueError, IndexError) as exc:
        raise InvalidMessage(f"{what} is not a valid email address: {value!r}", reason) from exc


def message_id(message: OutboundMessage) -> str:
    """<digest@sender-domain>, the same for every send of the same shop and idempotency key."""
    digest = hashlib.sha256(f"{message.shop_id}:{message.key}".encode()).hexdigest()[:40]
    domain = message.sender_address.rpartition("@")[2].strip().lower() or "encore.invalid"
    return f"<{digest}.{message.shop_id}@{domain}>"


def _unsubscribe_header(url: str, require_https: bool) -> str:
    parts = urlsplit(url)
    allowed = ("https",) if require_https else ("https", "http")
    if parts.scheme not in allowed or not parts.hostname:
        raise InvalidMessage(f"the unsubscribe URL must be an https URL (RFC 8058), not {url!r}", "config")
    if not url.isascii() or re.search(r"[\s<>\"]", url) or len(url) > _MAX_LINE - 40:
        raise InvalidMessage("the unsubscribe URL must be ASCII (percent-encoded), without spaces or <>", "config")
    return f"<{url}>"


def build_email(message: OutboundMessage, *, require_https_unsubscribe: bool = True,
                now: datetime | None = None, extra_headers: Mapping[str, str] | None = None) -> EmailMessage:
    """The MIME message for `message`; InvalidMessage when it cannot be sent as it is."""
    if message.channel != "email":
        raise InvalidMessage(f"not an email message: channel {message.channel!r}", "config")
    if not message.html and not message.text:
        raise InvalidMessage("the message has neither an HTML nor a text body", "config")
    mail = EmailMessage(policy=POLICY)
    try:
        mail["From"] = _address(message.sender_address, "the sender", message.sender_name)
        mail["To"] = _address(message.to, "the recipient", reason="invalid_recipient")
        if message.reply_to:
            mail["Reply-To"] = _address(message.reply_to, "the reply-to address")
        mail["Subject"] = message.subject
        mail["Date"] = format_datetime(now or datetime.now(UTC))
        mail["Message-ID"] = message_id(message)
        if message.category == "marketing":
            if not message.unsubscribe_url:
                raise InvalidMessage("marketing email needs a one-click unsubscribe URL (RFC 8058)", "config")
            mail["List-Unsubscribe"] = _unsubscribe_header(message.unsubscribe_url, require_https_unsubscribe)
            mail["List-Unsubscribe-Post"] = ONE_CLICK
        for name, value in (extra_headers or {}).items():
            mail[name] = value
        text = message.text or html_to_text(message.html)
        mail.set_content(text if text.endswith("\n") else text + "\n", subtype="plain", charset="utf-8")
        if message.html:
            mail.add_alternative(inline_css(message.html), subtype="html", charset="utf-8")
    except ValueError as exc:  # the email package refuses CR/LF in a header, among others
        if isinstance(exc, InvalidMessage):
            raise
        raise InvalidMessage(f"the message cannot be encoded: {exc}", "rejected") from exc
    return mail


def classify_smtp_error(exc: BaseException) -> SendResult:
    """4xx and network trouble: retry. 5xx: failed. Errors never carry the password or the body."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, reply = next(iter(exc.recipients.values()), (550, b"recipient refused"))
        return _by_code(int(code), reply, "recipient refused", refused_reason="invalid_recipient")
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return _by_code(exc.smtp_code, exc.smtp_error, "authentication", refused_reason="auth")
    if isinstance(exc, smtplib.SMTPResponseException):  # sender refused, data refused, HELO refused...
        return _by_code(exc.smtp_code, exc.smtp_error, type(exc).__name__)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return SendResult.failed(f"the SMTP server does not support it: {exc}", reason="config")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return SendResult.failed(f"the SMTP server's certificate is not trusted: {exc.verify_message}",
                                 reason="config")
    if isinstance(exc, smtplib.SMTPServerDisconnected | smtplib.SMTPConnectError | ssl.SSLError | OSError):
        # refused, reset, timed out (socket.timeout is an OSError), DNS failure, TLS broken mid-way
        return SendResult.retry(f"SMTP connection: {type(exc).__name__}: {exc}", reason="unavailable")
    return SendResult.retry(f"SMTP: {type(exc).__name__}: {exc}", reason="unknown")


def _by_code(code: int, reply: bytes | str, what: str, refused_reason: str = "rejected") -> SendResult:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    error = f"SMTP {code} ({what}): {text}"[:500]
    if 400 <= code < 500:
        return SendResult.retry(error, code=str(code), reason="unavailable")
    if 500 <= code < 600:
        return SendResult.failed(error, code=str(code), reason=refused_reason)
    return SendResult.retry(error, code=str(code), reason="unknown")


class SmtpEmailChannel:
    """The email channel over SMTP."""

    name = "email"

    def __init__(self, config: EmailConfig, *, tls_context: ssl.SSLContext | None = None) -> None:
        """`tls_context` defaults to the system's trusted CAs with hostname checks; pass one to trust a private CA."""
        if config.security not in ("starttls", "ssl", "none"):
            raise ValueError(f"unknown SMTP security {config.security!r}")
        self.config = config
        self._tls = tls_context or ssl.create_default_context()

    def _connect(self) -> smtplib.SMTP:
        c = self.config
        if c.security == "ssl":
            return smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout_s, context=self._tls)
        smtp = smtplib.SMTP(c.host, c.port, timeout=c.timeout_s)
        try:
            if c.security == "starttls":
                smtp.ehlo()
                smtp.starttls(context=self._tls)
                smtp.ehlo()
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, message: OutboundMessage) -> SendResult:
        try:
            mail = build_email(message, require_https_unsubscribe=self.config.require_https_unsubscribe)
        except InvalidMessage as exc:
            return SendResult.failed(str(exc), reason=exc.reason)
        envelope_from = self.config.bounce_address or message.sender_address
        try:
            smtp = self._connect()
            try:
                if self.config.username:
                    smtp.login(self.config.username, self.config.password)
                smtp.send_message(mail, from_addr=envelope_from, to_addrs=[message.to.strip()])
            finally:
                try:
                    smtp.quit()
                except (smtplib.SMTPException, OSError):
                    smtp.close()
        except (smtplib.SMTPException, OSError) as exc:
            result = classify_smtp_error(exc)
            log.info("email.not_sent", shop_id=message.shop_id, idempotency=message.key, outcome=result.outcome,
                     code=result.code, reason=result.reason)
            return result
        log.info("email.sent", shop_id=message.shop_id, idempotency=message.key)
        return SendResult.sent(mail["Message-ID"])
