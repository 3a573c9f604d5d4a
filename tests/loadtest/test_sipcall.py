"""The load tester's SIP caller against a real ``voxgate serve`` with SIP, and real bots.

Each test runs the node on a free UDP port (``sip_node``) with the SDK's echo bot or a
:class:`ScriptedBot`, and drives the calls from a plain 20 ms asyncio loop (no grid).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from scenario import run
from scripted_bot import ScriptedBot
from sipp_peer import free_udp_port, sip_node

from voxgate.bots.echo import serve_echo
from voxgate.errors import ConfigError
from voxgate.loadtest.sipcall import SipLoadCall, SipLoadClient, resolve_target

TONE_SECONDS = 2.0
FRAME = 160


class Recorder:
    """A call sink that keeps everything it hears, with the times."""

    def __init__(self) -> None:
        self.answered_at: float | None = None
        self.failures: list[str] = []
        self.endings: list[str] = []
        self.frames: list[NDArray[np.int16]] = []
        self.digits: list[str] = []
        self.changed = asyncio.Event()

    def answered(self, now: float) -> None:
        self.answered_at = now

    def failed(self, reason: str, now: float) -> None:
        self.failures.append(reason)

    def ended(self, reason: str, now: float) -> None:
        self.endings.append(reason)

    def audio_received(self, samples: NDArray[np.int16], now: float) -> None:
        self.frames.append(samples)

    def dtmf_received(self, digit: str, now: float) -> None:
        self.digits.append(digit)
        self.changed.set()

    def loud_frames(self, threshold: float = 1000.0) -> int:
        return sum(_rms(frame) > threshold for frame in self.frames)


def _rms(frame: NDArray[np.int16]) -> float:
    return float(np.sqrt(np.mean(frame.astype(np.float64) ** 2)))


def tone_frames(seconds: float, hz: float = 440.0) -> list[NDArray[np.int16]]:
    t = np.arange(int(8000 * seconds)) / 8000
    tone = (8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)
    return [tone[i : i + FRAME] for i in range(0, len(tone), FRAME)]


async def pace(calls: list[SipLoadCall], frames: list[NDArray[np.int16]]) -> None:
    """Send ``frames`` to every call, one every 20 ms (on an absolute schedule)."""
    start = time.monotonic()
    for index, frame in enumerate(frames):
        for call in calls:
            call.send_audio(frame)
        await asyncio.sleep(max(0.0, start + (index + 1) * 0.02 - time.monotonic()))


async def until(predicate: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


@asynccontextmanager
async def echo_node(tmp: Path, **env: str) -> AsyncIterator[int]:
    echo = await serve_echo("127.0.0.1", 0)
    try:
        url = f"ws://127.0.0.1:{echo.sockets[0].getsockname()[1]}"
        async with sip_node(tmp, VOXGATE_BOT_URL=url, **env) as port:
            yield port
    finally:
        echo.close()
        await echo.wait_closed()


@asynccontextmanager
async def client_for(port: int, **options: str) -> AsyncIterator[SipLoadClient]:
    client = await SipLoadClient.open(f"sip:+15557770000@127.0.0.1:{port}", **options)
    try:
        yield client
    finally:
        await client.close()


def test_three_calls_at_once_hear_their_tone_echoed_and_hang_up(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with echo_node(tmp_path) as port, client_for(port) as client:
            sinks = [Recorder() for _ in range(3)]
            placed = await asyncio.gather(*(client.place(s, answer_timeout=20) for s in sinks))
            calls = [c for c in placed if c is not None]
            assert len(calls) == 3, [s.failures for s in sinks]
            assert client.calls_up == 3
            assert all(s.answered_at is not None for s in sinks)
            await pace(calls, tone_frames(TONE_SECONDS))
            await pace(calls, [np.zeros(FRAME, np.int16)] * 25)  # the echo's tail comes back
            for call in calls[:2]:
                call.hangup()
                assert await call.wait_ended(5)
            assert client.calls_up == 1  # the last one is hung up by close()
        assert all(call.ended for call in calls)
        log = (tmp_path / "serve.log").read_text()
        assert log.count("call ended: caller_hangup") == 3  # voxgate got every BYE
        assert "Traceback" not in log
        sent = int(TONE_SECONDS * 50)
        for sink, call in zip(sinks, calls, strict=True):
            assert sink.endings == ["local_hangup"]
            assert sink.failures == []
            assert 0.7 * sent <= sink.loud_frames() <= 1.2 * sent  # the tone, back
            assert len(sink.frames) >= sent  # voxgate sends silence besides the echo
            assert call.rtp.counts.packets_out == sent + 25
            assert call.rtp.counts.bad_in == 0

    run(scenario(), timeout=120)


def test_a_digit_reaches_the_bot_and_the_bots_digit_and_hangup_reach_the_caller(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with (
            ScriptedBot() as bot,
            sip_node(tmp_path, VOXGATE_BOT_URL=bot.url) as port,
            client_for(port) as client,
        ):
            sink = Recorder()
            call = await client.place(sink, answer_timeout=20)
            assert call is not None, sink.failures
            connection = await bot.connection(timeout=10)
            await connection.wait_for_type("start")
            silence = np.zeros(FRAME, np.int16)
            pacing = asyncio.ensure_future(pace([call], [silence] * 400))
            call.send_dtmf("5")
            dtmf = await connection.wait_for_type("dtmf", timeout=10)
            assert dtmf[0]["digit"] == "5"
            await connection.send({"type": "dtmf.send", "digits": "9"})
            await asyncio.wait_for(sink.changed.wait(), 10)
            for _ in range(5):  # not RTP: counted, nothing breaks
                client_sock_send(call.rtp.port, b"\x00garbage")
            await until(lambda: call.rtp.counts.bad_in == 5, 5)
            await connection.send({"type": "session.hangup"})
            assert await call.wait_ended(10)
            pacing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pacing
        assert len(dtmf) == 1
        assert sink.digits == ["9"]
        assert sink.endings == ["remote_hangup"]

    run(scenario(), timeout=90)


def client_sock_send(port: int, data: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(data, ("127.0.0.1", port))


def test_a_full_node_refuses_the_call_with_503(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with echo_node(tmp_path, VOXGATE_MAX_CALLS="1") as port, client_for(port) as client:
            first = await client.place(Recorder(), answer_timeout=20)
            assert first is not None
            sink = Recorder()
            started = time.monotonic()
            assert await client.place(sink, answer_timeout=20) is None
            took = time.monotonic() - started
            first.hangup()
        assert sink.failures == ["rejected_503"]
        assert sink.answered_at is None
        assert took < 5.0

    with caplog.at_level(logging.INFO, logger="voxgate.loadtest.sip"):
        run(scenario(), timeout=90)
    refused = [r for r in caplog.records if "not answered" in r.getMessage()]
    assert len(refused) == 1
    assert "SIP 503" in refused[0].getMessage()
    assert refused[0].__dict__["call_id"]


def test_nothing_listening_fails_the_call_within_the_answer_timeout() -> None:
    async def scenario() -> None:
        async with client_for(free_udp_port()) as client:
            sink = Recorder()
            started = time.monotonic()
            assert await client.place(sink, answer_timeout=3.0) is None
            took = time.monotonic() - started
        assert sink.failures == ["timeout"]
        assert 2.9 <= took < 6.0

    run(scenario(), timeout=30)


def test_a_call_still_ringing_at_the_answer_timeout_is_cancelled(tmp_path: Path) -> None:
    async def scenario() -> None:
        with socket.socket() as silent:  # a bot that never completes its handshake: voxgate rings
            silent.bind(("127.0.0.1", 0))
            silent.listen()
            url = f"ws://127.0.0.1:{silent.getsockname()[1]}/"
            env = {"VOXGATE_BOT_URL": url, "VOXGATE_BOT_CONNECT_TIMEOUT": "20"}
            async with sip_node(tmp_path, **env) as port, client_for(port) as client:
                sink = Recorder()
                started = time.monotonic()
                assert await client.place(sink, answer_timeout=2.0) is None
                took = time.monotonic() - started
                await until(lambda: client.pending == 0, 10)  # CANCEL, then voxgate's 487
        assert sink.failures == ["timeout"]
        assert 1.9 <= took < 5.0
        assert "caller_hangup" in (tmp_path / "serve.log").read_text()

    run(scenario(), timeout=90)


def test_digest_authentication_with_the_nodes_credentials(tmp_path: Path) -> None:
    env = {"VOXGATE_SIP_USERNAME": "loader", "VOXGATE_SIP_PASSWORD": "s3cret-pass"}

    async def attempt(port: int, **options: str) -> Recorder:
        sink = Recorder()
        async with client_for(port, **options) as client:
            call = await client.place(sink, answer_timeout=20)
            if call is not None:
                call.hangup()
        return sink

    async def scenario() -> None:
        async with echo_node(tmp_path, **env) as port:
            good = await attempt(port, username="loader", password="s3cret-pass")
            wrong = await attempt(port, username="loader", password="nope")
            none = await attempt(port)
        assert good.answered_at is not None and good.endings == ["local_hangup"]
        assert wrong.failures == ["rejected_401"]
        assert none.failures == ["rejected_401"]

    run(scenario(), timeout=90)


def test_a_target_that_is_not_a_sip_uri_is_a_config_error() -> None:
    async def scenario() -> None:
        target = await resolve_target("+15550001111@127.0.0.1")
        assert target.request_uri == "sip:+15550001111@127.0.0.1"
        assert target.address == ("127.0.0.1", 5060)
        for bad in ("sips:127.0.0.1", "sip:", "http://x"):
            with pytest.raises(ConfigError):
                await resolve_target(bad)
        with pytest.raises(ConfigError):
            await SipLoadClient.open("sip:127.0.0.1", codec="opus")

    run(scenario(), timeout=10)
