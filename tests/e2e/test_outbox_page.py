"""The development outbox page: captured emails listed and readable, their HTML framed under a sandbox policy,
customer text escaped, and nothing of it outside development or when real SMTP is configured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app import create_app
from app.channels.outbox import OutboxChannel
from app.core.ports import OutboundMessage


def _capture(folder: Path, subject: str, html: str, text: str) -> str:
    result = OutboxChannel(folder).send(OutboundMessage(
        shop_id=1, key=f"k-{subject}", channel="email", to="mina@example.com", subject=subject, html=html, text=text,
        sender_name="Encore Demo Coffee", sender_address="hello@shop.example", category="transactional"))
    assert result.outcome == "sent" and result.provider_id
    return result.provider_id


@pytest.fixture
def outbox(tmp_path: Path, settings: Any, container: Any) -> tuple[Any, Path]:
    folder = tmp_path / "outbox"
    container.settings = settings.with_(outbox_dir=str(folder))
    return create_app(container.settings, container=container).test_client(), folder


def test_captured_emails_are_listed_and_read_with_their_html_sandboxed(outbox: tuple[Any, Path]) -> None:
    client, folder = outbox
    assert "Nothing captured yet." in client.get("/dev/outbox").get_data(as_text=True)
    ident = _capture(folder, "Your order <b>#1001</b> ships", '<p style="color:red">Thanks, Mina</p><script>alert(1)</script>',
                     "Thanks, Mina")
    listing = client.get("/dev/outbox").get_data(as_text=True)
    assert "Your order &lt;b&gt;#1001&lt;/b&gt; ships" in listing and "<b>#1001</b>" not in listing
    page = client.get(f"/dev/outbox/{ident}").get_data(as_text=True)
    assert "Thanks, Mina" in page and "hello@shop.example" in page
    assert f'<iframe class="mail" sandbox title="HTML part" src="/dev/outbox/{ident}/html">' in page
    framed = client.get(f"/dev/outbox/{ident}/html")
    assert framed.headers["Content-Security-Policy"].startswith("sandbox; default-src 'none'")
    assert "Thanks, Mina" in framed.get_data(as_text=True)
    raw = client.get(f"/dev/outbox/{ident}/raw")
    assert raw.mimetype == "message/rfc822" and b"Subject:" in raw.data
    for bad in ("nope", "../../etc/passwd", "0" * 32):
        assert client.get(f"/dev/outbox/{bad}").status_code == 404


def test_the_outbox_is_not_there_outside_development_or_with_smtp(outbox: tuple[Any, Path], container: Any) -> None:
    client, folder = outbox
    ident = _capture(folder, "Hello", "<p>Hi</p>", "Hi")
    container.settings = container.settings.with_(smtp_host="smtp.shop.example")
    assert client.get("/dev/outbox").status_code == 404 and client.get(f"/dev/outbox/{ident}").status_code == 404
    container.settings = container.settings.with_(smtp_host="", env="production")
    assert client.get("/dev/outbox").status_code == 404 and client.get(f"/dev/outbox/{ident}/html").status_code == 404


@pytest.mark.browser
def test_a_person_reads_a_captured_email_in_the_browser(live: Any, page: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    server, _, c = live
    folder = tmp_path / "browser-outbox"
    c.settings = c.settings.with_(outbox_dir=str(folder))
    _capture(folder, "Your order has shipped", '<p id="body">Tracking <a href="https://t.example/1Z">1Z</a></p>'
             '<script>document.body.innerHTML = "hacked"</script>', "Tracking 1Z")
    page.goto(f"{server.url}/dev/outbox")
    page.get_by_role("link", name="Your order has shipped").click()
    expect(page.locator("#subject")).to_have_text("Your order has shipped")
    expect(page.locator("#text")).to_have_text("Tracking 1Z")
    mail = page.frame_locator("iframe.mail")
    expect(mail.locator("#body")).to_have_text("Tracking 1Z")  # the HTML shows, and its script never ran
