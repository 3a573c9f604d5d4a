"""voxgate.v1, the protocol voxgate speaks to bots, as a sans-I/O dialect.

The contract is docs/PROTOCOL.md; ``schema.json`` next to this module is its JSON Schema.

Theory of operation
-------------------
Towards a bot voxgate is the telephony side: it formats upstream events (start, media, dtmf,
mark, stop, error) with :meth:`V1Dialect.format_upstream` and parses what the bot sends with
:meth:`V1Dialect.parse_downstream`. The two mirror methods (:meth:`~V1Dialect.parse_upstream`,
:meth:`~V1Dialect.format_downstream`) serve the bot SDK, the load tester and tests that play
the bridge. Every message is one JSON object in a text frame, named by its ``type``.

*Transport.* Chosen once per socket by WebSocket subprotocol negotiation (RFC 6455 sections
1.9 and 4.1): voxgate offers :data:`SUBPROTOCOLS`; if the bot's server selects
``voxgate.v1.binary`` audio travels as bare binary frames both ways (see
:func:`transport_for`), otherwise as base64 inside JSON. Other messages are always JSON. A
binary frame on a JSON-transport socket is refused with close code 1003 (RFC 6455 section
7.4.1: "received a type of data it cannot accept").

*State machine* of the upstream direction (one socket carries one stream)::

    IDLE --start--> STREAMING --stop--> STOPPED

:meth:`~V1Dialect.parse_upstream` refuses anything but ``start`` while IDLE and everything
after ``stop`` (``not_started``), and a second ``start`` (``unsupported``).
:meth:`~V1Dialect.format_upstream` makes the same transitions without checking them (the call
orders its own output). The downstream direction has no state of its own; it only uses the
media format learnt from ``start`` to insist on whole 16-bit samples.

*Counters.* ``seq`` numbers the media messages of a socket from 1. ``timestamp_ms`` is the
event's own when it has one (a carrier's media clock), otherwise the samples sent since
``start`` converted to milliseconds, rounded down. Binary frames carry neither: both ends
count them by the same rule, so a parsed binary frame gets the values its sender counted.

*Leniency.* Senders follow ``schema.json`` exactly; this parser ignores fields it does not
know and treats ``null`` as absent, so later minor revisions can add optional fields. The
size limit, JSON parsing and typed field access are :mod:`voxgate.bridge.wire`'s, shared with
the carrier dialects.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from types import MappingProxyType
from typing import Any, Final, Literal, assert_never

from voxgate.bridge.dialect import Message
from voxgate.bridge.events import (
    AudioSent,
    ClearRequested,
    DownstreamEvent,
    DtmfReceived,
    DtmfSendRequested,
    ErrorReported,
    HangupRequested,
    HoldChanged,
    MarkPlayed,
    MarkRequested,
    MediaReceived,
    StreamConnected,
    StreamStarted,
    StreamStopped,
    TranscriptReceived,
    TransferRequested,
    UpstreamEvent,
)
from voxgate.bridge.wire import (
    Fields,
    JsonObject,
    check_frame,
    check_whole_samples,
    dump,
    encode_audio,
    fast_audio,
    fast_object,
    load_object,
    present,
)
from voxgate.codecs.formats import PCMU_8K, AudioFormat, Encoding
from voxgate.errors import ProtocolError, UnsupportedFormatError

PROTOCOL: Final = "voxgate.v1"
SUBPROTOCOL_JSON: Final = "voxgate.v1"
SUBPROTOCOL_BINARY: Final = "voxgate.v1.binary"
SUBPROTOCOLS: Final = (SUBPROTOCOL_JSON, SUBPROTOCOL_BINARY)
"""What voxgate offers in ``Sec-WebSocket-Protocol`` when it connects to a bot."""

Transport = Literal["json", "binary"]

# WebSocket close codes voxgate uses towards bots (RFC 6455 section 7.4.1).
CLOSE_NORMAL: Final = 1000  # the call ended; sent right after "stop"
CLOSE_GOING_AWAY: Final = 1001  # voxgate is shutting down ("stop" reason "shutdown")
CLOSE_UNSUPPORTED_DATA: Final = 1003  # a binary frame on a JSON-transport socket
CLOSE_POLICY_VIOLATION: Final = 1008  # too many protocol errors ("stop" reason "bot_error")
CLOSE_MESSAGE_TOO_BIG: Final = 1009  # a message over MAX_MESSAGE_BYTES
CLOSE_INTERNAL_ERROR: Final = 1011  # voxgate failed on this call ("stop" reason "internal_error")

UPSTREAM_TYPES: Final = ("start", "media", "dtmf", "hold", "mark", "stop", "error")
"""Message types bridge -> bot."""
DOWNSTREAM_TYPES: Final = (
    *("response.audio.delta", "response.audio.clear", "mark", "dtmf.send"),
    *("session.transfer", "session.hangup", "transcript"),
)
"""Message types bot -> bridge."""

ERROR_CODES: Final = (
    # the codes of voxgate.bridge.dialect, for messages refused
    *("malformed_json", "unknown_event", "missing_field", "bad_audio", "message_too_large"),
    *("not_started", "wrong_stream", "unsupported"),
    # the call's, for requests it could not carry out, and for messages over a per-call bound
    *("transfer_unavailable", "dtmf_unavailable", "queue_full"),
)
"""Every ``code`` an ``error`` message may carry (docs/PROTOCOL.md, "Error codes")."""

DIRECTIONS: Final = ("inbound", "outbound")
TRANSCRIPT_ROLES: Final = ("caller", "bot")
DTMF_SEND_DURATION_MS: Final = (50, 2000)
"""Allowed ``dtmf.send`` tone length, inclusive. 50 ms is the shortest tone receivers must
accept under ANSI/Bellcore timing (ITU-T Q.24 asks for about 40 ms), so every exchange hears it."""

_DIGITS: Final = re.compile(r"[0-9*#A-D]{1,32}")
# A transfer target: an E.164 number (ITU-T E.164: at most 15 digits) or a SIP URI (RFC 3261 19.1).
TRANSFER_TARGET: Final = re.compile(r"\+[1-9][0-9]{1,14}|sips?:\S+")


def transport_for(selected_subprotocol: str | None) -> Transport:
    """The audio transport a bot chose by the subprotocol its server selected (None: none)."""
    if selected_subprotocol is None or selected_subprotocol == SUBPROTOCOL_JSON:
        return "json"
    if selected_subprotocol == SUBPROTOCOL_BINARY:
        return "binary"
    raise ProtocolError(
        "unsupported",
        f"the bot selected subprotocol {selected_subprotocol!r}; voxgate offered "
        f"{SUBPROTOCOL_JSON!r} and {SUBPROTOCOL_BINARY!r}",
        fatal=True,
        close_code=CLOSE_POLICY_VIOLATION,
    )


def load_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of every voxgate.v1 message."""
    path = resources.files("voxgate.bridge.botlink").joinpath("schema.json")
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


class V1Dialect:
    """One bot socket's translator between voxgate.v1 messages and events.

    ``binary_audio`` follows the negotiated subprotocol (:func:`transport_for`); ``carrier``
    names the caller's leg (``"twilio"``, ``"telnyx"``, ``"sip"``) for ``start.carrier.name``.
    """

    name: str = PROTOCOL

    def __init__(self, *, binary_audio: bool = False, carrier: str | None = None) -> None:
        self.binary_audio = binary_audio
        self.carrier = carrier
        self.started = False
        self.stopped = False
        self.stream_id: str | None = None
        self.media_format: AudioFormat | None = None
        self._media_count = 0
        self._samples = 0

    @property
    def transport(self) -> Transport:
        return "binary" if self.binary_audio else "json"

    # --- bridge -> bot ------------------------------------------------------------------

    def format_upstream(self, event: UpstreamEvent) -> Message | None:
        """The message for the bot; None for :class:`StreamConnected` (v1 has no such message)."""
        wire: dict[str, object]
        match event:
            case StreamConnected():
                return None
            case MediaReceived():
                return self._media_message(event)
            case StreamStarted():
                wire = self._start_message(event)
            case DtmfReceived(digit=digit, duration_ms=duration_ms, method=method):
                fields = {"digit": digit, "duration_ms": duration_ms, "method": method}
                wire = {"type": "dtmf", **present(fields)}
            case HoldChanged(on_hold=on_hold):
                wire = {"type": "hold", "on_hold": on_hold}
            case MarkPlayed(name=name):
                wire = {"type": "mark", "name": name}
            case StreamStopped(reason=reason):
                self.stopped = True
                wire = {"type": "stop", **present({"reason": reason})}
            case ErrorReported(code=code, message=message):
                wire = {"type": "error", "code": code, "message": message}
            case _:
                assert_never(event)
        return dump(wire)

    def parse_upstream(self, message: Message) -> UpstreamEvent:
        """The event a bridge's message stands for (the bot's side of the socket)."""
        frame = _checked(message)
        if isinstance(frame, bytes):
            payload = self._binary_audio(frame)
            self._require_streaming("binary media frame")
            sequence, timestamp_ms = self._count_media(payload)
            return MediaReceived(payload, sequence=sequence, timestamp_ms=timestamp_ms)
        kind, fields = _typed(load_object(frame), UPSTREAM_TYPES, "bridge -> bot")
        if kind == "start":
            return self._parse_start(fields)
        self._require_streaming(kind)
        event: UpstreamEvent
        match kind:
            case "media":
                payload = self._audio(fields)
                sequence = fields.integer("seq", minimum=1)
                timestamp_ms = fields.integer("timestamp_ms")
                self._count_media(payload)
                event = MediaReceived(payload, sequence=sequence, timestamp_ms=timestamp_ms)
            case "dtmf":
                event = DtmfReceived(
                    fields.digit("digit"),
                    duration_ms=fields.optional_integer("duration_ms"),
                    method=fields.optional_text("method", nonempty=True),
                )
            case "hold":
                event = HoldChanged(fields.flag("on_hold"))
            case "mark":
                event = MarkPlayed(fields.text("name", nonempty=True))
            case "stop":
                event = StreamStopped(fields.optional_text("reason", nonempty=True))
                self.stopped = True
            case _:  # "error"
                event = ErrorReported(fields.text("code", nonempty=True), fields.text("message"))
        return event

    # --- bot -> bridge ------------------------------------------------------------------

    def parse_downstream(self, message: Message) -> DownstreamEvent:
        """The event a bot's message stands for."""
        data = fast_object(message)  # the fast path: a well-formed audio delta
        if data is not None and data.get("type") == "response.audio.delta":
            size = self.media_format.bytes_per_sample if self.media_format is not None else 1
            payload = fast_audio(data.get("audio"), size)
            if payload is not None:
                return AudioSent(payload)
        if data is None:  # the slow path: checked and parsed again, errors named
            frame = _checked(message)
            if isinstance(frame, bytes):
                return AudioSent(self._binary_audio(frame))
            data = load_object(frame)
        kind, fields = _typed(data, DOWNSTREAM_TYPES, "bot -> bridge")
        event: DownstreamEvent
        match kind:
            case "response.audio.delta":
                event = AudioSent(self._audio(fields))
            case "response.audio.clear":
                event = ClearRequested()
            case "mark":
                event = MarkRequested(fields.text("name", nonempty=True))
            case "dtmf.send":
                low, high = DTMF_SEND_DURATION_MS
                duration_ms = fields.optional_integer("duration_ms", minimum=low, maximum=high)
                digits = fields.matching("digits", _DIGITS, "1 to 32 of 0-9 * # A-D")
                event = DtmfSendRequested(digits, 100 if duration_ms is None else duration_ms)
            case "session.transfer":
                expected = "a +E.164 number or a sip:/sips: URI"
                event = TransferRequested(fields.matching("target", TRANSFER_TARGET, expected))
            case "session.hangup":
                event = HangupRequested(fields.optional_text("reason"))
            case _:  # "transcript"
                event = TranscriptReceived(
                    role=fields.choice("role", TRANSCRIPT_ROLES),
                    text=fields.text("text"),
                    final=fields.optional_flag("final", default=True),
                )
        return event

    def format_downstream(self, event: DownstreamEvent) -> Message:
        """The bot's message for an event (every downstream event has one in v1)."""
        wire: dict[str, object]
        match event:
            case AudioSent(payload=payload):
                if self.binary_audio:
                    return bytes(payload)
                wire = {"type": "response.audio.delta", "audio": encode_audio(payload)}
            case ClearRequested():
                wire = {"type": "response.audio.clear"}
            case MarkRequested(name=name):
                wire = {"type": "mark", "name": name}
            case DtmfSendRequested(digits=digits, duration_ms=duration_ms):
                wire = {"type": "dtmf.send", "digits": digits, "duration_ms": duration_ms}
            case TransferRequested(target=target):
                wire = {"type": "session.transfer", "target": target}
            case HangupRequested(reason=reason):
                wire = {"type": "session.hangup", **present({"reason": reason})}
            case TranscriptReceived(role=role, text=text, final=final):
                wire = {"type": "transcript", "role": role, "text": text, "final": final}
            case _:
                assert_never(event)
        return dump(wire)

    # --- start and media ----------------------------------------------------------------

    def _begin(self, stream_id: str, media_format: AudioFormat) -> None:
        self.started, self.stopped = True, False
        self.stream_id = stream_id
        self.media_format = media_format
        self._media_count = 0
        self._samples = 0

    def _start_message(self, event: StreamStarted) -> dict[str, object]:
        self._begin(event.stream_id, event.media_format)
        call_id = event.call_id if event.session_id is None else event.session_id
        carrier = {"name": self.carrier, "call_id": event.call_id, "account_id": event.account_id}
        return present(
            {
                "type": "start",
                "protocol": PROTOCOL,
                "call_id": call_id,
                "stream_id": event.stream_id,
                "direction": event.direction,
                "from": event.from_number,
                "to": event.to_number,
                "carrier": present(carrier),
                "custom_parameters": dict(event.custom_parameters),
                "opening_text": event.opening_text,
                "system_prompt": event.system_prompt,
                "media_format": {
                    "encoding": event.media_format.encoding.value,
                    "sample_rate": event.media_format.sample_rate,
                    "channels": event.media_format.channels,
                },
                "audio_transport": self.transport,
                "reconnected": event.reconnected,
            }
        )

    def _parse_start(self, fields: Fields) -> StreamStarted:
        if self.started:
            raise ProtocolError("unsupported", "start: this socket's stream was already started")
        protocol = fields.text("protocol")
        if protocol != PROTOCOL:
            raise ProtocolError("unsupported", f"start: protocol {protocol!r} is not {PROTOCOL!r}")
        transport = fields.choice("audio_transport", ("json", "binary"))
        if transport != self.transport:
            problem = f"start: audio_transport {transport!r}, but {self.transport!r} was negotiated"
            raise ProtocolError(
                "unsupported", problem, fatal=True, close_code=CLOSE_POLICY_VIOLATION
            )
        carrier = fields.object("carrier")
        event = StreamStarted(
            stream_id=fields.text("stream_id", nonempty=True),
            call_id=carrier.text("call_id", nonempty=True),
            media_format=_parse_media_format(fields.object("media_format")),
            account_id=carrier.optional_text("account_id"),
            session_id=fields.text("call_id", nonempty=True),
            from_number=fields.optional_text("from"),
            to_number=fields.optional_text("to"),
            direction=fields.choice("direction", DIRECTIONS),
            custom_parameters=MappingProxyType(fields.string_map("custom_parameters")),
            opening_text=fields.optional_text("opening_text"),
            system_prompt=fields.optional_text("system_prompt"),
            reconnected=fields.flag("reconnected"),
        )
        self.carrier = carrier.optional_text("name")
        self._begin(event.stream_id, event.media_format)
        return event

    def _media_message(self, event: MediaReceived) -> Message:
        sequence, timestamp_ms = self._count_media(event.payload)
        if self.binary_audio:
            return bytes(event.payload)
        if event.timestamp_ms is not None:
            timestamp_ms = event.timestamp_ms
        # What dump() makes of {"type","seq","timestamp_ms","audio"}, without the dict.
        return (
            f'{{"type":"media","seq":{sequence:d},"timestamp_ms":{timestamp_ms:d},'
            f'"audio":"{encode_audio(event.payload)}"}}'
        )

    def _count_media(self, payload: bytes) -> tuple[int, int]:
        """The next media ``seq`` and the computed timestamp of ``payload``; then count it."""
        media_format = self.media_format or PCMU_8K
        self._media_count += 1
        timestamp_ms = self._samples * 1000 // media_format.sample_rate
        self._samples += len(payload) // media_format.bytes_per_sample
        return self._media_count, timestamp_ms

    def _require_streaming(self, what: str) -> None:
        if not self.started:
            raise ProtocolError("not_started", f"{what} before start")
        if self.stopped:
            raise ProtocolError("not_started", f"{what} after stop: the stream has ended")

    # --- audio payloads -----------------------------------------------------------------

    def _audio(self, fields: Fields) -> bytes:
        return fields.audio("audio", self.media_format)

    def _binary_audio(self, payload: bytes) -> bytes:
        if not self.binary_audio:
            problem = f"binary frame, but the bot did not select {SUBPROTOCOL_BINARY!r}"
            raise ProtocolError(
                "unsupported", problem, fatal=True, close_code=CLOSE_UNSUPPORTED_DATA
            )
        check_whole_samples(payload, self.media_format, "binary frame")
        return payload


# --- wire helpers ---------------------------------------------------------------------


def _checked(message: object) -> str | bytes:
    """``message`` as a text or a binary frame; one too large closes the socket (1009)."""
    return check_frame(message, too_large_close_code=CLOSE_MESSAGE_TOO_BIG)


def _typed(data: JsonObject, known: tuple[str, ...], direction: str) -> tuple[str, Fields]:
    """The ``type`` and fields of one message's JSON object, its type one of ``known``."""
    fields = Fields(data)
    kind = fields.kind("type", known, f"{direction} message type")
    return kind, Fields(fields.data, kind)


def _parse_media_format(fields: Fields) -> AudioFormat:
    encoding = fields.choice("encoding", tuple(encoding.value for encoding in Encoding))
    sample_rate = fields.integer("sample_rate", minimum=1)
    channels = fields.integer("channels", minimum=1)
    try:
        return AudioFormat(Encoding(encoding), sample_rate, channels)
    except UnsupportedFormatError as exc:
        raise ProtocolError("unsupported", f"{fields.where}: {exc}") from None
