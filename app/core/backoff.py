"""How long to wait before asking a busy store or a failing provider again.

The wait doubles from 30 seconds and stops growing at 15 minutes, with ±20% jitter so that many waiting items do
not all come back at once. `ATTEMPTS` tries reach about six hours: a store or mail server that is down for a few
hours is waited out, and whatever was pending then completes on its own."""

from __future__ import annotations

import random
from datetime import timedelta

BASE_S, CAP_S = 30.0, 900.0
ATTEMPTS = 30  # 30 s, 1, 2, 4, 8 min, then 15 min: the 30th try comes about 6 hours after the first


def delay(attempts: int, *, at_least: float = 0.0, rng: random.Random | None = None) -> timedelta:
    """The wait after the `attempts`-th failed try (1 for the first), never shorter than `at_least` seconds
    (a Retry-After the other side asked for)."""
    jitter = (rng or random).uniform(0.8, 1.2)
    return timedelta(seconds=max(at_least, min(CAP_S, BASE_S * 2 ** min(attempts - 1, 20)) * jitter))


def horizon(attempts: int = ATTEMPTS) -> timedelta:
    """How long `attempts` tries span at the least (every wait at its shortest)."""
    return sum((timedelta(seconds=min(CAP_S, BASE_S * 2 ** (n - 1)) * 0.8) for n in range(1, attempts)),
               timedelta())
