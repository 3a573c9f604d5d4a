"""The WebSocket media path end to end: carrier emulator -> voxgate -> a real bot socket.

Everything runs over loopback with real WebSocket clients and servers: the
carrier emulator (tests/support/carrier.py) speaks Twilio's or Telnyx's
documented wire format, the bots are the built-in echo bot or a scripted one.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from carrier import CarrierEmulator
from e2e import bridge, bridge_process, metric, scripted_call, unhandled
from pacing import assert_paced_loosely
from scenario import run
from scripted_bot import ScriptedBot
from websockets.asyncio.client import connect

from voxgate.codecs.dtmf import DtmfDetector
from voxgate.codecs.formats import PCMU_8K, decode, encode


def _noise_codes(seconds: float, seed: int = 1) -> bytes:
    return (
        np.random.default_rng(seed).integers(0, 256, int(8000 * seconds), dtype=np.uint8).tobytes()
    )


def _tone_codes(seconds: float, frequency: float = 440.0) -> bytes:
    t = np.arange(int(8000 * seconds)) / 8000
    return encode(np.round(8000 * np.sin(2 * np.pi * frequency * t)).astype(np.int16), PCMU_8K)


@pytest.fixture(autouse=True)
def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> object:
    caplog.set_level("INFO")
    yield
    assert unhandled(caplog.records) == []


@pytest.mark.parametrize("carrier_name", ["twilio", "telnyx", "plivo"])
def test_echo_round_trip_is_bit_exact_in_passthrough(carrier_name: str) -> None:
    async def scenario() -> None:
        async with bridge() as running:
            url = f"{running.ws_url}/v1/streams/{carrier_name}"
            async with CarrierEmulator(url, carrier_name) as carrier:  # type: ignore[arg-type]
                audio = _noise_codes(2.0)
                await carrier.send_audio(audio)
                received = await carrier.wait_for_audio(len(audio), timeout=5)
                assert received[: len(audio)] == audio
                await carrier.hang_up()

    run(scenario())


def test_telnyx_media_out_of_order_reaches_the_bot_in_order() -> None:
    async def scenario() -> None:
        async with scripted_call("telnyx") as (running, carrier, connection):
            audio = _noise_codes(1.0, seed=2)
            await carrier.send_audio(audio, shuffle_window=3, shuffle_seed=5)
            await connection.wait_for(lambda: len(connection.audio()) >= len(audio))
            assert connection.audio() == audio
            await carrier.hang_up()
            await connection.wait_for_type("stop")
            for _ in range(100):  # the call's counters join the totals as it ends
                if await metric(running, "voxgate_reorder_reordered") > 0:
                    break
                await asyncio.sleep(0.02)
            assert await metric(running, "voxgate_reorder_reordered") > 0
            assert await metric(running, "voxgate_reorder_lost") == 0

    run(scenario())


def test_transcoded_echo_through_a_pcm16_16k_bot_keeps_the_signal() -> None:
    async def scenario() -> None:
        async with bridge() as running:
            url = f"{running.ws_url}/v1/streams/twilio"
            params = {"bot_audio": "pcm16/16000"}
            async with CarrierEmulator(url, "twilio", custom_parameters=params) as carrier:
                audio = _tone_codes(1.0)
                await carrier.send_audio(audio)
                received = await carrier.wait_for_audio(len(audio), timeout=5)
                await carrier.hang_up()
        sent = decode(audio, PCMU_8K).astype(np.float64)
        back = decode(received[: len(audio)], PCMU_8K).astype(np.float64)
        delay = 30  # two resamplers of 1.875 ms each, at 8 kHz
        error = back[delay + 400 :] - sent[400 : len(sent) - delay]
        snr = 10 * np.log10(np.mean(sent[400:] ** 2) / np.mean(error**2))
        assert snr >= 30.0

    run(scenario())


def test_a_10_second_burst_is_paced_at_50_frames_per_second() -> None:
    """The bridge runs as its own process here, as in production: the pacing measured at
    the carrier is the bridge's, not that of an event loop shared with the test's peers."""

    async def scenario() -> None:
        async with (
            ScriptedBot() as bot,
            bridge_process(VOXGATE_BOT_URL=bot.url) as base,
            CarrierEmulator(f"{base}/v1/streams/twilio", "twilio") as carrier,
        ):
            connection = await bot.connection()
            await connection.wait_for_type("start")
            burst = _noise_codes(10.0, seed=3)
            await connection.send_audio(burst)
            received = await carrier.wait_for_audio(len(burst), timeout=20)
            assert received == burst  # every frame, in order, bit-exact
            assert all(len(frame.payload) == 160 for frame in carrier.media)
            arrivals = carrier.media_arrivals()
            await carrier.hang_up()
        assert_paced_loosely(arrivals, 500)

    run(scenario(), timeout=40)


def test_marks_are_reported_after_playout_not_when_queued() -> None:
    async def scenario() -> None:
        async with scripted_call("twilio") as (_running, carrier, connection):
            sent_at = time.monotonic()
            await connection.send_audio(_noise_codes(1.0))
            await connection.send({"type": "mark", "name": "one-second"})
            (mark,) = await connection.wait_for_type("mark", timeout=5)
            played_at = next(t for t, m in connection.messages if m == mark)
            assert mark["name"] == "one-second"
            assert played_at - sent_at >= 0.95  # 1 s of audio had to be played first
            assert carrier.marks_echoed()  # learnt from the carrier's own mark echo
            await carrier.hang_up()

    run(scenario())


def test_clear_stops_audio_within_a_frame_and_returns_pending_marks() -> None:
    async def scenario() -> None:
        async with scripted_call("twilio") as (_running, carrier, connection):
            await connection.send_audio(_noise_codes(5.0))
            await connection.send({"type": "mark", "name": "end-of-answer"})
            await carrier.wait_for_audio(160 * 25, timeout=5)  # half a second has played
            cleared_at = time.monotonic()
            await connection.send({"type": "response.audio.clear"})
            (mark,) = await connection.wait_for_type("mark", timeout=2)
            await carrier.wait_for(lambda: bool(carrier.clears), timeout=2)
            await asyncio.sleep(0.3)
            # Within a frame in stepped time (tests/bridge/test_playout.py); here, on a
            # machine that may be loaded, well before the 4.5 s of audio left would end.
            late = [a for a in carrier.media_arrivals() if a > cleared_at + 0.2]
            assert late == []
            assert mark["name"] == "end-of-answer"
            assert carrier.clears[0] - cleared_at < 0.2
            await carrier.hang_up()

    run(scenario())


def test_dtmf_both_ways() -> None:
    async def scenario() -> None:
        async with scripted_call("telnyx") as (_running, carrier, connection):
            await carrier.send_dtmf("5")
            (dtmf,) = await connection.wait_for_type("dtmf")
            assert dtmf["digit"] == "5"
            await connection.send({"type": "dtmf.send", "digits": "19#"})
            await carrier.wait_for_audio(160 * 24, timeout=5)  # 3 x (100 + 60) ms
            await asyncio.sleep(0.1)
            detector = DtmfDetector()
            heard = decode(carrier.received_audio(), PCMU_8K)
            found = detector.feed(heard) + detector.flush()
            assert "".join(d.digit for d in found) == "19#"
            await carrier.hang_up()

    run(scenario())


def test_caller_hangup_stops_and_closes_the_bot_within_a_second() -> None:
    async def scenario() -> None:
        async with scripted_call("twilio") as (running, carrier, connection):
            hung_up_at = time.monotonic()
            await carrier.hang_up()
            async with asyncio.timeout(1.0):
                await connection.closed.wait()
            assert time.monotonic() - hung_up_at < 1.0
            (stop,) = connection.of_type("stop")
            assert stop["reason"] == "caller_hangup"
            assert not running.bridge.sessions

    run(scenario())


def test_bot_drop_reconnects_with_a_reconnected_start() -> None:
    async def scenario() -> None:
        async with bridge() as running, ScriptedBot() as bot:
            url = f"{running.ws_url}/v1/streams/telnyx"
            async with CarrierEmulator(
                url, "telnyx", custom_parameters={"wss_url": bot.url}
            ) as carrier:
                first = await bot.connection(0)
                (start,) = await first.wait_for_type("start")
                assert start.get("reconnected", False) is False
                first.socket.transport.abort()  # the bot's process dies
                second = await bot.connection(1, timeout=3)
                (again,) = await second.wait_for_type("start")
                assert again["reconnected"] is True
                assert again["call_id"] == start["call_id"]
                audio = _noise_codes(0.4)
                await carrier.send_audio(audio)
                await second.wait_for(lambda: second.audio().endswith(audio[-160:]))
                await carrier.hang_up()

    run(scenario())


def test_an_unreachable_bot_gets_the_hangup_fallback() -> None:
    async def scenario() -> None:
        async with bridge(VOXGATE_BOT_CONNECT_TIMEOUT="1") as running:
            url = f"{running.ws_url}/v1/streams/twilio"
            params = {"wss_url": "ws://127.0.0.1:9/nobody-listens"}
            async with CarrierEmulator(url, "twilio", custom_parameters=params) as carrier:
                await carrier.wait_for_close(timeout=3)
            assert await metric(running, 'voxgate_calls_ended{reason="bot_unreachable"}') == 1
            assert await metric(running, 'voxgate_errors{kind="bot_connect"}') >= 1

    run(scenario())


def test_an_unreachable_bot_gets_the_apology_fallback() -> None:
    async def scenario() -> None:
        async with bridge(VOXGATE_BOT_FALLBACK="apology") as running:
            url = f"{running.ws_url}/v1/streams/twilio"
            params = {"wss_url": "ws://127.0.0.1:9/nobody-listens"}
            async with CarrierEmulator(url, "twilio", custom_parameters=params) as carrier:
                await carrier.wait_for_close(timeout=5)
                heard = decode(carrier.received_audio(), PCMU_8K)
        assert len(heard) >= 8000  # the special information tone, about 1.5 s
        spectrum = np.abs(np.fft.rfft(heard[:2640].astype(np.float64)))
        assert abs(np.argmax(spectrum) * 8000 / 2640 - 913.8) < 10

    run(scenario())


def test_unauthenticated_streams_are_refused() -> None:
    async def scenario() -> None:
        async with bridge(VOXGATE_TOKEN="s3cret") as running:
            base = f"{running.ws_url}/v1/streams"
            for url, headers in (
                (f"{base}/telnyx", {}),
                (f"{base}/telnyx?token=wrong", {}),
                (f"{base}/twilio", {"x-telnyx-streaming-auth-token": "nope"}),
            ):
                with pytest.raises(Exception, match="403"):
                    await CarrierEmulator(url, "telnyx", headers=headers).connect()
            for url, headers in (
                (f"{base}/telnyx?token=s3cret", {}),
                (f"{base}/telnyx", {"x-telnyx-streaming-auth-token": "s3cret"}),
            ):
                carrier = CarrierEmulator(url, "telnyx", headers=headers)
                await carrier.connect()
                await carrier.send_audio(_noise_codes(0.1))
                await carrier.wait_for_audio(800, timeout=5)
                await carrier.hang_up()
            assert await metric(running, "voxgate_streams_refused") == 3

    run(scenario())


def test_twilio_signature_is_checked_when_the_auth_token_is_set() -> None:
    async def scenario() -> None:
        async with bridge(VOXGATE_TWILIO_AUTH_TOKEN="tw-token") as running:
            url = f"{running.ws_url}/v1/streams/twilio"
            with pytest.raises(Exception, match="403"):
                await CarrierEmulator(url, "twilio", twilio_auth_token="forged").connect()
            carrier = CarrierEmulator(url, "twilio", twilio_auth_token="tw-token")
            await carrier.connect()
            await carrier.send_audio(_noise_codes(0.1))
            await carrier.wait_for_audio(800, timeout=5)
            await carrier.hang_up()

    run(scenario())


def test_bad_carrier_input_is_counted_and_the_call_survives() -> None:
    async def scenario() -> None:
        async with bridge() as running:
            url = f"{running.ws_url}/v1/streams/twilio"
            async with CarrierEmulator(url, "twilio") as carrier:
                for bad in (
                    "{not json",
                    '{"event":"teleport"}',
                    f'{{"event":"media","streamSid":"{carrier.stream_id}","sequenceNumber":"9",'
                    '"media":{"track":"inbound","chunk":"9","timestamp":"1","payload":"%%%"}}',
                    '{"event":"media","streamSid":"MZother","sequenceNumber":"9",'
                    '"media":{"track":"inbound","chunk":"9","timestamp":"1","payload":"AAAA"}}',
                    "x" * (300 * 1024),
                    b"\x00\x01binary",
                ):
                    await carrier.send_raw(bad)
                audio = _noise_codes(0.5)
                await carrier.send_audio(audio)
                received = await carrier.wait_for_audio(len(audio), timeout=5)
                assert received[: len(audio)] == audio  # the call survived all of it
                await carrier.hang_up()
            errors = await metric(running, "voxgate_protocol_errors{")
            assert errors >= 6

    run(scenario())


def test_bad_bot_input_gets_error_events_and_the_call_survives() -> None:
    async def scenario() -> None:
        async with bridge() as running, ScriptedBot() as bot:
            url = f"{running.ws_url}/v1/streams/twilio"
            params = {"wss_url": bot.url}
            async with CarrierEmulator(url, "twilio", custom_parameters=params) as carrier:
                connection = await bot.connection()
                await connection.wait_for_type("start")
                for bad in (
                    "{not json",
                    '{"type":"teleport"}',
                    '{"type":"response.audio.delta","audio":"%%%"}',
                    '{"type":"mark"}',
                ):
                    await connection.send(bad)
                errors = await connection.wait_for_type("error", count=4, timeout=5)
                codes = [error["code"] for error in errors]
                assert codes[:4] == [
                    "malformed_json",
                    "unknown_event",
                    "bad_audio",
                    "missing_field",
                ]
                await connection.send_audio(_noise_codes(0.2))
                await carrier.wait_for_audio(1600, timeout=5)
                # Over 256 KiB: an error event, then the socket is closed with 1009
                # (message too big) and the call reconnects to the bot.
                await connection.send('{"type":"transcript","text":"' + "A" * (300 * 1024) + '"}')
                await connection.wait_for(connection.closed.is_set)
                assert connection.of_type("error")[-1]["code"] == "message_too_large"
                assert connection.close_code == 1009
                again = await bot.connection(1, timeout=3)
                (start,) = await again.wait_for_type("start")
                assert start["reconnected"] is True
                # A binary frame in JSON transport: 1003 (unsupported data), and reconnect.
                await again.send(b"\x00\x01")
                await again.wait_for(again.closed.is_set)
                assert again.close_code == 1003
                third = await bot.connection(2, timeout=3)
                await third.wait_for_type("start")
                await third.send_audio(_noise_codes(0.2, seed=9))
                await carrier.wait_for_audio(3200, timeout=5)
                assert running.bridge.sessions  # the call is still up
                await carrier.hang_up()
            assert (
                await metric(running, 'voxgate_protocol_errors{code="unknown_event",side="bot"}')
                == 1
            )

    run(scenario())


def test_audio_before_start_is_refused_and_counted() -> None:
    async def scenario() -> None:
        async with bridge() as running:
            url = f"{running.ws_url}/v1/streams/telnyx"
            carrier_media = (
                '{"event":"media","sequence_number":"1","stream_id":"x",'
                '"media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"AAAA"}}'
            )
            async with connect(url) as raw:
                await raw.send(carrier_media)
                await asyncio.sleep(0.2)
            assert await metric(running, 'voxgate_protocol_errors{code="not_started"') == 1

    run(scenario())


def test_a_full_bridge_turns_new_streams_away_with_1013() -> None:
    async def scenario() -> None:
        async with bridge(VOXGATE_MAX_CALLS="1") as running:
            url = f"{running.ws_url}/v1/streams/twilio"
            async with CarrierEmulator(url, "twilio") as first:
                await first.send_audio(_noise_codes(0.1))
                await first.wait_for_audio(800, timeout=5)
                started = time.monotonic()
                async with CarrierEmulator(url, "twilio") as second:
                    assert await second.wait_for_close(timeout=5) == 1013
                # refused, its socket read again: the close handshake ends at once, not
                # after the close timeout (1 s)
                assert time.monotonic() - started < 0.8
                await first.send_audio(_noise_codes(0.1, seed=5))
                await first.wait_for_audio(1600, timeout=5)  # the call under way is untouched
                await first.hang_up()
            assert (
                await metric(running, 'voxgate_streams_refused{carrier="twilio",why="full"}') == 1
            )

    run(scenario())


def test_a_caller_that_vanishes_without_stop_still_ends_the_bot_session() -> None:
    async def scenario() -> None:
        async with scripted_call("telnyx") as (running, carrier, connection):
            carrier._connection().transport.abort()  # the carrier's TCP connection just dies
            async with asyncio.timeout(1.0):
                await connection.closed.wait()
            assert connection.of_type("stop") == [{"type": "stop", "reason": "caller_hangup"}]
            await asyncio.sleep(0.05)
            assert not running.bridge.sessions

    run(scenario())


def test_a_bot_that_never_answers_the_handshake_gets_the_fallback() -> None:
    async def scenario() -> None:
        silent: list[asyncio.StreamWriter] = []

        async def accept_and_say_nothing(
            _: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            silent.append(writer)

        server = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with bridge(VOXGATE_BOT_CONNECT_TIMEOUT="0.5") as running:
                url = f"{running.ws_url}/v1/streams/twilio"
                params = {"wss_url": f"ws://127.0.0.1:{port}/"}
                started = time.monotonic()
                async with CarrierEmulator(url, "twilio", custom_parameters=params) as carrier:
                    await carrier.wait_for_close(timeout=5)
                assert time.monotonic() - started < 2.0
                assert await metric(running, 'voxgate_calls_ended{reason="bot_unreachable"}') == 1
        finally:
            for writer in silent:
                writer.close()
            server.close()
            await server.wait_closed()

    run(scenario())


def test_one_call_flooding_audio_does_not_disturb_another_calls_pacing() -> None:
    async def scenario() -> None:
        async with (
            ScriptedBot() as bot,
            bridge_process(VOXGATE_BOT_URL=bot.url) as base,
            CarrierEmulator(f"{base}/v1/streams/twilio", "twilio") as busy,
            CarrierEmulator(f"{base}/v1/streams/twilio", "twilio") as calm,
        ):
            flooding, steady = await bot.connection(0), await bot.connection(1)
            await flooding.wait_for_type("start")
            await steady.wait_for_type("start")
            for part in range(8):  # two minutes of audio, as fast as the socket takes it
                await flooding.send_audio(_noise_codes(15.0, seed=part))
            answer = _noise_codes(3.0, seed=99)
            await steady.send_audio(answer)
            received = await calm.wait_for_audio(len(answer), timeout=15)
            assert received == answer  # every frame, in order, bit-exact
            arrivals = calm.media_arrivals()
            assert len(busy.media_arrivals()) > 100  # the flooded call is playing too
            await busy.hang_up()
            await calm.hang_up()
        assert_paced_loosely(arrivals, 150)

    run(scenario(), timeout=40)
