"""The Twilio, Telnyx and Plivo wires side by side: builders and vector tables for the tests.

The carriers speak one kind of media stream (voxgate/bridge/carriers/_stream.py) under
their own message and field names, with a few shapes of their own. A :class:`CarrierWire`
holds one dialect's names, builders and tables of vectors; test_carrier_common.py runs each
behaviour they share over :data:`CARRIERS`, test_twilio.py, test_telnyx.py and
test_plivo.py what only one of them does. Every table says which way it holds. The wire
facts come from the dialect modules' docstrings (the vendor pages they cite).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from voxgate.bridge.carriers.plivo import PlivoDialect
from voxgate.bridge.carriers.telnyx import TelnyxDialect
from voxgate.bridge.carriers.twilio import TwilioDialect
from voxgate.bridge.dialect import MAX_MESSAGE_BYTES
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
from voxgate.codecs.formats import PCMA_8K, PCMU_8K, AudioFormat, Encoding

Wire = dict[str, Any]
Raw = str | bytes | Wire  # a message as sent; a dict goes out as JSON text
Vectors = Sequence[tuple[Wire, UpstreamEvent]]
Errors = Sequence[tuple[str, Raw, str]]  # (name, message, error code)
AnyDialect = TwilioDialect | TelnyxDialect | PlivoDialect

SILENCE = b"\xff" * 160  # 20 ms of mu-law silence
TONE = bytes(range(160))
HUGE = "A" * MAX_MESSAGE_BYTES
L16_16K = AudioFormat(Encoding.L16, 16000)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def raw(message: Raw) -> str | bytes:
    return json.dumps(message) if isinstance(message, dict) else message


def wire(message: str | bytes | None) -> Any:
    assert isinstance(message, str)
    return json.loads(message)


@dataclass(frozen=True)
class Stream:
    """How one dialect names the stream the vectors are about."""

    id: str
    id_key: str  # the stream id's field: "streamSid", "stream_id", "streamId"
    sequence_key: str  # "sequenceNumber", "sequence_number"
    numbers_as_text: bool = True  # Plivo writes sequence and chunk numbers as JSON numbers
    played_event: str = "mark"  # what the carrier calls an echoed mark ("playedStream")
    nested_mark: bool = True  # {"mark": {"name"}} rather than a top-level "name"

    def number(self, value: int) -> str | int:
        return str(value) if self.numbers_as_text else value

    def message(self, sequence: int, kind: str, body: Wire | None) -> Wire:
        """A numbered message of the stream, as the carrier sends it (no body: none)."""
        message: Wire = {"event": kind, self.sequence_key: self.number(sequence)}
        if body is not None:
            message[kind] = body
        return {**message, self.id_key: self.id}

    def media(self, sequence: int, chunk: int, timestamp: int | str, payload: bytes) -> Wire:
        """A numbered inbound media message, as the carrier sends it."""
        media = {
            "track": "inbound",
            "chunk": self.number(chunk),
            "timestamp": str(timestamp),
            "payload": b64(payload),
        }
        return self.message(sequence, "media", media)

    def played(self, sequence: int, name: str) -> Wire:
        """A numbered echo of mark ``name``, as the carrier sends it."""
        if self.nested_mark:
            return self.message(sequence, self.played_event, {"name": name})
        played: Wire = {"event": self.played_event, self.sequence_key: self.number(sequence)}
        return {**played, "name": name, self.id_key: self.id}


@dataclass(frozen=True)
class CarrierWire:
    """One carrier dialect: its names, its start, and its tables of vectors."""

    name: str
    dialect: type[TwilioDialect] | type[TelnyxDialect] | type[PlivoDialect]
    stream: Stream
    call_id: str
    account_id: str
    start_event: Callable[[AudioFormat], StreamStarted]  # the stream's start in that format
    start_wire: Wire  # start_event(PCMU_8K) on the wire
    minimal_start: tuple[Wire, StreamStarted]  # the least a start may hold, and its event
    connected: Wire | None  # what the carrier sends first; None: no hello, start comes first
    dtmf_body: Callable[[str], Wire]  # the "dtmf" member the carrier sends for a digit
    stop_body: Wire | None  # the "stop" member the carrier sends (None: a stop without one)
    mark_request: Callable[[str], Wire]  # a mark to play as a bot sends it, without stream id
    unnumbered: Vectors  # unnumbered frames it sends mid-stream (the session's, before stop)
    # What the application side sends to the carrier, both ways on a started stream.
    downstream: Sequence[tuple[Wire, DownstreamEvent]]
    parsed: Vectors  # parse_upstream only, on a started stream: leniency and defaults
    bad_upstream: Errors  # refused by a started application side, the stream goes on
    bad_starts: Sequence[Wire]  # starts missing or mistyping a field (fatal, 1008)
    unhandled_starts: Sequence[Wire]  # starts in a format voxgate lacks (fatal, 1003)
    bad_downstream: Errors  # refused by a started telephony side
    unsendable_formats: Sequence[AudioFormat]  # what voxgate acting as the carrier refuses
    media_formats: Sequence[AudioFormat]  # what both roles carry

    @property
    def session(self) -> Vectors:
        """One stream, in order: what the carrier sends (and voxgate acting as the carrier must
        send) and its event. Both ways: parse_upstream on a fresh application-side dialect,
        format_upstream on a fresh telephony-side one."""
        stream = self.stream
        hello: Vectors = [] if self.connected is None else [(self.connected, StreamConnected())]
        return [
            *hello,
            (self.start_wire, self.start_event(PCMU_8K)),
            (
                stream.media(2, 1, 0, SILENCE),
                MediaReceived(SILENCE, sequence=2, chunk=1, timestamp_ms=0),
            ),
            (
                stream.media(3, 2, 20, TONE),
                MediaReceived(TONE, sequence=3, chunk=2, timestamp_ms=20),
            ),
            (stream.media(4, 3, 40, b""), MediaReceived(b"", sequence=4, chunk=3, timestamp_ms=40)),
            (stream.message(5, "dtmf", self.dtmf_body("7")), DtmfReceived("7", method=self.name)),
            (stream.played(6, "greeting"), MarkPlayed("greeting")),
            *self.unnumbered,
            (stream.message(7, "stop", self.stop_body), StreamStopped()),
        ]

    def started_app(self) -> AnyDialect:
        """An application-side dialect that has parsed the start."""
        dialect = self.dialect()
        dialect.parse_upstream(json.dumps(self.start_wire))
        return dialect

    def started_telephony(self) -> AnyDialect:
        """A telephony-side dialect that has sent the start."""
        dialect = self.dialect()
        dialect.format_upstream(self.start_event(PCMU_8K))
        return dialect


# --- Twilio Media Streams --------------------------------------------------------------------

MZ = "MZ18ad3ab5a668481ce02b83e7395059f0"
CA = "CA2ab4f1b9e0bb5f4c3d8d1f2e6a7c9b01"
AC = "AC25e16e9a716a4a1786a7c83f58e30482"
TWILIO_STREAM = Stream(MZ, "streamSid", "sequenceNumber")
TWILIO_START_WIRE: Wire = {
    "event": "start",
    "sequenceNumber": "1",
    "start": {
        "accountSid": AC,
        "streamSid": MZ,
        "callSid": CA,
        "tracks": ["inbound"],
        "customParameters": {"FirstName": "Jane", "RemoteParty": "Bob"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    },
    "streamSid": MZ,
}
TWILIO_START_EVENT = StreamStarted(
    stream_id=MZ,
    call_id=CA,
    media_format=PCMU_8K,
    account_id=AC,
    tracks=("inbound",),
    custom_parameters={"FirstName": "Jane", "RemoteParty": "Bob"},
)
TWILIO_CONNECTED: Wire = {"event": "connected", "protocol": "Call", "version": "1.0.0"}


def twilio_start(**start: Any) -> Wire:
    """A start message holding only ``start`` (no sequence number, no top-level streamSid)."""
    return {"event": "start", "start": start}


TWILIO_DOWNSTREAM: Sequence[tuple[Wire, DownstreamEvent]] = [
    ({"event": "media", "streamSid": MZ, "media": {"payload": b64(TONE)}}, AudioSent(TONE)),
    ({"event": "media", "streamSid": MZ, "media": {"payload": ""}}, AudioSent(b"")),
    ({"event": "mark", "streamSid": MZ, "mark": {"name": "m-1"}}, MarkRequested("m-1")),
    ({"event": "clear", "streamSid": MZ}, ClearRequested()),
]

TWILIO_PARSED: Vectors = [
    ({"event": "connected"}, StreamConnected()),
    ({"event": "connected", "version": "2.0.0"}, StreamConnected("Call", "2.0.0")),
    (  # JSON integers where Twilio sends strings, no track: still understood
        {"event": "media", "sequenceNumber": 12, "media": {"chunk": 9, "payload": "/w=="}},
        MediaReceived(b"\xff", sequence=12, chunk=9),
    ),
    (  # only the payload is required
        {"event": "media", "media": {"payload": "AAE=", "track": "outbound", "timestamp": "7"}},
        MediaReceived(b"\x00\x01", timestamp_ms=7, track="outbound"),
    ),
    (
        {"event": "media", "sequenceNumber": None, "media": {"payload": "", "chunk": None}},
        MediaReceived(b""),
    ),
    ({"event": "dtmf", "dtmf": {"digit": "#"}}, DtmfReceived("#", method="twilio")),
    ({"event": "stop", "streamSid": MZ}, StreamStopped()),
]

TWILIO_BAD_UPSTREAM: Errors = [
    ("not json", "{event: media}", "malformed_json"),
    ("array", "[1, 2]", "malformed_json"),
    ("string", '"start"', "malformed_json"),
    ("binary", b'{"event":"connected"}', "malformed_json"),
    ("deep nesting", "[" * 100_000 + "]" * 100_000, "malformed_json"),
    ("unknown event", {"event": "hello"}, "unknown_event"),
    ("clear is app-side only", {"event": "clear", "streamSid": MZ}, "unknown_event"),
    ("no event", {"streamSid": MZ}, "missing_field"),
    ("event not a string", {"event": 7}, "missing_field"),
    ("media without media", {"event": "media", "streamSid": MZ}, "missing_field"),
    ("media not an object", {"event": "media", "media": "AA=="}, "missing_field"),
    ("payload missing", {"event": "media", "media": {}}, "missing_field"),
    ("payload a number", {"event": "media", "media": {"payload": 5}}, "missing_field"),
    ("chunk a word", {"event": "media", "media": {"payload": "", "chunk": "two"}}, "missing_field"),
    ("chunk a float", {"event": "media", "media": {"payload": "", "chunk": 1.5}}, "missing_field"),
    ("sequence < 0", {"event": "media", "sequenceNumber": -1, "media": {}}, "missing_field"),
    ("sequence a bool", {"event": "media", "sequenceNumber": True, "media": {}}, "missing_field"),
    ("track a number", {"event": "media", "media": {"payload": "", "track": 1}}, "missing_field"),
    ("digit missing", {"event": "dtmf", "dtmf": {}}, "missing_field"),
    ("digit not a key", {"event": "dtmf", "dtmf": {"digit": "x"}}, "missing_field"),
    ("mark without name", {"event": "mark", "mark": {}}, "missing_field"),
    ("streamSid a number", {"event": "mark", "streamSid": 1, "mark": {}}, "missing_field"),
    ("payload not base64", {"event": "media", "media": {"payload": "no base64!"}}, "bad_audio"),
    ("payload badly padded", {"event": "media", "media": {"payload": "AAA"}}, "bad_audio"),
    ("payload with newline", {"event": "media", "media": {"payload": "AA==\n"}}, "bad_audio"),
    ("other stream media", {"event": "media", "streamSid": "MZx", "media": {}}, "wrong_stream"),
    ("other stream mark", {"event": "mark", "streamSid": "MZx", "mark": {}}, "wrong_stream"),
    ("other stream stop", {"event": "stop", "streamSid": "MZx"}, "wrong_stream"),
    ("second start", TWILIO_START_WIRE, "unsupported"),
    ("too large", {"event": "media", "media": {"payload": HUGE}}, "message_too_large"),
]  # fmt: skip

TWILIO_BAD_STARTS: Sequence[Wire] = [
    twilio_start(),
    twilio_start(callSid=CA),
    twilio_start(streamSid=MZ),
    twilio_start(streamSid=5, callSid=CA),
    twilio_start(streamSid=MZ, callSid=CA, tracks="inbound"),
    twilio_start(streamSid=MZ, callSid=CA, customParameters={"n": 1}),
    twilio_start(streamSid=MZ, callSid=CA, mediaFormat={}),
    twilio_start(streamSid=MZ, callSid=CA, mediaFormat={"encoding": "PCMU", "sampleRate": "x"}),
]

TWILIO_UNHANDLED_STARTS: Sequence[Wire] = [
    twilio_start(streamSid=MZ, callSid=CA, mediaFormat=media_format)
    for media_format in (
        {"encoding": "audio/x-opus", "sampleRate": 48000, "channels": 1},
        {"encoding": "audio/x-mulaw", "sampleRate": 11025, "channels": 1},
        {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 2},
    )
]

TWILIO_BAD_DOWNSTREAM: Errors = [
    ("not json", "nope", "malformed_json"),
    ("binary audio", b"\xff\xff", "malformed_json"),
    ("start from a bot", TWILIO_START_WIRE, "unknown_event"),
    ("hangup is not twilio", {"event": "hangup"}, "unknown_event"),
    ("mark without mark", {"event": "mark", "streamSid": MZ}, "missing_field"),
    ("bad base64", {"event": "media", "media": {"payload": "***"}}, "bad_audio"),
    ("other stream", {"event": "clear", "streamSid": "MZother"}, "wrong_stream"),
    ("too large", " " * (MAX_MESSAGE_BYTES + 1), "message_too_large"),
]

TWILIO = CarrierWire(
    name="twilio",
    dialect=TwilioDialect,
    stream=TWILIO_STREAM,
    call_id=CA,
    account_id=AC,
    start_event=lambda media_format: replace(TWILIO_START_EVENT, media_format=media_format),
    start_wire=TWILIO_START_WIRE,
    minimal_start=(twilio_start(streamSid=MZ, callSid=CA), StreamStarted(MZ, CA)),
    connected=TWILIO_CONNECTED,
    dtmf_body=lambda digit: {"track": "inbound_track", "digit": digit},
    stop_body={"accountSid": AC, "callSid": CA},
    mark_request=lambda name: {"event": "mark", "mark": {"name": name}},
    unnumbered=[],
    downstream=TWILIO_DOWNSTREAM,
    parsed=TWILIO_PARSED,
    bad_upstream=TWILIO_BAD_UPSTREAM,
    bad_starts=TWILIO_BAD_STARTS,
    unhandled_starts=TWILIO_UNHANDLED_STARTS,
    bad_downstream=TWILIO_BAD_DOWNSTREAM,
    unsendable_formats=[PCMA_8K, AudioFormat(Encoding.PCM16, 24000)],
    media_formats=[PCMU_8K],
)


# --- Telnyx Media Streaming ------------------------------------------------------------------

SID = "32DE0DEA-53CB-4B21-89A4-9CBEDDF9A2CF"
CCID = "v3:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ"
USER = "3E6F995F-85F7-4705-9741-53B116D28237"
SESSION_ID = "ff55a038-f8a2-11ee-8e39-02420a0daa69"
STATE = "aGF2ZSBhIG5pY2UgZGF5ID1d"
TELNYX_STREAM = Stream(SID, "stream_id", "sequence_number")
TELNYX_CONNECTED: Wire = {"event": "connected", "version": "1.0.0"}


def telnyx_start_wire(encoding: str = "PCMU", sample_rate: int = 8000) -> Wire:
    return {
        "event": "start",
        "sequence_number": "1",
        "start": {
            "user_id": USER,
            "call_control_id": CCID,
            "call_session_id": SESSION_ID,
            "from": "+13122010094",
            "to": "+13122123456",
            "client_state": STATE,
            "custom_parameters": {"campaign": "spring"},
            "media_format": {"encoding": encoding, "sample_rate": sample_rate, "channels": 1},
        },
        "stream_id": SID,
    }


def telnyx_start_event(media_format: AudioFormat = PCMU_8K) -> StreamStarted:
    return StreamStarted(
        stream_id=SID,
        call_id=CCID,
        media_format=media_format,
        account_id=USER,
        session_id=SESSION_ID,
        from_number="+13122010094",
        to_number="+13122123456",
        custom_parameters={"campaign": "spring"},
        client_state=STATE,
    )


def telnyx_stereo_start() -> Wire:
    message = telnyx_start_wire()
    message["start"]["media_format"]["channels"] = 2
    return message


# No stream_id on what goes to Telnyx.
TELNYX_DOWNSTREAM: Sequence[tuple[Wire, DownstreamEvent]] = [
    ({"event": "media", "media": {"payload": b64(TONE)}}, AudioSent(TONE)),
    ({"event": "mark", "mark": {"name": "m-1"}}, MarkRequested("m-1")),
    ({"event": "clear"}, ClearRequested()),
]

TELNYX_PARSED: Vectors = [
    ({"event": "connected", "x-telnyx-streaming-auth-token": "t"}, StreamConnected()),
    ({"event": "connected"}, StreamConnected()),
    (  # JSON integers instead of strings, no stream_id, no track
        {"event": "media", "sequence_number": 9, "media": {"chunk": 8, "payload": "/w=="}},
        MediaReceived(b"\xff", sequence=9, chunk=8),
    ),
    (
        {"event": "media", "media": {"payload": "AAE=", "track": "outbound"}},
        MediaReceived(b"\x00\x01", track="outbound"),
    ),
    (
        {"event": "dtmf", "occurred_at": "2022-08-30T14:15:39Z", "dtmf": {"digit": "*"}},
        DtmfReceived("*", method="telnyx"),
    ),
    ({"event": "stop", "stream_id": SID}, StreamStopped()),
    (
        {"event": "error", "stream_id": SID, "payload": {"code": 100002, "title": "Unknown error"}},
        ErrorReported("100002", "Unknown error"),
    ),
    (
        {"event": "error", "payload": {"code": "100004", "title": "Invalid", "detail": "bad RTP"}},
        ErrorReported("100004", "bad RTP"),
    ),
    (  # shape seen in third-party code: the details under "error"
        {"event": "error", "error": {"code": 100005, "title": "Rate limit", "detail": "slow"}},
        ErrorReported("100005", "slow"),
    ),
    ({"event": "error", "payload": {"code": 1}}, ErrorReported("1", "")),
]  # fmt: skip

TELNYX_BAD_UPSTREAM: Errors = [
    ("not json", "{event: media}", "malformed_json"),
    ("number", "42", "malformed_json"),
    ("binary", b'{"event":"connected"}', "malformed_json"),
    ("unknown event", {"event": "hello"}, "unknown_event"),
    ("clear is app-side only", {"event": "clear"}, "unknown_event"),
    ("no event", {"stream_id": SID}, "missing_field"),
    ("media without media", {"event": "media", "stream_id": SID}, "missing_field"),
    ("payload missing", {"event": "media", "media": {}}, "missing_field"),
    ("chunk a word", {"event": "media", "media": {"payload": "", "chunk": "two"}}, "missing_field"),
    ("sequence a float", {"event": "media", "sequence_number": 2.0, "media": {}}, "missing_field"),
    ("digit missing", {"event": "dtmf", "dtmf": {}}, "missing_field"),
    ("digit too long", {"event": "dtmf", "dtmf": {"digit": "12"}}, "missing_field"),
    ("mark without name", {"event": "mark", "mark": {"name": None}}, "missing_field"),
    ("error without payload", {"event": "error"}, "missing_field"),
    ("error without code", {"event": "error", "payload": {"title": "x"}}, "missing_field"),
    ("error code a bool", {"event": "error", "payload": {"code": True}}, "missing_field"),
    ("title a number", {"event": "error", "payload": {"code": 1, "title": 2}}, "missing_field"),
    ("payload not base64", {"event": "media", "media": {"payload": "%%%%"}}, "bad_audio"),
    ("other stream media", {"event": "media", "stream_id": "other", "media": {}}, "wrong_stream"),
    ("other stream error", {"event": "error", "stream_id": "other", "payload": {}}, "wrong_stream"),
    ("second start", telnyx_start_wire(), "unsupported"),
    ("too large", {"event": "media", "media": {"payload": HUGE}}, "message_too_large"),
]  # fmt: skip

TELNYX_BAD_STARTS: Sequence[Wire] = [
    {"event": "start", "start": {"call_control_id": CCID}},  # no stream_id
    {"event": "start", "stream_id": SID},
    {"event": "start", "stream_id": SID, "start": {}},
    {"event": "start", "stream_id": SID, "start": {"call_control_id": 7}},
    {"event": "start", "stream_id": SID, "start": {"call_control_id": CCID, "from": 1}},
    {"event": "start", "stream_id": SID, "start": {"call_control_id": CCID, "media_format": []}},
    {
        "event": "start",
        "stream_id": SID,
        "start": {
            "call_control_id": CCID,
            "media_format": {"encoding": "PCMU", "channels": "mono"},
        },
    },
]

TELNYX_UNHANDLED_STARTS: Sequence[Wire] = [
    *(
        telnyx_start_wire(encoding, rate)
        for encoding, rate in [
            ("OPUS", 48000),
            ("G722", 16000),
            ("AMR-WB", 16000),
            ("PCMU", 11025),
            ("L16", 44100),
        ]
    ),
    telnyx_stereo_start(),
]

TELNYX_BAD_DOWNSTREAM: Errors = [
    ("not json", "", "malformed_json"),
    ("binary audio", b"\x00\x00", "malformed_json"),
    ("hangup is not telnyx", {"event": "hangup"}, "unknown_event"),
    ("mark without name", {"event": "mark", "mark": {}}, "missing_field"),
    ("bad base64", {"event": "media", "media": {"payload": "a b"}}, "bad_audio"),
    ("other stream", {"event": "clear", "stream_id": "other"}, "wrong_stream"),
    ("too large", {"event": "media", "media": {"payload": HUGE}}, "message_too_large"),
]

TELNYX = CarrierWire(
    name="telnyx",
    dialect=TelnyxDialect,
    stream=TELNYX_STREAM,
    call_id=CCID,
    account_id=USER,
    start_event=telnyx_start_event,
    start_wire=telnyx_start_wire(),
    minimal_start=(
        {"event": "start", "stream_id": SID, "start": {"call_control_id": CCID}},
        StreamStarted(SID, CCID),
    ),
    connected=TELNYX_CONNECTED,
    dtmf_body=lambda digit: {"digit": digit},
    stop_body={"user_id": USER, "call_control_id": CCID},
    mark_request=lambda name: {"event": "mark", "mark": {"name": name}},
    unnumbered=[
        (
            {
                "event": "error",
                "payload": {"code": 3, "title": "x", "detail": "x"},
                "stream_id": SID,
            },
            ErrorReported("3", "x"),
        ),
    ],
    downstream=TELNYX_DOWNSTREAM,
    parsed=TELNYX_PARSED,
    bad_upstream=TELNYX_BAD_UPSTREAM,
    bad_starts=TELNYX_BAD_STARTS,
    unhandled_starts=TELNYX_UNHANDLED_STARTS,
    bad_downstream=TELNYX_BAD_DOWNSTREAM,
    unsendable_formats=[AudioFormat(Encoding.PCM16, 16000)],
    media_formats=[PCMU_8K, PCMA_8K, L16_16K],
)


# --- Plivo Audio Streams -----------------------------------------------------------------

PLIVO_SID = "87654321-4321-4321-4321-cba987654321"
PLIVO_CALL = "12345678-1234-1234-1234-123456789abc"
PLIVO_ACCOUNT = "MAXXXXXXXXXXXXXXXXXX"
PLIVO_STREAM = Stream(
    PLIVO_SID,
    "streamId",
    "sequenceNumber",
    numbers_as_text=False,
    played_event="playedStream",
    nested_mark=False,
)
PLIVO_UNIX_MS = 1705312200000  # the timestamp of Plivo's media example: a wall clock


def plivo_start_wire(encoding: str = "audio/x-mulaw", sample_rate: int = 8000) -> Wire:
    """Plivo's start example (Audio Streaming Protocol Reference), with extra_headers."""
    return {
        "event": "start",
        "sequenceNumber": 1,
        "start": {
            "callId": PLIVO_CALL,
            "streamId": PLIVO_SID,
            "accountId": PLIVO_ACCOUNT,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": encoding, "sampleRate": sample_rate},
        },
        "streamId": PLIVO_SID,
        "extra_headers": "userId=12345;sessionId=abc-xyz",
    }


PLIVO_START_EVENT = StreamStarted(
    stream_id=PLIVO_SID,
    call_id=PLIVO_CALL,
    media_format=PCMU_8K,
    account_id=PLIVO_ACCOUNT,
    tracks=("inbound",),
    custom_parameters={"userId": "12345", "sessionId": "abc-xyz"},
)

PLIVO_DOWNSTREAM: Sequence[tuple[Wire, DownstreamEvent]] = [
    (
        {
            "event": "playAudio",
            "streamId": PLIVO_SID,
            "media": {"contentType": "audio/x-mulaw", "sampleRate": 8000, "payload": b64(TONE)},
        },
        AudioSent(TONE),
    ),
    ({"event": "checkpoint", "streamId": PLIVO_SID, "name": "m-1"}, MarkRequested("m-1")),
    ({"event": "clearAudio", "streamId": PLIVO_SID}, ClearRequested()),
]

PLIVO_PARSED: Vectors = [
    (  # the reference's media example: timestamp Unix ms as a string, chunk a number
        {
            "event": "media",
            "sequenceNumber": 42,
            "streamId": PLIVO_SID,
            "media": {
                "track": "inbound",
                "timestamp": str(PLIVO_UNIX_MS),
                "chunk": 41,
                "payload": "/w==",
            },
            "extra_headers": "userId=12345;sessionId=abc-xyz",
        },
        MediaReceived(b"\xff", sequence=42, chunk=41, timestamp_ms=PLIVO_UNIX_MS),
    ),
    (  # decimal strings are understood too
        {"event": "media", "sequenceNumber": "7", "media": {"chunk": "6", "payload": ""}},
        MediaReceived(b"", sequence=7, chunk=6),
    ),
    ({"event": "playedStream", "streamId": PLIVO_SID, "name": "greeting"}, MarkPlayed("greeting")),
    (  # Plivo support's example: the answer to clearAudio, ignored by the call
        {"sequenceNumber": 0, "event": "clearedAudio", "streamId": PLIVO_SID},
        StreamConnected(),
    ),
    ({"event": "dtmf", "dtmf": {"digit": "#"}}, DtmfReceived("#", method="plivo")),
    ({"event": "stop", "streamId": PLIVO_SID}, StreamStopped()),
]  # fmt: skip

PLIVO_BAD_UPSTREAM: Errors = [
    ("not json", "{event: media}", "malformed_json"),
    ("binary", b'{"event":"media"}', "malformed_json"),
    ("unknown event", {"event": "hello"}, "unknown_event"),
    ("no hello from plivo", {"event": "connected"}, "unknown_event"),
    ("twilio's mark name", {"event": "mark", "mark": {"name": "a"}}, "unknown_event"),
    ("playAudio is app-side only", {"event": "playAudio", "media": {}}, "unknown_event"),
    ("media without media", {"event": "media", "streamId": PLIVO_SID}, "missing_field"),
    ("payload missing", {"event": "media", "media": {}}, "missing_field"),
    ("chunk a word", {"event": "media", "media": {"payload": "", "chunk": "two"}}, "missing_field"),
    ("sequence < 0", {"event": "media", "sequenceNumber": -1, "media": {}}, "missing_field"),
    ("played without name", {"event": "playedStream", "streamId": PLIVO_SID}, "missing_field"),
    ("played name nested", {"event": "playedStream", "mark": {"name": "a"}}, "missing_field"),
    ("digit not a key", {"event": "dtmf", "dtmf": {"digit": "x"}}, "missing_field"),
    ("payload not base64", {"event": "media", "media": {"payload": "%%%%"}}, "bad_audio"),
    ("other stream media", {"event": "media", "streamId": "other", "media": {}}, "wrong_stream"),
    ("other stream cleared", {"event": "clearedAudio", "streamId": "other"}, "wrong_stream"),
    ("second start", plivo_start_wire(), "unsupported"),
    ("too large", {"event": "media", "media": {"payload": HUGE}}, "message_too_large"),
]  # fmt: skip


def plivo_start(**start: Any) -> Wire:
    return {"event": "start", "start": start}


PLIVO_BAD_STARTS: Sequence[Wire] = [
    plivo_start(),
    plivo_start(callId=PLIVO_CALL),
    plivo_start(streamId=PLIVO_SID),
    plivo_start(streamId=PLIVO_SID, callId=7),
    plivo_start(streamId=PLIVO_SID, callId=PLIVO_CALL, tracks="inbound"),
    plivo_start(streamId=PLIVO_SID, callId=PLIVO_CALL, mediaFormat={"sampleRate": 8000}),
    {**plivo_start(streamId=PLIVO_SID, callId=PLIVO_CALL), "extra_headers": {"a": "1"}},
]

PLIVO_UNHANDLED_STARTS: Sequence[Wire] = [
    plivo_start_wire("audio/x-l16", 8000),  # byte order undocumented
    plivo_start_wire("audio/x-l16", 16000),
    plivo_start_wire("audio/x-opus", 48000),
]

PLIVO_BAD_DOWNSTREAM: Errors = [
    ("not json", "nope", "malformed_json"),
    ("twilio's media", {"event": "media", "media": {"payload": ""}}, "unknown_event"),
    ("twilio's clear", {"event": "clear"}, "unknown_event"),
    ("checkpoint without name", {"event": "checkpoint", "streamId": PLIVO_SID}, "missing_field"),
    ("bad base64", {"event": "playAudio", "media": {"payload": "***"}}, "bad_audio"),
    ("other stream", {"event": "clearAudio", "streamId": "other"}, "wrong_stream"),
    ("too large", " " * (MAX_MESSAGE_BYTES + 1), "message_too_large"),
]

PLIVO = CarrierWire(
    name="plivo",
    dialect=PlivoDialect,
    stream=PLIVO_STREAM,
    call_id=PLIVO_CALL,
    account_id=PLIVO_ACCOUNT,
    start_event=lambda media_format: replace(PLIVO_START_EVENT, media_format=media_format),
    start_wire=plivo_start_wire(),
    minimal_start=(
        plivo_start(streamId=PLIVO_SID, callId=PLIVO_CALL),
        StreamStarted(PLIVO_SID, PLIVO_CALL),
    ),
    connected=None,
    dtmf_body=lambda digit: {"track": "inbound", "digit": digit},
    stop_body=None,
    mark_request=lambda name: {"event": "checkpoint", "name": name},
    unnumbered=[],
    downstream=PLIVO_DOWNSTREAM,
    parsed=PLIVO_PARSED,
    bad_upstream=PLIVO_BAD_UPSTREAM,
    bad_starts=PLIVO_BAD_STARTS,
    unhandled_starts=PLIVO_UNHANDLED_STARTS,
    bad_downstream=PLIVO_BAD_DOWNSTREAM,
    unsendable_formats=[PCMA_8K, L16_16K, AudioFormat(Encoding.PCM16, 16000)],
    media_formats=[PCMU_8K],
)

CARRIERS = (TWILIO, TELNYX, PLIVO)
