"""voxgate.v1 wire vectors in both directions, both transports, every error, the counters."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxgate.bridge import dialect as dialect_module
from voxgate.bridge.botlink.v1 import (
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_POLICY_VIOLATION,
    CLOSE_UNSUPPORTED_DATA,
    ERROR_CODES,
    SUBPROTOCOL_BINARY,
    SUBPROTOCOL_JSON,
    V1Dialect,
    transport_for,
)
from voxgate.bridge.dialect import MAX_MESSAGE_BYTES, Dialect, Message
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
from voxgate.codecs.formats import PCMU_8K, AudioFormat, Encoding
from voxgate.errors import ProtocolError

PCM16_16K = AudioFormat(Encoding.PCM16, 16000)
PCM16_24K = AudioFormat(Encoding.PCM16, 24000)
L16_8K = AudioFormat(Encoding.L16, 8000)
SILENCE = b"\xff" * 12
SILENCE_B64 = "////////////////"


def _wire(message: dict[str, Any]) -> str:
    """The exact text voxgate sends: compact JSON in the message's field order, ASCII only."""
    return json.dumps(message, separators=(",", ":"))


def _start_event(media_format: AudioFormat = PCMU_8K, **fields: Any) -> StreamStarted:
    return StreamStarted(
        stream_id="vs-1", call_id="CA1", session_id="vg-1", media_format=media_format, **fields
    )


def _start_wire(media_format: AudioFormat = PCMU_8K, transport: str = "json") -> dict[str, Any]:
    return {
        "type": "start",
        "protocol": "voxgate.v1",
        "call_id": "vg-1",
        "stream_id": "vs-1",
        "direction": "inbound",
        "carrier": {"call_id": "CA1"},
        "custom_parameters": {},
        "media_format": {
            "encoding": media_format.encoding.value,
            "sample_rate": media_format.sample_rate,
            "channels": 1,
        },
        "audio_transport": transport,
        "reconnected": False,
    }


def _bot_side(media_format: AudioFormat = PCMU_8K, *, binary: bool = False) -> V1Dialect:
    """A dialect that has parsed a start, as a bot's would have."""
    dialect = V1Dialect(binary_audio=binary)
    dialect.parse_upstream(_wire(_start_wire(media_format, "binary" if binary else "json")))
    return dialect


def _bridge_side(media_format: AudioFormat = PCMU_8K, *, binary: bool = False) -> V1Dialect:
    """A dialect that has formatted a start, as voxgate's would have."""
    dialect = V1Dialect(binary_audio=binary)
    dialect.format_upstream(_start_event(media_format))
    return dialect


# Each end of the socket, made afresh for each message: a started bridge and a started bot; a
# bot needs no start to send.
def _bridge_sends(event: UpstreamEvent) -> Message | None:
    return _bridge_side().format_upstream(event)


def _bot_reads(message: Message) -> UpstreamEvent:
    return _bot_side().parse_upstream(message)


def _bot_sends(event: DownstreamEvent) -> Message | None:
    return V1Dialect().format_downstream(event)


def _bridge_reads(message: Message) -> DownstreamEvent:
    return _bridge_side().parse_downstream(message)


def test_is_a_dialect() -> None:
    dialect: Dialect = V1Dialect()
    assert dialect.name == "voxgate.v1"


# --- start ----------------------------------------------------------------------------

FULL_START = StreamStarted(
    stream_id="vs-91d3",
    call_id="CA0123",
    media_format=PCM16_16K,
    account_id="AC0123",
    session_id="vg-2f6c",
    from_number="+15551234567",
    to_number="sip:bot@example.com",
    direction="outbound",
    custom_parameters=MappingProxyType({"tier": "gold", "empty": ""}),
    opening_text="Hello there",
    system_prompt="Be brief. Ünïcode ok.",
    reconnected=True,
)
FULL_START_WIRE = {
    "type": "start",
    "protocol": "voxgate.v1",
    "call_id": "vg-2f6c",
    "stream_id": "vs-91d3",
    "direction": "outbound",
    "from": "+15551234567",
    "to": "sip:bot@example.com",
    "carrier": {"name": "twilio", "call_id": "CA0123", "account_id": "AC0123"},
    "custom_parameters": {"tier": "gold", "empty": ""},
    "opening_text": "Hello there",
    "system_prompt": "Be brief. Ünïcode ok.",
    "media_format": {"encoding": "pcm16", "sample_rate": 16000, "channels": 1},
    "audio_transport": "binary",
    "reconnected": True,
}

START_VECTORS = [
    pytest.param({}, _start_event(), _start_wire(), id="minimal"),
    pytest.param(
        {"binary_audio": True, "carrier": "twilio"}, FULL_START, FULL_START_WIRE, id="full-binary"
    ),
    pytest.param(
        {"carrier": "sip"},
        _start_event(L16_8K, direction="outbound"),
        {
            **_start_wire(L16_8K),
            "direction": "outbound",
            "carrier": {"name": "sip", "call_id": "CA1"},
        },
        id="l16-sip",
    ),
]


@pytest.mark.parametrize(("options", "event", "wire"), START_VECTORS)
def test_start_formats_to_wire(options: dict[str, Any], event: StreamStarted, wire: Any) -> None:
    assert V1Dialect(**options).format_upstream(event) == _wire(wire)


@pytest.mark.parametrize(("options", "event", "wire"), START_VECTORS)
def test_start_parses_to_event(options: dict[str, Any], event: StreamStarted, wire: Any) -> None:
    dialect = V1Dialect(binary_audio=options.get("binary_audio", False))
    assert dialect.parse_upstream(_wire(wire)) == event
    assert dialect.carrier == options.get("carrier")
    assert (dialect.started, dialect.stream_id, dialect.media_format) == (
        True,
        event.stream_id,
        event.media_format,
    )


def test_start_without_voxgate_call_id_uses_the_carrier_call_id() -> None:
    event = StreamStarted(stream_id="vs-1", call_id="CA9")
    assert json.loads(str(V1Dialect().format_upstream(event)))["call_id"] == "CA9"


def test_start_parser_ignores_unknown_fields_and_nulls() -> None:
    wire = {**_start_wire(), "future_field": [1], "from": None, "opening_text": None}
    assert V1Dialect().parse_upstream(_wire(wire)) == _start_event()


# --- other bridge -> bot messages -----------------------------------------------------

UPSTREAM_VECTORS = [
    pytest.param(
        MediaReceived(SILENCE, sequence=1, timestamp_ms=0),
        {"type": "media", "seq": 1, "timestamp_ms": 0, "audio": SILENCE_B64},
        id="media",
    ),
    pytest.param(
        MediaReceived(b"", sequence=1, timestamp_ms=140),
        {"type": "media", "seq": 1, "timestamp_ms": 140, "audio": ""},
        id="media-empty-carrier-clock",
    ),
    pytest.param(
        DtmfReceived("5", duration_ms=120, method="rfc4733"),
        {"type": "dtmf", "digit": "5", "duration_ms": 120, "method": "rfc4733"},
        id="dtmf-full",
    ),
    pytest.param(DtmfReceived("#"), {"type": "dtmf", "digit": "#"}, id="dtmf-minimal"),
    pytest.param(
        DtmfReceived("D", method="inband"),
        {"type": "dtmf", "digit": "D", "method": "inband"},
        id="dtmf-method-only",
    ),
    pytest.param(HoldChanged(True), {"type": "hold", "on_hold": True}, id="hold"),
    pytest.param(HoldChanged(False), {"type": "hold", "on_hold": False}, id="resume"),
    pytest.param(MarkPlayed("greeting"), {"type": "mark", "name": "greeting"}, id="mark"),
    pytest.param(
        StreamStopped("caller_hangup"), {"type": "stop", "reason": "caller_hangup"}, id="stop"
    ),
    pytest.param(StreamStopped(), {"type": "stop"}, id="stop-no-reason"),
    *[
        pytest.param(
            ErrorReported(code, f"about {code}"),
            {"type": "error", "code": code, "message": f"about {code}"},
            id=f"error-{code}",
        )
        for code in ERROR_CODES
    ],
]


def test_connected_has_no_v1_message() -> None:
    assert V1Dialect().format_upstream(StreamConnected()) is None


def test_stop_ends_the_stream_both_ways() -> None:
    bridge, bot = _bridge_side(), _bot_side()
    bot.parse_upstream(str(bridge.format_upstream(StreamStopped("bot_hangup"))))
    assert bridge.stopped
    assert bot.stopped


# --- bot -> bridge --------------------------------------------------------------------

DOWNSTREAM_VECTORS = [
    pytest.param(
        AudioSent(SILENCE),
        {"type": "response.audio.delta", "audio": SILENCE_B64},
        id="audio",
    ),
    pytest.param(AudioSent(b""), {"type": "response.audio.delta", "audio": ""}, id="audio-empty"),
    pytest.param(ClearRequested(), {"type": "response.audio.clear"}, id="clear"),
    pytest.param(MarkRequested("m-1"), {"type": "mark", "name": "m-1"}, id="mark"),
    pytest.param(
        DtmfSendRequested("12#", 100),
        {"type": "dtmf.send", "digits": "12#", "duration_ms": 100},
        id="dtmf-send",
    ),
    pytest.param(
        DtmfSendRequested("0123456789*#ABCD0123456789*#ABCD", 50),
        {"type": "dtmf.send", "digits": "0123456789*#ABCD0123456789*#ABCD", "duration_ms": 50},
        id="dtmf-send-32-digits-shortest",
    ),
    pytest.param(
        DtmfSendRequested("9", 2000),
        {"type": "dtmf.send", "digits": "9", "duration_ms": 2000},
        id="dtmf-send-longest",
    ),
    pytest.param(
        TransferRequested("+15551234567"),
        {"type": "session.transfer", "target": "+15551234567"},
        id="transfer-e164",
    ),
    pytest.param(
        TransferRequested("sips:desk@pbx.example.com;transport=tls"),
        {"type": "session.transfer", "target": "sips:desk@pbx.example.com;transport=tls"},
        id="transfer-sip",
    ),
    pytest.param(
        HangupRequested("done"), {"type": "session.hangup", "reason": "done"}, id="hangup"
    ),
    pytest.param(HangupRequested(), {"type": "session.hangup"}, id="hangup-no-reason"),
    pytest.param(
        TranscriptReceived("caller", "Hi, ünïcode", final=False),
        {"type": "transcript", "role": "caller", "text": "Hi, ünïcode", "final": False},
        id="transcript-interim",
    ),
    pytest.param(
        TranscriptReceived("bot", ""),
        {"type": "transcript", "role": "bot", "text": "", "final": True},
        id="transcript-final",
    ),
]


def _handled_by(way: str, handle: Callable[[Any], object], vectors: list[Any]) -> list[Any]:
    """``(handle, event, wire)`` for each of ``vectors``, id ``<way>-<vector id>``."""
    return [pytest.param(handle, *vector.values, id=f"{way}-{vector.id}") for vector in vectors]


# Both directions hold for every vector: the sender formats the event to the wire, the
# receiver parses the wire to the event.
FORMATTED = [
    *_handled_by("bridge-to-bot", _bridge_sends, UPSTREAM_VECTORS),
    *_handled_by("bot-to-bridge", _bot_sends, DOWNSTREAM_VECTORS),
]
PARSED = [
    *_handled_by("bridge-to-bot", _bot_reads, UPSTREAM_VECTORS),
    *_handled_by("bot-to-bridge", _bridge_reads, DOWNSTREAM_VECTORS),
]


@pytest.mark.parametrize(("send", "event", "wire"), FORMATTED)
def test_event_formats_to_wire(
    send: Callable[[Any], Message | None], event: Any, wire: dict[str, Any]
) -> None:
    assert send(event) == _wire(wire)


@pytest.mark.parametrize(("read", "event", "wire"), PARSED)
def test_wire_parses_to_event(
    read: Callable[[Message], Any], event: Any, wire: dict[str, Any]
) -> None:
    assert read(_wire(wire)) == event


PARSE_ONLY_DOWNSTREAM = [
    pytest.param(
        {"type": "dtmf.send", "digits": "1"}, DtmfSendRequested("1", 100), id="dtmf-default"
    ),
    pytest.param(
        {"type": "transcript", "role": "bot", "text": "x"},
        TranscriptReceived("bot", "x", final=True),
        id="transcript-final-default",
    ),
    pytest.param(
        {"type": "session.hangup", "reason": None}, HangupRequested(), id="hangup-null-reason"
    ),
    pytest.param(
        {"type": "mark", "name": "x", "extra": {"future": True}}, MarkRequested("x"), id="extra"
    ),
]


@pytest.mark.parametrize(("wire", "event"), PARSE_ONLY_DOWNSTREAM)
def test_downstream_defaults_and_leniency(wire: dict[str, Any], event: DownstreamEvent) -> None:
    assert V1Dialect().parse_downstream(json.dumps(wire)) == event


# --- binary transport -----------------------------------------------------------------


def test_transport_follows_the_selected_subprotocol() -> None:
    assert transport_for(None) == "json"
    assert transport_for(SUBPROTOCOL_JSON) == "json"
    assert transport_for(SUBPROTOCOL_BINARY) == "binary"
    with pytest.raises(ProtocolError, match="'chat'") as caught:
        transport_for("chat")
    assert (caught.value.code, caught.value.fatal) == ("unsupported", True)


def test_binary_transport_upstream_media_is_bare_bytes() -> None:
    bridge, bot = _bridge_side(PCM16_16K, binary=True), _bot_side(PCM16_16K, binary=True)
    frames = [bridge.format_upstream(MediaReceived(b"\x01\x02" * n)) for n in (320, 160, 320)]
    assert frames == [b"\x01\x02" * 320, b"\x01\x02" * 160, b"\x01\x02" * 320]
    events = [bot.parse_upstream(frame) for frame in frames if frame is not None]
    assert events == [
        MediaReceived(b"\x01\x02" * 320, sequence=1, timestamp_ms=0),
        MediaReceived(b"\x01\x02" * 160, sequence=2, timestamp_ms=20),
        MediaReceived(b"\x01\x02" * 320, sequence=3, timestamp_ms=30),
    ]


def test_binary_transport_downstream_audio_is_bare_bytes() -> None:
    bot, bridge = _bot_side(binary=True), _bridge_side(binary=True)
    assert bot.format_downstream(AudioSent(SILENCE)) == SILENCE
    assert bridge.parse_downstream(SILENCE) == AudioSent(SILENCE)
    # Buffers other than bytes are accepted too (outside the declared Message type).
    assert bridge.parse_downstream(bytearray(SILENCE)) == AudioSent(SILENCE)  # type: ignore[arg-type]
    assert bridge.parse_downstream(memoryview(SILENCE)) == AudioSent(SILENCE)  # type: ignore[arg-type]


def test_binary_transport_still_accepts_json_audio_and_sends_other_messages_as_json() -> None:
    bridge = _bridge_side(binary=True)
    wire = _wire({"type": "response.audio.delta", "audio": SILENCE_B64})
    assert bridge.parse_downstream(wire) == AudioSent(SILENCE)
    assert bridge.format_upstream(MarkPlayed("m")) == _wire({"type": "mark", "name": "m"})
    bot = _bot_side(binary=True)
    assert bot.format_downstream(MarkRequested("m")) == _wire({"type": "mark", "name": "m"})


def test_json_transport_refuses_binary_frames_both_ways() -> None:
    for parse in (_bridge_side().parse_downstream, _bot_side().parse_upstream):
        with pytest.raises(ProtocolError, match=SUBPROTOCOL_BINARY) as caught:
            parse(SILENCE)
        error = caught.value
        assert (error.code, error.fatal, error.close_code) == (
            "unsupported",
            True,
            CLOSE_UNSUPPORTED_DATA,
        )


@pytest.mark.parametrize(("binary", "claimed"), [(False, "binary"), (True, "json")])
def test_start_must_repeat_the_negotiated_transport(binary: bool, claimed: str) -> None:
    with pytest.raises(ProtocolError, match="audio_transport") as caught:
        V1Dialect(binary_audio=binary).parse_upstream(_wire(_start_wire(transport=claimed)))
    assert (caught.value.code, caught.value.close_code) == ("unsupported", CLOSE_POLICY_VIOLATION)


# --- every error ----------------------------------------------------------------------

TOO_LARGE_TEXT = json.dumps({"type": "mark", "name": "x" * MAX_MESSAGE_BYTES})
TOO_LARGE_UTF8 = json.dumps(
    {"type": "mark", "name": "é" * (MAX_MESSAGE_BYTES // 2)}, ensure_ascii=False
)
ODD_PCM16 = _wire({"type": "response.audio.delta", "audio": base64.b64encode(b"abc").decode()})


def _stopped_bot() -> V1Dialect:
    dialect = _bot_side()
    dialect.parse_upstream('{"type": "stop"}')
    return dialect


def _changed(message: dict[str, Any], **changes: Any) -> str:
    """``message`` with ``changes`` made (``...`` removes the field), as JSON text."""
    wire = {**message, **changes}
    return _wire({key: value for key, value in wire.items() if value is not ...})


def _start_with(**changes: Any) -> str:
    return _changed(_start_wire(), **changes)


def _media_with(**changes: Any) -> str:
    return _changed({"type": "media", "seq": 1, "timestamp_ms": 0, "audio": ""}, **changes)


def _start_in(encoding: str, sample_rate: int, channels: int) -> str:
    media_format = {"encoding": encoding, "sample_rate": sample_rate, "channels": channels}
    return _start_with(media_format=media_format)


# Bad messages, by who reads them: (message, error code, words the error message must hold).

# The bot's messages to a started bridge (pcmu/8000).
BOT_MESSAGE_ERRORS: list[tuple[Message, str, str]] = [
    ("not json", "malformed_json", "not valid JSON"),
    ("[1, 2]", "malformed_json", "JSON object"),
    ('"mark"', "malformed_json", "JSON object"),
    ('{"type": "mark", "name": NaN}', "malformed_json", "NaN"),
    ("[" * 100_000, "malformed_json", "not valid JSON"),
    ("{}", "missing_field", "'type'"),
    ('{"type": 7}', "missing_field", "'type'"),
    ('{"type": "media", "seq": 1}', "unknown_event", "'media'"),
    ('{"type": "session.dance"}', "unknown_event", "session.dance"),
    ('{"type": "mark"}', "missing_field", "'name' is missing"),
    ('{"type": "mark", "name": ""}', "missing_field", "'name'"),
    ('{"type": "mark", "name": 5}', "missing_field", "'name'"),
    ('{"type": "dtmf.send", "digits": ""}', "missing_field", "'digits'"),
    ('{"type": "dtmf.send", "digits": "12x"}', "missing_field", "'digits'"),
    ('{"type": "dtmf.send", "digits": "12\\n"}', "missing_field", "'digits'"),
    ('{"type": "dtmf.send", "digits": "' + "1" * 33 + '"}', "missing_field", "digits"),
    ('{"type": "dtmf.send", "digits": 12}', "missing_field", "'digits'"),
    ('{"type": "dtmf.send", "digits": "1", "duration_ms": 49}', "missing_field", "50"),
    ('{"type": "dtmf.send", "digits": "1", "duration_ms": 2001}', "missing_field", "2000"),
    ('{"type": "dtmf.send", "digits": "1", "duration_ms": 1e2}', "missing_field", "100.0"),
    ('{"type": "dtmf.send", "digits": "1", "duration_ms": true}', "missing_field", "True"),
    ('{"type": "session.transfer"}', "missing_field", "'target'"),
    ('{"type": "session.transfer", "target": "5551234"}', "missing_field", "E.164"),
    ('{"type": "session.transfer", "target": "+0123"}', "missing_field", "E.164"),
    ('{"type": "session.transfer", "target": "+1234567890123456"}', "missing_field", "E.164"),
    ('{"type": "session.transfer", "target": "sip:"}', "missing_field", "sip"),
    ('{"type": "session.transfer", "target": "tel:+1555"}', "missing_field", "sip"),
    ('{"type": "session.hangup", "reason": 5}', "missing_field", "'reason'"),
    ('{"type": "transcript", "role": "agent", "text": "x"}', "missing_field", "'role'"),
    ('{"type": "transcript", "role": "bot"}', "missing_field", "'text'"),
    (
        _wire({"type": "transcript", "role": "bot", "text": "x", "final": "yes"}),
        "missing_field",
        "'final'",
    ),
    ('{"type": "response.audio.delta"}', "missing_field", "'audio'"),
    ('{"type": "response.audio.delta", "audio": "@@@@"}', "bad_audio", "base64"),
    ('{"type": "response.audio.delta", "audio": "AAA"}', "bad_audio", "base64"),
    ('{"type": "response.audio.delta", "audio": "AAé="}', "bad_audio", "base64"),
    (TOO_LARGE_TEXT, "message_too_large", str(MAX_MESSAGE_BYTES)),
    (TOO_LARGE_UTF8, "message_too_large", str(MAX_MESSAGE_BYTES)),
    (b"\x00" * 10, "unsupported", "binary frame"),
]

# The bridge's messages to a bot that has had no start: before it, or a start it cannot use.
UNSTARTED_BOT_ERRORS: list[tuple[Message, str, str]] = [
    (_media_with(), "not_started", "media before start"),
    ('{"type": "stop"}', "not_started", "stop before start"),
    (_start_with(protocol="voxgate.v2"), "unsupported", "'voxgate.v2'"),
    (_start_with(protocol=...), "missing_field", "'protocol' is missing"),
    (_start_with(call_id=...), "missing_field", "'call_id' is missing"),
    (_start_with(call_id=""), "missing_field", "'call_id'"),
    (_start_with(stream_id=3), "missing_field", "'stream_id'"),
    (_start_with(direction="sideways"), "missing_field", "'inbound'"),
    (_start_with(carrier="twilio"), "missing_field", "'carrier' must be an object"),
    (_start_with(carrier={"name": "x"}), "missing_field", "start.carrier: field 'call_id'"),
    (_start_with(custom_parameters={"a": 1}), "missing_field", "object of strings"),
    (_start_with(custom_parameters=...), "missing_field", "custom_parameters"),
    (_start_with(reconnected="no"), "missing_field", "true or false"),
    (_start_with(reconnected=...), "missing_field", "'reconnected'"),
    (_start_with(audio_transport="carrier-pigeon"), "missing_field", "'audio_transport'"),
    (_start_with(media_format=...), "missing_field", "'media_format'"),
    (_start_in("opus", 8000, 1), "missing_field", "start.media_format: field 'encoding'"),
    (_start_in("pcmu", 11025, 1), "unsupported", "11025"),
    (_start_in("pcmu", 8000, 2), "unsupported", "2 channels"),
]

# The bridge's messages to a started bot.
STARTED_BOT_ERRORS: list[tuple[Message, str, str]] = [
    (_wire(_start_wire()), "unsupported", "already started"),
    (_media_with(seq=0), "missing_field", "'seq'"),
    (_media_with(seq="1"), "missing_field", "'seq'"),
    (_media_with(timestamp_ms=-1), "missing_field", "'timestamp_ms'"),
    (_media_with(audio=...), "missing_field", "'audio'"),
    (_media_with(audio="!"), "bad_audio", "base64"),
    ('{"type": "dtmf", "digit": "E"}', "missing_field", "'digit'"),
    ('{"type": "dtmf", "digit": "12"}', "missing_field", "'digit'"),
    ('{"type": "dtmf", "digit": "1", "duration_ms": -5}', "missing_field", "'duration_ms'"),
    ('{"type": "dtmf", "digit": "1", "method": ""}', "missing_field", "'method'"),
    ('{"type": "hold"}', "missing_field", "'on_hold'"),
    ('{"type": "hold", "on_hold": 1}', "missing_field", "'on_hold'"),
    ('{"type": "stop", "reason": ""}', "missing_field", "'reason'"),
    ('{"type": "error", "code": "bad_audio"}', "missing_field", "'message'"),
    ('{"type": "error", "code": "", "message": "x"}', "missing_field", "'code'"),
    ('{"type": "response.audio.delta", "audio": ""}', "unknown_event", "bridge -> bot"),
    ('{"type": "start"', "malformed_json", "not valid JSON"),
]


def _read_by(reader: str, read: Callable[[Message], object], rows: list[Any]) -> list[Any]:
    """``(read, message, code, words)`` for each row, id ``<reader>-<row index>``."""
    return [pytest.param(read, *row, id=f"{reader}-{index}") for index, row in enumerate(rows)]


BAD_MESSAGES = [
    *_read_by("bridge", _bridge_reads, BOT_MESSAGE_ERRORS),
    *_read_by(
        "bridge-pcm16",
        lambda message: _bridge_side(PCM16_16K).parse_downstream(message),
        [(ODD_PCM16, "bad_audio", "3 bytes of pcm16/16000")],
    ),
    *_read_by(
        "bridge-l16",
        lambda message: _bridge_side(L16_8K).parse_downstream(message),
        [(ODD_PCM16, "bad_audio", "2-byte samples")],
    ),
    *_read_by(
        "unstarted-bot", lambda message: V1Dialect().parse_upstream(message), UNSTARTED_BOT_ERRORS
    ),
    *_read_by(
        "unstarted-binary-bot",
        lambda message: V1Dialect(binary_audio=True).parse_upstream(message),
        [(SILENCE, "not_started", "binary media frame before start")],
    ),
    *_read_by(
        "stopped-bot",
        lambda message: _stopped_bot().parse_upstream(message),
        [
            ('{"type": "mark", "name": "m"}', "not_started", "after stop"),
            ('{"type": "stop"}', "not_started", "after stop"),
        ],
    ),
    *_read_by("started-bot", _bot_reads, STARTED_BOT_ERRORS),
]


@pytest.mark.parametrize(("read", "message", "code", "words"), BAD_MESSAGES)
def test_bad_message_raises_its_code(
    read: Callable[[Message], object], message: Message, code: str, words: str
) -> None:
    with pytest.raises(ProtocolError) as caught:
        read(message)
    assert caught.value.code == code
    assert words in caught.value.message


def test_message_size_limit_is_inclusive() -> None:
    bridge = _bridge_side(binary=True)
    assert bridge.parse_downstream(b"\xff" * MAX_MESSAGE_BYTES) == AudioSent(
        b"\xff" * MAX_MESSAGE_BYTES
    )
    with pytest.raises(ProtocolError) as caught:
        bridge.parse_downstream(b"\xff" * (MAX_MESSAGE_BYTES + 1))
    error = caught.value
    assert (error.code, error.fatal, error.close_code) == (
        "message_too_large",
        True,
        CLOSE_MESSAGE_TOO_BIG,
    )


def test_a_message_that_is_neither_text_nor_bytes_is_refused() -> None:
    with pytest.raises(ProtocolError, match="not int") as caught:
        V1Dialect().parse_downstream(42)  # type: ignore[arg-type]
    assert caught.value.code == "malformed_json"


def test_every_parser_error_code_is_exercised_and_documented() -> None:
    raised = {case.values[2] for case in BAD_MESSAGES}
    dialect_codes = {
        line.split("``")[1]
        for line in (dialect_module.__doc__ or "").splitlines()
        if line.startswith("``")
    }
    assert len(dialect_codes) == 8
    assert raised == dialect_codes - {"wrong_stream"}  # v1: one stream per socket
    assert set(ERROR_CODES) == dialect_codes | {
        "transfer_unavailable",
        "dtmf_unavailable",
        "queue_full",
    }


def test_a_refused_message_leaves_the_dialect_usable() -> None:
    bot = _bot_side()
    with pytest.raises(ProtocolError):
        bot.parse_upstream('{"type": "dtmf", "digit": "X"}')
    assert bot.parse_upstream('{"type": "dtmf", "digit": "1"}') == DtmfReceived("1")


# --- counters and audio round trips ---------------------------------------------------

COUNTER_VECTORS = [
    pytest.param(PCMU_8K, [160, 160, 160], [0, 20, 40], id="pcmu-20ms"),
    pytest.param(PCMU_8K, [100, 100, 100], [0, 12, 25], id="pcmu-odd-chunks-round-down"),
    pytest.param(PCMU_8K, [7, 7, 7, 7], [0, 0, 1, 2], id="pcmu-sub-ms-chunks-round-down"),
    pytest.param(PCM16_16K, [640, 640, 320, 640], [0, 20, 40, 50], id="pcm16-16k"),
    pytest.param(PCM16_24K, [960, 960], [0, 20], id="pcm16-24k"),
    pytest.param(L16_8K, [320, 2], [0, 20], id="l16-8k"),
]


@pytest.mark.parametrize(("media_format", "sizes", "timestamps"), COUNTER_VECTORS)
def test_seq_and_computed_timestamps(
    media_format: AudioFormat, sizes: list[int], timestamps: list[int]
) -> None:
    bridge = _bridge_side(media_format)
    sent = [json.loads(str(bridge.format_upstream(MediaReceived(b"\0" * n)))) for n in sizes]
    assert [message["seq"] for message in sent] == list(range(1, len(sizes) + 1))
    assert [message["timestamp_ms"] for message in sent] == timestamps


def test_counters_restart_with_each_start() -> None:
    bridge = _bridge_side()
    for _ in range(3):
        bridge.format_upstream(MediaReceived(b"\0" * 160))
    bridge.format_upstream(_start_event(reconnected=True))
    first = json.loads(str(bridge.format_upstream(MediaReceived(b"\0" * 160))))
    assert (first["seq"], first["timestamp_ms"]) == (1, 0)


def test_carrier_timestamps_pass_through_and_count_continues() -> None:
    bridge = _bridge_side()
    stamps = [
        json.loads(str(bridge.format_upstream(MediaReceived(b"\0" * 160, timestamp_ms=t))))
        for t in (500, None, 560)
    ]
    assert [(m["seq"], m["timestamp_ms"]) for m in stamps] == [(1, 500), (2, 20), (3, 560)]


def _whole_samples(media_format: AudioFormat) -> st.SearchStrategy[bytes]:
    width = media_format.bytes_per_sample
    return st.binary(max_size=3000).map(lambda data: data[: len(data) // width * width])


FORMATS = st.sampled_from([PCMU_8K, PCM16_16K, L16_8K])


@settings(derandomize=True, deadline=None, max_examples=100)  # deterministic
@given(data=st.data(), media_format=FORMATS, binary=st.booleans())
def test_caller_audio_round_trips(
    data: st.DataObject, media_format: AudioFormat, binary: bool
) -> None:
    chunks = data.draw(st.lists(_whole_samples(media_format), min_size=1, max_size=5))
    bridge = _bridge_side(media_format, binary=binary)
    bot = _bot_side(media_format, binary=binary)
    received = []
    for chunk in chunks:
        message = bridge.format_upstream(MediaReceived(chunk))
        assert message is not None
        assert isinstance(message, bytes) is binary
        received.append(bot.parse_upstream(message))
    assert [event.payload for event in received if isinstance(event, MediaReceived)] == chunks
    expected = _bridge_side(media_format)
    stamps = [json.loads(str(expected.format_upstream(MediaReceived(c)))) for c in chunks]
    assert [(e.sequence, e.timestamp_ms) for e in received if isinstance(e, MediaReceived)] == [
        (m["seq"], m["timestamp_ms"]) for m in stamps
    ]


@settings(derandomize=True, deadline=None, max_examples=100)  # deterministic
@given(data=st.data(), media_format=FORMATS, binary=st.booleans())
def test_bot_audio_round_trips(
    data: st.DataObject, media_format: AudioFormat, binary: bool
) -> None:
    chunk = data.draw(_whole_samples(media_format))
    message = _bot_side(media_format, binary=binary).format_downstream(AudioSent(chunk))
    assert isinstance(message, bytes) is binary
    assert _bridge_side(media_format, binary=binary).parse_downstream(message) == AudioSent(chunk)


@settings(derandomize=True, deadline=None, max_examples=100)  # deterministic
@given(text=st.text(max_size=200), name=st.text(min_size=1, max_size=50))
def test_text_fields_round_trip(text: str, name: str) -> None:
    bot, bridge = _bot_side(), _bridge_side()
    for event in (TranscriptReceived("caller", text), MarkRequested(name), HangupRequested(text)):
        assert bridge.parse_downstream(bot.format_downstream(event)) == event
    assert bot.parse_upstream(str(bridge.format_upstream(MarkPlayed(name)))) == MarkPlayed(name)
