"""A bot server: one WebSocket per call, each handed to the bot's ``handle(call)``.

Theory of operation
-------------------
voxgate connects to the bot (it is the WebSocket client) and offers the subprotocols
``voxgate.v1`` (audio as base64 in JSON) and ``voxgate.v1.binary`` (audio as binary
frames); the server picks one (``binary`` chooses which it prefers; RFC 6455 section 4.2.2).
With a ``token``, an upgrade without ``Authorization: Bearer <token>`` is refused with 401
before any call starts. Then, per connection::

    WAIT_START --start within start_timeout--> HANDLING --handle returns--> FINISHING --> CLOSED
        |  anything else, or nothing: close 1008                |  handle raised: close 1011

While HANDLING the bot's ``handle(call)`` runs. When it returns and the call is still up, the
bot is done with the caller: the SDK sends ``session.hangup`` (unless the bot did) and waits,
up to ``finish_timeout``, for voxgate to play the queued audio and ``stop`` the stream, then
closes with 1000. So a call never outlives its bot, and a goodbye is heard to the end.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from voxgate.bots.sdk.call import Call
from voxgate.bots.sdk.events import start_from
from voxgate.bridge.botlink.v1 import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_POLICY_VIOLATION,
    SUBPROTOCOL_BINARY,
    SUBPROTOCOL_JSON,
    V1Dialect,
    transport_for,
)
from voxgate.bridge.events import StreamStarted
from voxgate.errors import ProtocolError
from voxgate.obs import WireLog

Handler = Callable[[Call], Awaitable[None]]
"""A bot: an async function that serves one call."""

LOG = logging.getLogger("voxgate.bots.sdk")
JSON: Final = Subprotocol(SUBPROTOCOL_JSON)
BINARY: Final = Subprotocol(SUBPROTOCOL_BINARY)
START_TIMEOUT: Final = 10.0
FINISH_TIMEOUT: Final = 120.0


def choose_subprotocol(
    *, binary: bool
) -> Callable[[ServerConnection, Sequence[Subprotocol]], Subprotocol | None]:
    """A ``select_subprotocol`` preferring binary or JSON audio among what voxgate offers."""
    preferred = (BINARY, JSON) if binary else (JSON, BINARY)

    def select(connection: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
        for subprotocol in preferred:
            if subprotocol in offered:
                return subprotocol
        return None  # nothing we know offered: JSON audio without a subprotocol

    return select


def require_token(
    token: str,
) -> Callable[[ServerConnection, Request], Response | None]:
    """A ``process_request`` refusing upgrades without ``Authorization: Bearer <token>``."""
    expected = f"Bearer {token}".encode()

    def check(connection: ServerConnection, request: Request) -> Response | None:
        given = request.headers.get("Authorization", "").encode()
        if hmac.compare_digest(given, expected):
            return None
        LOG.warning("refused an upgrade from %s: no valid bearer token", connection.remote_address)
        return connection.respond(401, "a valid Authorization: Bearer token is required\n")

    return check


class BotServer:
    """Serves ``handler`` to every call voxgate connects."""

    def __init__(
        self,
        handler: Handler,
        *,
        options: argparse.Namespace | None = None,
        logger: logging.Logger = LOG,
        start_timeout: float = START_TIMEOUT,
        finish_timeout: float = FINISH_TIMEOUT,
    ) -> None:
        self.handler = handler
        self.options = options
        self.log = logger
        self.start_timeout = start_timeout
        self.finish_timeout = finish_timeout

    async def serve_connection(self, connection: ServerConnection) -> None:
        dialect = V1Dialect(binary_audio=transport_for(connection.subprotocol) == "binary")
        started = await self._read_start(connection, dialect)
        if started is None:
            return
        start = start_from(started, dialect.transport, dialect.carrier)
        call = Call(connection, dialect, start, options=self.options, logger=self.log)
        call.log.info(
            "started: %s, %s -> %s, %s audio over %s",
            start.direction,
            start.from_number,
            start.to_number,
            start.media_format,
            start.audio_transport,
        )
        try:
            await self.handler(call)
        except Exception:
            call.log.exception("the bot failed")
            await connection.close(CLOSE_INTERNAL_ERROR, "bot error")
            return
        await self._finish(call)

    async def _read_start(
        self, connection: ServerConnection, dialect: V1Dialect
    ) -> StreamStarted | None:
        try:
            async with asyncio.timeout(self.start_timeout):
                message = await connection.recv()
            event = dialect.parse_upstream(message)
        except TimeoutError:
            problem = f"no start within {self.start_timeout:g} s"
        except ProtocolError as error:
            problem = f"bad first message: {error}"
        except ConnectionClosed:
            return None
        else:
            if isinstance(event, StreamStarted):
                return event
            problem = f"the first message was not start but {type(event).__name__}"
        self.log.warning("closing a connection from %s: %s", connection.remote_address, problem)
        await connection.close(CLOSE_POLICY_VIOLATION, "expected start")
        return None

    async def _finish(self, call: Call) -> None:
        if not call.ended:
            if not call.hangup_sent:
                await call.hangup("the bot finished")
            if not await call.wait_ended(self.finish_timeout):
                call.log.warning("voxgate did not stop the stream within %g s", self.finish_timeout)
        await call.close()
        if call.audio_dropped:
            call.log.warning("finished; %d chunks of caller audio went unread", call.audio_dropped)
        else:
            call.log.info("finished")


async def serve_bot(
    handler: Handler,
    host: str = "127.0.0.1",
    port: int = 9000,
    *,
    binary: bool = False,
    token: str | None = None,
    options: argparse.Namespace | None = None,
    logger: logging.Logger = LOG,
) -> Server:
    """Start serving ``handler`` on ``host:port`` (0: any free port); the caller closes it."""
    bot = BotServer(handler, options=options, logger=logger)
    server = await serve(
        bot.serve_connection,
        host,
        port,
        subprotocols=[JSON, BINARY],
        select_subprotocol=choose_subprotocol(binary=binary),
        process_request=require_token(token) if token else None,
        logger=WireLog(logging.getLogger("websockets.server")),
    )
    addresses = ", ".join(str(sock.getsockname()[:2]) for sock in server.sockets)
    logger.info("bot listening on %s (binary audio preferred: %s)", addresses, binary)
    return server


async def run_bot(
    handler: Handler,
    host: str = "127.0.0.1",
    port: int = 9000,
    *,
    binary: bool = False,
    token: str | None = None,
    options: argparse.Namespace | None = None,
    logger: logging.Logger = LOG,
) -> None:
    """Serve ``handler`` until cancelled (cancelling closes the server)."""
    server = await serve_bot(
        handler, host, port, binary=binary, token=token, options=options, logger=logger
    )
    await server.serve_forever()
