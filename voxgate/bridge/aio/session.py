"""One call's sockets around its sans-I/O core.

A :class:`CallSession` owns the carrier's socket (through an :class:`Outbox`),
the bot's socket (opened, reopened and closed as the call asks), the two
dialects, and the call core. Everything received is parsed by a dialect and
fed to the core; everything the core asks for is carried out here. Protocol
errors are counted and handed to the core, which decides whether the stream
goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from voxgate.bridge.aio.outbox import Outbox
from voxgate.bridge.botlink.dialects import make_bot_dialect
from voxgate.bridge.botlink.v1 import PROTOCOL, SUBPROTOCOLS, transport_for
from voxgate.bridge.call import Call
from voxgate.bridge.call_api import (
    CallEnded,
    CallOutput,
    CallPolicy,
    CarrierHangup,
    CarrierTransfer,
    CloseBot,
    CloseCarrier,
    ConnectBot,
    ToBot,
    ToCarrier,
)
from voxgate.bridge.dialect import Dialect, Message
from voxgate.bridge.events import MediaReceived, StreamStarted
from voxgate.codecs.formats import AudioFormat
from voxgate.errors import ProtocolError
from voxgate.obs import METRICS

log = logging.getLogger("voxgate.session")

WS_MAX_SIZE = 1024 * 1024  # the dialects refuse over 256 KiB with an error event first


@dataclass(frozen=True, slots=True)
class BotTarget:
    """Where and how to reach this call's bot."""

    url: str
    headers: tuple[tuple[str, str], ...] = ()
    dialect: str = "voxgate.v1"
    audio: AudioFormat | None = None
    connect_timeout: float = 5.0
    opening_text: str | None = None
    system_prompt: str | None = None


CarrierAction = Callable[[CarrierHangup | CarrierTransfer], Awaitable[str | None]]
"""Runs a carrier REST action; returns None on success, else why it failed."""


class CallSession:
    """Sockets and tasks of one call; see the module docstring."""

    def __init__(
        self,
        *,
        call_id: str,
        carrier: str,
        carrier_dialect: Dialect,
        carrier_out: Outbox,
        started: StreamStarted,
        bot: BotTarget,
        policy: CallPolicy,
        schedule: Callable[[CallSession, float | None], None],
        carrier_action: CarrierAction | None = None,
    ) -> None:
        self.call_id = call_id
        self.carrier = carrier
        self.bot = bot
        self._carrier_dialect = carrier_dialect
        self._carrier_out = carrier_out
        self._schedule = schedule
        self._carrier_action = carrier_action
        self._bot_dialect: Dialect | None = None
        self._bot_out: Outbox | None = None
        self._bot_socket: ClientConnection | None = None
        self._bot_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing: list[Outbox] = []  # closed on the call's word: await them at shutdown
        self._received_at = 0.0
        self.call = Call(call_id, started, bot.audio or started.media_format, policy, _now())
        self._log = {"call_id": call_id}
        self._pump()

    # --- what arrives ---------------------------------------------------------------------

    def on_carrier_message(self, message: Message) -> None:
        now = self._received_at = _now()
        try:
            event = self._carrier_dialect.parse_upstream(message)
        except ProtocolError as error:
            METRICS.count("protocol_errors", side="carrier", code=error.code)
            log.warning("carrier sent a bad message: %s", error.message, extra=self._log)
            self.call.carrier_protocol_error(error, now)
        else:
            self.call.carrier_event(event, now)
        self._pump()

    def on_carrier_closed(self) -> None:
        self.call.carrier_closed(_now())
        self._pump()

    def wake(self, now: float) -> float | None:
        """The scheduler's call: do what is due."""
        self.call.tick(now)
        self._dispatch(self.call.drain())
        return self.call.next_due()

    async def close(self) -> None:
        """Tear down whatever is left (server shutdown)."""
        self.call.shutdown(_now())
        self._pump()
        await asyncio.gather(*(outbox.wait_closed(1.0) for outbox in self._closing))
        for task in [*self._tasks, *([self._bot_task] if self._bot_task else [])]:
            task.cancel()
        if self._bot_socket is not None:
            with contextlib.suppress(Exception):
                await self._bot_socket.close(1001, "bridge shutting down")

    # --- carrying out what the call asks --------------------------------------------------

    def _pump(self) -> None:
        self._dispatch(self.call.drain())
        self._schedule(self, self.call.next_due())

    def _dispatch(self, outputs: list[CallOutput]) -> None:
        for output in outputs:
            if isinstance(output, ToCarrier):
                message = self._carrier_dialect.format_downstream(output.event)
                if message is not None:
                    self._carrier_out.put(message, origin=output.since)
            elif isinstance(output, ToBot):
                self._send_bot(output)
            elif isinstance(output, ConnectBot):
                self._bot_task = asyncio.create_task(self._run_bot(output.attempt))
            elif isinstance(output, CloseBot):
                self._close_bot(output)
            elif isinstance(output, CloseCarrier):
                self._carrier_out.close(output.code, output.reason)
                self._closing.append(self._carrier_out)
            elif isinstance(output, CarrierHangup | CarrierTransfer):
                self._spawn(self._act(output))
            elif isinstance(output, CallEnded):
                METRICS.count("calls_ended", reason=output.reason)

    def _send_bot(self, output: ToBot) -> None:
        if self._bot_out is None or self._bot_dialect is None:
            return
        try:
            message = self._bot_dialect.format_upstream(output.event)
        except ProtocolError as error:  # the bot's dialect cannot say this: give up on it
            METRICS.count("errors", kind="bot_dialect")
            log.error("cannot send to the bot: %s", error.message, extra=self._log)
            self.call.bot_protocol_error(error, _now())
            return
        if message is None:
            return
        if isinstance(output.event, MediaReceived):
            self._bot_out.put(message, origin=self._received_at)
        else:
            self._bot_out.put(message)

    def _close_bot(self, output: CloseBot) -> None:
        if self._bot_out is not None:
            self._bot_out.close(output.code, output.reason)
            self._closing.append(self._bot_out)
            self._bot_out = None
            self._bot_dialect = None
        elif self._bot_task is not None:
            self._bot_task.cancel()  # still connecting: abandon the attempt

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _act(self, action: CarrierHangup | CarrierTransfer) -> None:
        if self._carrier_action is None:
            return
        failure = await self._carrier_action(action)
        if failure is None:
            METRICS.count("carrier_actions", action=type(action).__name__)
            return
        METRICS.count("errors", kind="carrier_rest")
        log.error("carrier %s failed: %s", type(action).__name__, failure, extra=self._log)
        if isinstance(action, CarrierTransfer):
            self.call.transfer_failed(failure)
            self._pump()

    # --- the bot's socket -----------------------------------------------------------------

    async def _run_bot(self, attempt: int) -> None:
        try:
            socket = await asyncio.wait_for(self._open_bot(), self.bot.connect_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            METRICS.count("errors", kind="bot_connect")
            refused = isinstance(error, InvalidStatus) and error.response.status_code in (401, 403)
            self.call.bot_connect_failed(_describe(error), _now(), refused=refused)
            self._pump()
            return
        self._bot_socket = socket
        transport = transport_for(socket.subprotocol)
        self._bot_dialect = make_bot_dialect(
            self.bot.dialect, binary_audio=transport == "binary", carrier=self.carrier
        )
        self._bot_out = Outbox(
            "bot",
            socket.send,
            socket.close,
            call_id=self.call_id,
            latency_metric="inbound_latency_seconds",
        )
        log.info("bot connected (attempt %d, %s)", attempt, transport, extra=self._log)
        self.call.bot_connected(_now())
        self._pump()
        reason = "closed"
        try:
            async for message in socket:
                self._on_bot_message(message)
        except ConnectionClosed as closed:
            reason = _describe(closed)
        finally:
            close = socket.protocol.close_rcvd
            bot_closed_first = close is not None and bool(socket.protocol.close_rcvd_then_sent)
            received = close.code if close is not None and bot_closed_first else None
            if self._bot_out is not None:
                self._bot_out.cancel()
            self._bot_out = self._bot_dialect = None
            self._bot_socket = None
        self.call.bot_disconnected(reason, _now(), code=received)
        self._pump()

    async def _open_bot(self) -> ClientConnection:
        offered = list(SUBPROTOCOLS) if self.bot.dialect == PROTOCOL else None  # canonical name
        return await connect(
            self.bot.url,
            additional_headers=list(self.bot.headers),
            subprotocols=offered,  # type: ignore[arg-type]
            max_size=WS_MAX_SIZE,
            compression=None,
            open_timeout=None,
            close_timeout=1.0,
            ping_interval=20.0,
            ping_timeout=20.0,
        )

    def _on_bot_message(self, message: Message) -> None:
        dialect = self._bot_dialect
        if dialect is None:
            return
        now = _now()
        try:
            event = dialect.parse_downstream(message)
        except ProtocolError as error:
            METRICS.count("protocol_errors", side="bot", code=error.code)
            log.warning("bot sent a bad message: %s", error.message, extra=self._log)
            self.call.bot_protocol_error(error, now)
        else:
            self.call.bot_event(event, now)
        self._pump()


def _now() -> float:
    return time.monotonic()


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text[:200]
