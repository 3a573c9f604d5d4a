"""The jitter buffer for the caller's RTP audio: in order, no delay on a clean path, loss concealed.

Theory of operation
-------------------
Sequence numbers are 16 bits and wrap (RFC 3550 section 5.1); each one is
compared by its signed distance from the one expected next, modulo 2**16.

- The expected frame goes out at once, with any held frames that now follow
  it without a gap: on a clean path nothing is ever held, so nothing waits.
- A frame up to :data:`MAX_JUMP` ahead (of the expected one or of a held one)
  is held until the missing ones arrive, or until more than ``max_held``
  frames are held, or the oldest held frame has waited ``max_wait`` seconds
  (:meth:`JitterBuffer.tick` at :meth:`JitterBuffer.next_due`, or the next
  push). Then the gap is given up: counted in ``lost``, and filled with at most
  ``max_concealed`` concealment frames (60 ms by default). A longer gap gets the
  same fade-out and the rest of it is skipped: the caller was silent or the
  path broke, and a minute of made-up audio helps no one.
- A frame from behind is a ``duplicate`` if it was delivered or is held
  (a 64-frame memory), else ``late``: its gap was already given up. Both are
  dropped. So is a frame more than :data:`MAX_JUMP` ahead (``wild``). A run of
  :data:`RESYNC_RUN` such strangers, each the previous plus one, means the
  sender's numbering restarted or jumped for good: what is held goes out and
  the buffer follows the new numbering (``resyncs``).

*Concealment* is simple repetition with fade, not G.711 Appendix I: the last
good frame, decoded to PCM, repeated with a gain ramping down by 6 dB per
frame (1 -> 1/2 over the first concealed frame, 1/2 -> 1/4 over the second...),
re-encoded in the stream's codec. A frame of another size than ``frame_bytes``
is cut or padded with silence first.

Why not :class:`~voxgate.bridge.reorder.Reorderer`: its limits are module
constants (this buffer's are per stream and smaller), and it counts duplicates
and late frames together and hides where its gaps were, both of which this
buffer needs (concealment is inserted at the gap; ``late`` and ``duplicates``
are separate counters). The ordering rules are the same.

One numbering serves every payload type of a source (RFC 3550 section 5.1: the
sequence number counts RTP packets, not audio frames): an RFC 4733 telephone-event
packet between two audio frames takes a number of its own. The stream hands such
numbers in with :meth:`JitterBuffer.push_other`, so that they count as arrived (no
frame, no gap) instead of holding the audio behind them for ``max_wait`` and then
filling them with made-up audio.

Sans-I/O: time is passed in as ``now`` (seconds).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np

from voxgate.codecs.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from voxgate.codecs.pcm import Pcm, pcm16_decode, pcm16_encode
from voxgate.errors import UnsupportedFormatError

MAX_JUMP: Final = 50  # frames (1 s): further ahead is a stranger
RESYNC_RUN: Final = 6  # consecutive strangers that restart the sequence
MEMORY: Final = 64  # delivered frames remembered to tell duplicates from late frames
_MOD: Final = 1 << 16
_HALF: Final = 1 << 15
_MEMORY_MASK: Final = (1 << MEMORY) - 1


@dataclass(frozen=True, slots=True)
class Frame:
    payload: bytes  # one frame in the stream's codec
    concealed: bool


@dataclass(frozen=True, slots=True)
class _Codec:
    silence: bytes  # one byte or one sample of silence
    decode: Callable[[bytes], Pcm]
    encode: Callable[[Pcm], bytes]


_CODECS: Final = {
    "pcmu": _Codec(b"\xff", ulaw_decode, lambda pcm: ulaw_encode(pcm).tobytes()),
    "pcma": _Codec(b"\xd5", alaw_decode, lambda pcm: alaw_encode(pcm).tobytes()),
    "l16": _Codec(
        b"\x00\x00", lambda data: pcm16_decode(data, "big"), lambda pcm: pcm16_encode(pcm, "big")
    ),
}


class JitterBuffer:
    """Restores the order of one stream's frames and conceals the gaps; see the module docstring."""

    def __init__(
        self,
        codec: str,
        frame_bytes: int,
        *,
        max_wait: float = 0.06,
        max_held: int = 3,
        max_concealed: int = 3,
    ) -> None:
        if codec not in _CODECS:
            raise UnsupportedFormatError(f"jitter buffer codec {codec!r}: pcmu, pcma or l16")
        self._codec = _CODECS[codec]
        if frame_bytes <= 0 or frame_bytes % len(self._codec.silence):
            raise UnsupportedFormatError(f"{frame_bytes}-byte frames of {codec}")
        self._frame_bytes = frame_bytes
        self._max_wait = max_wait
        self._max_held = max_held
        self._max_concealed = max_concealed
        self._expected: int | None = None
        self._held: dict[int, tuple[bytes | None, float]] = {}  # sequence -> (payload, arrival)
        self._delivered = 0  # bit i: sequence (expected - 1 - i) was delivered
        self._strangers: list[int] = []
        self._last_good: bytes | None = None
        self.lost = 0
        self.concealed = 0
        self.reordered = 0
        self.late = 0
        self.duplicates = 0
        self.wild = 0
        self.resyncs = 0

    def push(self, sequence: int, payload: bytes, now: float) -> list[Frame]:
        """Accept one frame; return the frames now ready, in order."""
        return self._push(sequence, payload, now)

    def push_other(self, sequence: int, now: float) -> list[Frame]:
        """A packet of another payload type of the same source took ``sequence``.

        A number outside the audio's window (a sender numbering its events apart) is
        ignored: it is no gap in the audio, and no reason to resynchronise it."""
        sequence %= _MOD
        if self._expected is None:
            return []
        delta = self._distance(sequence)
        if delta < 0 or (delta > MAX_JUMP and not self._near_held(sequence)):
            return []
        return self._push(sequence, None, now)

    def _push(self, sequence: int, payload: bytes | None, now: float) -> list[Frame]:
        sequence %= _MOD
        if self._expected is None:
            self._expected = sequence
        delta = self._distance(sequence)
        if delta < 0 or (delta > MAX_JUMP and not self._near_held(sequence)):
            return self._stranger(sequence, delta)
        self._strangers = []
        if sequence in self._held:
            self.duplicates += 1
            return []
        if any(self._distance(held) > delta for held in self._held):
            self.reordered += 1
        if delta > 0:
            self._held[sequence] = (payload, now)
            if len(self._held) > self._max_held:
                return [*self._give_up_gap(), *self.tick(now)]
            return self.tick(now)
        return [*self._deliver(payload), *self._release_run(), *self.tick(now)]

    def next_due(self) -> float | None:
        """When the oldest held frame's wait runs out (None: nothing is held)."""
        if not self._held:
            return None
        return min(arrival for _, arrival in self._held.values()) + self._max_wait

    def tick(self, now: float) -> list[Frame]:
        """Give up every gap whose wait has run out; return what that releases."""
        frames: list[Frame] = []
        due = self.next_due()
        while due is not None and now >= due:
            frames += self._give_up_gap()
            due = self.next_due()
        return frames

    # --- ordering -----------------------------------------------------------------------

    def _distance(self, sequence: int) -> int:
        """How far ``sequence`` is ahead of the expected one (negative: behind)."""
        assert self._expected is not None
        return (sequence - self._expected + _HALF) % _MOD - _HALF

    def _near_held(self, sequence: int) -> bool:
        return any(0 < (sequence - held) % _MOD <= MAX_JUMP for held in self._held)

    def _stranger(self, sequence: int, delta: int) -> list[Frame]:
        if delta > 0:
            self.wild += 1
        elif -delta <= MEMORY and self._delivered >> (-delta - 1) & 1:
            self.duplicates += 1
        else:
            self.late += 1
        if self._strangers and sequence != (self._strangers[-1] + 1) % _MOD:
            self._strangers = []
        self._strangers.append(sequence)
        if len(self._strangers) < RESYNC_RUN:
            return []
        self._strangers = []
        self.resyncs += 1
        frames = [
            self._good(payload)
            for payload in (
                self._held.pop(key)[0] for key in sorted(self._held, key=self._distance)
            )
            if payload is not None
        ]
        self._expected = (sequence + 1) % _MOD
        self._delivered = 0
        return frames

    def _give_up_gap(self) -> list[Frame]:
        first = min(self._held, key=self._distance)
        gap = self._distance(first)
        self.lost += gap
        frames = self._conceal(min(gap, self._max_concealed))
        self._delivered = (self._delivered << gap) & _MEMORY_MASK
        self._expected = first
        return frames + self._release_run()

    def _release_run(self) -> list[Frame]:
        assert self._expected is not None
        frames = []
        while self._expected in self._held:
            frames += self._deliver(self._held.pop(self._expected)[0])
        return frames

    def _deliver(self, payload: bytes | None) -> list[Frame]:
        """The expected frame goes out (nothing for another payload type's number)."""
        assert self._expected is not None
        self._expected = (self._expected + 1) % _MOD
        self._delivered = ((self._delivered << 1) | 1) & _MEMORY_MASK
        return [] if payload is None else [self._good(payload)]

    def _good(self, payload: bytes) -> Frame:
        self._last_good = payload
        return Frame(payload, concealed=False)

    # --- concealment --------------------------------------------------------------------

    def _conceal(self, count: int) -> list[Frame]:
        """``count`` frames repeating the last good one, fading 6 dB per frame."""
        if count <= 0:
            return []
        self.concealed += count
        codec = self._codec
        if self._last_good is None:
            silence = codec.silence * (self._frame_bytes // len(codec.silence))
            return [Frame(silence, concealed=True)] * count
        samples = codec.decode(self._fitted(self._last_good)).astype(np.float64)
        ramp = np.linspace(1.0, 0.5, samples.size, endpoint=False)
        frames = []
        for index in range(count):
            faded = samples * ramp * 0.5**index
            frames.append(Frame(codec.encode(np.round(faded).astype(np.int16)), concealed=True))
        return frames

    def _fitted(self, payload: bytes) -> bytes:
        """``payload`` cut or padded with silence to ``frame_bytes``."""
        missing = self._frame_bytes - len(payload)
        if missing <= 0:
            return payload[: self._frame_bytes]
        silence = self._codec.silence
        return payload + silence * (missing // len(silence)) + silence[: missing % len(silence)]
