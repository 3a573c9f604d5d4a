"""The load tester as a carrier: one Twilio or Telnyx media stream per call, on picows.

Each call opens a WebSocket to the node's stream URL on voxgate's own fast socket
(:class:`~voxgate.bridge.aio.fastws.FastSocket`, the layer the bridge's media path
runs on), and speaks the carrier's dialect with voxgate's own sans-I/O translator in
its carrier role (``format_upstream`` for what a carrier sends, ``parse_downstream``
for what it receives): ``connected`` and ``start`` (custom parameters choose the bot),
then a ``media`` message per 20 ms frame from the pacing grid, ``dtmf`` when the probe
sends a key, and ``stop``. Like the carrier, it answers each ``mark`` at once (its
audio has been "played") and takes ``clear``. The node closing the socket first is a
remote hang-up (the bot or the node ended the call).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Mapping
from typing import Final

from picows import WSError, ws_connect

from voxgate.bridge.aio.fastws import FastSocket
from voxgate.bridge.carriers._stream import CarrierDialect
from voxgate.bridge.carriers.registry import carrier
from voxgate.bridge.dialect import Message
from voxgate.bridge.events import (
    AudioSent,
    ClearRequested,
    DtmfReceived,
    MarkPlayed,
    MarkRequested,
    MediaReceived,
    StreamConnected,
    StreamStarted,
    StreamStopped,
)
from voxgate.codecs.formats import AudioFormat, Encoding, decode, encode
from voxgate.errors import ProtocolError
from voxgate.loadtest.probe import CallProbe, Samples

log = logging.getLogger("voxgate.loadtest.ws")

DIALECTS: Final = ("twilio", "telnyx")
CONNECT_TIMEOUT: Final = 10.0
_serial = itertools.count(1)


class StreamCall:
    """One carrier stream of the load test; see the module docstring."""

    def __init__(self, probe: CallProbe, dialect: CarrierDialect, fmt: AudioFormat) -> None:
        self.probe = probe
        self.dialect = dialect
        self.format = fmt
        self.call_id = ""
        self.socket: FastSocket | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.marks = 0
        self.clears = 0
        self.bad_messages = 0
        self._hung_up = False

    # --- the pacing grid's side -------------------------------------------------------

    def send_audio(self, samples: Samples) -> None:
        self._send(self.dialect.format_upstream(MediaReceived(encode(samples, self.format))))

    def send_dtmf(self, digit: str) -> None:
        self._send(self.dialect.format_upstream(DtmfReceived(digit)))

    def hangup(self) -> None:
        """Stop the stream, as a carrier does when the caller hangs up."""
        if self._hung_up or self.closed.done():
            return
        self._hung_up = True
        self._send(self.dialect.format_upstream(StreamStopped()))
        if self.socket is not None:
            self.socket.close(1000, "caller hung up")

    async def wait_ended(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except TimeoutError:
            if self.socket is not None:
                self.socket.abort()
            return False
        return True

    def _send(self, message: Message | None) -> None:
        sock = self.socket
        if message is not None and sock is not None and not sock.closing:
            sock.put(message)

    # --- the socket's side ------------------------------------------------------------

    def received(self, message: Message) -> None:
        now = time.monotonic()
        try:
            event = self.dialect.parse_downstream(message)
        except ProtocolError:
            self.bad_messages += 1
            return
        if isinstance(event, AudioSent):
            self.probe.audio_received(decode(event.payload, self.format), now)
        elif isinstance(event, MarkRequested):
            self.marks += 1
            self._send(self.dialect.format_upstream(MarkPlayed(event.name)))
        elif isinstance(event, ClearRequested):
            self.clears += 1

    def gone(self, code: int | None) -> None:
        now = time.monotonic()
        if not self._hung_up:
            log.info("the node closed the stream (%s)", code, extra={"call_id": self.call_id})
        self.probe.ended("local_hangup" if self._hung_up else "remote_hangup", now)
        if not self.closed.done():
            self.closed.set_result(None)


async def open_stream(
    url: str,
    probe: CallProbe,
    *,
    dialect: str = "twilio",
    parameters: Mapping[str, str] | None = None,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> StreamCall | None:
    """Open one call's stream and start it; None (after ``probe.failed``) when it cannot."""
    serial = next(_serial)
    translator = carrier(dialect).make_dialect()
    fmt = AudioFormat(Encoding.PCMU, 8000)
    call = StreamCall(probe, translator, fmt)
    call.call_id = f"lt-{serial}"
    probe.placed(time.monotonic())

    def made() -> FastSocket:
        sock = FastSocket("loadtest", call_id=call.call_id)
        sock.on_message = call.received
        sock.on_closed = call.gone
        return sock

    try:
        _, listener = await asyncio.wait_for(
            ws_connect(made, url, max_frame_size=1024 * 1024, logger_name="loadtest"),
            connect_timeout,
        )
    except TimeoutError:
        probe.failed("timeout", time.monotonic())
        return None
    except WSError as error:
        probe.failed(_refusal(error), time.monotonic())
        return None
    except OSError:
        probe.failed("unreachable", time.monotonic())
        return None
    assert isinstance(listener, FastSocket)
    call.socket = listener
    started = StreamStarted(
        stream_id=f"MZ{serial:032x}",
        call_id=f"CA{serial:032x}",
        media_format=fmt,
        account_id="AC" + "0" * 32,
        from_number="+15550100001",
        to_number="+15550100002",
        custom_parameters=dict(parameters or {}),
    )
    call._send(translator.format_upstream(StreamConnected()))
    call._send(translator.format_upstream(started))
    probe.answered(time.monotonic())
    if call.closed.done():  # the node closed it before it could be called answered
        probe.ended("remote_hangup", time.monotonic())
    return call


def _refusal(error: WSError) -> str:
    """A refused upgrade's reason, from the HTTP status picows reports."""
    text = str(error)
    for status, reason in (("401", "unauthorized"), ("403", "forbidden"), ("404", "not_found")):
        if status in text:
            return reason
    if "503" in text:
        return "busy"
    return "refused"
