"""Outbound playout: the bot's audio reframed to 20 ms and released on a real-time clock.

Theory of operation
-------------------
Bots send audio in chunks of any size, usually faster than real time (a TTS
engine can deliver ten seconds in one burst). The carrier must receive an
even 50 frames per second, or the caller hears gaps and rushes. So the
playout queue holds the bot's audio (already in the carrier's format) cut into
20 ms frames, interleaved with the bot's marks, and :meth:`Playout.tick`
releases one frame at a time at its due instant:

- the first frame of an utterance is due at once (no added latency when the
  queue was idle), each next one 20 ms after the previous release
  (``due = max(now, last_release + 20 ms)``), and a late wake-up does not shift
  the schedule for good: up to :data:`MAX_CATCH_UP` frames are released in one
  tick to catch up;
- a bot that speaks in real time (an echo, a streaming TTS) delivers each frame
  about when its slot comes. When a frame had to wait for its slot with nothing
  queued behind it, the grid is late against the bot (its first frame arrived
  late, say), and every later frame would wait as long: so the grid is pulled
  earlier by up to :data:`GRID_PULL` per frame (a 19 ms step) until frames no
  longer wait. A burst, with frames queued behind, keeps the exact 20 ms grid;
- a partial frame at the end of the audio waits for more audio; when the queue
  holds nothing else at its due instant it is padded with the format's
  silence and released (the bot has finished speaking);
- a mark is *reached* when every frame queued before it has been released.
  Facing a carrier that echoes marks (Twilio, Telnyx), the playout then asks
  for a carrier mark and reports the bot's mark when the carrier echoes it,
  which is when the caller has really heard the audio. Facing a leg without
  marks, the mark is reported one frame time after the last release (the
  audio has left voxgate and has been heard, give or take the far jitter
  buffer);
- :meth:`Playout.clear` (barge-in) empties the queue at once, asks the carrier
  to drop what it has buffered, and reports every pending mark, queued or
  awaiting the carrier's echo, as played: the audio before it will never be
  heard, and the bot must not wait for it.

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
MAX_QUEUED_SECONDS: Final = 600.0  # ten minutes of audio queued at most

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
    queued_at: float


class QueueFullError(Exception):
    """More than :data:`MAX_QUEUED_SECONDS` of audio would be queued."""


class Playout:
    """The outbound queue of one call. ``carrier_marks``: the carrier echoes marks."""

    def __init__(self, fmt: AudioFormat, *, carrier_marks: bool) -> None:
        self.format = fmt
        self.frame_bytes = fmt.bytes_per(20)
        self._silence = bytes([_SILENCE_BYTE[fmt.encoding]]) * self.frame_bytes
        self._carrier_marks = carrier_marks
        self._queue: deque[_Frame | _Mark] = deque()
        self._partial = b""
        self._partial_since = 0.0
        self._queued_frames = 0
        self._last_release: float | None = None
        self._awaiting_echo: dict[str, list[str]] = {}  # carrier mark -> bot marks
        self._due_marks: list[tuple[float, str]] = []  # marks reported at a time (no echo)
        self._mark_numbers = itertools.count(1)
        self._outputs: list[PlayoutOutput] = []
        self.frames_released = 0
        self.frames_cleared = 0

    # --- inputs ---------------------------------------------------------------------

    def enqueue(self, audio: bytes, now: float) -> None:
        """Queue audio for the caller, cut into frames (a partial tail waits for more)."""
        had_partial = bool(self._partial)
        data = self._partial + audio if had_partial else audio
        whole = len(data) - len(data) % self.frame_bytes
        queued_seconds = (self._queued_frames + whole // self.frame_bytes) * FRAME_SECONDS
        if queued_seconds > MAX_QUEUED_SECONDS:
            raise QueueFullError(f"more than {MAX_QUEUED_SECONDS:.0f} s of audio queued")
        step = self.frame_bytes
        self._queue.extend(_Frame(data[i : i + step], now) for i in range(0, whole, step))
        self._queued_frames += whole // step
        self._partial = data[whole:]
        if not (had_partial and whole == 0):  # a partial that only grew keeps its age
            self._partial_since = now

    def mark(self, name: str) -> None:
        """Report ``name`` once the audio queued so far has played."""
        self._flush_partial()
        if not self._queue:
            self._reach_mark(name, self._last_release)
        else:
            self._queue.append(_Mark(name))

    def clear(self) -> None:
        """Barge-in: drop the queue, ask the carrier to drop its buffer, report pending marks."""
        pending = [item.name for item in self._queue if isinstance(item, _Mark)]
        self.frames_cleared += self._queued_frames
        self._queue.clear()
        self._queued_frames = 0
        self._partial = b""
        self._outputs.append(CarrierClearRequested())
        for names in self._awaiting_echo.values():
            pending[:0] = names
        self._awaiting_echo.clear()
        pending[:0] = [name for _, name in self._due_marks]
        self._due_marks.clear()
        self._outputs.extend(BotMarkPlayed(name) for name in pending)

    def carrier_mark_played(self, name: str) -> None:
        """The carrier echoed one of our marks: report the bot's marks behind it."""
        for bot_mark in self._awaiting_echo.pop(name, []):
            self._outputs.append(BotMarkPlayed(bot_mark))

    # --- clock ----------------------------------------------------------------------

    def next_due(self) -> float | None:
        """When :meth:`tick` next has something to do, or ``None`` when idle."""
        candidates = [when for when, _ in self._due_marks[:1]]
        if self._queue or self._partial:
            candidates.append(self._frame_due())
        return min(candidates) if candidates else None

    def tick(self, now: float) -> None:
        """Release what is due at ``now``."""
        for _ in range(MAX_CATCH_UP):
            if not (self._queue or self._partial) or self._frame_due() > now:
                break
            self._release_next(now)
        while self._due_marks and self._due_marks[0][0] <= now:
            self._outputs.append(BotMarkPlayed(self._due_marks.pop(0)[1]))

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing awaiting the carrier or the clock."""
        return not (self._queue or self._partial or self._awaiting_echo or self._due_marks)

    @property
    def queued_seconds(self) -> float:
        return self._queued_frames * FRAME_SECONDS

    def drain(self) -> list[PlayoutOutput]:
        outputs, self._outputs = self._outputs, []
        return outputs

    # --- internals ------------------------------------------------------------------

    def _frame_due(self) -> float:
        if self._last_release is None:
            return float("-inf")
        return self._last_release + FRAME_SECONDS

    def _release_next(self, now: float) -> None:
        if not self._queue:
            self._flush_partial()
        item = self._queue.popleft()
        assert isinstance(item, _Frame), "marks never lead the queue"
        self._queued_frames -= 1
        due = self._frame_due()
        waited = now - item.queued_at
        # Keep the 20 ms grid when catching up; restart it after an idle spell.
        self._last_release = due if due >= now - MAX_CATCH_UP * FRAME_SECONDS else now
        if waited > 0 and not self._queue and not self._partial:
            # A real-time bot's frame waited for its slot with nothing behind it: the
            # grid runs late against the bot. Pull it earlier, a little per frame.
            self._last_release -= min(waited, GRID_PULL)
        self.frames_released += 1
        self._outputs.append(FrameReleased(item.payload, waited))
        while self._queue and isinstance(self._queue[0], _Mark):
            mark = self._queue.popleft()
            assert isinstance(mark, _Mark)
            self._reach_mark(mark.name, self._last_release)

    def _flush_partial(self) -> None:
        if self._partial:
            padded = self._partial + self._silence[len(self._partial) :]
            self._queue.append(_Frame(padded, self._partial_since))
            self._queued_frames += 1
            self._partial = b""

    def _reach_mark(self, name: str, last_release: float | None) -> None:
        """Every frame before mark ``name`` has been released."""
        if last_release is None:
            self._outputs.append(BotMarkPlayed(name))  # nothing was ever played before it
        elif self._carrier_marks:
            carrier_name = f"vx{next(self._mark_numbers)}"
            self._awaiting_echo[carrier_name] = [name]
            self._outputs.append(CarrierMarkRequested(carrier_name))
        else:
            self._due_marks.append((last_release + FRAME_SECONDS, name))
