"""The pacing grid: every call's 20 ms frames, sent on one clock.

Theory of operation
-------------------
One timer per *slot*, not one task per call: the 20 ms are cut into :data:`SLOTS`
slots 1 ms apart, and a call joins the slot of its number modulo :data:`SLOTS`, so
the node sees a steady stream of frames instead of every call's frame at the same
instant. A slot's timer fires every 20 ms on a fixed schedule (``begin + k * 20 ms +
slot ms``, never drifting with the loop's lateness) and asks each of its calls'
probes for the next frame (and a key, when one is due), handing them to the call's
transport.

When the load tester's own loop is late (its CPU is short), a slot sends the frames
it missed at once, up to :data:`MAX_CATCH_UP`, and counts the lateness in
:attr:`SendGrid.late_ticks`: a figure that says the generator, not the node, was the
bottleneck. Beyond that the schedule restarts at the present.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final, Protocol

from voxgate.loadtest.probe import CallProbe, Samples
from voxgate.loadtest.signal_probe import FRAME_SECONDS

SLOTS: Final = 20
FRAME: Final = FRAME_SECONDS
LATE_AFTER: Final = 0.005  # a tick this late counts in late_ticks
MAX_CATCH_UP: Final = 5


class PacedCall(Protocol):
    probe: CallProbe

    def send_audio(self, samples: Samples) -> None: ...

    def send_dtmf(self, digit: str) -> None: ...


class SendGrid:
    """See the module docstring."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._slots: list[list[PacedCall]] = [[] for _ in range(SLOTS)]
        self._next_slot = 0
        self._begin = self._loop.time() + 0.005
        self._handles: list[asyncio.TimerHandle | None] = [None] * SLOTS
        self.late_ticks = 0
        self.ticks = 0
        self.max_lateness = 0.0

    def add(self, call: PacedCall) -> None:
        slot = self._next_slot
        self._next_slot = (slot + 1) % SLOTS
        self._slots[slot].append(call)
        if self._handles[slot] is None:
            self._arm(slot, self._first_due(slot))

    def remove(self, call: PacedCall) -> None:
        for calls in self._slots:
            if call in calls:
                calls.remove(call)
                return

    @property
    def calls(self) -> int:
        return sum(len(calls) for calls in self._slots)

    def close(self) -> None:
        for handle in self._handles:
            if handle is not None:
                handle.cancel()
        self._handles = [None] * SLOTS

    def _first_due(self, slot: int) -> float:
        offset = self._begin + slot * FRAME / SLOTS
        now = self._loop.time()
        periods = max(0, int((now - offset) / FRAME) + 1)
        return offset + periods * FRAME

    def _arm(self, slot: int, due: float) -> None:
        self._handles[slot] = self._loop.call_at(due, self._tick, slot, due)

    def _tick(self, slot: int, due: float) -> None:
        calls = self._slots[slot]
        if not calls:
            self._handles[slot] = None
            return
        lateness = self._loop.time() - due
        self.ticks += 1
        if lateness > LATE_AFTER:
            self.late_ticks += 1
            self.max_lateness = max(self.max_lateness, lateness)
        frames = 1 + min(MAX_CATCH_UP, int(lateness / FRAME))
        now = time.monotonic()
        for call in list(calls):
            probe = call.probe
            if not probe.live:
                continue
            for _ in range(frames):
                call.send_audio(probe.next_frame(now))
                digit = probe.next_digit(now)
                if digit is not None:
                    call.send_dtmf(digit)
        next_due = due + frames * FRAME
        if lateness > MAX_CATCH_UP * FRAME:
            next_due = self._first_due(slot)
        self._arm(slot, next_due)
