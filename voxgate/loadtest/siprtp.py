"""One load-test SIP call's RTP: G.711 out on the caller's pacing, audio and DTMF back.

Theory of operation
-------------------
Each call has its own UDP socket (an asyncio datagram endpoint, :class:`RtpLeg`),
bound before the INVITE so that its port goes in the SDP offer. Until the answer
(:meth:`RtpLeg.start`, with voxgate's negotiated media) nothing is sent, and what
arrives is held (at most :data:`EARLY_LIMIT` datagrams) to be read right after the
answer, so that the sink hears the answer first and loses no early frame.

*Sending* is driven from outside: the load tester's pacing grid calls
:meth:`RtpLeg.send_audio` every 20 ms with one frame, and each call sends one
packet (sequence + 1, timestamp + the frame's samples, the marker bit on the first
packet only). A digit (:meth:`RtpLeg.send_dtmf`) is sent over the next ticks:

- with a negotiated telephone-event type, RFC 4733 packets
  (:func:`~voxgate.bridge.rtp.telephone_event.event_packets`: one per tick, all
  with the timestamp of the tick the digit began on, the duration growing, the
  end packet three times) go *beside* the audio, which does not stop (RFC 4733
  section 2.5.1.3 lets a sender go on with audio; muting it would leave a hole
  in the caller's audio that the load tester would count as frames the node
  lost); digits queued together go one after the other;
- without one, the digit's DTMF tone followed by :data:`TONE_GAP_SAMPLES` of
  silence replaces the audio samples, frame by frame.

*Receiving* accepts packets from any source. The negotiated audio type is
decoded and handed to the sink with the arrival time (taken first thing in
``datagram_received``); telephone-events reach the sink once per event (the
:class:`~voxgate.bridge.rtp.telephone_event.EventReceiver` de-duplicates on SSRC
and timestamp); RTCP, other payload types and datagrams that are not RTP are
counted and dropped. Nothing raises out of ``datagram_received``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol, cast

import numpy as np
from numpy.typing import NDArray

from voxgate.bridge.rtp.packet import looks_like_rtcp, parse_rtp, plain_packet
from voxgate.bridge.rtp.telephone_event import (
    EVENT_DIGITS,
    EventReceiver,
    ScheduledPacket,
    event_packets,
    parse_telephone_event,
)
from voxgate.bridge.sip.sdp import Negotiated
from voxgate.codecs.dtmf import dtmf_tone
from voxgate.codecs.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from voxgate.errors import ConfigError, RtpParseError

log = logging.getLogger("voxgate.loadtest.sip")

Samples = NDArray[np.int16]
Address = tuple[str, int]

EARLY_LIMIT: Final = 50  # datagrams held until the answer is read (1 s of audio)
TONE_GAP_SAMPLES: Final = 480  # 60 ms of silence after an in-band digit
CODECS: Final = {  # name -> (static payload type, encoder, decoder)
    "PCMU": (0, ulaw_encode, ulaw_decode),
    "PCMA": (8, alaw_encode, alaw_decode),
}


class MediaSink(Protocol):
    """What a call hears: voxgate's audio (8 kHz samples) and its RFC 4733 digits."""

    def audio_received(self, samples: Samples, now: float) -> None: ...

    def dtmf_received(self, digit: str, now: float) -> None: ...


@dataclass(slots=True)
class RtpCounts:
    packets_out: int = 0
    dtmf_out: int = 0  # digits sent (either way)
    audio_in: int = 0
    dtmf_in: int = 0  # digits heard (once per event)
    events_in: int = 0  # telephone-event packets, repeats included
    rtcp_in: int = 0
    other_in: int = 0  # payload types that are neither the audio nor telephone-event
    bad_in: int = 0  # datagrams that are not RTP, unreadable telephone-events
    early_dropped: int = 0  # datagrams beyond EARLY_LIMIT before the answer
    send_errors: int = 0
    sink_errors: int = 0  # the sink raised on a packet


def check_codec(codec: str) -> str:
    """The codec name as offered (PCMU or PCMA); ConfigError for any other."""
    name = codec.upper()
    if name not in CODECS:
        raise ConfigError(f"codec {codec!r}: the SIP load tester sends PCMU or PCMA")
    return name


def check_digit(digit: str) -> str:
    if len(digit) != 1 or digit.upper() not in EVENT_DIGITS:
        raise ConfigError(f"DTMF digit {digit!r}: one of 0-9 * # A-D")
    return digit.upper()


class RtpLeg(asyncio.DatagramProtocol):
    """See the module docstring."""

    def __init__(self, sink: MediaSink, call_id: str) -> None:
        self.sink = sink
        self.call_id = call_id
        self.counts = RtpCounts()
        self.transport: asyncio.DatagramTransport | None = None
        self.remote: Address | None = None
        self.closed = False
        self._audio_pt = -1
        self._event_pt: int | None = None
        self._encode: Callable[[Samples], NDArray[np.uint8]] = ulaw_encode
        self._decode: Callable[[bytes], Samples] = ulaw_decode
        self._early: list[tuple[bytes, float]] | None = []  # None once started
        self._events = EventReceiver()
        self._ssrc = secrets.randbits(32)
        self._sequence = secrets.randbits(16)
        self._timestamp = secrets.randbits(32)
        self._first = True
        self._digits: deque[tuple[str, int]] = deque()  # RFC 4733 digits waiting
        self._event_packets: deque[ScheduledPacket] = deque()  # the digit being sent
        self._event_timestamp = 0
        self._tones: deque[Samples] = deque()  # in-band digits waiting, each with its gap
        self._tone_offset = 0
        self._logged_error = False

    @property
    def port(self) -> int:
        assert self.transport is not None
        port: int = self.transport.get_extra_info("sockname")[1]
        return port

    # --- set-up -----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # not a subclass in 3.11

    def start(self, negotiated: Negotiated) -> None:
        """The answer came: send to voxgate's address, read what was held."""
        name = check_codec(negotiated.codec.name)
        _, self._encode, self._decode = CODECS[name]
        self._audio_pt = negotiated.codec.payload_type
        event = negotiated.telephone_event
        self._event_pt = event.payload_type if event is not None else None
        self.remote = (negotiated.remote_address, negotiated.remote_port)
        early, self._early = self._early or [], None
        for data, when in early:
            self._read(data, when)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # --- sending ----------------------------------------------------------------------------

    def send_audio(self, samples: Samples) -> None:
        """One frame out, and the key's event packet of this tick beside it while a key is
        being sent (see the module docstring)."""
        if self.remote is None or self.closed or self.transport is None:
            return
        if not self._event_packets and self._digits:
            self._begin_event()
        if self._event_packets:
            scheduled = self._event_packets.popleft()
            assert self._event_pt is not None
            self._send(self._event_pt, self._event_timestamp, scheduled.payload, scheduled.marker)
        if self._tones:
            samples = self._with_tone(samples)
        assert self._audio_pt is not None
        self._send(self._audio_pt, self._timestamp, self._encode(samples).tobytes(), self._first)
        self._first = False
        self._timestamp = (self._timestamp + len(samples)) & 0xFFFFFFFF

    def _send(self, pt: int, timestamp: int, payload: bytes, marker: bool) -> None:
        assert self.transport is not None and self.remote is not None
        packet = plain_packet(pt, self._sequence, timestamp, self._ssrc, payload, marker=marker)
        try:
            self.transport.sendto(packet, self.remote)
        except OSError:
            self.counts.send_errors += 1
            return
        self.counts.packets_out += 1
        self._sequence = (self._sequence + 1) & 0xFFFF

    def send_dtmf(self, digit: str, duration_ms: int = 100) -> None:
        """Queue a key press: RFC 4733 if voxgate takes telephone-events, else its tone."""
        digit = check_digit(digit)
        if self._event_pt is not None:
            event_packets(digit, duration_ms)  # checks the duration now, not on a tick
            self._digits.append((digit, duration_ms))
        else:
            tone = dtmf_tone(digit, duration_ms)
            self._tones.append(np.concatenate((tone, np.zeros(TONE_GAP_SAMPLES, np.int16))))
        self.counts.dtmf_out += 1

    def _begin_event(self) -> None:
        digit, duration_ms = self._digits.popleft()
        self._event_packets.extend(event_packets(digit, duration_ms))
        self._event_timestamp = self._timestamp

    def _with_tone(self, samples: Samples) -> Samples:
        """``samples`` with their start replaced by what is left of the current tone."""
        tone = self._tones[0]
        count = min(len(samples), len(tone) - self._tone_offset)
        out = samples.copy()
        out[:count] = tone[self._tone_offset : self._tone_offset + count]
        self._tone_offset += count
        if self._tone_offset >= len(tone):
            self._tones.popleft()
            self._tone_offset = 0
        return out

    # --- receiving --------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Address) -> None:
        now = time.monotonic()
        if self._early is not None:  # not answered yet
            if len(self._early) < EARLY_LIMIT:
                self._early.append((data, now))
            else:
                self.counts.early_dropped += 1
            return
        self._read(data, now)

    def _read(self, data: bytes, now: float) -> None:
        try:
            self._dispatch(data, now)
        except Exception:  # the sink's bug: counted, logged once, the socket goes on
            self.counts.sink_errors += 1
            if not self._logged_error:
                self._logged_error = True
                log.exception("a packet's sink failed", extra={"call_id": self.call_id})

    def _dispatch(self, data: bytes, now: float) -> None:
        if looks_like_rtcp(data):
            self.counts.rtcp_in += 1
            return
        try:
            packet = parse_rtp(data)
        except RtpParseError:
            self.counts.bad_in += 1
            return
        pt = packet.payload_type
        if pt == self._audio_pt:
            self.counts.audio_in += 1
            self.sink.audio_received(self._decode(packet.payload), now)
        elif pt == self._event_pt:
            self.counts.events_in += 1
            try:
                event = parse_telephone_event(packet.payload)
            except RtpParseError:
                self.counts.bad_in += 1
                return
            digit = self._events.feed(packet.ssrc, packet.timestamp, event)
            if digit is not None:
                self.counts.dtmf_in += 1
                self.sink.dtmf_received(digit, now)
        else:
            self.counts.other_in += 1

    def error_received(self, exc: Exception) -> None:
        self.counts.send_errors += 1
