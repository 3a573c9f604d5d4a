"""The relay bot end to end: a Twilio carrier emulator calls the real bridge, which connects
to the relay (served by the SDK), which talks to a stand-in Realtime API over loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest
from carrier import CarrierEmulator
from realtime_standin import API_KEY, RealtimeStandIn, StandInSession
from scenario import run

from voxgate.bots import relay
from voxgate.bots.relay.relay import ApiOutbox
from voxgate.bots.sdk import serve_bot, to_format, tone
from voxgate.bots.sdk.runner import default_options
from voxgate.bridge.aio.server import RunningBridge, running_bridge
from voxgate.bridge.call import Call as BridgeCall
from voxgate.codecs.formats import PCMU_8K, AudioFormat, Encoding, decode
from voxgate.config import load_config
from voxgate.obs import METRICS

TIMEOUT = 5.0
PCM16_24K = AudioFormat(Encoding.PCM16, 24000)
CALLER_HZ = 1000.0
MODEL_HZ = 440.0
CALLER_VOICE = to_format(tone(CALLER_HZ, 400, 8000), 8000, PCMU_8K)


def _dominant_hz(samples: np.ndarray[Any, Any], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.argmax(spectrum) * rate / len(samples))


@asynccontextmanager
async def _bridge(**env: str) -> AsyncIterator[RunningBridge]:
    config = load_config(None, {"VOXGATE_LOG_FORMAT": "text", **env})
    METRICS.reset()
    async with running_bridge(config) as running:
        yield running


@asynccontextmanager
async def _relay_bot(**options: Any) -> AsyncIterator[str]:
    server = await serve_bot(
        relay.handle, "127.0.0.1", 0, options=default_options(relay, **options)
    )
    try:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def _call(
    api: RealtimeStandIn,
    *,
    env: dict[str, str] | None = None,
    custom: dict[str, str] | None = None,
    **options: Any,
) -> AsyncIterator[tuple[CarrierEmulator, RunningBridge]]:
    """A Twilio call through the bridge to the relay, relaying to ``api``."""
    options = {"url": api.url, "api_key": API_KEY, **options}
    async with _bridge(**(env or {})) as running, _relay_bot(**options) as bot_url:
        url = f"{running.ws_url}/v1/streams/twilio"
        params = {"wss_url": bot_url, **(custom or {})}
        async with CarrierEmulator(url, "twilio", custom_parameters=params) as carrier:
            yield carrier, running


async def _bridge_call(running: RunningBridge) -> BridgeCall:
    """voxgate's own record of the call under way (transcripts, end reason)."""
    async with asyncio.timeout(TIMEOUT):
        while not running.bridge.sessions:
            await asyncio.sleep(0.01)
    (session,) = running.bridge.sessions.values()
    return session.call


async def _until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def _logged(caplog: pytest.LogCaptureFixture, *parts: str) -> Callable[[], bool]:
    return lambda: any(all(part in text for part in parts) for text in _messages(caplog))


def _assert_key_never_logged(caplog: pytest.LogCaptureFixture, key: str = API_KEY) -> None:
    leaks = [
        record.name
        for record in caplog.records
        if key in record.getMessage() or key in (record.exc_text or "")
    ]
    assert leaks == []


async def _caller_speaks(carrier: CarrierEmulator, session: StandInSession) -> None:
    """The caller says something (a tone) and the model's turn detection hears it."""
    await carrier.send_audio(CALLER_VOICE)
    await session.wait_for(lambda: len(session.responses) >= 1 + _opening(session))


def _opening(session: StandInSession) -> int:
    return sum(1 for r in session.responses if r.instructions is not None)


# --- the audio and the session ----------------------------------------------------------------


def test_a_pcmu_call_speaks_g711_both_ways_with_the_calls_prompt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    env = {
        "VOXGATE_BOT_SYSTEM_PROMPT": "You sell shoes.",
        "VOXGATE_BOT_OPENING_TEXT": "Welcome to the shoe shop.",
    }

    async def scenario() -> None:
        async with (
            RealtimeStandIn(response_ms=500) as api,
            _call(api, env=env, beta_header=True) as (carrier, bridge),
        ):
            call = await _bridge_call(bridge)
            session = await api.session()
            (update,) = await session.wait_for_type("session.update")
            assert update["session"]["instructions"] == "You sell shoes."
            assert update["session"]["input_audio_format"] == "g711_ulaw"
            assert update["session"]["output_audio_format"] == "g711_ulaw"
            assert session.headers["authorization"] == f"Bearer {API_KEY}"
            assert session.headers["openai-beta"] == "realtime=v1"
            (opening,) = await session.wait_for_type("response.create")
            assert "Welcome to the shoe shop." in opening["response"]["instructions"]
            await carrier.wait_for_marks(1, timeout=TIMEOUT)
            heard = carrier.received_audio()
            assert len(heard) == PCMU_8K.bytes_per(500)
            assert _dominant_hz(decode(heard, PCMU_8K), 8000) == pytest.approx(MODEL_HZ, abs=10)

            await _caller_speaks(carrier, session)
            await session.wait_for(lambda: len(session.audio_in) >= len(CALLER_VOICE))
            assert bytes(session.audio_in) == CALLER_VOICE  # G.711 straight through
            await carrier.wait_for_marks(2, timeout=TIMEOUT)
            assert len(carrier.received_audio()) == PCMU_8K.bytes_per(1000)

            bot_line = ("bot", api.bot_transcript)
            expected = [bot_line, ("caller", api.caller_transcript), bot_line]
            await _until(lambda: len(call.transcripts) >= 3)
            assert [(t.role, t.text) for t in call.transcripts] == expected

            await carrier.hang_up()
            assert await session.wait_closed() == 1000
        await _until(_logged(caplog, "relay done", "caller audio in 0.4 s", "responses 2"))

    run(scenario())
    _assert_key_never_logged(caplog)
    headers = [text for text in _messages(caplog) if "API socket: > Authorization" in text]
    assert headers == [f"call {_call_id(caplog)}: API socket: > Authorization: ***"]


def _call_id(caplog: pytest.LogCaptureFixture) -> str:
    return next(
        str(record.__dict__["call_id"])
        for record in caplog.records
        if record.name.startswith("voxgate.bots.relay")
    )


def test_a_pcm16_call_is_converted_to_24_khz_both_ways() -> None:
    async def scenario() -> None:
        custom = {"bot_audio": "pcm16/16000"}
        async with (
            RealtimeStandIn() as api,
            _call(api, custom=custom, beta_header=True) as (carrier, _),
        ):
            session = await api.session()
            (update,) = await session.wait_for_type("session.update")
            assert update["session"]["input_audio_format"] == "pcm16"
            assert update["session"]["output_audio_format"] == "pcm16"
            await _caller_speaks(carrier, session)
            assert session.input_format == PCM16_24K
            heard_by_api = decode(bytes(session.audio_in), PCM16_24K)
            assert len(heard_by_api) >= 24000 * 0.2
            assert _dominant_hz(heard_by_api, 24000) == pytest.approx(CALLER_HZ, abs=10)

            heard = await carrier.wait_for_audio(PCMU_8K.bytes_per(800), timeout=TIMEOUT)
            assert _dominant_hz(decode(heard, PCMU_8K), 8000) == pytest.approx(MODEL_HZ, abs=10)
            await carrier.hang_up()
            assert await session.wait_closed() == 1000

    run(scenario())


# --- barge-in, keys, errors -----------------------------------------------------------------


def test_barge_in_clears_the_call_and_cancels_and_truncates_the_response() -> None:
    async def scenario() -> None:
        # A response of 3 s, generated in real time: still under way when the caller cuts in.
        api = RealtimeStandIn(response_ms=3000, chunk_ms=100, chunk_interval=0.1)
        async with api, _call(api, beta_header=False) as (carrier, _):
            session = await api.session()
            (update,) = await session.wait_for_type("session.update")
            assert update["session"]["type"] == "realtime"  # the GA interface
            assert "openai-beta" not in session.headers
            await _caller_speaks(carrier, session)
            await carrier.wait_for_audio(PCMU_8K.bytes_per(600), timeout=TIMEOUT)

            await session.speech_started()
            await carrier.wait_for_event("clear", timeout=TIMEOUT)
            (response,) = session.responses
            (cancel,) = await session.wait_for_type("response.cancel")
            assert cancel["response_id"] == response.response_id
            (cut,) = await session.wait_for_type("conversation.item.truncate")
            assert cut["item_id"] == response.item_id
            assert 300 <= cut["audio_end_ms"] <= response.sent_ms < 3000
            await session.wait_for(lambda: response.status == "cancelled")
            assert session.of_type("error") == []
            await asyncio.sleep(0.3)
            assert len(carrier.received_audio()) < PCMU_8K.bytes_per(3000)
            await carrier.hang_up()

    run(scenario())


def test_a_key_pressed_reaches_the_model_as_text() -> None:
    async def scenario() -> None:
        async with RealtimeStandIn(response_ms=200) as api, _call(api) as (carrier, _):
            session = await api.session()
            await session.wait_for_type("session.update")
            await carrier.send_dtmf("5")
            (item,) = await session.wait_for_type("conversation.item.create")
            assert item["item"]["role"] == "user"
            assert item["item"]["content"] == [
                {"type": "input_text", "text": "The caller pressed 5"}
            ]
            await session.wait_for_type("response.create")
            await carrier.wait_for_audio(PCMU_8K.bytes_per(200), timeout=TIMEOUT)
            await carrier.hang_up()

    run(scenario())


def test_an_api_error_is_logged_and_the_call_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)

    async def scenario() -> None:
        async with RealtimeStandIn(response_ms=200) as api, _call(api) as (carrier, _):
            session = await api.session()
            await session.wait_for_type("session.update")
            await session.send_error("server_error", "overloaded", f"Busy, {API_KEY}?")
            await _until(_logged(caplog, "the API reports server_error (overloaded): Busy, ***?"))
            await _caller_speaks(carrier, session)
            await carrier.wait_for_audio(PCMU_8K.bytes_per(200), timeout=TIMEOUT)
            await carrier.hang_up()

    run(scenario())
    _assert_key_never_logged(caplog)


def test_the_api_closing_hangs_up_the_call(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)

    async def scenario() -> None:
        async with RealtimeStandIn() as api, _call(api) as (carrier, bridge):
            call = await _bridge_call(bridge)
            session = await api.session()
            await session.wait_for_type("session.update")
            await session.close(1011, "model crashed")
            assert await carrier.wait_for_close(timeout=TIMEOUT) is not None
            assert call.end_reason == "bot_hangup"
        assert _logged(caplog, "the API closed its socket (code 1011, model crashed)")()

    run(scenario())


def test_a_refused_key_ends_the_call_with_a_clear_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong_key = "sk-wrong-key-0000000000"

    async def scenario() -> None:
        async with RealtimeStandIn() as api, _call(api, api_key=wrong_key) as (carrier, _):
            assert await carrier.wait_for_close(timeout=TIMEOUT) is not None
            assert api.refused == [401]
            assert api.sessions == []
        assert _logged(caplog, "cannot open the model's API", "HTTP 401", "check --api-key")()
        assert _logged(caplog, "call ended: bot_hangup")()

    run(scenario())
    _assert_key_never_logged(caplog, wrong_key)


def test_no_key_no_call(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    async def scenario() -> None:
        async with RealtimeStandIn() as api, _call(api, api_key=None) as (carrier, _):
            assert await carrier.wait_for_close(timeout=TIMEOUT) is not None
            assert (api.sessions, api.refused) == ([], [])
        assert _logged(caplog, "call ended: bot_hangup")()
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert any("no API key: set --api-key" in text for text in errors)

    run(scenario())


# --- the outbox: the call never waits for a slow API ------------------------------------------


def test_the_outbox_drops_caller_audio_that_waited_too_long() -> None:
    async def scenario() -> None:
        outbox = ApiOutbox(max_age=1.0)
        now = time.monotonic()
        for age in (3.0, 2.0, 0.5):
            outbox.put({"type": "input_audio_buffer.append", "age": age}, audio=True, now=now - age)
        outbox.put({"type": "response.create"}, audio=False, now=now - 5.0)  # never dropped
        assert json.loads(await outbox.get())["age"] == 0.5
        assert json.loads(await outbox.get()) == {"type": "response.create"}
        assert (outbox.dropped_audio, outbox.dropped_events) == (2, 0)

    run(scenario())


def test_a_full_outbox_drops_its_oldest_audio_first() -> None:
    async def scenario() -> None:
        outbox = ApiOutbox(limit=2)
        now = time.monotonic()
        outbox.put({"type": "session.update"}, audio=False, now=now)
        outbox.put({"n": 1}, audio=True, now=now)
        outbox.put({"n": 2}, audio=True, now=now)  # the oldest audio goes
        assert [json.loads(await outbox.get()) for _ in range(2)] == [
            {"type": "session.update"},
            {"n": 2},
        ]
        for name in ("a", "b", "c"):  # no audio to drop: the new event goes
            outbox.put({"type": name}, audio=False, now=now)
        assert [json.loads(await outbox.get()) for _ in range(2)] == [{"type": "a"}, {"type": "b"}]
        assert (outbox.dropped_audio, outbox.dropped_events) == (1, 1)

    run(scenario())
