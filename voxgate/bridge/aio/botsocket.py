"""One attempt at reaching a call's bot: its socket, dialect, outbox and reader.

A :class:`BotSocket` is made for each :class:`~voxgate.bridge.call_api.ConnectBot`
the call asks for and owns everything of that attempt, so that the slow close of
an old socket can never touch the socket that replaced it. It reports to its
owner (:class:`BotSocketOwner`, the call's session) with its attempt number:
connected, each message, and finally either "failed" (never connected) or
"disconnected" (with the close code the bot sent, if any).

Reading is fair and bounded: after each message the reader yields to the event
loop, so a bot that floods cannot starve the other calls, and while the owner
says it is full (its playout queue holds as much as allowed) the reader stops
reading, so the bot's own TCP window, not voxgate's memory, absorbs a flood.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Final, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from voxgate.bridge.aio.outbox import Outbox
from voxgate.bridge.botlink.dialects import make_bot_dialect
from voxgate.bridge.botlink.v1 import PROTOCOL, SUBPROTOCOLS, transport_for
from voxgate.bridge.dialect import Dialect, Message
from voxgate.codecs.formats import AudioFormat
from voxgate.obs import METRICS
from voxgate.redact import redact_url

log = logging.getLogger("voxgate.botsocket")

WS_MAX_SIZE: Final = 1024 * 1024  # the dialects refuse over 256 KiB with an error event first
MAX_QUEUE: Final = 4  # frames websockets buffers before it stops reading the bot's socket
FULL_POLL: Final = 0.02  # while the owner is full, look again this often


@dataclass(frozen=True, slots=True)
class BotTarget:
    """Where and how to reach this call's bot.

    ``address``: the vetted IP address to connect to (a per-call URL checked against
    ``bot.allow`` and ``bot.private_targets``); None: resolve the URL's host.
    """

    url: str
    headers: tuple[tuple[str, str], ...] = ()
    dialect: str = "voxgate.v1"
    audio: AudioFormat | None = None
    connect_timeout: float = 5.0
    opening_text: str | None = None
    system_prompt: str | None = None
    address: str | None = None


class BotSocketOwner(Protocol):
    call_id: str
    carrier: str

    def bot_connected(self, link: BotSocket) -> None: ...
    def bot_message(self, link: BotSocket, message: Message) -> None: ...
    def bot_failed(self, link: BotSocket, reason: str, *, refused: bool) -> None: ...
    def bot_disconnected(self, link: BotSocket, reason: str, code: int | None) -> None: ...
    def full(self) -> bool: ...


class BotSocket:
    """One connection attempt and, if it succeeds, its socket; see the module docstring."""

    def __init__(
        self, owner: BotSocketOwner, target: BotTarget, attempt: int, timeout: float
    ) -> None:
        self.owner = owner
        self.target = target
        self.attempt = attempt
        self.dialect: Dialect | None = None
        self.outbox: Outbox | None = None
        self._timeout = timeout
        self._socket: ClientConnection | None = None
        self._log = {"call_id": owner.call_id}
        self._task = asyncio.create_task(self._run(), name=f"bot-{owner.call_id}-{attempt}")

    def send(self, message: Message, *, origin: float | None = None) -> None:
        if self.outbox is not None:
            self.outbox.put(message, origin=origin)

    def close(self, code: int, reason: str) -> None:
        """Close after what was queued; an attempt still connecting is abandoned."""
        if self.outbox is not None:
            self.outbox.close(code, reason)
        else:
            self._task.cancel()

    async def wait_closed(self, timeout: float) -> None:
        if self.outbox is not None:
            await self.outbox.wait_closed(timeout)
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except (TimeoutError, asyncio.CancelledError):
            self._task.cancel()

    # --- the attempt ------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            socket = await asyncio.wait_for(self._open(), max(self._timeout, 0.001))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            METRICS.count("errors", kind="bot_connect")
            refused = isinstance(error, InvalidStatus) and error.response.status_code in (401, 403)
            self.owner.bot_failed(self, describe(error), refused=refused)
            return
        self._socket = socket
        transport = transport_for(socket.subprotocol)
        self.dialect = make_bot_dialect(
            self.target.dialect, binary_audio=transport == "binary", carrier=self.owner.carrier
        )
        self.outbox = Outbox(
            "bot",
            socket.send,
            socket.close,
            call_id=self.owner.call_id,
            latency_metric="inbound_latency_seconds",
        )
        log.info("bot connected (attempt %d, %s)", self.attempt, transport, extra=self._log)
        self.owner.bot_connected(self)
        reason = await self._read(socket)
        close = socket.protocol.close_rcvd
        bot_closed_first = close is not None and bool(socket.protocol.close_rcvd_then_sent)
        code = close.code if close is not None and bot_closed_first else None
        self.outbox.cancel()
        self.owner.bot_disconnected(self, reason, code)

    async def _open(self) -> ClientConnection:
        target = self.target
        offered = list(SUBPROTOCOLS) if target.dialect == PROTOCOL else None  # canonical name
        extra: dict[str, object] = {}
        if target.address is not None:  # connect to the vetted address, not a new lookup
            extra["host"] = target.address
        return await connect(
            target.url,
            additional_headers=list(target.headers),
            subprotocols=offered,  # type: ignore[arg-type]
            max_size=WS_MAX_SIZE,
            max_queue=MAX_QUEUE,
            compression=None,
            proxy=None,  # the address checked is the address reached
            open_timeout=None,
            close_timeout=1.0,
            ping_interval=20.0,
            ping_timeout=20.0,
            **extra,  # type: ignore[arg-type]
        )

    async def _read(self, socket: ClientConnection) -> str:
        """Hand each message to the owner until the socket closes; why it closed."""
        owner = self.owner
        try:
            while True:
                while owner.full():
                    await asyncio.sleep(FULL_POLL)
                owner.bot_message(self, await socket.recv())
                await asyncio.sleep(0)  # one message per turn: the other calls get theirs
        except ConnectionClosed as closed:
            return describe(closed)


def describe(error: BaseException) -> str:
    """A short, single-line account of ``error`` for logs and the call (no secrets)."""
    text = str(error) or type(error).__name__
    return redact_url(" ".join(text.split()))[:200]
