"""Twilio Media Streams dialect, in both roles (sans-I/O).

Theory of operation
-------------------
Twilio opens a WebSocket to voxgate and speaks JSON text frames; voxgate is
then the *application side* (:meth:`TwilioDialect.parse_upstream`,
:meth:`TwilioDialect.format_downstream`). A bot written for Twilio (pipecat's
``TwilioFrameSerializer``, the Twilio + OpenAI Realtime samples) can instead be
served by voxgate acting as Twilio, the *telephony side*
(:meth:`TwilioDialect.format_upstream`, :meth:`TwilioDialect.parse_downstream`):
it then receives exactly what Twilio would send.

One instance per stream; its state::

    NEW --connected--> CONNECTED --start--> STARTED --stop--> (nothing follows)
     `-------------------start---------------^

``start`` (parsed, or formatted as :class:`StreamStarted`) sets the stream id
(``streamSid``), the call id (``callSid``), the account and the media format.
Media, DTMF and marks before it raise ``not_started``; a message naming
another ``streamSid`` raises ``wrong_stream``. As telephony side the instance
numbers what it sends: ``connected`` has no ``sequenceNumber``, ``start`` is
``"1"`` and every later message the next one; media ``chunk`` counts from 1 per
track and ``timestamp`` is the milliseconds of audio already sent on that track
(computed from the byte count and the media format unless the event carries
``timestamp_ms``). Numbers travel as decimal strings, as Twilio sends them,
and are parsed to ``int`` (JSON integers too) for the call to restore order.

Twilio has no socket message for hangup, transfer, DTMF to send or
transcripts (hangup and transfer are REST calls: :mod:`.rest`), so
``format_downstream`` returns ``None`` for those, ``format_upstream`` for
:class:`ErrorReported` (Twilio sends no error frames).

Errors (:class:`ProtocolError`, codes of :mod:`voxgate.bridge.dialect`) drop
the message and the call goes on, except a ``start`` the stream cannot use: a
missing or ill-typed field (fatal, close code 1008 policy violation) or a media
format voxgate lacks (``unsupported``, fatal, 1003 unsupported data). Binary
WebSocket messages are not part of the dialect (JSON text only):
``malformed_json``. The size limit is checked before JSON parsing. Optional
fields (``streamSid`` on media, ``track``, ``chunk``...) may be absent or null
but must be well typed when present.

Checked with the search tool against Twilio's "Media Streams - WebSocket
Messages" page: ``connected`` is ``{"event","protocol":"Call","version":"1.0.0"}``
without ``sequenceNumber``; ``start`` comes once right after it with
``sequenceNumber`` 1 ("then incremented for each subsequent message") and
``streamSid, accountSid, callSid, tracks, customParameters, mediaFormat``.
Twilio error 31924 confirms that only ``media``, ``mark`` and ``clear`` may be
sent back, as base64 ``audio/x-mulaw`` 8000 Hz without a file header. The
media, dtmf (``track:"inbound_track"``), mark and stop shapes follow
../shared/PROTOCOLS.md and pipecat's ``serializers/twilio.py``. This module
also holds the wire helpers :mod:`.telnyx` shares (same envelope rules).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, TypeVar

from voxgate.bridge.dialect import MAX_MESSAGE_BYTES, Message
from voxgate.bridge.events import (
    AudioSent,
    ClearRequested,
    DownstreamEvent,
    DtmfReceived,
    ErrorReported,
    MarkPlayed,
    MarkRequested,
    MediaReceived,
    StreamConnected,
    StreamStarted,
    StreamStopped,
    UpstreamEvent,
)
from voxgate.codecs.formats import PCMU_8K, AudioFormat, Encoding
from voxgate.errors import ProtocolError, UnsupportedFormatError

# --- wire helpers (shared with carriers.telnyx) ----------------------------------------

JsonObject = dict[str, Any]
_Event = TypeVar("_Event", UpstreamEvent, DownstreamEvent)
_T = TypeVar("_T")

CLOSE_POLICY_VIOLATION: Final = 1008  # RFC 6455 section 7.4.1
CLOSE_UNSUPPORTED_DATA: Final = 1003  # RFC 6455 section 7.4.1
DTMF_DIGITS: Final = frozenset("0123456789*#ABCD")
_COUNTER = re.compile(r"[0-9]{1,15}")  # a decimal string; 15 digits is plenty for any counter


def load_message(message: Message, dialect: str) -> JsonObject:
    """The JSON object in one WebSocket message; the size is checked before parsing."""
    size = len(message)
    if isinstance(message, str) and size > MAX_MESSAGE_BYTES // 4:  # UTF-8 may then exceed it
        size = len(message.encode("utf-8", "surrogatepass"))
    if size > MAX_MESSAGE_BYTES:
        raise ProtocolError(
            "message_too_large", f"{dialect} message of {size} bytes exceeds {MAX_MESSAGE_BYTES}"
        )
    if not isinstance(message, str):
        raise ProtocolError("malformed_json", f"{dialect} speaks JSON text, not binary messages")
    try:
        value = json.loads(message)
    except (ValueError, RecursionError) as error:
        raise ProtocolError("malformed_json", f"{dialect} message is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise ProtocolError("malformed_json", f"{dialect} message is a JSON {json_type(value)}")
    return value


def dump(wire: JsonObject) -> str:
    """Compact JSON text for one message."""
    return json.dumps(wire, separators=(",", ":"))


_JSON_TYPES: Final[dict[type, str]] = {
    dict: "object", list: "array", str: "string", bool: "boolean",
    int: "number", float: "number", type(None): "null",
}  # fmt: skip


def json_type(value: object) -> str:
    """The JSON name of a parsed value's type (for error messages)."""
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _ill_typed(where: str, key: str, expected: str, value: object) -> ProtocolError:
    path = f"{where}.{key}" if where else key
    return ProtocolError(
        "missing_field", f"field {path!r} must be {expected}, not a JSON {json_type(value)}"
    )


def _required(obj: JsonObject, key: str, where: str, kind: type[_T], expected: str) -> _T:
    value = obj.get(key)
    if value is None:
        path = f"{where}.{key}" if where else key
        raise ProtocolError("missing_field", f"field {path!r} is missing")
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _ill_typed(where, key, expected, value)
    return value


def field_object(obj: JsonObject, key: str, where: str = "") -> JsonObject:
    """A required JSON object member."""
    return _required(obj, key, where, dict, "an object")


def field_optional_object(obj: JsonObject, key: str, where: str = "") -> JsonObject | None:
    """An optional JSON object member (absent or null: ``None``)."""
    return None if obj.get(key) is None else field_object(obj, key, where)


def field_str(obj: JsonObject, key: str, where: str = "") -> str:
    """A required string member."""
    return _required(obj, key, where, str, "a string")


def field_optional_str(obj: JsonObject, key: str, where: str = "") -> str | None:
    """An optional string member (absent or null: ``None``)."""
    return None if obj.get(key) is None else field_str(obj, key, where)


def field_counter(obj: JsonObject, key: str, where: str = "") -> int | None:
    """An optional non-negative integer, sent as a decimal string (or a JSON integer)."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, str) and _COUNTER.fullmatch(value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise _ill_typed(where, key, "a non-negative integer or its decimal string", value)


def field_parameters(obj: JsonObject, key: str, where: str = "") -> Mapping[str, str]:
    """An optional object of string values (custom parameters), read-only."""
    value = field_optional_object(obj, key, where)
    if value is None:
        return MappingProxyType({})
    for name, item in value.items():
        if not isinstance(item, str):
            raise _ill_typed(f"{where}.{key}" if where else key, name, "a string", item)
    return MappingProxyType(dict(value))


def field_digit(obj: JsonObject, key: str, where: str = "") -> str:
    """A required DTMF digit: one of 0-9, *, #, A-D."""
    digit = field_str(obj, key, where)
    if digit not in DTMF_DIGITS:
        raise _ill_typed(where, key, "a DTMF digit (0-9, *, #, A-D)", digit)
    return digit


def decode_audio(obj: JsonObject, key: str, where: str, fmt: AudioFormat) -> bytes:
    """The raw bytes of a base64 payload, in whole samples of ``fmt``."""
    text, path = field_str(obj, key, where), f"{where}.{key}"
    try:
        payload = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("bad_audio", f"field {path!r} is not valid base64") from None
    if len(payload) % fmt.bytes_per_sample:
        raise ProtocolError(
            "bad_audio", f"field {path!r} holds {len(payload)} bytes, not whole {fmt} samples"
        )
    return payload


def encode_audio(payload: bytes) -> str:
    return base64.b64encode(payload).decode("ascii")


def check_stream(obj: JsonObject, key: str, expected: str | None) -> None:
    """``wrong_stream`` when the message names a stream other than ``expected``."""
    stream_id = field_optional_str(obj, key)
    if expected is not None and stream_id is not None and stream_id != expected:
        raise ProtocolError(
            "wrong_stream", f"message for stream {stream_id!r} on stream {expected!r}"
        )


def audio_format(
    encoding: Encoding | None, name: str, rate: int | None, channels: int | None
) -> AudioFormat:
    """The stream's :class:`AudioFormat`; ``unsupported`` (fatal, 1003) if voxgate lacks it."""
    try:
        if encoding is None:
            raise UnsupportedFormatError(f"audio encoding {name!r} is not supported")
        rate = 8000 if rate is None else rate
        return AudioFormat(encoding, rate, 1 if channels is None else channels)
    except UnsupportedFormatError as error:
        raise ProtocolError(
            "unsupported", str(error), fatal=True, close_code=CLOSE_UNSUPPORTED_DATA
        ) from None


def as_fatal(error: ProtocolError) -> ProtocolError:
    """The same error, marked fatal (a ``start`` the stream cannot go on without)."""
    if error.fatal:
        return error
    return ProtocolError(error.code, error.message, fatal=True, close_code=CLOSE_POLICY_VIOLATION)


def not_started(dialect: str, what: str) -> ProtocolError:
    return ProtocolError("not_started", f"{dialect} {what} before the stream's start")


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


# --- the Twilio dialect -----------------------------------------------------------------

MULAW: Final = "audio/x-mulaw"
_ENCODINGS: Final = {MULAW: Encoding.PCMU}  # Twilio streams mu-law only


class TwilioDialect:
    """One Twilio media stream's translator (see the module docstring)."""

    name = "twilio"

    def __init__(self) -> None:
        self.stream_id: str | None = None  # streamSid
        self.call_id: str | None = None  # callSid, for the REST API
        self.account_id: str | None = None  # accountSid
        self.media_format: AudioFormat = PCMU_8K
        self._counters = OutgoingCounters()
        self._upstream: dict[str, Callable[[JsonObject], UpstreamEvent]] = {
            "connected": self._parse_connected,
            "start": self._parse_start,
            "media": self._parse_media,
            "dtmf": self._parse_dtmf,
            "mark": self._parse_mark,
            "stop": self._parse_stop,
        }
        self._downstream: dict[str, Callable[[JsonObject], DownstreamEvent]] = {
            "media": self._parse_audio,
            "mark": self._parse_mark_request,
            "clear": self._parse_clear,
        }

    # --- application side: voxgate facing Twilio ----------------------------------------

    def parse_upstream(self, message: Message) -> UpstreamEvent:
        """The event in a message Twilio sent."""
        return self._dispatch(message, self._upstream)

    def format_downstream(self, event: DownstreamEvent) -> Message | None:
        """The message for Twilio; ``None`` for hangup, transfer, DTMF and transcripts."""
        if isinstance(event, AudioSent):
            kind, body = "media", {"media": {"payload": encode_audio(event.payload)}}
        elif isinstance(event, MarkRequested):
            kind, body = "mark", {"mark": {"name": event.name}}
        elif isinstance(event, ClearRequested):
            kind, body = "clear", {}
        else:
            return None  # REST (rest.twilio_hangup / twilio_transfer) or nothing at all
        if self.stream_id is None:
            raise not_started(self.name, kind)
        return dump({"event": kind, "streamSid": self.stream_id, **body})

    # --- telephony side: voxgate acting as Twilio towards a bot --------------------------

    def format_upstream(self, event: UpstreamEvent) -> Message | None:
        """What Twilio would send for ``event``; ``None`` for :class:`ErrorReported`."""
        if isinstance(event, StreamConnected):
            return dump(
                {"event": "connected", "protocol": event.protocol, "version": event.version}
            )
        if isinstance(event, StreamStarted):
            return dump(self._start_wire(event))
        if isinstance(event, ErrorReported):
            return None
        if self.stream_id is None:
            raise not_started(self.name, type(event).__name__)
        wire: JsonObject = {"event": "", "sequenceNumber": str(self._counters.next_sequence())}
        if isinstance(event, MediaReceived):
            chunk, timestamp = self._counters.next_media(event, self.media_format)
            wire["event"] = "media"
            wire["media"] = {
                "track": event.track,
                "chunk": str(chunk),
                "timestamp": str(timestamp),
                "payload": encode_audio(event.payload),
            }
        elif isinstance(event, DtmfReceived):
            wire["event"] = "dtmf"
            wire["dtmf"] = {"track": "inbound_track", "digit": event.digit}
        elif isinstance(event, MarkPlayed):
            wire["event"] = "mark"
            wire["mark"] = {"name": event.name}
        else:
            wire["event"] = "stop"
            wire["stop"] = {"accountSid": self.account_id, "callSid": self.call_id}
        wire["streamSid"] = self.stream_id
        return dump(wire)

    def parse_downstream(self, message: Message) -> DownstreamEvent:
        """The event in a message a Twilio-dialect bot sent (media, mark or clear)."""
        return self._dispatch(message, self._downstream)

    def _dispatch(
        self, message: Message, parsers: dict[str, Callable[[JsonObject], _Event]]
    ) -> _Event:
        obj = load_message(message, self.name)
        event = field_str(obj, "event")
        parser = parsers.get(event)
        if parser is None:
            known = ", ".join(parsers)
            raise ProtocolError(
                "unknown_event", f"unknown {self.name} event {event!r} (expected one of {known})"
            )
        return parser(obj)

    def _require_stream(self, obj: JsonObject, what: str) -> None:
        if self.stream_id is None:
            raise not_started(self.name, what)
        check_stream(obj, "streamSid", self.stream_id)

    def _parse_connected(self, obj: JsonObject) -> StreamConnected:
        protocol, version = field_optional_str(obj, "protocol"), field_optional_str(obj, "version")
        return StreamConnected(protocol or "Call", version or "1.0.0")

    def _parse_start(self, obj: JsonObject) -> StreamStarted:
        if self.stream_id is not None:
            raise ProtocolError("unsupported", f"stream {self.stream_id!r} has already started")
        try:
            event = self._read_start(obj)
        except ProtocolError as error:
            raise as_fatal(error) from None
        self.stream_id, self.call_id = event.stream_id, event.call_id
        self.account_id, self.media_format = event.account_id, event.media_format
        return event

    def _read_start(self, obj: JsonObject) -> StreamStarted:
        start = field_object(obj, "start")
        stream_id = field_str(start, "streamSid", "start")
        check_stream(obj, "streamSid", stream_id)
        tracks = ["inbound"] if start.get("tracks") is None else start["tracks"]
        if not isinstance(tracks, list) or not all(isinstance(t, str) for t in tracks):
            raise _ill_typed("start", "tracks", "an array of strings", tracks)
        return StreamStarted(
            stream_id=stream_id,
            call_id=field_str(start, "callSid", "start"),
            media_format=self._read_media_format(start),
            account_id=field_optional_str(start, "accountSid", "start"),
            tracks=tuple(tracks),
            custom_parameters=field_parameters(start, "customParameters", "start"),
        )

    def _read_media_format(self, start: JsonObject) -> AudioFormat:
        media_format = field_optional_object(start, "mediaFormat", "start")
        if media_format is None:
            return PCMU_8K
        where = "start.mediaFormat"
        name = field_str(media_format, "encoding", where)
        return audio_format(
            _ENCODINGS.get(name.lower()),
            name,
            field_counter(media_format, "sampleRate", where),
            field_counter(media_format, "channels", where),
        )

    def _parse_media(self, obj: JsonObject) -> MediaReceived:
        self._require_stream(obj, "media")
        media = field_object(obj, "media")
        return MediaReceived(
            payload=decode_audio(media, "payload", "media", self.media_format),
            sequence=field_counter(obj, "sequenceNumber"),
            chunk=field_counter(media, "chunk", "media"),
            timestamp_ms=field_counter(media, "timestamp", "media"),
            track=field_optional_str(media, "track", "media") or "inbound",
        )

    def _parse_dtmf(self, obj: JsonObject) -> DtmfReceived:
        self._require_stream(obj, "dtmf")
        return DtmfReceived(
            field_digit(field_object(obj, "dtmf"), "digit", "dtmf"), method="twilio"
        )

    def _parse_mark(self, obj: JsonObject) -> MarkPlayed:
        self._require_stream(obj, "mark")
        return MarkPlayed(field_str(field_object(obj, "mark"), "name", "mark"))

    def _parse_stop(self, obj: JsonObject) -> StreamStopped:
        check_stream(obj, "streamSid", self.stream_id)  # a stop may come before any start
        return StreamStopped()

    def _parse_audio(self, obj: JsonObject) -> AudioSent:
        self._require_stream(obj, "media")
        media = field_object(obj, "media")
        return AudioSent(decode_audio(media, "payload", "media", self.media_format))

    def _parse_mark_request(self, obj: JsonObject) -> MarkRequested:
        self._require_stream(obj, "mark")
        return MarkRequested(field_str(field_object(obj, "mark"), "name", "mark"))

    def _parse_clear(self, obj: JsonObject) -> ClearRequested:
        self._require_stream(obj, "clear")
        return ClearRequested()

    def _start_wire(self, event: StreamStarted) -> JsonObject:
        if self.stream_id is not None:
            raise ProtocolError("unsupported", f"stream {self.stream_id!r} has already started")
        fmt = event.media_format
        if fmt.encoding is not Encoding.PCMU:
            raise ProtocolError(
                "unsupported",
                f"the twilio dialect carries {MULAW} only, not {fmt}",
                fatal=True,
                close_code=CLOSE_UNSUPPORTED_DATA,
            )
        self.stream_id, self.call_id = event.stream_id, event.call_id
        self.account_id, self.media_format = event.account_id, fmt
        return {
            "event": "start",
            "sequenceNumber": str(self._counters.next_sequence()),
            "start": {
                "accountSid": event.account_id,
                "streamSid": event.stream_id,
                "callSid": event.call_id,
                "tracks": list(event.tracks),
                "customParameters": dict(event.custom_parameters),
                "mediaFormat": {
                    "encoding": MULAW,
                    "sampleRate": fmt.sample_rate,
                    "channels": fmt.channels,
                },
            },
            "streamSid": event.stream_id,
        }
