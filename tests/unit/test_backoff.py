"""The retry schedule shared by store writes and message sends: doubling from 30 s, capped at 15 minutes, with
jitter, honouring Retry-After, and long enough to wait out an outage of hours."""

from __future__ import annotations

import random
from datetime import timedelta

from app.core import backoff


def test_the_wait_doubles_from_30_seconds_and_stops_at_15_minutes() -> None:
    rng = random.Random(1)
    waits = [backoff.delay(n, rng=rng).total_seconds() for n in range(1, 12)]
    for n, wait in enumerate(waits, start=1):
        nominal = min(900.0, 30.0 * 2 ** (n - 1))
        assert 0.8 * nominal <= wait <= 1.2 * nominal
    assert backoff.delay(10_000, rng=rng) <= timedelta(seconds=1080)  # no overflow far out


def test_a_retry_after_longer_than_the_wait_is_honoured() -> None:
    assert backoff.delay(1, at_least=120.0) == timedelta(seconds=120)
    assert backoff.delay(8, at_least=5.0) >= timedelta(seconds=720)


def test_all_tries_span_hours_not_minutes() -> None:
    assert timedelta(hours=5) < backoff.horizon() < timedelta(hours=8)
    assert backoff.horizon(6) < timedelta(minutes=13)  # what six tries gave before
