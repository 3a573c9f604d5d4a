"""A bound on how fast a carrier may send the caller's audio (sans-I/O).

Theory of operation
-------------------
A carrier sends 20 ms of audio every 20 ms; after a network hiccup it may send a
backlog faster for a moment. :class:`InboundRate` is a token bucket counted in
seconds of audio: it refills at ``factor`` seconds per second (3x real time by
default) and holds at most ``burst`` seconds, so a backlog of a few seconds
passes whole while a stream sending 900 frames per second gets about three
times real time through. What does not fit is dropped (:attr:`Verdict.DROP`)
and counted. A stream that keeps exceeding the bound, with no pause of
:data:`QUIET` seconds between drops, for ``close_after`` seconds is hostile or
broken: :attr:`Verdict.CLOSE`.
"""

from __future__ import annotations

import enum
from typing import Final

QUIET: Final = 1.0  # seconds without a drop that end a spell of exceeding


class Verdict(enum.Enum):
    PASS = "pass"
    DROP = "drop"
    CLOSE = "close"


class InboundRate:
    """Token bucket over seconds of audio; see the module docstring."""

    def __init__(self, factor: float = 3.0, *, burst: float = 3.0, close_after: float = 5.0):
        self.factor = factor
        self.burst = burst
        self.close_after = close_after
        self._tokens = burst
        self._updated: float | None = None
        self._spell_start: float | None = None
        self._last_drop = 0.0
        self.dropped = 0

    def admit(self, seconds: float, now: float) -> Verdict:
        """May ``seconds`` of audio, arriving at ``now``, pass?"""
        if self._updated is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.factor)
        self._updated = now
        if self._tokens >= seconds:
            self._tokens -= seconds
            return Verdict.PASS
        self.dropped += 1
        if self._spell_start is None or now - self._last_drop > QUIET:
            self._spell_start = now
        self._last_drop = now
        if now - self._spell_start >= self.close_after:
            return Verdict.CLOSE
        return Verdict.DROP
