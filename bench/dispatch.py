"""Journeys dispatcher benchmark: with 1,000,000 scheduled messages pending, how many due messages a second the
dispatcher claims, checks, renders and hands to a sink channel, and how late messages fire at a steady 200 due
a second. Measured on PostgreSQL, in a fresh schema of its own that is dropped at the end.

    .venv/bin/python bench/dispatch.py [--pending 1000000] [--due 20000] [--rate 200] [--seconds 60] [--quick]

Setup: one installed shop (Bench Coffee, USD, New York) with the library's journeys installed and the
thank_you journey on, in its default copy (transactional); English, Korean and Japanese customers mixed (their
own locale and timezone), each with 1-4 orders of 1-4 lines, a third of the orders shipped with tracking. The
pending messages are one enrollment each: most of them are later steps of the shop's other journeys (delivered,
survey, review_request, win_back, replenishment, anniversary, also switched on), due twelve hours to eight
weeks ahead; the due ones are thank-yous for the newest orders, due within the last two minutes. Every figure is
taken with `--pending` messages pending, of which the measured `--due` share is due now (a fresh share for
each run, so each run starts from the same state: earlier runs' rows are sent, and VACUUM ANALYZE runs first,
as autovacuum would).

Measurements, each printed:

1. Throughput, end to end: `Dispatcher(c, {"email": SinkChannel(journal)}, platform_for=None, batch=200)` and
   `run_once()` in a loop until nothing is due, in 1 process and in 2 processes side by side (SKIP LOCKED lets
   them share the work; this machine has 2 cores). messages/s = messages sent / wall time from the start signal
   to the last process done. A run that is not done after `--max-seconds` stops claiming (the batches in hand
   are finished) and counts what it sent; what it did not reach is then cancelled, out of the next run's way.
   Afterwards the journal and the table must agree that every message marked sent was handed over exactly
   once, every due one was (unless the run was stopped), the rest is untouched, and no future message was.
2. References in the same run, through the same claim and the same batch recording:
   - no render: the dispatcher with context building and rendering replaced by nothing (its reads, checks and
     recording stay; each message goes to the sink with its address and no body): Encore / this is the ratio;
   - bare: claim, hand over, record, nothing else: the floor of the claim/record machinery.
   Each run also reports CPU per message, the dispatchers' own and PostgreSQL's (its backends), how busy the
   machine was, and how much of that nobody accounts for: other processes (other people's tests skew the
   figures; the line says so) and PostgreSQL's parallel query workers, which live for one query each.
3. Where the time goes: `run_once` under cProfile on a small due share, one process, split into claim, reads,
   checks, context, recommendations, rendering, link tracking, hand-over and recording.
4. Lateness at `--rate` due a second: messages due at steady 1/rate intervals for `--seconds`, inserted ahead of
   time, while the dispatcher's real polling `loop` (the wall clock, the default poll; `--loop-processes` of
   them) runs. Lateness = sent_at - first_due_at as recorded (a sent row's due_at is cleared; sent_at is the
   batch's clock reading, taken before its claim), and also as the sink saw it (when the channel got the
   message): p50, p95, p99 and max. A message not sent `--grace` seconds after the last one was due counts as
   unsent (an infinite lateness).

Setting up writes about 3.5 million rows with COPY, foreign keys and indexes dropped meanwhile and made again
afterwards (a minute or two here). It prints figures and PASS/MISS against the targets (>= 1,000 msg/s end to
end; p99 lateness < 5 s); it never fails on timings, only when a check of what was sent fails. Results go to
bench/results/dispatch.json.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import json
import math
import multiprocessing as mp
import os
import platform
import pstats
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import psycopg  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402
from sqlalchemy import select, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from app import journeys as jr  # noqa: E402
from app import rendering  # noqa: E402
from app.bootstrap import Container, bootstrap  # noqa: E402
from app.channels.sink import SinkChannel, journal  # noqa: E402
from app.config import Settings, _normalise_db_url  # noqa: E402
from app.core.journeys import Contact, Step  # noqa: E402
from app.core.ports import OutboundMessage, SendResult  # noqa: E402
from app.db import models as t  # noqa: E402
from app.db.engine import make_engine  # noqa: E402
from app.dispatch import Claimed, Dispatcher, Result, Stats  # noqa: E402
from app.message_context import Loaded  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.queue import InProcessQueue  # noqa: E402

SHOP = "bench-dispatch.myshopify.com"
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/test"
SECRET = "bench-dispatch-secret"
TARGET_MSG_PER_S = 1000.0
TARGET_P99_S = 5.0
BATCH: int = Dispatcher.batch  # the dispatcher's own default
FUTURE = ("delivered", "survey", "review_request", "win_back", "replenishment", "anniversary")
AHEAD = {"delivered": (12, 72), "survey": (48, 144), "review_request": (120, 336), "win_back": (336, 1344),
         "replenishment": (168, 1008), "anniversary": (24, 1344)}  # hours ahead, from-to
TRIGGER = {"delivered": "OrderDelivered", "survey": "OrderDelivered", "review_request": "OrderDelivered",
           "win_back": "WinBack", "replenishment": "Replenishment", "anniversary": "FirstOrderAnniversary",
           "thank_you": "OrderPaid"}


# --- a shop's customers, orders and pending messages ------------------------------------------------------------

FIRST = {"en": ["Ana", "Ben", "Chloe", "Dev", "Emma", "Felix", "Grace", "Hugo", "Iris", "Jack", "Lena", "Omar"],
         "ko": ["민준", "서연", "도윤", "하은", "시우", "지유", "예준", "수아", "지호", "서윤"],
         "ja": ["陽翔", "結菜", "蓮", "陽葵", "湊", "凛", "大和", "芽依", "悠真", "さくら"]}
LAST = {"en": ["Smith", "Garcia", "Chen", "Okafor", "Novak", "Brown", "Rossi", "Walsh"],
        "ko": ["김", "이", "박", "최", "정", "강", "조", "윤"],
        "ja": ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村"]}
ZONES = {"en": ("America/New_York", "America/Chicago", "America/Los_Angeles", "Europe/London"),
         "ko": ("Asia/Seoul",), "ja": ("Asia/Tokyo",)}
CARRIERS = (("UPS", "https://www.ups.com/track?tracknum={}"), ("USPS", "https://tools.usps.com/go/TrackConfirmAction?tLabels={}"),
            ("CJ대한통운", "https://trace.cjlogistics.com/next/tracking.html?wblNo={}"),
            ("ヤマト運輸", "https://toi.kuronekoyamato.co.jp/cgi-bin/tneko?number={}"))
ORIGINS = ("Ethiopia Guji", "Kenya Nyeri", "Colombia Huila", "Guatemala Antigua", "Brazil Cerrado", "Sumatra Gayo",
           "Costa Rica Tarrazú", "Rwanda Nyamasheke", "Peru Cajamarca", "Yemen Haraz")
FORMATS = (("250 g whole bean", "14.50"), ("1 kg whole bean", "46.00"), ("250 g ground", "14.50"),
           ("drip bags x10", "12.00"))
GEAR = (("Paper filters (100)", "4.00"), ("Ceramic dripper", "32.50"), ("Gooseneck kettle", "64.00"),
        ("Hand grinder", "89.00"), ("Cold brew bottle", "24.00"), ("Travel mug", "28.00"))


def catalog() -> list[tuple[str, str, Decimal]]:
    """(product id, title, price): 40 coffees and 6 pieces of gear."""
    items = [(f"{o} {f}", p) for o in ORIGINS for f, p in FORMATS] + list(GEAR)
    return [(str(8_000_000 + i), title, Decimal(price)) for i, (title, price) in enumerate(items)]


@dataclass
class Orders:
    pk: list[int] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    customer: list[int] = field(default_factory=list)  # index into the customers
    total: list[str] = field(default_factory=list)
    products: list[list[str]] = field(default_factory=list)


@dataclass
class Share:
    """A set of pending messages this benchmark inserted: their ids (contiguous) and keys."""

    ids: range
    keys: set[str]
    due: list[datetime]


def _copy(conn: psycopg.Connection[Any], table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    n = 0
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


ENROLLMENT_COLUMNS = ("id", "shop_id", "journey_id", "version_id", "key", "trigger_type", "trigger_key", "trigger_at",
                      "customer_external_id", "email", "order_external_id", "facts", "holdout", "status", "created_at")
MESSAGE_COLUMNS = ("id", "shop_id", "enrollment_id", "journey_id", "step", "key", "customer_external_id", "category",
                   "priority", "channel", "status", "due_at", "first_due_at", "latest_at", "attempts", "created_at")


class World:
    """The benchmark's schema and what is in it; rows go in with COPY through a psycopg connection of its own."""

    def __init__(self, libpq_url: str, schema: str, seed: int = 7) -> None:
        self.libpq_url, self.schema = libpq_url, schema
        self.url = _normalise_db_url(libpq_url)
        self.rng = random.Random(seed)
        self.now = datetime.now(UTC)
        self.products = catalog()
        self.customers: list[tuple[str, str, str]] = []  # (external id, email, locale)
        self.orders = Orders()
        self.next_recent = 0  # the newest orders, handed out for thank-yous in turn
        self.recent_from = 0
        self.next_enrollment = 1
        self.next_message = 1
        self.journeys: dict[str, tuple[int, int]] = {}  # key -> (journey id, version id)
        self.shop_id = 0
        self.future = range(0)
        self.key = Fernet.generate_key().decode()
        self.conn: psycopg.Connection[Any] | None = None
        self.c: Container | None = None

    # connections

    def settings(self) -> Settings:
        return settings_for(self.url, self.key)

    def db(self) -> psycopg.Connection[Any]:
        if self.conn is None:
            self.conn = psycopg.connect(self.libpq_url, options=f"-csearch_path={self.schema}")
        return self.conn

    def create(self) -> None:
        with psycopg.connect(self.libpq_url, autocommit=True) as admin:
            admin.execute(f"CREATE SCHEMA {self.schema}")
        engine = make_engine(self.url, connect_args={"options": f"-csearch_path={self.schema}"})
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        self.c = container_for(self.url, self.schema, self.key)

    def drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.c is not None:
            self.c.engine.dispose()
            self.c.intake.dispose()
        with psycopg.connect(self.libpq_url, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")

    def vacuum(self, *tables: str) -> None:
        with psycopg.connect(self.libpq_url, autocommit=True, options=f"-csearch_path={self.schema}") as conn:
            for table in tables:
                conn.execute(f"VACUUM (ANALYZE) {table}")

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        conn = self.db()
        row = conn.execute(sql, params).fetchone()
        conn.commit()
        return None if row is None else row[0]

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        conn = self.db()
        found = conn.execute(sql, params).fetchall()
        conn.commit()
        return found

    # the shop

    def shop(self) -> None:
        assert self.c is not None
        with self.c.sessions() as s, s.begin():
            shop = t.Shop(platform="shopify", domain=SHOP, name="Bench Coffee", currency="USD",
                          timezone="America/New_York", locale="en", installed_at=self.now - timedelta(days=400),
                          access_token=self.c.vault.seal("shpat_bench"))
            s.add(shop)
            s.flush()
            self.shop_id = shop.id
            jr.install_defaults(s, shop.id, enabled=frozenset({"thank_you", *FUTURE}))
        with self.c.sessions() as s:
            for key, journey_id, version_id in s.execute(
                    select(t.JourneyRow.key, t.JourneyRow.id, t.JourneyVersion.id)
                    .join(t.JourneyVersion, t.JourneyVersion.journey_id == t.JourneyRow.id)
                    .where(t.JourneyRow.shop_id == self.shop_id)):
                self.journeys[key] = (journey_id, version_id)

    def people(self, customers: int, recent: int) -> dict[str, int]:
        """Customers, their orders (the newest `recent` of them just paid), lines, and shipments."""
        rng, now, conn = self.rng, self.now, self.db()
        counts: dict[str, int] = {}
        custs = []
        for i in range(customers):
            lang = rng.choices(("en", "ko", "ja"), (50, 25, 25))[0]
            first, last = rng.choice(FIRST[lang]), rng.choice(LAST[lang])
            ext = str(7_000_000_000 + i)
            email = f"{first.lower()}.{ext[-6:]}@example.com" if lang == "en" else f"customer{ext[-7:]}@example.jp" \
                if lang == "ja" else f"customer{ext[-7:]}@example.kr"
            self.customers.append((ext, email, lang))
            custs.append((i + 1, self.shop_id, ext, email, None, first, last, lang, rng.random() < 0.6, False,
                          "email", rng.choice(ZONES[lang]), now - timedelta(days=rng.uniform(1, 700))))
        counts["customers"] = _copy(conn, "customers", (
            "id", "shop_id", "external_id", "email", "phone", "first_name", "last_name", "locale",
            "accepts_email_marketing", "accepts_sms_marketing", "preferred_channel", "timezone", "external_updated_at"),
            custs)
        del custs
        owners = [i for i in range(customers) for _ in range(rng.choices((1, 2, 3, 4), (45, 30, 15, 10))[0])]
        rng.shuffle(owners)
        while len(owners) < recent + customers // 2:  # enough orders for every due share asked for
            owners.append(rng.randrange(customers))
        self.recent_from = len(owners) - recent
        orders: list[tuple[Any, ...]] = []
        lines: list[tuple[Any, ...]] = []
        shipments: list[tuple[Any, ...]] = []
        line_id = 0
        for n, cust in enumerate(owners):
            pk, ext = n + 1, str(5_000_000_000 + n)
            created = now - timedelta(minutes=rng.uniform(0, 15)) if n >= self.recent_from else \
                now - timedelta(days=rng.uniform(1, 365))
            picked = rng.sample(self.products, rng.choices((1, 2, 3, 4), (40, 30, 20, 10))[0])
            subtotal = Decimal(0)
            for j, (pid, title, price) in enumerate(picked):
                qty = rng.choices((1, 2, 3), (70, 22, 8))[0]
                line_id += 1
                lines.append((line_id, self.shop_id, pk, f"{ext}{j + 1}", pid, str(int(pid) + 500_000), f"SKU-{pid}",
                              title, qty, price, Decimal(0)))
                subtotal += price * qty
            shipping = Decimal("0.00") if subtotal >= 50 else Decimal("5.00")
            total = subtotal + shipping
            c_ext, email, _ = self.customers[cust]
            orders.append((pk, self.shop_id, ext, f"#{1001 + n}", c_ext, email, "USD", subtotal, total, Decimal(0),
                           shipping, Decimal(0), Decimal(0), "paid", "open", created, created, created))
            if rng.random() < 1 / 3:
                carrier, url = rng.choice(CARRIERS)
                number = f"1Z{rng.randrange(10**12):012d}"
                shipped = created + timedelta(minutes=5)
                shipments.append((len(shipments) + 1, self.shop_id, pk, f"{ext}-f1", "success", "in_transit", carrier,
                                  number, url.format(number), False, shipped, shipped))
            self.orders.pk.append(pk)
            self.orders.external.append(ext)
            self.orders.customer.append(cust)
            self.orders.total.append(str(total))
            self.orders.products.append(sorted(p[0] for p in picked))
        counts["orders"] = _copy(conn, "orders", (
            "id", "shop_id", "external_id", "name", "customer_external_id", "email", "currency", "subtotal", "total",
            "total_tax", "total_shipping", "total_discounts", "refunded_amount", "payment_status", "status",
            "created_at", "processed_at", "external_updated_at"), orders)
        counts["order_lines"] = _copy(conn, "order_lines", (
            "id", "shop_id", "order_id", "external_id", "product_external_id", "variant_external_id", "sku", "title",
            "quantity", "price", "total_discount"), lines)
        counts["fulfillments"] = _copy(conn, "fulfillments", (
            "id", "shop_id", "order_id", "external_id", "status", "shipment_status", "tracking_company",
            "tracking_number", "tracking_url", "estimated", "created_at", "external_updated_at"), shipments)
        self.next_recent = self.recent_from
        conn.commit()
        return counts

    @contextlib.contextmanager
    def loading(self, *tables: str) -> Iterator[None]:
        """Bulk loading as a restore does it: the tables' foreign keys, unique constraints and secondary indexes
        dropped first and made again afterwards, from their own definitions (one pass each, not a million
        index insertions and trigger calls)."""
        conn = self.db()
        constraints: list[tuple[str, str, str, str]] = []
        indexes: list[str] = []
        for table in tables:
            for name, definition, kind in conn.execute(
                    "SELECT conname, pg_get_constraintdef(oid), contype FROM pg_constraint "
                    "WHERE conrelid = %s::regclass AND contype IN ('f', 'u') ORDER BY conname", (table,)).fetchall():
                constraints.append((table, name, definition, kind))
                conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
            for name, definition in conn.execute(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s "
                    "AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)",
                    (table, table)).fetchall():
                indexes.append(definition)
                conn.execute(f"DROP INDEX {name}")
        conn.commit()
        try:
            yield
        finally:
            conn.rollback()
            for definition in indexes:
                conn.execute(definition)
            for table, name, definition, _ in sorted(constraints, key=lambda c: c[3] == "f"):  # unique ones first
                conn.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
            conn.commit()

    def _facts(self, o: int) -> str:
        return orjson.dumps({"orders_before": 0, "order_total": self.orders.total[o],
                             "products": self.orders.products[o]}).decode()

    def schedule_future(self, count: int) -> None:
        """`count` pending messages of the other journeys, due an hour to eight weeks ahead."""
        rng, now, conn, orders = self.rng, self.now, self.db(), self.orders
        n_orders = len(orders.pk)
        first_enrollment, first_message = self.next_enrollment, self.next_message
        enrollments: list[tuple[Any, ...]] = []
        messages: list[tuple[Any, ...]] = []

        def flush() -> None:
            _copy(conn, "enrollments", ENROLLMENT_COLUMNS, enrollments)
            _copy(conn, "messages", MESSAGE_COLUMNS, messages)
            enrollments.clear()
            messages.clear()

        for k in range(count):
            o, round_ = k % n_orders, k // n_orders
            key = FUTURE[(o + round_) % len(FUTURE)]
            journey = jr.DEFAULTS[key]
            step = journey.steps[0]
            journey_id, version_id = self.journeys[key]
            order_ext = orders.external[o]
            c_ext, email, _ = self.customers[orders.customer[o]]
            trigger_key = f"order:{order_ext}:{key}" + (f":{round_}" if round_ >= len(FUTURE) else "")
            lo, hi = AHEAD[key]
            due = now + timedelta(hours=rng.uniform(lo, hi))
            created = now - timedelta(hours=rng.uniform(0, 72))
            eid = self.next_enrollment
            self.next_enrollment += 1
            enrollments.append((eid, self.shop_id, journey_id, version_id, f"{key}:{trigger_key}", TRIGGER[key],
                                trigger_key, created, c_ext, email, order_ext, self._facts(o), False, "active",
                                created))
            messages.append((self.next_message, self.shop_id, eid, journey_id, step.key, f"{key}:{trigger_key}:{step.key}",
                             c_ext, journey.category.value, journey.priority, step.channel.value, "pending", due, due,
                             due + step.latest if step.latest else None, 0, created))
            self.next_message += 1
            if len(messages) >= 50_000:
                flush()
        flush()
        conn.commit()
        self.future = range(first_message, self.next_message)
        assert self.next_enrollment - first_enrollment == count

    def schedule_due(self, due: Sequence[datetime]) -> Share:
        """Thank-yous for the next newest orders, one per due time given."""
        conn, orders = self.db(), self.orders
        journey = jr.DEFAULTS["thank_you"]
        step = journey.steps[0]
        journey_id, version_id = self.journeys["thank_you"]
        if self.next_recent + len(due) > len(orders.pk):
            raise SystemExit("not enough new orders for another due share: raise --customers")
        enrollments, messages, keys = [], [], set()
        first = self.next_message
        for when in due:
            o = self.next_recent
            self.next_recent += 1
            order_ext = orders.external[o]
            c_ext, email, _ = self.customers[orders.customer[o]]
            trigger_key = f"order:{order_ext}:paid"
            key = f"thank_you:{trigger_key}"
            created = min(when, datetime.now(UTC))
            eid = self.next_enrollment
            self.next_enrollment += 1
            enrollments.append((eid, self.shop_id, journey_id, version_id, key, "OrderPaid", trigger_key, when, c_ext,
                                email, order_ext, self._facts(o), False, "active", created))
            messages.append((self.next_message, self.shop_id, eid, journey_id, step.key, f"{key}:{step.key}", c_ext,
                             journey.category.value, journey.priority, step.channel.value, "pending", when, when, None,
                             0, created))
            keys.add(f"{key}:{step.key}")
            self.next_message += 1
        _copy(conn, "enrollments", ENROLLMENT_COLUMNS, enrollments)
        _copy(conn, "messages", MESSAGE_COLUMNS, messages)
        conn.commit()
        return Share(range(first, self.next_message), keys, list(due))

    def due_now(self, n: int) -> Share:
        now = datetime.now(UTC)
        share = self.schedule_due([now - timedelta(seconds=self.rng.uniform(1, 120)) for _ in range(n)])
        self.vacuum("messages", "enrollments")
        return share

    def sequences(self) -> None:
        conn = self.db()
        for table in ("customers", "orders", "order_lines", "fulfillments", "enrollments", "messages"):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                         f"GREATEST((SELECT max(id) FROM {table}), 1))")
        conn.commit()

    def pending(self) -> int:
        return int(self.scalar("SELECT count(*) FROM messages WHERE status = 'pending'"))

    def check(self, share: Share, journal_path: Path, *, complete: bool = True) -> list[str]:
        """Every message of the share marked sent was handed over exactly once, and (`complete`) every one was;
        the rest of the share is untouched, and so is every future message."""
        problems = []
        handed = Counter(key for _, key in journal(journal_path)) if journal_path.exists() else Counter()
        rows = self.rows("SELECT key, status, sent_at IS NOT NULL, lease_until IS NULL, attempts FROM messages "
                         "WHERE id >= %s AND id < %s", (share.ids.start, share.ids.stop))
        sent = {key for key, status, stamped, released, _ in rows if status == "sent" and stamped and released}
        untouched = {key for key, status, stamped, released, attempts in rows
                     if status == "pending" and not stamped and released and not attempts}
        twice = sorted(k for k, n in handed.items() if n > 1)
        if twice:
            problems.append(f"{len(twice)} messages handed over more than once (e.g. {twice[0]})")
        if sent != set(handed):
            problems.append(f"journal and table disagree: {len(set(handed) - sent)} handed over but not marked sent, "
                            f"{len(sent - set(handed))} marked sent but not handed over")
        if extra := set(handed) - share.keys:
            problems.append(f"{len(extra)} messages handed over that were not due (e.g. {min(extra)})")
        if complete and sent != share.keys:
            problems.append(f"{len(share.keys - sent):,} of {len(share.keys):,} due messages not sent")
        if odd := len(rows) - len(sent) - len(untouched):
            problems.append(f"{odd} due messages neither sent nor untouched")
        touched = self.scalar("SELECT count(*) FROM messages WHERE id >= %s AND id < %s AND (status <> 'pending' OR "
                              "lease_until IS NOT NULL OR sent_at IS NOT NULL OR attempts <> 0)",
                              (self.future.start, self.future.stop))
        if touched:
            problems.append(f"{touched} future messages were touched")
        held = self.scalar("SELECT count(*) FROM messages WHERE status IN ('claimed', 'sending')")
        if held:
            problems.append(f"{held} messages left claimed or sending")
        return problems

    def cancel_unsent(self, share: Share) -> int:
        """A run stopped by the clock: what it did not reach is taken out of the way of the next run."""
        conn = self.db()
        n = conn.execute("UPDATE messages SET status = 'cancelled', reason = 'benchmark run stopped' WHERE id >= %s "
                         "AND id < %s AND status = 'pending'", (share.ids.start, share.ids.stop)).rowcount
        conn.commit()
        return int(n)


def finish(world: World, launched: Sequence[Any], *, keep: bool) -> None:
    """After a benchmark, whatever happened: workers still running are stopped, the schema is dropped (or kept,
    and said so)."""
    for p in launched:
        if p.is_alive():
            p.terminate()
            p.join(10)
    if not keep:
        world.drop()
    else:
        if world.conn is not None:
            world.conn.close()
        print(f"schema {world.schema} kept")


def settings_for(url: str, key: str) -> Settings:
    return Settings(env="development", database_url=url, redis_url=None, secret_key=SECRET, encryption_keys=(key,),
                    app_url="https://encore.example.com", log_level="WARNING")


def container_for(url: str, schema: str, key: str) -> Container:
    return bootstrap(settings_for(url, key), queue=InProcessQueue(sweep_every=3600, autostart=False),
                     engine_options={"connect_args": {"options": f"-csearch_path={schema}"}})


# --- the contenders -----------------------------------------------------------------------------------------------

class NoRender(Dispatcher):
    """The dispatcher with context building and rendering replaced by nothing: the same claim, reads, checks and
    batch recording; each message goes to the channel with its address and no body."""

    def _send(self, s: Session, x: Claimed, enrollment: t.Enrollment, version: jr.Version, step: Step,
              shop: t.Shop, customer: t.Customer | None, contact: Contact, loaded: Loaded, channel_name: str,
              now: datetime) -> Result:
        to = contact.email or ""
        outcome = self.channels[channel_name].send(OutboundMessage(shop_id=x.shop_id, key=x.key, channel="email", to=to))
        return self._outcome(x, outcome, channel_name, to, None, now)


class Bare(Dispatcher):
    """The floor: claim a batch, hand each message to the channel, record the batch; no reads, checks or render."""

    def _process(self, claimed: list[Claimed], now: datetime, stats: Stats) -> None:
        channel = self.channels["email"]
        results = {}
        for x in claimed:
            to = f"{x.customer_id}@example.com"
            outcome = channel.send(OutboundMessage(shop_id=x.shop_id, key=x.key, channel="email", to=to))
            results[x.id] = self._outcome(x, outcome, "email", to, None, now)
        self._record(results, stats, claimed[0].lease)


KINDS: dict[str, type[Dispatcher]] = {"encore": Dispatcher, "norender": NoRender, "bare": Bare}
LABELS = {"encore": "Encore (claim, check, render, send)", "norender": "no render (same claim/checks/record)",
          "bare": "bare (claim, hand over, record)"}


class TimedSink(SinkChannel):
    """The sink, noting when each message reached it (wall clock): the lateness as the channel saw it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        self.at: dict[str, float] = {}

    def send(self, message: OutboundMessage) -> SendResult:
        result = super().send(message)
        self.at[message.key] = time.time()
        return result


def warm(c: Container) -> None:
    """What every long-running dispatcher has done before: templates compiled, a pooled connection open."""
    for locale in ("en", "ko", "ja"):
        rendering.preview(rendering.default_template("thank_you"), locale)
    with c.sessions() as s:
        s.execute(text("SELECT 1"))


def throughput_worker(spec: dict[str, Any], start: Any, out: Any, done: Any) -> None:
    c = container_for(spec["url"], spec["schema"], spec["key"])
    sink = SinkChannel(spec["journal"])
    d = KINDS[spec["kind"]](c, {"email": sink}, platform_for=None, batch=spec["batch"])
    warm(c)
    start.wait()
    started, cpu = time.monotonic(), time.process_time()
    stats, batches, stopped = Stats(), 0, False
    while True:
        if time.monotonic() - started > spec["max_seconds"]:
            stopped = True  # the time allowed is up: the batch in hand was finished, no new one is claimed
            break
        got = d.run_once()
        if got.claimed == 0:
            break
        stats.add(got)
        batches += 1
    out.put({"started": started, "ended": time.monotonic(), "cpu": time.process_time() - cpu, "batches": batches,
             "stopped": stopped, **asdict(stats)})
    done.wait()  # until the parent has read PostgreSQL's CPU time: a backend's goes when its connection closes
    sink.close()
    c.engine.dispose()


def loop_worker(spec: dict[str, Any], ready: Any, stop: Any) -> None:
    c = container_for(spec["url"], spec["schema"], spec["key"])
    sink = TimedSink(spec["journal"])
    d = Dispatcher(c, {"email": sink}, platform_for=None, batch=spec["batch"])
    warm(c)
    ready.set()
    d.loop(stop)
    Path(spec["handed"]).write_bytes(orjson.dumps(sink.at))
    sink.close()
    c.engine.dispose()


# --- CPU accounting -------------------------------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def postgres_cpu() -> float:
    """CPU seconds used so far by every PostgreSQL process on the machine."""
    from intake import process_stats  # bench/ is on the path: this script's own folder

    return sum((int(fields[11]) + int(fields[12])) / CLK_TCK
               for _proc, comm, fields in process_stats() if comm.startswith("postgres"))


def machine_busy() -> tuple[float, float]:
    with open("/proc/stat") as f:
        user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in f.readline().split()[1:9])
    busy = user + nice + system + irq + softirq
    return busy / CLK_TCK, (busy + idle + iowait + steal) / CLK_TCK


# --- the measurements -------------------------------------------------------------------------------------------

_launched: list[Any] = []


def run_throughput(world: World, kind: str, processes: int, due: int, batch: int, max_seconds: float,
                   workdir: Path) -> dict[str, Any]:
    share = world.due_now(due)
    pending = world.pending()
    path = workdir / f"{kind}-{processes}.journal"
    ctx = mp.get_context("spawn")
    start, done, out = ctx.Barrier(processes + 1), ctx.Barrier(processes + 1), ctx.Queue()
    spec = {"url": world.url, "schema": world.schema, "key": world.key, "journal": str(path), "kind": kind,
            "batch": batch, "max_seconds": max_seconds}
    procs = [ctx.Process(target=throughput_worker, args=(spec, start, out, done), daemon=True)
             for _ in range(processes)]
    for p in procs:
        p.start()
        _launched.append(p)
    start.wait(timeout=120)
    t0, pg0, busy0 = time.monotonic(), postgres_cpu(), machine_busy()
    reports = [out.get(timeout=max_seconds + 600) for _ in procs]
    pg1, busy1 = postgres_cpu(), machine_busy()
    done.wait(timeout=60)
    for p in procs:
        p.join(30)
        _launched.remove(p)
    elapsed = max(r["ended"] for r in reports) - t0
    sent = sum(r["sent"] for r in reports)
    stopped = any(r["stopped"] for r in reports)
    problems = world.check(share, path, complete=not stopped)
    left = world.cancel_unsent(share) if stopped else 0
    result = {"kind": kind, "processes": processes, "due": due, "pending": pending, "seconds": elapsed,
              "per_s": sent / elapsed, "sent": sent, "claimed": sum(r["claimed"] for r in reports),
              "stopped_after_s": max_seconds if left else None, "not_reached": left,
              "by_process": [r["sent"] for r in reports], "batches": sum(r["batches"] for r in reports),
              "dispatcher_cpu_ms": 1000 * sum(r["cpu"] for r in reports) / max(sent, 1),
              "postgres_cpu_ms": 1000 * (pg1 - pg0) / max(sent, 1),
              "problems": problems}
    capacity = max(busy1[1] - busy0[1], 1e-9)  # CPU seconds the machine had (all cores) in the window
    ours = sum(r["cpu"] for r in reports) + pg1 - pg0
    result["machine_busy"] = (busy1[0] - busy0[0]) / capacity
    # Neither the dispatchers nor a PostgreSQL process alive at both readings: other people's processes, and
    # PostgreSQL's parallel query workers (each lives for one query).
    result["others_busy"] = max(0.0, busy1[0] - busy0[0] - ours) / capacity
    note = f" (time up after {max_seconds:g} s: {sent:,} sent, {left:,} not reached)" if left else ""
    print(f"  {LABELS[kind]:<38} {processes} proc  {due:>7,} due of {pending:>9,} pending  {elapsed:7.2f} s "
          f"{result['per_s']:>8,.0f} msg/s   cpu/msg: dispatcher {result['dispatcher_cpu_ms']:.2f} ms, "
          f"postgres {result['postgres_cpu_ms']:.2f} ms; machine {result['machine_busy']:.0%} busy, "
          f"{result['others_busy']:.0%} unaccounted   "
          f"{'ok' if not problems else 'FAIL: ' + '; '.join(problems)}{note}", flush=True)
    return result


BUCKETS: list[tuple[str, str, str, bool]] = [  # label, file, function, called from _send
    ("claim (UPDATE ... SKIP LOCKED RETURNING)", "app/dispatch.py", "claim", False),
    ("batch reads (customers, orders, lines, tracking)", "app/message_context.py", "load", False),
    ("marketing history", "app/dispatch.py", "_marketing_history", False),
    ("recording the batch (one UPDATE)", "app/dispatch.py", "_record", False),
    ("recommendations (a query per message)", "app/message_context.py", "recommendations", True),
    ("products bought together (per shop, every 10 min)", "app/message_context.py", "bought_together", True),
    ("recommendations from products bought together", "app/message_context.py", "recommendations_from", True),
    ("rendering.render (Jinja sandbox, Babel)", "app/rendering/render.py", "render", True),
    ("links.track (click/open links)", "app/links.py", "track", True),
    ("hand-over to the sink", "app/channels/sink.py", "send", True),
]


def _ct(stats: dict[Any, Any], suffix: str, name: str) -> float:
    return float(sum(v[3] for (file, _, fn), v in stats.items() if fn == name and file.endswith(suffix)))


def run_profile(world: World, n: int, batch: int, workdir: Path) -> dict[str, Any]:
    """run_once under cProfile in this process, the only dispatcher running: where a batch's time goes."""
    assert world.c is not None
    share = world.due_now(n)
    path = workdir / "profile.journal"
    sink = SinkChannel(path)
    d = Dispatcher(world.c, {"email": sink}, platform_for=None, batch=batch)
    warm(world.c)
    gc.collect()
    gc.freeze()  # this process holds the benchmark's own big lists: a dispatcher's collections would not walk them
    plain_start = time.perf_counter()
    profiler = cProfile.Profile()
    done = 0
    while True:
        profiler.enable()
        got = d.run_once()
        profiler.disable()
        done += got.claimed
        if got.claimed == 0:
            break
    wall = time.perf_counter() - plain_start
    gc.unfreeze()
    sink.close()
    problems = world.check(share, path)
    st = pstats.Stats(profiler)
    raw: dict[Any, Any] = st.stats  # type: ignore[attr-defined]
    total = _ct(raw, "app/dispatch.py", "run_once")
    parts = {label: _ct(raw, file, name) for label, file, name, _ in BUCKETS}
    send, one, process = (_ct(raw, "app/dispatch.py", name) for name in ("_send", "_one", "_process"))
    parts["context building (RenderContext, links, message)"] = send - sum(
        parts[label] for label, _, _, inside in BUCKETS if inside)
    parts["checks (consent, quiet hours, cap, ...)"] = one - send
    parts["enrollment and journey reads"] = process - one - sum(
        parts[label] for label, _, name, _ in BUCKETS if name in ("load", "_marketing_history", "_record"))
    print(f"\nwhere the time goes: run_once under cProfile, 1 process, {n:,} due ({n / wall:,.0f} msg/s while "
          "profiled: cProfile makes the Python parts look slower than they are, waits on PostgreSQL not)")
    for label, seconds in sorted(parts.items(), key=lambda kv: -kv[1]):
        if seconds < 0.0005 * total:
            continue  # not called (or next to nothing)
        print(f"  {label:<52}{1000 * seconds / n:>8.3f} ms/msg {seconds / total:>7.1%}")
    print(f"  {'run_once in all':<52}{1000 * total / n:>8.3f} ms/msg")
    top = sorted(raw.items(), key=lambda kv: -kv[1][2])[:12]
    print("  most time in the function itself (tottime):")
    for (file, line, fn), (_, calls, tt, ct, _) in top:
        where = f"{Path(file).name}:{line}" if file != "~" else "built-in"
        print(f"    {tt:7.2f} s  {ct:7.2f} s cum  {calls:>9,}  {fn} ({where})")
    if problems:
        print("  FAIL: " + "; ".join(problems))
    return {"messages": n, "run_once_s": total, "ms_per_msg": {k: 1000 * v / n for k, v in parts.items()},
            "problems": problems}


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile; inf (not sent in time) sorts last."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))]


def times(ratio: float) -> str:
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.3f}x"


def seconds_or_unsent(value: float) -> str:
    return "unsent" if math.isinf(value) else f"{value:.3f} s"


def run_lateness(world: World, rate: float, seconds: float, batch: int, grace: float, processes: int,
                 workdir: Path) -> dict[str, Any]:
    n = int(rate * seconds)
    path = workdir / "lateness.journal"
    handed_paths = [workdir / f"lateness.handed.{i}.json" for i in range(processes)]
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    world.vacuum("messages", "enrollments")
    procs = []
    for handed_path in handed_paths:
        ready = ctx.Event()
        spec = {"url": world.url, "schema": world.schema, "key": world.key, "journal": str(path), "batch": batch,
                "handed": str(handed_path)}
        proc = ctx.Process(target=loop_worker, args=(spec, ready, stop), daemon=True)
        proc.start()
        _launched.append(proc)
        procs.append((proc, ready))
    if not all(ready.wait(120) for _, ready in procs):
        raise SystemExit("the dispatcher loop did not start")
    start = datetime.now(UTC) + timedelta(seconds=3)
    share = world.schedule_due([start + timedelta(seconds=i / rate) for i in range(n)])
    pending = world.pending()
    print(f"\nlateness: {n:,} messages due at {rate:g}/s for {seconds:g} s (one every {1000 / rate:g} ms) among "
          f"{pending:,} pending; the dispatcher's own loop (poll 0.25 s) in {processes} "
          f"process{'es' if processes > 1 else ''}", flush=True)
    last_due = share.due[-1].timestamp()
    sent = 0
    while time.time() < last_due + grace:
        time.sleep(1.0)
        sent = int(world.scalar("SELECT count(*) FROM messages WHERE id >= %s AND id < %s AND status = 'sent'",
                                (share.ids.start, share.ids.stop)))
        if sent == n and time.time() > last_due:
            break
    stop.set()
    stopped_at = time.time()
    for proc, _ in procs:
        proc.join(120)
        _launched.remove(proc)
    rows = world.rows("SELECT key, first_due_at, sent_at FROM messages WHERE id >= %s AND id < %s",
                      (share.ids.start, share.ids.stop))
    recorded = [math.inf if sent_at is None else (sent_at - due_at).total_seconds() for _, due_at, sent_at in rows]
    handed_at: dict[str, float] = {}
    for handed_path in handed_paths:
        if handed_path.exists():
            handed_at.update(orjson.loads(handed_path.read_bytes()))
    handed = [handed_at[key] - due_at.timestamp() if key in handed_at else math.inf for key, due_at, _ in rows]
    sent_n = sum(1 for x in recorded if not math.isinf(x))
    complete = sent_n == n
    problems = world.check(share, path, complete=complete)
    left = 0 if complete else world.cancel_unsent(share)
    result: dict[str, Any] = {"rate": rate, "seconds": seconds, "processes": processes, "messages": n, "sent": sent_n,
                              "pending": pending, "waited_after_last_due_s": stopped_at - last_due,
                              "problems": problems}
    for name, values in (("recorded", recorded), ("handed", handed)):
        result[name] = {f"p{p:g}": percentile(values, p) for p in (50, 95, 99)} | {"max": max(values)}
    for name, label in (("recorded", "sent_at - due_at (as recorded)"), ("handed", "reached the sink - due_at")):
        r = result[name]
        print(f"  {label:<34} p50 {seconds_or_unsent(r['p50']):>9}  p95 {seconds_or_unsent(r['p95']):>9}  "
              f"p99 {seconds_or_unsent(r['p99']):>9}  max {seconds_or_unsent(r['max']):>9}")
    stop_note = "" if complete else (f"; {left:,} still unsent {stopped_at - last_due:.0f} s after the last was due, "
                                     "when the run stopped (counted as unsent)")
    print(f"  {sent_n:,} of {n:,} sent{stop_note}   {'ok' if not problems else 'FAIL: ' + '; '.join(problems)}")
    if not complete and sent_n:
        done = [x for x in recorded if not math.isinf(x)]
        result["recorded_of_sent"] = {f"p{p:g}": percentile(done, p) for p in (50, 95, 99)} | {"max": max(done)}
        r = result["recorded_of_sent"]
        print(f"  of those sent, sent_at - due_at     p50 {r['p50']:7.3f} s  p95 {r['p95']:7.3f} s  p99 {r['p99']:7.3f} s  "
              f"max {r['max']:7.3f} s")
    return result


# --- main -------------------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pending", type=int, default=1_000_000, help="messages pending in every measurement")
    parser.add_argument("--due", type=int, default=20_000, help="of those, due now in each throughput run")
    parser.add_argument("--rate", type=float, default=200.0, help="messages due a second in the lateness run")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long messages keep coming due at --rate")
    parser.add_argument("--customers", type=int, default=0, help="default: pending / 10 (at least what is needed)")
    parser.add_argument("--max-seconds", type=float, default=300.0,
                        help="a throughput run stops claiming after this long (what it sent counts)")
    parser.add_argument("--grace", type=float, default=60.0,
                        help="the lateness run waits this long after the last message was due")
    parser.add_argument("--loop-processes", type=int, default=1, help="dispatcher loops in the lateness run")
    parser.add_argument("--batch", type=int, default=BATCH, help="the dispatcher's batch size")
    parser.add_argument("--profile", type=int, default=400, help="due messages for the cProfile run (0: none)")
    parser.add_argument("--processes", default="1,2", help="process counts for the throughput runs")
    parser.add_argument("--only", default="bare,norender,encore", help="contenders for the throughput runs")
    parser.add_argument("--quick", action="store_true", help="small numbers for a smoke run")
    parser.add_argument("--keep", action="store_true", help="keep the schema (for a look afterwards)")
    env = os.environ.get("DATABASE_URL", "")
    parser.add_argument("--db", default=env if env.startswith(("postgres://", "postgresql")) else DEFAULT_DB)
    if "--quick" in (sys.argv[1:] if argv is None else argv):  # small numbers, unless given
        parser.set_defaults(pending=20_000, due=1_000, rate=50.0, seconds=10.0, profile=400, grace=20.0)
    a = parser.parse_args(argv)
    counts = [int(x) for x in a.processes.split(",")]
    kinds = [k for k in a.only.split(",") if k]
    runs = len(counts) * len(kinds)
    recent = runs * a.due + int(a.rate * a.seconds) + a.profile
    customers = a.customers or max(1_000, a.pending // 10, recent)
    libpq = a.db.replace("postgresql+psycopg://", "postgresql://").replace("postgres://", "postgresql://", 1)
    schema = f"bench_dispatch_{uuid.uuid4().hex[:8]}"
    world = World(libpq, schema)
    workdir = Path(tempfile.mkdtemp(prefix="encore-dispatch-bench-"))
    begun = time.monotonic()
    results: dict[str, Any] = {"when": datetime.now(UTC).isoformat(), "machine": platform.platform(),
                               "cpus": os.cpu_count(), "pending": a.pending, "due": a.due, "batch": a.batch}
    try:
        print(f"dispatch benchmark: {os.cpu_count()} cores; PostgreSQL {libpq.split('@')[-1]} schema {schema}; "
              f"batch {a.batch}", flush=True)
        setup = time.monotonic()
        world.create()
        world.shop()
        with world.loading("customers", "orders", "order_lines", "fulfillments"):
            made = world.people(customers, recent)
        with world.loading("enrollments", "messages"):
            world.schedule_future(a.pending - a.due)
        made["future messages"] = len(world.future)
        world.sequences()
        world.vacuum("customers", "orders", "order_lines", "fulfillments", "enrollments", "messages")
        print(f"setup {time.monotonic() - setup:.0f} s: " + ", ".join(f"{k} {v:,}" for k, v in made.items()) +
              f"; each run adds {a.due:,} thank-yous due now (pending then {a.pending:,})", flush=True)
        results["rows"] = made
        print("\nthroughput: run_once in a loop until nothing is due")
        throughput = []
        for processes in counts:
            for kind in kinds:
                throughput.append(run_throughput(world, kind, processes, a.due, a.batch, a.max_seconds, workdir))
        results["throughput"] = throughput
        if a.profile:
            results["profile"] = run_profile(world, a.profile, a.batch, workdir)
        if a.rate > 0 and a.seconds > 0:
            results["lateness"] = run_lateness(world, a.rate, a.seconds, a.batch, a.grace, a.loop_processes, workdir)
    finally:
        finish(world, _launched, keep=a.keep)
        shutil.rmtree(workdir, ignore_errors=True)
    return report(results, time.monotonic() - begun)


def report(results: dict[str, Any], elapsed: float) -> int:
    by = {(r["kind"], r["processes"]): r for r in results.get("throughput", [])}

    def rate(kind: str, processes: int) -> float | None:
        r = by.get((kind, processes))
        return None if r is None else float(r["per_s"])

    print(f"\n{'contender':<40}{'1 process':>12}{'2 processes':>13}")
    for kind in ("bare", "norender", "encore"):
        cells = [rate(kind, n) for n in (1, 2)]
        if any(c is not None for c in cells):
            print(f"{LABELS[kind]:<40}" + "".join(f"{(f'{c:,.0f} msg/s' if c else '-'):>{w}}"
                                                   for c, w in zip(cells, (12, 13), strict=True)))
    ratios = {n: (rate("encore", n) or 0) / r for n in (1, 2) if (r := rate("norender", n))}
    for n, ratio in ratios.items():
        print(f"ratio Encore / no render, {n} process{'es' if n > 1 else ''}: {times(ratio)}")
    best = max((r for k, r in by.items() if k[0] == "encore"), key=lambda r: r["per_s"], default=None)
    late = results.get("lateness", {}).get("recorded")
    parts = []
    if by:
        enc = [f"{n} process{'es' if n > 1 else ''} {rate('encore', n):,.0f} msg/s" for n in (1, 2) if rate("encore", n)]
        parts.append("dispatch: " + (", ".join(enc) or "Encore not run"))
        top = max((n for n in (1, 2) if rate("norender", n)), default=None)
        if top is not None:
            parts.append(f"baseline (no render, {top} process{'es' if top > 1 else ''}) {rate('norender', top):,.0f} msg/s"
                         + (f"; ratio {times(ratios[top])}" if top in ratios else ""))
    if late:
        lr = results["lateness"]
        shown = " ".join(f"{k} {seconds_or_unsent(late[k])}" for k in ("p50", "p95", "p99", "max"))
        parts.append(f"lateness at {lr['rate']:g}/s {shown}" + (f" ({lr['sent']:,} of {lr['messages']:,} sent)"
                                                                 if lr["sent"] < lr["messages"] else ""))
    parts.append(f"{results['pending']:,} pending")
    print("\n" + "; ".join(parts))
    checks: list[tuple[str, bool, str]] = []
    if best is not None:
        checks.append((f"end to end >= {TARGET_MSG_PER_S:,.0f} msg/s", best["per_s"] >= TARGET_MSG_PER_S,
                       f"{best['per_s']:,.0f} msg/s ({best['processes']} process{'es' if best['processes'] > 1 else ''})"))
    if late:
        checks.append((f"p99 lateness at {results['lateness']['rate']:g}/s < {TARGET_P99_S:g} s",
                       late["p99"] < TARGET_P99_S, seconds_or_unsent(late["p99"])))
    for name, ok, shown in checks:
        print(f"{'PASS' if ok else 'MISS'}  {name:<36} {shown}")
    problems = [p for r in results.get("throughput", []) for p in r["problems"]]
    problems += results.get("profile", {}).get("problems", []) + results.get("lateness", {}).get("problems", [])
    if problems:
        print("FAIL  what was sent did not check out:\n  " + "\n  ".join(problems))
    save_results("dispatch", results, elapsed)
    return 1 if problems else 0



def save_results(name: str, results: dict[str, Any], elapsed: float) -> None:
    """bench/results/<name>.json, and a line saying where it went (the benchmarks share it)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"results: {os.path.relpath(path, Path.cwd())}  (whole run {elapsed:.0f} s)")

if __name__ == "__main__":
    sys.exit(main())
