"""The caller's audio the load tester sends, and how it finds its markers in what comes back.

Theory of operation
-------------------
Every call sends the same 8 kHz signal, one 20 ms frame at a time: a quiet two-tone
*floor* (about -36 dBFS) in every frame, so that a frame that comes back silent is a
frame the path lost (a SIP peer such as voxgate fills a gap in its stream with the
codec's silence rather than leaving a hole), and every :data:`MARKER_EVERY` frames a
*marker* frame instead: 20 ms of loud band-limited noise, one of :data:`MARKER_KINDS`
fixed patterns, taken in turn. A marker survives what a bridge may do to audio
(G.711 both ways, resampling to 16 or 24 kHz and back), so it can be found by
correlation wherever it lands in the returned stream, to the sample.

:class:`MarkerFinder` reads the returned stream: a frame much louder than the floor
opens a window of :data:`WINDOW` samples around it; once the window is complete it is
correlated (normalised, by FFT) with every pattern, and a peak above
:data:`MIN_CORRELATION` is a marker of that kind at that sample. A window that matches
no pattern (a DTMF tone, speech from a bot that does not echo) is ignored.

Markers of one kind are :data:`MARKER_KINDS` x :data:`MARKER_EVERY` frames (4 s) apart,
so a marker found is the last one of its kind that was sent: round trips of up to 4 s
are told apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Final

import numpy as np
from numpy.typing import NDArray

RATE: Final = 8000
FRAME: Final = 160  # samples in 20 ms
FRAME_SECONDS: Final = 0.020
MARKER_EVERY: Final = 25  # frames: a marker every 500 ms
MARKER_KINDS: Final = 8
CYCLE: Final = MARKER_EVERY * MARKER_KINDS  # frames before the signal repeats (4 s)
MARKER_RMS: Final = 6000.0
FLOOR_LEVEL: Final = 350.0  # amplitude of each of the floor's two tones
FLOOR_HZ: Final = (425.0, 675.0)
LOUD_RMS: Final = 2000.0  # a returned frame this loud may hold a marker
SILENT_RMS: Final = 60.0  # a returned frame this quiet carried none of the floor: lost
WINDOW: Final = 512  # samples correlated around a loud frame
LEAD: Final = FRAME  # of which before the loud frame's first sample
MIN_CORRELATION: Final = 0.6
DTMF_FRAME: Final = 12  # a key is sent in this frame of a marker period (between markers)

Samples = NDArray[np.int16]


def _band_limited_noise(seed: int) -> NDArray[np.float64]:
    """A 20 ms pattern of noise between 300 and 3,000 Hz (what any telephone path passes)."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(FRAME))
    freqs = np.fft.rfftfreq(FRAME, 1 / RATE)
    spectrum[(freqs < 300) | (freqs > 3000)] = 0
    pattern = np.fft.irfft(spectrum, FRAME)
    pattern *= np.hanning(FRAME) ** 0.25  # soft edges, still 20 ms of energy
    return pattern * (MARKER_RMS / float(np.sqrt(np.mean(pattern**2))))


@cache
def patterns() -> NDArray[np.float64]:
    """The marker patterns, one row each (float, at their sending level)."""
    return np.stack([_band_limited_noise(1000 + kind) for kind in range(MARKER_KINDS)])


@cache
def cycle() -> NDArray[np.int16]:
    """The whole signal's cycle: CYCLE frames of FRAME samples (a read-only array)."""
    t = np.arange(CYCLE * FRAME) / RATE
    floor = sum(FLOOR_LEVEL * np.sin(2 * np.pi * hz * t) for hz in FLOOR_HZ)
    frames = np.asarray(floor).reshape(CYCLE, FRAME)
    for kind in range(MARKER_KINDS):
        frames[kind * MARKER_EVERY] = patterns()[kind]
    out = np.clip(np.round(frames), -32768, 32767).astype(np.int16)
    out.flags.writeable = False
    return out


def frame(number: int) -> Samples:
    """The ``number``-th frame of a call's audio (frame 0 is the first sent)."""
    row: Samples = cycle()[number % CYCLE]
    return row


def marker_kind(number: int) -> int | None:
    """The marker kind frame ``number`` carries, or None."""
    if number % MARKER_EVERY:
        return None
    return (number // MARKER_EVERY) % MARKER_KINDS


@cache
def _pattern_spectra() -> tuple[NDArray[np.complex128], NDArray[np.float64]]:
    rows = patterns()
    norms = np.sqrt(np.sum(rows**2, axis=1))
    return np.conj(np.fft.rfft(rows / norms[:, None], WINDOW)), norms


@dataclass(frozen=True, slots=True)
class MarkerFound:
    kind: int
    position: int  # the marker's first sample, counted from the first sample received
    correlation: float


def find_marker(window: NDArray[np.float64], start: int) -> MarkerFound | None:
    """The best marker in ``window`` (WINDOW samples that begin at sample ``start``)."""
    spectra, _ = _pattern_spectra()
    correlation = np.fft.irfft(np.fft.rfft(window, WINDOW)[None, :] * spectra, WINDOW)
    lags = WINDOW - FRAME + 1
    energy = np.concatenate(([0.0], np.cumsum(window**2)))
    local = np.sqrt(np.maximum(energy[FRAME : FRAME + lags] - energy[:lags], 1e-9))
    normalised = correlation[:, :lags] / local[None, :]
    kind, lag = np.unravel_index(int(np.argmax(normalised)), normalised.shape)
    best = float(normalised[kind, lag])
    if best < MIN_CORRELATION:
        return None
    return MarkerFound(int(kind), start + int(lag), best)


class MarkerFinder:
    """Feed it the returned stream (any chunk sizes); it hands back the markers it finds."""

    def __init__(self) -> None:
        self._tail = np.zeros(0, dtype=np.float64)  # the last samples, for a window's lead
        self._received = 0  # samples fed so far
        self._window: list[NDArray[np.float64]] = []
        self._window_start = -1  # sample position of an open window, -1 when none
        self._skip_until = 0  # no new window before this sample (one per marker)

    def feed(self, samples: NDArray[np.float64], loud: bool) -> MarkerFound | None:
        """``samples`` that came back; ``loud``: their level says a marker may be in them."""
        start = self._received
        self._received += samples.size
        found = None
        if self._window_start >= 0:
            self._window.append(samples)
            found = self._try_window()
        elif loud and start >= self._skip_until:
            self._window_start = max(0, start - LEAD)
            lead = self._tail[self._tail.size - (start - self._window_start) :]
            self._window = [lead, samples]
            found = self._try_window()
        if samples.size >= LEAD:
            self._tail = samples[-LEAD:]
        else:
            self._tail = np.concatenate((self._tail, samples))[-LEAD:]
        return found

    def _try_window(self) -> MarkerFound | None:
        if self._received - self._window_start < WINDOW:
            return None
        window = np.concatenate(self._window)[:WINDOW]
        start = self._window_start
        self._window_start = -1
        self._window = []
        found = find_marker(window, start)
        self._skip_until = found.position + FRAME if found else start + WINDOW - LEAD
        return found
