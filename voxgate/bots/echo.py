"""The echo bot: repeats what the caller says. The first bot to read, written on the SDK.

Every chunk of the caller's audio goes straight back, in the format and transport it came
in (``--delay`` holds it back that many seconds first, like a far echo). After every second
of echoed audio it places a mark ``echo-<n>`` and logs when voxgate reports it played.
Keys: ``#`` hangs up, ``0`` transfers the call to ``--transfer-target``, ``*`` clears the
audio queued for the caller (a barge-in). With ``--dtmf-tones`` it answers every key with that
key's DTMF tone instead (a way to check a phone's keypad end to end), and keys do nothing else.

Run it: ``voxgate bot echo --port 9000`` and point voxgate's ``bot.url`` (or a call's
``wss_url``) at ``ws://127.0.0.1:9000``. ``voxgate bot echo --help`` lists the options.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections import deque
from typing import Final

from websockets.asyncio.server import Server

from voxgate.bots.sdk import Audio, Call, Dtmf, Error, Mark, Stop
from voxgate.bots.sdk.runner import default_options, transfer_target
from voxgate.bots.sdk.server import serve_bot
from voxgate.codecs.dtmf import dtmf_tone

LOG: Final = logging.getLogger(__name__)
DEFAULT_TRANSFER_TARGET: Final = "+15550100000"
CHUNKS_PER_MARK: Final = 50  # 50 chunks of 20 ms = 1 second of audio
MAX_DELAY: Final = 10.0
MAX_HELD: Final = 1000  # chunks held back for --delay: 20 s of 20 ms chunks, twice the most
TONE_MS: Final = 200


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--delay", type=_delay, default=0.0, help="seconds to hold the audio back (0 to 10)"
    )
    parser.add_argument(
        "--dtmf-tones",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="answer each key with its DTMF tone (keys then do nothing else)",
    )
    parser.add_argument(
        "--transfer-target",
        default=DEFAULT_TRANSFER_TARGET,
        type=transfer_target,
        help="where 0 transfers the call (+E.164 or a sip: URI)",
    )


async def handle(call: Call) -> None:
    """Serve one call until it ends."""
    echo = Echo(call)
    try:
        await call.dispatch(echo)
    finally:
        echo.close()


class Echo:
    """What the echo bot does with each event (the SDK calls the ``on_*`` methods)."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.delay: float = call.options.delay
        self.echoed = 0
        self._held: deque[tuple[float, bytes]] = deque(maxlen=MAX_HELD)  # (when, audio)
        self._wake = asyncio.Event()
        self._sender = asyncio.create_task(self._send_held()) if self.delay else None

    async def on_audio(self, event: Audio) -> None:
        if self._sender is None:
            await self._echo(event.data)
        else:
            self._held.append((asyncio.get_running_loop().time() + self.delay, event.data))
            self._wake.set()

    async def on_dtmf(self, event: Dtmf) -> None:
        self.call.log.info("caller pressed %r", event.digit)
        if self.call.options.dtmf_tones:
            rate = self.call.media_format.sample_rate
            await self.call.play(
                dtmf_tone(event.digit, TONE_MS, sample_rate=rate), sample_rate=rate
            )
        elif event.digit == "#":
            await self.call.hangup("caller pressed #")
        elif event.digit == "0":
            self.call.log.info("transferring to %s", self.call.options.transfer_target)
            await self.call.transfer(self.call.options.transfer_target)
        elif event.digit == "*":
            self._held.clear()
            await self.call.clear()

    async def on_error(self, event: Error) -> None:
        self.call.log.warning("voxgate reports %s: %s", event.code, event.message)

    async def on_mark(self, event: Mark) -> None:
        self.call.log.info("mark %s played", event.name)

    async def on_stop(self, event: Stop) -> None:
        self.call.log.info("stream stopped (%s) after %d echoed chunks", event.reason, self.echoed)

    async def _echo(self, data: bytes) -> None:
        await self.call.send_audio(data)
        self.echoed += 1
        if self.echoed % CHUNKS_PER_MARK == 0:
            await self.call.mark(f"echo-{self.echoed // CHUNKS_PER_MARK}")

    async def _send_held(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._held:
                self._wake.clear()
                await self._wake.wait()
                continue
            due, data = self._held[0]
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
                continue
            self._held.popleft()
            await self._echo(data)

    def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()


def _delay(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0.0 <= seconds <= MAX_DELAY:
        raise argparse.ArgumentTypeError(f"must be 0 to {MAX_DELAY:g} seconds, got {text!r}")
    return seconds


async def serve_echo(
    host: str = "127.0.0.1",
    port: int = 9000,
    *,
    binary: bool = False,
    transfer_target: str = DEFAULT_TRANSFER_TARGET,
    delay: float = 0.0,
    dtmf_tones: bool = False,
) -> Server:
    """Start the echo bot on ``host:port`` (0: any free port); the caller closes the server.

    voxgate itself runs one on a loopback port: the bot of calls that name none."""
    options = default_options(
        sys.modules[__name__],
        transfer_target=transfer_target,
        delay=delay,
        dtmf_tones=dtmf_tones,
    )
    return await serve_bot(handle, host, port, binary=binary, options=options, logger=LOG)
