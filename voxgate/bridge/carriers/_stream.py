"""What the carriers' media-stream dialects share (Twilio, Telnyx, Plivo; sans-I/O).

Theory of operation
-------------------
The carriers speak the same kind of stream over a WebSocket of JSON text
messages named by ``event``; only message names, field names and a few
message shapes differ. :class:`CarrierDialect` holds the common part, a
subclass the carrier's names (class attributes: the messages' names such as
``media``/``playAudio``, ``mark``/``checkpoint``, ``clear``/``clearAudio``,
and the fields') and shapes (the ``_read_start``, ``_start_body``,
``_mark_body``... hooks). One instance per stream; its state::

    NEW --connected--> CONNECTED --start--> STARTED --stop--> (nothing follows)
     `-------------------start---------------^

(A carrier without a hello, Plivo, goes from NEW to STARTED.) ``start``
(parsed, or formatted from a :class:`StreamStarted`) sets the stream id,
the call id, the account and the media format. Media, DTMF and
marks before it raise ``not_started``; a message naming another stream id
(in :attr:`~CarrierDialect.stream_key`) raises ``wrong_stream``; a second
``start`` is ``unsupported``. A ``start`` the stream cannot use is fatal: a
missing or ill-typed field closes with 1008 (policy violation), a media
format voxgate lacks with 1003 (unsupported data), RFC 6455 section 7.4.1.
Any other bad message is dropped and the call goes on. Optional fields may
be absent or null but must be well typed when present (the media timestamp
excepted, below).

As the telephony side the instance numbers what it sends as the carriers
do: ``connected`` unnumbered, ``start`` ``"1"``, then each message the next;
media ``chunk`` from 1 per track and ``timestamp`` the milliseconds of audio
already sent on that track (from the byte count and the media format) unless
the event carries ``timestamp_ms``. Numbers travel as decimal strings (JSON
numbers for a carrier with :attr:`~CarrierDialect.numbers_as_text` false) and
are parsed to ``int`` (either form) for the call to restore order.

A media ``timestamp`` is advisory: one that is not a whole number of
milliseconds within ``0..max_timestamp_ms`` (negative, 10**30, a fraction,
not a number) reaches the call as absent (``None``) and the audio still
goes through; the call then derives the frame's time itself. The bound is
the carrier's clock: :data:`MAX_STREAM_MS` (30 days) for a clock that counts
from the stream's start, thirty times a day-long call (Plivo's stream
timeout defaults to 24 hours; calls are not kept up for weeks);
:data:`MAX_JSON_INTEGER` for a wall clock in Unix milliseconds (Plivo), the
largest integer a JSON number holds exactly (RFC 8259 section 6), so a bot
reading it as a double gets it exactly.
Chunk and sequence numbers are not bounded here: the call's reorderer
resynchronises on jumps.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Final, TypeVar

from voxgate.bridge.dialect import Message
from voxgate.bridge.events import (
    AudioSent,
    ClearRequested,
    DownstreamEvent,
    DtmfReceived,
    ErrorReported,
    HoldChanged,
    MarkPlayed,
    MarkRequested,
    MediaReceived,
    StreamConnected,
    StreamStarted,
    StreamStopped,
    UpstreamEvent,
)
from voxgate.bridge.wire import (
    NOT_FAST,
    Fields,
    JsonObject,
    dump,
    encode_audio,
    fast_audio,
    fast_counter,
    fast_object,
    load_message,
)
from voxgate.codecs.formats import PCMU_8K, AudioFormat, Encoding
from voxgate.errors import ProtocolError, UnsupportedFormatError

_Event = TypeVar("_Event", UpstreamEvent, DownstreamEvent)

CLOSE_POLICY_VIOLATION: Final = 1008  # RFC 6455 section 7.4.1
CLOSE_UNSUPPORTED_DATA: Final = 1003  # RFC 6455 section 7.4.1
MAX_STREAM_MS: Final = 30 * 24 * 3600 * 1000
"""Largest media timestamp on a clock that starts with the stream (30 days)."""
MAX_JSON_INTEGER: Final = 2**53 - 1
"""Largest integer a JSON number holds exactly (RFC 8259 section 6): the bound of a wall clock."""
_TIMESTAMP: Final = re.compile(r"-?[0-9]{1,30}")  # longer is out of any range anyway


@dataclass
class OutgoingCounters:
    """Numbering of what the telephony side sends: sequence, per-track chunk and clock."""

    sequence: int = 0
    chunks: dict[str, int] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence

    def next_media(self, event: MediaReceived, fmt: AudioFormat) -> tuple[int, int]:
        """``(chunk, timestamp_ms)`` for one outgoing media message on ``event.track``."""
        chunk = self.chunks.get(event.track, 0) + 1
        self.chunks[event.track] = chunk
        sent = self.samples.get(event.track, 0)
        self.samples[event.track] = sent + len(event.payload) // fmt.bytes_per_sample
        timestamp = event.timestamp_ms
        if timestamp is None:
            timestamp = sent * 1000 // fmt.sample_rate
        return chunk, timestamp


def read_tracks(start: Fields) -> tuple[str, ...]:
    """The ``start`` object's ``tracks`` (Twilio, Plivo): absent means the caller's alone."""
    tracks = start.data.get("tracks")
    if tracks is None:
        return ("inbound",)
    if not isinstance(tracks, list) or not all(isinstance(t, str) for t in tracks):
        raise start.wrong("tracks", "an array of strings")
    return tuple(tracks)


def as_fatal(error: ProtocolError) -> ProtocolError:
    """The same error, marked fatal (a ``start`` the stream cannot go on without)."""
    if error.fatal:
        return error
    return ProtocolError(error.code, error.message, fatal=True, close_code=CLOSE_POLICY_VIOLATION)


class CarrierDialect(ABC):
    """One carrier media stream's translator; see the module docstring."""

    name: str  # the carrier, in errors and DtmfReceived.method
    stream_key: ClassVar[str]  # the stream id's field: "streamSid", "stream_id"
    sequence_key: ClassVar[str]  # "sequenceNumber", "sequence_number"
    format_key: ClassVar[str]  # start's media format object: "mediaFormat", "media_format"
    rate_key: ClassVar[str]  # its sample rate: "sampleRate", "sample_rate"
    encodings: ClassVar[Mapping[Encoding, str]]  # what the carrier carries, by its wire name
    carries: ClassVar[str]  # the same, in words, for errors
    names_stream_downstream: ClassVar[bool]  # whether the app side puts the stream id on messages
    # The messages' names. Upstream (carrier -> application):
    connected_event: ClassVar[str | None] = "connected"  # None: the carrier sends no hello
    media_event: ClassVar[str] = "media"
    dtmf_event: ClassVar[str] = "dtmf"
    played_event: ClassVar[str] = "mark"  # a mark echoed once the audio before it has played
    stop_event: ClassVar[str] = "stop"
    # Downstream (application -> carrier):
    audio_event: ClassVar[str] = "media"
    mark_event: ClassVar[str] = "mark"
    clear_event: ClassVar[str] = "clear"
    numbers_as_text: ClassVar[bool] = True  # sequence and chunk numbers sent as decimal strings
    max_timestamp_ms: ClassVar[int] = MAX_STREAM_MS  # see the module docstring

    def __init__(self) -> None:
        self.stream_id: str | None = None
        self.call_id: str | None = None  # the id the carrier's REST API takes
        self.account_id: str | None = None
        self.media_format: AudioFormat = PCMU_8K
        self._counters = OutgoingCounters()
        self._upstream: dict[str, Callable[[Fields], UpstreamEvent]] = {
            "start": self._parse_start,
            self.media_event: self._parse_media,
            self.dtmf_event: self._parse_dtmf,
            self.played_event: self._parse_mark,
            self.stop_event: self._parse_stop,
        }
        if self.connected_event is not None:
            self._upstream[self.connected_event] = self._parse_connected
        self._downstream: dict[str, Callable[[Fields], DownstreamEvent]] = {
            self.audio_event: self._parse_audio,
            self.mark_event: self._parse_mark_request,
            self.clear_event: self._parse_clear,
        }
        self._encodings = {wire.lower(): encoding for encoding, wire in self.encodings.items()}
        # The fast path for the one message that matters: audio to the carrier is a fixed
        # text around its base64, when the carrier takes the plain shape of _audio_body.
        self._plain_audio = type(self)._audio_body is CarrierDialect._audio_body
        self._audio_prefix: str | None = None

    # --- the carrier's shapes (hooks) -------------------------------------------------------

    @abstractmethod
    def _parse_connected(self, message: Fields) -> StreamConnected: ...

    @abstractmethod
    def _read_start(self, message: Fields) -> StreamStarted:
        """The event of a ``start`` message; raises on the first unusable field."""
        ...

    @abstractmethod
    def _connected_wire(self, event: StreamConnected) -> JsonObject | None:
        """The carrier's hello; None if it sends none."""
        ...

    @abstractmethod
    def _start_body(self, event: StreamStarted, media_format: JsonObject) -> JsonObject:
        """The ``start`` member of a start message, ``media_format`` included."""
        ...

    @abstractmethod
    def _dtmf_body(self, event: DtmfReceived) -> JsonObject: ...

    @abstractmethod
    def _stop_body(self) -> JsonObject | None:
        """The ``stop`` member of a stop message; None for a stop without one."""
        ...

    @abstractmethod
    def _error_wire(self, event: ErrorReported) -> JsonObject | None:
        """The carrier's error message; None if it sends none."""
        ...

    def _audio_body(self, payload: bytes) -> JsonObject:
        """The members of a downstream audio message besides ``event`` and the stream id."""
        return {"media": {"payload": encode_audio(payload)}}

    def _mark_body(self, name: str) -> JsonObject:
        """The members naming a mark, both ways (a mark to play and a played mark)."""
        return {"mark": {"name": name}}

    def _mark_name(self, message: Fields) -> str:
        """The name in a mark message, either way."""
        return message.object("mark").text("name")

    def _media_body(self, event: MediaReceived, chunk: int, timestamp: int) -> JsonObject:
        """The ``media`` member the telephony side sends."""
        return {
            "track": event.track,
            "chunk": str(chunk),
            "timestamp": str(timestamp),
            "payload": encode_audio(event.payload),
        }

    # --- application side: voxgate facing the carrier ------------------------------------

    def parse_upstream(self, message: Message) -> UpstreamEvent:
        """The event in a message the carrier sent."""
        data = fast_object(message)
        if (
            data is not None
            and self.stream_id is not None
            and data.get("event") == self.media_event
        ):
            event = self._fast_media(data)  # the fast path for media, once started
            if event is not None:
                return event
        return self._dispatch(message, self._upstream, data)

    def _fast_media(self, data: JsonObject) -> MediaReceived | None:
        """What :meth:`_parse_media` makes of a well-formed media message; None for any
        other, which the slow path then judges (and names what is wrong)."""
        stream_id = data.get(self.stream_key)
        media = data.get("media")
        if (stream_id is not None and stream_id != self.stream_id) or type(media) is not dict:
            return None
        payload = fast_audio(media.get("payload"), self.media_format.bytes_per_sample)
        sequence = fast_counter(data.get(self.sequence_key))
        chunk = fast_counter(media.get("chunk"))
        track = media.get("track")
        if payload is None or NOT_FAST in (sequence, chunk):
            return None
        if track is not None and type(track) is not str:
            return None
        return MediaReceived(
            payload=payload,
            sequence=sequence,
            chunk=chunk,
            timestamp_ms=self._timestamp_of(media.get("timestamp")),
            track=track or "inbound",
        )

    def format_downstream(self, event: DownstreamEvent) -> Message | None:
        """The message for the carrier; ``None`` for hangup, transfer, DTMF and transcripts."""
        body: JsonObject
        if isinstance(event, AudioSent):
            if self._plain_audio and self.stream_id is not None:
                return self._audio_message(event.payload)
            kind, body = self.audio_event, self._audio_body(event.payload)
        elif isinstance(event, MarkRequested):
            kind, body = self.mark_event, self._mark_body(event.name)
        elif isinstance(event, ClearRequested):
            kind, body = self.clear_event, {}
        else:
            return None  # a REST call (carriers.rest) or nothing at all
        if self.stream_id is None:
            raise self._not_started(kind)
        if self.names_stream_downstream:
            return _dump({"event": kind, self.stream_key: self.stream_id, **body})
        return _dump({"event": kind, **body})

    def _audio_message(self, payload: bytes) -> str:
        """``{"event":"media",<stream id>,"media":{"payload":"..."}}``, what the general
        path makes of it, from a prefix made once per stream."""
        prefix = self._audio_prefix
        if prefix is None:
            stream = {self.stream_key: self.stream_id} if self.names_stream_downstream else {}
            empty = _dump({"event": self.audio_event, **stream, "media": {"payload": ""}})
            prefix = self._audio_prefix = empty[: -len('"}}')]
        return prefix + encode_audio(payload) + '"}}'

    # --- telephony side: voxgate acting as the carrier towards a bot ----------------------

    def format_upstream(self, event: UpstreamEvent) -> Message | None:
        """What the carrier would send for ``event`` (None: it sends nothing for it)."""
        if isinstance(event, StreamConnected):
            connected = self._connected_wire(event)
            return None if connected is None else _dump(connected)
        if isinstance(event, StreamStarted):
            return _dump(self._start_wire(event))
        if isinstance(event, ErrorReported):
            error = self._error_wire(event)
            return None if error is None else _dump(error)
        if isinstance(event, HoldChanged):
            return None  # carriers' stream protocols have no hold message
        if self.stream_id is None:
            raise self._not_started(type(event).__name__)
        wire: JsonObject = {
            "event": "",
            self.sequence_key: self._number(self._counters.next_sequence()),
        }
        if isinstance(event, MediaReceived):
            chunk, timestamp = self._counters.next_media(event, self.media_format)
            wire["event"] = self.media_event
            wire["media"] = self._media_body(event, chunk, timestamp)
        elif isinstance(event, DtmfReceived):
            wire["event"] = self.dtmf_event
            wire["dtmf"] = self._dtmf_body(event)
        elif isinstance(event, MarkPlayed):
            wire["event"] = self.played_event
            wire.update(self._mark_body(event.name))
        else:
            wire["event"] = self.stop_event
            stop = self._stop_body()
            if stop is not None:
                wire["stop"] = stop
        wire[self.stream_key] = self.stream_id
        return _dump(wire)

    def _number(self, value: int) -> str | int:
        """A sequence or chunk number as the carrier writes it."""
        return str(value) if self.numbers_as_text else value

    def parse_downstream(self, message: Message) -> DownstreamEvent:
        """The event in a message a bot speaking this dialect sent (media, mark or clear)."""
        return self._dispatch(message, self._downstream)

    # --- parsing ---------------------------------------------------------------------------

    def _dispatch(
        self,
        message: Message,
        parsers: Mapping[str, Callable[[Fields], _Event]],
        parsed: JsonObject | None = None,
    ) -> _Event:
        """The event of ``message``; ``parsed``: its object, when the fast path has it."""
        data = parsed if parsed is not None else load_message(message, self.name, allow_nan=True)
        fields = Fields(data)
        return parsers[fields.kind("event", parsers, f"{self.name} event")](fields)

    def _not_started(self, what: str) -> ProtocolError:
        return ProtocolError("not_started", f"{self.name} {what} before the stream's start")

    def _check_stream(self, message: Fields, expected: str | None) -> None:
        """``wrong_stream`` when the message names a stream other than ``expected``."""
        stream_id = message.optional_text(self.stream_key)
        if expected is not None and stream_id is not None and stream_id != expected:
            raise ProtocolError(
                "wrong_stream", f"message for stream {stream_id!r} on stream {expected!r}"
            )

    def _require_stream(self, message: Fields, what: str) -> None:
        if self.stream_id is None:
            raise self._not_started(what)
        self._check_stream(message, self.stream_id)

    def _parse_start(self, message: Fields) -> StreamStarted:
        if self.stream_id is not None:
            raise ProtocolError("unsupported", f"stream {self.stream_id!r} has already started")
        try:
            event = self._read_start(message)
        except ProtocolError as error:
            raise as_fatal(error) from None
        self.stream_id, self.call_id = event.stream_id, event.call_id
        self.account_id, self.media_format = event.account_id, event.media_format
        return event

    def _read_media_format(self, start: Fields) -> AudioFormat:
        """The format in ``start`` (mu-law 8 kHz if none); ``unsupported`` if voxgate lacks it."""
        media_format = start.optional_object(self.format_key)
        if media_format is None:
            return PCMU_8K  # both carriers' default
        name = media_format.text("encoding")
        rate = media_format.optional_counter(self.rate_key)
        channels = media_format.optional_counter("channels")
        try:
            encoding = self._encodings.get(name.lower())
            if encoding is None:
                raise UnsupportedFormatError(f"audio encoding {name!r} is not supported")
            return AudioFormat(
                encoding, 8000 if rate is None else rate, 1 if channels is None else channels
            )
        except UnsupportedFormatError as error:
            raise ProtocolError(
                "unsupported", str(error), fatal=True, close_code=CLOSE_UNSUPPORTED_DATA
            ) from None

    def _parse_media(self, message: Fields) -> MediaReceived:
        self._require_stream(message, "media")
        media = message.object("media")
        return MediaReceived(
            payload=media.audio("payload", self.media_format),
            sequence=message.optional_counter(self.sequence_key),
            chunk=media.optional_counter("chunk"),
            timestamp_ms=self._timestamp(media),
            track=media.optional_text("track") or "inbound",
        )

    def _timestamp(self, media: Fields) -> int | None:
        """The media timestamp, or None when absent or unusable (see the module docstring)."""
        return self._timestamp_of(media.data.get("timestamp"))

    def _timestamp_of(self, value: object) -> int | None:
        if isinstance(value, str) and _TIMESTAMP.fullmatch(value):
            value = int(value)
        if type(value) is not int or not 0 <= value <= self.max_timestamp_ms:
            return None
        return value

    def _parse_dtmf(self, message: Fields) -> DtmfReceived:
        self._require_stream(message, "dtmf")
        return DtmfReceived(message.object("dtmf").digit("digit"), method=self.name)

    def _parse_mark(self, message: Fields) -> MarkPlayed:
        self._require_stream(message, "mark")
        return MarkPlayed(self._mark_name(message))

    def _parse_stop(self, message: Fields) -> StreamStopped:
        self._check_stream(message, self.stream_id)  # a stop may come before any start
        return StreamStopped()

    def _parse_audio(self, message: Fields) -> AudioSent:
        self._require_stream(message, "media")
        return AudioSent(message.object("media").audio("payload", self.media_format))

    def _parse_mark_request(self, message: Fields) -> MarkRequested:
        self._require_stream(message, "mark")
        return MarkRequested(self._mark_name(message))

    def _parse_clear(self, message: Fields) -> ClearRequested:
        self._require_stream(message, "clear")
        return ClearRequested()

    # --- formatting ------------------------------------------------------------------------

    def _start_wire(self, event: StreamStarted) -> JsonObject:
        if self.stream_id is not None:
            raise ProtocolError("unsupported", f"stream {self.stream_id!r} has already started")
        fmt = event.media_format
        encoding = self.encodings.get(fmt.encoding)
        if encoding is None:
            raise ProtocolError(
                "unsupported",
                f"the {self.name} dialect carries {self.carries}, not {fmt}",
                fatal=True,
                close_code=CLOSE_UNSUPPORTED_DATA,
            )
        self.stream_id, self.call_id = event.stream_id, event.call_id
        self.account_id, self.media_format = event.account_id, fmt
        media_format = {
            "encoding": encoding,
            self.rate_key: fmt.sample_rate,
            "channels": fmt.channels,
        }
        return {
            "event": "start",
            self.sequence_key: self._number(self._counters.next_sequence()),
            "start": self._start_body(event, media_format),
            self.stream_key: event.stream_id,
        }


def _dump(wire: JsonObject) -> str:
    return dump(wire)
