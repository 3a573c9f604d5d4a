"""Inbound reordering: the caller's frames, in order, with no added delay on a clean path.

Theory of operation
-------------------
Telnyx does not guarantee the order of media messages; Twilio's arrive in
order. Each frame carries a counter (the media ``chunk``, else the message's
sequence number). A frame with the expected counter is forwarded at once,
together with any held frames that now follow it without a gap: on a clean
path nothing is ever held. A frame from the future is held, waiting for the
missing one, until either :data:`MAX_HELD` frames are held or the oldest held
frame has waited :data:`MAX_WAIT` seconds; then the gap is given up (counted
as lost) and the held frames go out in order. A frame from the past (a
duplicate, or one that arrives after its gap was given up) is dropped and
counted. Frames without a counter are forwarded as they come.

Sans-I/O: time is passed in; :meth:`Reorderer.next_due` says when a held
frame must be released if nothing else arrives.
"""

from __future__ import annotations

from typing import Final, Generic, TypeVar

MAX_HELD: Final = 5  # frames (100 ms of 20 ms frames)
MAX_WAIT: Final = 0.060  # seconds the oldest held frame may wait

T = TypeVar("T")


class Reorderer(Generic[T]):
    """Restores the order of numbered items; see the module docstring."""

    def __init__(self) -> None:
        self._expected: int | None = None
        self._held: dict[int, T] = {}
        self._held_since: float | None = None
        self.lost = 0
        self.dropped = 0
        self.reordered = 0

    def push(self, counter: int | None, item: T, now: float) -> list[T]:
        """Accept one item; return the items now releasable, in order."""
        if counter is None:
            return [item]
        if self._expected is None:
            self._expected = counter
        if counter < self._expected or counter in self._held:
            self.dropped += 1
            return []
        if counter > self._expected:
            self._held[counter] = item
            self.reordered += 1
            if self._held_since is None:
                self._held_since = now
            if len(self._held) > MAX_HELD:
                return self._give_up_gap()
            return []
        self._expected = counter + 1
        return [item, *self._release_run()]

    def next_due(self) -> float | None:
        return None if self._held_since is None else self._held_since + MAX_WAIT

    def tick(self, now: float) -> list[T]:
        """Give up a gap whose wait has run out; return what that releases."""
        due = self.next_due()
        if due is None or now < due:
            return []
        return self._give_up_gap()

    def _give_up_gap(self) -> list[T]:
        assert self._expected is not None
        first_held = min(self._held)
        self.lost += first_held - self._expected
        self._expected = first_held
        return self._release_run()

    def _release_run(self) -> list[T]:
        assert self._expected is not None
        run = []
        while self._expected in self._held:
            run.append(self._held.pop(self._expected))
            self._expected += 1
        if not self._held:
            self._held_since = None  # frames still held beyond another gap keep the old deadline
        return run
