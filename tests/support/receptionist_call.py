"""The receptionist bot's calls for its end-to-end tests: the set-up, and what the caller
hears, says and does (shared by tests/bots/test_receptionist.py and
test_receptionist_voicemail.py).

The bot is served by the SDK (``serve_bot``), voxgate runs in-process
(``running_bridge``) with the carriers' REST APIs played by the stand-in, and a Twilio
media stream (Telnyx or Plivo where a test says so) is played by the carrier emulator.
The emulator plays voxgate's audio out in real time, while the caller's line sends 20 ms
frames of silence, or of speech (a prompt WAV), as a carrier does. A barge-in is the
carrier getting voxgate's ``clear``, timed from just before the key or the first frame of
speech left the emulator to the clear's arrival there.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Self

import numpy as np
import pytest
from carrier import CarrierDialect, CarrierEmulator, MediaFrame
from rest_standin import (
    PLIVO_AUTH_ID,
    PLIVO_AUTH_TOKEN,
    TELNYX_API_KEY,
    TWILIO_ACCOUNT_SID,
    TWILIO_AUTH_TOKEN,
    RestStandIn,
)
from websockets.exceptions import ConnectionClosed

from voxgate.bots import receptionist
from voxgate.bots.sdk import load_audio, serve_bot, to_format
from voxgate.bots.sdk.runner import default_options
from voxgate.bridge.aio.server import running_bridge
from voxgate.codecs.formats import AudioFormat, Encoding
from voxgate.codecs.g711 import ulaw_decode
from voxgate.config import load_config

PROMPTS = Path(receptionist.__file__).parent / "prompts"
PCMU = AudioFormat(Encoding.PCMU, 8000)
RATE = 8000
FRAME = 160  # 20 ms of PCMU
FRAME_S = 0.020
SILENCE = b"\xff"  # mu-law's zero
QUIET = SILENCE * FRAME
BARGE_IN_S = 0.040  # from the key, or the first frame of speech, to Twilio's clear
TIMEOUT = 5.0
NO_INPUT = 1.0
ONSET_DBFS = -30.0


# --- what the caller hears and says ----------------------------------------------------------


def prompt(name: str) -> bytes:
    """A prompt as the caller hears it: its WAV in the call's format (PCMU at 8 kHz)."""
    samples, rate = load_audio(PROMPTS / f"{name}.wav")
    return to_format(samples, rate, PCMU)


def seconds(audio: bytes) -> float:
    return len(audio) / RATE


def speech(name: str, duration: float) -> bytes:
    """``duration`` s of a prompt as the caller's speech, from its first loud frame (at
    least -30 dBFS: a vowel, which the bot's voice-activity detector cannot miss even once
    it has adapted to earlier speech; a soft consonant can take it 100 ms)."""
    audio = prompt(name)
    levels = frame_levels(audio)
    onset = next(i for i, level in enumerate(levels) if level >= ONSET_DBFS) * FRAME
    return audio[onset : onset + round(duration * RATE)]


def frame_levels(audio: bytes) -> list[float]:
    """The level of each 20 ms frame of PCMU ``audio``, in dBFS."""
    samples = ulaw_decode(audio).astype(np.float64) / 32768
    frames = samples[: len(samples) // FRAME * FRAME].reshape(-1, FRAME)
    return list(10 * np.log10(np.maximum(np.mean(frames**2, axis=1), 1e-12)))


def frames_since(stream: CarrierEmulator, clears: int) -> list[MediaFrame]:
    """The audio frames the carrier received after its ``clears``-th clear and before the
    next (0: before the first)."""
    frames: list[MediaFrame] = []
    seen = media = 0
    for event in stream.events:
        if event.get("event") in ("clear", "clearAudio"):  # Plivo's names second
            seen += 1
        elif event.get("event") in ("media", "playAudio"):
            if seen == clears:
                frames.append(stream.media[media])
            media += 1
    return frames


def heard_since(stream: CarrierEmulator, clears: int) -> bytes:
    return b"".join(frame.payload for frame in frames_since(stream, clears))


def framed(audio: bytes) -> bytes:
    """``audio`` played to its end: voxgate completes its last 20 ms frame with silence."""
    return audio + SILENCE * (-len(audio) % FRAME)


# --- the caller's actions, timed ---------------------------------------------------------------


async def press(stream: CarrierEmulator, digit: str) -> float:
    """Press ``digit``; the seconds until the carrier got voxgate's clear."""
    clears = len(stream.clears)
    sent_at = time.monotonic()
    await stream.send_dtmf(digit)
    await stream.wait_for(lambda: len(stream.clears) > clears, TIMEOUT)
    return stream.clears[clears] - sent_at


async def talk_over(stream: CarrierEmulator, line: CallerLine, audio: bytes) -> float:
    """Say ``audio``; the seconds from its first frame to the carrier getting the clear."""
    clears = len(stream.clears)
    onset = await line.say(audio)
    await stream.wait_for(lambda: len(stream.clears) > clears, TIMEOUT)
    return stream.clears[clears] - onset


class CallerLine:
    """The caller's side of the line: a 20 ms frame every 20 ms, as a carrier sends them,
    silence unless the caller is talking."""

    def __init__(self, stream: CarrierEmulator) -> None:
        self.stream = stream
        self._frames: deque[tuple[bytes, asyncio.Future[float] | None]] = deque()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._send(), name="caller-line")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def say(self, audio: bytes) -> float:
        """Talk: ``audio`` goes out in the next frames; when its first frame was sent."""
        onset: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        frames = [audio[i : i + FRAME] for i in range(0, len(audio), FRAME)]
        self._frames.append((frames[0], onset))
        self._frames.extend((frame, None) for frame in frames[1:])
        return await onset

    async def said(self) -> None:
        """Wait until everything said has been sent."""
        await until(lambda: not self._frames, len(self._frames) * FRAME_S + TIMEOUT)

    async def hang_up(self) -> None:
        await self.stop()
        await self.stream.hang_up()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=TIMEOUT)

    async def _send(self) -> None:
        due = time.monotonic()
        with contextlib.suppress(ConnectionClosed):
            while not self.stream.closed.is_set():
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                frame, onset = self._frames.popleft() if self._frames else (QUIET, None)
                if onset is not None:
                    onset.set_result(time.monotonic())
                await self.stream.send_audio(frame, paced=False)
                due += FRAME_S


# --- the set-up ----------------------------------------------------------------------------


@asynccontextmanager
async def call(
    carrier: CarrierDialect = "twilio", /, **options: Any
) -> AsyncIterator[tuple[CarrierEmulator, CallerLine, RestStandIn]]:
    """A call from ``carrier`` to the receptionist (``--no-input`` 1 s unless given), the
    caller's line sending; at the end no task of the call is left."""
    before = asyncio.all_tasks()
    opts = default_options(receptionist, **{"no_input": NO_INPUT, **options})
    server = await serve_bot(receptionist.handle, "127.0.0.1", 0, options=opts)
    bot_url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        async with RestStandIn() as rest:
            env = {
                "VOXGATE_LOG_FORMAT": "text",
                "VOXGATE_TWILIO_ACCOUNT_SID": TWILIO_ACCOUNT_SID,
                "VOXGATE_TWILIO_AUTH_TOKEN": TWILIO_AUTH_TOKEN,
                "VOXGATE_TWILIO_API_BASE": rest.base_url,
                "VOXGATE_TELNYX_API_KEY": TELNYX_API_KEY,
                "VOXGATE_TELNYX_API_BASE": rest.base_url,
                "VOXGATE_PLIVO_AUTH_ID": PLIVO_AUTH_ID,
                "VOXGATE_PLIVO_AUTH_TOKEN": PLIVO_AUTH_TOKEN,
                "VOXGATE_PLIVO_API_BASE": rest.base_url,
            }
            async with (
                running_bridge(load_config(None, env)) as running,
                CarrierEmulator(
                    f"{running.ws_url}/v1/streams/{carrier}",
                    carrier,
                    custom_parameters={"wss_url": bot_url},
                    twilio_auth_token=TWILIO_AUTH_TOKEN if carrier == "twilio" else None,
                ) as stream,
                CallerLine(stream) as line,
            ):
                yield stream, line, rest
    finally:
        server.close()
        await server.wait_closed()
    assert [task for task in asyncio.all_tasks() - before if not task.done()] == []


async def until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def played(stream: CarrierEmulator, size: int) -> None:
    """Wait until the carrier has received ``size`` bytes of audio, played them out and
    echoed the mark after them: what the caller sends from now on reaches voxgate, and
    the bot, after that mark."""
    await stream.wait_for_audio(size, size / RATE + TIMEOUT)
    last = stream.media[-1].arrival
    await stream.wait_for(lambda: any(echo.at > last for echo in stream.mark_echoes), TIMEOUT)


def over(caplog: pytest.LogCaptureFixture, reason: str) -> Callable[[], bool]:
    """Whether the bot logged that the call is over for ``reason`` (its stop's reason)."""
    line = f"the call is over ({reason})"
    return lambda: any(line in record.getMessage() for record in caplog.records)
