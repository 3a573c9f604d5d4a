"""The load tester's carrier streams against a small node in the test: a websockets server
that speaks the carrier's side as voxgate does (voxgate's own translator, application
role: it reads connected/start/media/dtmf/stop and sends media, mark and clear)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from scenario import run
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from voxgate.bridge.carriers._stream import CarrierDialect
from voxgate.bridge.carriers.registry import carrier
from voxgate.bridge.events import (
    AudioSent,
    ClearRequested,
    DtmfReceived,
    MarkPlayed,
    MarkRequested,
    MediaReceived,
    StreamConnected,
    StreamStarted,
    StreamStopped,
)
from voxgate.codecs.formats import PCMU_8K, encode
from voxgate.loadtest.probe import CallProbe
from voxgate.loadtest.wscall import StreamCall, open_stream

WAIT = 5.0
BOT = {"wss_url": "ws://127.0.0.1:9/bot?token=t", "bot_audio": "pcm16/16000"}


class Node:
    """One stream at a time: what the load tester sent (as events), and its socket."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.events: asyncio.Queue[object] = asyncio.Queue()
        self.socket: ServerConnection | None = None
        self.translator: CarrierDialect | None = None
        self.close_code: asyncio.Future[tuple[int | None, str | None]] = (
            asyncio.get_running_loop().create_future()
        )
        self.then: Callable[[ServerConnection], Awaitable[None]] | None = None

    async def handler(self, socket: ServerConnection) -> None:
        self.socket = socket
        self.translator = carrier(self.dialect).make_dialect()
        if self.then is not None:
            await self.then(socket)
        async for message in socket:
            self.events.put_nowait(self.translator.parse_upstream(message))
        self.close_code.set_result((socket.close_code, socket.close_reason))

    async def next(self, kind: type[Any]) -> Any:
        event = await asyncio.wait_for(self.events.get(), WAIT)
        assert isinstance(event, kind), event
        return event

    async def send(self, event: AudioSent | MarkRequested | ClearRequested) -> None:
        assert self.socket is not None and self.translator is not None
        message = self.translator.format_downstream(event)
        assert message is not None
        await self.socket.send(message)


@contextlib.asynccontextmanager
async def node(
    dialect: str = "twilio", refuse: HTTPStatus | None = None
) -> AsyncIterator[tuple[Node, str]]:
    stand_in = Node(dialect)

    def gate(connection: ServerConnection, request: Request) -> Response | None:
        return None if refuse is None else connection.respond(refuse, "no\n")

    server: Server = await serve(stand_in.handler, "127.0.0.1", 0, process_request=gate)
    port = server.sockets[0].getsockname()[1]
    try:
        yield stand_in, f"ws://127.0.0.1:{port}/v1/streams/{dialect}"
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), WAIT)


async def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def _open(url: str, dialect: str = "twilio", **options: Any) -> StreamCall:
    call = await open_stream(url, CallProbe(0), dialect=dialect, parameters=BOT, **options)
    assert call is not None
    return call


@pytest.mark.parametrize("dialect", ["twilio", "telnyx"])
def test_a_stream_starts_as_a_carriers_with_the_bot_in_its_parameters(
    dialect: str, audioop: ModuleType
) -> None:
    async def scenario() -> None:
        async with node(dialect) as (stand_in, url):
            call = await _open(url, dialect)
            assert call.probe.live and call.probe.figures.setup_ms is not None
            await stand_in.next(StreamConnected)
            started = await stand_in.next(StreamStarted)
            assert dict(started.custom_parameters) == BOT
            assert started.media_format == PCMU_8K
            samples = (3000 * np.sin(np.arange(160) / 3)).astype(np.int16)
            call.send_audio(samples)
            call.send_dtmf("5")
            media = await stand_in.next(MediaReceived)
            assert media.payload == audioop.lin2ulaw(samples.tobytes(), 2), "mu-law on the wire"
            assert (await stand_in.next(DtmfReceived)).digit == "5"
            call.hangup()
            assert await call.wait_ended(WAIT)
            await stand_in.next(StreamStopped)
            assert await asyncio.wait_for(stand_in.close_code, WAIT) == (1000, "caller hung up")
        assert call.probe.figures.status == "completed"
        assert call.probe.figures.failure is None

    run(scenario())


def test_marks_are_answered_clears_counted_and_audio_reaches_the_probe() -> None:
    async def scenario() -> None:
        async with node() as (stand_in, url):
            call = await _open(url)
            await stand_in.next(StreamConnected)
            await stand_in.next(StreamStarted)
            for level in (1000, 2000, 3000):
                await stand_in.send(AudioSent(encode(np.full(160, level, np.int16), PCMU_8K)))
            await stand_in.send(MarkRequested("greeting-done"))
            assert await stand_in.next(MarkPlayed) == MarkPlayed("greeting-done")
            await stand_in.send(ClearRequested())
            await _until(lambda: call.clears == 1)
            assert call.marks == 1 and call.bad_messages == 0
            assert call.probe.figures.chunks_received == 3
            assert call.probe.figures.first_audio_ms is not None
            call.hangup()
            assert await call.wait_ended(WAIT)

    run(scenario())


def test_a_node_that_closes_first_drops_the_call() -> None:
    async def scenario() -> None:
        async with node() as (stand_in, url):
            call = await _open(url)
            await stand_in.next(StreamConnected)
            await stand_in.next(StreamStarted)
            assert stand_in.socket is not None
            await stand_in.socket.close(1000, "bot hung up")
            assert await call.wait_ended(WAIT)
            call.hangup()  # too late: nothing to stop
        assert call.probe.figures.status == "dropped"
        assert call.probe.figures.failure == "remote_hangup"

    run(scenario())


def test_a_node_that_closes_right_after_the_upgrade_drops_the_call() -> None:
    """The close can reach the socket before open_stream marks the probe answered: the
    probe then ignores the end (it was not answered yet), is marked answered afterwards,
    and the call stays "answered" for ever: neither completed nor dropped."""

    async def scenario() -> None:
        async with node() as (stand_in, url):

            async def hang_up_at_once(socket: ServerConnection) -> None:
                await socket.close(1000, "bot hung up")

            stand_in.then = hang_up_at_once
            call = await _open(url)
            assert await call.wait_ended(WAIT)
        figures = call.probe.figures
        assert (figures.status, figures.failure) == ("dropped", "remote_hangup"), (
            f"BUG: a stream the node closed at once is left {figures.status!r} "
            "(live: the grid keeps sending to it and the result counts it as a good call)"
        )

    run(scenario())


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (HTTPStatus.UNAUTHORIZED, "unauthorized"),
        (HTTPStatus.FORBIDDEN, "forbidden"),
        (HTTPStatus.NOT_FOUND, "not_found"),
        (HTTPStatus.SERVICE_UNAVAILABLE, "busy"),
        (HTTPStatus.BAD_REQUEST, "refused"),
    ],
)
def test_a_refused_upgrade_is_a_failure_with_its_reason(status: HTTPStatus, reason: str) -> None:
    async def scenario() -> None:
        async with node(refuse=status) as (_, url):
            probe = CallProbe(0)
            assert await open_stream(url, probe, parameters=BOT) is None
        assert (probe.figures.status, probe.figures.failure) == ("failed", reason)

    run(scenario())


def test_nothing_listening_is_unreachable() -> None:
    async def scenario() -> None:
        with socket.socket() as bound:  # bound, never listening: connections are refused
            bound.bind(("127.0.0.1", 0))
            port = bound.getsockname()[1]
            probe = CallProbe(0)
            assert await open_stream(f"ws://127.0.0.1:{port}/v1/streams/twilio", probe) is None
        assert (probe.figures.status, probe.figures.failure) == ("failed", "unreachable")

    run(scenario())


def test_a_node_that_never_answers_the_upgrade_is_a_timeout() -> None:
    async def scenario() -> None:
        held: list[asyncio.StreamWriter] = []

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            held.append(writer)  # read nothing, answer nothing

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        probe = CallProbe(0)
        began = time.monotonic()
        url = f"ws://127.0.0.1:{port}/v1/streams/twilio"
        assert await open_stream(url, probe, connect_timeout=0.3) is None
        assert 0.3 <= time.monotonic() - began < WAIT
        assert (probe.figures.status, probe.figures.failure) == ("failed", "timeout")
        for writer in held:
            writer.close()
        server.close()
        await asyncio.wait_for(server.wait_closed(), WAIT)

    run(scenario())
