"""The Telnyx Media Streaming dialect: wire vectors both ways, both roles, every error."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxgate.bridge.carriers.telnyx import TelnyxDialect
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

SID = "32DE0DEA-53CB-4B21-89A4-9CBEDDF9A2CF"
CCID = "v3:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ"
USER = "3E6F995F-85F7-4705-9741-53B116D28237"
SESSION_ID = "ff55a038-f8a2-11ee-8e39-02420a0daa69"
STATE = "aGF2ZSBhIG5pY2UgZGF5ID1d"
SILENCE = b"\xff" * 160
TONE = bytes(range(160))
L16_16K = AudioFormat(Encoding.L16, 16000)

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
        "sequence_number": str(sequence),
        "media": {
            "track": "inbound",
            "chunk": str(chunk),
            "timestamp": str(timestamp),
            "payload": b64(payload),
        },
        "stream_id": SID,
    }


def start_wire(encoding: str = "PCMU", sample_rate: int = 8000) -> dict[str, Any]:
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


def start_event(media_format: AudioFormat = PCMU_8K) -> StreamStarted:
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


# One stream, in order: what Telnyx sends (and voxgate acting as Telnyx must send) and the
# event it carries; holds in both directions on fresh dialects.
SESSION: list[tuple[dict[str, Any], UpstreamEvent]] = [
    ({"event": "connected", "version": "1.0.0"}, StreamConnected()),
    (start_wire(), start_event()),
    (media_wire(2, 1, 0, SILENCE), MediaReceived(SILENCE, sequence=2, chunk=1, timestamp_ms=0)),
    (media_wire(3, 2, 20, TONE), MediaReceived(TONE, sequence=3, chunk=2, timestamp_ms=20)),
    (media_wire(4, 3, 40, SILENCE), MediaReceived(SILENCE, sequence=4, chunk=3, timestamp_ms=40)),
    (
        {"event": "dtmf", "sequence_number": "5", "dtmf": {"digit": "7"}, "stream_id": SID},
        DtmfReceived("7", method="telnyx"),
    ),
    (
        {"event": "mark", "sequence_number": "6", "mark": {"name": "greeting"}, "stream_id": SID},
        MarkPlayed("greeting"),
    ),
    (
        {"event": "error", "payload": {"code": 3, "title": "x", "detail": "x"}, "stream_id": SID},
        ErrorReported("3", "x"),
    ),
    (
        {
            "event": "stop",
            "sequence_number": "7",
            "stop": {"user_id": USER, "call_control_id": CCID},
            "stream_id": SID,
        },
        StreamStopped(),
    ),
]  # fmt: skip

# What the application side sends to Telnyx (no stream_id), both ways on a started stream.
DOWNSTREAM: list[tuple[dict[str, Any], DownstreamEvent]] = [
    ({"event": "media", "media": {"payload": b64(TONE)}}, AudioSent(TONE)),
    ({"event": "mark", "mark": {"name": "m-1"}}, MarkRequested("m-1")),
    ({"event": "clear"}, ClearRequested()),
]


def started_app(message: dict[str, Any] | None = None) -> TelnyxDialect:
    dialect = TelnyxDialect()
    dialect.parse_upstream(json.dumps(message or start_wire()))
    return dialect


def started_telephony(event: StreamStarted | None = None) -> TelnyxDialect:
    dialect = TelnyxDialect()
    dialect.format_upstream(event or start_event())
    return dialect


def test_it_is_a_dialect() -> None:
    dialect: Dialect = TelnyxDialect()
    assert dialect.name == "telnyx"


# --- both directions -------------------------------------------------------------------------


def test_session_parses_to_its_events() -> None:
    dialect = TelnyxDialect()
    assert [dialect.parse_upstream(json.dumps(w)) for w, _ in SESSION] == [e for _, e in SESSION]


def test_session_formats_to_its_wire() -> None:
    dialect = TelnyxDialect()
    assert [wire(dialect.format_upstream(e)) for _, e in SESSION] == [w for w, _ in SESSION]


@pytest.mark.parametrize(("message", "event"), DOWNSTREAM)
def test_downstream_formats_to_wire(message: dict[str, Any], event: DownstreamEvent) -> None:
    assert wire(started_app().format_downstream(event)) == message


@pytest.mark.parametrize(("message", "event"), DOWNSTREAM)
def test_downstream_parses_to_event(message: dict[str, Any], event: DownstreamEvent) -> None:
    assert started_telephony().parse_downstream(json.dumps(message)) == event


@pytest.mark.parametrize(
    ("encoding", "rate", "fmt"),
    [
        ("PCMU", 8000, PCMU_8K),
        ("PCMA", 8000, PCMA_8K),
        ("L16", 16000, L16_16K),
        ("L16", 24000, AudioFormat(Encoding.L16, 24000)),
        ("PCMU", 16000, AudioFormat(Encoding.PCMU, 16000)),
    ],
)
def test_media_formats_both_ways(encoding: str, rate: int, fmt: AudioFormat) -> None:
    application = started_app(start_wire(encoding, rate))
    assert application.media_format == fmt
    sent = wire(TelnyxDialect().format_upstream(start_event(fmt)))
    assert sent["start"]["media_format"] == {
        "encoding": encoding,
        "sample_rate": rate,
        "channels": 1,
    }


def test_start_sets_the_stream_state() -> None:
    for dialect in (started_app(), started_telephony()):
        assert (dialect.stream_id, dialect.call_id, dialect.account_id) == (SID, CCID, USER)


# --- parsing details ---------------------------------------------------------------------------

PARSED: list[tuple[dict[str, Any], UpstreamEvent]] = [
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


@pytest.mark.parametrize(("message", "event"), PARSED)
def test_parse_upstream_vectors(message: dict[str, Any], event: UpstreamEvent) -> None:
    assert started_app().parse_upstream(json.dumps(message)) == event


def test_order_restoration_numbers_are_ints_as_sent() -> None:
    # Telnyx: "Media frame order is not guaranteed"
    dialect = started_app()
    arrivals = [(5, 4, 60), (3, 2, 20), (4, 3, 40)]
    parsed = []
    for sequence, chunk, timestamp in arrivals:
        event = dialect.parse_upstream(json.dumps(media_wire(sequence, chunk, timestamp, TONE)))
        assert isinstance(event, MediaReceived)
        parsed.append((event.sequence, event.chunk, event.timestamp_ms))
    assert parsed == arrivals


def test_minimal_start_defaults_to_pcmu_8k() -> None:
    message = {"event": "start", "stream_id": SID, "start": {"call_control_id": CCID}}
    assert TelnyxDialect().parse_upstream(json.dumps(message)) == StreamStarted(SID, CCID)


def test_null_optionals_in_start_are_none() -> None:
    message = start_wire()
    message["start"].update(client_state=None, user_id=None, custom_parameters=None)
    event = TelnyxDialect().parse_upstream(json.dumps(message))
    assert isinstance(event, StreamStarted)
    assert (event.client_state, event.account_id, dict(event.custom_parameters)) == (None, None, {})


def test_error_frames_may_come_before_start() -> None:
    message = {"event": "error", "payload": {"code": 100003, "title": "Malformed frame"}}
    assert TelnyxDialect().parse_upstream(json.dumps(message)) == ErrorReported(
        "100003", "Malformed frame"
    )


def test_l16_payload_is_big_endian_rtp_and_passes_untouched() -> None:
    dialect = started_app(start_wire("L16", 16000))
    samples = b"\x12\x34\xfe\xdc"  # 0x1234, -0x0124 in network byte order
    message = {"event": "media", "stream_id": SID, "media": {"payload": b64(samples)}}
    event = dialect.parse_upstream(json.dumps(message))
    assert event == MediaReceived(samples)
    assert dialect.media_format.encoding is Encoding.L16  # big-endian in voxgate.codecs


# --- telephony role ------------------------------------------------------------------------------


def test_telephony_role_sends_what_telnyx_sends() -> None:
    dialect = TelnyxDialect()
    events: list[UpstreamEvent] = [
        StreamConnected(),
        start_event(),
        MediaReceived(SILENCE),
        MediaReceived(SILENCE),
        MediaReceived(SILENCE),
        DtmfReceived("1"),
        MarkPlayed("x"),
        StreamStopped(),
    ]
    sent = [wire(dialect.format_upstream(event)) for event in events]
    assert sent[0] == {"event": "connected", "version": "1.0.0"}
    assert [m["sequence_number"] for m in sent[1:]] == ["1", "2", "3", "4", "5", "6", "7"]
    assert all(m["stream_id"] == SID for m in sent[1:])
    # pipecat recognises Telnyx by stream_id + start.call_control_id, then reads
    # start.media_format.encoding, start.from and start.to
    start = sent[1]["start"]
    assert (start["call_control_id"], start["media_format"]["encoding"]) == (CCID, "PCMU")
    assert (start["from"], start["to"]) == ("+13122010094", "+13122123456")
    media = [m["media"] for m in sent[2:5]]
    assert [(m["chunk"], m["timestamp"]) for m in media] == [("1", "0"), ("2", "20"), ("3", "40")]
    assert all(isinstance(value, str) for m in media for value in m.values())
    assert sent[5]["dtmf"] == {"digit": "1"}
    assert sent[7]["stop"] == {"user_id": USER, "call_control_id": CCID}


def test_telephony_l16_timestamps_count_two_byte_samples() -> None:
    dialect = started_telephony(start_event(L16_16K))
    frame = b"\x00\x01" * 320  # 20 ms at 16 kHz
    stamps = [
        wire(dialect.format_upstream(MediaReceived(frame)))["media"]["timestamp"] for _ in "abc"
    ]
    assert stamps == ["0", "20", "40"]


def test_telephony_error_frame_before_start_has_no_stream_id() -> None:
    message = wire(TelnyxDialect().format_upstream(ErrorReported("bad_audio", "not base64")))
    assert message == {
        "event": "error",
        "payload": {"code": "bad_audio", "title": "not base64", "detail": "not base64"},
    }


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
    assert TelnyxDialect().format_downstream(event) is None


# --- errors --------------------------------------------------------------------------------------

HUGE = "A" * MAX_MESSAGE_BYTES
BAD_UPSTREAM: list[tuple[str, Raw, str]] = [
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
    ("second start", start_wire(), "unsupported"),
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
    assert dialect.stream_id == SID


def test_odd_l16_payload_is_bad_audio() -> None:
    dialect = started_app(start_wire("L16", 16000))
    message = {"event": "media", "media": {"payload": b64(b"\x00\x01\x02")}}
    with pytest.raises(ProtocolError) as caught:
        dialect.parse_upstream(json.dumps(message))
    assert caught.value.code == "bad_audio"


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
        TelnyxDialect().parse_upstream(json.dumps(message))
    assert (caught.value.code, caught.value.fatal) == ("not_started", False)


def test_size_is_checked_before_parsing() -> None:
    with pytest.raises(ProtocolError) as caught:
        TelnyxDialect().parse_upstream("{" * (MAX_MESSAGE_BYTES + 1))
    assert caught.value.code == "message_too_large"


BAD_STARTS: list[dict[str, Any]] = [
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


@pytest.mark.parametrize("message", BAD_STARTS)
def test_unusable_start_is_a_fatal_policy_violation(message: dict[str, Any]) -> None:
    dialect = TelnyxDialect()
    with pytest.raises(ProtocolError) as caught:
        dialect.parse_upstream(json.dumps(message))
    error = caught.value
    assert (error.code, error.fatal, error.close_code) == ("missing_field", True, 1008)
    assert dialect.stream_id is None


@pytest.mark.parametrize(
    ("encoding", "rate"),
    [("OPUS", 48000), ("G722", 16000), ("AMR-WB", 16000), ("PCMU", 11025), ("L16", 44100)],
)
def test_start_with_unhandled_format_is_fatal_unsupported(encoding: str, rate: int) -> None:
    with pytest.raises(ProtocolError) as caught:
        TelnyxDialect().parse_upstream(json.dumps(start_wire(encoding, rate)))
    error = caught.value
    assert (error.code, error.fatal, error.close_code) == ("unsupported", True, 1003)


def test_start_with_stereo_is_fatal_unsupported() -> None:
    message = start_wire()
    message["start"]["media_format"]["channels"] = 2
    with pytest.raises(ProtocolError) as caught:
        TelnyxDialect().parse_upstream(json.dumps(message))
    assert (caught.value.code, caught.value.fatal) == ("unsupported", True)


BAD_DOWNSTREAM: list[tuple[str, Raw, str]] = [
    ("not json", "", "malformed_json"),
    ("binary audio", b"\x00\x00", "malformed_json"),
    ("hangup is not telnyx", {"event": "hangup"}, "unknown_event"),
    ("mark without name", {"event": "mark", "mark": {}}, "missing_field"),
    ("bad base64", {"event": "media", "media": {"payload": "a b"}}, "bad_audio"),
    ("other stream", {"event": "clear", "stream_id": "other"}, "wrong_stream"),
    ("too large", {"event": "media", "media": {"payload": HUGE}}, "message_too_large"),
]


@pytest.mark.parametrize(
    ("name", "message", "code"), BAD_DOWNSTREAM, ids=[c[0] for c in BAD_DOWNSTREAM]
)
def test_bad_bot_message_is_a_non_fatal_error(name: str, message: Raw, code: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        started_telephony().parse_downstream(raw(message))
    assert (caught.value.code, caught.value.fatal) == (code, False)


def test_bot_messages_before_start_are_not_started() -> None:
    with pytest.raises(ProtocolError) as caught:
        TelnyxDialect().parse_downstream('{"event":"media","media":{"payload":""}}')
    assert caught.value.code == "not_started"


def test_formatting_stream_events_before_start_is_not_started() -> None:
    with pytest.raises(ProtocolError) as caught:
        TelnyxDialect().format_downstream(ClearRequested())
    assert caught.value.code == "not_started"
    with pytest.raises(ProtocolError) as caught:
        TelnyxDialect().format_upstream(StreamStopped())
    assert caught.value.code == "not_started"


def test_telephony_start_refuses_little_endian_pcm() -> None:
    with pytest.raises(ProtocolError) as caught:
        TelnyxDialect().format_upstream(start_event(AudioFormat(Encoding.PCM16, 16000)))
    error = caught.value
    assert (error.code, error.fatal, error.close_code) == ("unsupported", True, 1003)


# --- round trips ---------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    fmt=st.sampled_from([PCMU_8K, PCMA_8K, L16_16K]),
    payloads=st.lists(st.binary(max_size=4000), min_size=1, max_size=5),
)
def test_media_round_trips_upstream(fmt: AudioFormat, payloads: list[bytes]) -> None:
    telephony, application = TelnyxDialect(), TelnyxDialect()
    application.parse_upstream(telephony.format_upstream(start_event(fmt)) or "")
    for payload in payloads:
        whole = payload[: len(payload) - len(payload) % fmt.bytes_per_sample]
        event = application.parse_upstream(telephony.format_upstream(MediaReceived(whole)) or "")
        assert isinstance(event, MediaReceived)
        assert event.payload == whole


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=4000), name=st.text(max_size=40))
def test_audio_marks_and_clear_round_trip_downstream(payload: bytes, name: str) -> None:
    application, telephony = started_app(), started_telephony()
    for event in (AudioSent(payload), MarkRequested(name), ClearRequested()):
        assert telephony.parse_downstream(application.format_downstream(event) or "") == event


@settings(max_examples=100, deadline=None)
@given(code=st.one_of(st.integers(0, 10**9).map(str), st.text(min_size=1)), text=st.text())
def test_error_frames_round_trip(code: str, text: str) -> None:
    message = started_telephony().format_upstream(ErrorReported(code, text))
    assert started_app().parse_upstream(message or "") == ErrorReported(code, text)
