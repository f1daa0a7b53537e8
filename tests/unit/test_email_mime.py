"""The email channel's MIME, built and parsed back with the standard library (no server): parts, inlined CSS,
RFC 8058 headers, From, Message-ID, and Korean/Japanese text."""

from __future__ import annotations

from dataclasses import replace
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from app.channels.email import InvalidMessage, build_email, html_to_text, inline_css
from app.core.ports import OutboundMessage

HTML = """<html><head><style>
  .cta { color: #ffffff; background-color: #d6336c; }
  p { margin: 0 0 12px 0; }
  @media (max-width: 600px) { .cta { display: block; } }
</style></head>
<body><p>고객님, 주문해 주셔서 감사합니다.</p><a class="cta" href="https://shop.example/review">리뷰 쓰기</a></body></html>"""

BASE = OutboundMessage(
    shop_id=7, key="order-1001:thank-you", channel="email", to="minji@customer.example",
    subject="주문해 주셔서 감사합니다", html=HTML, text="고객님, 주문해 주셔서 감사합니다.\n",
    sender_name="서울 커피", sender_address="hello@seoul-coffee.example", reply_to="care@seoul-coffee.example",
    unsubscribe_url="https://encore.example/u/7/abc123", category="marketing",
)


def content(part: object) -> str:
    """A text part's content, with the canonical CRLF line ends of MIME text (RFC 2046 4.1.1) read as \\n."""
    assert isinstance(part, EmailMessage)
    text = part.get_content()
    assert isinstance(text, str)
    return text.replace("\r\n", "\n")


def roundtrip(message: OutboundMessage, **kwargs: bool) -> EmailMessage:
    raw = build_email(message, **kwargs).as_bytes()
    assert raw.isascii(), "the wire form is 7-bit: everything non-ASCII is encoded"
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    return message_from_bytes(raw, policy=policy.default)


def test_multipart_alternative_with_text_then_html() -> None:
    mail = roundtrip(BASE)
    assert mail.get_content_type() == "multipart/alternative"
    parts = list(mail.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]  # the preferred one last
    assert content(parts[0]) == BASE.text
    assert all(p.get_content_charset() == "utf-8" for p in parts)


def test_style_rules_are_inlined_and_media_queries_kept() -> None:
    html = content(roundtrip(BASE).get_body(preferencelist=("html",)))
    assert 'style="color: #ffffff;background-color: #d6336c;"' in html
    assert '<p style="margin: 0 0 12px 0;">' in html
    assert ".cta { color" not in html and "p { margin" not in html  # the rules themselves left <style>
    assert "@media (max-width: 600px)" in html  # clients that honour @media still get it


def test_marketing_mail_has_the_rfc_8058_pair_exactly() -> None:
    mail = roundtrip(BASE)
    assert mail["List-Unsubscribe"] == "<https://encore.example/u/7/abc123>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert len(mail.get_all("List-Unsubscribe") or []) == 1


def test_transactional_mail_has_no_unsubscribe_headers() -> None:
    mail = roundtrip(replace(BASE, category="transactional"))
    assert "List-Unsubscribe" not in mail and "List-Unsubscribe-Post" not in mail


def test_a_long_unsubscribe_url_stays_one_readable_header() -> None:
    url = "https://encore.example/unsubscribe/" + "a" * 180 + "?token=" + "b" * 60
    raw = build_email(replace(BASE, unsubscribe_url=url)).as_bytes()
    assert f"\r\nList-Unsubscribe: <{url}>\r\n".encode() in raw  # not folded into RFC 2047 encoded-words
    assert message_from_bytes(raw, policy=policy.default)["List-Unsubscribe"] == f"<{url}>"


@pytest.mark.parametrize("url", [None, "", "http://encore.example/u/1", "mailto:unsub@encore.example",
                                 "https://encore.example/u/1 x", "https://encore.example/ü"])
def test_marketing_mail_without_a_usable_https_unsubscribe_url_is_refused(url: str | None) -> None:
    with pytest.raises(InvalidMessage) as refused:
        build_email(replace(BASE, unsubscribe_url=url))
    assert refused.value.reason == "config"


def test_plain_http_unsubscribe_is_allowed_only_when_asked_for_development() -> None:
    mail = roundtrip(replace(BASE, unsubscribe_url="http://127.0.0.1:8000/u/1"), require_https_unsubscribe=False)
    assert mail["List-Unsubscribe"] == "<http://127.0.0.1:8000/u/1>"


def test_from_carries_the_shops_display_name_and_address() -> None:
    mail = roundtrip(BASE)
    [sender] = mail["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("서울 커피", "hello@seoul-coffee.example")
    assert mail["Reply-To"].addresses[0].addr_spec == "care@seoul-coffee.example"
    assert mail["To"].addresses[0].addr_spec == "minji@customer.example"
    quoted = roundtrip(replace(BASE, sender_name='Tea, "Leaf" & Co.'))
    assert quoted["From"].addresses[0].display_name == 'Tea, "Leaf" & Co.'


@pytest.mark.parametrize("subject, body", [
    ("주문해 주셔서 감사합니다 — 리뷰를 남겨 주세요", "배송이 시작되었습니다. 곧 받아 보실 수 있어요!\n"),
    ("ご注文ありがとうございます。商品を発送しました【重要】", "お届けまで今しばらくお待ちください。\n"),
    ("Merci pour votre commande n° 1001 — à bientôt, with a subject long enough to be folded over lines", "é\n"),
])
def test_korean_and_japanese_subjects_and_bodies_round_trip(subject: str, body: str) -> None:
    mail = roundtrip(replace(BASE, subject=subject, text=body, html=f"<p>{body.strip()}</p>"))
    assert mail["Subject"] == subject
    assert content(mail.get_body(preferencelist=("plain",))) == body
    assert body.strip() in content(mail.get_body(preferencelist=("html",)))


def test_message_id_comes_from_the_idempotency_key() -> None:
    first, again = roundtrip(BASE)["Message-ID"], roundtrip(BASE)["Message-ID"]
    assert first == again
    assert first.endswith("@seoul-coffee.example>")
    assert roundtrip(replace(BASE, key="order-1001:review"))["Message-ID"] != first
    assert roundtrip(replace(BASE, shop_id=8))["Message-ID"] != first


def test_a_missing_text_part_is_derived_from_the_html() -> None:
    mail = roundtrip(replace(BASE, text=""))
    text = content(mail.get_body(preferencelist=("plain",)))
    assert "주문해 주셔서 감사합니다" in text and "리뷰 쓰기 (https://shop.example/review)" in text
    assert ".cta" not in text and "<" not in text


def test_html_to_text_keeps_blocks_apart() -> None:
    assert html_to_text("<h1>Hi</h1><p>one</p><p>two &amp; three</p><script>x()</script>") == "Hi\n\none\n\ntwo & three\n"


def test_inline_css_never_fetches_a_linked_stylesheet() -> None:
    out = inline_css('<html><head><link rel="stylesheet" href="http://127.0.0.1:9/x.css"></head><body><p>x</p></body></html>')
    assert "<link" not in out and "<p>x</p>" in out


@pytest.mark.parametrize("changes, reason", [
    ({"to": "not-an-address"}, "invalid_recipient"),
    ({"to": "a@b"}, "invalid_recipient"),
    ({"to": "명@customer.example"}, "invalid_recipient"),
    ({"to": "a@b.example, c@d.example"}, "invalid_recipient"),
    ({"sender_address": ""}, "config"),
    ({"html": "", "text": ""}, "config"),
    ({"channel": "sms"}, "config"),
    ({"subject": "Hi\r\nBcc: victim@example.org"}, "rejected"),
])
def test_messages_that_cannot_be_sent_are_refused_with_a_reason(changes: dict[str, str], reason: str) -> None:
    with pytest.raises(InvalidMessage) as refused:
        build_email(replace(BASE, **changes))  # type: ignore[arg-type]
    assert refused.value.reason == reason
