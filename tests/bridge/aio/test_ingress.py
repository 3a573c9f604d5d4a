"""Connections before a call: timeouts, limits, refusals, and the /metrics token."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

import httpx
import pytest
from carrier import CarrierEmulator
from e2e import bridge, unhandled
from scenario import run
from scripted_bot import ScriptedBot
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus


@pytest.fixture(autouse=True)
def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> object:
    caplog.set_level(logging.INFO)
    yield
    assert not unhandled(caplog.records)


async def _close_of(url: str, *messages: str, timeout: float = 5.0) -> tuple[int | None, str]:
    """Open a WebSocket, send ``messages``, and wait for the server to close it."""
    async with connect(url, max_size=2**22, compression=None, ping_interval=None) as ws:
        for message in messages:
            await ws.send(message)
        async with asyncio.timeout(timeout):
            await _drain(ws)
        return ws.close_code, ws.close_reason or ""


async def _drain(ws: ClientConnection) -> None:
    """Read until the socket closes."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            await ws.recv()


def _twilio_start(**custom: str) -> str:
    return json.dumps(
        {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": "MZ" + "0" * 32,
            "start": {
                "streamSid": "MZ" + "0" * 32,
                "callSid": "CA" + "0" * 32,
                "accountSid": "AC" + "0" * 32,
                "tracks": ["inbound"],
                "customParameters": custom,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }
    )


def test_a_stream_without_start_is_closed_after_the_start_timeout() -> None:
    async def scenario() -> None:
        async with bridge(VOXGATE_START_TIMEOUT="0.3") as running:
            started = time.monotonic()
            code, reason = await _close_of(f"{running.ws_url}/v1/streams/twilio")
            assert code == 1008
            assert "start" in reason
            assert 0.25 <= time.monotonic() - started < 3.0

    run(scenario())


def test_too_many_streams_without_start_are_turned_away_with_1013() -> None:
    async def scenario() -> None:
        async with bridge(VOXGATE_MAX_PENDING="2", VOXGATE_START_TIMEOUT="3") as running:
            url = f"{running.ws_url}/v1/streams/twilio"
            waiting = [await connect(url, ping_interval=None) for _ in range(2)]
            code, _reason = await _close_of(url)
            assert code == 1013
            for ws in waiting:
                await ws.close()
            await asyncio.sleep(0.1)
            assert running.bridge.pending == 0

    run(scenario())


def test_a_start_over_the_size_limit_closes_the_stream() -> None:
    async def scenario() -> None:
        async with bridge() as running:
            huge = _twilio_start(padding="x" * 300_000)
            code, _reason = await _close_of(f"{running.ws_url}/v1/streams/twilio", huge)
            assert code == 1009

    run(scenario())


def test_a_non_ascii_token_is_refused_with_403_not_500() -> None:
    async def scenario() -> None:
        async with bridge(VOXGATE_TOKEN="s3cret") as running:
            url = f"{running.ws_url}/v1/streams/telnyx?token=%C3%A9t%C3%A9"
            with pytest.raises(InvalidStatus) as refused:
                await connect(url)
            assert refused.value.response.status_code == 403

    run(scenario())


def test_a_malformed_wss_header_is_refused_without_echoing_it() -> None:
    async def scenario() -> None:
        async with bridge() as running:
            start = _twilio_start(wss_header="Authorization Bearer S3CRET-HEADER")
            code, reason = await _close_of(f"{running.ws_url}/v1/streams/twilio", start)
            assert code == 1008
            assert "wss_header" in reason
            assert "S3CRET" not in reason

    run(scenario())


def test_metrics_need_the_token_when_one_is_set() -> None:
    async def scenario() -> None:
        env = {"VOXGATE_TOKEN": "tok-1", "VOXGATE_METRICS_TOKEN": "m-2"}
        async with bridge(**env) as running, httpx.AsyncClient() as client:
            url = f"{running.base_url}/metrics"
            assert (await client.get(url)).status_code == 401
            assert (await client.get(url, params={"token": "tok-1"})).status_code == 401
            answer = await client.get(url, headers={"Authorization": "Bearer m-2"})
            assert answer.status_code == 200
            assert "voxgate_metrics_refused 2" in answer.text
            assert (await client.get(f"{running.base_url}/healthz")).status_code == 200

    run(scenario())


def test_slow_and_silent_connections_are_closed_after_the_handshake_timeout() -> None:
    async def silent(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await reader.read() == b""  # closed by voxgate
        writer.close()

    async def slowloris(port: int) -> None:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = b"GET /v1/streams/twilio HTTP/1.1\r\nHost: x\r\n"
        with contextlib.suppress(ConnectionError):  # closed by voxgate: the test passes
            for byte in request:  # one byte every 100 ms: never a whole request head
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.1)
            raise AssertionError("voxgate waited for the whole request head")
        writer.close()

    async def scenario() -> None:
        async with bridge(VOXGATE_HANDSHAKE_TIMEOUT="0.3") as running:
            started = time.monotonic()
            async with asyncio.timeout(3):
                await asyncio.gather(silent(running.port), slowloris(running.port))
            assert time.monotonic() - started < 3.0
            async with httpx.AsyncClient() as client:  # a prompt request still works
                assert (await client.get(f"{running.base_url}/healthz")).status_code == 200

    run(scenario())


def test_a_per_call_bot_on_a_private_address_is_refused_when_so_configured() -> None:
    async def scenario() -> None:
        async with ScriptedBot() as bot, bridge(VOXGATE_BOT_PRIVATE_TARGETS="deny") as running:
            url = f"{running.ws_url}/v1/streams/twilio"
            params = {"wss_url": bot.url.replace("ws://", "ws://user:S3CRET@")}
            async with CarrierEmulator(url, "twilio", custom_parameters=params) as carrier:
                code = await carrier.wait_for_close(timeout=5)
            assert code == 1008
            assert "S3CRET" not in (carrier.close_reason or "")
            assert not bot.connections

    run(scenario())


def test_an_allowed_pattern_lets_a_per_call_bot_on_a_private_address_through() -> None:
    async def scenario() -> None:
        env = {"VOXGATE_BOT_PRIVATE_TARGETS": "deny", "VOXGATE_BOT_ALLOW": "127.0.0.1"}
        async with ScriptedBot() as bot, bridge(**env) as running:
            url = f"{running.ws_url}/v1/streams/twilio"
            params = {"wss_url": bot.url}
            async with CarrierEmulator(url, "twilio", custom_parameters=params) as carrier:
                connection = await bot.connection()
                await connection.wait_for_type("start")
                await carrier.hang_up()

    run(scenario())


def test_streams_and_http_share_the_port_however_the_first_bytes_are_cut() -> None:
    """The server tells a carrier stream from an HTTP request by the request line's
    first bytes, even when they come a few at a time; the rest is picows' or uvicorn's."""

    async def upgrade(port: int, path: str, pieces: list[int]) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = (
            f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        at = 0
        for size in [*pieces, len(request)]:
            writer.write(request[at : at + size])
            await writer.drain()
            await asyncio.sleep(0.02)
            at += size
        status = await reader.readline()
        writer.close()
        return status

    async def scenario() -> None:
        async with bridge() as running:
            port = running.port
            for pieces in ([1], [3, 5], [15], [16], [17]):
                status = await upgrade(port, "/v1/streams/twilio", pieces)
                assert status.startswith(b"HTTP/1.1 101"), (pieces, status)
            assert (await upgrade(port, "/v1/streams/nobody", [])).startswith(b"HTTP/1.1 404")
            assert (await upgrade(port, "/v1/other", [4])).startswith(b"HTTP/1.1 404")
            async with httpx.AsyncClient() as client:
                assert (await client.get(f"{running.base_url}/healthz")).status_code == 200
                # the same connection, kept alive, and no upgrade this time
                bad = await client.get(f"{running.base_url}/v1/streams/twilio")
                assert bad.status_code == 400

    run(scenario())


def test_a_stream_head_that_stalls_after_its_first_bytes_is_closed_in_time() -> None:
    async def scenario() -> None:
        async with bridge(VOXGATE_HANDSHAKE_TIMEOUT="0.3") as running:
            reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
            writer.write(b"GET /v1/streams/twilio HTTP/1.1\r\nHost: x\r\n")  # and no more
            started = time.monotonic()
            async with asyncio.timeout(3):
                assert await reader.read() == b""
            assert time.monotonic() - started < 2.0
            writer.close()

    run(scenario())
