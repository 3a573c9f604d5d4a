"""The Twilio Media Streams dialect: wire vectors both ways, both roles, every error."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxgate.bridge.carriers.twilio import TwilioDialect
from voxgate.bridge.dialect import MAX_MESSAGE_BYTES, Dialect
from voxgate.bridge.events import (
    AudioSent,
    ClearRequested,
    DownstreamEvent,
    DtmfReceived,
    DtmfSendRequested,
    ErrorReported,
    HangupRequested,
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
from voxgate.codecs.formats import PCMA_8K, PCMU_8K, AudioFormat, Encoding
from voxgate.errors import ProtocolError

MZ = "MZ18ad3ab5a668481ce02b83e7395059f0"
CA = "CA2ab4f1b9e0bb5f4c3d8d1f2e6a7c9b01"
AC = "AC25e16e9a716a4a1786a7c83f58e30482"
SILENCE = b"\xff" * 160  # 20 ms of mu-law silence
TONE = bytes(range(160))

Raw = str | bytes | dict[str, Any]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def raw(message: Raw) -> str | bytes:
    return json.dumps(message) if isinstance(message, dict) else message


def wire(message: str | bytes | None) -> Any:
    assert isinstance(message, str)
    return json.loads(message)


def media_wire(sequence: int, chunk: int, timestamp: int, payload: bytes) -> dict[str, Any]:
    return {
        "event": "media",
        "sequenceNumber": str(sequence),
        "media": {
            "track": "inbound",
            "chunk": str(chunk),
            "timestamp": str(timestamp),
            "payload": b64(payload),
        },
        "streamSid": MZ,
    }


START_WIRE: dict[str, Any] = {
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
START_EVENT = StreamStarted(
    stream_id=MZ,
    call_id=CA,
    media_format=PCMU_8K,
    account_id=AC,
    tracks=("inbound",),
    custom_parameters={"FirstName": "Jane", "RemoteParty": "Bob"},
)

# One stream, in order: what Twilio sends (and voxgate acting as Twilio must send) and the
# event it carries. Holds both ways: parse_upstream(wire) == event on a fresh
# application-side dialect, format_upstream(event) == wire on a fresh telephony-side one.
SESSION: list[tuple[dict[str, Any], UpstreamEvent]] = [
    ({"event": "connected", "protocol": "Call", "version": "1.0.0"}, StreamConnected()),
    (START_WIRE, START_EVENT),
    (media_wire(2, 1, 0, SILENCE), MediaReceived(SILENCE, sequence=2, chunk=1, timestamp_ms=0)),
    (media_wire(3, 2, 20, TONE), MediaReceived(TONE, sequence=3, chunk=2, timestamp_ms=20)),
    (media_wire(4, 3, 40, b""), MediaReceived(b"", sequence=4, chunk=3, timestamp_ms=40)),
    (
        {
            "event": "dtmf",
            "sequenceNumber": "5",
            "dtmf": {"track": "inbound_track", "digit": "7"},
            "streamSid": MZ,
        },
        DtmfReceived("7", method="twilio"),
    ),
    (
        {"event": "mark", "sequenceNumber": "6", "mark": {"name": "greeting"}, "streamSid": MZ},
        MarkPlayed("greeting"),
    ),
    (
        {
            "event": "stop",
            "sequenceNumber": "7",
            "stop": {"accountSid": AC, "callSid": CA},
            "streamSid": MZ,
        },
        StreamStopped(),
    ),
]

# What the application side sends to Twilio, both ways (on a started stream).
DOWNSTREAM: list[tuple[dict[str, Any], DownstreamEvent]] = [
    ({"event": "media", "streamSid": MZ, "media": {"payload": b64(TONE)}}, AudioSent(TONE)),
    ({"event": "media", "streamSid": MZ, "media": {"payload": ""}}, AudioSent(b"")),
    ({"event": "mark", "streamSid": MZ, "mark": {"name": "m-1"}}, MarkRequested("m-1")),
    ({"event": "clear", "streamSid": MZ}, ClearRequested()),
]


def started_app() -> TwilioDialect:
    dialect = TwilioDialect()
    dialect.parse_upstream(json.dumps(START_WIRE))
    return dialect


def started_telephony() -> TwilioDialect:
    dialect = TwilioDialect()
    dialect.format_upstream(START_EVENT)
    return dialect


def test_it_is_a_dialect() -> None:
    dialect: Dialect = TwilioDialect()
    assert dialect.name == "twilio"


# --- both directions -------------------------------------------------------------------------


def test_session_parses_to_its_events() -> None:
    dialect = TwilioDialect()
    assert [dialect.parse_upstream(json.dumps(w)) for w, _ in SESSION] == [e for _, e in SESSION]


def test_session_formats_to_its_wire() -> None:
    dialect = TwilioDialect()
    assert [wire(dialect.format_upstream(e)) for _, e in SESSION] == [w for w, _ in SESSION]


@pytest.mark.parametrize(("message", "event"), DOWNSTREAM)
def test_downstream_formats_to_wire(message: dict[str, Any], event: DownstreamEvent) -> None:
    assert wire(started_app().format_downstream(event)) == message


@pytest.mark.parametrize(("message", "event"), DOWNSTREAM)
def test_downstream_parses_to_event(message: dict[str, Any], event: DownstreamEvent) -> None:
    assert started_telephony().parse_downstream(json.dumps(message)) == event


def test_start_sets_the_stream_state() -> None:
    for dialect in (started_app(), started_telephony()):
        assert (dialect.stream_id, dialect.call_id, dialect.account_id) == (MZ, CA, AC)
        assert dialect.media_format == PCMU_8K


# --- parsing details ---------------------------------------------------------------------------

PARSED: list[tuple[dict[str, Any], UpstreamEvent]] = [
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


@pytest.mark.parametrize(("message", "event"), PARSED)
def test_parse_upstream_vectors(message: dict[str, Any], event: UpstreamEvent) -> None:
    assert started_app().parse_upstream(json.dumps(message)) == event


def test_order_restoration_numbers_are_ints_as_sent() -> None:
    dialect = started_app()
    arrivals = [(5, 4, 60), (3, 2, 20), (4, 3, 40)]
    parsed = []
    for sequence, chunk, timestamp in arrivals:
        event = dialect.parse_upstream(json.dumps(media_wire(sequence, chunk, timestamp, TONE)))
        assert isinstance(event, MediaReceived)
        parsed.append((event.sequence, event.chunk, event.timestamp_ms))
    assert parsed == arrivals


def test_start_without_media_format_defaults_to_mulaw_8k() -> None:
    message = {"event": "start", "start": {"streamSid": MZ, "callSid": CA}}
    assert TwilioDialect().parse_upstream(json.dumps(message)) == StreamStarted(MZ, CA)


def test_stop_may_come_before_start() -> None:
    assert TwilioDialect().parse_upstream('{"event":"stop","streamSid":"MZ1"}') == StreamStopped()


# --- telephony role ------------------------------------------------------------------------------


def test_telephony_role_sends_what_twilio_sends() -> None:
    dialect = TwilioDialect()
    events: list[UpstreamEvent] = [
        StreamConnected(),
        START_EVENT,
        MediaReceived(SILENCE),
        MediaReceived(SILENCE),
        MediaReceived(SILENCE),
        DtmfReceived("1"),
        MarkPlayed("x"),
        StreamStopped(),
    ]
    sent = [wire(dialect.format_upstream(event)) for event in events]
    kinds = ["connected", "start", "media", "media", "media", "dtmf", "mark", "stop"]
    assert [m["event"] for m in sent] == kinds
    assert "sequenceNumber" not in sent[0]
    assert [m["sequenceNumber"] for m in sent[1:]] == ["1", "2", "3", "4", "5", "6", "7"]
    assert all(m["streamSid"] == MZ for m in sent[1:])
    # pipecat recognises Twilio by start.streamSid + start.callSid and reads customParameters
    start_keys = {"streamSid", "callSid", "accountSid", "tracks", "customParameters", "mediaFormat"}
    assert set(sent[1]["start"]) == start_keys
    media = [m["media"] for m in sent[2:5]]
    assert [(m["chunk"], m["timestamp"]) for m in media] == [("1", "0"), ("2", "20"), ("3", "40")]
    assert all(isinstance(value, str) for m in media for value in m.values())
    assert base64.b64decode(media[0]["payload"]) == SILENCE
    assert sent[5]["dtmf"] == {"track": "inbound_track", "digit": "1"}
    assert sent[7]["stop"] == {"accountSid": AC, "callSid": CA}


def test_telephony_timestamps_follow_bytes_per_track_unless_given() -> None:
    dialect = started_telephony()
    events = [
        MediaReceived(b"\xff" * 80),  # 10 ms
        MediaReceived(b"\xff" * 160, track="outbound"),
        MediaReceived(b"\xff" * 240),
        MediaReceived(b"\xff" * 160, timestamp_ms=999),
        MediaReceived(b"\xff" * 160),
    ]
    media = [wire(dialect.format_upstream(e))["media"] for e in events]
    assert [(m["track"], m["chunk"], m["timestamp"]) for m in media] == [
        ("inbound", "1", "0"),
        ("outbound", "1", "0"),
        ("inbound", "2", "10"),
        ("inbound", "3", "999"),
        ("inbound", "4", "60"),  # 10 + 30 + 20 ms sent before it
    ]


def test_telephony_start_without_account_sends_null() -> None:
    message = wire(TwilioDialect().format_upstream(StreamStarted(stream_id=MZ, call_id=CA)))
    assert message["start"]["accountSid"] is None
    assert TwilioDialect().parse_upstream(json.dumps(message)) == StreamStarted(MZ, CA)


def test_errors_have_no_twilio_message() -> None:
    assert started_telephony().format_upstream(ErrorReported("bad_audio", "x")) is None


@pytest.mark.parametrize(
    "event",
    [
        DtmfSendRequested("12"),
        TransferRequested("+15550100"),
        HangupRequested(),
        TranscriptReceived("bot", "hi"),
    ],
)
def test_rest_only_or_unknown_downstream_events_have_no_message(event: DownstreamEvent) -> None:
    assert started_app().format_downstream(event) is None
    assert TwilioDialect().format_downstream(event) is None  # even before start


# --- errors --------------------------------------------------------------------------------------

HUGE = "A" * MAX_MESSAGE_BYTES
BAD_UPSTREAM: list[tuple[str, Raw, str]] = [
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
    ("second start", START_WIRE, "unsupported"),
    ("too large", {"event": "media", "media": {"payload": HUGE}}, "message_too_large"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "message", "code"), BAD_UPSTREAM, ids=[c[0] for c in BAD_UPSTREAM]
)
def test_bad_upstream_message_is_a_non_fatal_error(name: str, message: Raw, code: str) -> None:
    dialect = started_app()
    with pytest.raises(ProtocolError) as caught:
        dialect.parse_upstream(raw(message))
    assert (caught.value.code, caught.value.fatal) == (code, False)
    assert caught.value.message
    assert dialect.stream_id == MZ  # the stream goes on


@pytest.mark.parametrize(
    "message",
    [
        {"event": "media", "media": {"payload": ""}},
        {"event": "dtmf", "dtmf": {"digit": "1"}},
        {"event": "mark", "mark": {"name": "a"}},
    ],
)
def test_stream_events_before_start_are_not_started(message: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as caught:
        TwilioDialect().parse_upstream(json.dumps(message))
    assert (caught.value.code, caught.value.fatal) == ("not_started", False)


def test_size_is_checked_before_parsing() -> None:
    # not JSON at all but too large: the size wins; a 2-byte character counts as 2 bytes
    for message in ("é" * (MAX_MESSAGE_BYTES // 2 + 1), b"\x00" * (MAX_MESSAGE_BYTES + 1)):
        with pytest.raises(ProtocolError) as caught:
            TwilioDialect().parse_upstream(message)
        assert caught.value.code == "message_too_large"


def test_message_at_the_limit_is_parsed() -> None:
    padding = "x" * (MAX_MESSAGE_BYTES - len('{"event":"connected","pad":""}'))
    message = f'{{"event":"connected","pad":"{padding}"}}'
    assert len(message.encode()) == MAX_MESSAGE_BYTES
    assert TwilioDialect().parse_upstream(message) == StreamConnected()


BAD_STARTS: list[dict[str, Any]] = [
    {},
    {"callSid": CA},
    {"streamSid": MZ},
    {"streamSid": 5, "callSid": CA},
    {"streamSid": MZ, "callSid": CA, "tracks": "inbound"},
    {"streamSid": MZ, "callSid": CA, "customParameters": {"n": 1}},
    {"streamSid": MZ, "callSid": CA, "mediaFormat": {}},
    {"streamSid": MZ, "callSid": CA, "mediaFormat": {"encoding": "PCMU", "sampleRate": "x"}},
]


@pytest.mark.parametrize("start", BAD_STARTS)
def test_unusable_start_is_a_fatal_policy_violation(start: dict[str, Any]) -> None:
    dialect = TwilioDialect()
    with pytest.raises(ProtocolError) as caught:
        dialect.parse_upstream(json.dumps({"event": "start", "start": start}))
    error = caught.value
    assert (error.code, error.fatal, error.close_code) == ("missing_field", True, 1008)
    assert dialect.stream_id is None


@pytest.mark.parametrize(
    "media_format",
    [
        {"encoding": "audio/x-opus", "sampleRate": 48000, "channels": 1},
        {"encoding": "audio/x-mulaw", "sampleRate": 11025, "channels": 1},
        {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 2},
    ],
)
def test_start_with_unhandled_format_is_fatal_unsupported(media_format: dict[str, Any]) -> None:
    start = {"streamSid": MZ, "callSid": CA, "mediaFormat": media_format}
    with pytest.raises(ProtocolError) as caught:
        TwilioDialect().parse_upstream(json.dumps({"event": "start", "start": start}))
    error = caught.value
    assert (error.code, error.fatal, error.close_code) == ("unsupported", True, 1003)


def test_start_naming_another_stream_at_top_level_is_fatal() -> None:
    with pytest.raises(ProtocolError) as caught:
        TwilioDialect().parse_upstream(json.dumps({**START_WIRE, "streamSid": "MZother"}))
    assert (caught.value.code, caught.value.fatal) == ("wrong_stream", True)


BAD_DOWNSTREAM: list[tuple[str, Raw, str]] = [
    ("not json", "nope", "malformed_json"),
    ("binary audio", b"\xff\xff", "malformed_json"),
    ("start from a bot", START_WIRE, "unknown_event"),
    ("hangup is not twilio", {"event": "hangup"}, "unknown_event"),
    ("mark without mark", {"event": "mark", "streamSid": MZ}, "missing_field"),
    ("bad base64", {"event": "media", "media": {"payload": "***"}}, "bad_audio"),
    ("other stream", {"event": "clear", "streamSid": "MZother"}, "wrong_stream"),
    ("too large", " " * (MAX_MESSAGE_BYTES + 1), "message_too_large"),
]


@pytest.mark.parametrize(
    ("name", "message", "code"), BAD_DOWNSTREAM, ids=[c[0] for c in BAD_DOWNSTREAM]
)
def test_bad_bot_message_is_a_non_fatal_error(name: str, message: Raw, code: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        started_telephony().parse_downstream(raw(message))
    assert (caught.value.code, caught.value.fatal) == (code, False)


@pytest.mark.parametrize(
    "message",
    [
        {"event": "media", "media": {"payload": ""}},
        {"event": "clear"},
        {"event": "mark", "mark": {"name": "a"}},
    ],
)
def test_bot_messages_before_start_are_not_started(message: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as caught:
        TwilioDialect().parse_downstream(json.dumps(message))
    assert caught.value.code == "not_started"


def test_formatting_stream_events_before_start_is_not_started() -> None:
    with pytest.raises(ProtocolError) as caught:
        TwilioDialect().format_downstream(AudioSent(SILENCE))
    assert caught.value.code == "not_started"
    with pytest.raises(ProtocolError) as caught:
        TwilioDialect().format_upstream(MediaReceived(SILENCE))
    assert caught.value.code == "not_started"


@pytest.mark.parametrize("fmt", [PCMA_8K, AudioFormat(Encoding.PCM16, 24000)])
def test_telephony_start_refuses_what_twilio_cannot_carry(fmt: AudioFormat) -> None:
    with pytest.raises(ProtocolError) as caught:
        TwilioDialect().format_upstream(StreamStarted(MZ, CA, media_format=fmt))
    error = caught.value
    assert (error.code, error.fatal, error.close_code) == ("unsupported", True, 1003)


def test_telephony_second_start_is_refused() -> None:
    with pytest.raises(ProtocolError) as caught:
        started_telephony().format_upstream(START_EVENT)
    assert caught.value.code == "unsupported"


# --- round trips ---------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(payloads=st.lists(st.binary(max_size=4000), min_size=1, max_size=5))
def test_media_round_trips_upstream(payloads: list[bytes]) -> None:
    telephony, application = TwilioDialect(), TwilioDialect()
    application.parse_upstream(telephony.format_upstream(START_EVENT) or "")
    for payload in payloads:
        event = application.parse_upstream(telephony.format_upstream(MediaReceived(payload)) or "")
        assert isinstance(event, MediaReceived)
        assert event.payload == payload


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=4000), name=st.text(max_size=40))
def test_audio_marks_and_clear_round_trip_downstream(payload: bytes, name: str) -> None:
    application, telephony = started_app(), started_telephony()
    for event in (AudioSent(payload), MarkRequested(name), ClearRequested()):
        assert telephony.parse_downstream(application.format_downstream(event) or "") == event
