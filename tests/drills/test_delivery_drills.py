"""Fault drills for message delivery (issue 7): the dispatcher killed with SIGKILL again and again in the middle of
its batches, and the SMTP server refusing connections for minutes. Each drill counts from the journal, the SMTP
server's mailbox and the message rows what was due, sent once, duplicated, lost and recovered, reports it
(tests/drills/report.py), then asserts none lost and none duplicated.

- A channel that can confirm deliveries (the journal sink, like the embedded outbox) gets every due message
  exactly once, however often the dispatcher dies.
- SMTP cannot confirm: a message the dispatcher was handing over when it died is in doubt. It is parked for a
  person to decide (counted apart: neither lost nor duplicated); every other message arrives once.
- A refused SMTP connection is a certain failure (nothing was sent): the message is retried with growing
  backoff (driven by the dispatcher's clock, so minutes pass in steps) and sent once when the server is back.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from app import journeys as jr
from app.bootstrap import Container
from app.channels.email import EmailConfig, SmtpEmailChannel
from app.channels.sink import journal
from app.core import commands as cmd
from app.core.messagebus import handle
from app.core.model import Consent, CustomerRecord, OrderLine, OrderRecord, PaymentStatus
from app.db import models as t
from app.db.uow import SqlUnitOfWork
from app.dispatch import MAX_ATTEMPTS, Dispatcher
from tests.drills.report import report
from tests.drills.shoppers import Clock
from tests.helpers import add_shop
from tests.smtp import Handler, SmtpServer, free_port

ROOT = Path(__file__).resolve().parents[2]


class WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def seed(c: Container, count: int) -> int:
    """A shop with the thank-you journey on and `count` paid orders: `count` thank-yous due now."""
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


def rows(c: Container) -> list[Any]:
    with c.sessions() as s:
        return list(s.execute(select(t.Message.id, t.Message.shop_id, t.Message.key, t.Message.status, t.Message.reason,
                                     t.Message.provider_id, t.Message.attempts, t.Message.due_at, t.Message.error)
                              .order_by(t.Message.id)).all())


def held(c: Container) -> dict[int, str]:
    """The messages a dispatcher holds right now (claimed, or being handed to a channel that cannot confirm)."""
    with c.sessions() as s:
        return dict(s.execute(select(t.Message.id, t.Message.status).where(
            t.Message.status.in_(("claimed", "sending")))).all())


def digest(shop_id: int, key: str) -> str:
    """The Message-ID's digest the email channel gives a message (app.channels.email.message_id)."""
    return hashlib.sha256(f"{shop_id}:{key}".encode()).hexdigest()[:40]


# --- the dispatcher killed with SIGKILL ---------------------------------------------------------------------------


def start(c: Container, schema: str | None, channel: str, slow: float) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.dispatch_runner", c.settings.database_url, schema or "-",
                             channel, "--slow", str(slow)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def end(proc: subprocess.Popen[str], sig: int) -> None:
    proc.send_signal(sig)
    proc.wait(10)
    assert proc.stdout is not None
    proc.stdout.close()


def kill_drill(c: Container, schema: str | None, channel: str, *, kills: int, slow: float, aim: tuple[str, ...]
               ) -> tuple[int, dict[int, str]]:
    """Start a dispatcher and SIGKILL it mid-work, `kills` times, then let one finish. Kill i is aimed at a moment
    a message is `aim[i % len(aim)]` (claimed: a batch held; sending: a message being handed to SMTP), watched
    in the database, after a random short delay. Returns how many kills hit a dispatcher holding messages, and
    the messages the killed ones held (read right after each kill) with their status then."""
    rng = random.Random(7)
    hit, stranded = 0, {}
    for i in range(kills):
        proc = start(c, schema, channel, slow)
        time.sleep(rng.uniform(0.0, 0.3))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and aim[i % len(aim)] not in held(c).values():
            time.sleep(0.002)
        end(proc, signal.SIGKILL)
        caught = held(c)  # the dead process's rows: nobody else runs
        hit += bool(caught)
        stranded.update(caught)
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
    return hit, stranded


def test_dispatcher_killed_again_and_again_every_message_goes_exactly_once(
        container: Container, pg_schema: str | None, tmp_path: Path) -> None:
    count, kills = 240, 6
    seed(container, count)
    path = tmp_path / "journal.log"
    hit, stranded = kill_drill(container, pg_schema, f"sink:{path}", kills=kills, slow=0.01, aim=("claimed",))
    handed = Counter(key for _, key in journal(path))
    final = rows(container)
    sent = {r.key for r in final if r.status == "sent"}
    due = {r.key for r in final}
    by_id = {r.id: r for r in final}
    recovered = sum(by_id[i].status == "sent" for i in stranded)
    lost = len(due - (set(handed) & sent))
    duplicated = sum(n - 1 for n in handed.values())
    report("kill -9 dispatcher (journal sink)",
           f"{count} thank-yous due, dispatcher SIGKILLed {kills} times mid-batch ({hit} kills caught messages "
           "held), then restarted to finish", items=count, lost=lost, duplicated=duplicated, recovered=recovered,
           sent_once=sum(n == 1 for n in handed.values()), stranded_by_kills=len(stranded))
    assert hit >= 4  # the kills really landed while messages were held
    assert lost == 0 and duplicated == 0
    assert len(handed) == count and set(handed.values()) == {1}  # each message once, none lost, none twice
    assert statuses(container) == Counter({"sent": count})
    assert sent == set(handed)
    assert stranded and recovered == len(stranded)  # whatever the kills left was finished by a later one


def test_dispatcher_killed_over_smtp_never_twice_and_in_doubt_is_parked_not_lost(
        container: Container, pg_schema: str | None) -> None:
    count, kills = 160, 6
    shop_id = seed(container, count)
    with SmtpServer() as server:
        hit, stranded = kill_drill(container, pg_schema, f"smtp:{server.port}", kills=kills, slow=0.01,
                                  aim=("sending", "claimed"))
        received = Counter(str(r.message["Message-ID"]).strip("<>").split(".")[0] for r in server.received)
    final = rows(container)
    by_id = {r.id: r for r in final}
    in_doubt = [r for r in final if r.status == "parked"]
    arrived_once = {r.id for r in final if received[digest(shop_id, r.key)] == 1}
    sent = [r for r in final if r.status == "sent"]
    # Lost: neither recorded sent and in the mailbox, nor parked in doubt for a person to decide.
    lost = sum(not ((r.status == "sent" and r.id in arrived_once) or (r.status == "parked" and r.reason == "in doubt"))
               for r in final)
    duplicated = sum(n - 1 for n in received.values())
    recovered = sum(by_id[i].status == "sent" for i in stranded)
    report("kill -9 dispatcher (SMTP)",
           f"{count} thank-yous due over SMTP, dispatcher SIGKILLed {kills} times mid-batch ({hit} kills caught "
           "messages held), then restarted to finish", items=count, lost=lost, duplicated=duplicated,
           recovered=recovered, sent_once=sum(r.id in arrived_once for r in sent), parked_in_doubt=len(in_doubt),
           in_doubt_that_arrived=sum(received[digest(shop_id, r.key)] for r in in_doubt))
    assert hit >= 4
    assert lost == 0 and duplicated == 0  # never twice; every message sent or parked for a person
    assert len(sent) + len(in_doubt) == count
    assert all(r.reason == "in doubt" for r in in_doubt) and len(in_doubt) <= kills  # at most one per kill
    assert {r.provider_id for r in sent} <= {str(m.message["Message-ID"]) for m in server.received}
    # What a dead dispatcher had claimed went out later; what it was handing over is what sits in doubt.
    assert recovered == sum(status == "claimed" for status in stranded.values()) > 0
    assert {i for i, status in stranded.items() if status == "sending"} == {r.id for r in in_doubt}


def test_smtp_end_to_end_read_back(container: Container) -> None:
    """The dispatcher's email over SMTP to a real server, read back: headers, both parts, the order in it (what
    the SMTP drills rely on)."""
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


# --- the SMTP server refusing connections --------------------------------------------------------------------------


class OnOffSmtp:
    """A real SMTP server on one loopback port that can be stopped (connections refused) and started again."""

    def __init__(self) -> None:
        self.handler, self.port = Handler(), free_port()
        self.controller: Controller | None = None

    def up(self) -> None:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, decode_data=False)
        self.controller.start()

    def down(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


def test_smtp_refusing_connections_for_minutes_then_every_message_goes_once(container: Container) -> None:
    count, outage, step = 40, timedelta(minutes=5), 5.0
    shop_id = seed(container, count)
    clock = Clock(datetime.now(UTC))
    back_at = clock.now() + outage
    server = OnOffSmtp()  # down: nothing listens on its port, so every connection is refused
    channel = SmtpEmailChannel(EmailConfig(host="127.0.0.1", port=server.port, security="none",
                                           require_https_unsubscribe=False, timeout_s=5))
    dispatcher = Dispatcher(container, {"email": channel}, batch=100, now=clock.now)
    tries: dict[str, list[datetime]] = defaultdict(list)  # message key -> when each failed attempt was made
    seen_attempts: dict[str, int] = {}
    passes = 0
    try:
        while passes < 2000:
            passes += 1
            if server.controller is None and clock.now() >= back_at:
                server.up()
            dispatcher.run_once()
            for r in rows(container):
                if r.attempts != seen_attempts.get(r.key, 0):
                    tries[r.key].append(clock.now())
                    seen_attempts[r.key] = r.attempts
                    assert clock.now() < back_at and r.status == "pending" and "SMTP connection" in (r.error or "")
            now = statuses(container)
            if not (now["pending"] or now["claimed"] or now["sending"]):
                break
            clock.advance(step)
    finally:
        server.down()
    received = Counter(str(r.message["Message-ID"]).strip("<>").split(".")[0] for r in server.handler.received)
    final = rows(container)
    sent = [r for r in final if r.status == "sent"]
    lost = sum(not (r.status == "sent" and received[digest(shop_id, r.key)] >= 1) for r in final)
    duplicated = sum(n - 1 for n in received.values())
    recovered = sum(r.status == "sent" and r.attempts > 0 for r in final)
    gaps = [[(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)] for times in tries.values()]
    first_gaps = sorted(g[0] for g in gaps if g)
    last_gaps = sorted(g[-1] for g in gaps if g)
    report("SMTP server refusing connections",
           f"{count} thank-yous due while the SMTP port refused connections for {outage.seconds // 60} minutes of the "
           f"dispatcher's clock (advanced {step:g} s a pass), then the server came back", items=count, lost=lost,
           duplicated=duplicated, recovered=recovered, sent_once=sum(received[digest(shop_id, r.key)] == 1 for r in sent),
           refused_attempts=sum(r.attempts for r in final),
           attempts_per_message=f"{min(r.attempts for r in final)}-{max(r.attempts for r in final)}",
           first_backoff_s=f"{first_gaps[0]:g}-{first_gaps[-1]:g}", last_backoff_s=f"{last_gaps[0]:g}-{last_gaps[-1]:g}",
           minutes_to_drain=round((clock.now() - (back_at - outage)).total_seconds() / 60, 1))
    assert lost == 0 and duplicated == 0
    assert len(sent) == count and len(received) == count and set(received.values()) == {1}
    # Four refused tries each (30 s, 60 s, 120 s backoff, with jitter, all inside the 5 minutes), then sent; each
    # wait longer than the one before; none gave up (the sixth failure would park it).
    assert {r.attempts for r in final} == {4} and 4 < MAX_ATTEMPTS
    assert all(len(g) == 3 and g[0] < g[1] < g[2] for g in gaps) and len(gaps) == count
