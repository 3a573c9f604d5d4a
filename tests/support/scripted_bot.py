"""A bot the tests script: a real WebSocket server that records what voxgate sends it.

Each connection voxgate opens is a :class:`BotConnection`, kept in order in
:attr:`ScriptedBot.connections`; tests read what arrived (parsed JSON, binary
frames, arrival times) and send whatever they like, well-formed or not.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

Json = dict[str, Any]


class BotConnection:
    def __init__(self, socket: ServerConnection) -> None:
        self.socket = socket
        self.messages: list[tuple[float, Json | bytes]] = []
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.headers = socket.request.headers if socket.request else None
        self._changed = asyncio.Condition()

    @property
    def subprotocol(self) -> str | None:
        return self.socket.subprotocol

    def of_type(self, kind: str) -> list[Json]:
        return [m for _, m in self.messages if isinstance(m, dict) and m.get("type") == kind]

    def audio(self) -> bytes:
        chunks = []
        for _, message in self.messages:
            if isinstance(message, bytes):
                chunks.append(message)
            elif message.get("type") == "media":
                chunks.append(base64.b64decode(message["audio"]))
        return b"".join(chunks)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    async def wait_for_type(self, kind: str, count: int = 1, timeout: float = 5.0) -> list[Json]:
        await self.wait_for(lambda: len(self.of_type(kind)) >= count, timeout)
        return self.of_type(kind)

    async def send(self, message: Json | str | bytes) -> None:
        await self.socket.send(json.dumps(message) if isinstance(message, dict) else message)

    async def send_audio(self, audio: bytes) -> None:
        await self.send({"type": "response.audio.delta", "audio": base64.b64encode(audio).decode()})

    async def run(self) -> None:
        try:
            async for message in self.socket:
                parsed: Json | bytes = (
                    message if isinstance(message, bytes) else json.loads(message)
                )
                async with self._changed:
                    self.messages.append((time.monotonic(), parsed))
                    self._changed.notify_all()
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.socket.close_code
            self.closed.set()
            async with self._changed:
                self._changed.notify_all()


class ScriptedBot:
    """``async with ScriptedBot() as bot:`` serves on a free loopback port; ``bot.url``."""

    def __init__(
        self,
        *,
        subprotocols: Sequence[str] = ("voxgate.v1", "voxgate.v1.binary"),
        prefer_binary: bool = False,
    ) -> None:
        self.connections: list[BotConnection] = []
        self._subprotocols = [Subprotocol(s) for s in subprotocols]
        self._prefer_binary = prefer_binary
        self._server: Server | None = None
        self._new = asyncio.Condition()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/bot"

    async def __aenter__(self) -> Self:
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            subprotocols=self._subprotocols or None,
            select_subprotocol=self._select,
            max_size=2**22,
        )
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        await asyncio.wait_for(self._server.wait_closed(), 5)

    async def connection(self, index: int = 0, timeout: float = 5.0) -> BotConnection:
        async with asyncio.timeout(timeout), self._new:
            await self._new.wait_for(lambda: len(self.connections) > index)
        return self.connections[index]

    def _select(
        self, connection: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        wanted = "voxgate.v1.binary" if self._prefer_binary else "voxgate.v1"
        return Subprotocol(wanted) if wanted in offered else None

    async def _handle(self, socket: ServerConnection) -> None:
        connection = BotConnection(socket)
        async with self._new:
            self.connections.append(connection)
            self._new.notify_all()
        await connection.run()
