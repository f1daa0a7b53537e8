"""Provider rate limits: a token bucket per provider key, in this process or shared through Redis.

`acquire` never sleeps. It takes a token and answers 0.0, or takes nothing and answers how many seconds to wait
until the token will be there, so the dispatcher defers the message (or `RateLimitedChannel` answers "retry
after N s") instead of holding a worker. A bucket holds up to `burst` tokens and refills at `rate` per second;
a new bucket starts full.

`InProcessTokenBucket` serves the embedded default (one process). `RedisTokenBucket` keeps each bucket in one
Redis hash, updated by one Lua script, so every worker process on every host draws from the same bucket
atomically. Its time is Redis's own clock (`TIME`) unless a clock is injected (the tests), so the hosts' clocks
need not agree.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from app.core.ports import Channel, OutboundMessage, SendResult


@dataclass(frozen=True)
class Limit:
    rate: float  # tokens per second
    burst: float  # bucket size

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)) or not (self.burst >= 1 and math.isfinite(self.burst)):
            raise ValueError(f"a rate limit needs rate > 0 and burst >= 1, not {self.rate}/{self.burst}")


class RateLimiter(Protocol):
    def acquire(self, key: str, limit: Limit, cost: float = 1.0) -> float:
        """Take `cost` tokens from `key`'s bucket and return 0.0, or take none and return the seconds to wait."""
        ...


def _check_cost(limit: Limit, cost: float) -> None:
    if not 0 < cost <= limit.burst:
        raise ValueError(f"cost {cost} can never be paid from a bucket of {limit.burst}")


class InProcessTokenBucket:
    """Buckets in this process's memory, safe across its threads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def acquire(self, key: str, limit: Limit, cost: float = 1.0) -> float:
        _check_cost(limit, cost)
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.get(key, (limit.burst, now))
            if now > at:
                tokens, at = min(limit.burst, tokens + (now - at) * limit.rate), now
            tokens = min(tokens, limit.burst)  # the limit may have been lowered since
            if tokens >= cost:
                self._buckets[key] = (tokens - cost, at)
                return 0.0
            self._buckets[key] = (tokens, at)
            return (cost - tokens) / limit.rate


# KEYS[1] bucket; ARGV rate, burst, cost, now ("" = the Redis server's clock). Returns the wait as a string: a
# Lua number in a reply would be truncated to an integer.
_ACQUIRE = """
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = tonumber(ARGV[4])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if not tokens or not at then
  tokens, at = burst, now
end
if now > at then
  tokens = math.min(burst, tokens + (now - at) * rate)
  at = now
end
tokens = math.min(tokens, burst)
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
else
  wait = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'at', string.format('%.17g', at))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 60000)
return string.format('%.17g', wait)
"""


class RedisTokenBucket:
    """Buckets in Redis, one hash per key (expiring once it would be full again), shared by every process."""

    def __init__(self, redis: Any, *, prefix: str = "encore:ratelimit:", clock: Callable[[], float] | None = None
                 ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._clock = clock
        self._script = redis.register_script(_ACQUIRE)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisTokenBucket:
        from redis import Redis

        return cls(Redis.from_url(url), **kwargs)

    def acquire(self, key: str, limit: Limit, cost: float = 1.0) -> float:
        _check_cost(limit, cost)
        now = "" if self._clock is None else repr(float(self._clock()))
        answer = self._script(keys=[self._prefix + key], args=[repr(limit.rate), repr(limit.burst), repr(cost), now])
        return float(answer.decode() if isinstance(answer, bytes) else answer)


class RateLimitedChannel:
    """A channel behind a token bucket: a message over the provider's rate is not sent but answered "retry",
    reason "throttled", after the bucket's wait. `key` names the provider (or, for webhooks, the destination);
    give a function to derive it from the message."""

    def __init__(self, channel: Channel, limiter: RateLimiter, limit: Limit,
                 key: str | Callable[[OutboundMessage], str]) -> None:
        self._channel = channel
        self._limiter = limiter
        self._limit = limit
        self._key = key

    @property
    def name(self) -> str:
        return self._channel.name

    def send(self, message: OutboundMessage) -> SendResult:
        key = self._key if isinstance(self._key, str) else self._key(message)
        wait = self._limiter.acquire(key, self._limit)
        if wait > 0:
            return SendResult.retry(f"over the rate limit of {key}", reason="throttled", retry_after=wait)
        return self._channel.send(message)
