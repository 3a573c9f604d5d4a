"""One call's sockets around its sans-I/O core.

A :class:`CallSession` owns the carrier's leg (a :class:`CarrierLeg`: a
carrier's WebSocket stream with its dialect, :class:`StreamLeg`, or a SIP
call's dialog and RTP), the attempts at the bot's socket (one
:class:`BotSocket` each, opened and closed as the call asks), and the call
core. What a stream's carrier sends is parsed by its dialect (a SIP leg hands
over events it has already made) and fed to the core; everything the core asks
for is carried out here. Protocol errors are counted and handed to the core,
which decides whether the stream goes on.

Error boundary: every way into the session (a carrier message, the carrier
closing, the scheduler's wake-up, a bot socket's news) runs under one guard.
An unexpected exception ends this call alone: it is logged once with the call
id and the traceback, counted, and the core ends the call with ``stop``
``internal_error`` and close code 1011 on both sockets (docs/PROTOCOL.md); if
even that fails, both sockets are closed with 1011 directly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

from voxgate.bridge.aio.botsocket import BotSocket, BotTarget
from voxgate.bridge.aio.fastws import FastSocket
from voxgate.bridge.call import Call
from voxgate.bridge.call_api import (
    CallEnded,
    CallOutput,
    CallPolicy,
    CallState,
    CarrierHangup,
    CarrierTransfer,
    CloseBot,
    CloseCarrier,
    ConnectBot,
    ToBot,
    ToCarrier,
)
from voxgate.bridge.dialect import Dialect, Message
from voxgate.bridge.events import (
    DownstreamEvent,
    DtmfReceived,
    MediaReceived,
    StreamStarted,
    UpstreamEvent,
)
from voxgate.bridge.ratelimit import InboundRate, Verdict
from voxgate.errors import ProtocolError
from voxgate.obs import METRICS

log = logging.getLogger("voxgate.session")

CLOSE_INTERNAL_ERROR: Final = 1011  # RFC 6455 section 7.4.1
SUMMARY_COUNTERS: Final = (  # per-call counters added to the process totals at the end
    "frames_in",
    "frames_out",
    "frames_late",
    "frames_padded",
    "frames_cleared",
    "reorder_lost",
    "reorder_reordered",
    "reorder_resyncs",
)

CarrierAction = Callable[[CarrierHangup | CarrierTransfer], Awaitable[str | None]]
"""Runs a carrier REST action; returns None on success, else why it failed."""

CallObserver = Callable[["CallSession", str, dict[str, object]], None]
"""Told what happens in a call that the control plane reports (``bot.connected``,
``bot.disconnected``, ``dtmf.received``): the session, the event type, its data."""

__all__ = ["BotTarget", "CallObserver", "CallSession", "CarrierAction", "CarrierLeg", "StreamLeg"]


class CarrierLeg(Protocol):
    """The caller's side of a call, as the session drives it."""

    def deliver(self, event: DownstreamEvent, since: float | None) -> None:
        """Carry out what the call asks of the carrier (audio, clear, mark, DTMF)."""
        ...

    def close(self, code: int, reason: str) -> None:
        """End the carrier's side (a WebSocket close code; a SIP leg sends BYE)."""
        ...

    async def wait_closed(self, timeout: float = 2.0) -> None: ...


class StreamLeg:
    """A carrier's WebSocket media stream: its socket and its dialect."""

    __slots__ = ("dialect", "socket")

    def __init__(self, dialect: Dialect, socket: FastSocket) -> None:
        self.dialect = dialect
        self.socket = socket

    def deliver(self, event: DownstreamEvent, since: float | None) -> None:
        message = self.dialect.format_downstream(event)
        if message is not None:
            self.socket.put(message, origin=since)

    def close(self, code: int, reason: str) -> None:
        self.socket.close(code, reason)

    async def wait_closed(self, timeout: float = 2.0) -> None:
        await self.socket.wait_closed(timeout)


class CallSession:
    """Sockets and tasks of one call; see the module docstring."""

    def __init__(
        self,
        *,
        call_id: str,
        carrier: str,
        carrier_leg: CarrierLeg,
        carrier_dialect: Dialect | None = None,
        started: StreamStarted,
        bot: BotTarget,
        policy: CallPolicy,
        schedule: Callable[[CallSession, float | None], None],
        carrier_action: CarrierAction | None = None,
        inbound_rate: InboundRate | None = None,
        on_ended: Callable[[CallSession, CallEnded], None] | None = None,
    ) -> None:
        self.call_id = call_id
        self.carrier = carrier
        self.bot = bot
        self._carrier_dialect = carrier_dialect  # None: the leg hands over events
        self._carrier_leg = carrier_leg
        self._schedule = schedule
        self._carrier_action = carrier_action
        self._inbound_rate = inbound_rate
        self.on_ended = on_ended  # told once, when the call is over (the control plane listens)
        self.observer: CallObserver | None = None
        self._link: BotSocket | None = None  # the current attempt
        self._links: set[BotSocket] = set()  # every attempt not yet wound up
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing: list[CarrierLeg] = []  # closed on the call's word: await them at shutdown
        self._received_at = 0.0
        self._failed = False
        self._log = {"call_id": call_id}
        self.settled = asyncio.Event()  # set once the call is past connecting to its bot
        self.call = Call(call_id, started, bot.audio or started.media_format, policy, _now())
        self._guard(self._pump)

    # --- what arrives from the carrier ----------------------------------------------------

    def on_carrier_message(self, message: Message) -> None:
        if self._failed:
            return
        try:
            self._carrier_message(message)
        except Exception:
            self._fail()

    def _carrier_message(self, message: Message) -> None:
        now = self._received_at = _now()
        assert self._carrier_dialect is not None, "a stream leg has a dialect"
        try:
            event = self._carrier_dialect.parse_upstream(message)
        except ProtocolError as error:
            METRICS.count("protocol_errors", side="carrier", code=error.code)
            log.warning("carrier sent a bad message: %s", error.message, extra=self._log)
            self.call.carrier_protocol_error(error, now)
        else:
            if isinstance(event, MediaReceived) and not self._admit(event, now):
                return
            self._feed(event, now)
        self._pump()

    def on_carrier_events(self, events: list[UpstreamEvent], received_at: float) -> None:
        """Events a leg without a dialect made (a SIP call's RTP and signalling)."""
        if self._failed or not events:
            return
        try:
            self._received_at = received_at
            for event in events:
                self._feed(event, received_at)
            self._pump()
        except Exception:
            self._fail()

    def _feed(self, event: UpstreamEvent, now: float) -> None:
        if isinstance(event, DtmfReceived):
            log.info("dtmf received (%s)", event.method or "carrier", extra=self._log)
            self._tell("dtmf.received", {"digit": event.digit, "method": event.method})
        self.call.carrier_event(event, now)

    def _tell(self, event_type: str, data: dict[str, object]) -> None:
        if self.observer is not None:
            try:
                self.observer(self, event_type, data)
            except Exception:  # the listener's failure is not the call's
                METRICS.count("errors", kind="internal")
                log.exception("the call's observer failed", extra=self._log)

    def _admit(self, event: MediaReceived, now: float) -> bool:
        """Whether the caller's audio is within the stream's rate bound."""
        if self._inbound_rate is None:
            return True
        fmt = self.call.carrier_format
        verdict = self._inbound_rate.admit(len(event.payload) / fmt.bytes_per(1000), now)
        if verdict is Verdict.PASS:
            return True
        METRICS.count("inbound_dropped", carrier=self.carrier)
        if verdict is Verdict.CLOSE:
            log.error("carrier keeps sending faster than allowed; closing", extra=self._log)
            self.call.carrier_protocol_error(
                ProtocolError("rate_exceeded", "audio faster than allowed", fatal=True), now
            )
            self._pump()
        return False

    def on_carrier_closed(self) -> None:
        if self._failed:
            return
        try:
            self.call.carrier_closed(_now())
            self._pump()
        except Exception:
            self._fail()

    def wake(self, now: float) -> float | None:
        """The scheduler's call: do what is due."""
        if self._failed:
            return None
        try:
            self.call.tick(now)
            self._dispatch(self.call.drain())
            return self.call.next_due()
        except Exception:
            self._fail()
            return None

    async def close(self) -> None:
        """Tear down whatever is left (server shutdown)."""
        if not self._failed:
            self._guard(lambda: self.call.shutdown(_now()))
            self._guard(self._pump)
        await asyncio.gather(*(leg.wait_closed(1.0) for leg in self._closing))
        await asyncio.gather(*(link.wait_closed(1.0) for link in list(self._links)))
        for task in self._tasks:
            task.cancel()

    # --- what the control plane asks (the REST API's live-call actions) ------------------

    def api_hangup(self) -> None:
        self._guard(lambda: self.call.api_hangup(_now()))
        self._guard(self._pump)

    def api_transfer(self, target: str) -> str | None:
        """None when the transfer is under way, else why it cannot be."""
        problem = self.call.api_transfer(target, _now())
        self._guard(self._pump)
        return problem

    def api_dtmf(self, digits: str) -> None:
        self._guard(lambda: self.call.api_dtmf(digits, _now()))
        self._guard(self._pump)

    def api_play(self, carrier_audio: bytes, *, barge_in: bool) -> bool:
        """Queue audio in the carrier's format; False when over the call's queue bound."""
        queued = self.call.api_play(carrier_audio, _now(), barge_in=barge_in)
        self._guard(self._pump)
        return queued

    def replace_bot(self, bot: BotTarget) -> None:
        """Move the call to another bot (its address vetted by the caller)."""
        self.bot = bot
        self._guard(lambda: self.call.replace_bot(bot.audio or self.call.carrier_format, _now()))
        self._guard(self._pump)

    # --- what the bot's sockets report (BotSocketOwner) -----------------------------------

    def bot_connected(self, link: BotSocket) -> None:
        self._guard(lambda: self.call.bot_connected(_now(), attempt=link.attempt))
        self._guard(self._pump)
        if link is self._link:
            METRICS.observe("bot_connect_seconds", time.monotonic() - link.opened_at)
            self._tell("bot.connected", {"attempt": link.attempt})

    def bot_message(self, link: BotSocket, message: Message) -> None:
        if self._failed or link.dialect is None:
            return
        try:
            self._bot_message(link, link.dialect, message)
        except Exception:
            self._fail()

    def _bot_message(self, link: BotSocket, dialect: Dialect, message: Message) -> None:
        now = _now()
        try:
            event = dialect.parse_downstream(message)
        except ProtocolError as error:
            METRICS.count("protocol_errors", side="bot", code=error.code)
            log.warning("bot sent a bad message: %s", error.message, extra=self._log)
            self.call.bot_protocol_error(error, now, attempt=link.attempt)
        else:
            self.call.bot_event(event, now, attempt=link.attempt)
        self._pump()

    def bot_failed(self, link: BotSocket, reason: str, *, refused: bool) -> None:
        self._links.discard(link)
        self._guard(
            lambda: self.call.bot_connect_failed(
                reason, _now(), attempt=link.attempt, refused=refused
            )
        )
        self._guard(self._pump)

    def bot_disconnected(self, link: BotSocket, reason: str, code: int | None) -> None:
        self._links.discard(link)
        self._tell("bot.disconnected", {"attempt": link.attempt, "code": code})
        self._guard(
            lambda: self.call.bot_disconnected(reason, _now(), attempt=link.attempt, code=code)
        )
        self._guard(self._pump)

    def full(self) -> bool:
        """The caller's playout queue holds as much as allowed: stop reading the bot."""
        return self.call.full

    # --- carrying out what the call asks --------------------------------------------------

    def _pump(self) -> None:
        self._dispatch(self.call.drain())
        self._schedule(self, self.call.next_due())
        if self.call.state is not CallState.CONNECTING and not self.settled.is_set():
            self.settled.set()

    def _dispatch(self, outputs: list[CallOutput]) -> None:
        for output in outputs:
            if isinstance(output, ToCarrier):
                self._carrier_leg.deliver(output.event, output.since)
            elif isinstance(output, ToBot):
                self._send_bot(output)
            elif isinstance(output, ConnectBot):
                self._connect(output)
            elif isinstance(output, CloseBot):
                self._close_bot(output)
            elif isinstance(output, CloseCarrier):
                self._carrier_leg.close(output.code, output.reason)
                self._closing.append(self._carrier_leg)
            elif isinstance(output, CarrierHangup | CarrierTransfer):
                self._spawn(self._act(output))
            elif isinstance(output, CallEnded):
                self._ended(output)

    def _connect(self, output: ConnectBot) -> None:
        link = BotSocket(self, self.bot, output.attempt, output.timeout)
        self._link = link
        self._links.add(link)

    def _send_bot(self, output: ToBot) -> None:
        link = self._link
        if link is None or link.dialect is None:
            return
        try:
            message = link.dialect.format_upstream(output.event)
        except ProtocolError as error:  # the bot's dialect cannot say this: give up on it
            METRICS.count("errors", kind="bot_dialect")
            log.error("cannot send to the bot: %s", error.message, extra=self._log)
            self.call.bot_protocol_error(error, _now(), attempt=link.attempt)
            return
        if message is None:
            return
        if isinstance(output.event, MediaReceived):
            link.send(message, origin=self._received_at)
        else:
            link.send(message)

    def _close_bot(self, output: CloseBot) -> None:
        link = self._link
        if link is None or link.attempt != output.attempt:
            return
        link.close(output.code, output.reason)
        self._link = None

    def _ended(self, output: CallEnded) -> None:
        METRICS.count("calls_ended", reason=output.reason)
        summary = output.summary
        for name in SUMMARY_COUNTERS:
            value = summary.get(name)
            if isinstance(value, int) and value:
                METRICS.count(name, value)
        if self.on_ended is not None:
            try:
                self.on_ended(self, output)
            except Exception:  # the listener's failure is not the call's
                METRICS.count("errors", kind="internal")
                log.exception("the call's end listener failed", extra=self._log)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _act(self, action: CarrierHangup | CarrierTransfer) -> None:
        if self._carrier_action is None:
            return
        failure = await self._carrier_action(action)
        name = "hangup" if isinstance(action, CarrierHangup) else "transfer"
        if failure is None:
            METRICS.count("carrier_actions", action=name)
            log.info("carrier %s done", name, extra=self._log)
            return
        METRICS.count("errors", kind="carrier_rest")
        log.error("carrier %s failed: %s", name, failure, extra=self._log)
        if isinstance(action, CarrierTransfer):
            self._guard(lambda: self.call.transfer_failed(failure))
            self._guard(self._pump)

    # --- the error boundary ---------------------------------------------------------------

    def _guard(self, work: Callable[[], object]) -> None:
        if self._failed:
            return
        try:
            work()
        except Exception:
            self._fail()

    def _fail(self) -> None:
        """An unexpected exception escaped: end this call alone (see the module docstring)."""
        if self._failed:
            return
        self._failed = True
        METRICS.count("errors", kind="internal")
        log.exception("call failed inside voxgate; ending it", extra=self._log)
        try:
            self.call.fail(_now())
            self._dispatch(self.call.drain())
        except Exception as error:
            log.error("ending the failed call failed too: %r", error, extra=self._log)
            self._abort()
        self._schedule(self, None)

    def _abort(self) -> None:
        """Close both sides with 1011, without the call core."""
        if self._link is not None:
            self._link.close(CLOSE_INTERNAL_ERROR, "internal_error")
            self._link = None
        self._carrier_leg.close(CLOSE_INTERNAL_ERROR, "internal_error")
        self._closing.append(self._carrier_leg)


def _now() -> float:
    return time.monotonic()
