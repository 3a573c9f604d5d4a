"""G.711 mu-law and A-law (ITU-T G.711), vectorised with numpy.

Linear audio is int16 (the 16-bit scale of CPython's ``audioop``); G.711 codes
are uint8. Results are bit-exact with ``audioop.lin2ulaw``/``ulaw2lin`` and
``lin2alaw``/``alaw2lin`` for every one of the 65,536 inputs and 256 codes.

How it is fast: the encoder and decoder are written once as vectorised integer
formulas (the segment search of G.711's reference C code, on whole arrays) and
evaluated at import time over their whole domain, which gives lookup tables.

- Encoding is one gather: the int16 samples, viewed as uint16, index a
  65,536-entry byte table (64 KiB, L2-resident).
- Decoding takes *two* codes per gather: the code stream viewed as uint16
  indexes a 65,536-entry table of uint32 words, each holding the two decoded
  int16 samples already in memory order (256 KiB). Half the gathers of the
  obvious ``table[codes]``, and uint16 indices instead of uint8 ones (which
  numpy's fancy indexing converts slowly), make it faster than audioop's C loop.
  A short chunk (a 20 ms frame) takes the plain 256-entry gather instead: at
  that size the cost is numpy's per-call overhead, and one call beats three.
- mu-law <-> A-law is a 256-byte table for ``bytes.translate``: G.711 decode
  of one law then encode in the other, the same result as a round trip
  through linear.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np
from numpy.typing import NDArray

from voxgate.codecs.pcm import Pcm, as_pcm
from voxgate.errors import InvalidAudioError

Codes = NDArray[np.uint8]
CodeInput = bytes | bytearray | memoryview | Codes

# Segment end points of G.711's reference encoder, for the 14-bit (mu-law)
# and 13-bit (A-law) magnitudes.
_ULAW_SEGMENT_ENDS: Final = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEGMENT_ENDS: Final = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
_ULAW_CLIP: Final = 8159  # largest 14-bit magnitude mu-law represents
_ULAW_BIAS: Final = 0x84 >> 2  # the bias 132 of the 16-bit scale, in 14-bit units


def _ulaw_encode_formula(pcm: NDArray[np.int16]) -> Codes:
    """mu-law code of each sample: sign, 3-bit segment, 4-bit step, all inverted."""
    value = pcm.astype(np.int32) >> 2  # 16-bit -> 14-bit, rounding toward -inf
    negative = value < 0
    magnitude = np.minimum(np.abs(value), _ULAW_CLIP) + _ULAW_BIAS
    segment = np.searchsorted(_ULAW_SEGMENT_ENDS, magnitude)
    step = (magnitude >> (np.minimum(segment, 7) + 1)) & 0xF
    code = np.where(segment >= 8, 0x7F, (segment << 4) | step)
    return (code ^ np.where(negative, 0x7F, 0xFF)).astype(np.uint8)


def _ulaw_decode_formula(codes: Codes) -> Pcm:
    inverted = ~codes.astype(np.int32) & 0xFF
    segment = (inverted & 0x70) >> 4
    magnitude = (((inverted & 0x0F) << 3) + 0x84) << segment
    return np.where(inverted & 0x80, 0x84 - magnitude, magnitude - 0x84).astype(np.int16)


def _alaw_encode_formula(pcm: NDArray[np.int16]) -> Codes:
    """A-law code of each sample: sign, 3-bit segment, 4-bit step, even bits inverted."""
    value = pcm.astype(np.int32) >> 3  # 16-bit -> 13-bit, rounding toward -inf
    negative = value < 0
    magnitude = np.where(negative, -value - 1, value)
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, magnitude)  # at most 7 for 13 bits
    step = (magnitude >> np.maximum(segment, 1)) & 0xF
    code = (segment << 4) | step
    return (code ^ np.where(negative, 0x55, 0xD5)).astype(np.uint8)


def _alaw_decode_formula(codes: Codes) -> Pcm:
    toggled = codes.astype(np.int32) ^ 0x55
    segment = (toggled & 0x70) >> 4
    magnitude = ((toggled & 0x0F) << 4) + np.where(segment == 0, 8, 0x108)
    magnitude = magnitude << np.maximum(segment - 1, 0)
    signed: Pcm = np.where(toggled & 0x80, magnitude, -magnitude).astype(np.int16)
    return signed


def _encode_table(formula: Callable[[Pcm], Codes]) -> Codes:
    """The formula evaluated at every int16 value, indexed by the value's uint16 bits."""
    return formula(np.arange(65536, dtype=np.uint16).view(np.int16))


def _pair_table(single: Pcm) -> NDArray[np.uint32]:
    """Entry ``i``: the two samples of the code pair whose memory bytes are ``i``."""
    code_pairs = np.arange(65536, dtype=np.uint16).view(np.uint8).reshape(-1, 2)
    return np.ascontiguousarray(single[code_pairs]).view(np.uint32).reshape(-1)


_EVERY_CODE: Final = np.arange(256, dtype=np.uint8)
ULAW_DECODE_TABLE: Final[Pcm] = _ulaw_decode_formula(_EVERY_CODE)
ALAW_DECODE_TABLE: Final[Pcm] = _alaw_decode_formula(_EVERY_CODE)
ULAW_ENCODE_TABLE: Final[Codes] = _encode_table(_ulaw_encode_formula)
ALAW_ENCODE_TABLE: Final[Codes] = _encode_table(_alaw_encode_formula)
_ULAW_PAIRS: Final = _pair_table(ULAW_DECODE_TABLE)
_ALAW_PAIRS: Final = _pair_table(ALAW_DECODE_TABLE)
ULAW_TO_ALAW: Final[bytes] = ALAW_ENCODE_TABLE[ULAW_DECODE_TABLE.view(np.uint16)].tobytes()
ALAW_TO_ULAW: Final[bytes] = ULAW_ENCODE_TABLE[ALAW_DECODE_TABLE.view(np.uint16)].tobytes()


def as_codes(codes: object) -> Codes:
    """G.711 codes as a uint8 array (bytes-like objects are viewed, not copied)."""
    if isinstance(codes, bytes | bytearray | memoryview):
        return np.frombuffer(codes, dtype=np.uint8)
    if isinstance(codes, np.ndarray):
        if codes.dtype != np.uint8:
            raise InvalidAudioError(f"G.711 codes must have dtype uint8, not {codes.dtype}")
        if codes.ndim != 1:
            raise InvalidAudioError(f"G.711 codes must be one-dimensional, not {codes.ndim}-D")
        return codes
    raise InvalidAudioError(
        f"G.711 codes must be bytes or a uint8 array, not {type(codes).__name__}"
    )


_SHORT: Final = 2048  # codes: below this, one plain gather is quicker than the pair table


def _encode(samples: object, table: Codes) -> Codes:
    pcm = as_pcm(samples)
    if not pcm.flags.c_contiguous:
        pcm = np.ascontiguousarray(pcm)
    return table.take(pcm.view(np.uint16), mode="wrap")


def _decode(codes: object, single: Pcm, pairs: NDArray[np.uint32]) -> Pcm:
    if type(codes) is bytes and len(codes) < _SHORT:
        return single.take(np.frombuffer(codes, dtype=np.uint8), mode="wrap")
    stream = np.ascontiguousarray(as_codes(codes))
    count = stream.size
    even = count & ~1
    out = np.empty(count, dtype=np.int16)
    if even:
        np.take(pairs, stream[:even].view(np.uint16), out=out[:even].view(np.uint32), mode="wrap")
    if count & 1:
        out[-1] = single[stream[-1]]
    return out


def ulaw_encode(samples: Pcm) -> Codes:
    """mu-law codes of int16 samples (as ``audioop.lin2ulaw(data, 2)``)."""
    return _encode(samples, ULAW_ENCODE_TABLE)


def ulaw_decode(codes: CodeInput) -> Pcm:
    """int16 samples of mu-law codes (as ``audioop.ulaw2lin(data, 2)``)."""
    return _decode(codes, ULAW_DECODE_TABLE, _ULAW_PAIRS)


def alaw_encode(samples: Pcm) -> Codes:
    """A-law codes of int16 samples (as ``audioop.lin2alaw(data, 2)``)."""
    return _encode(samples, ALAW_ENCODE_TABLE)


def alaw_decode(codes: CodeInput) -> Pcm:
    """int16 samples of A-law codes (as ``audioop.alaw2lin(data, 2)``)."""
    return _decode(codes, ALAW_DECODE_TABLE, _ALAW_PAIRS)


def ulaw_to_alaw(codes: bytes) -> bytes:
    """A-law bytes of mu-law bytes, through the linear value of each code."""
    return codes.translate(ULAW_TO_ALAW)


def alaw_to_ulaw(codes: bytes) -> bytes:
    """mu-law bytes of A-law bytes, through the linear value of each code."""
    return codes.translate(ALAW_TO_ULAW)
