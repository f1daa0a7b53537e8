"""The SMTP email channel against a real SMTP server on loopback (aiosmtpd): what arrives, and how each kind of
answer is classified for the dispatcher."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from app.channels.email import EmailConfig, SmtpEmailChannel, message_id
from app.core.ports import OutboundMessage
from tests.smtp import SmtpServer, closed_port, self_signed

MESSAGE = OutboundMessage(
    shop_id=3, key="order-77:shipped", channel="email", to="haruto@customer.example",
    subject="商品を発送しました — 배송이 시작되었습니다",
    html="<html><head><style>.note { color: #333333; }</style></head><body><p class=\"note\">発送しました</p></body></html>",
    text="発送しました\n", sender_name="Kyoto Tea 京都茶舗", sender_address="hello@kyoto-tea.example",
    unsubscribe_url="https://encore.example/u/3/xyz", category="marketing",
)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def plain(server: SmtpServer, **changes: object) -> SmtpEmailChannel:
    config = EmailConfig(host="127.0.0.1", port=server.port, security="none", timeout_s=5)
    return SmtpEmailChannel(replace(config, **changes))  # type: ignore[arg-type]


def trusting(cert: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False  # the server is reached as 127.0.0.1; the certificate names localhost
    return context


def test_a_marketing_email_arrives_whole(smtp: SmtpServer) -> None:
    result = plain(smtp, bounce_address="bounces@encore.example").send(MESSAGE)
    assert (result.outcome, result.provider_id) == ("sent", message_id(MESSAGE))
    [received] = smtp.received
    assert received.mail_from == "bounces@encore.example" and received.rcpt_tos == ["haruto@customer.example"]
    mail = received.message
    assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]
    html = mail.get_body(preferencelist=("html",))
    assert html is not None
    assert '<p class="note" style="color: #333333;">発送しました</p>' in html.get_content()
    assert mail["Subject"] == MESSAGE.subject
    assert mail["List-Unsubscribe"] == "<https://encore.example/u/3/xyz>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert str(mail["From"]) == "Kyoto Tea 京都茶舗 <hello@kyoto-tea.example>"
    assert mail["Message-ID"] == result.provider_id


def test_a_transactional_email_has_no_unsubscribe_headers_and_the_envelope_sender_defaults_to_from(
        smtp: SmtpServer) -> None:
    assert plain(smtp).send(replace(MESSAGE, category="transactional", unsubscribe_url=None)).outcome == "sent"
    [received] = smtp.received
    assert received.mail_from == "hello@kyoto-tea.example"
    assert "List-Unsubscribe" not in received.message and "List-Unsubscribe-Post" not in received.message


@pytest.mark.parametrize("rcpt, data, outcome, code", [
    ("550 5.1.1 No such user here", None, "failed", "550"),
    ("553 5.1.3 Bad recipient address syntax", None, "failed", "553"),
    ("450 4.2.1 Mailbox busy, try later", None, "retry", "450"),
    ("451 4.7.1 Greylisted, come back later", None, "retry", "451"),
    (None, "452 4.3.1 Insufficient system storage", "retry", "452"),
    (None, "554 5.7.1 Message rejected as spam", "failed", "554"),
])
def test_smtp_answers_are_classified_4xx_retry_5xx_failed(smtp: SmtpServer, rcpt: str | None, data: str | None,
                                                          outcome: str, code: str) -> None:
    smtp.handler.rcpt_reply, smtp.handler.data_reply = rcpt, data
    result = plain(smtp).send(MESSAGE)
    assert (result.outcome, result.code) == (outcome, code)
    assert result.error and code in result.error
    if rcpt and outcome == "failed":
        assert result.reason == "invalid_recipient"
    assert smtp.received == []


def test_a_refused_connection_is_retried() -> None:
    result = SmtpEmailChannel(EmailConfig(host="127.0.0.1", port=closed_port(), security="none", timeout_s=5)).send(
        MESSAGE)
    assert (result.outcome, result.reason) == ("retry", "unavailable")
    assert result.error and "ConnectionRefused" in result.error


def test_an_invalid_message_never_reaches_the_server(smtp: SmtpServer) -> None:
    result = plain(smtp).send(replace(MESSAGE, unsubscribe_url=None))
    assert (result.outcome, result.reason) == ("failed", "config")
    result = plain(smtp).send(replace(MESSAGE, to="nobody"))
    assert (result.outcome, result.reason) == ("failed", "invalid_recipient")
    assert smtp.received == []


def test_starttls_with_auth(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with SmtpServer(tls=(cert, key), credentials=("encore", "s3cret")) as server:
        config = EmailConfig(host="127.0.0.1", port=server.port, security="starttls", username="encore",
                             password="s3cret", timeout_s=5)
        assert SmtpEmailChannel(config, tls_context=trusting(cert)).send(MESSAGE).outcome == "sent"
        wrong = SmtpEmailChannel(replace(config, password="nope"), tls_context=trusting(cert)).send(MESSAGE)
        assert (wrong.outcome, wrong.code, wrong.reason) == ("failed", "535", "auth")
        without_tls = SmtpEmailChannel(replace(config, security="none")).send(MESSAGE)
        assert (without_tls.outcome, without_tls.reason) == ("failed", "config")  # AUTH is offered after STARTTLS only
        assert len(server.received) == 1
        assert "password" not in repr(config) and "s3cret" not in repr(config)


def test_implicit_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with SmtpServer(tls=(cert, key), implicit_tls=True) as server:
        config = EmailConfig(host="127.0.0.1", port=server.port, security="ssl", timeout_s=5)
        assert SmtpEmailChannel(config, tls_context=trusting(cert)).send(MESSAGE).outcome == "sent"
        untrusted = SmtpEmailChannel(config).send(MESSAGE)  # the system CAs do not know this certificate
        assert (untrusted.outcome, untrusted.reason) == ("failed", "config")
        assert len(server.received) == 1
