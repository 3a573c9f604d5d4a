"""The load tester's SIP caller: many concurrent calls into a voxgate node, on voxgate's own UA.

Theory of operation
-------------------
A :class:`SipLoadClient` is one UDP socket for SIP around the sans-I/O
:class:`~voxgate.bridge.sip.agent.SipAgent` (the only SIP logic here), driven
as voxgate's own listener drives it (:mod:`voxgate.bridge.aio.sipserver`):
every datagram goes to ``agent.receive`` with the time it arrived, one event-loop
timer is armed for ``agent.next_due()``, and after each of these the agent's
outbox is sent and its events handled. The agent takes no calls (it reports
itself full: an INVITE to the load tester gets 503).

:meth:`SipLoadClient.place` binds the call's RTP socket
(:class:`~voxgate.loadtest.siprtp.RtpLeg`), sends the INVITE with an SDP offer of
the one codec asked for and telephone-event
(:func:`~voxgate.bridge.sip.outbound.start_outbound`, digest authentication
answered by the agent when credentials are given) and waits:

- :class:`CallConfirmed` (the agent has ACKed the 2xx): RTP starts towards the
  address of voxgate's answer, the sink hears ``answered`` and ``place`` returns
  the :class:`SipLoadCall`;
- :class:`CallEnded` first: the sink hears ``failed`` with the agent's reason
  (``busy``, ``no_answer``, ``rejected``, ``unreachable``, with the SIP status
  when there was one: ``rejected_503`` is a full node) and ``place`` returns None;
- ``answer_timeout`` first: ``failed("timeout")``; the call is given up (CANCEL
  once voxgate has rung, RFC 3261 9.1) and an answer that still comes is ACKed
  and hung up at once.

An answered call ends with :meth:`SipLoadCall.hangup` (BYE: ``local_hangup``) or
voxgate's BYE (the bot or the node hung up: ``remote_hangup``); its RTP socket
closes then. Sinks are the caller's code: what they raise is logged, never let
into the SIP loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol, Self

from voxgate.bridge.sip.agent import AgentSettings, SipAgent
from voxgate.bridge.sip.auth import Credentials
from voxgate.bridge.sip.calls import AgentEvent, CallConfirmed, CallEnded, SipCall
from voxgate.bridge.sip.outbound import start_outbound
from voxgate.bridge.sip.sdp import SessionDescription, offer_sdp
from voxgate.bridge.sip.uri import parse_uri
from voxgate.errors import ConfigError, SipParseError
from voxgate.loadtest.siprtp import Address, MediaSink, RtpLeg, Samples, check_codec

log = logging.getLogger("voxgate.loadtest.sip")

DEFAULT_PORT: Final = 5060
FAILURES: Final = ("busy", "no_answer", "rejected", "unreachable")  # agent reasons kept as is
ENDINGS: Final = {"local": "local_hangup", "bye": "remote_hangup"}  # else "error"


class CallSink(MediaSink, Protocol):
    """What the load tester learns of one call (its per-call probe)."""

    def answered(self, now: float) -> None: ...

    def failed(self, reason: str, now: float) -> None: ...

    def ended(self, reason: str, now: float) -> None: ...


@dataclass(frozen=True, slots=True)
class Target:
    request_uri: str
    address: Address  # where the INVITE goes (the host resolved)


async def resolve_target(target: str) -> Target:
    """``sip:[user@]host[:port]`` (``sip:`` optional; port 5060 by default)."""
    text = target.strip()
    if not text.startswith(("sip:", "sips:")):
        text = f"sip:{text}"
    try:
        uri = parse_uri(text)
    except SipParseError as error:
        raise ConfigError(f"SIP target {target!r}: {error}") from None
    if uri.scheme != "sip":
        raise ConfigError(f"SIP target {target!r}: only sip: over UDP")
    port = uri.port or DEFAULT_PORT
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(uri.host.strip("[]"), port, type=socket.SOCK_DGRAM)
    except OSError as error:
        raise ConfigError(f"SIP target {target!r}: cannot resolve {uri.host}: {error}") from None
    return Target(text, (str(infos[0][4][0]), port))


class SipLoadCall:
    """One answered call: audio and digits out on the caller's pacing, BYE to end it."""

    def __init__(self, client: SipLoadClient, sip: SipCall, sink: CallSink, rtp: RtpLeg) -> None:
        self.client = client
        self.sip = sip
        self.sink = sink
        self.rtp = rtp
        self.call_id = rtp.call_id
        self.end_reason: str | None = None
        self._over = asyncio.Event()

    @property
    def ended(self) -> bool:
        return self.end_reason is not None

    def send_audio(self, samples: Samples) -> None:
        """One 20 ms frame (160 samples): one RTP packet, or a DTMF packet in its place."""
        self.rtp.send_audio(samples)

    def send_dtmf(self, digit: str, duration_ms: int = 100) -> None:
        self.rtp.send_dtmf(digit, duration_ms)

    def hangup(self) -> None:
        """BYE; the sink hears ``ended("local_hangup")`` at once."""
        if not self.ended:
            self.client.hang_up(self.sip)

    async def wait_ended(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._over.wait(), timeout)
        return self.ended

    def finish(self, reason: str, now: float) -> None:
        if self.ended:
            return
        self.end_reason = reason
        self.rtp.close()
        self._over.set()
        log.debug("call ended: %s", reason, extra={"call_id": self.call_id})
        _tell(self.call_id, self.sink.ended, reason, now)


@dataclass(slots=True, eq=False)
class _Placing:
    """A call placed and not answered yet (or given up and not over yet)."""

    sink: CallSink
    rtp: RtpLeg
    result: asyncio.Future[SipLoadCall | None]
    given_up: bool = False


class _SipProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.client: SipLoadClient | None = None
        self.send_errors = 0

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        now = time.monotonic()
        if self.client is not None:
            self.client.datagram(data, (addr[0], addr[1]), now)

    def error_received(self, exc: Exception) -> None:
        self.send_errors += 1


class SipLoadClient:
    """See the module docstring."""

    def __init__(
        self,
        target: Target,
        transport: asyncio.DatagramTransport,
        protocol: _SipProtocol,
        *,
        local_host: str,
        codec: str,
        credentials: Credentials | None,
        from_number: str,
    ) -> None:
        self.target = target
        self.local_host = local_host
        self.codec = codec
        self.from_number = from_number
        self._credentials = credentials
        self._transport = transport
        self._protocol = protocol
        port = transport.get_extra_info("sockname")[1]
        self.agent = SipAgent(
            AgentSettings(host=local_host, port=port, advertised=local_host, codecs=(codec,)),
            busy=lambda: "full",  # a caller only: INVITEs to it are refused
        )
        self._placing: dict[str, _Placing] = {}  # by agent key
        self._calls: dict[str, SipLoadCall] = {}  # answered, not over
        self._timer: asyncio.TimerHandle | None = None
        self.agent_errors = 0
        protocol.client = self

    @classmethod
    async def open(
        cls,
        target: str,
        *,
        local_host: str = "127.0.0.1",
        codec: str = "PCMU",
        username: str = "",
        password: str = "",
        from_number: str = "loadtest",
    ) -> Self:
        resolved = await resolve_target(target)
        name = check_codec(codec)
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            _SipProtocol, local_addr=(local_host, 0)
        )
        credentials = Credentials(username, password) if username else None
        return cls(
            resolved,
            transport,
            protocol,
            local_host=local_host,
            codec=name,
            credentials=credentials,
            from_number=from_number,
        )

    @property
    def calls_up(self) -> int:
        return len(self._calls)

    @property
    def pending(self) -> int:
        """Calls placed and not over that are not up: ringing, or given up and ending."""
        return len(self._placing)

    @property
    def send_errors(self) -> int:
        return self._protocol.send_errors

    # --- placing calls ------------------------------------------------------------------------

    async def place(self, sink: CallSink, *, answer_timeout: float = 32.0) -> SipLoadCall | None:
        """INVITE; the call once answered (after ``sink.answered``), else None (after
        ``sink.failed``). Cancelling this gives the call up without telling the sink."""
        loop = asyncio.get_running_loop()
        try:
            _, rtp = await loop.create_datagram_endpoint(
                lambda: RtpLeg(sink, "-"), local_addr=(self.local_host, 0)
            )
        except OSError as error:
            log.error("no RTP socket for a call: %s", error, extra={"call_id": "-"})
            _tell("-", sink.failed, "error", time.monotonic())
            return None
        now = time.monotonic()
        call = start_outbound(
            self.agent.at(now),
            request_uri=self.target.request_uri,
            from_number=self.from_number,
            trunk=self.target.address,
            offer=self._offer(rtp.port),
            media=(self.local_host, rtp.port),
            credentials=self._credentials,
        )
        rtp.call_id = call.invite.headers.get("Call-ID") or call.key
        placing = _Placing(sink, rtp, loop.create_future())
        self._placing[call.key] = placing
        self._run(now)
        try:
            return await asyncio.wait_for(asyncio.shield(placing.result), answer_timeout)
        except TimeoutError:
            return self._give_up(call, placing, "timeout")
        except asyncio.CancelledError:
            self._give_up(call, placing, None)
            raise

    def _offer(self, rtp_port: int) -> SessionDescription:
        return offer_sdp(
            address=self.local_host,
            port=rtp_port,
            session_id=secrets.randbelow(2**31),
            session_version=1,
            codecs=(self.codec,),
            username="loadtest",
        )

    def _give_up(self, call: SipCall, placing: _Placing, reason: str | None) -> SipLoadCall | None:
        """No answer in time: CANCEL (or BYE, should the answer come later); tell the sink."""
        if placing.result.done():  # decided in the meantime
            return placing.result.result()
        placing.given_up = True
        placing.result.set_result(None)
        placing.rtp.close()
        now = time.monotonic()
        self.agent.at(now).cancel(call)
        self._run(now)
        if reason is not None:
            log.info("no answer in time: giving up", extra={"call_id": placing.rtp.call_id})
            _tell(placing.rtp.call_id, placing.sink.failed, reason, now)
        return None

    def hang_up(self, call: SipCall) -> None:
        now = time.monotonic()
        self.agent.at(now).hangup(call)
        self._run(now)

    async def close(self) -> None:
        """Hang up the calls still up (``ended("local_hangup")``), give up those still
        ringing (``failed("error")``: the client closed under them), close the sockets."""
        for call in list(self._calls.values()):
            call.hangup()
        for key, placing in list(self._placing.items()):
            sip = self.agent.calls.get(key)
            if sip is not None and not placing.result.done():
                self._give_up(sip, placing, "error")
            placing.rtp.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._transport.close()
        await asyncio.sleep(0)  # the transports' connection_lost

    # --- the agent's loop ---------------------------------------------------------------------

    def datagram(self, data: bytes, source: Address, now: float) -> None:
        try:
            self.agent.receive(data, source, now)
        except Exception:  # the agent's bug must not stop the client
            self.agent_errors += 1
            log.exception("SIP agent failed on a datagram", extra={"call_id": "-"})
        self._run(now)

    def _fire(self) -> None:
        self._timer = None
        now = time.monotonic()
        try:
            self.agent.handle_timer(now)
        except Exception:
            self.agent_errors += 1
            log.exception("SIP agent failed on its timer", extra={"call_id": "-"})
        self._run(now)

    def _run(self, now: float) -> None:
        agent = self.agent
        while agent.outbox or agent.events:
            sends, agent.outbox = agent.outbox, []
            if not self._transport.is_closing():
                for send in sends:
                    self._transport.sendto(send.data, send.addr)
            events, agent.events = agent.events, []
            for event in events:
                self._event(event, now)
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due = self.agent.next_due()
        if due is not None and not self._transport.is_closing():
            loop = asyncio.get_running_loop()
            delay = max(0.0, due - time.monotonic())
            self._timer = loop.call_at(loop.time() + delay, self._fire)

    # --- what the agent reports ---------------------------------------------------------------

    def _event(self, event: AgentEvent, now: float) -> None:
        if isinstance(event, CallConfirmed):
            self._confirmed(event.call, now)
        elif isinstance(event, CallEnded):
            self._ended(event, now)

    def _confirmed(self, sip: SipCall, now: float) -> None:
        placing = self._placing.pop(sip.key, None)
        if placing is None:
            return
        if placing.given_up or sip.negotiated is None:  # too late: ACKed, now BYE
            self._placing[sip.key] = placing  # until its CallEnded
            self.agent.at(now).hangup(sip)
            return
        call = SipLoadCall(self, sip, placing.sink, placing.rtp)
        self._calls[sip.key] = call
        log.debug("call answered", extra={"call_id": call.call_id})
        _tell(call.call_id, placing.sink.answered, now)
        placing.rtp.start(sip.negotiated)
        placing.result.set_result(call)

    def _ended(self, event: CallEnded, now: float) -> None:
        key = event.call.key
        call = self._calls.pop(key, None)
        if call is not None:
            call.finish(ENDINGS.get(event.reason, "error"), now)
            return
        placing = self._placing.pop(key, None)
        if placing is None or placing.given_up:
            return
        reason = event.reason if event.reason in FAILURES else "error"
        if event.status is not None:  # the SRE's first question: which answer? (503: full)
            reason = f"{reason}_{event.status}"
        log.info(
            "call not answered: %s (SIP %s)",
            reason,
            event.status if event.status is not None else "none",
            extra={"call_id": placing.rtp.call_id},
        )
        placing.rtp.close()
        placing.result.set_result(None)
        _tell(placing.rtp.call_id, placing.sink.failed, reason, now)


def _tell(call_id: str, listener: Callable[..., None], *args: object) -> None:
    """Call the sink; its failure is logged, not raised into the SIP loop."""
    try:
        listener(*args)
    except Exception:
        log.exception("the call's sink failed", extra={"call_id": call_id})
