"""RTCP (RFC 3550 section 6): SR, RR, SDES (CNAME), BYE in compound packets.

Theory of operation
-------------------
A compound RTCP packet is RTCP packets back to back (section 6.1), each with a
4-byte common header::

    V=2 | P | count (5) | packet type (8) | length (16, in 32-bit words minus one)

:func:`parse_rtcp` walks the packets by their length field. SR (200), RR (201),
SDES (202) and BYE (203) are decoded; any other type (APP, RTPFB, PSFB, XR...)
is skipped by its length. Any truncation, a version other than 2, a bad
padding count or a count of items that does not fit raises
:class:`~voxgate.errors.RtpParseError`, and nothing else is raised on any
input. Bytes after the counted items inside a packet (profile-specific
extensions of SR/RR, section 6.4.1) are ignored.

Only the CNAME item of SDES chunks is kept (section 6.5.1); chunks without one
are left out. Text is UTF-8 (section 6.5); invalid sequences are replaced
rather than failing the whole compound packet.

:func:`serialize_rtcp` writes packets without padding; out-of-range values
raise ``ValueError`` (a caller's bug). ``parse_rtcp(serialize_rtcp(ps)) == ps``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from voxgate.errors import RtpParseError

SR: Final = 200
RR: Final = 201
SDES: Final = 202
BYE: Final = 203
CNAME: Final = 1  # SDES item type (section 6.5.1)

_COMMON: Final = struct.Struct("!BBH")
_SENDER_INFO: Final = struct.Struct("!IQIII")  # SSRC + sender info (section 6.4.1)
_BLOCK: Final = struct.Struct("!IIIIII")  # one report block, 24 bytes
_WORD: Final = struct.Struct("!I")
_MAX_COUNT: Final = 31  # the 5-bit count field
_NTP_UNIX_OFFSET: Final = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """Reception statistics of one source (RFC 3550 section 6.4.1)."""

    ssrc: int
    fraction_lost: int  # lost / expected since the previous report, times 256
    cumulative_lost: int  # signed 24 bits: negative when duplicates outnumber losses
    highest_sequence: int  # extended: cycles << 16 | highest sequence number
    jitter: int  # timestamp units
    last_sr: int  # middle 32 bits of the last SR's NTP timestamp, 0 if none
    delay_since_last_sr: int  # units of 1/65536 s


@dataclass(frozen=True, slots=True)
class SenderReport:
    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class SourceDescription:
    chunks: tuple[tuple[int, str], ...]  # (SSRC, CNAME)


@dataclass(frozen=True, slots=True)
class Goodbye:
    ssrcs: tuple[int, ...]
    reason: str | None = None


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Goodbye


def ntp_timestamp(unix_seconds: float) -> int:
    """The 64-bit NTP timestamp (section 4) of a wall-clock time, modulo 2**64."""
    whole = int(unix_seconds // 1)
    fraction = round((unix_seconds - whole) * 2**32)
    return (((whole + _NTP_UNIX_OFFSET) << 32) + fraction) & 0xFFFF_FFFF_FFFF_FFFF


def ntp_middle(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: a report block's ``last_sr`` (section 6.4.1)."""
    return (ntp >> 16) & 0xFFFF_FFFF


# --- parsing --------------------------------------------------------------------------


def parse_rtcp(data: bytes) -> list[RtcpPacket]:
    """The packets of a compound RTCP packet; unknown types are skipped."""
    if not data:
        raise RtpParseError("empty RTCP packet")
    packets: list[RtcpPacket] = []
    offset = 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise RtpParseError(f"RTCP header truncated at byte {offset}")
        first, packet_type, words = _COMMON.unpack_from(data, offset)
        if first >> 6 != 2:
            raise RtpParseError(f"RTCP version {first >> 6}, not 2")
        end = offset + 4 * (words + 1)
        if end > len(data):
            raise RtpParseError(f"RTCP packet of {words + 1} words runs past the end")
        body = _unpadded(data, offset + 4, end, padded=bool(first & 0x20))
        parsed = _parse_one(packet_type, first & 0x1F, body)
        if parsed is not None:
            packets.append(parsed)
        offset = end
    return packets


def _unpadded(data: bytes, start: int, end: int, *, padded: bool) -> bytes:
    """The packet's body without its padding (section 6.4.1, P bit)."""
    if not padded:
        return data[start:end]
    count = data[end - 1]
    if count == 0 or count > end - start:
        raise RtpParseError(f"RTCP padding count {count} in a body of {end - start} bytes")
    return data[start : end - count]


def _parse_one(packet_type: int, count: int, body: bytes) -> RtcpPacket | None:
    if packet_type == SR:
        return _parse_sr(count, body)
    if packet_type == RR:
        return _parse_rr(count, body)
    if packet_type == SDES:
        return _parse_sdes(count, body)
    if packet_type == BYE:
        return _parse_bye(count, body)
    return None


def _parse_sr(count: int, body: bytes) -> SenderReport:
    if len(body) < _SENDER_INFO.size:
        raise RtpParseError(f"SR body of {len(body)} bytes, shorter than the sender info")
    ssrc, ntp, rtp, packets, octets = _SENDER_INFO.unpack_from(body)
    reports = _parse_blocks(count, body, _SENDER_INFO.size)
    return SenderReport(ssrc, ntp, rtp, packets, octets, reports)


def _parse_rr(count: int, body: bytes) -> ReceiverReport:
    if len(body) < 4:
        raise RtpParseError("RR without an SSRC")
    return ReceiverReport(_WORD.unpack_from(body)[0], _parse_blocks(count, body, 4))


def _parse_blocks(count: int, body: bytes, offset: int) -> tuple[ReportBlock, ...]:
    if offset + count * _BLOCK.size > len(body):
        raise RtpParseError(f"{count} report blocks do not fit in {len(body)} bytes")
    blocks = []
    for index in range(count):
        ssrc, loss, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(body, offset + 24 * index)
        cumulative = loss & 0xFFFFFF
        if cumulative & 0x800000:  # signed 24 bits (section 6.4.1)
            cumulative -= 0x1000000
        blocks.append(ReportBlock(ssrc, loss >> 24, cumulative, highest, jitter, lsr, dlsr))
    return tuple(blocks)


def _parse_sdes(count: int, body: bytes) -> SourceDescription:
    chunks = []
    offset = 0
    for _ in range(count):
        if offset + 4 > len(body):
            raise RtpParseError("SDES chunk truncated before its SSRC")
        ssrc = _WORD.unpack_from(body, offset)[0]
        cname, offset = _parse_items(body, offset + 4)
        if cname is not None:
            chunks.append((ssrc, cname))
    return SourceDescription(tuple(chunks))


def _parse_items(body: bytes, offset: int) -> tuple[str | None, int]:
    """The CNAME among a chunk's items, and the offset of the next chunk (section 6.5)."""
    cname = None
    while True:
        if offset >= len(body):
            raise RtpParseError("SDES item list not terminated")
        item_type = body[offset]
        if item_type == 0:  # end of list, then null octets to the next 32-bit boundary
            return cname, (offset + 4) & ~3
        if offset + 2 > len(body):
            raise RtpParseError("SDES item truncated before its length")
        end = offset + 2 + body[offset + 1]
        if end > len(body):
            raise RtpParseError("SDES item text runs past the end of the packet")
        if item_type == CNAME:
            cname = body[offset + 2 : end].decode("utf-8", "replace")
        offset = end


def _parse_bye(count: int, body: bytes) -> Goodbye:
    end = 4 * count
    if end > len(body):
        raise RtpParseError(f"BYE with {count} SSRCs in {len(body)} bytes")
    ssrcs = struct.unpack_from(f"!{count}I", body)
    reason = None
    if end < len(body):  # the optional reason (section 6.6): length octet, text
        text_end = end + 1 + body[end]
        if text_end > len(body):
            raise RtpParseError("BYE reason runs past the end of the packet")
        reason = body[end + 1 : text_end].decode("utf-8", "replace")
    return Goodbye(ssrcs, reason)


# --- serializing ----------------------------------------------------------------------


def serialize_rtcp(packets: Sequence[RtcpPacket]) -> bytes:
    """A compound RTCP packet of ``packets``, in order, without padding."""
    return b"".join(_serialize_one(packet) for packet in packets)


def _serialize_one(packet: RtcpPacket) -> bytes:
    match packet:
        case SenderReport():
            _check_words(packet.ssrc, packet.rtp_timestamp, packet.packet_count)
            _check_words(packet.octet_count)
            if not 0 <= packet.ntp_timestamp <= 0xFFFF_FFFF_FFFF_FFFF:
                raise ValueError(f"NTP timestamp {packet.ntp_timestamp} out of 64 bits")
            info = _SENDER_INFO.pack(
                packet.ssrc,
                packet.ntp_timestamp,
                packet.rtp_timestamp,
                packet.packet_count,
                packet.octet_count,
            )
            return _frame(SR, len(packet.reports), info + _blocks(packet.reports))
        case ReceiverReport():
            _check_words(packet.ssrc)
            body = _WORD.pack(packet.ssrc) + _blocks(packet.reports)
            return _frame(RR, len(packet.reports), body)
        case SourceDescription():
            body = b"".join(_chunk(ssrc, cname) for ssrc, cname in packet.chunks)
            return _frame(SDES, len(packet.chunks), body)
        case Goodbye():
            return _frame(BYE, len(packet.ssrcs), _bye_body(packet))


def _frame(packet_type: int, count: int, body: bytes) -> bytes:
    """Common header + body; ``body`` is a whole number of 32-bit words."""
    if count > _MAX_COUNT:
        raise ValueError(f"at most {_MAX_COUNT} items in one RTCP packet, not {count}")
    words = len(body) // 4
    if words > 0xFFFF:
        raise ValueError(f"RTCP packet of {words + 1} words is too long")
    return _COMMON.pack(0x80 | count, packet_type, words) + body


def _blocks(reports: tuple[ReportBlock, ...]) -> bytes:
    parts = []
    for block in reports:
        _check_words(block.ssrc, block.highest_sequence, block.jitter, block.last_sr)
        _check_words(block.delay_since_last_sr)
        if not 0 <= block.fraction_lost <= 0xFF:
            raise ValueError(f"fraction lost {block.fraction_lost} out of 0..255")
        if not -0x800000 <= block.cumulative_lost <= 0x7FFFFF:
            raise ValueError(f"cumulative lost {block.cumulative_lost} out of signed 24 bits")
        loss = block.fraction_lost << 24 | (block.cumulative_lost & 0xFFFFFF)
        parts.append(
            _BLOCK.pack(
                block.ssrc,
                loss,
                block.highest_sequence,
                block.jitter,
                block.last_sr,
                block.delay_since_last_sr,
            )
        )
    return b"".join(parts)


def _chunk(ssrc: int, cname: str) -> bytes:
    _check_words(ssrc)
    text = cname.encode()
    if len(text) > 0xFF:
        raise ValueError(f"CNAME of {len(text)} bytes, longer than 255")
    items = bytes((CNAME, len(text))) + text
    nulls = 4 - len(items) % 4  # at least one null octet ends the list (section 6.5)
    return _WORD.pack(ssrc) + items + bytes(nulls)


def _bye_body(packet: Goodbye) -> bytes:
    _check_words(*packet.ssrcs)
    body = b"".join(_WORD.pack(ssrc) for ssrc in packet.ssrcs)
    if packet.reason is None:
        return body
    text = packet.reason.encode()
    if len(text) > 0xFF:
        raise ValueError(f"BYE reason of {len(text)} bytes, longer than 255")
    reason = bytes((len(text),)) + text
    return body + reason + bytes(-len(reason) % 4)


def _check_words(*values: int) -> None:
    for value in values:
        if not 0 <= value <= 0xFFFF_FFFF:
            raise ValueError(f"{value} out of the range of a 32-bit field")
