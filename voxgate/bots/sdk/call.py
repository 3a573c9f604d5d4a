"""One call as a bot sees it: its ``start``, a stream of events, and the bot's actions.

Theory of operation
-------------------
The server (:mod:`voxgate.bots.sdk.server`) reads ``start`` itself and then hands the bot a
:class:`Call`. From then on a reader task takes every message off the socket, parses it with
voxgate's own ``voxgate.v1`` dialect (bot side), turns it into an SDK event
(:mod:`voxgate.bots.sdk.events`) and queues it; with :meth:`Call.detect_speech` on, the
caller's audio also goes through a :class:`~voxgate.bots.sdk.vad.VoiceActivity` and its
speech start and end are queued right after the audio that revealed them. The reader never
waits on the bot, so marks, DTMF and ``stop`` are seen however busy the bot is. The queue is
bounded (:data:`EVENT_QUEUE`): when a bot leaves that many events unread, the oldest caller
audio goes (logged once, counted at the end of the call); DTMF, marks and the other events
are kept. Marks are also recorded as they arrive, so :meth:`Call.wait_mark` works whether
or not the bot reads the events.

States: LIVE --``stop`` or the socket closes--> ENDED. The event stream always ends with a
:class:`~voxgate.bots.sdk.events.Stop` (made up, with reason None, when the socket closed
without one). Actions taken after the end do nothing (there is nobody to hear them) and
return at once; ``call.ended`` tells.

Actions build their message with the same dialect and check it the way voxgate will, so a
bad mark name, DTMF digit or transfer target raises ``ValueError`` here, at the line that
made it, instead of coming back later as an ``error`` event.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from voxgate.bots.sdk.audio import Samples, StreamEncoder, load_audio, to_format
from voxgate.bots.sdk.events import (
    Audio,
    Dtmf,
    Error,
    Event,
    Hold,
    Mark,
    SpeechEnded,
    SpeechStarted,
    Start,
    Stop,
    event_from,
)
from voxgate.bots.sdk.vad import VoiceActivity
from voxgate.bridge.botlink.v1 import V1Dialect
from voxgate.bridge.dialect import Message
from voxgate.bridge.events import (
    AudioSent,
    ClearRequested,
    DownstreamEvent,
    DtmfSendRequested,
    HangupRequested,
    MarkRequested,
    TranscriptReceived,
    TransferRequested,
)
from voxgate.codecs.formats import AudioFormat
from voxgate.errors import ProtocolError

LOG = logging.getLogger("voxgate.bots.sdk")

EVENT_QUEUE: Final = 500
"""Events held for a bot that is not reading (10 s of 20 ms audio); then the oldest audio goes."""
AUDIO_PER_MESSAGE_MS: Final = 1000
"""Audio of at most this length goes in one message (voxgate takes up to 256 KiB)."""
PLAY_CHUNK_MS: Final = 200
""":meth:`Call.play` sends a prompt in pieces of this length, faster than real time."""

_HANDLER_NAMES: Final = {
    Audio: "on_audio",
    Dtmf: "on_dtmf",
    Hold: "on_hold",
    Mark: "on_mark",
    Stop: "on_stop",
    Error: "on_error",
    SpeechStarted: "on_speech_started",
    SpeechEnded: "on_speech_ended",
}


class CallEndedError(Exception):
    """The call's stream has ended: no event will come."""


class CallLog(logging.LoggerAdapter[logging.Logger]):
    """A logger whose every line carries the call's id (in the text and as ``call_id``)."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        call_id = (self.extra or {}).get("call_id", "-")
        kwargs["extra"] = {**kwargs.get("extra", {}), "call_id": call_id}
        return f"call {call_id}: {msg}", kwargs


class Call:
    """One call: what voxgate said at ``start``, its events, and what the bot can do."""

    def __init__(
        self,
        connection: ServerConnection,
        dialect: V1Dialect,
        start: Start,
        *,
        options: argparse.Namespace | None = None,
        logger: logging.Logger = LOG,
    ) -> None:
        self.connection = connection
        self.start = start
        self.options = options if options is not None else argparse.Namespace()
        self.log = CallLog(logger, {"call_id": start.call_id})
        self.hangup_sent = False
        self._dialect = dialect
        self._events: deque[Event] = deque()
        self._event_arrived = asyncio.Event()
        self.audio_dropped = 0  # caller audio chunks the bot left unread too long
        self._marks_played: set[str] = set()
        self._mark_arrived = asyncio.Event()
        self._vad: VoiceActivity | None = None
        self._encoder = StreamEncoder(start.media_format)
        self._ended = asyncio.Event()
        self._stop_queued = False
        self._delivered_stop = False
        self._reader = asyncio.create_task(self._read(), name=f"bot-read-{start.call_id}")

    @property
    def call_id(self) -> str:
        return self.start.call_id

    @property
    def media_format(self) -> AudioFormat:
        return self.start.media_format

    @property
    def ended(self) -> bool:
        """True once the stream stopped or the socket closed."""
        return self._ended.is_set()

    # --- events --------------------------------------------------------------------------

    def detect_speech(
        self, *, aggressiveness: int = 2, start_ms: int = 20, hangover_ms: int = 300
    ) -> None:
        """From now on, report the caller's speech start and end as events (webrtcvad)."""
        self._vad = VoiceActivity(
            self.start.media_format.sample_rate,
            aggressiveness=aggressiveness,
            start_ms=start_ms,
            hangover_ms=hangover_ms,
        )

    def stop_detecting_speech(self) -> None:
        self._vad = None

    async def next_event(self, timeout: float | None = None) -> Event | None:
        """The next event; None if none came within ``timeout`` s; CallEndedError after the
        last."""
        if self._delivered_stop:
            raise CallEndedError(self.call_id)
        try:
            async with asyncio.timeout(timeout):
                while not self._events:
                    self._event_arrived.clear()
                    await self._event_arrived.wait()
        except TimeoutError:
            return None
        event = self._events.popleft()
        if isinstance(event, Stop):
            self._delivered_stop = True
        return event

    async def __aiter__(self) -> AsyncIterator[Event]:
        """Every event up to and including the last, :class:`Stop`."""
        while not self._delivered_stop:
            event = await self.next_event()
            if event is not None:
                yield event

    async def dispatch(self, handlers: object) -> None:
        """Call ``handlers.on_audio(event)``, ``on_dtmf``, ``on_mark``, ``on_hold``,
        ``on_speech_started``, ``on_speech_ended``, ``on_error``, ``on_stop`` (each optional,
        each an ``async`` method) for every event, until the call ends."""
        async for event in self:
            method: Callable[[Any], Awaitable[None]] | None = getattr(
                handlers, _HANDLER_NAMES[type(event)], None
            )
            if method is not None:
                await method(event)

    async def wait_mark(self, name: str, timeout: float | None = None) -> bool:
        """Wait until voxgate reports mark ``name`` played; False on timeout or call end."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while name not in self._marks_played:
                    if self.ended:
                        return False
                    self._mark_arrived.clear()
                    ended = asyncio.ensure_future(self._ended.wait())
                    arrived = asyncio.ensure_future(self._mark_arrived.wait())
                    try:
                        await asyncio.wait((ended, arrived), return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        ended.cancel()
                        arrived.cancel()
                return True
        return False

    async def wait_ended(self, timeout: float | None = None) -> bool:
        """Wait until the call has ended; False on timeout."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._ended.wait()
                return True
        return False

    # --- actions -------------------------------------------------------------------------

    async def send_audio(self, audio: bytes | Samples, sample_rate: int | None = None) -> None:
        """Queue audio for the caller: bytes already in the call's ``media_format``, or
        samples (int16, or float from -1 to 1) at ``sample_rate`` (default: the call's rate),
        converted chunk by chunk (streaming, keeping the resampler's state)."""
        fmt = self.start.media_format
        if isinstance(audio, bytes | bytearray | memoryview):
            data = bytes(audio)
            if len(data) % fmt.bytes_per_sample:
                raise ValueError(f"{fmt} audio must hold whole 2-byte samples ({len(data)} bytes)")
        else:
            data = self._encoder.encode(audio, sample_rate or fmt.sample_rate)
        step = fmt.bytes_per(AUDIO_PER_MESSAGE_MS)
        for offset in range(0, len(data), step):
            await self._send(AudioSent(data[offset : offset + step]))

    async def play(
        self,
        source: str | Path | Samples,
        *,
        sample_rate: int | None = None,
        mark: str | None = None,
    ) -> None:
        """Queue a whole sound (a WAV or other sound file, or samples at ``sample_rate``),
        converted to the call's format, then mark ``mark`` if given. Returns once sent;
        :meth:`wait_mark` waits for it to have played."""
        if isinstance(source, str | Path):
            samples, rate = load_audio(source)
        else:
            if sample_rate is None:
                raise ValueError("play(samples) needs their sample_rate")
            samples, rate = np.asarray(source), sample_rate
        fmt = self.start.media_format
        data = to_format(samples, rate, fmt)
        step = fmt.bytes_per(PLAY_CHUNK_MS)
        for offset in range(0, len(data), step):
            await self._send(AudioSent(data[offset : offset + step]))
        if mark is not None:
            await self.mark(mark)

    async def mark(self, name: str) -> None:
        """Ask voxgate to report ``name`` once the audio sent so far has played."""
        self._marks_played.discard(name)
        await self._send(MarkRequested(name))

    async def clear(self) -> None:
        """Barge-in: voxgate drops the audio not yet played (pending marks come back)."""
        await self._send(ClearRequested())

    async def send_dtmf(self, digits: str, duration_ms: int = 100) -> None:
        """Press keys towards the caller's side (1-32 of 0-9 * # A-D, 50-2000 ms each)."""
        await self._send(DtmfSendRequested(digits, duration_ms))

    async def transfer(self, target: str) -> None:
        """Move the call to ``target`` (+E.164 or a sip:/sips: URI) once queued audio played."""
        await self._send(TransferRequested(target))

    async def hangup(self, reason: str | None = None) -> None:
        """End the call once the queued audio has played (``reason`` goes to voxgate's log)."""
        await self._send(HangupRequested(reason))
        self.hangup_sent = True

    async def transcript(
        self, role: Literal["caller", "bot"], text: str, *, final: bool = True
    ) -> None:
        """Tell voxgate what was said, as the bot heard (caller) or said it (bot)."""
        await self._send(TranscriptReceived(role, text, final))

    # --- plumbing ------------------------------------------------------------------------

    async def _send(self, event: DownstreamEvent) -> None:
        message = self._dialect.format_downstream(event)
        if not isinstance(event, AudioSent):
            _check(self._dialect, message)
        if self.ended:
            self.log.debug("not sent after the end: %s", type(event).__name__)
            return
        try:
            await self.connection.send(message)
        except ConnectionClosed:
            self._end()

    async def _read(self) -> None:
        try:
            async for message in self.connection:
                for event in self._events_of(message):
                    self._queue(event)
                    if isinstance(event, Stop):
                        return
        except ConnectionClosed:
            pass
        finally:
            await self._finish()

    def _events_of(self, message: Message) -> list[Event]:
        try:
            parsed = self._dialect.parse_upstream(message)
        except ProtocolError as error:
            self.log.warning("ignoring a message voxgate should not send: %s", error)
            return []
        event = event_from(parsed, self.start.media_format)
        if event is None:
            return []
        if isinstance(event, Mark):
            self._marks_played.add(event.name)
            self._mark_arrived.set()
        if isinstance(event, Audio) and self._vad is not None:
            return [event, *self._vad.feed(event.samples())]
        return [event]

    def _queue(self, event: Event) -> None:
        if len(self._events) >= EVENT_QUEUE:
            self._drop_oldest_audio()
        self._events.append(event)
        if isinstance(event, Stop):
            self._stop_queued = True
        self._event_arrived.set()

    def _drop_oldest_audio(self) -> None:
        oldest = next((i for i, e in enumerate(self._events) if isinstance(e, Audio)), None)
        if oldest is None:  # nothing but unread control events: the oldest of them goes
            self._events.popleft()
            return
        del self._events[oldest]
        if not self.audio_dropped:
            self.log.warning("the bot leaves its events unread: dropping the oldest audio")
        self.audio_dropped += 1

    async def _finish(self) -> None:
        self._end()
        if not self._stop_queued:  # the socket closed without a stop: the stream ends anyway
            self.log.info("the connection closed without a stop")
            self._queue(Stop(None))

    def _end(self) -> None:
        self._ended.set()
        self._mark_arrived.set()

    async def close(self) -> None:
        """Stop reading and close the socket (code 1000); the server does this at the end."""
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self.connection.close(1000, "call ended")
        self._end()


def _check(dialect: V1Dialect, message: Message) -> None:
    """Raise ValueError if voxgate would refuse ``message`` (the same parser reads it)."""
    try:
        dialect.parse_downstream(message)
    except ProtocolError as error:
        raise ValueError(str(error)) from None
