"""The load tester's echo bot, served in the test and spoken to over a real WebSocket as
voxgate speaks to a bot (voxgate.v1 messages made by voxgate's own translator)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np
from scenario import run
from served import free_port
from websockets.asyncio.client import ClientConnection, connect

from voxgate.bridge.botlink.v1 import V1Dialect
from voxgate.bridge.events import AudioSent, DtmfReceived, MediaReceived, StreamStarted
from voxgate.codecs.dtmf import DtmfDetector
from voxgate.codecs.formats import PCMU_8K, AudioFormat, Encoding, decode, encode
from voxgate.loadtest.echobot import serve

WAIT = 5.0
PCM16_16K = AudioFormat(Encoding.PCM16, 16000)


class Voxgate:
    """The bridge's side of one bot socket."""

    def __init__(self, socket: ClientConnection, fmt: AudioFormat) -> None:
        self.socket = socket
        self.format = fmt
        self.dialect = V1Dialect()

    async def start(self) -> None:
        started = StreamStarted(stream_id="MZ1", call_id="CA1", media_format=self.format)
        await self._send(self.dialect.format_upstream(started))

    async def media(self, audio: bytes) -> None:
        await self._send(self.dialect.format_upstream(MediaReceived(audio)))

    async def dtmf(self, digit: str) -> None:
        await self._send(self.dialect.format_upstream(DtmfReceived(digit, method="rfc4733")))

    async def echo(self) -> bytes:
        message = await asyncio.wait_for(self.socket.recv(), WAIT)
        assert isinstance(message, str) and '"response.audio.delta"' in message, message
        event = self.dialect.parse_downstream(message)
        assert isinstance(event, AudioSent)
        return event.payload

    async def _send(self, message: str | bytes | None) -> None:
        assert message is not None
        await self.socket.send(message)


@asynccontextmanager
async def echo_bot(
    fmt: AudioFormat = PCMU_8K, *, delay: float = 0.0, drop_every: int = 0
) -> AsyncIterator[Voxgate]:
    server = await serve("127.0.0.1", 0, delay=delay, drop_every=drop_every)
    port = server.sockets[0].getsockname()[1]
    try:
        async with connect(f"ws://127.0.0.1:{port}/", open_timeout=WAIT) as socket:
            bridge = Voxgate(socket, fmt)
            await bridge.start()
            yield bridge
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), WAIT)


def _frame(n: int, fmt: AudioFormat = PCMU_8K) -> bytes:
    """20 ms of a quiet tone whose level tells the frames apart."""
    samples = fmt.samples_per(20)
    t = np.arange(samples) / fmt.sample_rate
    return encode((200 * (1 + n % 7) * np.sin(2 * np.pi * 500 * t)).astype(np.int16), fmt)


def test_each_frame_comes_back_as_it_was_sent() -> None:
    async def scenario() -> None:
        async with echo_bot() as bridge:
            for n in range(5):
                await bridge.media(_frame(n))
                assert await bridge.echo() == _frame(n)

    run(scenario())


def _tone_then_echo(fmt: AudioFormat) -> None:
    async def scenario() -> None:
        async with echo_bot(fmt) as bridge:
            await bridge.dtmf("7")
            frames = [_frame(n, fmt) for n in range(8)]
            echoes = []
            for frame in frames:
                await bridge.media(frame)
                echoes.append(await bridge.echo())
        assert [len(echo) for echo in echoes] == [len(frame) for frame in frames]
        assert echoes[5:] == frames[5:], "the echo resumes after 100 ms of tone"
        assert all(echo != frame for echo, frame in zip(echoes[:5], frames, strict=False))
        detector = DtmfDetector(sample_rate=fmt.sample_rate)
        heard = detector.feed(decode(b"".join(echoes), fmt)) + detector.flush()
        assert [digit.digit for digit in heard] == ["7"]
        assert heard[0].start < fmt.samples_per(20)

    run(scenario())


def test_a_key_turns_the_next_100_ms_of_echo_into_its_tone() -> None:
    _tone_then_echo(PCMU_8K)


def test_a_key_on_a_pcm16_16khz_stream_is_a_16khz_tone() -> None:
    _tone_then_echo(PCM16_16K)


def test_drop_every_leaves_out_every_nth_frame() -> None:
    async def scenario() -> None:
        async with echo_bot(drop_every=5) as bridge:
            frames = [bytes([n]) * 160 for n in range(1, 12)]
            for frame in frames:
                await bridge.media(frame)
            echoes = [await bridge.echo() for _ in range(9)]
        # the 11th frame's echo came, so the 5th and the 10th were not sent before it
        assert [echo[0] for echo in echoes] == [1, 2, 3, 4, 6, 7, 8, 9, 11]

    run(scenario())


def test_delay_holds_each_echo_back() -> None:
    async def scenario() -> None:
        async with echo_bot(delay=0.2) as bridge:
            sent_at = time.monotonic()
            await bridge.media(_frame(1))
            await bridge.media(_frame(2))
            assert await bridge.echo() == _frame(1)
            first = time.monotonic() - sent_at
            assert await bridge.echo() == _frame(2)
        assert 0.2 <= first < 0.2 + WAIT

    run(scenario())


def test_a_close_from_voxgate_is_answered() -> None:
    async def scenario() -> None:
        async with echo_bot() as bridge:
            began = time.monotonic()
            await asyncio.wait_for(bridge.socket.close(1000, "call ended"), WAIT)
            assert time.monotonic() - began < 2.0, "closed by the bot, not by a time-out"
            assert bridge.socket.close_code == 1000

    run(scenario())


def test_the_module_runs_and_explains_itself() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "voxgate.loadtest.echobot", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--drop-every" in done.stdout and "--delay-ms" in done.stdout


def test_a_stop_signal_closes_every_call_as_going_away_and_exits() -> None:
    """A bot process asked to stop says so on each open socket (1001) and ends: a socket
    left open kept the server, and the process, waiting for ever."""

    async def scenario() -> None:
        port = free_port()
        argv = [sys.executable, "-m", "voxgate.loadtest.echobot", "--port", str(port)]
        process = subprocess.Popen(argv)
        try:
            for _ in range(400):
                try:
                    socket = await connect(f"ws://127.0.0.1:{port}/", open_timeout=WAIT)
                    break
                except OSError:
                    await asyncio.sleep(0.05)
            async with socket:
                bridge = Voxgate(socket, PCMU_8K)
                await bridge.start()
                await bridge.media(_frame(1))
                assert await bridge.echo() == _frame(1)
                process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(socket.wait_closed(), WAIT)
                assert socket.close_code == 1001
            assert await asyncio.to_thread(process.wait, 10) == 0
        finally:
            process.kill()
            process.wait()

    run(scenario())
