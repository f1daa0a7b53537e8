"""The embedded default's outbox: email captured as .eml files, listed and read back as plain data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from app.channels.outbox import OutboxChannel, list_messages, outbox_id, read_message
from app.core.ports import OutboundMessage

MESSAGE = OutboundMessage(
    shop_id=1, key="order-5:thank-you", channel="email", to="jiwoo@customer.example", subject="감사합니다",
    html="<style>b { color: red; }</style><p>고맙습니다 <b>지우</b>님</p>", text="고맙습니다 지우님\n",
    sender_name="Busan Books", sender_address="hi@busan-books.example",
    unsubscribe_url="http://127.0.0.1:8000/u/1/abc", category="marketing",
)


def test_a_captured_message_can_be_listed_and_read(tmp_path: Path) -> None:
    channel = OutboxChannel(tmp_path / "outbox")
    result = channel.send(MESSAGE)
    assert (result.outcome, result.provider_id) == ("sent", outbox_id(MESSAGE))
    [entry] = list_messages(tmp_path / "outbox")
    assert (entry.id, entry.shop_id, entry.key, entry.category) == (result.provider_id, 1, MESSAGE.key, "marketing")
    assert (entry.to, entry.subject) == ("jiwoo@customer.example", "감사합니다")
    assert entry.sender == "Busan Books <hi@busan-books.example>"
    assert entry.date is not None and entry.size > 0
    message = read_message(tmp_path / "outbox", entry.id)
    assert message is not None
    assert message.text is not None and message.text.replace("\r\n", "\n") == MESSAGE.text
    assert message.html is not None and '<b style="color: red;">지우</b>' in message.html
    assert message.list_unsubscribe == "<http://127.0.0.1:8000/u/1/abc>"  # development allows http
    assert message.list_unsubscribe_post == "List-Unsubscribe=One-Click"
    assert ("Subject", "감사합니다") in message.headers
    assert message.raw.startswith(b"From: ")


def test_the_same_send_twice_is_captured_once(tmp_path: Path) -> None:
    channel = OutboxChannel(tmp_path)
    first, again = channel.send(MESSAGE), channel.send(replace(MESSAGE, subject="changed"))
    assert first.provider_id == again.provider_id
    assert [e.subject for e in list_messages(tmp_path)] == ["감사합니다"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{first.provider_id}.eml"]  # no temporary file left
    channel.send(replace(MESSAGE, key="order-5:review"))
    channel.send(replace(MESSAGE, shop_id=2))
    assert len(list_messages(tmp_path)) == 3
    assert [e.shop_id for e in list_messages(tmp_path, shop_id=2)] == [2]
    assert len(list_messages(tmp_path, limit=2)) == 2


def test_an_invalid_message_is_failed_not_captured(tmp_path: Path) -> None:
    result = OutboxChannel(tmp_path).send(replace(MESSAGE, unsubscribe_url=None))
    assert (result.outcome, result.reason) == ("failed", "config")
    assert list_messages(tmp_path) == []


def test_reading_only_ever_opens_outbox_files(tmp_path: Path) -> None:
    (tmp_path / "secret.eml").write_text("From: x\r\n\r\nsecret")
    outbox = tmp_path / "outbox"
    OutboxChannel(outbox).send(MESSAGE)
    assert read_message(outbox, "../secret") is None
    assert read_message(outbox, "0" * 32) is None
    assert read_message(outbox, "") is None
    assert list_messages(tmp_path / "missing") == []


def test_an_unwritable_outbox_is_a_retry(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = OutboxChannel(blocker / "outbox").send(MESSAGE)
    assert (result.outcome, result.reason) == ("retry", "unavailable")
