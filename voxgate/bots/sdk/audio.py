"""Audio in and out of a bot: numpy samples, WAV files and the socket's format.

A bot thinks in int16 (or float) samples at whatever rate its TTS or model produces;
the socket carries the ``media_format`` that ``start`` announced (``pcmu/8000`` unless the
call's ``bot_audio`` asks for another). These helpers convert with :mod:`voxgate.codecs`
(vectorised numpy; no ``audioop``), and read and write WAV files with ``soundfile``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import soundfile

from voxgate.codecs.formats import AudioFormat, encode
from voxgate.codecs.pcm import Pcm
from voxgate.codecs.resample import Resampler

Samples = npt.NDArray[np.integer] | npt.NDArray[np.floating]
"""Mono audio: int16 samples, or floats from -1.0 to 1.0."""


def as_int16(samples: Samples) -> Pcm:
    """``samples`` as int16: floats are scaled from [-1, 1] and clipped; ints are clipped."""
    array: npt.NDArray[Any] = np.asarray(samples)
    if array.ndim != 1:
        raise ValueError(f"audio must be mono (one dimension), not of shape {array.shape}")
    if np.issubdtype(array.dtype, np.floating):
        array = np.rint(np.nan_to_num(array, nan=0.0, posinf=1.0, neginf=-1.0) * 32767.0)
    elif not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"audio must be integer or float samples, not {array.dtype}")
    if array.dtype == np.int16:
        return cast(Pcm, array)
    return cast(Pcm, np.clip(array, -32768, 32767).astype(np.int16))


def resample_whole(samples: Samples, rate_in: int, rate_out: int) -> Pcm:
    """A whole signal at ``rate_out``, aligned with the input (the filter's delay removed)."""
    pcm = as_int16(samples)
    if rate_in == rate_out:
        return pcm
    resampler = Resampler(rate_in, rate_out)
    pad = round(resampler.delay * rate_in)
    out = resampler.process(np.concatenate([pcm, np.zeros(pad, dtype=np.int16)]))
    skip = round(resampler.delay * rate_out)
    return out[skip : skip + len(pcm) * rate_out // rate_in]


def to_format(samples: Samples, sample_rate: int, media_format: AudioFormat) -> bytes:
    """A whole signal (a prompt, a tone) encoded in ``media_format``."""
    return encode(resample_whole(samples, sample_rate, media_format.sample_rate), media_format)


class StreamEncoder:
    """Encodes a stream of sample chunks at one rate into ``media_format``, chunk by chunk.

    Keeps the resampler's history between chunks, so a TTS streaming 24 kHz floats is heard
    without clicks at the joins; a new input rate starts a new resampler.
    """

    def __init__(self, media_format: AudioFormat) -> None:
        self.media_format = media_format
        self._resampler: Resampler | None = None

    def encode(self, samples: Samples, sample_rate: int) -> bytes:
        pcm = as_int16(samples)
        if sample_rate != self.media_format.sample_rate:
            if self._resampler is None or self._resampler.rate_in != sample_rate:
                self._resampler = Resampler(sample_rate, self.media_format.sample_rate)
            pcm = self._resampler.process(pcm)
        return encode(pcm, self.media_format)


def load_audio(path: str | Path) -> tuple[Pcm, int]:
    """A sound file's samples (int16, mono: channels are averaged) and its sample rate."""
    data, rate = soundfile.read(str(path), dtype="int16", always_2d=True)
    samples = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1).astype(np.int16)
    return np.ascontiguousarray(samples), int(rate)


def save_wav(path: str | Path, samples: Samples, sample_rate: int) -> None:
    """Write mono 16-bit PCM WAV."""
    soundfile.write(str(path), as_int16(samples), sample_rate, subtype="PCM_16", format="WAV")


def tone(frequency: float, duration_ms: int, sample_rate: int, level_dbfs: float = -12.0) -> Pcm:
    """A sine tone with 5 ms ramps (a beep before a voicemail, say)."""
    count = sample_rate * duration_ms // 1000
    t = np.arange(count) / sample_rate
    amplitude = 32767 * 10 ** (level_dbfs / 20)
    signal = amplitude * np.sin(2 * np.pi * frequency * t)
    ramp = min(count // 2, sample_rate * 5 // 1000)
    if ramp:
        envelope = np.linspace(0.0, 1.0, ramp)
        signal[:ramp] *= envelope
        signal[-ramp:] *= envelope[::-1]
    return np.rint(signal).astype(np.int16)
