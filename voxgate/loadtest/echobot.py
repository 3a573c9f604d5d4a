"""The load tester's own echo bot: voxgate.v1 on picows, as cheap as a bot can be.

Run by ``voxgate loadtest --bot embedded`` as a process of its own (so that it does not
take the load generator's CPU), or by hand::

    python -m voxgate.loadtest.echobot --port 9100

It sends every ``media`` message's audio straight back, in the same message as it
came (so it adds no delay and no queue of its own). A key (``dtmf``) is answered
with that key's DTMF tone *in place of* the next 100 ms of echo, not after it: the
audio stream keeps its length and timing, so the load tester can time the key
without disturbing its latency markers. Unlike the sample echo bot
(``voxgate bot echo``) it knows no commands: no key hangs up, clears or transfers.

``--delay-ms`` and ``--drop-every`` make it a deliberately broken bot (each echo
held back that long; every n-th frame not echoed): what the load tester must detect.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from typing import Final

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

from voxgate.bridge.botlink.v1 import V1Dialect
from voxgate.bridge.events import AudioSent, DtmfReceived, MediaReceived, StreamStarted
from voxgate.cli import run_fast
from voxgate.codecs.dtmf import dtmf_tone
from voxgate.codecs.formats import AudioFormat, encode
from voxgate.errors import ProtocolError

log = logging.getLogger("voxgate.loadtest.echobot")

TONE_MS: Final = 100
TEXT: Final = WSMsgType.TEXT


class EchoListener(WSListener):
    """One call's socket."""

    def __init__(
        self, *, delay: float = 0.0, drop_every: int = 0, sockets: set[WSTransport] | None = None
    ) -> None:
        super().__init__()
        self.sockets = sockets if sockets is not None else set()
        self.dialect = V1Dialect()
        self.format: AudioFormat | None = None
        self.delay = delay
        self.drop_every = drop_every
        self.frames = 0
        self.tone = b""  # what replaces the next echoes
        self.transport: WSTransport | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.sockets.add(transport)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.sockets.discard(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if kind is not TEXT and kind is not WSMsgType.BINARY:
            return
        payload = frame.get_payload_as_bytes()
        try:
            event = self.dialect.parse_upstream(payload.decode() if kind is TEXT else payload)
        except (ProtocolError, UnicodeDecodeError):
            return
        if isinstance(event, MediaReceived):
            self._echo(transport, event.payload)
        elif isinstance(event, DtmfReceived):
            self._tone(event.digit)
        elif isinstance(event, StreamStarted):
            self.format = event.media_format

    def _echo(self, transport: WSTransport, audio: bytes) -> None:
        self.frames += 1
        if self.drop_every and self.frames % self.drop_every == 0:
            return
        if self.tone:
            audio, self.tone = (
                self.tone[: len(audio)].ljust(len(audio), audio[-1:]),
                self.tone[len(audio) :],
            )
        message = self.dialect.format_downstream(AudioSent(audio))
        data = message.encode() if isinstance(message, str) else message
        kind = TEXT if isinstance(message, str) else WSMsgType.BINARY
        if self.delay:
            asyncio.get_running_loop().call_later(self.delay, _send, transport, kind, data)
        else:
            transport.send(kind, data)

    def _tone(self, digit: str) -> None:
        fmt = self.format
        if fmt is None:
            return
        self.tone = encode(dtmf_tone(digit, TONE_MS, sample_rate=fmt.sample_rate), fmt)


def _send(transport: WSTransport, kind: WSMsgType, data: bytes) -> None:
    try:
        transport.send(kind, data)
    except Exception:  # the call ended meanwhile: nothing to send to
        return


async def serve(
    host: str,
    port: int,
    *,
    delay: float = 0.0,
    drop_every: int = 0,
    sockets: set[WSTransport] | None = None,
) -> asyncio.Server:
    """Listen; returns the server (its first socket's port is the one to use with port 0).
    ``sockets``, when given, holds the calls' open sockets (for :func:`going_away`)."""
    return await ws_create_server(
        lambda request: EchoListener(delay=delay, drop_every=drop_every, sockets=sockets),
        host,
        port,
        websocket_handshake_timeout=5,
    )


def going_away(sockets: set[WSTransport]) -> None:
    """Close every call's socket as the bot stops (RFC 6455 section 7.4.1: 1001)."""
    for transport in list(sockets):
        with contextlib.suppress(Exception):  # already closing: nothing more to say
            transport.send_close(WSCloseCode.GOING_AWAY, b"bot stopping")
            transport.disconnect()
    sockets.clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m voxgate.loadtest.echobot", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="hold each echo this long")
    parser.add_argument("--drop-every", type=int, default=0, help="drop every n-th frame")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    async def run() -> None:
        sockets: set[WSTransport] = set()
        server = await serve(
            args.host,
            args.port,
            delay=args.delay_ms / 1000,
            drop_every=args.drop_every,
            sockets=sockets,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        # The server waits for its connections to end: a socket left open held it for ever.
        going_away(sockets)
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 5)

    run_fast(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
