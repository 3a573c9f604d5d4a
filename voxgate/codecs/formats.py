"""Audio formats and the transcoder between two of them.

An :class:`AudioFormat` names what travels on one side of a call: encoding,
sample rate and channel count. A :class:`Transcoder` turns one format into
another for a stream of chunks. When both sides agree it is a passthrough
that returns the very same bytes object (no copy, no work); mu-law <-> A-law
at one rate is a byte translation; anything else is decode, resample (one
stateful resampler per transcoder, so one per direction of a call) and encode.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from voxgate.codecs.g711 import (
    alaw_decode,
    alaw_encode,
    alaw_to_ulaw,
    ulaw_decode,
    ulaw_encode,
    ulaw_to_alaw,
)
from voxgate.codecs.pcm import Pcm, pcm16_decode, pcm16_encode
from voxgate.codecs.resample import SUPPORTED_RATES, Resampler
from voxgate.errors import InvalidAudioError, UnsupportedFormatError


class Encoding(enum.StrEnum):
    PCMU = "pcmu"  # G.711 mu-law
    PCMA = "pcma"  # G.711 A-law
    L16 = "l16"  # linear 16-bit, big-endian (RTP, RFC 3551 section 4.5.11)
    PCM16 = "pcm16"  # linear 16-bit, little-endian (WebSocket bots, WAV)


_ENCODING_NAMES: Final = {
    "pcmu": Encoding.PCMU,
    "ulaw": Encoding.PCMU,
    "mulaw": Encoding.PCMU,
    "g711_ulaw": Encoding.PCMU,
    "audio/x-mulaw": Encoding.PCMU,
    "audio/pcmu": Encoding.PCMU,
    "pcma": Encoding.PCMA,
    "alaw": Encoding.PCMA,
    "g711_alaw": Encoding.PCMA,
    "audio/x-alaw": Encoding.PCMA,
    "audio/pcma": Encoding.PCMA,
    "l16": Encoding.L16,
    "pcm16": Encoding.PCM16,
    "s16le": Encoding.PCM16,
    "linear16": Encoding.PCM16,
    "audio/pcm": Encoding.PCM16,
}

_BYTES_PER_SAMPLE: Final = {
    Encoding.PCMU: 1,
    Encoding.PCMA: 1,
    Encoding.L16: 2,
    Encoding.PCM16: 2,
}

_DECODERS: Final[dict[Encoding, Callable[[bytes | bytearray | memoryview], Pcm]]] = {
    Encoding.PCMU: ulaw_decode,
    Encoding.PCMA: alaw_decode,
    Encoding.L16: lambda data: pcm16_decode(data, "big"),
    Encoding.PCM16: lambda data: pcm16_decode(data, "little"),
}

_ENCODERS: Final[dict[Encoding, Callable[[Pcm], bytes]]] = {
    Encoding.PCMU: lambda samples: ulaw_encode(samples).tobytes(),
    Encoding.PCMA: lambda samples: alaw_encode(samples).tobytes(),
    Encoding.L16: lambda samples: pcm16_encode(samples, "big"),
    Encoding.PCM16: lambda samples: pcm16_encode(samples, "little"),
}


def parse_encoding(name: str) -> Encoding:
    """The encoding a common name denotes (``"pcmu"``, ``"audio/x-mulaw"``, ``"g711_alaw"``...)."""
    try:
        return _ENCODING_NAMES[name.strip().lower()]
    except KeyError:
        known = ", ".join(sorted(_ENCODING_NAMES))
        raise UnsupportedFormatError(f"unknown audio encoding {name!r} (known: {known})") from None


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """Encoding, sample rate and channel count of one side's audio (mono only)."""

    encoding: Encoding
    sample_rate: int = 8000
    channels: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.encoding, Encoding):
            raise UnsupportedFormatError(f"encoding must be an Encoding, not {self.encoding!r}")
        if self.sample_rate not in SUPPORTED_RATES:
            rates = ", ".join(str(rate) for rate in SUPPORTED_RATES)
            raise UnsupportedFormatError(
                f"sample rate {self.sample_rate} Hz is not supported ({rates})"
            )
        if self.channels != 1:
            raise UnsupportedFormatError(
                f"only mono audio is supported, not {self.channels} channels"
            )

    @classmethod
    def parse(cls, text: str) -> AudioFormat:
        """``"pcmu"``, ``"audio/x-mulaw"``, ``"pcm16/24000"``: an encoding, optionally a rate."""
        name, _, rate = text.rpartition("/")
        if name and rate.strip().isdigit():
            return cls(parse_encoding(name), int(rate))
        return cls(parse_encoding(text))

    def __str__(self) -> str:
        return f"{self.encoding.value}/{self.sample_rate}"

    @property
    def bytes_per_sample(self) -> int:
        return _BYTES_PER_SAMPLE[self.encoding]

    def samples_per(self, milliseconds: int) -> int:
        return self.sample_rate * milliseconds // 1000

    def bytes_per(self, milliseconds: int) -> int:
        """Size of ``milliseconds`` of audio (160 bytes for 20 ms of PCMU)."""
        return self.samples_per(milliseconds) * self.bytes_per_sample


PCMU_8K: Final = AudioFormat(Encoding.PCMU, 8000)
PCMA_8K: Final = AudioFormat(Encoding.PCMA, 8000)


def decode(data: bytes | bytearray | memoryview, fmt: AudioFormat) -> Pcm:
    """int16 samples of ``data`` in format ``fmt``."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidAudioError(f"encoded audio must be bytes, not {type(data).__name__}")
    return _DECODERS[fmt.encoding](data)


def encode(samples: Pcm, fmt: AudioFormat) -> bytes:
    """``samples`` (int16, already at ``fmt.sample_rate``) encoded as ``fmt``."""
    return _ENCODERS[fmt.encoding](samples)


class Transcoder:
    """Converts a stream of audio chunks from ``source`` format to ``target`` format.

    Stateful when the rates differ (the resampler keeps history), so use one
    per direction of a call and feed it the chunks in order.
    """

    __slots__ = ("_resampler", "_translation", "source", "target")

    def __init__(self, source: AudioFormat, target: AudioFormat) -> None:
        self.source = source
        self.target = target
        self._resampler: Resampler | None = None
        self._translation: Callable[[bytes], bytes] | None = None
        if source.sample_rate != target.sample_rate:
            self._resampler = Resampler(source.sample_rate, target.sample_rate)
        elif (source.encoding, target.encoding) == (Encoding.PCMU, Encoding.PCMA):
            self._translation = ulaw_to_alaw
        elif (source.encoding, target.encoding) == (Encoding.PCMA, Encoding.PCMU):
            self._translation = alaw_to_ulaw

    @property
    def is_passthrough(self) -> bool:
        return self.source == self.target

    @property
    def delay(self) -> float:
        """Seconds of delay the conversion adds (the resampler's group delay, if any)."""
        return self._resampler.delay if self._resampler else 0.0

    def convert(self, data: bytes | bytearray | memoryview) -> bytes:
        """The next chunk of ``data`` in the target format."""
        if self.source == self.target:
            return self._pass(data)
        if self._translation is not None:
            return self._translation(bytes(data))
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidAudioError(f"encoded audio must be bytes, not {type(data).__name__}")
        samples = _DECODERS[self.source.encoding](data)
        if self._resampler is not None:
            samples = self._resampler.process(samples)
        return _ENCODERS[self.target.encoding](samples)

    def _pass(self, data: bytes | bytearray | memoryview) -> bytes:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidAudioError(f"encoded audio must be bytes, not {type(data).__name__}")
        if len(data) % self.source.bytes_per_sample:
            raise InvalidAudioError(
                f"{self.source} data must hold whole 2-byte samples, got {len(data)} bytes"
            )
        return data if isinstance(data, bytes) else bytes(data)

    def reset(self) -> None:
        """Forget the resampler's history (a new stream on the same transcoder)."""
        if self._resampler is not None:
            self._resampler.reset()
