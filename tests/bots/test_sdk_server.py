"""The bot server: subprotocol choice, the bearer token, the start handshake, and how a
connection ends (the bot failing, returning while the call is up, or after it ended).

The fake voxgate of tests/support/fake_bridge.py connects over loopback to the SDK's
``serve_bot`` (or, to shorten its timeouts, to a ``BotServer`` served the same way).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence

import pytest
from fake_bridge import (
    BINARY,
    CALL_ID,
    JSON,
    FakeBridge,
    Json,
    bot_call,
    run,
    running_bot,
    start_message,
)
from jsonschema import ValidationError
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from voxgate.bots.sdk import Audio, Call
from voxgate.bots.sdk.call import EVENT_QUEUE

SDK_LOGGER = "voxgate.bots.sdk"
CHUNK = bytes(range(160))
SILENCE_CHUNK = b"\xff" * 160


async def echo_once(call: Call) -> None:
    """Echo the first audio chunk, then return (the SDK hangs up)."""
    async for event in call:
        if isinstance(event, Audio):
            await call.send_audio(event.data)
            return


async def wait_until(condition: list[object], count: int = 1, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while len(condition) < count:
            await asyncio.sleep(0.01)


# --- subprotocols ------------------------------------------------------------------------

SUBPROTOCOL_VECTORS = [
    pytest.param((JSON, BINARY), True, BINARY, id="both-offered-binary-preferred"),
    pytest.param((JSON, BINARY), False, JSON, id="both-offered-json-preferred"),
    pytest.param((BINARY, JSON), False, JSON, id="offer-order-does-not-matter"),
    pytest.param((BINARY,), False, BINARY, id="only-binary-offered"),
    pytest.param((JSON,), True, JSON, id="only-json-offered"),
    pytest.param((Subprotocol("other"), JSON), True, JSON, id="an-unknown-one-ignored"),
    pytest.param(None, True, None, id="nothing-offered-json-without-subprotocol"),
    pytest.param((Subprotocol("other"),), True, None, id="only-unknown-offered"),
]


@pytest.mark.parametrize(("offered", "binary", "chosen"), SUBPROTOCOL_VECTORS)
def test_the_server_chooses_the_subprotocol_and_with_it_the_transport(
    offered: Sequence[Subprotocol] | None, binary: bool, chosen: Subprotocol | None
) -> None:
    transports: list[str] = []

    async def bot(call: Call) -> None:
        transports.append(call.start.audio_transport)
        await echo_once(call)

    async def body() -> None:
        async with (
            running_bot(bot, binary=binary) as url,
            FakeBridge(url, subprotocols=offered, answer_hangup=True) as bridge,
        ):
            assert bridge.connection.subprotocol == chosen
            await bridge.start()
            await bridge.send_media(CHUNK)
            assert await bridge.wait_closed() == 1000
        echo, hangup = bridge.received
        if chosen == BINARY:
            assert echo == CHUNK
        else:
            assert isinstance(echo, dict) and echo["type"] == "response.audio.delta"
        assert hangup == {"type": "session.hangup", "reason": "the bot finished"}

    run(body)
    assert transports == ["binary" if chosen == BINARY else "json"]


# --- the bearer token ----------------------------------------------------------------------

TOKEN = "sk-bot-secret-4f1c"


@pytest.mark.parametrize("given", [None, "wrong-token", TOKEN.upper(), TOKEN + "x"])
def test_an_upgrade_without_the_right_bearer_token_gets_401(
    given: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=SDK_LOGGER)
    calls: list[Call] = []

    async def bot(call: Call) -> None:
        calls.append(call)

    async def body() -> None:
        async with running_bot(bot, token=TOKEN) as url:
            with pytest.raises(InvalidStatus) as refused:
                async with FakeBridge(url, token=given):
                    pass
            assert refused.value.response.status_code == 401

    run(body)
    assert calls == []
    sdk_lines = [r.getMessage() for r in caplog.records if r.name.startswith(SDK_LOGGER)]
    assert any("refused an upgrade" in line for line in sdk_lines)
    for secret in filter(None, [TOKEN, given]):
        assert all(secret not in line for line in sdk_lines)


def test_the_right_bearer_token_is_let_in(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=SDK_LOGGER)

    async def body() -> None:
        async with (
            running_bot(echo_once, token=TOKEN) as url,
            FakeBridge(url, token=TOKEN, answer_hangup=True) as bridge,
        ):
            await bridge.start()
            await bridge.send_media(CHUNK)
            assert await bridge.wait_closed() == 1000
        assert len(bridge.of_type("response.audio.delta")) == 1

    run(body)
    sdk_lines = [r.getMessage() for r in caplog.records if r.name.startswith(SDK_LOGGER)]
    assert sdk_lines and all(TOKEN not in line for line in sdk_lines)


def test_the_token_is_masked_in_the_websocket_library_s_debug_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """websockets logs every upgrade header at DEBUG: the SDK gives it a masking logger."""
    caplog.set_level(logging.DEBUG)

    async def body() -> None:
        async with (
            running_bot(echo_once, token=TOKEN) as url,
            FakeBridge(url, token=TOKEN, answer_hangup=True) as bridge,
        ):
            await bridge.start()
            await bridge.send_media(CHUNK)
            assert await bridge.wait_closed() == 1000

    run(body)
    lines = [r.getMessage() for r in caplog.records if r.name == "websockets.server"]
    assert any("Authorization: ***" in line for line in lines), lines
    bot_side = [r for r in caplog.records if r.name != "websockets.client"]  # not the bridge's
    assert all(TOKEN not in r.getMessage() for r in bot_side)


# --- the start handshake -------------------------------------------------------------------

NOT_A_START = [
    pytest.param(json.dumps({"type": "dtmf", "digit": "1"}), id="dtmf-first"),
    pytest.param(json.dumps({"type": "stop", "reason": "caller_hangup"}), id="stop-first"),
    pytest.param("this is not JSON", id="not-json"),
    pytest.param(json.dumps({"type": "bogus"}), id="unknown-type"),
    pytest.param(b"\xff" * 160, id="binary-frame"),
    pytest.param(json.dumps({"type": "start"}), id="start-without-fields"),
]


def _start_with(**fields: object) -> str:
    return json.dumps({**start_message("json", "pcmu", 8000), **fields})


BAD_STARTS = [
    pytest.param(_start_with(protocol="voxgate.v2"), id="another-protocol"),
    pytest.param(_start_with(audio_transport="binary"), id="transport-not-negotiated"),
    pytest.param(
        _start_with(media_format={"encoding": "opus", "sample_rate": 8000, "channels": 1}),
        id="unknown-encoding",
    ),
]


@pytest.mark.parametrize("first", NOT_A_START + BAD_STARTS)
def test_a_first_message_that_is_not_a_good_start_closes_1008(
    first: str | bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=SDK_LOGGER)
    calls: list[Call] = []

    async def bot(call: Call) -> None:
        calls.append(call)

    async def body() -> None:
        async with running_bot(bot) as url, FakeBridge(url, subprotocols=[JSON]) as bridge:
            await bridge.send_raw(first)
            assert await bridge.wait_closed() == 1008
            assert bridge.received == []

    run(body)
    assert calls == []
    assert any("closing a connection" in r.getMessage() for r in caplog.records)


def test_no_start_within_start_timeout_closes_1008() -> None:
    calls: list[Call] = []

    async def bot(call: Call) -> None:
        calls.append(call)

    async def body() -> None:
        async with running_bot(bot, start_timeout=0.3) as url, FakeBridge(url) as bridge:
            began = time.monotonic()
            assert await bridge.wait_closed() == 1008
            assert 0.25 <= time.monotonic() - began < 4

    run(body)
    assert calls == []


# --- how a connection ends -----------------------------------------------------------------


def test_a_failing_bot_closes_1011_and_logs_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=SDK_LOGGER)

    async def bot(call: Call) -> None:
        await call.mark("before")
        raise RuntimeError("boom")

    async def body() -> None:
        async with bot_call(bot) as bridge:
            assert await bridge.wait_closed() == 1011
        assert bridge.received == [{"type": "mark", "name": "before"}]  # no hangup

    run(body)
    (failure,) = [r for r in caplog.records if r.exc_info is not None]
    assert failure.levelno == logging.ERROR
    assert getattr(failure, "call_id", None) == CALL_ID
    assert CALL_ID in failure.getMessage()
    assert failure.exc_info is not None and failure.exc_info[0] is RuntimeError
    assert "RuntimeError: boom" in caplog.text


HANGUP_BY_SDK: Json = {"type": "session.hangup", "reason": "the bot finished"}


def test_a_bot_returning_while_the_call_is_up_hangs_up_and_waits_for_stop() -> None:
    async def bot(call: Call) -> None:
        await call.send_audio(SILENCE_CHUNK * 25)  # a goodbye of 0.5 s

    async def body() -> None:
        async with bot_call(bot) as bridge:
            await bridge.wait_for_type("session.hangup")
            with pytest.raises(TimeoutError):  # the goodbye is still playing: the socket stays
                await bridge.wait_closed(timeout=0.5)
            await bridge.send_media(SILENCE_CHUNK)  # the caller's audio still flows
            await bridge.stop("bot_hangup", close=False)
            assert await bridge.wait_closed() == 1000
        assert bridge.received[-1] == HANGUP_BY_SDK
        assert len(bridge.of_type("session.hangup")) == 1

    run(body)


def test_a_bot_that_hung_up_itself_is_not_hung_up_twice() -> None:
    async def bot(call: Call) -> None:
        await call.hangup("caller_served")

    async def body() -> None:
        async with bot_call(bot) as bridge:
            await bridge.wait_for_type("session.hangup")
            await bridge.stop("bot_hangup", close=False)
            assert await bridge.wait_closed() == 1000
        assert bridge.received == [{"type": "session.hangup", "reason": "caller_served"}]

    run(body)


def test_a_bot_returning_after_the_stop_sends_nothing_more() -> None:
    async def bot(call: Call) -> None:
        async for _ in call:
            pass

    async def body() -> None:
        async with bot_call(bot) as bridge:
            await bridge.stop("caller_hangup", close=False)
            assert await bridge.wait_closed() == 1000
        assert bridge.received == []

    run(body)


def test_without_a_stop_the_server_closes_after_finish_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=SDK_LOGGER)

    async def bot(call: Call) -> None:
        pass

    async def body() -> None:
        async with bot_call(bot, finish_timeout=0.3) as bridge:
            await bridge.wait_for_type("session.hangup")
            began = time.monotonic()
            assert await bridge.wait_closed() == 1000
            assert time.monotonic() - began < 4

    run(body)
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "did not stop the stream" in warning.getMessage()
    assert getattr(warning, "call_id", None) == CALL_ID


def test_calls_at_once_each_get_their_own_call() -> None:
    ids: list[str] = []

    async def bot(call: Call) -> None:
        ids.append(call.call_id)
        await echo_once(call)

    async def one_call(url: str, number: int) -> bytes:
        call_id = f"vx-{number:020x}"
        async with FakeBridge(url, answer_hangup=True) as bridge:
            await bridge.start({"call_id": call_id, "stream_id": f"{call_id}-1"})
            await bridge.send_media(bytes([number]) * 160)
            assert await bridge.wait_closed() == 1000
        return bridge.audio()

    async def body() -> None:
        async with running_bot(bot) as url:
            echoed = await asyncio.gather(*(one_call(url, n) for n in range(1, 6)))
        assert echoed == [bytes([n]) * 160 for n in range(1, 6)]

    run(body)
    assert sorted(ids) == [f"vx-{n:020x}" for n in range(1, 6)]


# --- a bot that does not read its events while the call ends -------------------------------


def test_a_bot_that_returns_without_reading_is_closed_once_voxgate_stops() -> None:
    queued = asyncio.Event()
    calls: list[Call] = []

    async def bot(call: Call) -> None:
        calls.append(call)
        await queued.wait()  # a bot busy elsewhere (a model call) while the caller talks

    async def body() -> None:
        async with bot_call(bot, finish_timeout=30) as bridge:
            for _ in range(EVENT_QUEUE + 50):  # 11 s of the caller's audio, unread
                await bridge.send_media(SILENCE_CHUNK)
            queued.set()
            await bridge.wait_for_type("session.hangup")
            await bridge.stop("bot_hangup", close=False)
            assert await bridge.wait_closed(timeout=3) == 1000

    run(body)


def test_finish_timeout_closes_even_with_a_full_event_queue() -> None:
    queued = asyncio.Event()
    calls: list[Call] = []

    async def bot(call: Call) -> None:
        calls.append(call)
        await queued.wait()

    async def body() -> None:
        async with bot_call(bot, finish_timeout=0.3) as bridge:
            for _ in range(EVENT_QUEUE + 50):
                await bridge.send_media(SILENCE_CHUNK)
            queued.set()
            await bridge.wait_for_type("session.hangup")
            assert await bridge.wait_closed(timeout=3) == 1000  # voxgate never stops

    run(body)


# --- the fake bridge holds bots to the schema (a check of the test harness) ----------------


MISBEHAVIOURS = [
    pytest.param(json.dumps({"type": "mark"}), ValidationError, id="mark-without-name"),
    pytest.param(
        json.dumps({"type": "session.hangup", "why": "x"}), ValidationError, id="extra-field"
    ),
    pytest.param(
        json.dumps({"type": "dtmf.send", "digits": "X"}), ValidationError, id="bad-digits"
    ),
    pytest.param(
        json.dumps({"type": "response.audio.delta", "audio": "abc"}),
        ValidationError,
        id="bad-base64",
    ),
    pytest.param(
        json.dumps({"type": "media", "seq": 1, "timestamp_ms": 0, "audio": ""}),
        ValidationError,
        id="a-bridge-message",
    ),
    pytest.param("not json", json.JSONDecodeError, id="not-json"),
    pytest.param(b"xx", AssertionError, id="binary-on-json-socket"),
]


@pytest.mark.parametrize(("frame", "error"), MISBEHAVIOURS)
def test_the_fake_bridge_fails_the_test_on_a_bad_bot_message(
    frame: str | bytes, error: type[Exception]
) -> None:
    async def misbehaving_bot(connection: ServerConnection) -> None:
        """Not an SDK bot: answers start with ``frame``."""
        await connection.recv()
        await connection.send(frame)
        await connection.wait_closed()

    async def call(url: str) -> None:
        async with FakeBridge(url, subprotocols=None) as bridge:
            await bridge.start()
            await bridge.wait_for_count(1)

    async def body() -> None:
        async with serve(misbehaving_bot, "127.0.0.1", 0) as server:
            with pytest.raises(error):
                await call(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}")

    run(body)
