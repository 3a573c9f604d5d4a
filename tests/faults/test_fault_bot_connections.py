"""Bots whose connections misbehave: close at once, fail the first time, never answer a close.

Each scenario runs beside a healthy call on a real ``voxgate serve`` (see faultbench.py).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from faultbench import Bench, Findings, caller_to, noise, run_fault
from scripted_bot import ScriptedBot
from websockets.asyncio.server import ServerConnection, serve

RECONNECT_FOR = 2.0
MARGIN = 4.0  # connect timeouts, backoff and a busy machine on top of bot.reconnect_for


@asynccontextmanager
async def closing_bot(code: int, counter: list[float]) -> AsyncIterator[str]:
    """A bot that accepts, reads ``start`` and closes with ``code``, every time; its URL.

    ``counter`` gets the time of each connection.
    """

    async def handler(socket: ServerConnection) -> None:
        counter.append(time.monotonic())
        await socket.recv()
        await socket.close(code, "going away" if code == 1001 else "nope")

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/bot"


def test_a_bot_that_always_closes_after_start_ends_with_the_fallback(tmp_path: Path) -> None:
    """Close codes 1011, 4999 and 1001 right after ``start``, on every connection: the call
    ends (fallback: hang up) within bot.reconnect_for and a margin, after few connections."""

    async def one(bench: Bench, code: int) -> str | None:
        connections: list[float] = []
        async with (
            closing_bot(code, connections) as url,
            caller_to(bench.served, url) as caller,
        ):
            started = time.monotonic()
            ended = await asyncio.gather(
                caller.wait_for_close(timeout=RECONNECT_FOR + MARGIN), return_exceptions=True
            )
            took = time.monotonic() - started
        if isinstance(ended[0], BaseException):
            return (
                f"close {code}: the call still up after {took:.1f} s, "
                f"{len(connections)} connections"
            )
        if len(connections) >= 30:
            return f"close {code}: {len(connections)} connections before giving up"
        return None

    async def hostile(bench: Bench) -> None:
        results = await asyncio.gather(*(one(bench, code) for code in (1011, 4999, 1001)))
        problems = [result for result in results if result]
        assert not problems, "\n".join(problems)

    run_fault(
        tmp_path / "voxgate.log", hostile, env={"VOXGATE_BOT_RECONNECT_FOR": str(RECONNECT_FOR)}
    )


class FlakyFront:
    """A TCP front for a bot: the first ``failures`` connections are closed before the
    WebSocket handshake, the others are relayed to the bot behind it."""

    def __init__(self, target_port: int, failures: int = 1) -> None:
        self.target_port = target_port
        self.failures = failures
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/bot"

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.connections <= self.failures:
            writer.transport.abort()  # closed before a byte of the handshake
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(_pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except OSError:
        pass
    finally:
        sink.close()


def test_a_failed_first_connection_to_the_bot_is_retried(tmp_path: Path) -> None:
    async def hostile(bench: Bench) -> None:
        async with ScriptedBot() as bot:
            port = int(bot.url.split(":")[2].split("/")[0])
            front = FlakyFront(port, failures=1)
            async with front as url, caller_to(bench.served, url) as caller:
                try:
                    connection = await bot.connection(timeout=6)
                except TimeoutError:
                    raise AssertionError(
                        f"no retry after the first connection failed: {front.connections} "
                        f"connection(s); carrier closed: {caller.closed.is_set()} "
                        f"({caller.close_code})"
                    ) from None
                await connection.wait_for_type("start", timeout=5)
                answer, question = noise(1.0, seed=21), noise(1.0, seed=22)
                await connection.send_audio(answer)
                await caller.send_audio(question)
                assert await caller.wait_for_audio(len(answer), timeout=5) == answer
                await connection.wait_for(lambda: connection.audio() == question, timeout=5)
                await caller.hang_up()

    run_fault(tmp_path / "voxgate.log", hostile, env={"VOXGATE_BOT_CONNECT_TIMEOUT": "5"})


def test_a_stale_bot_socket_does_not_take_the_new_one_down(tmp_path: Path) -> None:
    """The bot sends a message over the size limit (voxgate closes that socket with 1009)
    and never answers the close; the call reconnects, and the second socket keeps
    working in both directions after the first one's close has timed out."""

    async def hostile(bench: Bench) -> None:
        async with ScriptedBot() as bot, caller_to(bench.served, bot.url) as caller:
            first = await bot.connection(0, timeout=10)
            await first.wait_for_type("start", timeout=10)
            first.socket.transport.pause_reading()  # it will never see voxgate's close
            try:
                await first.send('{"type":"transcript","text":"' + "A" * (300 * 1024) + '"}')
                second = await bot.connection(1, timeout=5)
                await second.wait_for_type("start", timeout=5)
                answer, question = noise(4.0, seed=23), noise(4.0, seed=24)
                await second.send_audio(answer)
                await caller.send_audio(question)  # paced: 4 s, past the first close's timeout
                heard = await caller.wait_for_audio(len(answer), timeout=10)
                assert heard == answer, "the caller lost the second socket's audio"
                await second.wait_for(lambda: len(second.audio()) >= len(question), timeout=5)
                assert second.audio() == question, "the second socket lost the caller's audio"
                assert not second.closed.is_set()
                await caller.hang_up()
            finally:
                first.socket.transport.abort()

    run_fault(tmp_path / "voxgate.log", hostile)


_SAMPLE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*",?)*\})? \S+$'
)


def test_a_bot_hangup_reason_is_never_echoed_nor_a_metric_label(tmp_path: Path) -> None:
    """``session.hangup`` with a reason holding a newline and a forged metric line: the bot's
    ``stop`` says ``bot_hangup``, and /metrics holds neither the text nor a forged line."""

    async def hostile(bench: Bench) -> None:
        findings = Findings()
        async with ScriptedBot() as bot, caller_to(bench.served, bot.url) as caller:
            connection = await bot.connection(timeout=10)
            await connection.wait_for_type("start", timeout=10)
            hangup = {"type": "session.hangup", "reason": "bye\nvoxgate_forged 1"}
            await connection.send(json.dumps(hangup))
            stops = await connection.wait_for_type("stop", timeout=5)
            findings.check(
                stops[0].get("reason") == "bot_hangup",
                f"stop reason {stops[0].get('reason')!r}, not 'bot_hangup'",
            )
            await caller.wait_for_close(timeout=5)
        await asyncio.sleep(0.1)
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"{bench.served.http_url}/metrics")).text
        findings.check("forged" not in text, "the bot's text reached /metrics")
        bad = [line for line in text.splitlines() if line and not line.startswith("#")]
        bad = [line for line in bad if not _SAMPLE.match(line)]
        findings.check(not bad, f"lines of /metrics that are not samples: {bad[:3]}")
        labels = re.findall(r'="((?:[^"\\]|\\.)*)"', text)
        findings.check(
            not [v for v in labels if "\\n" in v or "\n" in v],
            "a label value holds a newline",
        )
        findings.verify()

    run_fault(tmp_path / "voxgate.log", hostile)
