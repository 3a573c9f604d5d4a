"""DTMF as RTP telephone-events (RFC 4733): payload, de-duplicating receiver, sender schedule.

Theory of operation
-------------------
*Payload* (section 2.3): 4 bytes, ``event (8) | E | R | volume (6) | duration (16)``.
Several events may follow in one packet (section 2.5.1.5, redundancy); only the
first is read.

*Receiving* (section 2.5.2). All packets of one event share one RTP timestamp,
the event's start (section 2.5.1.2), and the end packet is sent three times
(section 2.5.1.4). :class:`EventReceiver` reports a digit the first time it sees
an ``(SSRC, timestamp)`` pair, so a lost first packet costs nothing, and remembers
the last 32 pairs. An event longer than the 16-bit duration (about 8 s at 8 kHz) is
sent in segments with new timestamps (section 2.5.1.3) and would be reported again
per segment; a key held that long is not expected from a caller.

*Sending* (section 2.5.1). :func:`event_packets` lays out one event: the first
packet with the marker bit (section 2.5.1.2), then one packet every ``packet_ms``
carrying the duration so far, including the interval it starts (packet ``k``
is sent ``k * packet_ms`` after the start, with duration ``(k + 1) * packet_ms``),
the last of them with the E bit and the final duration; that end packet goes out
three times, ``packet_ms`` apart (spreading the copies survives a short burst of loss
better than sending them together). Every packet has timestamp offset 0: the
caller adds the event's start timestamp and gives each packet its own sequence number.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from voxgate.errors import RtpParseError, UnsupportedFormatError

EVENT_DIGITS: Final = "0123456789*#ABCD"  # events 0-15 (section 3.2); 16 (flash) is ignored
END_REPEATS: Final = 3  # copies of the end packet (section 2.5.1.4)
REMEMBERED_EVENTS: Final = 32
_PAYLOAD: Final = struct.Struct("!BBH")


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    event: int
    end: bool
    volume: int  # power level in -dBm0, 0..63
    duration: int  # timestamp units since the event's start


def parse_telephone_event(payload: bytes) -> TelephoneEvent:
    """The first event of a telephone-event payload; RtpParseError if under 4 bytes."""
    if len(payload) < _PAYLOAD.size:
        raise RtpParseError(f"telephone-event payload of {len(payload)} bytes, not 4")
    event, flags, duration = _PAYLOAD.unpack_from(payload)
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


def serialize_telephone_event(event: TelephoneEvent) -> bytes:
    if not 0 <= event.event <= 0xFF:
        raise ValueError(f"event {event.event} out of range 0..255")
    if not 0 <= event.volume <= 0x3F:
        raise ValueError(f"volume {event.volume} out of range 0..63")
    if not 0 <= event.duration <= 0xFFFF:
        raise ValueError(f"duration {event.duration} out of range 0..65535")
    flags = (0x80 if event.end else 0) | event.volume  # R bit is 0 (section 2.3)
    return _PAYLOAD.pack(event.event, flags, event.duration)


class EventReceiver:
    """De-duplicates events: one digit per (SSRC, RTP timestamp); see the module docstring."""

    def __init__(self) -> None:
        self._seen: OrderedDict[tuple[int, int], None] = OrderedDict()
        self.last_end_duration: int | None = None  # duration of the last end packet fed

    def feed(self, ssrc: int, timestamp: int, event: TelephoneEvent) -> str | None:
        """The digit the first time an event is seen; None for repeats and non-digit events."""
        if event.end:
            self.last_end_duration = event.duration
        key = (ssrc, timestamp)
        if key in self._seen:
            return None
        self._seen[key] = None
        if len(self._seen) > REMEMBERED_EVENTS:
            self._seen.popitem(last=False)
        return EVENT_DIGITS[event.event] if event.event < len(EVENT_DIGITS) else None


@dataclass(frozen=True, slots=True)
class ScheduledPacket:
    at: float  # seconds after the event starts
    marker: bool
    timestamp: int  # offset from the event's start timestamp: always 0
    payload: bytes


def event_packets(
    digit: str, duration_ms: int, clock_rate: int = 8000, packet_ms: int = 20, volume: int = 10
) -> list[ScheduledPacket]:
    """The packets of one keypress, in sending order; see the module docstring."""
    event = EVENT_DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if event < 0:
        raise UnsupportedFormatError(f"no telephone-event for {digit!r}: 0-9 * # A-D only")
    step = packet_ms * clock_rate // 1000
    total = duration_ms * clock_rate // 1000
    if step <= 0 or total <= 0:
        raise UnsupportedFormatError(f"{duration_ms} ms in {packet_ms} ms packets: too short")
    if total > 0xFFFF:
        raise UnsupportedFormatError(f"{duration_ms} ms does not fit one 16-bit duration")
    if not 0 <= volume <= 0x3F:
        raise UnsupportedFormatError(f"volume {volume} out of range 0..63")
    count = -(-total // step)  # packets up to and including the first end packet
    packets = []
    for index in range(count + END_REPEATS - 1):
        end = index >= count - 1
        duration = total if end else (index + 1) * step
        payload = serialize_telephone_event(TelephoneEvent(event, end, volume, duration))
        packets.append(ScheduledPacket(index * packet_ms / 1000, index == 0, 0, payload))
    return packets
