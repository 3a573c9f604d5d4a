"""Inbound reordering: the caller's frames, in order, with no added delay on a clean path.

Theory of operation
-------------------
Telnyx does not guarantee the order of media messages; Twilio's arrive in
order; RTP (RFC 3550 section 5.1) numbers packets with a 16-bit sequence
number that wraps. Each frame carries a counter (the media ``chunk``, else
the message's sequence number, or the RTP sequence number). Counters are
compared by their distance from the one expected next, modulo
``modulus`` when one is given (for RTP, 2**16: 65535 is followed by 0).

- A frame with the expected counter is forwarded at once, together with any
  held frames that now follow it without a gap: on a clean path nothing is
  ever held.
- A frame up to :data:`MAX_JUMP` ahead (of the expected counter or of a held
  frame) is held, waiting for the missing one, until either :data:`MAX_HELD`
  frames are held or the oldest held frame has waited :data:`MAX_WAIT`
  seconds; then the gap is given up (counted as ``lost``) and the held
  frames go out in order.
- Any other frame is a *stranger*, dropped and counted in ``dropped``: one
  from the past (a duplicate, or one that arrives after its gap was given
  up), or one more than :data:`MAX_JUMP` ahead (a bogus value). The call
  goes on as before. But a run of :data:`RESYNC_RUN` strangers that follow
  each other (each the previous plus one, with no frame of the expected
  sequence between) means the sequence itself changed (a counter that
  restarted, went back or jumped for good): the reorderer forwards what it
  held, then restarts at the run's next counter (counted in ``resyncs``; the
  run itself, 120 ms, is dropped). So no counter value, once or for good,
  mutes the caller for more than a few frames. The price: a carrier that
  replayed more than :data:`RESYNC_RUN` frames it had sent would have the
  rest of the replay heard twice; none does. (aiortc's jitter buffer resets
  on large jumps in the same spirit.)

Frames without a counter are forwarded as they come.

Sans-I/O: time is passed in; :meth:`Reorderer.next_due` says when a held
frame must be released if nothing else arrives.
"""

from __future__ import annotations

from typing import Final, Generic, TypeVar

MAX_HELD: Final = 5  # frames (100 ms of 20 ms frames)
MAX_WAIT: Final = 0.060  # seconds the oldest held frame may wait
MAX_JUMP: Final = 50  # frames (1 s): further ahead is a stranger
RESYNC_RUN: Final = 6  # consecutive strangers that restart the sequence

T = TypeVar("T")


class Reorderer(Generic[T]):
    """Restores the order of numbered items; see the module docstring."""

    def __init__(self, modulus: int | None = None) -> None:
        if modulus is not None and modulus <= 4 * MAX_JUMP:
            raise ValueError(f"modulus {modulus} too small for a jump bound of {MAX_JUMP}")
        self._modulus = modulus
        self._expected: int | None = None
        self._held: dict[int, T] = {}
        self._held_since: float | None = None
        self._strangers: list[int] = []  # counters of the current run of strangers
        self.lost = 0
        self.dropped = 0
        self.reordered = 0
        self.resyncs = 0

    def push(self, counter: int | None, item: T, now: float) -> list[T]:
        """Accept one item; return the items now releasable, in order."""
        if counter is None:
            return [item]
        counter = self._wrap(counter)
        if self._expected is None:
            self._expected = counter
        delta = self._distance(counter)
        if delta < 0 or (delta > MAX_JUMP and not self._near_held(counter)):
            return self._stranger(counter)
        self._strangers = []
        if counter in self._held:
            self.dropped += 1
            return []
        if delta > 0:
            self._held[counter] = item
            self.reordered += 1
            if self._held_since is None:
                self._held_since = now
            if len(self._held) > MAX_HELD:
                return self._give_up_gap()
            return []
        self._expected = self._wrap(counter + 1)
        return [item, *self._release_run()]

    def next_due(self) -> float | None:
        return None if self._held_since is None else self._held_since + MAX_WAIT

    def tick(self, now: float) -> list[T]:
        """Give up a gap whose wait has run out; return what that releases."""
        due = self.next_due()
        if due is None or now < due:
            return []
        return self._give_up_gap()

    # --- internals ------------------------------------------------------------------

    def _wrap(self, counter: int) -> int:
        return counter if self._modulus is None else counter % self._modulus

    def _distance(self, counter: int) -> int:
        """How far ``counter`` is ahead of the expected one (negative: behind)."""
        assert self._expected is not None
        delta = counter - self._expected
        if self._modulus is not None:
            half = self._modulus // 2
            delta = (delta + half) % self._modulus - half
        return delta

    def _near_held(self, counter: int) -> bool:
        """Within :data:`MAX_JUMP` after a held frame (the held run goes on)."""
        return any(0 < self._wrap(counter - held) <= MAX_JUMP for held in self._held)

    def _stranger(self, counter: int) -> list[T]:
        self.dropped += 1
        if self._strangers and counter != self._wrap(self._strangers[-1] + 1):
            self._strangers = []
        self._strangers.append(counter)
        if len(self._strangers) < RESYNC_RUN:
            return []
        self._strangers = []
        self.resyncs += 1
        released = [self._held[key] for key in sorted(self._held, key=self._distance)]
        self._held.clear()
        self._held_since = None
        self._expected = self._wrap(counter + 1)
        return released

    def _give_up_gap(self) -> list[T]:
        first_held = min(self._held, key=self._distance)
        self.lost += self._distance(first_held)
        self._expected = first_held
        return self._release_run()

    def _release_run(self) -> list[T]:
        assert self._expected is not None
        run = []
        while self._expected in self._held:
            run.append(self._held.pop(self._expected))
            self._expected = self._wrap(self._expected + 1)
        if not self._held:
            self._held_since = None  # frames still held beyond another gap keep the old deadline
        return run
