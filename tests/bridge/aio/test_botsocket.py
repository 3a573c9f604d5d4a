"""voxgate.bridge.aio.botsocket: one attempt at a bot, on picows, against real servers.

Reached at the vetted address (never a new lookup), never after a redirect,
refused when the bot picks a subprotocol it was not offered, "refused" (no
retry) on 401 and 403, and reporting what the bot sends and how it closed.
"""

from __future__ import annotations

import asyncio
import http
from typing import Any

from scenario import run
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from voxgate.bridge.aio.botsocket import BotSocket, BotTarget
from voxgate.bridge.dialect import Message


class Owner:
    """What a call's session hears from its bot socket."""

    call_id = "vx-test"
    carrier = "twilio"

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.done = asyncio.Event()

    def bot_connected(self, link: BotSocket) -> None:
        self.events.append(("connected", link.attempt))

    def bot_message(self, link: BotSocket, message: Message) -> None:
        self.events.append(("message", message))

    def bot_failed(self, link: BotSocket, reason: str, *, refused: bool) -> None:
        self.events.append(("failed", (reason, refused)))
        self.done.set()

    def bot_disconnected(self, link: BotSocket, reason: str, code: int | None) -> None:
        self.events.append(("disconnected", code))
        self.done.set()

    def full(self) -> bool:
        return False


def _port(server: Any) -> int:
    port: int = next(iter(server.sockets)).getsockname()[1]
    return port


def test_the_vetted_address_is_reached_and_messages_and_the_close_code_reported() -> None:
    async def scenario() -> None:
        hosts: list[str | None] = []

        async def bot(connection: ServerConnection) -> None:
            hosts.append(connection.request.headers.get("Host") if connection.request else None)
            await connection.send('{"type":"mark","name":"m"}')
            await connection.close(4000, "bye")

        async with serve(bot, "127.0.0.1", 0) as server:
            owner = Owner()
            port = _port(server)
            url = f"ws://bot.invalid:{port}/"  # .invalid never resolves (RFC 6761)
            BotSocket(owner, BotTarget(url=url, address="127.0.0.1"), 1, 5.0)
            await asyncio.wait_for(owner.done.wait(), 5)
        assert hosts == [f"bot.invalid:{port}"]
        assert owner.events == [
            ("connected", 1),
            ("message", '{"type":"mark","name":"m"}'),
            ("disconnected", 4000),
        ]

    run(scenario())


def test_a_redirect_is_not_followed() -> None:
    async def scenario() -> None:
        reached: list[str] = []

        async def elsewhere(connection: ServerConnection) -> None:
            reached.append("elsewhere")
            await connection.close()

        async with serve(elsewhere, "127.0.0.1", 0) as other:
            location = f"ws://127.0.0.1:{_port(other)}/internal"

            async def redirect(connection: ServerConnection, request: Request) -> Response:
                headers = Headers([("Location", location), ("Content-Length", "0")])
                return Response(http.HTTPStatus.FOUND, "Found", headers)

            async with serve(elsewhere, "127.0.0.1", 0, process_request=redirect) as server:
                owner = Owner()
                url = f"ws://127.0.0.1:{_port(server)}/"
                BotSocket(owner, BotTarget(url=url, address="127.0.0.1"), 1, 5.0)
                await asyncio.wait_for(owner.done.wait(), 5)
        assert reached == []
        assert owner.events[0][0] == "failed"
        assert owner.events[0][1][1] is False  # not "refused": a redirect may be retried

    run(scenario())


def test_401_and_403_are_refusals() -> None:
    async def scenario() -> None:
        for status in (http.HTTPStatus.UNAUTHORIZED, http.HTTPStatus.FORBIDDEN):

            async def deny(
                connection: ServerConnection, request: Request, status: Any = status
            ) -> Response:
                return Response(status, status.phrase, Headers([("Content-Length", "0")]))

            async def never(connection: ServerConnection) -> None:
                raise AssertionError("not reached")

            async with serve(never, "127.0.0.1", 0, process_request=deny) as server:
                owner = Owner()
                url = f"ws://127.0.0.1:{_port(server)}/"
                BotSocket(owner, BotTarget(url=url), 1, 5.0)
                await asyncio.wait_for(owner.done.wait(), 5)
            assert owner.events == [("failed", (owner.events[0][1][0], True))], status

    run(scenario())


def test_a_subprotocol_that_was_not_offered_is_refused() -> None:
    async def scenario() -> None:
        async def bot(connection: ServerConnection) -> None:
            await connection.wait_closed()

        def choose(connection: ServerConnection, offered: Any) -> Any:
            return "something.else"

        async with serve(bot, "127.0.0.1", 0, select_subprotocol=choose) as server:
            owner = Owner()
            url = f"ws://127.0.0.1:{_port(server)}/"
            BotSocket(owner, BotTarget(url=url), 1, 5.0)
            await asyncio.wait_for(owner.done.wait(), 5)
        assert owner.events[0][0] == "failed"
        assert "subprotocol" in owner.events[0][1][0]

    run(scenario())
