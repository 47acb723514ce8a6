"""Writes per minute for one participant link or one researcher, counted in fixed windows.

With ``IPR_REDIS_URL`` set the counts live in Redis, so every gunicorn worker and machine shares
them; without it (the embedded mode, one process) they live in this process's memory.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ipr.errors import N_, TooManyAttempts

WINDOW_SECONDS = 60
log = logging.getLogger("ipr.ratelimit")


class RateLimited(TooManyAttempts):
    """Too many changes in a short time."""

    code = "rate_limited"


class RateLimiter:
    def __init__(self, per_minute: int, redis_url: str = "") -> None:
        self.per_minute = per_minute
        self._redis: Any = None
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(redis_url)
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], int] = {}

    def _count(self, key: str, window: int) -> int:
        if self._redis is not None:
            import redis

            name = f"ipr:rate:{key}:{window}"
            pipe = self._redis.pipeline()
            pipe.incr(name)
            pipe.expire(name, WINDOW_SECONDS * 2)
            try:
                return int(pipe.execute()[0])
            except redis.RedisError:
                # Redis restarting: count in this process rather than refuse a participant's
                # save (the database, not the counter, is what must be up for a write).
                log.warning("rate counter unavailable; counting in this process meanwhile")
        with self._lock:
            if len(self._counts) > 10_000:  # drop the windows that have passed
                self._counts = {k: v for k, v in self._counts.items() if k[1] >= window}
            n = self._counts.get((key, window), 0) + 1
            self._counts[(key, window)] = n
            return n

    def hit(self, key: str) -> None:
        """Count one write under ``key``; RateLimited once the minute's allowance is used."""
        if self.per_minute <= 0:
            return
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        if self._count(key, window) > self.per_minute:
            retry = int((window + 1) * WINDOW_SECONDS - now) + 1
            raise RateLimited(
                N_("Too many changes in a short time. Wait %(s)s seconds and try again."),
                params={"s": retry},
                retry_after=retry,
            )
