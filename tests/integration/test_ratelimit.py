"""The token bucket, in process and on real Redis (when REDIS_URL is set), on an injected clock: never a sleep,
never a timed assertion."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from app.channels.ratelimit import InProcessTokenBucket, Limit, RateLimiter, RedisTokenBucket

REDIS_URL = os.environ.get("REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="REDIS_URL is not set (embedded default run)")


class FakeClock:
    def __init__(self, at: float = 1_000.0) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


@dataclass
class RedisBuckets:
    client: Any
    prefix: str  # this test's own keys


@pytest.fixture
def redis_buckets() -> Iterator[RedisBuckets]:
    from redis import Redis

    assert REDIS_URL
    client = Redis.from_url(REDIS_URL)
    prefix = f"encore-test:ratelimit:{uuid.uuid4().hex[:8]}:"
    yield RedisBuckets(client, prefix)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


Make = Callable[[FakeClock], RateLimiter]


@pytest.fixture(params=["in-process", pytest.param("redis", marks=[pytest.mark.redis, needs_redis])])
def make(request: pytest.FixtureRequest) -> Make:
    if request.param == "in-process":
        return lambda clock: InProcessTokenBucket(clock=clock)
    redis: RedisBuckets = request.getfixturevalue("redis_buckets")
    return lambda clock: RedisTokenBucket(redis.client, prefix=redis.prefix, clock=clock)


def test_a_full_bucket_gives_its_burst_then_says_how_long_to_wait(make: Make) -> None:
    clock = FakeClock()
    limiter = make(clock)
    limit = Limit(rate=2.0, burst=3)
    assert [limiter.acquire("smtp:mail", limit) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("smtp:mail", limit) == pytest.approx(0.5)  # one token at 2/s
    assert limiter.acquire("smtp:mail", limit) == pytest.approx(0.5)  # a refusal takes nothing
    clock.at += 0.25
    assert limiter.acquire("smtp:mail", limit) == pytest.approx(0.25)
    clock.at += 0.25
    assert limiter.acquire("smtp:mail", limit) == 0.0
    assert limiter.acquire("smtp:mail", limit) == pytest.approx(0.5)


def test_refill_stops_at_the_burst(make: Make) -> None:
    clock = FakeClock()
    limiter = make(clock)
    limit = Limit(rate=10.0, burst=2)
    limiter.acquire("sms:AC1", limit)
    limiter.acquire("sms:AC1", limit)
    clock.at += 3600
    after_an_hour = [limiter.acquire("sms:AC1", limit) for _ in range(3)]
    assert after_an_hour[:2] == [0.0, 0.0] and after_an_hour[2] > 0


def test_providers_have_their_own_buckets(make: Make) -> None:
    clock = FakeClock()
    limiter = make(clock)
    limit = Limit(rate=1.0, burst=1)
    assert limiter.acquire("sms:AC1", limit) == 0.0
    assert limiter.acquire("sms:AC1", limit) == pytest.approx(1.0)
    assert limiter.acquire("webhook:hooks.example", limit) == 0.0


def test_a_clock_that_steps_back_never_mints_tokens(make: Make) -> None:
    clock = FakeClock()
    limiter = make(clock)
    limit = Limit(rate=1.0, burst=1)
    assert limiter.acquire("k", limit) == 0.0
    clock.at -= 100
    assert limiter.acquire("k", limit) > 0
    clock.at += 100
    assert limiter.acquire("k", limit) > 0  # back where it was: still no time has passed for the bucket


def test_cost_and_limits_are_checked(make: Make) -> None:
    limiter = make(FakeClock())
    with pytest.raises(ValueError):
        limiter.acquire("k", Limit(rate=1.0, burst=2), cost=3)
    with pytest.raises(ValueError):
        Limit(rate=0, burst=1)
    with pytest.raises(ValueError):
        Limit(rate=1, burst=0)
    assert limiter.acquire("k", Limit(rate=1.0, burst=4), cost=4) == 0.0


def test_threads_share_one_in_process_bucket() -> None:
    limiter = InProcessTokenBucket(clock=FakeClock())
    granted = race(lambda: limiter, Limit(rate=1.0, burst=25))
    assert granted == 25


@pytest.mark.redis
@needs_redis
def test_separate_connections_share_one_redis_bucket(redis_buckets: RedisBuckets) -> None:
    """Eight workers, each with its own Redis connection (as separate processes have), draw 200 times from a
    bucket of 25 while no time passes: exactly 25 are granted."""
    from redis import Redis

    assert REDIS_URL
    clock = FakeClock()
    clients: list[Any] = []

    def worker_limiter() -> RateLimiter:
        client = Redis.from_url(REDIS_URL)
        clients.append(client)
        return RedisTokenBucket(client, prefix=redis_buckets.prefix, clock=clock)

    try:
        assert race(worker_limiter, Limit(rate=1.0, burst=25)) == 25
    finally:
        for client in clients:
            client.close()


@pytest.mark.redis
@needs_redis
def test_redis_time_is_used_without_an_injected_clock(redis_buckets: RedisBuckets) -> None:
    limiter = RedisTokenBucket(redis_buckets.client, prefix=redis_buckets.prefix)
    limit = Limit(rate=0.001, burst=2)  # one token in 1000 s: no refill to speak of during the test
    assert [limiter.acquire("smtp:mail", limit) for _ in range(2)] == [0.0, 0.0]
    assert limiter.acquire("smtp:mail", limit) > 900
    ttl = redis_buckets.client.pttl(redis_buckets.prefix + "smtp:mail")
    assert ttl > 0  # an idle bucket expires once it would be full again


PROCESS = """
import sys
from app.channels.ratelimit import Limit, RedisTokenBucket
url, prefix = sys.argv[1], sys.argv[2]
limiter = RedisTokenBucket.from_url(url, prefix=prefix, clock=lambda: 5000.0)
print(sum(1 for _ in range(40) if limiter.acquire("sms:shared", Limit(rate=1.0, burst=30)) == 0.0))
"""


@pytest.mark.redis
@needs_redis
def test_two_processes_share_one_redis_bucket(redis_buckets: RedisBuckets) -> None:
    assert REDIS_URL
    procs = [subprocess.Popen([sys.executable, "-c", PROCESS, REDIS_URL, redis_buckets.prefix],
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    counts = [int(proc.communicate(timeout=60)[0]) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    assert sum(counts) == 30  # 80 tries, one bucket of 30, no time passing


def race(limiter_for_worker: Callable[[], RateLimiter], limit: Limit, workers: int = 8, tries: int = 25) -> int:
    start = threading.Barrier(workers)
    granted: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        limiter = limiter_for_worker()
        start.wait()
        mine = sum(1 for _ in range(tries) if limiter.acquire("sms:shared", limit) == 0.0)
        with lock:
            granted.append(mine)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(granted) == workers
    return sum(granted)
