"""Stateful streaming sample-rate conversion: polyphase FIR in numpy.

Theory of operation
-------------------
Converting ``rate_in`` to ``rate_out`` is upsampling by ``L`` and decimating
by ``M`` (``L/M = rate_out/rate_in`` in lowest terms) around one linear-phase
low-pass FIR ``h`` running at the prototype rate ``rate_in * L``. Output
sample ``n`` is ``L * sum_k h[p + k*L] * x[floor(n*M/L) - k]`` with phase
``p = n*M mod L``: only the taps that meet real input samples are computed.

Outputs come in blocks of ``L``; block ``b`` reads the input window that
starts at ``b*M``. With the input in one float64 buffer, the windows of a whole
chunk are one strided view and the chunk's output is one matrix product of
that view with a ``(window, L)`` coefficient matrix. A chunk is processed up
to the last whole block of ``M`` input samples; the remainder (fewer than
``M`` samples, none at all for 20 ms frames at the supported rates) waits for
the next chunk, together with the filter's history.

Why streaming equals one-shot exactly: every coefficient is a multiple of
2**-30 and every sample an integer below 2**15, so each product and every
partial sum is exactly representable in float64 (under 2**53 units of
2**-30). The sums are therefore exact whatever order BLAS adds them in, and
the output fed frame by frame is bit-identical to the output of the whole
signal, with no clicks at frame joins. Rounding is to nearest (ties to even),
with saturation to the int16 range.

The filter
----------
Designed at first use, or by :func:`prepare_filters` (``voxgate serve`` calls
it at start-up: a design takes up to a few hundred ms), and cached, as a
minimax-approximating weighted least
squares fit (Lawson's iteration on a dense frequency grid). With ``fn`` the
Nyquist frequency of the lower of the two rates: passband 0 to ``0.9 fn``,
stopband from ``1.1 fn`` (the transition is centred on ``fn``, so what folds
back lands above ``0.9 fn``), ``2 * round_up(7.5 * rate_proto / (2 fn)) + 1``
taps. Measured on every supported pair (tests/codecs/test_resample.py checks
each bound):

- passband ripple 0.16 dB peak to peak (bound: 0.5 dB up to 0.9 fn);
- stopband attenuation 70 dB (bound: 60 dB from 1.1 fn);
- group delay about 7.5 / fn: 1.875 ms for every pair involving 8 kHz, 1 ms
  or less for the others (bound: 2 ms); constant (linear phase), and a whole
  number of samples at both rates, see :attr:`Resampler.delay`;
- a 1 kHz tone taken 8 kHz -> 24 kHz -> 8 kHz: SNR about 100 dB, the int16
  rounding floor (bound: 50 dB).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Final, cast

import numpy as np
from numpy.typing import NDArray

from voxgate.codecs.pcm import Pcm, as_pcm
from voxgate.errors import UnsupportedFormatError

SUPPORTED_RATES: Final = (8000, 16000, 24000, 32000, 48000)
PASSBAND_EDGE: Final = 0.9  # of the lower Nyquist frequency
STOPBAND_EDGE: Final = 1.1
_HALF_LENGTH_PER_RATIO: Final = 7.5  # taps per side, per (prototype rate / lower Nyquist)
_LAWSON_ITERATIONS: Final = 40
_STOPBAND_WEIGHT: Final = 30.0
_COEFFICIENT_STEP: Final = 2.0**-30

# numpy's clip ufunc itself: np.clip wraps it in Python-level checks that cost
# more than the clipping of a 20 ms frame.
_clip = cast(
    Callable[..., NDArray[np.float64]], getattr(getattr(np, "_core", np), "umath", np).clip
)


@cache
def lowpass(ratio: int, half_length: int) -> NDArray[np.float64]:
    """Linear-phase low-pass of ``2*half_length + 1`` taps, unit DC gain.

    ``ratio`` is the prototype rate over the lower Nyquist frequency; the band
    edges are ``PASSBAND_EDGE/ratio`` and ``STOPBAND_EDGE/ratio`` of the rate.
    """
    nyquist = 1.0 / ratio
    passband = np.linspace(0.0, PASSBAND_EDGE * nyquist, 8 * half_length)
    stopband = np.linspace(STOPBAND_EDGE * nyquist, 0.5, 16 * half_length)
    omega = 2 * np.pi * np.concatenate([passband, stopband])
    desired = np.concatenate([np.ones_like(passband), np.zeros_like(stopband)])
    weight = np.concatenate([np.ones_like(passband), np.full_like(stopband, _STOPBAND_WEIGHT)])
    basis = np.cos(np.outer(omega, np.arange(half_length + 1)))
    basis[:, 1:] *= 2  # amplitude = a0 + 2 * sum(a_k cos(k w)) for a symmetric filter
    lawson = weight / weight.sum()
    for _ in range(_LAWSON_ITERATIONS):
        weighted = basis.T * lawson
        half = np.linalg.solve(weighted @ basis, weighted @ desired)
        lawson = lawson * np.abs(basis @ half - desired) * weight
        lawson /= lawson.sum()
    taps: NDArray[np.float64] = np.concatenate([half[:0:-1], half])
    taps /= taps.sum()
    return taps


def _check_rate(rate: int) -> None:
    if rate not in SUPPORTED_RATES:
        supported = ", ".join(str(r) for r in SUPPORTED_RATES)
        raise UnsupportedFormatError(f"sample rate {rate} Hz is not supported ({supported})")


def prepare_filters() -> None:
    """Design every supported pair's filter now (a few hundred ms in all).

    A filter is otherwise designed at its first use, in the middle of a call: a
    server calls this at start-up, so that the first call at a new pair of rates
    does not hold up the others.
    """
    for rate_in in SUPPORTED_RATES:
        for rate_out in SUPPORTED_RATES:
            if rate_in != rate_out:
                common = math.gcd(rate_in, rate_out)
                _coefficient_matrix(rate_out // common, rate_in // common)


@cache
def _coefficient_matrix(up: int, down: int) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
    """The prototype filter (gain ``up``), the ``(window, up)`` matrix taking one
    input window to one output block, and the delay in prototype samples."""
    lower_nyquist = min(up, down) / 2  # in units of the prototype rate / (up * down)
    ratio = round(up * down / lower_nyquist)
    block = math.lcm(up, down)
    half_length = block * math.ceil(_HALF_LENGTH_PER_RATIO * ratio / block)
    taps = np.zeros(up * math.ceil((2 * half_length + 1) / up))
    taps[: 2 * half_length + 1] = lowpass(ratio, half_length) * up
    taps = np.round(taps / _COEFFICIENT_STEP) * _COEFFICIENT_STEP
    per_phase = taps.size // up
    offsets = [j * down // up for j in range(up)]
    window = per_phase + offsets[-1]
    matrix = np.zeros((window, up))
    for j, offset in enumerate(offsets):
        phase = taps[(j * down) % up :: up]
        matrix[per_phase - 1 + offset - np.arange(per_phase), j] = phase
    taps.setflags(write=False)  # shared by every resampler of the pair (cached)
    matrix.setflags(write=False)
    return taps, matrix, half_length


@dataclass(frozen=True, slots=True)
class _Workspace:
    windows: NDArray[np.float64]  # strided view of the input buffer, one row per block
    rows: NDArray[np.float64]  # the same rows, contiguous
    sums: NDArray[np.float64]  # one output block per row


class Resampler:
    """Streaming converter of mono int16 audio from one sample rate to another.

    Feed chunks of any length to :meth:`process`; the concatenated outputs
    equal the output of the whole signal in one call. One instance per
    direction of a call: it keeps the filter's history.
    """

    __slots__ = (
        "_buffer",
        "_down",
        "_history",
        "_matrix",
        "_pending",
        "_up",
        "_workspaces",
        "delay",
        "prototype",
        "prototype_rate",
        "rate_in",
        "rate_out",
    )

    def __init__(self, rate_in: int, rate_out: int) -> None:
        _check_rate(rate_in)
        _check_rate(rate_out)
        self.rate_in = rate_in
        self.rate_out = rate_out
        common = math.gcd(rate_in, rate_out)
        self._up = rate_out // common
        self._down = rate_in // common
        taps, self._matrix, half_length = _coefficient_matrix(self._up, self._down)
        self.prototype: NDArray[np.float64] = taps
        """The low-pass filter exactly as applied, at :attr:`prototype_rate`; its DC gain
        is the upsampling factor, which makes up for the zeros upsampling inserts."""
        self.prototype_rate = rate_in * self._up
        self.delay: float = 0.0 if rate_in == rate_out else half_length / self.prototype_rate
        """Group delay in seconds (a whole number of samples at both rates)."""
        # Inputs kept from before the chunk: all but the newest reach of the first block.
        self._history = self._matrix.shape[0] - 1 - (self._up - 1) * self._down // self._up
        self._buffer = np.zeros(self._history + 4096)
        self._pending = 0
        self._workspaces: dict[int, _Workspace] = {}

    def process(self, samples: Pcm) -> Pcm:
        """Resampled audio for ``samples`` (and any remainder held from before)."""
        chunk = as_pcm(samples)
        if self.rate_in == self.rate_out:
            return chunk.copy()
        start = self._history + self._pending
        end = start + chunk.size
        if end > self._buffer.size:
            self._grow(end)
        self._buffer[start:end] = chunk
        blocks = (self._pending + chunk.size) // self._down
        consumed = blocks * self._down
        self._pending = self._pending + chunk.size - consumed
        out = np.empty(blocks * self._up, dtype=np.int16)
        if blocks:
            work = self._workspace(blocks)
            np.copyto(work.rows, work.windows)  # BLAS wants rows that do not overlap
            np.dot(work.rows, self._matrix, out=work.sums)
            _clip(work.sums, -32768.0, 32767.0, out=work.sums)
            np.rint(work.sums.reshape(-1), out=out, casting="unsafe")
            self._buffer[: end - consumed] = self._buffer[consumed:end]
        return out

    def reset(self) -> None:
        """Forget the history, as if nothing had been fed."""
        self._buffer[:] = 0
        self._pending = 0

    def _workspace(self, blocks: int) -> _Workspace:
        """Arrays for a chunk of ``blocks`` blocks, made once per chunk size and reused."""
        workspace = self._workspaces.get(blocks)
        if workspace is None:
            window = self._matrix.shape[0]
            item = self._buffer.itemsize
            workspace = _Workspace(
                windows=np.ndarray(
                    (blocks, window),
                    dtype=np.float64,
                    buffer=self._buffer,
                    strides=(self._down * item, item),
                ),
                rows=np.empty((blocks, window)),
                sums=np.empty((blocks, self._up)),
            )
            self._workspaces[blocks] = workspace
        return workspace

    def _grow(self, needed: int) -> None:
        grown = np.zeros(max(needed, 2 * self._buffer.size))
        grown[: self._buffer.size] = self._buffer
        self._buffer = grown
        self._workspaces.clear()
