"""The SIP listener: one UDP socket around the sans-I/O user agent, and the calls it starts.

Every datagram goes to :class:`~voxgate.bridge.sip.agent.SipAgent`; what it
wants sent is sent, and what it reports is carried out here:

- :class:`IncomingCall`: refused with 503 + Retry-After when the bridge
  drains or is full (node-wide, like WebSocket streams) or no RTP port is
  free; else an RTP socket is bound (:class:`RtpPorts`), 180 Ringing goes out
  and, with the route's ``connect_ws_after_answer = 0``, the bot is connected
  while the phone rings and the call is answered (200 OK with SDP) as soon as
  the bot's socket is up (or its connect timeout has passed, when the call's
  fallback takes over); with ``1`` the call is answered at once and the bot
  connected on the ACK.
- :class:`CallEnded` by the peer (BYE, CANCEL, no ACK): the session hears
  the caller hang up. :class:`MediaUpdated` (re-INVITE, UPDATE): the RTP
  stream follows the new address and codec; a held call sends nothing and
  does not time out. :class:`DtmfInfo`: a key press for the bot.
- The call's REST-like actions (:data:`CarrierAction`): hangup is a BYE;
  transfer is a REFER whose NOTIFY result (or a refusal, or 32 s of silence)
  answers the call core.

The agent's timers run on one event-loop timer set for its earliest due
instant. The socket binds with SO_REUSEPORT, so each worker of a node listens
on the same port; the kernel hashes a peer's address to one worker, which
therefore sees all of that peer's requests for a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

from voxgate.bridge.aio.session import CarrierAction
from voxgate.bridge.aio.sipleg import RtpPorts, SipLeg
from voxgate.bridge.call_api import CarrierHangup, CarrierTransfer
from voxgate.bridge.events import DtmfReceived, HoldChanged, StreamStarted
from voxgate.bridge.rtp.stream import MediaSetup
from voxgate.bridge.sip.agent import AgentSettings, SipAgent
from voxgate.bridge.sip.auth import Credentials
from voxgate.bridge.sip.calls import (
    AgentEvent,
    CallConfirmed,
    CallEnded,
    DtmfInfo,
    IncomingCall,
    MediaUpdated,
    Phase,
    Ringing,
    SipCall,
    TransferDone,
)
from voxgate.bridge.sip.message import parse_uri
from voxgate.bridge.sip.outbound import start_outbound
from voxgate.bridge.sip.register import Registration, RegistrationTarget
from voxgate.bridge.sip.sdp import Negotiated, offer_sdp
from voxgate.bridge.sip.uri import bracketed
from voxgate.codecs.formats import Encoding
from voxgate.errors import ConfigError, UnsupportedFormatError
from voxgate.obs import METRICS

if TYPE_CHECKING:
    from voxgate.bridge.aio.app import Bridge

log = logging.getLogger("voxgate.sip")

TRANSFER_WAIT: Final = 32.0  # seconds for a REFER's outcome (64*T1)
RESULTS: Final = {  # an outbound call's end -> its result (the REST API's call statuses)
    "busy": "busy",
    "no_answer": "no-answer",
    "rejected": "failed",
    "unreachable": "failed",
}


@dataclass(frozen=True, slots=True)
class DialResult:
    """How an outbound call went: ``status`` is ``completed`` (answered, then ended),
    ``busy``, ``no-answer`` or ``failed``; ``sip_status`` the final response, if one came."""

    status: str
    reason: str
    sip_status: int | None = None
    answered: bool = False
    call_id: str | None = None  # voxgate's call id, once answered


class _SipProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: SipServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.server.datagram(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        METRICS.count("sip_send_errors")


class SipServer:
    """See the module docstring."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        sip = bridge.config.sip
        self.config = sip
        self.agent = SipAgent(
            AgentSettings(
                host=sip.host,
                port=sip.port,
                advertised=sip.advertised(),
                codecs=sip.codecs,
                allow=sip.allow,
                realm=sip.realm,
                username=sip.username,
                password=sip.password,
                nonce_secret=secrets.token_bytes(16),
            ),
            busy=self._busy,
            counted=lambda kind: METRICS.count("sip_events", kind=kind),
        )
        self._layer_counts = (0, 0)  # the transaction layer's rejected and dropped, reported
        self.ports = RtpPorts(sip.host, sip.rtp_port_min, sip.rtp_port_max)
        self.legs: dict[str, SipLeg] = {}
        self._reserved: set[str] = set()  # calls holding a place on the node, no session yet
        self._transfers: dict[str, asyncio.Future[str | None]] = {}
        self._dials: dict[str, _Dial] = {}
        self._transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _SipProtocol(self),
            local_addr=(self.config.host, self.config.port),
            reuse_port=True,
        )
        self._transport = transport
        port = transport.get_extra_info("sockname")[1]
        if port != self.agent.settings.port:  # port 0: the one the system chose
            self.agent.settings = _with_port(self.agent.settings, port)
        log.info("SIP listening on %s:%d (UDP)", self.config.host, port)
        if self.config.register:
            await self._register()

    async def _register(self) -> None:
        """Keep voxgate registered with ``sip.trunk`` (RFC 3261 10; the agent refreshes)."""
        registrar = await _trunk_address(self.config.trunk)
        credentials = None
        if self.config.trunk_username:
            credentials = Credentials(self.config.trunk_username, self.config.trunk_password)
        target = RegistrationTarget(
            registrar=registrar,
            domain=parse_uri(self.config.trunk).host,
            username=self.config.trunk_username or "voxgate",
            contact=self.agent.contact(),
            via=self.agent.via(),
        )
        self.agent.registration = Registration(target, credentials)
        self._fire()

    @property
    def port(self) -> int:
        return self.agent.settings.port

    async def stop(self) -> None:
        for leg in list(self.legs.values()):
            leg.close(1001, "shutdown")
        self._run()
        for task in list(self._tasks):
            task.cancel()
        if self._timer is not None:
            self._timer.cancel()
        if self._transport is not None:
            self._transport.close()

    # --- the agent's loop ---------------------------------------------------------------------

    def datagram(self, data: bytes, source: tuple[str, int]) -> None:
        METRICS.count("sip_datagrams")
        if log.isEnabledFor(logging.DEBUG):  # the first line only: headers may carry credentials
            first = data.split(b"\r\n", 1)[0][:120].decode("utf-8", "replace")
            log.debug("SIP in from %s:%d: %s", source[0], source[1], first)
        try:
            self.agent.receive(data, source, time.monotonic())
        except Exception:  # the agent's bug must not stop the listener
            METRICS.count("errors", kind="sip")
            log.exception("SIP agent failed on a datagram from %s", source[0])
        self._run()

    def _fire(self) -> None:
        self._timer = None
        try:
            self.agent.handle_timer(time.monotonic())
        except Exception:
            METRICS.count("errors", kind="sip")
            log.exception("SIP agent failed on its timer")
        self._run()

    def _run(self) -> None:
        while self.agent.outbox or self.agent.events:
            sends, self.agent.outbox = self.agent.outbox, []
            if self._transport is not None:
                for send in sends:
                    if log.isEnabledFor(logging.DEBUG):
                        first = send.data.split(b"\r\n", 1)[0][:120].decode("utf-8", "replace")
                        log.debug("SIP out to %s:%d: %s", send.addr[0], send.addr[1], first)
                    self._transport.sendto(send.data, send.addr)
            events, self.agent.events = self.agent.events, []
            for event in events:
                self._event(event)
        self._count_layer()
        self._arm()

    def _count_layer(self) -> None:
        """The transaction layer's refusals (503 for want of room) and unreadable messages."""
        layer = self.agent.layer
        rejected, dropped = self._layer_counts
        if layer.rejected != rejected:
            METRICS.count("sip_events", layer.rejected - rejected, kind="transactions_full")
        if layer.dropped != dropped:
            METRICS.count("sip_events", layer.dropped - dropped, kind="unreadable")
        self._layer_counts = (layer.rejected, layer.dropped)

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due = self.agent.next_due()
        if due is not None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, due - time.monotonic())
            self._timer = loop.call_at(loop.time() + delay, self._fire)

    def _busy(self) -> str | None:
        if self.bridge.draining:
            return "draining"
        return "full" if self.bridge.full() else None

    # --- what the agent reports -----------------------------------------------------------------

    def _event(self, event: AgentEvent) -> None:
        if isinstance(event, IncomingCall):
            self._incoming(event.call)
        elif isinstance(event, CallConfirmed):
            self._confirmed(event.call)
        elif isinstance(event, CallEnded):
            self._ended(event)
        elif isinstance(event, MediaUpdated):
            self._media_updated(event.call, event.negotiated)
        elif isinstance(event, DtmfInfo):
            leg = self.legs.get(event.call.key)
            if leg is not None and leg.session is not None:
                dtmf = DtmfReceived(event.digit, duration_ms=event.duration_ms, method="info")
                leg.session.on_carrier_events([dtmf], time.monotonic())
        elif isinstance(event, Ringing):
            dial = self._dials.get(event.call.key)
            if dial is not None and not dial.rang:
                dial.rang = True
                dial.tell("ringing")
        elif isinstance(event, TransferDone):
            future = self._transfers.pop(event.call.key, None)
            if future is not None and not future.done():
                future.set_result(None if event.ok else event.reason or "transfer failed")
            if event.ok:  # RFC 5589 6.1: the transferee took the call; the transferor leaves
                self._transferred(event.call)

    def _incoming(self, call: SipCall) -> None:
        if not self.bridge.reserve():
            METRICS.count("sip_calls_refused", why="full")
            self.agent.at(time.monotonic()).reject(call, 503, retry_after=True)
            return
        self._reserved.add(call.key)
        try:
            setup = _setup(call)
        except UnsupportedFormatError:
            self._refuse(call, 488)
            return
        sock = self.ports.bind()
        if sock is None:
            METRICS.count("sip_calls_refused", why="no_rtp_port")
            log.error("no free RTP port", extra={"call_id": call.key})
            self._refuse(call, 503, retry_after=True)
            return
        leg = self._new_leg(call, setup)
        METRICS.count("sip_calls", direction="inbound")
        self._spawn(self._accept(call, leg, sock))

    def _new_leg(self, call: SipCall, setup: MediaSetup) -> SipLeg:
        leg = SipLeg(
            call,
            setup,
            schedule=self.bridge.scheduler.schedule,
            hang_up=self._hang_up,
            done=self._leg_done,
            rtp_timeout=self.config.rtp_timeout,
            inband_dtmf=self.config.inband_dtmf,
        )
        self.legs[call.key] = leg
        return leg

    async def _accept(self, call: SipCall, leg: SipLeg, sock: socket.socket) -> None:
        port = sock.getsockname()[1]
        await leg.open(sock)
        if not call.live:
            return
        custom: Mapping[str, str] = {}
        control = self.bridge.control
        if control is not None:
            decision = await control.decide(
                to_number=call.called or None,
                from_number=call.caller or None,
                carrier="sip",
                carrier_call_id=call.invite.headers.get("Call-ID") or call.key,
            )
            if call.phase is Phase.ENDED:  # the caller gave up while the webhook decided
                return
            if not decision.accept:  # RFC 3261 21.6.4: 603 Decline
                log.info("SIP call declined: %s", decision.reason, extra={"call_id": call.key})
                METRICS.count("sip_calls_refused", why="rejected")
                self.agent.at(time.monotonic()).reject(call, 603)
                self._run()
                return
            custom = decision.parameters
        leg.custom = dict(custom)
        self.agent.at(time.monotonic()).ring(call)
        self._run()
        after_answer = self.bridge.bot_config_for(call.called).connect_ws_after_answer
        if not after_answer:
            if not self._open_session(leg, custom_parameters=custom):
                return
            await self._bot_ready(leg)
            if not call.live or leg.ended:
                return
        self.agent.at(time.monotonic()).answer(call, (self.config.advertised(), port))
        leg.start_media()
        log.info(
            "SIP call answered: %s -> %s (%s)",
            call.caller,
            call.called,
            leg.stream.setup.encoding.value,
            extra={"call_id": call.key},
        )
        self._run()

    async def _bot_ready(self, leg: SipLeg) -> None:
        """Until the bot's socket is up or the call gave up on it (its fallback answers)."""
        session = leg.session
        assert session is not None
        with contextlib.suppress(TimeoutError):  # the call's own timeout comes first
            await asyncio.wait_for(session.settled.wait(), session.bot.connect_timeout + 1.0)

    def _confirmed(self, call: SipCall) -> None:
        dial = self._dials.get(call.key)
        if dial is not None:  # an outbound call was answered
            self._outbound_answered(call, dial)
            return
        leg = self.legs.get(call.key)
        if leg is not None and leg.session is None:
            self._open_session(leg, custom_parameters=leg.custom)

    def _open_session(
        self,
        leg: SipLeg,
        custom_parameters: Mapping[str, str] | None = None,
        call_id: str | None = None,
    ) -> bool:
        call = leg.sip
        started = StreamStarted(
            stream_id=call.key,
            call_id=call.invite.headers.get("Call-ID") or call.key,
            media_format=leg.stream.setup.format,
            from_number=call.caller or None,
            to_number=call.called or None,
            direction=call.direction.value,
            custom_parameters=dict(custom_parameters or {}),
        )
        try:
            session = self.bridge.open_leg_session(
                "sip",
                leg,
                started,
                carrier_action=self._action_for(leg),
                call_id=call_id or f"vx-{uuid.uuid4().hex[:20]}",
                dtmf_events=leg.stream.setup.telephone_event_pt is not None,
            )
        except (ConfigError, UnsupportedFormatError) as error:
            log.error("cannot start the bot for a SIP call: %s", error, extra={"call_id": call.key})
            METRICS.count("sip_calls_refused", why="bad_parameters")
            leg.close(1008, "bad_parameters")
            return False
        self._reserved.discard(call.key)
        leg.attach(session)
        return True

    def _ended(self, event: CallEnded) -> None:
        call = event.call
        dial = self._dials.pop(call.key, None)
        if dial is not None:
            dial.finish(event)
            self.ports.release(dial.port)  # its leg may not have opened (and named) it yet
            if call.key not in self.legs:
                dial.sock.close()
        leg = self.legs.pop(call.key, None)
        if call.key in self._reserved:
            self._reserved.discard(call.key)
            self.bridge.release()
        future = self._transfers.pop(call.key, None)
        if future is not None and not future.done():
            future.set_result("the call ended")
        METRICS.count("sip_calls_ended", reason=event.reason)
        if leg is None:
            return
        if event.reason != "local":
            leg.peer_ended()
        self.ports.release(leg.port)

    def _media_updated(self, call: SipCall, negotiated: Negotiated) -> None:
        leg = self.legs.get(call.key)
        if leg is None:
            return
        try:
            setup = _setup(call)
        except UnsupportedFormatError:
            return
        leg.stream.moved(setup, time.monotonic())
        was = leg.on_hold
        leg.on_hold = negotiated.on_hold
        if was != leg.on_hold:
            state = "on hold" if leg.on_hold else "resumed"
            log.info("call %s by the peer", state, extra={"call_id": leg.call_id})
            if leg.session is not None:
                leg.session.on_carrier_events([HoldChanged(leg.on_hold)], time.monotonic())

    # --- outbound calls -----------------------------------------------------------------------

    async def dial(
        self,
        target: str,
        *,
        bot_url: str | None = None,
        ring_timeout: float = 30.0,
        call_id: str | None = None,
        custom_parameters: Mapping[str, str] | None = None,
        on_progress: Callable[[str], None] | None = None,
    ) -> DialResult:
        """Call ``target`` (a number or a SIP URI) through ``sip.trunk`` and bridge the
        answered call to the bot (``bot_url``, else the route of ``target``); returns when
        the call is over. See :mod:`voxgate.bridge.sip.outbound` for the SIP side.

        ``call_id`` names the answered call (else a new id); ``custom_parameters`` reach
        the bot's ``start`` (and may choose it: ``wss_url``...); ``on_progress`` is told
        ``ringing`` at the first 180/183 and ``in-progress`` once the answered call has its
        session. Cancelling the coroutine gives the call up (as its ``ring_timeout`` does):
        CANCEL while it rings, BYE for an answer that has no session yet (one crossing the
        CANCEL, RFC 3261 9.1); a call with its session goes on."""
        trunk = await _trunk_address(self.config.trunk)
        if not self.bridge.reserve():
            return DialResult("failed", "voxgate is draining or full")
        sock = self.ports.bind()
        if sock is None:
            self.bridge.release()
            return DialResult("failed", "no free RTP port")
        port = sock.getsockname()[1]
        offer = offer_sdp(
            address=self.config.advertised(),
            port=port,
            session_id=secrets.randbelow(2**31),
            session_version=1,
            codecs=self.config.codecs,
        )
        credentials = None
        if self.config.trunk_username:
            credentials = Credentials(self.config.trunk_username, self.config.trunk_password)
        call = start_outbound(
            self.agent.at(time.monotonic()),
            request_uri=_request_uri(target, trunk[0]),
            from_number=self.config.from_number,
            trunk=trunk,
            offer=offer,
            media=(self.config.advertised(), port),
            credentials=credentials,
        )
        custom = dict(custom_parameters or {})
        if bot_url:
            custom["wss_url"] = bot_url
        dial = _Dial(
            sock, port, custom, asyncio.get_running_loop().create_future(), call_id, on_progress
        )
        self._dials[call.key] = dial
        self._reserved.add(call.key)
        METRICS.count("sip_calls", direction="outbound")
        log.info("dialling %s", _request_uri(target, trunk[0]), extra={"call_id": call.key})
        self._run()
        loop = asyncio.get_running_loop()
        timer = loop.call_later(ring_timeout, self._give_up, call)
        try:
            return await asyncio.shield(dial.result)
        except asyncio.CancelledError:
            self._give_up(call)
            raise
        finally:
            timer.cancel()

    def _give_up(self, call: SipCall) -> None:
        """Stop an outbound call that has no session yet: CANCEL while it rings (RFC 3261
        9.1); an answer already in (its session opening) or still to come is hung up."""
        dial = self._dials.get(call.key)
        if dial is None or dial.call_id is not None:
            return  # over, or answered and bridged: it goes on
        dial.given_up = True
        if call.phase is Phase.OFFERED:
            log.info("giving up on the call: cancelling", extra={"call_id": call.key})
            self.agent.at(time.monotonic()).cancel(call)
        else:
            leg = self.legs.get(call.key)
            if leg is not None:
                leg.close(1000, "given_up")
            else:
                self.agent.at(time.monotonic()).hangup(call)
        self._run()

    def _outbound_answered(self, call: SipCall, dial: _Dial) -> None:
        if dial.given_up:  # a 2xx that crossed voxgate's CANCEL: ACKed, now BYE (RFC 3261 15)
            log.info("answered after voxgate gave up: hanging up", extra={"call_id": call.key})
            self.agent.at(time.monotonic()).hangup(call)
            self._run()
            return
        try:
            setup = _setup(call)
        except UnsupportedFormatError:
            self.agent.at(time.monotonic()).hangup(call)
            self._run()
            return
        leg = self._new_leg(call, setup)
        self._spawn(self._bridge_outbound(call, leg, dial))

    async def _bridge_outbound(self, call: SipCall, leg: SipLeg, dial: _Dial) -> None:
        await leg.open(dial.sock)
        if leg.ended or dial.given_up:  # hung up while its RTP socket opened
            leg.close(1000, "given_up")
            return
        leg.start_media()
        if self._open_session(leg, custom_parameters=dial.custom, call_id=dial.api_call_id):
            dial.call_id = leg.call_id
            log.info("outbound call answered", extra={"call_id": leg.call_id})
            dial.tell("in-progress")

    # --- what the call asks of SIP ------------------------------------------------------------

    def _transferred(self, call: SipCall) -> None:
        leg = self.legs.get(call.key)
        self.agent.at(time.monotonic()).hangup(call)
        if leg is not None:
            leg.peer_ended()  # the call ends "transferred" (its transfer target is set)
        log.info("call transferred", extra={"call_id": leg.call_id if leg else call.key})

    def _leg_done(self, leg: SipLeg) -> None:
        """The leg's media is over: its session leaves the bridge (once its call has
        finished what it is doing: the leg may close in the middle of the call's work)."""
        session = leg.session
        if session is not None:
            asyncio.get_running_loop().call_soon(self.bridge.forget, session)

    def _hang_up(self, leg: SipLeg) -> None:
        self.agent.at(time.monotonic()).hangup(leg.sip)
        self._run()

    def _action_for(self, leg: SipLeg) -> CarrierAction:
        async def act(action: CarrierHangup | CarrierTransfer) -> str | None:
            if isinstance(action, CarrierHangup):
                self.agent.at(time.monotonic()).hangup(leg.sip)
                self._run()
                return None
            future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
            self._transfers[leg.sip.key] = future
            self.agent.at(time.monotonic()).refer(leg.sip, action.target)
            self._run()
            try:
                return await asyncio.wait_for(future, TRANSFER_WAIT)
            except TimeoutError:
                return "no transfer result came"

        return act

    def _refuse(self, call: SipCall, status: int, *, retry_after: bool = False) -> None:
        self.agent.at(time.monotonic()).reject(call, status, retry_after=retry_after)
        self._run()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


@dataclass(slots=True)
class _Dial:
    sock: socket.socket
    port: int
    custom: dict[str, str]  # the call's custom parameters (wss_url... choose the bot)
    result: asyncio.Future[DialResult]
    api_call_id: str | None = None  # the id the answered call takes (the REST API's)
    on_progress: Callable[[str], None] | None = None
    call_id: str | None = None  # voxgate's call id, once the answered call has a session
    rang: bool = False
    given_up: bool = False  # cancelled or timed out before the call had a session

    def tell(self, status: str) -> None:
        if self.on_progress is None:
            return
        try:
            self.on_progress(status)
        except Exception:
            METRICS.count("errors", kind="internal")
            log.exception("a dial's progress listener failed")

    def finish(self, event: CallEnded) -> None:
        if self.result.done():
            return
        status = event.call.final_status  # set by the answer (a 2xx) only
        if status is not None and 200 <= status < 300 and self.call_id is not None:
            outcome = DialResult("completed", event.reason, status, True, self.call_id)
        elif status is not None and 200 <= status < 300:  # answered, ended before its session
            if self.given_up:
                outcome = DialResult("no-answer", "no_answer", status, False, None)
            else:
                outcome = DialResult("failed", event.reason, status, False, None)
        else:
            result = RESULTS.get(event.reason, "failed")
            outcome = DialResult(result, event.reason, event.status, False, None)
        self.result.set_result(outcome)


async def _trunk_address(trunk: str) -> tuple[str, int]:
    """The trunk's IP address and port (a name is resolved here, once per call)."""
    if not trunk:
        raise ConfigError("sip.trunk is not set: outbound calls need a trunk (sip:host:port)")
    uri = parse_uri(trunk)
    port = uri.port or 5060
    infos = await asyncio.get_running_loop().getaddrinfo(uri.host, port, type=socket.SOCK_DGRAM)
    if not infos:
        raise ConfigError(f"sip.trunk: cannot resolve {uri.host}")
    return str(infos[0][4][0]), port


def _request_uri(target: str, trunk_host: str) -> str:
    if target.startswith(("sip:", "sips:")):
        return target
    return f"sip:{target.strip()}@{bracketed(trunk_host)}"


def _setup(call: SipCall) -> MediaSetup:
    negotiated = call.negotiated
    assert negotiated is not None
    codec = negotiated.codec
    try:
        encoding = Encoding(codec.name.lower())
    except ValueError:
        raise UnsupportedFormatError(f"codec {codec.name}") from None
    event = negotiated.telephone_event
    return MediaSetup(
        encoding=encoding,
        payload_type=codec.payload_type,
        clock_rate=codec.clock_rate,
        telephone_event_pt=event.payload_type if event is not None else None,
        remote=(negotiated.remote_address, negotiated.remote_port),
        ptime=negotiated.ptime,
    )


def _with_port(settings: AgentSettings, port: int) -> AgentSettings:
    return replace(settings, port=port)
