"""Rate limits: fixed-window counters in Redis (shared by every API process), in memory when embedded.

A key is counted in windows of `window` seconds; past `limit` hits the caller is told how many
seconds remain until the window turns (the `Retry-After`). The counters are a guard, not a record:
when Redis cannot be reached the limiter lets requests through (and logs it) rather than take the
whole API down with it; /readyz reports Redis as down in that case.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from api.settings import Settings

log = logging.getLogger(__name__)

REDIS_TIMEOUT_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `limit` hits per `window` seconds."""

    limit: int
    window: int


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: Limit) -> float | None:
        """Count one hit on `key`; None when within the limit, else the seconds to wait."""

    async def blocked(self, key: str, limit: Limit) -> float | None:
        """Without counting: None when `key` is within the limit, else the seconds to wait."""

    async def reset(self, key: str) -> None:
        """Forget the hits on `key` (e.g. failed logins after a successful one)."""

    async def close(self) -> None:
        """Release connections."""


def _window(limit: Limit, now: float) -> tuple[int, float]:
    index = int(now // limit.window)
    return index, (index + 1) * limit.window - now


class MemoryRateLimiter:
    """Counters in this process: enough for the embedded default, which runs one process."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._counts: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def _key(self, key: str, limit: Limit) -> tuple[tuple[str, int], float]:
        index, remaining = _window(limit, self._clock())
        return (f"{key}:{limit.window}", index), remaining

    async def hit(self, key: str, limit: Limit) -> float | None:
        slot, remaining = self._key(key, limit)
        with self._lock:
            if len(self._counts) > 100_000:
                self._counts.clear()  # bounded memory; old windows are never read again
            count = self._counts.get(slot, 0) + 1
            self._counts[slot] = count
        return math.ceil(remaining) if count > limit.limit else None

    async def blocked(self, key: str, limit: Limit) -> float | None:
        slot, remaining = self._key(key, limit)
        with self._lock:
            count = self._counts.get(slot, 0)
        return math.ceil(remaining) if count >= limit.limit else None

    async def reset(self, key: str) -> None:
        prefix = f"{key}:"
        with self._lock:
            for slot in [s for s in self._counts if s[0].startswith(prefix)]:
                del self._counts[slot]

    async def close(self) -> None:
        return None


class RedisRateLimiter:
    """Counters in Redis: INCR on a key per window, expiring with the window."""

    def __init__(self, url: str, *, prefix: str) -> None:
        self._client = aioredis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
        )
        self._prefix = prefix

    def _key(self, key: str, limit: Limit) -> tuple[str, float]:
        index, remaining = _window(limit, time.time())
        return f"{self._prefix}{key}:{limit.window}:{index}", remaining

    async def hit(self, key: str, limit: Limit) -> float | None:
        redis_key, remaining = self._key(key, limit)
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.incr(redis_key)
                pipe.expire(redis_key, limit.window + 1)
                count, _ = await asyncio.wait_for(pipe.execute(), REDIS_TIMEOUT_SECONDS * 2)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("rate limiter unavailable, letting the request through: %s", type(exc).__name__)
            return None
        return math.ceil(remaining) if int(count) > limit.limit else None

    async def blocked(self, key: str, limit: Limit) -> float | None:
        redis_key, remaining = self._key(key, limit)
        try:
            raw = await asyncio.wait_for(self._client.get(redis_key), REDIS_TIMEOUT_SECONDS * 2)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("rate limiter unavailable, letting the request through: %s", type(exc).__name__)
            return None
        return math.ceil(remaining) if raw is not None and int(raw) >= limit.limit else None

    async def reset(self, key: str) -> None:
        try:
            keys = [k async for k in self._client.scan_iter(match=f"{self._prefix}{key}:*", count=100)]
            if keys:
                await self._client.delete(*keys)
        except (RedisError, OSError) as exc:
            log.warning("rate limiter unavailable, could not reset: %s", type(exc).__name__)

    async def close(self) -> None:
        await self._client.aclose()


def build_rate_limiter(settings: Settings) -> RateLimiter:
    """Redis when LINLI_REDIS_URL is set, else counters in this process."""
    if settings.redis_url:
        return RedisRateLimiter(settings.redis_url, prefix=f"{settings.redis_namespace}:rl:")
    return MemoryRateLimiter()
