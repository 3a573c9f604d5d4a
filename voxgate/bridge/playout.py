"""Outbound playout: the bot's audio reframed to 20 ms and released on a real-time clock.

Theory of operation
-------------------
Bots send audio in chunks of any size, usually faster than real time (a TTS
engine can deliver ten seconds in one burst). The carrier must receive an
even 50 frames per second, or the caller hears gaps and rushes. So the
playout queue holds the bot's audio (already in the carrier's format) cut into
20 ms frames, interleaved with the bot's marks, and :meth:`Playout.tick`
releases one frame at a time in its *slot* on a 20 ms grid:

- a frame's slot is 20 ms after the previous frame's slot, or the instant the
  frame became complete if that is later: the first frame of an utterance
  goes at once (no added latency when the queue was idle), and a bot that is
  late (a real-time bot whose chunk came a few ms after the slot) moves the
  grid with it instead of leaving later frames to catch up in bursts;
- voxgate's own lateness does not move the grid: after a late wake-up, up to
  :data:`MAX_CATCH_UP` frames are released in one tick to catch up, and a
  frame released more than :data:`LATE_AFTER` after its slot is counted in
  ``frames_late``. Only when the grid is more than :data:`MAX_CATCH_UP`
  frames behind the clock (a stall) does it restart at the present;
- a bot that speaks in real time (an echo, a streaming TTS) delivers each frame
  about when its slot comes. When a frame had to wait for its slot (less than
  a frame time) with nothing queued behind it, the grid is late against the
  bot (its first frame arrived late, say), and every later frame would wait as
  long: so the grid is pulled earlier by up to :data:`GRID_PULL` per frame (a
  19 ms step) until frames no longer wait. A burst, with frames queued behind
  (and its last frame, which waited longer), keeps the exact 20 ms grid;
- but a real-time bot that once delivered several frames together (a hiccup
  on its side or the network's) would keep them standing in the queue for
  the rest of the call, each later frame waiting as long. A queue stands when,
  over the last :data:`STANDING_AFTER` releases, frames were always queued
  behind and their number stayed level (within one frame: audio comes in as
  fast as it goes out). Then the grid is pulled earlier by
  :data:`STANDING_PULL` per frame until the queue empties; the carrier's own
  jitter buffer takes the difference. A burst (its queue shrinks with every
  release) and a bot sending chunks of several frames in real time (its queue
  empties between chunks) keep the exact grid;
- a partial frame (the bot's audio so far does not fill 20 ms) waits for the
  rest: a real-time bot sending 30 or 50 ms chunks with some jitter completes
  it a few ms after its slot. Only when the queue holds nothing else
  :data:`PARTIAL_GRACE` after the frame's slot (or after its first byte came,
  if later) is it padded with the format's silence and released (the bot has
  finished speaking), counted in ``frames_padded``. :meth:`Playout.next_due`
  includes that grace;
- a mark is *reached* when every frame holding audio sent before it has been
  released (a mark sent after a partial frame follows that frame: it does not
  pad it). Facing a carrier that echoes marks (Twilio, Telnyx), the playout
  then asks for a carrier mark and reports the bot's mark when the carrier
  echoes it, which is when the caller has really heard the audio; the
  carrier plays in order, so an echo also reports any earlier mark still
  awaiting its own echo. Facing a leg without marks, the mark is reported one
  frame time after the last slot (the audio has left voxgate and has been
  heard, give or take the far jitter buffer). A mark sent when nothing was
  ever played is reported at once;
- marks are always reported in the order the bot sent them. :meth:`Playout.clear`
  (barge-in) empties the queue at once, asks the carrier to drop what it has
  buffered, and reports every pending mark (awaiting the carrier's echo, due
  by time, queued, or behind a partial frame) as played, in that order: the
  audio before it will never be heard, and the bot must not wait for it.

Bounds: at most ``max_queued_seconds`` of audio is queued (more raises
:class:`QueueFullError`); :attr:`Playout.pending_marks` lets the call cap
marks.

Sans-I/O: time is passed in; outputs are collected as :data:`PlayoutOutput`
values and drained by the call.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from typing import Final

from voxgate.codecs.formats import AudioFormat, Encoding

FRAME_SECONDS: Final = 0.020
MAX_CATCH_UP: Final = 3  # frames released in one tick after a late wake-up
GRID_PULL: Final = 0.001  # how far one frame may pull a late grid earlier
PARTIAL_GRACE: Final = 0.020  # how long a partial frame may wait past its slot
LATE_AFTER: Final = 0.010  # a frame released this long after its slot is late
STANDING_AFTER: Final = 10  # releases with a level queue behind them: a queue that stands
STANDING_PULL: Final = 0.002  # how far one frame pulls the grid of a standing queue

_SILENCE_BYTE: Final = {
    Encoding.PCMU: 0xFF,
    Encoding.PCMA: 0xD5,
    Encoding.L16: 0,
    Encoding.PCM16: 0,
}


@dataclass(frozen=True, slots=True)
class FrameReleased:
    """A 20 ms frame to send to the carrier now; it waited ``waited`` seconds in the queue."""

    payload: bytes
    waited: float = 0.0


@dataclass(frozen=True, slots=True)
class CarrierMarkRequested:
    """Ask the carrier to echo ``name`` once it has played everything sent so far."""

    name: str


@dataclass(frozen=True, slots=True)
class CarrierClearRequested:
    """Ask the carrier to drop the audio it has buffered."""


@dataclass(frozen=True, slots=True)
class BotMarkPlayed:
    """The bot's mark ``name``: the audio before it has played (or was cleared)."""

    name: str


PlayoutOutput = FrameReleased | CarrierMarkRequested | CarrierClearRequested | BotMarkPlayed


@dataclass(slots=True)
class _Mark:
    name: str


@dataclass(slots=True)
class _Frame:
    payload: bytes
    queued_at: float  # when its first byte reached voxgate
    ready_at: float  # when it was complete (or padded): its slot is no earlier


@dataclass(slots=True)
class _Reached:
    """A mark whose audio has been released, not yet reported."""

    name: str
    carrier_name: str | None = None  # reported when the carrier echoes this
    due: float | None = None  # reported at this instant (a leg without marks)


class QueueFullError(Exception):
    """More than the playout's ``max_queued_seconds`` of audio would be queued."""


class Playout:
    """The outbound queue of one call. ``carrier_marks``: the carrier echoes marks."""

    def __init__(
        self, fmt: AudioFormat, *, carrier_marks: bool, max_queued_seconds: float = 600.0
    ) -> None:
        self.format = fmt
        self.frame_bytes = fmt.bytes_per(20)
        self._silence = bytes([_SILENCE_BYTE[fmt.encoding]]) * self.frame_bytes
        self._carrier_marks = carrier_marks
        self._max_queued_seconds = max_queued_seconds
        self._queue: deque[_Frame | _Mark] = deque()
        self._queued_frames = 0
        self._queued_marks = 0
        self._partial = b""
        self._partial_since = 0.0
        self._behind_partial: list[str] = []  # marks sent after the partial frame's audio
        self._last_slot: float | None = None
        self._left_behind: deque[int] = deque(maxlen=STANDING_AFTER)  # queued after releases
        self._reached: deque[_Reached] = deque()  # in the order the bot sent them
        self._mark_numbers = itertools.count(1)
        self._outputs: list[PlayoutOutput] = []
        self.frames_released = 0
        self.frames_cleared = 0
        self.frames_late = 0
        self.frames_padded = 0

    # --- inputs ---------------------------------------------------------------------

    def enqueue(self, audio: bytes, now: float) -> None:
        """Queue audio for the caller, cut into frames (a partial tail waits for more)."""
        data = self._partial + audio
        step = self.frame_bytes
        whole = len(data) - len(data) % step
        queued_seconds = (self._queued_frames + whole // step) * FRAME_SECONDS
        if queued_seconds > self._max_queued_seconds:
            raise QueueFullError(f"more than {self._max_queued_seconds:g} s of audio queued")
        if whole:
            first_byte_at = self._partial_since if self._partial else now
            self._append_frame(_Frame(data[:step], first_byte_at, now))
            for i in range(step, whole, step):
                self._append_frame(_Frame(data[i : i + step], now, now))
        if not self._partial or whole:  # a partial that only grew keeps its age
            self._partial_since = now
        self._partial = data[whole:]

    def mark(self, name: str) -> None:
        """Report ``name`` once the audio queued so far has played."""
        if self._partial:
            self._behind_partial.append(name)
        elif self._queued_frames:
            self._queue.append(_Mark(name))
            self._queued_marks += 1
        else:
            self._reach_mark(name)

    def clear(self) -> None:
        """Barge-in: drop the queue, ask the carrier to drop its buffer, report pending marks."""
        pending = [reached.name for reached in self._reached]
        pending += [item.name for item in self._queue if isinstance(item, _Mark)]
        pending += self._behind_partial
        self.frames_cleared += self._queued_frames + (1 if self._partial else 0)
        self._queue.clear()
        self._left_behind.clear()
        self._queued_frames = self._queued_marks = 0
        self._partial = b""
        self._behind_partial = []
        self._reached.clear()
        self._outputs.append(CarrierClearRequested())
        self._outputs.extend(BotMarkPlayed(name) for name in pending)

    def carrier_mark_played(self, name: str) -> None:
        """The carrier echoed one of our marks: report the bot's marks up to it, in order."""
        names = [reached.carrier_name for reached in self._reached]
        if name not in names:
            return
        for _ in range(names.index(name) + 1):
            self._outputs.append(BotMarkPlayed(self._reached.popleft().name))

    # --- clock ----------------------------------------------------------------------

    def next_due(self) -> float | None:
        """When :meth:`tick` next has something to do, or ``None`` when idle."""
        candidates = [self._reached[0].due] if self._reached else []
        if self._queue:
            candidates.append(self._frame_due())
        elif self._partial:
            candidates.append(self._partial_deadline())
        return min((when for when in candidates if when is not None), default=None)

    def tick(self, now: float) -> None:
        """Release what is due at ``now``."""
        for _ in range(MAX_CATCH_UP):
            frame = self._take_due_frame(now)
            if frame is None:
                break
            self._release(frame, now)
        while self._reached and (due := self._reached[0].due) is not None and due <= now:
            self._outputs.append(BotMarkPlayed(self._reached.popleft().name))

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing awaiting the carrier or the clock."""
        return not (self._queue or self._partial or self._reached)

    @property
    def queued_seconds(self) -> float:
        return self._queued_frames * FRAME_SECONDS

    @property
    def pending_marks(self) -> int:
        """Marks not yet reported: queued, behind a partial frame, awaiting echo or time."""
        return self._queued_marks + len(self._behind_partial) + len(self._reached)

    def drain(self) -> list[PlayoutOutput]:
        outputs, self._outputs = self._outputs, []
        return outputs

    # --- internals ------------------------------------------------------------------

    def _append_frame(self, frame: _Frame) -> None:
        self._queue.append(frame)
        self._queued_frames += 1
        if self._behind_partial:
            # Only a partial frame has marks behind it, and this frame completes (or
            # pads) it: the marks now follow it.
            self._queue.extend(_Mark(name) for name in self._behind_partial)
            self._queued_marks += len(self._behind_partial)
            self._behind_partial = []

    def _frame_due(self) -> float:
        if self._last_slot is None:
            return float("-inf")
        return self._last_slot + FRAME_SECONDS

    def _partial_deadline(self) -> float:
        return max(self._frame_due(), self._partial_since) + PARTIAL_GRACE

    def _take_due_frame(self, now: float) -> _Frame | None:
        """The next frame if its time has come, padding a partial one past its grace."""
        if not self._queue:
            if not self._partial or self._partial_deadline() > now:
                return None
            deadline = self._partial_deadline()
            padded = self._partial + self._silence[len(self._partial) :]
            self._partial = b""
            self.frames_padded += 1
            self._append_frame(_Frame(padded, self._partial_since, deadline))
        elif self._frame_due() > now:
            return None
        item = self._queue.popleft()
        assert isinstance(item, _Frame), "marks never lead the queue"
        self._queued_frames -= 1
        return item

    def _release(self, frame: _Frame, now: float) -> None:
        slot = max(self._frame_due(), frame.ready_at)
        if now - slot > LATE_AFTER:
            self.frames_late += 1
        if slot < now - MAX_CATCH_UP * FRAME_SECONDS:
            slot = now  # too far behind to catch up: restart the grid
        early = slot - frame.ready_at
        behind = self._queued_frames
        self._left_behind.append(behind)
        if 0 < early < FRAME_SECONDS and not behind and not self._partial:
            # A real-time bot's frame waited for its slot with nothing behind it (the
            # last frame of a burst waited longer): the grid runs late against the
            # bot. Pull it earlier, a little per frame.
            slot -= min(early, GRID_PULL)
        elif self._standing():
            slot -= STANDING_PULL  # drain it, a little per frame
        self._last_slot = slot
        self.frames_released += 1
        self._outputs.append(FrameReleased(frame.payload, now - frame.queued_at))
        while self._queue and isinstance(self._queue[0], _Mark):
            mark = self._queue.popleft()
            assert isinstance(mark, _Mark)
            self._queued_marks -= 1
            self._reach_mark(mark.name)

    def _standing(self) -> bool:
        """Whether the queue stands (see the module docstring)."""
        left = self._left_behind
        if len(left) < STANDING_AFTER:
            return False
        low = min(left)
        return low > 0 and max(left) - low <= 1

    def _reach_mark(self, name: str) -> None:
        """Every frame before mark ``name`` has been released."""
        if self._last_slot is None:
            self._outputs.append(BotMarkPlayed(name))  # nothing was ever played before it
        elif self._carrier_marks:
            carrier_name = f"vx{next(self._mark_numbers)}"
            self._reached.append(_Reached(name, carrier_name=carrier_name))
            self._outputs.append(CarrierMarkRequested(carrier_name))
        else:
            self._reached.append(_Reached(name, due=self._last_slot + FRAME_SECONDS))
