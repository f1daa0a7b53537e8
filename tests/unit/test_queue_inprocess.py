"""The in-process queue tells the relay when its oldest waiting job was enqueued (its lost-job test)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from app.queue import InProcessQueue


def test_the_oldest_waiting_job_is_the_first_enqueued_and_none_when_empty() -> None:
    q = InProcessQueue(autostart=False)
    assert q.oldest_waiting() == [None]
    before = datetime.now(UTC)
    q.enqueue("relay")
    time.sleep(0.01)
    q.enqueue("sweep")
    [head] = q.oldest_waiting()
    assert head is not None and before - timedelta(seconds=1) < head <= before + timedelta(seconds=0.01)
    assert q.depth() == 2
