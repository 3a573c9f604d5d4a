"""Requests per API key: a token bucket per key, time passed in.

Each key may make ``rate`` requests per second on average, in bursts of up to ``rate``
(one second's worth). Every answer carries the figures for the rate-limit headers:
``X-RateLimit-Limit`` (the bucket's size), ``X-RateLimit-Remaining`` (whole requests left
now) and ``X-RateLimit-Reset`` (seconds until the bucket is full again, rounded up); a
refused request also gets ``Retry-After`` (seconds until one request is allowed).

The table of buckets is bounded: past ``max_keys`` the fullest buckets (idle keys) are
dropped, which can only ever give a key more room, never less.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

MAX_KEYS: Final = 10_000


@dataclass(frozen=True, slots=True)
class RateVerdict:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # seconds until the bucket is full again
    retry_after: int  # seconds until the next request is allowed (0 when allowed)

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class RequestRate:
    def __init__(self, rate: float, *, max_keys: int = MAX_KEYS) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str, now: float) -> RateVerdict:
        tokens = self._tokens(key, now)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            self._forget_idle(now)
        missing = self.capacity - tokens
        return RateVerdict(
            allowed=allowed,
            limit=int(self.capacity),
            remaining=int(tokens),
            reset=math.ceil(missing / self.rate) if missing > 0 else 0,
            retry_after=0 if allowed else max(1, math.ceil((1.0 - tokens) / self.rate)),
        )

    def _tokens(self, key: str, now: float) -> float:
        held = self._buckets.get(key)
        if held is None:
            return self.capacity
        tokens, at = held
        return min(self.capacity, tokens + max(0.0, now - at) * self.rate)

    def _forget_idle(self, now: float) -> None:
        by_fullness = sorted(self._buckets, key=lambda k: self._tokens(k, now), reverse=True)
        for key in by_fullness[: len(self._buckets) - self.max_keys // 2]:
            del self._buckets[key]
