"""`encore worker` as a real process: its relay finds stored rows and its RQ worker processes them; a worker
killed with SIGKILL mid-stream loses nothing, and the next one finishes the work."""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app import inbox
from app.bootstrap import Container
from app.db import models as t
from tests.conftest import USE_PG
from tests.drills.procs import Proc, encore_env
from tests.helpers import add_shop
from tests.samples import shopify as sample

REDIS_URL = os.environ.get("REDIS_URL")
pytestmark = pytest.mark.skipif(not (REDIS_URL and USE_PG), reason="needs REDIS_URL and a PostgreSQL DATABASE_URL")
ROOT = Path(__file__).resolve().parents[2]


def start_worker(c: Container, schema: str, queue: str, log: Any) -> Proc:
    return Proc([sys.executable, "-m", "app.cli", "worker"], encore_env(c, schema, redis_url=REDIS_URL, queue=queue), log)


def done(c: Container) -> int:
    with c.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(t.InboxRow).where(t.InboxRow.status == "done")) or 0)


def wait_for(predicate: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_worker_process_relays_and_processes_and_survives_sigkill(settings: Any, make_container: Any,
                                                                  pg_schema: str, tmp_path: Path) -> None:
    from app.queue import RQQueue

    name = f"encore-proc-{uuid.uuid4().hex[:8]}"
    assert REDIS_URL
    c: Container = make_container(settings.with_(redis_url=REDIS_URL, queue_name=name), queue=RQQueue(REDIS_URL, name))
    shop_id = add_shop(c)
    for n in range(40):
        order = dict(sample.ORDER, id=1000 + n, fulfillments=[])
        inbox.store(c, shop_id=shop_id, platform="shopify", topic="orders/create", event_id=f"e{n}",
                    body=json.dumps(order).encode())
    with (tmp_path / "worker.log").open("ab") as log:
        worker = start_worker(c, pg_schema, name, log)
        try:
            assert wait_for(lambda: done(c) >= 5), "the first worker processed nothing"
            worker.kill9()  # mid-stream: no goodbye, jobs in flight, leases held
            stopped_at = done(c)
            worker = start_worker(c, pg_schema, name, log)
            assert wait_for(lambda: done(c) == 40, timeout=90), f"stuck at {done(c)} after {stopped_at}"
        finally:
            worker.kill9()
        assert isinstance(c.queue, RQQueue)
        c.queue.rq.empty()
    with c.sessions() as s:
        assert s.scalar(select(func.count()).select_from(t.Order)) == 40
        assert s.scalar(select(func.count()).select_from(t.EventRow).where(t.EventRow.type == "OrderPlaced")) == 40


def test_sigterm_ends_the_worker_instead_of_restarting_its_loop(settings: Any, make_container: Any, pg_schema: str,
                                                               tmp_path: Path) -> None:
    """`encore worker` starts RQ's loop again after a Redis error, but a stop request (SIGTERM, as a process manager
    sends on deploy) must end it: RQ finishes, the worker remembers it was asked, and the process exits 0."""
    import signal

    from app.queue import RQQueue

    name = f"encore-term-{uuid.uuid4().hex[:8]}"
    assert REDIS_URL
    c: Container = make_container(settings.with_(redis_url=REDIS_URL, queue_name=name), queue=RQQueue(REDIS_URL, name))
    shop_id = add_shop(c)
    inbox.store(c, shop_id=shop_id, platform="shopify", topic="orders/create", event_id="e-term",
                body=json.dumps(dict(sample.ORDER, fulfillments=[])).encode())
    with (tmp_path / "worker.log").open("ab") as log:
        worker = start_worker(c, pg_schema, name, log)
        try:
            assert wait_for(lambda: done(c) == 1), "the worker processed nothing"
            worker.popen.send_signal(signal.SIGTERM)
            assert worker.popen.wait(30) == 0
        finally:
            if worker.alive():
                worker.kill9()
    assert "worker_restarting" not in (tmp_path / "worker.log").read_text(errors="replace")
