"""A SIP call's media side: its RTP socket, its stream core and its clock.

A :class:`SipLeg` is the :class:`~voxgate.bridge.aio.session.CarrierLeg` of
a SIP call. It owns one UDP socket from the RTP port range (:class:`RtpPorts`:
even ports, one per call) and the call's :class:`RtpStream`. What arrives is
turned into events for the call session at once (no task, no queue); what the
call releases (a 20 ms frame of the bot's audio, DTMF to send) becomes RTP.

The leg is woken by the bridge's shared scheduler, like the calls: to send
the format's silence when the bot has nothing to say (so the peer hears a
steady 50 packets/s, with sequence numbers and timestamps continuous), to
send DTMF event packets on time, to release frames the jitter buffer held
for a gap, and to end the call when no RTP came for ``sip.rtp_timeout``
seconds (not while the peer holds the call).

Closing the leg (the call's word, or the bot hanging up) asks the SIP
server to send BYE; a BYE from the peer reaches the session as the carrier
closing. Either way the RTP port goes back to the range.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import socket
import time
from collections.abc import Callable
from typing import Final

from voxgate.bridge.aio.session import CallSession
from voxgate.bridge.events import (
    AudioSent,
    DownstreamEvent,
    DtmfSendRequested,
    StreamStopped,
)
from voxgate.bridge.rtp.stream import MediaSetup, RtpStream
from voxgate.bridge.sip.calls import SipCall
from voxgate.codecs.formats import Encoding
from voxgate.obs import METRICS

log = logging.getLogger("voxgate.sip")

Address = tuple[str, int]

RTCP_INTERVAL: Final = 5.0  # seconds between reports (RFC 3550 6.2's minimum)
SILENCE_AFTER: Final = 0.030  # no frame for this long after the bot's audio: silence begins
FRAME: Final = 0.020
IDLE_CHECK: Final = 1.0


class RtpPorts:
    """Even ports of ``[low, high]`` for calls' RTP sockets, handed out in turn.

    A port another process holds (another worker, another program) is skipped:
    binding is the test. Ports come back when a call ends.
    """

    def __init__(self, host: str, low: int, high: int) -> None:
        self.host = host
        self._ports = list(range(low + low % 2, high + 1, 2))
        self._next = 0
        self._in_use: set[int] = set()

    def bind(self) -> socket.socket | None:
        """A bound UDP socket on a free even port, or None when the range is exhausted."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _ in range(len(self._ports)):
            port = self._ports[self._next]
            self._next = (self._next + 1) % len(self._ports)
            if port in self._in_use:
                continue
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.bind((self.host, port))
            except OSError as error:
                sock.close()
                if error.errno in (errno.EADDRINUSE, errno.EACCES):
                    continue
                raise
            sock.setblocking(False)
            self._in_use.add(port)
            return sock
        return None

    def release(self, port: int) -> None:
        self._in_use.discard(port)

    @property
    def in_use(self) -> int:
        return len(self._in_use)


class _RtpProtocol(asyncio.DatagramProtocol):
    def __init__(self, leg: SipLeg) -> None:
        self.leg = leg

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.leg.rtp_received(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable and the like
        METRICS.count("rtp_send_errors")


class SipLeg:
    """See the module docstring."""

    def __init__(
        self,
        call: SipCall,
        setup: MediaSetup,
        *,
        schedule: Callable[[SipLeg, float | None], None],
        hang_up: Callable[[SipLeg], None],
        done: Callable[[SipLeg], None],
        rtp_timeout: float,
        inband_dtmf: bool,
    ) -> None:
        self.sip = call
        self.call_id = call.key
        self.session: CallSession | None = None
        self.stream = RtpStream(setup, _now(), inband_dtmf=inband_dtmf)
        self.answered = False  # RTP flows once the call is answered (or early media)
        self.on_hold = False
        self.ended = False
        self.custom: dict[str, str] = {}  # the call's custom parameters (a webhook's bot...)
        self._schedule = schedule
        self._hang_up = hang_up
        self._done = done
        self._rtp_timeout = rtp_timeout
        self._transport: asyncio.DatagramTransport | None = None
        self._rtcp: asyncio.DatagramTransport | None = None
        self._next_report: float | None = None
        self._port = 0
        self._last_sent = 0.0
        self._last_was_bot = False
        self._next_idle_check = _now() + IDLE_CHECK
        self._silence = _silence(setup)
        self._closed = asyncio.Event()
        self._log = {"call_id": call.key, "sip_call_id": call.invite.headers.get("Call-ID") or ""}

    async def open(self, sock: socket.socket) -> None:
        """Serve RTP on ``sock`` and RTCP on the port above it, when that port is free."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _RtpProtocol(self), sock=sock)
        self._transport = transport
        host, self._port = sock.getsockname()[:2]
        try:
            rtcp, _ = await loop.create_datagram_endpoint(
                lambda: _RtpProtocol(self), local_addr=(host, self._port + 1)
            )
        except OSError:  # taken by another program: RTCP is optional (RFC 3550 6)
            log.debug("no RTCP port next to %d", self._port, extra=self._log)
        else:
            self._rtcp = rtcp
            self._next_report = _now() + RTCP_INTERVAL

    def attach(self, session: CallSession) -> None:
        """The call's session: from now on its id names the leg in logs too."""
        self.session = session
        self.call_id = session.call_id
        self._log["call_id"] = session.call_id  # the SIP key stays, as sip_leg
        self._log["sip_leg"] = self.sip.key

    @property
    def port(self) -> int:
        return self._port

    def start_media(self) -> None:
        """The call is answered: send from now on."""
        self.answered = True
        self._last_sent = _now() - FRAME
        self._schedule(self, _now())

    # --- RTP in -----------------------------------------------------------------------------

    def rtp_received(self, data: bytes, source: Address) -> None:
        now = _now()
        events = self.stream.receive(data, source, now)
        if events and self.session is not None:
            self.session.on_carrier_events(events, now)
        if self.stream.next_due() is not None:  # a frame held for a gap: wake to release it
            self._schedule(self, self._next_due())

    # --- CarrierLeg -------------------------------------------------------------------------

    def deliver(self, event: DownstreamEvent, since: float | None) -> None:
        if isinstance(event, AudioSent):
            self._send_audio(event.payload, bot=True)
            if since is not None:  # the bot's audio from its arrival to the wire
                METRICS.observe("outbound_latency_seconds", _now() - since)
            # the silence timer moves with the bot's audio: no wake-up per frame for nothing
            self._schedule(self, self._next_due())
        elif isinstance(event, DtmfSendRequested):
            queued = self.stream.dtmf(event.digits, event.duration_ms, _now())
            if queued < len(event.digits):
                log.warning("the peer takes no telephone-events: DTMF not sent", extra=self._log)
            self._schedule(self, _now())
        # Clear and marks need nothing here: the call's playout holds the audio, and a SIP
        # leg does not echo marks (the call reports them after playout).

    def close(self, code: int, reason: str) -> None:
        """The call is over on voxgate's side: BYE (through the SIP server), RTP closed."""
        if not self.ended:
            self.ended = True
            self._hang_up(self)
        self._shut()

    async def wait_closed(self, timeout: float = 2.0) -> None:
        await asyncio.wait_for(self._closed.wait(), timeout)

    def peer_ended(self) -> None:
        """The peer sent BYE or CANCEL (or the dialog failed): the caller hung up."""
        if self.ended:
            return
        self.ended = True
        if self.session is not None:
            now = _now()
            self.session.on_carrier_events([StreamStopped("caller_hangup")], now)
        self._shut()

    # --- the clock --------------------------------------------------------------------------

    def wake(self, now: float) -> float | None:
        if self.ended:
            return None
        if self.session is not None:
            events = self.stream.tick(now)
            if events:
                self.session.on_carrier_events(events, now)
        for packet in self.stream.dtmf_packets(now):
            self._sendto(packet)
        if self.answered and not self.on_hold and now >= self._last_sent + self._silence_gap():
            self._send_audio(self._silence, bot=False, now=now)
        if self._next_report is not None and now >= self._next_report:
            self._next_report = now + RTCP_INTERVAL
            self._send_report(now)
        if now >= self._next_idle_check:
            self._next_idle_check = now + IDLE_CHECK
            if self._idle(now):
                return None
        return self._next_due()

    def _next_due(self) -> float:
        due = self._next_idle_check
        if self.answered and not self.on_hold:
            due = min(due, self._last_sent + self._silence_gap())
        for when in (self._next_report, self.stream.next_due(), self.stream.dtmf_due()):
            if when is not None and when < due:
                due = when
        return due

    def _silence_gap(self) -> float:
        return SILENCE_AFTER if self._last_was_bot else FRAME

    def _idle(self, now: float) -> bool:
        if self.on_hold or not self.answered:
            return False
        idle = self.stream.idle_for(now)
        if idle < self._rtp_timeout:
            return False
        METRICS.count("calls_rtp_timeout")
        log.warning("no RTP for %.0f s: ending the call", idle, extra=self._log)
        if self.session is not None:  # the call ends as if the caller hung up; then BYE
            self.session.on_carrier_events([StreamStopped("rtp_timeout")], now)
        self.close(1000, "rtp_timeout")
        return True

    # --- sending ----------------------------------------------------------------------------

    def _send_audio(self, payload: bytes, *, bot: bool, now: float | None = None) -> None:
        if not self.answered or self.on_hold or self.ended:
            return
        now = _now() if now is None else now
        packet = self.stream.audio(payload, now)
        self._last_sent = now
        self._last_was_bot = bot
        if packet is not None:
            self._sendto(packet)

    def _send_report(self, now: float) -> None:
        """RTCP to the port above the peer's RTP port (RFC 3550 11; no a=rtcp support)."""
        rtcp = self._rtcp
        if rtcp is None or rtcp.is_closing() or not self.answered:
            return
        host, port = self.stream.remote
        rtcp.sendto(self.stream.report(now, time.time()), (host, port + 1))

    def _sendto(self, packet: bytes) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.sendto(packet, self.stream.remote)

    def _shut(self) -> None:
        self._schedule(self, None)
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._rtcp is not None:
            self._rtcp.close()
            self._rtcp = None
        if not self._closed.is_set():
            self._closed.set()
            self._account()
            self._done(self)

    def _account(self) -> None:
        """The call's RTP figures: one log line and the process's counters."""
        summary = self.stream.summary()
        log.info("RTP summary %s", json.dumps(summary), extra=self._log)
        for name in ("rtp_in", "rtp_out", "rtp_bad", "rtp_lost", "rtp_concealed"):
            value = summary.get(name)
            if isinstance(value, int) and value > 0:
                METRICS.count(f"{name}_packets", value)


def _silence(setup: MediaSetup) -> bytes:
    samples = setup.clock_rate // 50
    if setup.encoding is Encoding.PCMU:
        return b"\xff" * samples
    if setup.encoding is Encoding.PCMA:
        return b"\xd5" * samples
    return bytes(2 * samples)


def _now() -> float:
    return time.monotonic()
