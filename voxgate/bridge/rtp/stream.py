"""One SIP call's RTP, sans-I/O: datagrams in, call events out; the bot's frames in, packets out.

Theory of operation
-------------------
*Receiving* (:meth:`RtpStream.receive`): RTCP (RFC 5761 demultiplexing by
packet type) updates what the peer reported; RTP is demultiplexed by payload
type (RFC 4733 2.5.1.3: DTMF may come on another SSRC than the audio):

- the negotiated audio type: counted in the RFC 3550 receiver statistics,
  then through the jitter buffer (:mod:`voxgate.bridge.rtp.jitter`: no delay
  on a clean path, reordering within 3 frames, loss concealed by repetition
  with fade) and out as :class:`MediaReceived`; a new SSRC restarts both;
- the negotiated telephone-event type: one :class:`DtmfReceived` per event,
  de-duplicated on SSRC + timestamp (:class:`EventReceiver`);
- comfort noise (PT 13, RFC 3389) and any other type: counted, dropped;
- a datagram that is not RTP (garbage, truncated): counted in ``bad``, dropped.

Symmetric RTP (RFC 4961): voxgate sends to the address in the peer's SDP
until a valid packet of the negotiated audio type arrives from elsewhere;
then it *latches* onto that source (NAT), and only re-latches when the
latched source has been silent for :data:`RELATCH_AFTER` seconds, so a
stranger's packets cannot steal the stream; except that a source matching the
SDP's address better (the exact address, else its host) takes over at once, so
a stranger who spoke first (an RTP-bleed race) loses the stream to the peer.
Audio from any other source is dropped and counted in ``foreign`` (it is not
played to the bot, and it does not keep a call whose peer went silent alive).

*Sending*: :meth:`audio` makes one packet per 20 ms frame of the bot's
audio. The adapter sends the format's silence through :meth:`audio` too
when the bot is quiet, so the peer gets a steady 50 packets/s and the
sequence numbers and timestamps stay continuous across silence and clear
(the marker bit is set on the very first packet only). :meth:`dtmf` queues
RFC 4733 events (:func:`event_packets`: a packet every 20 ms, the end packet
three times); while one plays, the bot's audio frames are dropped (they
would overlap the tone), and the timestamp of the audio moves on as if they
had been sent.

*Idle*: :meth:`idle_for` tells how long nothing arrived; the adapter ends the
call after ``sip.rtp_timeout``, except while the peer holds the call.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass
from typing import Final

import numpy as np

from voxgate.bridge.events import DtmfReceived, MediaReceived, UpstreamEvent
from voxgate.bridge.rtp.jitter import Frame, JitterBuffer
from voxgate.bridge.rtp.packet import RtpPacket, looks_like_rtcp, parse_rtp, plain_packet
from voxgate.bridge.rtp.rtcp import (
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    SenderReport,
    SourceDescription,
    ntp_middle,
    ntp_timestamp,
    parse_rtcp,
    serialize_rtcp,
)
from voxgate.bridge.rtp.stats import ReceiverStats
from voxgate.bridge.rtp.telephone_event import (
    EVENT_DIGITS,
    EventReceiver,
    event_packets,
    parse_telephone_event,
)
from voxgate.codecs.dtmf import DtmfDetector
from voxgate.codecs.formats import AudioFormat, Encoding
from voxgate.codecs.g711 import alaw_decode, ulaw_decode
from voxgate.errors import RtpParseError

Address = tuple[str, int]

COMFORT_NOISE_PT: Final = 13  # RFC 3551 table 4
RELATCH_AFTER: Final = 1.0  # seconds the latched source must be silent before another takes over
FRAME_SECONDS: Final = 0.020


@dataclass(frozen=True, slots=True)
class MediaSetup:
    """What the offer/answer settled for one call's RTP."""

    encoding: Encoding  # PCMU, PCMA or L16
    payload_type: int
    clock_rate: int
    telephone_event_pt: int | None
    remote: Address
    ptime: int = 20

    @property
    def format(self) -> AudioFormat:
        return AudioFormat(self.encoding, self.clock_rate)


@dataclass(slots=True)
class StreamCounters:
    packets_in: int = 0
    packets_out: int = 0
    bad: int = 0  # not RTP, or truncated
    comfort_noise: int = 0
    other_type: int = 0
    foreign: int = 0  # from a source other than the latched one
    ssrc_changes: int = 0
    rtcp_in: int = 0
    rtcp_out: int = 0
    dtmf_in: int = 0
    dtmf_out: int = 0


class RtpStream:
    """See the module docstring."""

    def __init__(self, setup: MediaSetup, now: float, *, inband_dtmf: bool = False) -> None:
        self.setup = setup
        self.counters = StreamCounters()
        self.ssrc = secrets.randbits(32)
        self.remote = setup.remote
        self.stats = ReceiverStats(setup.clock_rate)
        self.peer_reports: list[SenderReport | ReceiverReport] = []
        self._latched: Address | None = None
        self._latched_at = now
        self._last_in = now
        self._ssrc_in: int | None = None
        self._frame_bytes = setup.format.bytes_per(20)
        self._jitter = self._new_jitter()
        self._events = EventReceiver()
        self._detector = DtmfDetector(setup.clock_rate) if inband_dtmf else None
        self._sequence = secrets.randbelow(2**16)
        self._timestamp = secrets.randbits(32)
        self._first = True
        self._dtmf: deque[tuple[float, RtpPacket]] = deque()
        self._event_end: int | None = None  # the media clock after the last event queued
        self._sent_audio = 0  # packets and octets sent, for sender reports
        self._sent_octets = 0
        self._last_sr: tuple[int, float] | None = None  # the peer's last SR: (LSR, when)
        self._clock = now  # the latest time seen

    # --- receiving ------------------------------------------------------------------------

    def receive(self, data: bytes, source: Address, now: float) -> list[UpstreamEvent]:
        self._clock = now
        if looks_like_rtcp(data):
            self._rtcp(data)
            return []
        try:
            packet = parse_rtp(data)
        except RtpParseError:
            self.counters.bad += 1
            return []
        self.counters.packets_in += 1
        pt = packet.payload_type
        if pt == self.setup.payload_type:
            return self._audio_in(packet, source, now)
        if pt == self.setup.telephone_event_pt:
            self._last_in = now
            self._still_latched(source, now)
            return [*self._numbered_other(packet, source, now), *self._event_in(packet)]
        if pt == COMFORT_NOISE_PT:
            self._last_in = now
            self._still_latched(source, now)
            self.counters.comfort_noise += 1
        else:
            self.counters.other_type += 1
        return []

    def tick(self, now: float) -> list[UpstreamEvent]:
        """Frames whose gap's wait ran out (see :meth:`next_due`)."""
        return self._media(self._jitter.tick(now))

    def next_due(self) -> float | None:
        return self._jitter.next_due()

    def idle_for(self, now: float) -> float:
        """Seconds since the peer last sent anything voxgate could use."""
        return now - self._last_in

    def moved(self, setup: MediaSetup, now: float) -> None:
        """A re-INVITE changed the media: new address, maybe a new codec; latch again."""
        if (setup.encoding, setup.clock_rate) != (self.setup.encoding, self.setup.clock_rate):
            self._frame_bytes = setup.format.bytes_per(20)
        self.setup = setup
        self.remote = setup.remote
        self._latched = None
        self._last_in = now
        self._jitter = self._new_jitter()

    def _audio_in(self, packet: RtpPacket, source: Address, now: float) -> list[UpstreamEvent]:
        if not self._latch(source, now):
            return []  # a stranger's audio is never played, nor keeps the call alive
        self._last_in = now
        if packet.ssrc != self._ssrc_in:
            if self._ssrc_in is not None:  # a new source: start its statistics and order afresh
                self.counters.ssrc_changes += 1
                self.stats.restart()
                self._jitter = self._new_jitter()
            self._ssrc_in = packet.ssrc
        self.stats.received(packet.sequence, packet.timestamp, now, len(packet.payload))
        return self._media(self._jitter.push(packet.sequence, packet.payload, now))

    def _numbered_other(
        self, packet: RtpPacket, source: Address, now: float
    ) -> list[UpstreamEvent]:
        """An event packet of the audio's source took a sequence number (RFC 3550 5.1): not
        a gap in the audio (see :mod:`voxgate.bridge.rtp.jitter`)."""
        if packet.ssrc != self._ssrc_in or source != self._latched:
            return []
        return self._media(self._jitter.push_other(packet.sequence, now))

    def _media(self, frames: list[Frame]) -> list[UpstreamEvent]:
        events: list[UpstreamEvent] = []
        for frame in frames:
            payload = frame.payload
            events.append(MediaReceived(payload))
            if self._detector is not None:
                events += self._inband(payload)
        return events

    def _inband(self, payload: bytes) -> list[UpstreamEvent]:
        assert self._detector is not None
        encoding = self.setup.encoding
        if encoding is Encoding.PCMU:
            samples = ulaw_decode(payload)
        elif encoding is Encoding.PCMA:
            samples = alaw_decode(payload)
        else:
            samples = np.frombuffer(payload[: len(payload) // 2 * 2], dtype=">i2").astype(np.int16)
        found = self._detector.feed(samples)
        rate = self.setup.clock_rate
        return [
            DtmfReceived(d.digit, duration_ms=d.duration * 1000 // rate, method="inband")
            for d in found
        ]

    def _event_in(self, packet: RtpPacket) -> list[UpstreamEvent]:
        try:
            event = parse_telephone_event(packet.payload)
        except RtpParseError:
            self.counters.bad += 1
            return []
        digit = self._events.feed(packet.ssrc, packet.timestamp, event)
        if digit is None:
            return []
        self.counters.dtmf_in += 1
        duration = event.duration * 1000 // self.setup.clock_rate if event.end else None
        return [DtmfReceived(digit, duration_ms=duration, method="rfc4733")]

    def _latch(self, source: Address, now: float) -> bool:
        """Symmetric RTP (see the module docstring); whether ``source`` is the latched one."""
        if source == self._latched:
            self._latched_at = now
            return True
        if (
            self._latched is None
            or now - self._latched_at >= RELATCH_AFTER
            or _closer(source, self._latched, self.setup.remote)
        ):
            self._latched = source
            self._latched_at = now
            self.remote = source
            return True
        self.counters.foreign += 1
        return False

    def _still_latched(self, source: Address, now: float) -> None:
        """Events and comfort noise from the latched source keep it latched (silence
        suppression must not let a stranger take the stream over)."""
        if source == self._latched:
            self._latched_at = now

    def _rtcp(self, data: bytes) -> None:
        try:
            packets = parse_rtcp(data)
        except RtpParseError:
            self.counters.bad += 1
            return
        self.counters.rtcp_in += 1
        reports = [p for p in packets if isinstance(p, SenderReport | ReceiverReport)]
        self.peer_reports = (self.peer_reports + reports)[-4:]
        for report in reports:
            if isinstance(report, SenderReport):
                self._last_sr = (ntp_middle(report.ntp_timestamp), self._clock)

    def _new_jitter(self) -> JitterBuffer:
        return JitterBuffer(self.setup.encoding.value, self._frame_bytes)

    # --- sending --------------------------------------------------------------------------

    def audio(self, payload: bytes, now: float) -> bytes | None:
        """The RTP packet for one frame of audio (None while a DTMF event plays)."""
        samples = len(payload) // self.setup.format.bytes_per_sample
        if self._dtmf:
            self._timestamp = (self._timestamp + samples) & 0xFFFFFFFF
            return None
        packet = plain_packet(
            self.setup.payload_type,
            self._next_sequence(),
            self._timestamp,
            self.ssrc,
            payload,
            marker=self._first,
        )
        self._first = False
        self._timestamp = (self._timestamp + samples) & 0xFFFFFFFF
        self.counters.packets_out += 1
        self._sent_audio += 1
        self._sent_octets += len(payload)
        return packet

    def dtmf(self, digits: str, duration_ms: int, now: float) -> int:
        """Queue RFC 4733 events for ``digits`` (those the peer can take); how many were queued."""
        pt = self.setup.telephone_event_pt
        if pt is None:
            return 0
        start = max(now, self._dtmf[-1][0] + 0.06) if self._dtmf else now
        rate = self.setup.clock_rate
        queued = 0
        for digit in (d for d in digits if d.upper() in EVENT_DIGITS):
            # RFC 4733 2.5.1.2: the timestamp is the event's start on the media clock; each
            # event gets its own, after the previous one's end
            timestamp = (self._timestamp + round((start - now) * rate)) & 0xFFFFFFFF
            if self._event_end is not None and _before(timestamp, self._event_end):
                timestamp = self._event_end
            self._event_end = (timestamp + duration_ms * rate // 1000 + 1) & 0xFFFFFFFF
            for scheduled in event_packets(digit, duration_ms, self.setup.clock_rate):
                packet = RtpPacket(
                    payload_type=pt,
                    sequence=0,  # numbered when sent
                    timestamp=(timestamp + scheduled.timestamp) & 0xFFFFFFFF,
                    ssrc=self.ssrc,
                    payload=scheduled.payload,
                    marker=scheduled.marker,
                )
                self._dtmf.append((start + scheduled.at, packet))
            start += duration_ms / 1000 + 0.06  # a pause between digits
            queued += 1
        self.counters.dtmf_out += queued
        return queued

    def dtmf_due(self) -> float | None:
        return self._dtmf[0][0] if self._dtmf else None

    def dtmf_packets(self, now: float) -> list[bytes]:
        """The event packets due by ``now``, numbered in the audio's sequence."""
        out: list[bytes] = []
        while self._dtmf and self._dtmf[0][0] <= now:
            _, packet = self._dtmf.popleft()
            sequence = self._next_sequence()
            out.append(
                plain_packet(
                    packet.payload_type,
                    sequence,
                    packet.timestamp,
                    packet.ssrc,
                    packet.payload,
                    marker=packet.marker,
                )
            )
            self.counters.packets_out += 1
        return out

    def _next_sequence(self) -> int:
        sequence = self._sequence
        self._sequence = (sequence + 1) & 0xFFFF
        return sequence

    def report(self, now: float, wallclock: float) -> bytes:
        """An RTCP compound packet (RFC 3550 6.4, 6.5): a sender report once voxgate has
        sent audio (else a receiver report), a report block on the peer's audio when it
        has sent some, and SDES CNAME. ``wallclock`` is Unix time, for the NTP timestamp."""
        blocks: tuple[ReportBlock, ...] = ()
        if self._ssrc_in is not None:
            last_sr, delay = 0, 0
            if self._last_sr is not None:
                last_sr = self._last_sr[0]
                delay = min(0xFFFFFFFF, round((now - self._last_sr[1]) * 65536))
            blocks = (self.stats.report_block(self._ssrc_in, last_sr, delay),)
        first: RtcpPacket
        if self._sent_audio:
            first = SenderReport(
                self.ssrc,
                ntp_timestamp(wallclock),
                self._timestamp,
                self._sent_audio & 0xFFFFFFFF,
                self._sent_octets & 0xFFFFFFFF,
                blocks,
            )
        else:
            first = ReceiverReport(self.ssrc, blocks)
        cname = SourceDescription(((self.ssrc, f"voxgate-{self.ssrc:08x}"),))
        self.counters.rtcp_out += 1
        return serialize_rtcp([first, cname])

    def summary(self) -> dict[str, object]:
        """The call's RTP figures for its end-of-call log line and metrics."""
        stats = self.stats
        return {
            "rtp_in": self.counters.packets_in,
            "rtp_out": self.counters.packets_out,
            "rtp_bad": self.counters.bad,
            "rtp_lost": max(0, stats.lost),
            "rtp_reordered": stats.reordered,
            "rtp_duplicates": stats.duplicates,
            "rtp_jitter_ms": round(stats.jitter_ms, 2),
            "rtp_concealed": self._jitter.concealed,
            "rtp_ssrc_changes": self.counters.ssrc_changes,
            "dtmf_in": self.counters.dtmf_in,
            "rtcp_in": self.counters.rtcp_in,
            "rtcp_out": self.counters.rtcp_out,
        }


def _closer(source: Address, latched: Address, announced: Address) -> bool:
    """Whether ``source`` matches the SDP's address better than the latched source does:
    the exact address beats the same host on another port, which beats another host."""

    def score(address: Address) -> int:
        return 2 if address == announced else 1 if address[0] == announced[0] else 0

    return score(source) > score(latched)


def _before(a: int, b: int) -> bool:
    """Whether RTP timestamp ``a`` comes before ``b`` (modulo 2**32)."""
    return a != b and ((b - a) & 0xFFFFFFFF) < 0x80000000
