"""The echo bot, driven by a real websockets client over loopback.

Each test runs one coroutine under ``asyncio.run`` (debug on) inside
``asyncio.timeout``, against a server started on an ephemeral port.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server
from websockets.exceptions import ConnectionClosedOK
from websockets.typing import Subprotocol

from voxgate.bots import echo
from voxgate.bots.echo import DEFAULT_TRANSFER_TARGET, serve_echo
from voxgate.bots.sdk.runner import default_options, parse_options
from voxgate.bots.sdk.server import run_bot
from voxgate.codecs.dtmf import DtmfDetector
from voxgate.codecs.g711 import ulaw_decode

TIMEOUT = 5.0
JSON = Subprotocol("voxgate.v1")
BINARY = Subprotocol("voxgate.v1.binary")
CHUNK = bytes(range(256))[:160]  # 20 ms of PCMU, every byte value distinct

START = {
    "type": "start",
    "protocol": "voxgate.v1",
    "call_id": "call-42",
    "stream_id": "stream-7",
    "direction": "inbound",
    "carrier": {"name": "twilio", "call_id": "CA42"},
    "custom_parameters": {},
    "media_format": {"encoding": "pcmu", "sample_rate": 8000, "channels": 1},
    "audio_transport": "json",
    "reconnected": False,
}


def run(test: Callable[[], Awaitable[None]]) -> None:
    """Run an async test body, bounded in time, with asyncio debug on."""

    async def bounded() -> None:
        async with asyncio.timeout(TIMEOUT):
            await test()

    asyncio.run(bounded(), debug=True)


@contextlib.asynccontextmanager
async def echo_bot(**options: Any) -> AsyncIterator[tuple[Server, str]]:
    server = await serve_echo("127.0.0.1", 0, **options)
    try:
        port = server.sockets[0].getsockname()[1]
        yield server, f"ws://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def started_call(
    subprotocols: Sequence[Subprotocol] | None = (JSON,), **options: Any
) -> AsyncIterator[ClientConnection]:
    """A client connected to a fresh echo bot, ``start`` already sent."""
    async with echo_bot(**options) as (_, url), connect(url, subprotocols=subprotocols) as client:
        binary = client.subprotocol == BINARY
        await client.send(json.dumps({**START, "audio_transport": "binary" if binary else "json"}))
        yield client


def media(seq: int, chunk: bytes = CHUNK) -> str:
    audio = base64.b64encode(chunk).decode()
    return json.dumps({"type": "media", "seq": seq, "timestamp_ms": 20 * seq, "audio": audio})


async def receive_json(client: ClientConnection) -> dict[str, Any]:
    message = await client.recv()
    assert isinstance(message, str), f"expected a text frame, got {message!r}"
    event = json.loads(message)
    assert isinstance(event, dict)
    return event


async def receive_echo(client: ClientConnection) -> bytes:
    event = await receive_json(client)
    assert event["type"] == "response.audio.delta"
    return base64.b64decode(event["audio"], validate=True)


async def sync_with_bot(client: ClientConnection) -> None:
    """Wait until the bot has handled everything sent so far (it answers '*' with a clear)."""
    await client.send(json.dumps({"type": "dtmf", "digit": "*"}))
    assert await receive_json(client) == {"type": "response.audio.clear"}


# --- echo and transports ------------------------------------------------------------------

CHUNKS = [CHUNK, b"\xff" * 160, b"\x00", bytes(range(256)) * 4]


def test_json_media_is_echoed_byte_for_byte() -> None:
    async def body() -> None:
        async with started_call() as client:
            assert client.subprotocol == JSON
            for seq, chunk in enumerate(CHUNKS, 1):
                await client.send(media(seq, chunk))
                assert await receive_echo(client) == chunk

    run(body)


def test_binary_media_is_echoed_as_binary_frames() -> None:
    async def body() -> None:
        async with started_call([JSON, BINARY], binary=True) as client:
            assert client.subprotocol == BINARY
            for chunk in CHUNKS:
                await client.send(chunk)
                assert await client.recv() == chunk

    run(body)


@pytest.mark.parametrize(
    ("binary", "offered", "selected"),
    [
        (False, [BINARY, JSON], JSON),  # JSON by default, whatever the client's order
        (True, [JSON, BINARY], BINARY),
        (True, [JSON], JSON),  # binary only when offered
        (False, [BINARY], BINARY),  # the server supports both
        (False, None, None),  # no subprotocol at all: plain JSON
    ],
)
def test_subprotocol_selection(
    binary: bool, offered: list[Subprotocol] | None, selected: Subprotocol | None
) -> None:
    async def body() -> None:
        async with started_call(offered, binary=binary) as client:
            assert client.subprotocol == selected
            if selected == BINARY:  # audio both ways as binary frames
                await client.send(CHUNK)
                assert await client.recv() == CHUNK
            else:
                await client.send(media(1))
                assert await receive_echo(client) == CHUNK

    run(body)


# --- marks --------------------------------------------------------------------------------


def test_a_mark_follows_every_fifty_chunks_and_played_marks_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def body() -> None:
        async with started_call() as client:
            received: list[str] = []
            for seq in range(1, 101):
                await client.send(media(seq))
                received.append((await receive_json(client))["type"])
                if seq % 50 == 0:
                    assert await receive_json(client) == {
                        "type": "mark",
                        "name": f"echo-{seq // 50}",
                    }
            assert received == ["response.audio.delta"] * 100
            await client.send(json.dumps({"type": "mark", "name": "echo-1"}))
            await sync_with_bot(client)

    with caplog.at_level(logging.INFO, logger="voxgate.bots.echo"):
        run(body)
    played = [r for r in caplog.records if "mark echo-1 played" in r.getMessage()]
    assert len(played) == 1
    assert getattr(played[0], "call_id", None) == "call-42"


def test_binary_chunks_count_towards_marks() -> None:
    async def body() -> None:
        async with started_call([BINARY], binary=True) as client:
            for _ in range(50):
                await client.send(CHUNK)
                assert await client.recv() == CHUNK
            assert await receive_json(client) == {"type": "mark", "name": "echo-1"}

    run(body)


# --- DTMF -----------------------------------------------------------------------------------

DTMF_REPLIES = [
    ("#", {}, {"type": "session.hangup", "reason": "caller pressed #"}),
    ("0", {}, {"type": "session.transfer", "target": DEFAULT_TRANSFER_TARGET}),
    (
        "0",
        {"transfer_target": "sip:desk@example.com"},
        {"type": "session.transfer", "target": "sip:desk@example.com"},
    ),
    ("*", {}, {"type": "response.audio.clear"}),
]


@pytest.mark.parametrize(("digit", "options", "reply"), DTMF_REPLIES)
def test_dtmf_digits_drive_the_call(
    digit: str, options: dict[str, Any], reply: dict[str, str]
) -> None:
    async def body() -> None:
        async with started_call(**options) as client:
            await client.send(json.dumps({"type": "dtmf", "digit": digit, "duration_ms": 100}))
            assert await receive_json(client) == reply

    run(body)


def test_other_digits_get_no_reply() -> None:
    async def body() -> None:
        async with started_call() as client:
            await client.send(json.dumps({"type": "dtmf", "digit": "5"}))
            await sync_with_bot(client)  # the very next message is the clear

    run(body)


# --- stop, errors, bad input ---------------------------------------------------------------


def test_stop_makes_the_bot_close_with_1000() -> None:
    async def body() -> None:
        async with started_call() as client:
            await client.send(json.dumps({"type": "stop", "reason": "caller hung up"}))
            with pytest.raises(ConnectionClosedOK):
                await client.recv()
            assert client.protocol.close_rcvd is not None
            assert client.protocol.close_rcvd.code == 1000
            assert client.protocol.close_rcvd_then_sent is True  # the bot closed first

    run(body)


GARBAGE = [  # (what voxgate sends, what the bot logs about it)
    ("not json at all", "ignoring a message voxgate should not send"),
    ("[1, 2, 3]", "ignoring a message voxgate should not send"),
    ('"start"', "ignoring a message voxgate should not send"),
    ("{}", "ignoring a message voxgate should not send"),
    ('{"type": 5}', "ignoring a message voxgate should not send"),
    ('{"type": "media", "seq": 1}', "'audio'"),
    ('{"type": "media", "seq": 2, "audio": "***not base64***"}', "base64"),
    ('{"type": "media", "seq": 3, "audio": 12}', "'audio'"),
    ('{"type": "error", "code": "bad_audio", "message": "no"}', "voxgate reports bad_audio: no"),
    ('{"type": "speech.started", "item": 3}', "'speech.started'"),
]


@pytest.mark.parametrize(("garbage", "logged"), GARBAGE)
def test_bad_or_unknown_messages_are_logged_and_the_call_goes_on(
    garbage: str, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        async with started_call() as client:
            await client.send(garbage)
            await client.send(media(9))
            assert await receive_echo(client) == CHUNK

    with caplog.at_level(logging.INFO):
        run(body)
    assert any(
        r.getMessage().startswith("call call-42: ") and logged in r.getMessage()
        for r in caplog.records
    ), [r.getMessage() for r in caplog.records]


def test_every_log_line_about_the_call_names_it(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        async with started_call() as client:
            await client.send(media(1))
            await receive_echo(client)
            await client.send("garbage")
            await client.send(json.dumps({"type": "stop"}))
            with pytest.raises(ConnectionClosedOK):
                await client.recv()

    with caplog.at_level(logging.DEBUG):
        run(body)
    bot_lines = [r for r in caplog.records if r.name.startswith("voxgate.bots")]
    call_lines = [r for r in bot_lines if hasattr(r, "call_id")]
    assert len(call_lines) >= 4  # started, ignoring, stopped, finished
    assert all(r.call_id == "call-42" for r in call_lines)
    assert all("call-42" in r.getMessage() for r in call_lines)
    # Only the listening line has no call: nothing else is said outside a call.
    assert [r.getMessage() for r in bot_lines if not hasattr(r, "call_id")] == [
        r.getMessage() for r in bot_lines if "listening" in r.getMessage()
    ]


def test_an_abrupt_client_disconnect_ends_the_handler_cleanly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def body() -> None:
        async with echo_bot() as (server, url):
            client = await connect(url, subprotocols=[JSON])
            await client.send(json.dumps(START))
            await client.send(media(1))
            await receive_echo(client)
            client.transport.abort()  # no closing handshake
            await client.wait_closed()
            while server.connections:
                await asyncio.sleep(0.01)

    with caplog.at_level(logging.INFO):
        run(body)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("closed without a stop" in r.getMessage() for r in caplog.records)


def test_run_bot_serves_the_echo_until_cancelled() -> None:
    async def body() -> None:
        with socket.socket() as probe:  # find a free loopback port
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        options = default_options(echo)
        serving = asyncio.create_task(run_bot(echo.handle, "127.0.0.1", port, options=options))
        url = f"ws://127.0.0.1:{port}"
        while True:
            try:
                client = await connect(url, subprotocols=[JSON])
                break
            except OSError:
                await asyncio.sleep(0.01)
        async with client:
            await client.send(json.dumps(START))
            await client.send(media(1))
            assert await receive_echo(client) == CHUNK
            serving.cancel()
            with pytest.raises(asyncio.CancelledError):
                await serving
            await client.wait_closed()
            assert client.close_code == 1001  # the server went away

    run(body)


# --- delay and DTMF tones -------------------------------------------------------------------


def test_with_a_delay_the_echo_comes_back_that_much_later_in_order() -> None:
    async def body() -> None:
        async with started_call(delay=0.3) as client:
            loop = asyncio.get_running_loop()
            sent_at = loop.time()
            for seq, chunk in enumerate(CHUNKS, 1):
                await client.send(media(seq, chunk))
            echoed = [await receive_echo(client) for _ in CHUNKS]
            waited = loop.time() - sent_at
            assert echoed == CHUNKS
            assert 0.3 <= waited < 0.3 + 2.0  # held back; the upper bound allows a busy machine

    run(body)


@pytest.mark.parametrize("delay", ["11", "-1", "soon"])
def test_a_bad_delay_is_refused_with_the_range(
    delay: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_options("echo", echo, ["--delay", delay], {})
    assert exited.value.code == 2
    assert "must be 0 to 10 seconds" in capsys.readouterr().err


@pytest.mark.parametrize("digit", ["5", "#", "0", "*"])
def test_in_dtmf_tones_mode_every_key_comes_back_as_its_tone(digit: str) -> None:
    async def body() -> None:
        async with started_call(dtmf_tones=True) as client:
            await client.send(json.dumps({"type": "dtmf", "digit": digit}))
            audio = b""
            while len(audio) < echo.TONE_MS * 8:  # 8 bytes of PCMU a millisecond
                audio += await receive_echo(client)
            assert len(audio) == echo.TONE_MS * 8
            detector = DtmfDetector(8000)
            found = [d.digit for d in detector.feed(ulaw_decode(audio)) + detector.flush()]
            assert found == [digit]

    run(body)
