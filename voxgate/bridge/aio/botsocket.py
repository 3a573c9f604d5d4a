"""One attempt at reaching a call's bot: its socket and dialect.

A :class:`BotSocket` is made for each :class:`~voxgate.bridge.call_api.ConnectBot`
the call asks for and owns everything of that attempt, so that the slow close of
an old socket can never touch the socket that replaced it. It reports to its
owner (:class:`BotSocketOwner`, the call's session) with its attempt number:
connected, each message, and finally either "failed" (never connected) or
"disconnected" (with the close code the bot sent, if any).

The socket is picows' (:class:`~voxgate.bridge.aio.fastws.FastSocket`): the
connection is opened by a task, and from then on each message goes from
picows' read callback straight to the owner, and each send straight into the
transport. It is reached at the vetted address, never through a proxy and
never after a redirect (either would reach an address nobody checked).

Reading is bounded: the socket hands a message over only once the dialect is
known and while the owner is not full (its playout queue holds as much as
allowed); until then messages wait in the socket's backlog and reading
pauses, so the bot's own TCP window, not voxgate's memory, absorbs a flood
(:class:`~voxgate.bridge.aio.fastws.FastSocket`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import dataclass
from typing import Final, Protocol

from picows import WSError, WSHandshakeError, WSParsedURL, ws_connect

from voxgate.bridge.aio.fastws import WS_MAX_SIZE, FastSocket
from voxgate.bridge.botlink.dialects import make_bot_dialect
from voxgate.bridge.botlink.v1 import PROTOCOL, SUBPROTOCOLS, transport_for
from voxgate.bridge.dialect import Dialect, Message
from voxgate.codecs.formats import AudioFormat
from voxgate.obs import METRICS
from voxgate.redact import redact_url

log = logging.getLogger("voxgate.botsocket")

PING_INTERVAL: Final = 20.0  # an idle bot is pinged this often, and dropped if it does not answer


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
        self.socket: FastSocket | None = None  # once connected
        self._timeout = timeout
        self.opened_at = time.monotonic()  # when the attempt began (bot connect latency)
        self._early_close: tuple[int | None] | None = None  # closed before it was reported up
        self._log = {"call_id": owner.call_id}
        self._task = asyncio.create_task(self._run(), name=f"bot-{owner.call_id}-{attempt}")

    def send(self, message: Message, *, origin: float | None = None) -> None:
        if self.socket is not None:
            self.socket.put(message, origin=origin)

    def close(self, code: int, reason: str) -> None:
        """Close after what was sent; an attempt still connecting is abandoned."""
        if self.socket is not None:
            self.socket.close(code, reason)
        else:
            self._task.cancel()

    async def wait_closed(self, timeout: float) -> None:
        if self.socket is not None:
            await self.socket.wait_closed(timeout)
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except (TimeoutError, asyncio.CancelledError):
            self._task.cancel()

    # --- the attempt ------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            sock = await asyncio.wait_for(self._open(), max(self._timeout, 0.001))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            METRICS.count("errors", kind="bot_connect")
            refused = isinstance(error, WSHandshakeError) and _status(error) in (401, 403)
            self.owner.bot_failed(self, describe(error), refused=refused)
            return
        transport = transport_for(_subprotocol(sock))
        self.dialect = make_bot_dialect(
            self.target.dialect, binary_audio=transport == "binary", carrier=self.owner.carrier
        )
        self.socket = sock
        log.info("bot connected (attempt %d, %s)", self.attempt, transport, extra=self._log)
        self.owner.bot_connected(self)
        sock.resume()  # what came with the handshake, now that the dialect is known
        if self._early_close is not None:
            self._closed(*self._early_close)

    async def _open(self) -> FastSocket:
        target = self.target
        offered = list(SUBPROTOCOLS) if target.dialect == PROTOCOL else []  # canonical name
        headers = list(target.headers)
        if offered:
            headers.append(("Sec-WebSocket-Protocol", ", ".join(offered)))

        def made() -> FastSocket:
            sock = FastSocket(
                "bot", call_id=self.owner.call_id, latency_metric="inbound_latency_seconds"
            )
            sock.on_message = self._message
            sock.accepting = self._accepting
            sock.on_closed = self._closed
            return sock

        _, listener = await ws_connect(
            made,
            target.url,
            extra_headers=headers,
            websocket_handshake_timeout=None,  # the attempt's own timeout covers it
            enable_auto_ping=True,
            auto_ping_idle_timeout=PING_INTERVAL,
            auto_ping_reply_timeout=PING_INTERVAL,
            max_frame_size=WS_MAX_SIZE,
            max_redirects=0,  # a redirect would reach an address nobody vetted
            socket_factory=self._vetted_socket if target.address is not None else None,
            use_aiofastnet=False,
            logger_name="bot",
        )
        assert isinstance(listener, FastSocket)
        chosen = _subprotocol(listener)
        if chosen is not None and chosen not in offered:  # RFC 6455 section 4.1
            listener.abort()
            raise WSError(f"the bot chose a subprotocol it was not offered: {chosen[:40]!r}")
        return listener

    async def _vetted_socket(self, url: WSParsedURL) -> socket.socket:
        """A socket connected to the vetted address, not to a new lookup of the host."""
        assert self.target.address is not None
        address = self.target.address
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, (address, url.port))
        except BaseException:
            sock.close()
            raise
        return sock

    # --- the connected socket ---------------------------------------------------------

    def _accepting(self) -> bool:
        return self.dialect is not None and not self.owner.full()

    def _message(self, message: Message) -> None:
        self.owner.bot_message(self, message)

    def _closed(self, code: int | None) -> None:
        sock = self.socket
        if sock is None:  # before the attempt was reported connected: report it after
            self._early_close = (code,)
            return
        reason = f"closed by the bot ({code})" if code is not None else "connection closed"
        if sock.peer_close_code is not None and code is None:
            reason = f"closed ({sock.peer_close_code})"
        self.owner.bot_disconnected(self, reason, code)


def _subprotocol(sock: FastSocket) -> str | None:
    """The subprotocol the bot chose, if any."""
    if sock.transport is None:
        return None
    chosen: str | None = sock.transport.response.headers.get("Sec-WebSocket-Protocol")
    return chosen


def _status(error: WSHandshakeError) -> int | None:
    response = error.response
    return int(response.status) if response is not None else None


def describe(error: BaseException) -> str:
    """A short, single-line account of ``error`` for logs and the call (no secrets)."""
    text = str(error) or type(error).__name__
    return redact_url(" ".join(text.split()))[:200]
