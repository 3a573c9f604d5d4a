"""RTP packets (RFC 3550 section 5.1): parse and serialize, and the RTP/RTCP demultiplexer.

Theory of operation
-------------------
The fixed header is 12 bytes::

    V=2 | P | X | CC (4) | M | PT (7) | sequence (16) | timestamp (32) | SSRC (32)

followed by CC CSRC identifiers, the header extension when X is set (RFC 3550
section 5.3.1: 16 profile-defined bits, a length in 32-bit words, the data),
the payload, and the padding when P is set (its last byte counts the padding
bytes, itself included). :func:`parse_rtp` reads the fixed header with one
``struct.unpack_from`` and the payload with one slice; the common packet
(``0x80``: no padding, extension or CSRC) takes a short path. It raises
:class:`~voxgate.errors.RtpParseError`, and nothing else, on any input.

:meth:`RtpPacket.serialize` is the exact inverse: ``parse_rtp(p.serialize()) == p``
for every valid packet. Out-of-range field values raise ``ValueError`` (a caller's bug).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from voxgate.errors import RtpParseError

RTP_VERSION: Final = 2
HEADER_SIZE: Final = 12
_HEADER: Final = struct.Struct("!BBHII")
_EXTENSION_HEADER: Final = struct.Struct("!HH")
_PLAIN_FIRST_BYTE: Final = RTP_VERSION << 6  # 0x80: no padding, no extension, no CSRC
_MAX_CSRC: Final = 15
_MAX_EXTENSION_BYTES: Final = 0xFFFF * 4


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet; ``payload`` excludes padding, ``padding`` counts it (count byte included)."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension: tuple[int, bytes] | None = None  # (profile-defined 16 bits, data: 4n bytes)
    padding: int = 0

    def serialize(self) -> bytes:
        self._check()
        if not (self.csrc or self.padding or self.extension is not None):
            return plain_packet(
                self.payload_type,
                self.sequence,
                self.timestamp,
                self.ssrc,
                self.payload,
                marker=self.marker,
            )
        first = (RTP_VERSION << 6) | len(self.csrc)
        if self.padding:
            first |= 0x20
        if self.extension is not None:
            first |= 0x10
        second = (0x80 if self.marker else 0) | self.payload_type
        parts = [_HEADER.pack(first, second, self.sequence, self.timestamp, self.ssrc)]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension is not None:
            profile, data = self.extension
            parts.append(_EXTENSION_HEADER.pack(profile, len(data) // 4))
            parts.append(data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)

    def _check(self) -> None:
        _in_range("payload_type", self.payload_type, 0x7F)
        _in_range("sequence", self.sequence, 0xFFFF)
        _in_range("timestamp", self.timestamp, 0xFFFFFFFF)
        _in_range("ssrc", self.ssrc, 0xFFFFFFFF)
        _in_range("padding", self.padding, 0xFF)
        if len(self.csrc) > _MAX_CSRC:
            raise ValueError(f"at most {_MAX_CSRC} CSRCs, not {len(self.csrc)}")
        for csrc in self.csrc:
            _in_range("csrc", csrc, 0xFFFFFFFF)
        if self.extension is not None:
            profile, data = self.extension
            _in_range("extension profile", profile, 0xFFFF)
            if len(data) % 4 or len(data) > _MAX_EXTENSION_BYTES:
                raise ValueError(f"extension data must be 4n bytes (n < 65536), not {len(data)}")


def plain_packet(
    payload_type: int, sequence: int, timestamp: int, ssrc: int, payload: bytes, *, marker: bool
) -> bytes:
    """The wire form of a packet with no CSRC, extension or padding (what voxgate sends), with
    no object made and no check: the sender's own counters keep the fields in range."""
    second = 0x80 | payload_type if marker else payload_type
    return _HEADER.pack(_PLAIN_FIRST_BYTE, second, sequence, timestamp, ssrc) + payload


def _in_range(name: str, value: int, top: int) -> None:
    if not 0 <= value <= top:
        raise ValueError(f"{name} {value} out of range 0..{top}")


def parse_rtp(data: bytes) -> RtpPacket:
    """The RTP packet in ``data``; RtpParseError if it is not one."""
    size = len(data)
    if size < HEADER_SIZE:
        raise RtpParseError(f"RTP packet of {size} bytes is shorter than the 12-byte header")
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    if first == _PLAIN_FIRST_BYTE:
        return RtpPacket(second & 0x7F, sequence, timestamp, ssrc, data[12:], second > 0x7F)
    if first >> 6 != RTP_VERSION:
        raise RtpParseError(f"RTP version {first >> 6}, not 2")
    offset = HEADER_SIZE
    csrc: tuple[int, ...] = ()
    count = first & 0x0F
    if count:
        offset += 4 * count
        if offset > size:
            raise RtpParseError(f"{count} CSRCs run past the end of a {size}-byte packet")
        csrc = struct.unpack_from(f"!{count}I", data, HEADER_SIZE)
    extension = None
    if first & 0x10:
        extension, offset = _parse_extension(data, offset)
    end = size
    padding = 0
    if first & 0x20:
        padding = data[-1]
        if padding == 0:
            raise RtpParseError("RTP padding bit set with a padding count of 0")
        end -= padding
        if end < offset:
            raise RtpParseError(f"RTP padding of {padding} bytes runs into the header")
    return RtpPacket(
        second & 0x7F,
        sequence,
        timestamp,
        ssrc,
        data[offset:end],
        second > 0x7F,
        csrc,
        extension,
        padding,
    )


def _parse_extension(data: bytes, offset: int) -> tuple[tuple[int, bytes], int]:
    """The header extension at ``offset`` (RFC 3550 section 5.3.1) and the offset after it."""
    if offset + 4 > len(data):
        raise RtpParseError("RTP header extension runs past the end of the packet")
    profile, words = _EXTENSION_HEADER.unpack_from(data, offset)
    start = offset + 4
    end = start + 4 * words
    if end > len(data):
        raise RtpParseError(f"RTP header extension of {words} words runs past the end")
    return (profile, data[start:end]), end


def looks_like_rtcp(data: bytes) -> bool:
    """Whether a packet on a muxed RTP/RTCP port is RTCP (RFC 5761 section 4).

    The second byte of RTCP is its packet type, 192..223 in practice (SR 200, RR 201,
    SDES 202, BYE 203, APP 204, feedback 205/206, XR 207); in RTP it is the marker bit
    and the payload type, and RFC 5761 forbids payload types 64-95 on a muxed port so that
    the two ranges never meet.
    """
    return len(data) >= 2 and 192 <= data[1] <= 223
