"""What only the Plivo Audio Streams dialect does (no hello, checkpoint/playedStream,
extra_headers, a wall-clock timestamp, mu-law only); what it shares with Twilio and Telnyx
is tested on every wire in test_carrier_common.py, over the vectors in carrier_vectors.py."""

from __future__ import annotations

import json

import pytest
from carrier_vectors import (
    L16_16K,
    PLIVO,
    PLIVO_CALL,
    PLIVO_SID,
    PLIVO_START_EVENT,
    PLIVO_UNIX_MS,
    TWILIO,
    b64,
    plivo_start,
    plivo_start_wire,
    wire,
)

from voxgate.bridge.carriers._stream import MAX_JSON_INTEGER, MAX_STREAM_MS
from voxgate.bridge.carriers.plivo import PlivoDialect
from voxgate.bridge.carriers.telnyx import TelnyxDialect
from voxgate.bridge.carriers.twilio import TwilioDialect
from voxgate.bridge.events import (
    AudioSent,
    ErrorReported,
    MediaReceived,
    StreamConnected,
    StreamStarted,
)
from voxgate.errors import ProtocolError


def test_start_comes_first_and_nothing_is_sent_for_a_hello() -> None:
    dialect = PlivoDialect()
    assert dialect.format_upstream(StreamConnected()) is None
    assert dialect.parse_upstream(json.dumps(plivo_start_wire())) == PLIVO_START_EVENT
    assert (dialect.stream_id, dialect.call_id) == (PLIVO_SID, PLIVO_CALL)


@pytest.mark.parametrize(
    ("extra_headers", "parameters"),
    [
        ("userId=12345;sessionId=abc-xyz", {"userId": "12345", "sessionId": "abc-xyz"}),
        ("test1=12,test2=123", {"test1": "12", "test2": "123"}),  # the <Stream> page's example
        ("a=1, b = 2 ;", {"a": "1", "b": "2"}),
        ("novalue;=x;c=", {"c": ""}),
        ("", {}),
        (None, {}),
    ],
)
def test_extra_headers_are_the_custom_parameters(
    extra_headers: str | None, parameters: dict[str, str]
) -> None:
    message = {**plivo_start(streamId=PLIVO_SID, callId=PLIVO_CALL), "extra_headers": extra_headers}
    event = PlivoDialect().parse_upstream(json.dumps(message))
    assert isinstance(event, StreamStarted)
    assert dict(event.custom_parameters) == parameters


def test_telephony_start_writes_the_custom_parameters_as_extra_headers() -> None:
    sent = wire(PlivoDialect().format_upstream(PLIVO_START_EVENT))
    assert sent["extra_headers"] == "userId=12345;sessionId=abc-xyz"
    assert sent["start"]["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000}
    bare = wire(PlivoDialect().format_upstream(StreamStarted(PLIVO_SID, PLIVO_CALL)))
    assert "extra_headers" not in bare


def test_l16_is_refused_naming_the_undocumented_byte_order() -> None:
    with pytest.raises(ProtocolError) as caught:
        PlivoDialect().parse_upstream(json.dumps(plivo_start_wire("audio/x-l16", 16000)))
    assert (caught.value.code, caught.value.close_code) == ("unsupported", 1003)
    with pytest.raises(ProtocolError) as caught:
        PlivoDialect().format_upstream(PLIVO.start_event(L16_16K))
    assert "byte order" in caught.value.message


def test_wall_clock_timestamps_pass_where_a_stream_clock_would_refuse_them() -> None:
    # Plivo's media.timestamp is Unix milliseconds (1.7e12), far past 30 days of stream time.
    assert PlivoDialect.max_timestamp_ms == MAX_JSON_INTEGER
    assert TwilioDialect.max_timestamp_ms == TelnyxDialect.max_timestamp_ms == MAX_STREAM_MS
    assert MAX_STREAM_MS < PLIVO_UNIX_MS < MAX_JSON_INTEGER
    message = PLIVO.stream.media(2, 1, PLIVO_UNIX_MS, b"\xff")
    assert PLIVO.started_app().parse_upstream(json.dumps(message)) == MediaReceived(
        b"\xff", sequence=2, chunk=1, timestamp_ms=PLIVO_UNIX_MS
    )
    twilio = {"event": "media", "media": {"payload": "/w==", "timestamp": str(PLIVO_UNIX_MS)}}
    event = TWILIO.started_app().parse_upstream(json.dumps(twilio))
    assert event == MediaReceived(b"\xff")  # Twilio's clock counts from the stream's start


def test_play_audio_names_the_stream_format() -> None:
    sent = wire(PLIVO.started_app().format_downstream(AudioSent(b"\x7f\xff")))
    assert sent == {
        "event": "playAudio",
        "streamId": PLIVO_SID,
        "media": {"contentType": "audio/x-mulaw", "sampleRate": 8000, "payload": b64(b"\x7f\xff")},
    }


def test_cleared_audio_may_come_before_start_and_is_ignored() -> None:
    message = {"sequenceNumber": 0, "event": "clearedAudio", "streamId": PLIVO_SID}
    assert PlivoDialect().parse_upstream(json.dumps(message)) == StreamConnected()


def test_errors_have_no_plivo_message() -> None:
    assert PLIVO.started_telephony().format_upstream(ErrorReported("bad_audio", "x")) is None
