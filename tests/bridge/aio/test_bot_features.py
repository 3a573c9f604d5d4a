"""Bot-facing features end to end: dialects, transports, headers, routes, transfer, hangup."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from carrier import CarrierEmulator
from e2e import bridge, scripted_call, unhandled
from rest_standin import (
    PLIVO_AUTH_ID,
    PLIVO_AUTH_TOKEN,
    TELNYX_API_KEY,
    TWILIO_ACCOUNT_SID,
    TWILIO_AUTH_TOKEN,
    RestStandIn,
)
from scenario import run
from scripted_bot import ScriptedBot

from voxgate.bridge import botlink

SCHEMA = json.loads((Path(botlink.__file__).parent / "schema.json").read_text())


def _codes(seconds: float, seed: int = 4) -> bytes:
    return (
        np.random.default_rng(seed).integers(0, 256, int(8000 * seconds), dtype=np.uint8).tobytes()
    )


@pytest.fixture(autouse=True)
def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level("INFO")
    yield
    assert unhandled(caplog.records) == []


def test_every_message_the_bot_gets_matches_the_schema_and_headers_arrive() -> None:
    async def scenario() -> None:
        async with bridge() as running, ScriptedBot() as bot:
            url = f"{running.ws_url}/v1/streams/telnyx"
            params = {
                "wss_url": bot.url,
                "wss_header": "Authorization: Bearer bot-secret",
                "customer": "42",
            }
            async with CarrierEmulator(url, "telnyx", custom_parameters=params) as carrier:
                connection = await bot.connection()
                await carrier.send_audio(_codes(0.2))
                await carrier.send_dtmf("9")
                await connection.wait_for_type("dtmf")
                await connection.send({"type": "mark", "name": "m"})
                await connection.wait_for_type("mark")
                await carrier.hang_up()
                await connection.wait_for_type("stop")
        assert connection.headers is not None
        assert connection.headers["Authorization"] == "Bearer bot-secret"
        assert connection.subprotocol == "voxgate.v1"
        (start,) = connection.of_type("start")
        assert start["custom_parameters"] == {"customer": "42"}  # voxgate's own keys stay home
        assert start["carrier"]["name"] == "telnyx"
        validator = jsonschema.Draft202012Validator(SCHEMA)
        for _, message in connection.messages:
            assert isinstance(message, dict)
            validator.validate(message)

    run(scenario())


def test_binary_transport_when_the_bot_chooses_it() -> None:
    async def scenario() -> None:
        async with bridge() as running, ScriptedBot(prefer_binary=True) as bot:
            url = f"{running.ws_url}/v1/streams/twilio"
            async with CarrierEmulator(
                url, "twilio", custom_parameters={"wss_url": bot.url}
            ) as carrier:
                connection = await bot.connection()
                (start,) = await connection.wait_for_type("start")
                assert start["audio_transport"] == "binary"
                audio = _codes(0.4)
                await carrier.send_audio(audio)
                await connection.wait_for(lambda: len(connection.audio()) >= len(audio))
                assert all(isinstance(m, bytes) for _, m in connection.messages[1:9])
                assert connection.audio() == audio
                await connection.send(audio[:800])  # binary audio back
                await carrier.wait_for_audio(800, timeout=5)
                assert carrier.received_audio()[:800] == audio[:800]
                await carrier.hang_up()

    run(scenario())


def test_a_bot_written_for_twilio_works_unchanged() -> None:
    """With bot_dialect=twilio the bot sees exactly what Twilio would send it."""

    async def scenario() -> None:
        async with bridge() as running, ScriptedBot(subprotocols=()) as bot:
            url = f"{running.ws_url}/v1/streams/telnyx"
            params = {"wss_url": bot.url, "bot_dialect": "twilio"}
            async with CarrierEmulator(url, "telnyx", custom_parameters=params) as carrier:
                connection = await bot.connection()
                await connection.wait_for(lambda: len(connection.messages) >= 2)
                connected, start = (m for _, m in connection.messages[:2])
                assert isinstance(connected, dict) and connected["event"] == "connected"
                assert isinstance(start, dict) and start["event"] == "start"
                stream_sid = start["start"]["streamSid"]
                assert start["start"]["mediaFormat"]["encoding"] == "audio/x-mulaw"
                audio = _codes(0.2)
                await carrier.send_audio(audio)
                await connection.wait_for(
                    lambda: (
                        sum(
                            isinstance(m, dict) and m.get("event") == "media"
                            for _, m in connection.messages
                        )
                        >= 10
                    )
                )
                media = [
                    m
                    for _, m in connection.messages
                    if isinstance(m, dict) and m.get("event") == "media"
                ]
                assert b"".join(base64.b64decode(m["media"]["payload"]) for m in media) == audio
                reply = base64.b64encode(audio[:1600]).decode()
                await connection.send(
                    {"event": "media", "streamSid": stream_sid, "media": {"payload": reply}}
                )
                await connection.send(
                    {"event": "mark", "streamSid": stream_sid, "mark": {"name": "tw"}}
                )
                await carrier.wait_for_audio(1600, timeout=5)
                await connection.wait_for(
                    lambda: any(
                        isinstance(m, dict) and m.get("event") == "mark"
                        for _, m in connection.messages
                    )
                )
                await carrier.hang_up()
                await connection.wait_for(connection.closed.is_set)

    run(scenario())


def test_route_table_picks_the_bot_by_called_number(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with ScriptedBot() as routed:
            config = tmp_path / "voxgate.toml"
            config.write_text(f'[routes."+15550002222"]\nurl = "{routed.url}"\n')
            async with bridge(VOXGATE_CONFIG=str(config)) as running:
                url = f"{running.ws_url}/v1/streams/telnyx"
                async with CarrierEmulator(url, "telnyx", to_number="+15550002222") as carrier:
                    connection = await routed.connection()
                    (start,) = await connection.wait_for_type("start")
                    assert start["to"] == "+15550002222"
                    await carrier.hang_up()

    run(scenario())


@pytest.mark.parametrize("carrier_name", ["twilio", "telnyx"])
def test_transfer_goes_through_the_carrier_rest_api(carrier_name: str) -> None:
    async def scenario() -> None:
        async with RestStandIn() as standin, ScriptedBot() as bot:
            env = {
                "twilio": {
                    "VOXGATE_TWILIO_ACCOUNT_SID": TWILIO_ACCOUNT_SID,
                    "VOXGATE_TWILIO_AUTH_TOKEN": TWILIO_AUTH_TOKEN,
                    "VOXGATE_TWILIO_API_BASE": standin.base_url,
                },
                "telnyx": {
                    "VOXGATE_TELNYX_API_KEY": TELNYX_API_KEY,
                    "VOXGATE_TELNYX_API_BASE": standin.base_url,
                },
            }[carrier_name]
            async with bridge(**env) as running:
                url = f"{running.ws_url}/v1/streams/{carrier_name}"
                signing = TWILIO_AUTH_TOKEN if carrier_name == "twilio" else None
                async with CarrierEmulator(
                    url,
                    carrier_name,  # type: ignore[arg-type]
                    custom_parameters={"wss_url": bot.url},
                    twilio_auth_token=signing,
                ) as carrier:
                    connection = await bot.connection()
                    await connection.wait_for_type("start")
                    await connection.send({"type": "session.transfer", "target": "+15550003333"})
                    async with asyncio.timeout(5):
                        while not standin.accepted("transfer"):
                            await asyncio.sleep(0.02)
                    (request,) = standin.accepted("transfer")
                    assert request.call_id == carrier.call_id
                    assert request.target == "+15550003333"
                    await carrier.hang_up()  # the carrier ends the stream once the call moves
                    (stop,) = await connection.wait_for_type("stop")
                    assert stop["reason"] == "transferred"

    run(scenario())


def test_plivo_hangs_up_by_rest_and_says_it_cannot_transfer() -> None:
    """Plivo moves a call only by fetching Plivo XML from a URL voxgate does not serve."""

    async def scenario() -> None:
        async with RestStandIn() as standin, ScriptedBot() as bot:
            env = {
                "VOXGATE_PLIVO_AUTH_ID": PLIVO_AUTH_ID,
                "VOXGATE_PLIVO_AUTH_TOKEN": PLIVO_AUTH_TOKEN,
                "VOXGATE_PLIVO_API_BASE": standin.base_url,
                "VOXGATE_MAX_HANGUP_WAIT": "1",
            }
            async with bridge(**env) as running:
                url = f"{running.ws_url}/v1/streams/plivo"
                params = {"wss_url": bot.url}
                async with CarrierEmulator(url, "plivo", custom_parameters=params) as carrier:
                    connection = await bot.connection()
                    await connection.wait_for_type("start")
                    await connection.send({"type": "session.transfer", "target": "+15550003333"})
                    (error,) = await connection.wait_for_type("error")
                    assert error["code"] == "transfer_unavailable"
                    await connection.send({"type": "session.hangup"})
                    async with asyncio.timeout(5):
                        while not standin.accepted("hangup"):
                            await asyncio.sleep(0.02)
                    (request,) = standin.accepted("hangup")
                    assert request.call_id == carrier.call_id
                    (stop,) = await connection.wait_for_type("stop")
                    assert stop["reason"] == "bot_hangup"

    run(scenario())


def test_transfer_without_credentials_is_an_error_to_the_bot() -> None:
    async def scenario() -> None:
        async with scripted_call("twilio") as (_, carrier, connection):
            await connection.send({"type": "session.transfer", "target": "+15550003333"})
            (error,) = await connection.wait_for_type("error")
            assert error["code"] == "transfer_unavailable"
            await connection.send_audio(_codes(0.1))
            await carrier.wait_for_audio(800, timeout=5)  # the call goes on
            await carrier.hang_up()

    run(scenario())


def test_bot_hangup_plays_out_then_closes_the_stream_and_hangs_up_by_rest() -> None:
    async def scenario() -> None:
        async with RestStandIn() as standin, ScriptedBot() as bot:
            env = {
                "VOXGATE_TELNYX_API_KEY": TELNYX_API_KEY,
                "VOXGATE_TELNYX_API_BASE": standin.base_url,
            }
            async with bridge(**env) as running:
                url = f"{running.ws_url}/v1/streams/telnyx"
                async with CarrierEmulator(
                    url, "telnyx", custom_parameters={"wss_url": bot.url}
                ) as carrier:
                    connection = await bot.connection()
                    await connection.wait_for_type("start")
                    goodbye = _codes(1.0)
                    await connection.send_audio(goodbye)
                    await connection.send({"type": "session.hangup", "reason": "goodbye said"})
                    await carrier.wait_for_close(timeout=5)
                    assert carrier.received_audio() == goodbye  # every word was heard first
                    (stop,) = await connection.wait_for_type("stop")
                    assert stop["reason"] == "bot_hangup"  # the bot's own text stays out of it
                    async with asyncio.timeout(5):
                        while not standin.accepted("hangup"):
                            await asyncio.sleep(0.02)
                    (request,) = standin.accepted("hangup")
                    assert request.call_id == carrier.call_id

    run(scenario())
