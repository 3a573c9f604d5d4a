"""voxgate.bridge.aio.fastws: whole messages, the close handshake, and "too slow"
meaning a peer that does not drain -- against a real websockets client over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest
from picows import ws_create_server
from scenario import run
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from voxgate.bridge.aio import fastws
from voxgate.bridge.aio.fastws import FastSocket
from voxgate.bridge.dialect import Message


class Served:
    """The server side's sockets and what they heard."""

    def __init__(self) -> None:
        self.sockets: list[FastSocket] = []
        self.messages: list[Message] = []
        self.closed: list[int | None] = []
        self.connected = asyncio.Event()

    def make(self, **options: float) -> FastSocket:
        sock = FastSocket("carrier", **options)  # type: ignore[arg-type]
        sock.on_message = self.messages.append
        sock.on_closed = self.closed.append
        self.sockets.append(sock)
        asyncio.get_running_loop().call_soon(self.connected.set)
        return sock


@contextlib.asynccontextmanager
async def served(**options: float) -> AsyncIterator[tuple[Served, str]]:
    state = Served()
    server = await ws_create_server(lambda request: state.make(**options), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield state, f"ws://127.0.0.1:{port}/"
    finally:
        server.close()


async def _until(condition: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def _closed_with(ws: ClientConnection, timeout: float = 5.0) -> int | None:
    async with asyncio.timeout(timeout):
        with contextlib.suppress(ConnectionClosed):
            while True:
                await ws.recv()
    return ws.close_code


def test_text_and_binary_messages_arrive_whole_and_in_order() -> None:
    async def scenario() -> None:
        async with served() as (state, url), connect(url, compression=None) as ws:
            await ws.send("one")
            await ws.send(b"\x00\x01")
            await ws.send(iter(["fr", "ag", "mented"]))  # three frames, one message
            await ws.send(iter([b"\x02", b"\x03"]))
            await ws.send("é ✓")
            await _until(lambda: len(state.messages) == 5)
            assert state.messages == ["one", b"\x00\x01", "fragmented", b"\x02\x03", "é ✓"]

    run(scenario())


def test_what_the_owner_puts_is_sent_in_order_as_text_or_binary() -> None:
    async def scenario() -> None:
        async with served() as (state, url), connect(url, compression=None) as ws:
            await state.connected.wait()
            sock = state.sockets[0]
            for number in range(2000):
                sock.put(f"mark {number}")
            sock.put(b"\xff")
            received = [await ws.recv() for _ in range(2001)]
            assert received[0] == "mark 0" and received[1999] == "mark 1999"
            assert received[2000] == b"\xff"
            assert sock.sent == 2001
            assert not sock.closing  # a burst to a peer that reads is not too slow

    run(scenario())


def test_a_fragmented_message_over_the_limit_closes_with_1009() -> None:
    async def scenario() -> None:
        async with served(max_message=1000) as (state, url):
            async with connect(url, compression=None, max_size=None) as ws:
                await ws.send(iter([b"x" * 600, b"x" * 600]))
                assert await _closed_with(ws) == 1009
            assert state.messages == []

    run(scenario())


def test_text_that_is_not_utf8_closes_with_1007() -> None:
    async def scenario() -> None:
        async with served() as (state, url), connect(url, compression=None) as ws:
            ws.protocol.send_frame(Frame(Opcode.TEXT, b"\xff\xfe"))
            ws.send_data()
            assert await _closed_with(ws) == 1007
            assert state.messages == []

    run(scenario())


@pytest.mark.parametrize("code", [1000, 1001, 4000])
def test_a_peer_close_is_answered_with_its_code_and_reported(code: int) -> None:
    async def scenario() -> None:
        async with served() as (state, url):
            async with connect(url, compression=None) as ws:
                await ws.send("bye")
                await ws.close(code, "done")
                assert ws.close_code == code
            await _until(lambda: state.closed)
            assert state.closed == [code]
            assert state.sockets[0].peer_closed_first

    run(scenario())


def test_our_close_is_sent_after_what_was_put_and_reported_without_a_peer_code() -> None:
    async def scenario() -> None:
        async with served() as (state, url), connect(url, compression=None) as ws:
            await state.connected.wait()
            sock = state.sockets[0]
            sock.put("last words")
            sock.close(1011, "x" * 300)  # cut to what a close frame can carry
            assert await ws.recv() == "last words"
            assert await _closed_with(ws) == 1011
            assert ws.close_reason == "x" * 123
            await _until(lambda: state.closed)
            assert state.closed == [None]
            sock.put("after the close")  # ignored, not an error

    run(scenario())


def test_a_peer_that_never_answers_our_close_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fastws, "CLOSE_TIMEOUT", 0.2)

    async def scenario() -> None:
        async with served() as (state, url):
            _reader, writer = await _raw_upgrade(url)
            await state.connected.wait()
            state.sockets[0].close(1000, "done")
            await asyncio.wait_for(state.sockets[0].wait_closed(5.0), 5.0)
            assert state.closed == [None]
            writer.close()

    run(scenario())


def test_a_peer_that_stops_reading_is_closed_as_too_slow() -> None:
    async def scenario() -> None:
        async with served(stall_seconds=0.2) as (state, url):
            _reader, writer = await _raw_upgrade(url, receive_buffer=4096)
            await state.connected.wait()
            sock = state.sockets[0]
            chunk = b"\x00" * 65536
            for _ in range(200):  # 13 MB that nobody reads: the buffer passes its mark
                sock.put(chunk)
                if sock.stalled(asyncio.get_running_loop().time() + 1e9):
                    break
            assert not _closing(sock)  # filling the buffer is not yet too slow
            await asyncio.sleep(0.3)
            sock.put(chunk)  # the buffer has stayed above its mark for 300 ms
            assert _closing(sock)
            writer.close()

    run(scenario())


def _closing(sock: FastSocket) -> bool:
    return sock.closing


async def _raw_upgrade(
    url: str, receive_buffer: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client that upgrades and then reads nothing."""
    port = int(url.rsplit(":", 1)[1].strip("/"))
    sock = socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect(("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await reader.readuntil(b"\r\n\r\n")
    return reader, writer


def test_a_flood_is_handed_over_a_bounded_number_of_messages_per_loop_turn() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        turn = [0]
        running = [True]

        def tick() -> None:  # counts event-loop turns
            turn[0] += 1
            if running[0]:
                loop.call_soon(tick)

        async with served() as (state, url), connect(url, compression=None) as ws:
            await state.connected.wait()
            turns: list[int] = []

            def record(message: Message) -> None:
                turns.append(turn[0])
                state.messages.append(message)

            state.sockets[0].on_message = record
            tick()
            ws.protocol.send_text(b"")  # warm the connection
            for number in range(2000):  # one write: picows reads many at once
                ws.protocol.send_text(f"m{number}".encode())
            ws.send_data()
            await ws.close()
            await _until(lambda: state.closed)
            running[0] = False
            assert state.messages == ["", *(f"m{n}" for n in range(2000))]  # all, in order
            per_turn = max(turns.count(t) for t in set(turns))
            assert per_turn <= fastws.MAX_PER_TURN
            assert state.closed == [1000]  # after every message before it

    run(scenario())


def test_messages_wait_in_order_while_the_owner_does_not_accept() -> None:
    async def scenario() -> None:
        async with served() as (state, url), connect(url, compression=None) as ws:
            await state.connected.wait()
            sock = state.sockets[0]
            open_ = [False]
            sock.accepting = lambda: open_[0]
            for number in range(100):
                await ws.send(f"m{number}")
            closing = asyncio.create_task(ws.close())  # read after the messages, in order
            await asyncio.sleep(0.2)
            assert state.messages == []  # held, the peer's close too
            assert state.closed == []
            open_[0] = True
            sock.resume()
            await _until(lambda: state.closed)
            await closing
            assert state.messages == [f"m{n}" for n in range(100)]
            assert state.closed == [1000]

    run(scenario())
