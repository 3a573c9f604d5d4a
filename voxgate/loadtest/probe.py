"""One call of the load test, measured: what it sent, what came back, and when.

Theory of operation
-------------------
A :class:`CallProbe` is sans-I/O: the transport (a carrier WebSocket or SIP/RTP)
tells it what happened, with the time, and asks it what to send. Its states are
``placed`` -> ``answered`` -> ``ended`` (or ``placed`` -> ``failed``).

*Sending.* The pacing grid asks :meth:`CallProbe.next_frame` every 20 ms for the
next frame of :mod:`voxgate.loadtest.signal_probe`'s signal and notes when each
marker frame left. Every ``dtmf_every`` seconds (when set) the grid also sends a
key, between two markers (:meth:`CallProbe.next_digit`).

*Receiving.* Every chunk that comes back (8 kHz samples) is placed on the returned
stream's sample count; each sample's time is its chunk's arrival less the time of
the samples after it in the chunk, the same rule the sending side follows, so that a
path that returns frames unchanged measures exactly the frames' round trip.

- **Latency** (mouth to ear, round trip): a marker found at returned sample ``p``
  minus the time its first sample was sent.
- **Loss**: between two markers found, the sender sent ``k`` frames; the returned
  stream should hold ``k * 160`` samples between them, none of them silent. Each
  missing 160 and each silent frame (none of the floor: a gap filled with silence)
  is a lost frame. Frames before the first marker (call set-up) are not counted.
- **Late**: a returned frame whose round trip (placed against the last marker found)
  is more than ``late_after`` over the call's shortest marker round trip: a frame a
  jitter buffer of that depth would have given up.
- **Jitter and gaps**: each chunk's inter-arrival against the audio it carried
  (RFC 3550 section 6.4.1's running estimate, and a histogram); a gap is an
  inter-arrival over two frames.
- **DTMF**: a key sent is delivered when its tone comes back (a bot that answers a
  key with its tone, as the load tester's own echo bot does) or when the transport
  reports a telephone-event; latency from the send to the tone's first sample.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from numpy.typing import NDArray

from voxgate.codecs.dtmf import DtmfDetector
from voxgate.loadtest.signal_probe import (
    DTMF_FRAME,
    FRAME,
    FRAME_SECONDS,
    LOUD_RMS,
    MARKER_EVERY,
    RATE,
    SILENT_RMS,
    MarkerFinder,
    frame,
    marker_kind,
)

DIGITS: Final = "123456789"  # never 0, *, #: echo bots transfer, clear or hang up on those
DTMF_TIMEOUT: Final = 2.0  # a key whose tone has not come back by then is not delivered
GAP_AFTER: Final = 2 * FRAME_SECONDS
HISTOGRAM_LOW_MS: Final = -20
HISTOGRAM_EDGES_MS: Final = np.arange(HISTOGRAM_LOW_MS, 61.0, 1.0)  # the outer ones take the rest
HISTOGRAM_BUCKETS: Final = HISTOGRAM_EDGES_MS.size - 1
KEPT_CHUNKS: Final = 200  # arrival times kept to place a DTMF tone's start (4 s)

Samples = NDArray[np.int16]


@dataclass
class CallFigures:
    """What one call measured; the runner reads the growing lists between snapshots."""

    index: int
    status: str = "placed"  # placed, answered, completed, dropped, failed
    failure: str | None = None
    placed_at: float = 0.0
    setup_ms: float | None = None  # placed -> answered (SIP: the 200; a stream: started)
    first_audio_ms: float | None = None  # placed -> the first audio back
    latencies_ms: list[float] = field(default_factory=list)
    frames_sent: int = 0
    frames_expected: int = 0  # between the first and the last marker found
    frames_lost: int = 0
    frames_late: int = 0
    chunks_received: int = 0
    jitter_ms: float = 0.0
    gaps: int = 0
    max_gap_ms: float = 0.0
    dtmf_sent: int = 0
    dtmf_detected: int = 0
    dtmf_latencies_ms: list[float] = field(default_factory=list)
    deviations: NDArray[np.int64] = field(
        default_factory=lambda: np.zeros(HISTOGRAM_BUCKETS, dtype=np.int64)
    )


class CallProbe:
    """See the module docstring."""

    def __init__(
        self, index: int, *, dtmf_every: float | None = None, late_after: float = 0.060
    ) -> None:
        self.figures = CallFigures(index)
        self._dtmf_every_frames = round(dtmf_every / FRAME_SECONDS) if dtmf_every else 0
        self._late_after = late_after
        self._frame = 0
        self._marker_sent: dict[int, tuple[int, float]] = {}  # kind -> (frame, first sample)
        self._finder = MarkerFinder()
        self._received = 0  # samples received
        self._silent = 0  # silent frames received so far
        self._anchor: tuple[int, int, int, float] | None = None  # frame, position, silent, sent
        self._fastest = float("inf")  # the shortest marker round trip, seconds
        self._last_arrival: float | None = None
        self._last_length = 0
        self._chunks: deque[tuple[int, int, float]] = deque(maxlen=KEPT_CHUNKS)
        self._digits: deque[tuple[str, float]] = deque()  # keys sent, awaiting their tone
        self._dtmf: DtmfDetector | None = None
        self._previous: Samples = np.zeros(0, dtype=np.int16)  # the last chunk received
        self._dtmf_base = 0  # received sample at which the detector started

    # --- the call's life -------------------------------------------------------------

    def placed(self, now: float) -> None:
        self.figures.placed_at = now

    def answered(self, now: float) -> None:
        self.figures.status = "answered"
        self.figures.setup_ms = (now - self.figures.placed_at) * 1000

    def failed(self, reason: str, now: float) -> None:
        self.figures.status = "failed"
        self.figures.failure = reason

    def ended(self, reason: str, now: float) -> None:
        """The call is over: ``local_hangup`` as planned, anything else dropped it early.

        Keys still awaiting their tone had no time to come back: they are not counted."""
        if self.figures.status != "answered":
            return
        self.figures.dtmf_sent -= len(self._digits)
        self._digits.clear()
        if reason == "local_hangup":
            self.figures.status = "completed"
        else:
            self.figures.status = "dropped"
            self.figures.failure = reason

    @property
    def live(self) -> bool:
        return self.figures.status == "answered"

    # --- sending ---------------------------------------------------------------------

    def next_frame(self, now: float) -> Samples:
        """The next 20 ms to send, sent ``now``."""
        number = self._frame
        self._frame += 1
        self.figures.frames_sent += 1
        kind = marker_kind(number)
        if kind is not None:
            self._marker_sent[kind] = (number, now - FRAME_SECONDS)
        return frame(number)

    def next_digit(self, now: float) -> str | None:
        """A key to send now, if one is due (asked once per frame, after next_frame)."""
        every = self._dtmf_every_frames
        number = self._frame - 1
        if not every or number % MARKER_EVERY != DTMF_FRAME or number < every:
            return None
        if (number - DTMF_FRAME) % every >= MARKER_EVERY:
            return None
        digit = DIGITS[self.figures.dtmf_sent % len(DIGITS)]
        self.figures.dtmf_sent += 1
        self._digits.append((digit, now))
        return digit

    # --- receiving -------------------------------------------------------------------

    def audio_received(self, samples: Samples, now: float) -> None:
        figures = self.figures
        if not figures.chunks_received:
            figures.first_audio_ms = (now - figures.placed_at) * 1000
        figures.chunks_received += 1
        start = self._received
        self._received += samples.size
        self._chunks.append((start, samples.size, now))
        self._timing(samples.size, now)
        values = samples.astype(np.float64)
        level = float(np.sqrt(np.dot(values, values) / max(values.size, 1)))
        if level < SILENT_RMS and self._anchor is not None:
            self._silent += round(samples.size / FRAME)
        loud = level > LOUD_RMS
        found = self._finder.feed(values, loud)
        if found is not None:
            self._marker(found.kind, found.position)
        if self._digits:
            self._listen_for_tones(samples, now, loud)
        self._previous = samples

    def dtmf_received(self, digit: str, now: float) -> None:
        """A telephone-event came back (a SIP peer): the oldest key awaiting it is delivered."""
        for sent, at in self._digits:
            if sent == digit:
                self._delivered(digit, at, now)
                return

    def _sample_time(self, position: int) -> float | None:
        """When returned sample ``position`` came (see the module docstring)."""
        for start, length, arrival in reversed(self._chunks):
            if start <= position < start + length:
                return arrival - (start + length - position) / RATE
        return None

    def _timing(self, length: int, now: float) -> None:
        figures = self.figures
        anchor = self._anchor
        if anchor is not None:
            sent_at = anchor[3] + (self._received - anchor[1]) / RATE
            if now - sent_at - self._fastest > self._late_after:
                figures.frames_late += 1
        last = self._last_arrival
        if last is not None:
            gap = now - last
            deviation = gap - self._last_length / RATE
            figures.jitter_ms += (abs(deviation) * 1000 - figures.jitter_ms) / 16
            bucket = math.floor(deviation * 1000 - HISTOGRAM_LOW_MS)  # 1 ms buckets
            figures.deviations[min(max(bucket, 0), HISTOGRAM_BUCKETS - 1)] += 1
            if gap > GAP_AFTER:
                figures.gaps += 1
                figures.max_gap_ms = max(figures.max_gap_ms, gap * 1000)
        self._last_arrival = now
        self._last_length = length

    def _marker(self, kind: int, position: int) -> None:
        sent = self._marker_sent.get(kind)
        received_at = self._sample_time(position)
        if sent is None or received_at is None or received_at < sent[1]:
            return
        number, sent_at = sent
        figures = self.figures
        figures.latencies_ms.append((received_at - sent_at) * 1000)
        self._fastest = min(self._fastest, received_at - sent_at)
        anchor = self._anchor
        if anchor is not None and number > anchor[0]:
            frames = number - anchor[0]
            missing = round((frames * FRAME - (position - anchor[1])) / FRAME)
            figures.frames_expected += frames
            figures.frames_lost += max(0, missing + self._silent - anchor[2])
        self._anchor = (number, position, self._silent, sent_at)

    def _listen_for_tones(self, samples: Samples, now: float, loud: bool) -> None:
        """A tone is loud: the detector runs from the chunk before a loud one to the first
        quiet one after it, not over the whole stream (it costs more than the rest)."""
        detector = self._dtmf
        found = []
        if detector is None and loud:
            detector = self._dtmf = DtmfDetector(RATE)
            before = self._previous
            self._dtmf_base = self._received - samples.size - before.size
            found += detector.feed(before)
        if detector is not None:
            found += detector.feed(samples)
            if not loud:
                found += detector.flush()
                self._dtmf = None
        for digit in found:
            heard = self._sample_time(self._dtmf_base + digit.start)
            for sent, at in self._digits:
                if sent == digit.digit:
                    self._delivered(sent, at, heard if heard is not None else now)
                    break
        while self._digits and now - self._digits[0][1] > DTMF_TIMEOUT:
            self._digits.popleft()
        if not self._digits:
            self._dtmf = None

    def _delivered(self, digit: str, sent_at: float, heard_at: float) -> None:
        self._digits = deque(entry for entry in self._digits if entry != (digit, sent_at))
        self.figures.dtmf_detected += 1
        self.figures.dtmf_latencies_ms.append(max(0.0, heard_at - sent_at) * 1000)
