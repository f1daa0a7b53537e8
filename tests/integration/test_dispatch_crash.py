"""Crash drills: a real dispatcher process is killed (SIGKILL) again and again in the middle of its batches,
restarted each time, and finally left to finish. Whatever the kills interrupted, every due message is handed
over exactly once (a channel that can confirm deliveries: the journal sink, like the embedded outbox), or at
most once with any message in doubt parked for a person to decide (SMTP, which cannot confirm)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app import journeys as jr
from app.bootstrap import Container
from app.channels.sink import journal
from app.core import commands as cmd
from app.core.messagebus import handle
from app.core.model import Consent, CustomerRecord, OrderLine, OrderRecord, PaymentStatus
from app.db import models as t
from app.db.uow import SqlUnitOfWork
from app.dispatch import Dispatcher
from tests.helpers import add_shop
from tests.smtp import SmtpServer

ROOT = Path(__file__).resolve().parents[2]


class WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def seed(c: Container, count: int) -> int:
    shop_id = add_shop(c)
    with c.sessions() as s, s.begin():
        shop = s.get(t.Shop, shop_id)
        assert shop is not None
        shop.name, shop.timezone = "Crash Test Coffee", "UTC"
        jr.install_defaults(s, shop_id, enabled=frozenset({"thank_you"}))
    now = datetime.now(UTC) - timedelta(seconds=5)
    for i in range(count):
        buyer = CustomerRecord(str(5000 + i), now, email=f"buyer{i}@example.com", first_name=f"B{i}",
                               consent=Consent(email_marketing=True))
        order = OrderRecord(str(9000 + i), now, now, "USD", Decimal("20.00"), Decimal("20.00"), name=f"#{9000 + i}",
                            customer_id=buyer.external_id, email=buyer.email, payment=PaymentStatus.PAID,
                            processed_at=now, lines=(OrderLine("1", "House blend", 1, Decimal("20.00"), product_id="p"),))
        handle(cmd.ObserveOrder(shop_id, order, buyer), SqlUnitOfWork(c.sessions), WallClock())
    return shop_id


def statuses(c: Container) -> Counter[str]:
    with c.sessions() as s:
        return Counter(dict(s.execute(select(t.Message.status, func.count()).group_by(t.Message.status)).all()))


def start(c: Container, schema: str | None, channel: str, slow: float) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.dispatch_runner", c.settings.database_url, schema or "-",
                             channel, "--slow", str(slow)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def drill(c: Container, schema: str | None, channel: str, *, kills: int, slow: float) -> int:
    """Kill the dispatcher `kills` times mid-work, then let one finish; returns how many kills hit work."""
    rng = random.Random(7)
    hit = 0
    for _ in range(kills):
        proc = start(c, schema, channel, slow)
        time.sleep(rng.uniform(0.15, 0.6))
        before = statuses(c)
        end(proc, signal.SIGKILL)
        hit += before["claimed"] + before["sending"] > 0
    proc = start(c, schema, channel, slow)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            now = statuses(c)
            if not (now["pending"] or now["claimed"] or now["sending"]):
                break
            time.sleep(0.2)
    finally:
        end(proc, signal.SIGTERM)
    return hit


def end(proc: subprocess.Popen[str], sig: int) -> None:
    proc.send_signal(sig)
    proc.wait(10)
    assert proc.stdout is not None
    proc.stdout.close()


@pytest.mark.parametrize("count", [300])
def test_killed_again_and_again_every_message_goes_exactly_once(container: Container, pg_schema: str | None,
                                                                tmp_path: Path, count: int) -> None:
    seed(container, count)
    path = tmp_path / "journal.log"
    hit = drill(container, pg_schema, f"sink:{path}", kills=8, slow=0.01)
    assert hit >= 4  # the kills really landed while messages were held
    handed = Counter(key for _, key in journal(path))
    assert len(handed) == count and set(handed.values()) == {1}  # each message once, none lost, none twice
    assert statuses(container) == Counter({"sent": count})
    with container.sessions() as s:
        sent = set(s.scalars(select(t.Message.key).where(t.Message.status == "sent")))
    assert sent == set(handed)


def test_smtp_never_twice_and_what_is_in_doubt_is_parked_not_lost(container: Container, pg_schema: str | None,
                                                                   tmp_path: Path) -> None:
    count = 200
    seed(container, count)
    with SmtpServer() as server:
        kills = 8
        drill(container, pg_schema, f"smtp:{server.port}", kills=kills, slow=0.01)
        received = Counter(str(r.message["Message-ID"]) for r in server.received)
    assert set(received.values()) <= {1}  # never twice
    with container.sessions() as s:
        rows: list[Any] = s.execute(select(t.Message.status, t.Message.reason, t.Message.provider_id)).all()
    final = Counter(status for status, _, _ in rows)
    in_doubt = [r for r in rows if r.status == "parked"]
    assert final["sent"] + final["parked"] == count  # nothing lost: every message sent or parked for a person
    assert all(r.reason == "in doubt" for r in in_doubt) and len(in_doubt) <= kills  # at most one per kill
    sent_ids = {r.provider_id for r in rows if r.status == "sent"}
    assert sent_ids <= set(received)  # what says sent really arrived
    assert len(received) >= final["sent"]  # an in-doubt one may have arrived, never one more than once


def test_smtp_end_to_end_read_back(container: Container, tmp_path: Path) -> None:
    """The dispatcher's email over SMTP to a real server, read back: headers, both parts, the order in it."""
    from app.channels.email import EmailConfig, SmtpEmailChannel

    seed(container, 1)
    with SmtpServer() as server:
        channel = SmtpEmailChannel(EmailConfig(host="127.0.0.1", port=server.port, security="none",
                                               require_https_unsubscribe=False))
        stats = Dispatcher(container, {"email": channel}).run_once()
        assert stats.sent == 1
        [got] = server.received
    mail = got.message
    assert got.rcpt_tos == ["buyer0@example.com"] and mail["To"] == "buyer0@example.com"
    assert "#9000" in str(mail["Subject"]) and "Crash Test Coffee" in str(mail["From"])
    html, text = mail.get_body(("html",)).get_content(), mail.get_body(("plain",)).get_content()
    assert "House blend" in html and "House blend" in text and "style=" in html  # CSS inlined
    with container.sessions() as s:
        assert s.scalar(select(t.Message.provider_id)) == mail["Message-ID"]
