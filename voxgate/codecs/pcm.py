"""Linear 16-bit PCM in both byte orders.

RTP's L16 (RFC 3551 section 4.5.11) and Telnyx's L16 are big-endian, network
byte order; WebSocket bots and WAV files use little-endian. Internally voxgate
carries audio as native int16 numpy arrays.
"""

from __future__ import annotations

from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray

from voxgate.errors import InvalidAudioError

Pcm = NDArray[np.int16]
"""Linear audio inside voxgate: one-dimensional int16 samples, native byte order."""

ByteOrder = Literal["little", "big"]
_DTYPES: Final = {"little": np.dtype("<i2"), "big": np.dtype(">i2")}


def as_pcm(samples: object) -> Pcm:
    """``samples`` checked to be a one-dimensional int16 array, else InvalidAudioError."""
    if not isinstance(samples, np.ndarray):
        raise InvalidAudioError(
            f"linear audio must be a numpy int16 array, not {type(samples).__name__}"
        )
    if samples.dtype != np.int16:
        raise InvalidAudioError(f"linear audio must have dtype int16, not {samples.dtype}")
    if samples.ndim != 1:
        raise InvalidAudioError(f"linear audio must be one-dimensional, not {samples.ndim}-D")
    return samples


def _dtype(byte_order: str) -> np.dtype[np.int16]:
    try:
        return _DTYPES[byte_order]
    except KeyError:
        raise InvalidAudioError(
            f"byte order must be 'little' or 'big', not {byte_order!r}"
        ) from None


def pcm16_decode(data: bytes | bytearray | memoryview, byte_order: ByteOrder = "little") -> Pcm:
    """int16 samples of 16-bit PCM bytes; an odd byte count is an error, not a truncation."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidAudioError(f"PCM16 data must be bytes, not {type(data).__name__}")
    if len(data) % 2:
        raise InvalidAudioError(f"PCM16 data must hold whole 2-byte samples, got {len(data)} bytes")
    wire = np.frombuffer(data, dtype=_dtype(byte_order))
    return wire.astype(np.int16)


def pcm16_encode(samples: Pcm, byte_order: ByteOrder = "little") -> bytes:
    """16-bit PCM bytes of int16 samples in the given byte order."""
    return as_pcm(samples).astype(_dtype(byte_order), copy=False).tobytes()
