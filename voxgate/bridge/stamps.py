"""The timestamps of the caller's frames towards the bot (docs/PROTOCOL.md, ``media``).

Theory of operation
-------------------
The carrier's media clock is followed while it behaves: it never goes back,
and never runs ahead of its first frame by more than the wall time since plus
:data:`CLOCK_SLACK_MS`. A value that breaks either rule (a counter going back,
a jump, 10**30) is a clock fault: the frame is stamped right after the
previous one, and the carrier's clock is followed from there. So stamps never
decrease, a real gap (frames lost while the bot reconnected) shows, and no
stamp runs away from real time. A frame without a carrier timestamp continues
the stamps; before any, frames get none and the bot's dialect counts samples
instead.

Sans-I/O: time is passed in.
"""

from __future__ import annotations

from typing import Final

CLOCK_SLACK_MS: Final = 2000
"""How far the carrier's media clock may run ahead of the wall clock (a burst after a stall)."""
MAX_FIRST_STAMP_MS: Final = 2**31 - 1
"""The largest first timestamp taken from a carrier; a larger one starts the bot's clock at 0."""


class CallerClock:
    """Stamps for the caller's frames; see the module docstring."""

    def __init__(self) -> None:
        self._first: tuple[float, int] | None = None  # when the first stamp was given, and it
        self._offset = 0  # stamp = carrier timestamp + offset
        self._last = 0
        self._last_length = 0

    def stamp(self, carrier_ms: int | None, length_ms: int, now: float) -> int | None:
        """The stamp of a frame of ``length_ms`` the carrier stamped ``carrier_ms``."""
        if self._first is None:
            if carrier_ms is None:
                return None
            stamp = carrier_ms if 0 <= carrier_ms <= MAX_FIRST_STAMP_MS else 0
            self._first = (now, stamp)
        else:
            first_at, first_stamp = self._first
            ceiling = first_stamp + int((now - first_at) * 1000) + CLOCK_SLACK_MS
            following = self._last + self._last_length
            stamp = following if carrier_ms is None else carrier_ms + self._offset
            if not self._last <= stamp <= ceiling:
                stamp = max(self._last, min(following, ceiling))
        if carrier_ms is not None:
            self._offset = stamp - carrier_ms
        self._last, self._last_length = stamp, length_ms
        return stamp
