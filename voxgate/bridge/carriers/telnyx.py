"""Telnyx Media Streaming dialect, in both roles (sans-I/O).

Theory of operation
-------------------
Telnyx opens a WebSocket to voxgate (``stream_url``) and speaks JSON text
frames; voxgate is then the *application side*
(:meth:`TelnyxDialect.parse_upstream`, :meth:`TelnyxDialect.format_downstream`).
A bot written for Telnyx (pipecat's ``TelnyxFrameSerializer``) can instead be
served by voxgate acting as Telnyx, the *telephony side*
(:meth:`TelnyxDialect.format_upstream`, :meth:`TelnyxDialect.parse_downstream`),
and then receives what Telnyx would send.

One instance per stream; its state::

    NEW --connected--> CONNECTED --start--> STARTED --stop--> (nothing follows)
     `-------------------start---------------^      (error frames: any time)

``start`` (parsed, or formatted as :class:`StreamStarted`) sets the stream id
(top-level ``stream_id``), the call id (``start.call_control_id``, the one the
REST API takes), the account (``user_id``) and the media format. Media, DTMF
and marks before it raise ``not_started``; a message naming another
``stream_id`` raises ``wrong_stream`` (messages to Telnyx carry no
``stream_id``: absent is fine). Telnyx does not guarantee the order of media
frames, so ``sequence_number`` and ``media.chunk`` are parsed to ``int`` for
the call's reorderer. As telephony side the instance numbers what it sends
like Telnyx: ``connected`` unnumbered, ``start`` ``"1"``, then each message
the next; ``chunk`` from 1 per track; ``timestamp`` the milliseconds of audio
already sent on the track unless the event carries ``timestamp_ms``. Error
frames are not numbered and may come before ``start``.

Encodings: ``PCMU`` and ``PCMA`` (G.711), and ``L16``, which is the RTP
payload (Telnyx sends "base64-encoded RTP payloads without RTP headers"), so
network byte order per RFC 3551 section 4.5.11: :attr:`Encoding.L16`, no
byte swap. ``G722``, ``OPUS``, ``AMR-WB`` and rates outside voxgate's are
``unsupported`` (fatal, close code 1003). Hangup and transfer are REST calls
(:mod:`.rest`): ``format_downstream`` returns ``None`` for them, for DTMF to
send and for transcripts. Error handling otherwise follows :mod:`.twilio`
(same envelope rules and helpers): a ``start`` missing a required field is
fatal (1008), other bad messages are dropped; binary messages are
``malformed_json``.

Checked with the search tool against Telnyx's "Stream call media over
WebSocket" AsyncAPI page (developers.telnyx.com/api-reference/websockets/):
``connected`` is ``{"event":"connected","version":"1.0.0"}``; ``start`` has
``sequence_number`` "1" and the top-level ``stream_id``; Telnyx also sends
``dtmf``, ``mark``, ``error`` and ``stop`` frames; the application may send
``media``, ``mark`` and ``clear``; a mark comes back when the media before it
has played (at once if none is queued, and clear returns queued marks);
"Media frame order is not guaranteed". The search returned only that page's
head, not the frame schemas: the ``error`` frame shape
``{"event":"error","stream_id","payload":{"code":100002,"title","detail"}}`` is
taken from an open-source adapter written against that page (openclaw's
``stream-frame-adapter``); an ``error`` member in place of ``payload``, seen
in other code, is accepted too. Other field names follow
../shared/PROTOCOLS.md and pipecat's ``runner/utils.py`` (``stream_id``,
``start.call_control_id``, ``start.media_format.encoding``, ``from``, ``to``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeVar

from voxgate.bridge.carriers.twilio import (
    CLOSE_UNSUPPORTED_DATA,
    JsonObject,
    OutgoingCounters,
    as_fatal,
    audio_format,
    check_stream,
    decode_audio,
    dump,
    encode_audio,
    field_counter,
    field_digit,
    field_object,
    field_optional_object,
    field_optional_str,
    field_parameters,
    field_str,
    json_type,
    load_message,
    not_started,
)
from voxgate.bridge.dialect import Message
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
from voxgate.errors import ProtocolError

_Event = TypeVar("_Event", UpstreamEvent, DownstreamEvent)

_ENCODINGS: Final = {"pcmu": Encoding.PCMU, "pcma": Encoding.PCMA, "l16": Encoding.L16}
_NAMES: Final = {Encoding.PCMU: "PCMU", Encoding.PCMA: "PCMA", Encoding.L16: "L16"}


class TelnyxDialect:
    """One Telnyx media stream's translator (see the module docstring)."""

    name = "telnyx"

    def __init__(self) -> None:
        self.stream_id: str | None = None  # stream_id
        self.call_id: str | None = None  # start.call_control_id, for the REST API
        self.account_id: str | None = None  # start.user_id
        self.media_format: AudioFormat = PCMU_8K
        self._counters = OutgoingCounters()
        self._upstream: dict[str, Callable[[JsonObject], UpstreamEvent]] = {
            "connected": self._parse_connected,
            "start": self._parse_start,
            "media": self._parse_media,
            "dtmf": self._parse_dtmf,
            "mark": self._parse_mark,
            "stop": self._parse_stop,
            "error": self._parse_error,
        }
        self._downstream: dict[str, Callable[[JsonObject], DownstreamEvent]] = {
            "media": self._parse_audio,
            "mark": self._parse_mark_request,
            "clear": self._parse_clear,
        }

    # --- application side: voxgate facing Telnyx ----------------------------------------

    def parse_upstream(self, message: Message) -> UpstreamEvent:
        """The event in a message Telnyx sent."""
        return self._dispatch(message, self._upstream)

    def format_downstream(self, event: DownstreamEvent) -> Message | None:
        """The message for Telnyx; ``None`` for hangup, transfer, DTMF and transcripts."""
        if isinstance(event, AudioSent):
            kind, body = "media", {"media": {"payload": encode_audio(event.payload)}}
        elif isinstance(event, MarkRequested):
            kind, body = "mark", {"mark": {"name": event.name}}
        elif isinstance(event, ClearRequested):
            kind, body = "clear", {}
        else:
            return None  # REST (rest.telnyx_hangup / telnyx_transfer) or nothing at all
        if self.stream_id is None:
            raise not_started(self.name, kind)
        return dump({"event": kind, **body})

    # --- telephony side: voxgate acting as Telnyx towards a bot --------------------------

    def format_upstream(self, event: UpstreamEvent) -> Message | None:
        """What Telnyx would send for ``event``."""
        if isinstance(event, StreamConnected):
            return dump({"event": "connected", "version": event.version})
        if isinstance(event, StreamStarted):
            return dump(self._start_wire(event))
        if isinstance(event, ErrorReported):
            return dump(self._error_wire(event))
        if self.stream_id is None:
            raise not_started(self.name, type(event).__name__)
        wire: JsonObject = {"event": "", "sequence_number": str(self._counters.next_sequence())}
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
            wire["dtmf"] = {"digit": event.digit}
        elif isinstance(event, MarkPlayed):
            wire["event"] = "mark"
            wire["mark"] = {"name": event.name}
        else:
            wire["event"] = "stop"
            wire["stop"] = {"user_id": self.account_id, "call_control_id": self.call_id}
        wire["stream_id"] = self.stream_id
        return dump(wire)

    def parse_downstream(self, message: Message) -> DownstreamEvent:
        """The event in a message a Telnyx-dialect bot sent (media, mark or clear)."""
        return self._dispatch(message, self._downstream)

    # --- parsing ---------------------------------------------------------------------------

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
        check_stream(obj, "stream_id", self.stream_id)

    def _parse_connected(self, obj: JsonObject) -> StreamConnected:
        return StreamConnected(version=field_optional_str(obj, "version") or "1.0.0")

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
        return StreamStarted(
            stream_id=field_str(obj, "stream_id"),
            call_id=field_str(start, "call_control_id", "start"),
            media_format=self._read_media_format(start),
            account_id=field_optional_str(start, "user_id", "start"),
            session_id=field_optional_str(start, "call_session_id", "start"),
            from_number=field_optional_str(start, "from", "start"),
            to_number=field_optional_str(start, "to", "start"),
            custom_parameters=field_parameters(start, "custom_parameters", "start"),
            client_state=field_optional_str(start, "client_state", "start"),
        )

    def _read_media_format(self, start: JsonObject) -> AudioFormat:
        media_format = field_optional_object(start, "media_format", "start")
        if media_format is None:
            return PCMU_8K  # Telnyx's default codec
        where = "start.media_format"
        name = field_str(media_format, "encoding", where)
        return audio_format(
            _ENCODINGS.get(name.lower()),
            name,
            field_counter(media_format, "sample_rate", where),
            field_counter(media_format, "channels", where),
        )

    def _parse_media(self, obj: JsonObject) -> MediaReceived:
        self._require_stream(obj, "media")
        media = field_object(obj, "media")
        return MediaReceived(
            payload=decode_audio(media, "payload", "media", self.media_format),
            sequence=field_counter(obj, "sequence_number"),
            chunk=field_counter(media, "chunk", "media"),
            timestamp_ms=field_counter(media, "timestamp", "media"),
            track=field_optional_str(media, "track", "media") or "inbound",
        )

    def _parse_dtmf(self, obj: JsonObject) -> DtmfReceived:
        self._require_stream(obj, "dtmf")
        digit = field_digit(field_object(obj, "dtmf"), "digit", "dtmf")
        return DtmfReceived(digit, method="telnyx")

    def _parse_mark(self, obj: JsonObject) -> MarkPlayed:
        self._require_stream(obj, "mark")
        return MarkPlayed(field_str(field_object(obj, "mark"), "name", "mark"))

    def _parse_stop(self, obj: JsonObject) -> StreamStopped:
        check_stream(obj, "stream_id", self.stream_id)  # a stop may come before any start
        return StreamStopped()

    def _parse_error(self, obj: JsonObject) -> ErrorReported:
        check_stream(obj, "stream_id", self.stream_id)
        key = "error" if obj.get("payload") is None and obj.get("error") is not None else "payload"
        body = field_object(obj, key)
        code = body.get("code")
        if isinstance(code, bool) or not isinstance(code, int | str) or code == "":
            raise ProtocolError(
                "missing_field",
                f"field '{key}.code' must be a number or a string, not {json_type(code)}",
            )
        detail = field_optional_str(body, "detail", key)
        title = field_optional_str(body, "title", key)
        return ErrorReported(code=str(code), message=detail or title or "")

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

    # --- formatting ------------------------------------------------------------------------

    def _start_wire(self, event: StreamStarted) -> JsonObject:
        if self.stream_id is not None:
            raise ProtocolError("unsupported", f"stream {self.stream_id!r} has already started")
        fmt = event.media_format
        encoding = _NAMES.get(fmt.encoding)
        if encoding is None:
            raise ProtocolError(
                "unsupported",
                f"the telnyx dialect carries PCMU, PCMA or L16 (big-endian), not {fmt}",
                fatal=True,
                close_code=CLOSE_UNSUPPORTED_DATA,
            )
        self.stream_id, self.call_id = event.stream_id, event.call_id
        self.account_id, self.media_format = event.account_id, fmt
        return {
            "event": "start",
            "sequence_number": str(self._counters.next_sequence()),
            "start": {
                "user_id": event.account_id,
                "call_control_id": event.call_id,
                "call_session_id": event.session_id,
                "from": event.from_number,
                "to": event.to_number,
                "client_state": event.client_state,
                "custom_parameters": dict(event.custom_parameters),
                "media_format": {
                    "encoding": encoding,
                    "sample_rate": fmt.sample_rate,
                    "channels": fmt.channels,
                },
            },
            "stream_id": event.stream_id,
        }

    def _error_wire(self, event: ErrorReported) -> JsonObject:
        code = event.code
        numeric = code.isascii() and code.isdecimal() and len(code) < 16  # Telnyx codes: numbers
        wire: JsonObject = {
            "event": "error",
            "payload": {
                "code": int(code) if numeric else code,
                "title": event.message,
                "detail": event.message,
            },
        }
        if self.stream_id is not None:
            wire["stream_id"] = self.stream_id
        return wire
