"""A carrier emulator: plays Twilio, Telnyx or Plivo opening a media stream to voxgate.

Written from the carriers' documentation, independently of voxgate's own
dialect modules, so end-to-end tests compare voxgate against the vendors'
wire formats rather than against itself.

Sources, followed field by field:

- Twilio, "Media Streams - WebSocket Messages" (twilio.com/docs/voice/
  media-streams/websocket-messages): ``connected``; ``start`` (accountSid,
  streamSid, callSid, tracks, customParameters, mediaFormat); ``media``
  (track, ``chunk`` from 1, ``timestamp`` in ms since the stream started,
  base64 payload); ``dtmf`` (track ``inbound_track``); ``stop``; ``mark``.
  After ``connected`` every message has a string ``sequenceNumber`` from 1.
  A mark comes back when the audio before it has played (at once if none is
  buffered); ``clear`` empties the buffer and sends back every pending mark.
  Messages to Twilio must carry ``streamSid``.
- Telnyx, "Media Streaming over WebSockets" (developers.telnyx.com/docs/
  voice/programmable-voice/media-streaming) and its AsyncAPI page: the same
  events with ``sequence_number`` and ``stream_id`` at the top level,
  ``call_control_id`` inside ``start``, ``occurred_at`` on ``dtmf``, media
  order not guaranteed, ``error`` frames ``{"event", "payload": {"code",
  "title", "detail"}, "stream_id"}`` (100003 malformed_frame, 100004
  invalid_media), the auth token as the ``x-telnyx-streaming-auth-token``
  upgrade header. Mark and clear behave as Twilio's.
- Plivo, "Stream Event Protocol" and "Audio Streaming Protocol Reference"
  (plivo.com/docs/voice/audio-streaming/...), the ``<Stream>`` XML page and
  the playAudio/checkpoint/clearAudio event pages: no ``connected``, ``start``
  first (``sequenceNumber`` 1 as a JSON number; ``start.callId``,
  ``streamId``, ``accountId``, ``tracks``, ``mediaFormat`` {``encoding``,
  ``sampleRate``}; the ``extraHeaders`` as top-level ``extra_headers``
  ``"k=v;k=v"``); ``media`` with top-level ``streamId``, ``media.track``,
  ``media.timestamp`` (Unix milliseconds, a string) and ``media.chunk`` (a
  number). The application sends ``playAudio`` {``media``: {``contentType``,
  ``sampleRate``, ``payload``}}, ``checkpoint`` {``streamId``, ``name``},
  answered by ``playedStream`` {``streamId``, ``name``} once the audio
  before it has played (and only then: "playedStream will only be emitted
  if the preceding events were played successfully", so a ``clearAudio``
  drops pending checkpoints without an answer), and ``clearAudio``
  {``streamId``}, answered by ``clearedAudio``. The stream ends with the
  socket closing (the lifecycle goes to an HTTP status callback). Not from a
  Plivo page: the ``dtmf`` body ``{"track", "digit"}`` and the
  ``audio.plivo.com`` subprotocol the emulator offers (third-party
  adapters); the ``X-Plivo-Signature-V3`` headers on the upgrade (Plivo's
  "Validation" page and its SDK's algorithm: HMAC-SHA256 over the URL with
  its query sorted, ``"."``, the nonce).

State machine of one emulated stream::

    new --connect()--> streaming --send_stop()--> stopped
     |                     |                          |
     +---------------------+---- socket closes -------+--> closed

While streaming, a receive task records everything voxgate sends and feeds a
:class:`PlayoutBuffer`, the carrier's playout model: received audio plays in
real time from the moment it arrives (``len / bytes_per_second`` seconds), a
mark is echoed once all audio received before it has played, and ``clear``
drops the buffer and echoes every pending mark at once. A second task sleeps
until the next mark is due. Nothing here waits without a timeout.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import random
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Literal, Self
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from voxgate.codecs.formats import AudioFormat, Encoding

CarrierDialect = Literal["twilio", "telnyx", "plivo"]
JsonObject = dict[str, Any]

TIMEOUT: Final = 5.0
"""Default bound, in seconds, on every wait (connect, close, wait_for)."""

FRAME_MS: Final = 20
TELNYX_CODECS: Final = {"PCMU": Encoding.PCMU, "PCMA": Encoding.PCMA, "L16": Encoding.L16}
"""Telnyx bidirectional codecs whose playout time the emulator can compute."""

PLIVO_CODECS: Final = {
    "PCMU": ("audio/x-mulaw", Encoding.PCMU),
    "L16": ("audio/x-l16", Encoding.L16),
}
"""Plivo's stream content types; L16's byte order does not matter to playout timing."""
PLIVO_SUBPROTOCOL: Final = "audio.plivo.com"

_ENVELOPE_KEYS: Final = {
    "twilio": ("sequenceNumber", "streamSid"),
    "telnyx": ("sequence_number", "stream_id"),
    "plivo": ("sequenceNumber", "streamId"),
}
DTMF_DIGITS: Final = frozenset("0123456789*#ABCD")
TELNYX_MALFORMED_FRAME: Final = (
    100003,
    "malformed_frame",
    "Received frame was not formed correctly",
)
TELNYX_INVALID_MEDIA: Final = (100004, "invalid_media", "Media provided was not base64 encoded")


def twilio_sid(prefix: str) -> str:
    """A Twilio SID: two-letter prefix and 32 hex digits (``MZ...``, ``CA...``)."""
    return prefix + secrets.token_hex(16)


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str] | None = None) -> str:
    """``X-Twilio-Signature``: base64 HMAC-SHA1 over the URL then each sorted key+value."""
    signed = url + "".join(key + value for key, value in sorted((params or {}).items()))
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def plivo_signature_v3(auth_token: str, url: str, nonce: str) -> str:
    """``X-Plivo-Signature-V3`` of a GET: base64 HMAC-SHA256 of the URL (query sorted by
    name, values decoded), a dot and the nonce."""
    parts = urlsplit(url)
    query = "&".join(f"{k}={v}" for k, v in sorted(parse_qsl(parts.query, keep_blank_values=True)))
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    signed = f"{base}?{query}.{nonce}" if query else f"{base}.{nonce}"
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@dataclass(frozen=True, slots=True)
class MediaFrame:
    """One media message voxgate sent: decoded payload and its arrival time."""

    payload: bytes
    arrival: float  # time.monotonic()


@dataclass(frozen=True, slots=True)
class MarkEcho:
    """A mark the emulator sent back; ``cleared`` when a clear returned it."""

    name: str
    at: float  # time.monotonic()
    cleared: bool


class _RefusedError(Exception):
    """A message from voxgate that the real carrier would refuse."""

    def __init__(self, reason: str, telnyx_error: tuple[int, str, str] = TELNYX_MALFORMED_FRAME):
        super().__init__(reason)
        self.reason, self.telnyx_error = reason, telnyx_error


class PlayoutBuffer:
    """The carrier's playout queue, sans I/O: every method takes ``now``.

    Audio plays back to back in arrival order; ``busy_until`` is when the last
    byte received so far will have played. A mark is due at the ``busy_until``
    of the moment it arrived (at once when nothing is queued).
    """

    def __init__(self, bytes_per_second: float) -> None:
        self.bytes_per_second = bytes_per_second
        self.busy_until = 0.0
        self._marks: deque[tuple[float, str]] = deque()

    def add_audio(self, now: float, size: int) -> None:
        self.busy_until = max(self.busy_until, now) + size / self.bytes_per_second

    def add_mark(self, now: float, name: str) -> None:
        self._marks.append((max(self.busy_until, now), name))

    def next_deadline(self) -> float | None:
        return self._marks[0][0] if self._marks else None

    def due_marks(self, now: float) -> list[str]:
        due = []
        while self._marks and self._marks[0][0] <= now:
            due.append(self._marks.popleft()[1])
        return due

    def clear(self, now: float) -> list[str]:
        """Drop queued audio; the names of every pending mark, in order."""
        self.busy_until = now
        names = [name for _, name in self._marks]
        self._marks.clear()
        return names

    @property
    def pending_marks(self) -> list[str]:
        return [name for _, name in self._marks]


class CarrierEmulator:
    """The carrier side of one media stream, over a real WebSocket client."""

    def __init__(
        self,
        url: str,
        dialect: CarrierDialect,
        *,
        headers: Mapping[str, str] | None = None,
        custom_parameters: Mapping[str, str] | None = None,
        encoding: str = "PCMU",
        sample_rate: int = 8000,
        call_id: str | None = None,
        stream_id: str | None = None,
        account_id: str | None = None,
        from_number: str = "+15550001111",
        to_number: str = "+15550002222",
        client_state: str | None = None,
        twilio_auth_token: str | None = None,
        streaming_auth_token: str | None = None,
        plivo_auth_token: str | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        if dialect not in ("twilio", "telnyx", "plivo"):
            raise ValueError(f"dialect must be 'twilio', 'telnyx' or 'plivo', not {dialect!r}")
        self.url, self.dialect, self.timeout = url, dialect, timeout
        self.audio_format = _carrier_format(dialect, encoding, sample_rate)
        self.encoding = encoding
        self.custom_parameters = dict(custom_parameters or {})
        self.from_number, self.to_number, self.client_state = from_number, to_number, client_state
        self.call_id, self.stream_id, self.account_id = _ids(dialect)
        self.call_id = call_id or self.call_id
        self.stream_id = stream_id or self.stream_id
        self.account_id = account_id or self.account_id
        self.call_session_id = str(uuid.uuid4())
        self.headers = dict(headers or {})
        if twilio_auth_token is not None:
            self.headers["X-Twilio-Signature"] = twilio_signature(twilio_auth_token, url)
        if streaming_auth_token is not None:
            self.headers["x-telnyx-streaming-auth-token"] = streaming_auth_token
        if plivo_auth_token is not None:
            nonce = str(secrets.randbelow(10**20)).zfill(20)
            self.headers["X-Plivo-Signature-V3"] = plivo_signature_v3(plivo_auth_token, url, nonce)
            self.headers["X-Plivo-Signature-V3-Nonce"] = nonce
        # What the emulator sent and received.
        self.sent: list[str | bytes] = []
        self.events: list[JsonObject] = []
        self.media: list[MediaFrame] = []
        self.mark_echoes: list[MarkEcho] = []
        self.marks_dropped: list[str] = []  # Plivo: checkpoints a clearAudio dropped unanswered
        self.clears: list[float] = []
        self.protocol_errors: list[str] = []
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason: str | None = None
        # Stream state.
        self.playout = PlayoutBuffer(self.audio_format.bytes_per(1000))
        self._ws: ClientConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._sequence = 0
        self._chunk = 0
        self._media_ms = 0.0
        self._started_at = 0.0
        self._wall_ms_at_start = 0  # Plivo stamps media with Unix milliseconds
        self._changed = asyncio.Condition()
        self._wake_marks = asyncio.Event()
        self._echo_lock = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the socket and send ``connected`` then ``start``, as the carrier does."""
        if self._ws is not None:
            raise RuntimeError("this emulator is already connected")
        self._ws = await connect(
            self.url,
            additional_headers=self.headers,
            subprotocols=[Subprotocol(PLIVO_SUBPROTOCOL)] if self.dialect == "plivo" else None,
            open_timeout=self.timeout,
            close_timeout=self.timeout,
            ping_interval=None,
            compression=None,
            max_size=2**22,
        )
        self._tasks = [
            asyncio.create_task(self._receive_loop(), name="carrier-receive"),
            asyncio.create_task(self._mark_loop(), name="carrier-marks"),
        ]
        if self.dialect != "plivo":  # Plivo's first message is start
            connected = {"event": "connected", "protocol": "Call", "version": "1.0.0"}
            if self.dialect == "telnyx":
                del connected["protocol"]
            await self._send_json(connected)
        self._started_at = time.monotonic()
        self._wall_ms_at_start = int(time.time() * 1000)
        await self._send_json(self._start_message())

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the socket (if open) and stop the emulator's tasks."""
        if self._ws is not None and not self.closed.is_set():
            try:
                await asyncio.wait_for(self._ws.close(code, reason), self.timeout)
            except TimeoutError:
                self._ws.transport.abort()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.timeout)
        self._tasks = []

    async def hang_up(self) -> None:
        """The caller hangs up: ``stop`` (not Plivo), then the carrier closes the socket."""
        if self.dialect != "plivo":
            with contextlib.suppress(ConnectionClosed):  # unless voxgate closed it first
                await self.send_stop()
        await self.close()

    # -- what the carrier sends ---------------------------------------------

    async def send_audio(
        self,
        payload: bytes,
        *,
        frame_bytes: int | None = None,
        paced: bool = True,
        shuffle_window: int = 0,
        shuffle_seed: int = 0,
    ) -> None:
        """Send ``payload`` as media messages of ``frame_bytes`` (20 ms by default).

        Paced sends keep absolute deadlines (start + n x frame duration), so
        lateness never accumulates. ``shuffle_window`` (Telnyx only, which
        does not guarantee order) permutes messages within consecutive
        windows of that many messages; numbering stays that of the true order.
        """
        frame_bytes = frame_bytes or self.audio_format.bytes_per(FRAME_MS)
        if frame_bytes <= 0 or frame_bytes % self.audio_format.bytes_per_sample:
            raise ValueError(f"frame_bytes must be a positive number of samples: {frame_bytes}")
        if shuffle_window and self.dialect != "telnyx":
            raise ValueError("only Telnyx reorders media; shuffle_window needs dialect 'telnyx'")
        frame_seconds = frame_bytes / self.audio_format.bytes_per(1000)
        if paced:  # a pause longer than a frame shows as a jump in timestamps
            elapsed_ms = (time.monotonic() - self._started_at) * 1000
            if elapsed_ms - self._media_ms > FRAME_MS:
                self._media_ms = elapsed_ms
        chunks = [payload[i : i + frame_bytes] for i in range(0, len(payload), frame_bytes)]
        window, rng = max(1, shuffle_window), random.Random(shuffle_seed)
        start = time.monotonic()
        for first in range(0, len(chunks), window):
            # Numbered just before sending, so a mark echo sent meanwhile keeps the order.
            if paced:
                await asyncio.sleep(max(0.0, start + first * frame_seconds - time.monotonic()))
            block = [self._media_message(chunk) for chunk in chunks[first : first + window]]
            rng.shuffle(block)
            for offset, message in enumerate(block):
                if paced and offset:
                    deadline = start + (first + offset) * frame_seconds
                    await asyncio.sleep(max(0.0, deadline - time.monotonic()))
                await self._send_json(message)

    async def send_dtmf(self, digit: str) -> None:
        if digit not in DTMF_DIGITS:
            raise ValueError(f"not a DTMF digit: {digit!r}")
        if self.dialect == "twilio":
            await self._send_json(self._message("dtmf", {"track": "inbound_track", "digit": digit}))
            return
        if self.dialect == "plivo":
            await self._send_json(self._message("dtmf", {"track": "inbound", "digit": digit}))
            return
        occurred_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        await self._send_json(
            {**self._message("dtmf", {"digit": digit}), "occurred_at": occurred_at}
        )

    async def send_stop(self) -> None:
        if self.dialect == "plivo":
            raise ValueError("Plivo sends no stop: the stream ends with the socket closing")
        if self.dialect == "twilio":
            stop = {"accountSid": self.account_id, "callSid": self.call_id}
        else:
            stop = {"user_id": self.account_id, "call_control_id": self.call_id}
        await self._send_json(self._message("stop", stop))

    async def send_error(self, code: int, title: str, detail: str) -> None:
        """A Telnyx ``error`` frame (Twilio reports errors out of band, not on the socket)."""
        if self.dialect != "telnyx":
            raise ValueError("only Telnyx sends error frames on the media socket")
        payload = {"code": code, "title": title, "detail": detail}
        await self._send_json({"event": "error", "payload": payload, "stream_id": self.stream_id})

    async def send_raw(self, data: str | bytes) -> None:
        """Send exactly ``data`` (for bad-input tests)."""
        await self._connection().send(data)
        self.sent.append(data)

    # -- what voxgate sent ----------------------------------------------------

    def received_audio(self) -> bytes:
        return b"".join(frame.payload for frame in self.media)

    def media_arrivals(self) -> list[float]:
        return [frame.arrival for frame in self.media]

    def marks_echoed(self) -> list[str]:
        return [echo.name for echo in self.mark_echoes]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float | None = None) -> None:
        """Wait until ``predicate()`` holds (checked whenever something arrives)."""
        limit = self.timeout if timeout is None else timeout
        try:
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(predicate), limit)
        except TimeoutError:
            raise TimeoutError(f"condition not met within {limit} s; {self._summary()}") from None

    async def wait_for_audio(self, size: int, timeout: float | None = None) -> bytes:
        await self.wait_for(lambda: sum(len(f.payload) for f in self.media) >= size, timeout)
        return self.received_audio()

    async def wait_for_marks(self, count: int, timeout: float | None = None) -> list[str]:
        await self.wait_for(lambda: len(self.mark_echoes) >= count, timeout)
        return self.marks_echoed()

    async def wait_for_event(self, event: str, timeout: float | None = None) -> JsonObject:
        """The first message voxgate sent with this ``event`` name."""
        await self.wait_for(lambda: any(e.get("event") == event for e in self.events), timeout)
        return next(e for e in self.events if e.get("event") == event)

    async def wait_for_close(self, timeout: float | None = None) -> int | None:
        await self.wait_for(self.closed.is_set, timeout)
        return self.close_code

    # -- message builders ----------------------------------------------------

    def _start_message(self) -> JsonObject:
        start: JsonObject
        if self.dialect == "plivo":
            start = {
                "callId": self.call_id,
                "streamId": self.stream_id,
                "accountId": self.account_id,
                "tracks": ["inbound"],
                "mediaFormat": {
                    "encoding": PLIVO_CODECS[self.encoding][0],
                    "sampleRate": self.audio_format.sample_rate,
                },
            }
            message: JsonObject = {"event": "start", "sequenceNumber": self._next_sequence()}
            message["start"] = start
            if self.custom_parameters:
                pairs = (f"{k}={v}" for k, v in self.custom_parameters.items())
                message["extra_headers"] = ";".join(pairs)
            return message
        if self.dialect == "twilio":
            media_format: JsonObject = {"encoding": "audio/x-mulaw", "sampleRate": 8000}
            start = {
                "accountSid": self.account_id,
                "streamSid": self.stream_id,
                "callSid": self.call_id,
                "tracks": ["inbound"],
                "customParameters": self.custom_parameters,
                "mediaFormat": {**media_format, "channels": 1},
            }
            return self._message("start", start)
        media_format = {"encoding": self.encoding, "sample_rate": self.audio_format.sample_rate}
        start = {
            "user_id": self.account_id,
            "call_control_id": self.call_id,
            "call_session_id": self.call_session_id,
            "from": self.from_number,
            "to": self.to_number,
            "client_state": self.client_state,
            "custom_parameters": self.custom_parameters,
            "media_format": {**media_format, "channels": 1},
        }
        return self._message("start", start)

    def _media_message(self, chunk: bytes) -> JsonObject:
        self._chunk += 1
        media_ms = int(self._media_ms)
        timestamp = str(self._wall_ms_at_start + media_ms if self.dialect == "plivo" else media_ms)
        self._media_ms += len(chunk) * 1000 / self.audio_format.bytes_per(1000)
        payload = base64.b64encode(chunk).decode("ascii")
        number = self._chunk if self.dialect == "plivo" else str(self._chunk)
        media = {"track": "inbound", "chunk": number, "timestamp": timestamp}
        return self._message("media", {**media, "payload": payload})

    def _message(self, event: str, body: JsonObject) -> JsonObject:
        """``event``, the sequence number, ``body`` under the event's name, the stream id."""
        sequence, stream = _ENVELOPE_KEYS[self.dialect]
        return {
            "event": event,
            sequence: self._next_sequence(),
            event: body,
            stream: self.stream_id,
        }

    def _mark_echo(self, name: str) -> JsonObject:
        """Twilio's and Telnyx's ``mark``, Plivo's ``playedStream``."""
        if self.dialect != "plivo":
            return self._message("mark", {"name": name})
        return {
            "event": "playedStream",
            "sequenceNumber": self._next_sequence(),
            "streamId": self.stream_id,
            "name": name,
        }

    def _next_sequence(self) -> str | int:
        self._sequence += 1
        return self._sequence if self.dialect == "plivo" else str(self._sequence)

    # -- receiving -------------------------------------------------------------

    async def _receive_loop(self) -> None:
        connection = self._connection()
        try:
            async for message in connection:
                await self._handle(message, time.monotonic())
                await self._notify()
        except ConnectionClosed:
            pass
        finally:
            self.close_code = connection.close_code
            self.close_reason = connection.close_reason
            self.closed.set()
            self._wake_marks.set()
            await self._notify()

    async def _handle(self, message: str | bytes, now: float) -> None:
        try:
            event = self._parse(message)
            kind = event.get("event")
            if self.dialect == "plivo":
                await self._plivo(kind, event, now)
            elif kind == "media":
                self._on_media(event, now)
            elif kind == "mark":
                self._on_mark(event.get("mark"), now)
            elif kind == "clear":
                await self._on_clear(now)
            else:
                raise _RefusedError(f"unknown event {kind!r}")
        except _RefusedError as rejected:
            await self._reject(rejected)

    def _parse(self, message: str | bytes) -> JsonObject:
        if isinstance(message, bytes):
            raise _RefusedError("binary frame: the carriers take JSON text frames only")
        try:
            event = json.loads(message)
        except ValueError:
            raise _RefusedError(f"not JSON: {message[:80]!r}") from None
        if not isinstance(event, dict):
            raise _RefusedError(f"not a JSON object: {message[:80]!r}")
        self.events.append(event)
        if self.dialect == "twilio" and event.get("streamSid") != self.stream_id:
            raise _RefusedError(f"streamSid {event.get('streamSid')!r} is not {self.stream_id!r}")
        return event

    async def _plivo(self, kind: object, event: JsonObject, now: float) -> None:
        """What Plivo does with an application's message."""
        stream_id = event.get("streamId")
        if kind in ("checkpoint", "clearAudio") and stream_id is None:
            raise _RefusedError(f"{kind} without a streamId")
        if stream_id is not None and stream_id != self.stream_id:
            raise _RefusedError(f"streamId {stream_id!r} is not {self.stream_id!r}")
        if kind == "playAudio":
            self._check_play_audio(event)
            self._on_media(event, now)
        elif kind == "checkpoint":
            self._on_mark(event, now)
        elif kind == "clearAudio":
            await self._on_clear(now)
        elif kind == "sendDTMF":
            if not isinstance(event.get("dtmf"), str):
                raise _RefusedError("sendDTMF without a dtmf string")
        else:
            raise _RefusedError(f"unknown event {kind!r}")

    def _check_play_audio(self, event: JsonObject) -> None:
        """The stream's content type and rate on every playAudio (Plivo support: switching
        codecs between playAudio events is not supported)."""
        media = event.get("media")
        if not isinstance(media, dict):
            raise _RefusedError("playAudio without a media object")
        content_type = PLIVO_CODECS[self.encoding][0]
        rate = self.audio_format.sample_rate
        if (media.get("contentType"), media.get("sampleRate")) != (content_type, rate):
            raise _RefusedError(
                f"playAudio as {media.get('contentType')!r} at {media.get('sampleRate')!r} "
                f"on a {content_type} {rate} Hz stream"
            )

    def _on_media(self, event: JsonObject, now: float) -> None:
        media = event.get("media")
        encoded = media.get("payload") if isinstance(media, dict) else None
        if not isinstance(encoded, str):
            raise _RefusedError("media without a media.payload string")
        try:
            payload = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise _RefusedError("media.payload is not base64", TELNYX_INVALID_MEDIA) from None
        if len(payload) % self.audio_format.bytes_per_sample:
            raise _RefusedError(f"media.payload holds a partial sample ({len(payload)} bytes)")
        self.media.append(MediaFrame(payload, now))
        self.playout.add_audio(now, len(payload))

    def _on_mark(self, mark: object, now: float) -> None:
        """A mark (Twilio, Telnyx: the ``mark`` object; Plivo: the checkpoint itself)."""
        name = mark.get("name") if isinstance(mark, dict) else None
        if not isinstance(name, str):
            where = "checkpoint.name" if self.dialect == "plivo" else "mark.name"
            raise _RefusedError(f"mark without a {where} string")
        self.playout.add_mark(now, name)
        self._wake_marks.set()

    async def _on_clear(self, now: float) -> None:
        self.clears.append(now)
        async with self._echo_lock:
            pending = self.playout.clear(now)
            if self.dialect == "plivo":  # checkpoints not played are not answered
                self.marks_dropped.extend(pending)
                await self._send_quietly(
                    {
                        "event": "clearedAudio",
                        "sequenceNumber": self._next_sequence(),
                        "streamId": self.stream_id,
                    }
                )
            else:
                for name in pending:
                    await self._echo(name, cleared=True)
        self._wake_marks.set()

    async def _mark_loop(self) -> None:
        while not self.closed.is_set():
            self._wake_marks.clear()
            deadline = self.playout.next_deadline()
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_marks.wait(), wait)
            async with self._echo_lock:
                for name in self.playout.due_marks(time.monotonic()):
                    await self._echo(name, cleared=False)
            await self._notify()

    async def _echo(self, name: str, *, cleared: bool) -> None:
        if self.closed.is_set():
            return
        try:
            await self._send_json(self._mark_echo(name))
        except ConnectionClosed:
            return
        self.mark_echoes.append(MarkEcho(name, time.monotonic(), cleared))

    async def _send_quietly(self, message: JsonObject) -> None:
        if not self.closed.is_set():
            with contextlib.suppress(ConnectionClosed):
                await self._send_json(message)

    async def _reject(self, rejected: _RefusedError) -> None:
        """Record a message the real carrier would refuse; Telnyx also says so on the socket."""
        self.protocol_errors.append(rejected.reason)
        if self.dialect == "telnyx" and not self.closed.is_set():
            with contextlib.suppress(ConnectionClosed):
                await self.send_error(*rejected.telnyx_error)

    # -- plumbing --------------------------------------------------------------

    def _connection(self) -> ClientConnection:
        if self._ws is None:
            raise RuntimeError("call connect() first")
        return self._ws

    async def _send_json(self, message: JsonObject) -> None:
        text = json.dumps(message, separators=(",", ":"))
        await self._connection().send(text)
        self.sent.append(text)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _summary(self) -> str:
        return (
            f"{len(self.media)} media ({len(self.received_audio())} bytes), "
            f"marks echoed {self.marks_echoed()}, {len(self.clears)} clears, "
            f"events {[e.get('event') for e in self.events][-10:]}, "
            f"protocol errors {self.protocol_errors[-3:]}, closed={self.closed.is_set()}"
        )


def _carrier_format(dialect: CarrierDialect, encoding: str, sample_rate: int) -> AudioFormat:
    if dialect == "plivo":
        allowed = {("PCMU", 8000), ("L16", 8000), ("L16", 16000)}
        if (encoding, sample_rate) not in allowed:
            raise ValueError("Plivo streams audio/x-mulaw at 8000 Hz or audio/x-l16 at 8 or 16 kHz")
        return AudioFormat(PLIVO_CODECS[encoding][1], sample_rate)
    if dialect == "twilio":
        if (encoding, sample_rate) != ("PCMU", 8000):
            raise ValueError("Twilio media streams are always audio/x-mulaw at 8000 Hz")
        return AudioFormat(Encoding.PCMU, 8000)
    if encoding not in TELNYX_CODECS:
        known = ", ".join(TELNYX_CODECS)
        raise ValueError(f"the emulator times playout for Telnyx {known} only, not {encoding!r}")
    return AudioFormat(TELNYX_CODECS[encoding], sample_rate)


def _telnyx_call_control_id() -> str:
    return "v3:" + secrets.token_urlsafe(40)


def _ids(dialect: CarrierDialect) -> tuple[str, str, str]:
    """A new (call id, stream id, account id) in the carrier's shapes."""
    if dialect == "twilio":
        return twilio_sid("CA"), twilio_sid("MZ"), twilio_sid("AC")
    if dialect == "telnyx":
        return _telnyx_call_control_id(), str(uuid.uuid4()).upper(), str(uuid.uuid4())
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    auth_id = "MA" + "".join(secrets.choice(alphabet) for _ in range(18))
    return str(uuid.uuid4()), str(uuid.uuid4()), auth_id
