"""What only the Telnyx Media Streaming dialect does (formats, error frames, L16); what it
shares with Twilio is tested on both wires in test_carrier_common.py, over the vectors in
carrier_vectors.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from carrier_vectors import (
    CCID,
    L16_16K,
    SID,
    TELNYX,
    b64,
    telnyx_start_event,
    telnyx_start_wire,
    wire,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from voxgate.bridge.carriers.telnyx import TelnyxDialect
from voxgate.bridge.events import ErrorReported, MediaReceived, StreamStarted
from voxgate.codecs.formats import PCMA_8K, PCMU_8K, AudioFormat, Encoding
from voxgate.errors import ProtocolError


def started_app(message: dict[str, Any]) -> TelnyxDialect:
    dialect = TelnyxDialect()
    dialect.parse_upstream(json.dumps(message))
    return dialect


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
    application = started_app(telnyx_start_wire(encoding, rate))
    assert application.media_format == fmt
    sent = wire(TelnyxDialect().format_upstream(telnyx_start_event(fmt)))
    assert sent["start"]["media_format"] == {
        "encoding": encoding,
        "sample_rate": rate,
        "channels": 1,
    }


def test_null_optionals_in_start_are_none() -> None:
    message = telnyx_start_wire()
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
    dialect = started_app(telnyx_start_wire("L16", 16000))
    samples = b"\x12\x34\xfe\xdc"  # 0x1234, -0x0124 in network byte order
    message = {"event": "media", "stream_id": SID, "media": {"payload": b64(samples)}}
    event = dialect.parse_upstream(json.dumps(message))
    assert event == MediaReceived(samples)
    assert dialect.media_format.encoding is Encoding.L16  # big-endian in voxgate.codecs


def test_odd_l16_payload_is_bad_audio() -> None:
    dialect = started_app(telnyx_start_wire("L16", 16000))
    message = {"event": "media", "media": {"payload": b64(b"\x00\x01\x02")}}
    with pytest.raises(ProtocolError) as caught:
        dialect.parse_upstream(json.dumps(message))
    assert caught.value.code == "bad_audio"


# --- telephony role ------------------------------------------------------------------------------


def test_telephony_start_has_what_pipecat_reads() -> None:
    # pipecat recognises Telnyx by stream_id + start.call_control_id, then reads
    # start.media_format.encoding, start.from and start.to
    start = wire(TelnyxDialect().format_upstream(telnyx_start_event()))["start"]
    assert (start["call_control_id"], start["media_format"]["encoding"]) == (CCID, "PCMU")
    assert (start["from"], start["to"]) == ("+13122010094", "+13122123456")


def test_telephony_l16_timestamps_count_two_byte_samples() -> None:
    dialect = TelnyxDialect()
    dialect.format_upstream(telnyx_start_event(L16_16K))
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


@settings(max_examples=100, deadline=None)
@given(code=st.one_of(st.integers(0, 10**9).map(str), st.text(min_size=1)), text=st.text())
def test_error_frames_round_trip(code: str, text: str) -> None:
    message = TELNYX.started_telephony().format_upstream(ErrorReported(code, text))
    assert TELNYX.started_app().parse_upstream(message or "") == ErrorReported(code, text)
