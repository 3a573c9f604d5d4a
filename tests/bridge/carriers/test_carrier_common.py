"""What the carrier dialects share, on every wire: vectors both ways, both roles, every
error. Each test runs once per carrier (ids ``twilio-...``, ``telnyx-...``, ``plivo-...``)
over that carrier's tables in carrier_vectors.py; what only one dialect does is in
test_twilio.py, test_telnyx.py and test_plivo.py."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from carrier_vectors import (
    CARRIERS,
    SILENCE,
    TONE,
    AnyDialect,
    CarrierWire,
    Raw,
    Wire,
    raw,
    wire,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from voxgate.bridge.dialect import MAX_MESSAGE_BYTES, Dialect, Message
from voxgate.bridge.events import (
    AudioSent,
    ClearRequested,
    DownstreamEvent,
    DtmfReceived,
    DtmfSendRequested,
    HangupRequested,
    MarkPlayed,
    MarkRequested,
    MediaReceived,
    StreamConnected,
    StreamStopped,
    TranscriptReceived,
    TransferRequested,
    UpstreamEvent,
)
from voxgate.codecs.formats import PCMU_8K, AudioFormat
from voxgate.errors import ProtocolError

EACH_CARRIER = [pytest.param(carrier, id=carrier.name) for carrier in CARRIERS]


def each_row(table: Callable[[CarrierWire], Sequence[Any]], *, named: bool = False) -> list[Any]:
    """One case per row of each carrier's ``table``: ``(carrier, *row)``, id ``<carrier>-<row>``.

    A row that is not a tuple is one value; ``named`` rows start with their name, which
    becomes the id instead of the row's index.
    """
    cases = []
    for carrier in CARRIERS:
        for index, row in enumerate(table(carrier)):
            values = list(row) if isinstance(row, tuple) else [row]
            label = values.pop(0) if named else index
            cases.append(pytest.param(carrier, *values, id=f"{carrier.name}-{label}"))
    return cases


@contextmanager
def raises_fatal(code: str, close_code: int) -> Iterator[None]:
    """Expects the block to raise a fatal ``code`` that closes the socket with ``close_code``."""
    with pytest.raises(ProtocolError) as caught:
        yield
    error = caught.value
    assert (error.code, error.fatal, error.close_code) == (code, True, close_code)


@pytest.mark.parametrize("carrier", EACH_CARRIER)
def test_it_is_a_dialect(carrier: CarrierWire) -> None:
    dialect: Dialect = carrier.dialect()
    assert dialect.name == carrier.name


# --- both directions -------------------------------------------------------------------------


@pytest.mark.parametrize("carrier", EACH_CARRIER)
def test_session_parses_to_its_events(carrier: CarrierWire) -> None:
    dialect = carrier.dialect()
    events = [dialect.parse_upstream(json.dumps(w)) for w, _ in carrier.session]
    assert events == [e for _, e in carrier.session]


@pytest.mark.parametrize("carrier", EACH_CARRIER)
def test_session_formats_to_its_wire(carrier: CarrierWire) -> None:
    dialect = carrier.dialect()
    sent = [wire(dialect.format_upstream(e)) for _, e in carrier.session]
    assert sent == [w for w, _ in carrier.session]


@pytest.mark.parametrize(("carrier", "message", "event"), each_row(lambda c: c.downstream))
def test_downstream_formats_to_wire(
    carrier: CarrierWire, message: Wire, event: DownstreamEvent
) -> None:
    assert wire(carrier.started_app().format_downstream(event)) == message


@pytest.mark.parametrize(("carrier", "message", "event"), each_row(lambda c: c.downstream))
def test_downstream_parses_to_event(
    carrier: CarrierWire, message: Wire, event: DownstreamEvent
) -> None:
    assert carrier.started_telephony().parse_downstream(json.dumps(message)) == event


@pytest.mark.parametrize("carrier", EACH_CARRIER)
def test_start_sets_the_stream_state(carrier: CarrierWire) -> None:
    for dialect in (carrier.started_app(), carrier.started_telephony()):
        ids = (dialect.stream_id, dialect.call_id, dialect.account_id)
        assert ids == (carrier.stream.id, carrier.call_id, carrier.account_id)
        assert dialect.media_format == PCMU_8K


# --- parsing details ---------------------------------------------------------------------------


@pytest.mark.parametrize(("carrier", "message", "event"), each_row(lambda c: c.parsed))
def test_parse_upstream_vectors(carrier: CarrierWire, message: Wire, event: UpstreamEvent) -> None:
    assert carrier.started_app().parse_upstream(json.dumps(message)) == event


def timestamp_cases() -> list[Any]:
    """(carrier, timestamp as sent, what reaches the call) for each carrier's clock."""
    cases = []
    for carrier in CARRIERS:
        most = carrier.dialect.max_timestamp_ms
        rows: list[tuple[str, object, int | None]] = [
            ("zero", "0", 0),
            ("integer", 20, 20),
            ("the-largest", str(most), most),
            ("one-more", most + 1, None),
            ("10**30", 10**30, None),
            ("10**30-text", str(10**30), None),
            ("40-digits", "9" * 40, None),
            ("10000-digits", "9" * 10_000, None),
            ("negative", -20, None),
            ("negative-text", "-20", None),
            ("float", 1e30, None),
            ("fraction", 20.5, None),
            ("infinity", float("inf"), None),
            ("bool", True, None),
            ("word", "soon", None),
            ("object", {"ms": 20}, None),
        ]
        cases += [pytest.param(carrier, sent, got, id=f"{carrier.name}-{label}")
                  for label, sent, got in rows]  # fmt: skip
    return cases


@pytest.mark.parametrize(("carrier", "timestamp", "expected"), timestamp_cases())
def test_unusable_timestamp_reaches_the_call_as_absent_and_the_audio_goes_through(
    carrier: CarrierWire, timestamp: object, expected: int | None
) -> None:
    # "Huge carrier timestamps (10^30) are passed to the bot": the range is checked, and a
    # frame is never dropped for its timestamp (the call derives one when it is absent).
    message = carrier.stream.media(3, 2, 0, TONE)
    message["media"]["timestamp"] = timestamp
    event = carrier.started_app().parse_upstream(json.dumps(message))
    assert event == MediaReceived(TONE, sequence=3, chunk=2, timestamp_ms=expected)


@pytest.mark.parametrize("carrier", EACH_CARRIER)
def test_order_restoration_numbers_are_ints_as_sent(carrier: CarrierWire) -> None:
    # Telnyx: "Media frame order is not guaranteed"
    dialect = carrier.started_app()
    arrivals = [(5, 4, 60), (3, 2, 20), (4, 3, 40)]
    parsed = []
    for sequence, chunk, timestamp in arrivals:
        message = carrier.stream.media(sequence, chunk, timestamp, TONE)
        event = dialect.parse_upstream(json.dumps(message))
        assert isinstance(event, MediaReceived)
        parsed.append((event.sequence, event.chunk, event.timestamp_ms))
    assert parsed == arrivals


@pytest.mark.parametrize("carrier", EACH_CARRIER)
def test_minimal_start_defaults_to_mulaw_8k(carrier: CarrierWire) -> None:
    message, event = carrier.minimal_start
    assert carrier.dialect().parse_upstream(json.dumps(message)) == event
    assert event.media_format == PCMU_8K


@pytest.mark.parametrize("carrier", EACH_CARRIER)
def test_stop_may_come_before_start(carrier: CarrierWire) -> None:
    message = {"event": "stop", carrier.stream.id_key: "another stream"}
    assert carrier.dialect().parse_upstream(json.dumps(message)) == StreamStopped()


# --- telephony role ------------------------------------------------------------------------------


@pytest.mark.parametrize("carrier", EACH_CARRIER)
def test_telephony_role_numbers_what_it_sends_as_the_carrier_does(carrier: CarrierWire) -> None:
    dialect = carrier.dialect()
    stream = carrier.stream
    hello = dialect.format_upstream(StreamConnected())
    assert (hello and wire(hello)) == carrier.connected  # unnumbered, or none at all
    events: list[UpstreamEvent] = [
        carrier.start_event(PCMU_8K),
        MediaReceived(SILENCE),
        MediaReceived(SILENCE),
        MediaReceived(SILENCE),
        DtmfReceived("1"),
        MarkPlayed("x"),
        StreamStopped(),
    ]
    sent = [wire(dialect.format_upstream(event)) for event in events]
    kinds = ["start", "media", "media", "media", "dtmf", stream.played_event, "stop"]
    assert [m["event"] for m in sent] == kinds
    sequence_numbers = [m[stream.sequence_key] for m in sent]
    assert sequence_numbers == [stream.number(n) for n in range(1, 8)]
    assert all(m[stream.id_key] == stream.id for m in sent)
    media = [m["media"] for m in sent[1:4]]
    numbered = [(m["chunk"], m["timestamp"]) for m in media]
    assert numbered == [(stream.number(1), "0"), (stream.number(2), "20"), (stream.number(3), "40")]
    assert base64.b64decode(media[0]["payload"]) == SILENCE
    assert sent[4]["dtmf"] == carrier.dtmf_body("1")
    assert sent[5] == stream.played(6, "x")
    assert sent[6].get("stop") == carrier.stop_body


@pytest.mark.parametrize("carrier", EACH_CARRIER)
def test_telephony_timestamps_follow_bytes_per_track_unless_given(carrier: CarrierWire) -> None:
    dialect = carrier.started_telephony()
    events = [
        MediaReceived(b"\xff" * 80),  # 10 ms
        MediaReceived(b"\xff" * 160, track="outbound"),
        MediaReceived(b"\xff" * 240),
        MediaReceived(b"\xff" * 160, timestamp_ms=999),
        MediaReceived(b"\xff" * 160),
    ]
    media = [wire(dialect.format_upstream(e))["media"] for e in events]
    number = carrier.stream.number
    assert [(m["track"], m["chunk"], m["timestamp"]) for m in media] == [
        ("inbound", number(1), "0"),
        ("outbound", number(1), "0"),
        ("inbound", number(2), "10"),
        ("inbound", number(3), "999"),
        ("inbound", number(4), "60"),  # 10 + 30 + 20 ms sent before it
    ]


@pytest.mark.parametrize("carrier", EACH_CARRIER)
@pytest.mark.parametrize(
    "event",
    [
        DtmfSendRequested("12"),
        TransferRequested("+15550100"),
        HangupRequested(),
        TranscriptReceived("bot", "hi"),
    ],
)
def test_rest_only_or_unknown_downstream_events_have_no_message(
    carrier: CarrierWire, event: DownstreamEvent
) -> None:
    assert carrier.started_app().format_downstream(event) is None
    assert carrier.dialect().format_downstream(event) is None  # even before start


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("carrier", "message", "code"), each_row(lambda c: c.bad_upstream, named=True)
)
def test_bad_upstream_message_is_a_non_fatal_error(
    carrier: CarrierWire, message: Raw, code: str
) -> None:
    dialect = carrier.started_app()
    with pytest.raises(ProtocolError) as caught:
        dialect.parse_upstream(raw(message))
    assert (caught.value.code, caught.value.fatal) == (code, False)
    assert caught.value.message
    assert dialect.stream_id == carrier.stream.id  # the stream goes on


@pytest.mark.parametrize("carrier", EACH_CARRIER)
@pytest.mark.parametrize(
    "message",
    [
        pytest.param("é" * (MAX_MESSAGE_BYTES // 2 + 1), id="2-byte-characters-count-twice"),
        pytest.param(b"\x00" * (MAX_MESSAGE_BYTES + 1), id="binary"),
        pytest.param("{" * (MAX_MESSAGE_BYTES + 1), id="unbalanced-json"),
    ],
)
def test_size_is_checked_before_parsing(carrier: CarrierWire, message: Message) -> None:
    # not JSON at all but too large: the size wins
    with pytest.raises(ProtocolError) as caught:
        carrier.dialect().parse_upstream(message)
    assert caught.value.code == "message_too_large"


@pytest.mark.parametrize("carrier", EACH_CARRIER)
def test_message_at_the_limit_is_parsed(carrier: CarrierWire) -> None:
    padding = "x" * (MAX_MESSAGE_BYTES - len('{"event":"stop","pad":""}'))
    message = f'{{"event":"stop","pad":"{padding}"}}'
    assert len(message.encode()) == MAX_MESSAGE_BYTES
    assert carrier.dialect().parse_upstream(message) == StreamStopped()


@pytest.mark.parametrize(("carrier", "message"), each_row(lambda c: c.bad_starts))
def test_unusable_start_is_a_fatal_policy_violation(carrier: CarrierWire, message: Wire) -> None:
    dialect = carrier.dialect()
    with raises_fatal("missing_field", 1008):
        dialect.parse_upstream(json.dumps(message))
    assert dialect.stream_id is None


@pytest.mark.parametrize(("carrier", "message"), each_row(lambda c: c.unhandled_starts))
def test_start_with_unhandled_format_is_fatal_unsupported(
    carrier: CarrierWire, message: Wire
) -> None:
    with raises_fatal("unsupported", 1003):
        carrier.dialect().parse_upstream(json.dumps(message))


@pytest.mark.parametrize(
    ("carrier", "message", "code"), each_row(lambda c: c.bad_downstream, named=True)
)
def test_bad_bot_message_is_a_non_fatal_error(
    carrier: CarrierWire, message: Raw, code: str
) -> None:
    with pytest.raises(ProtocolError) as caught:
        carrier.started_telephony().parse_downstream(raw(message))
    assert (caught.value.code, caught.value.fatal) == (code, False)


# Each way a stream's message can come or go before the stream's start: parsing what the carrier
# sends, parsing what a bot sends it, formatting either; in each carrier's names.
EMPTY_MEDIA: Wire = {"event": "media", "media": {"payload": ""}}
DTMF: Wire = {"event": "dtmf", "dtmf": {"digit": "1"}}


def _bot_audio(c: CarrierWire) -> str:
    return json.dumps({**EMPTY_MEDIA, "event": c.dialect.audio_event})


def _played(c: CarrierWire) -> str:
    played = c.stream.played(1, "a")
    del played[c.stream.id_key], played[c.stream.sequence_key]
    return json.dumps(played)


BEFORE_START = [
    pytest.param(lambda d, c: d.parse_upstream(json.dumps(EMPTY_MEDIA)), id="media"),
    pytest.param(lambda d, c: d.parse_upstream(json.dumps(DTMF)), id="dtmf"),
    pytest.param(lambda d, c: d.parse_upstream(_played(c)), id="mark"),
    pytest.param(lambda d, c: d.parse_downstream(_bot_audio(c)), id="bot-media"),
    pytest.param(
        lambda d, c: d.parse_downstream(json.dumps({"event": c.dialect.clear_event})),
        id="bot-clear",
    ),
    pytest.param(lambda d, c: d.parse_downstream(json.dumps(c.mark_request("a"))), id="bot-mark"),
    pytest.param(lambda d, c: d.format_downstream(AudioSent(SILENCE)), id="send-audio"),
    pytest.param(lambda d, c: d.format_downstream(ClearRequested()), id="send-clear"),
    pytest.param(lambda d, c: d.format_upstream(MediaReceived(SILENCE)), id="send-media"),
    pytest.param(lambda d, c: d.format_upstream(StreamStopped()), id="send-stop"),
]


@pytest.mark.parametrize("carrier", EACH_CARRIER)
@pytest.mark.parametrize("handle", BEFORE_START)
def test_stream_messages_before_start_are_not_started(
    carrier: CarrierWire, handle: Callable[[AnyDialect, CarrierWire], object]
) -> None:
    with pytest.raises(ProtocolError) as caught:
        handle(carrier.dialect(), carrier)
    assert (caught.value.code, caught.value.fatal) == ("not_started", False)


@pytest.mark.parametrize(("carrier", "fmt"), each_row(lambda c: c.unsendable_formats))
def test_telephony_start_refuses_what_the_carrier_cannot_carry(
    carrier: CarrierWire, fmt: AudioFormat
) -> None:
    with raises_fatal("unsupported", 1003):
        carrier.dialect().format_upstream(carrier.start_event(fmt))


@pytest.mark.parametrize("carrier", EACH_CARRIER)
def test_telephony_second_start_is_refused(carrier: CarrierWire) -> None:
    with pytest.raises(ProtocolError) as caught:
        carrier.started_telephony().format_upstream(carrier.start_event(PCMU_8K))
    assert caught.value.code == "unsupported"


# --- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("carrier", "fmt"), each_row(lambda c: c.media_formats))
@settings(max_examples=200, deadline=None)
@given(payloads=st.lists(st.binary(max_size=4000), min_size=1, max_size=5))
def test_media_round_trips_upstream(
    carrier: CarrierWire, fmt: AudioFormat, payloads: list[bytes]
) -> None:
    telephony, application = carrier.dialect(), carrier.dialect()
    application.parse_upstream(telephony.format_upstream(carrier.start_event(fmt)) or "")
    for payload in payloads:
        whole = payload[: len(payload) - len(payload) % fmt.bytes_per_sample]
        event = application.parse_upstream(telephony.format_upstream(MediaReceived(whole)) or "")
        assert isinstance(event, MediaReceived)
        assert event.payload == whole


@pytest.mark.parametrize("carrier", EACH_CARRIER)
@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=4000), name=st.text(max_size=40))
def test_audio_marks_and_clear_round_trip_downstream(
    carrier: CarrierWire, payload: bytes, name: str
) -> None:
    application, telephony = carrier.started_app(), carrier.started_telephony()
    for event in (AudioSent(payload), MarkRequested(name), ClearRequested()):
        assert telephony.parse_downstream(application.format_downstream(event) or "") == event


@pytest.mark.parametrize(("carrier", "message", "event"), each_row(lambda c: c.parsed))
def test_the_fast_path_reads_media_as_the_slow_path_does(
    carrier: CarrierWire, message: Wire, event: UpstreamEvent
) -> None:
    fast, slow = carrier.started_app(), carrier.started_app()
    text = json.dumps(message)
    assert fast.parse_upstream(text) == slow._dispatch(text, slow._upstream) == event


@pytest.mark.parametrize("carrier", EACH_CARRIER)
@pytest.mark.parametrize(
    ("change", "code"),
    [
        pytest.param(lambda m: m["media"].update(payload="not base64!"), "bad_audio", id="b64"),
        pytest.param(lambda m: m["media"].update(payload=7), "missing_field", id="payload-int"),
        pytest.param(lambda m: m["media"].update(track=5), "missing_field", id="track-int"),
        pytest.param(lambda m: m["media"].update(chunk="x1"), "missing_field", id="chunk-word"),
        pytest.param(lambda m: m["media"].update(chunk="\u0661"), "missing_field", id="arabic"),
        pytest.param(lambda m: m["media"].update(chunk=True), "missing_field", id="chunk-bool"),
        pytest.param(lambda m: m["media"].update(chunk="9" * 16), "missing_field", id="16-digits"),
        pytest.param(lambda m: m.update(media=[1]), "missing_field", id="media-list"),
    ],
)
def test_what_the_fast_path_cannot_read_the_slow_path_refuses_by_name(
    carrier: CarrierWire, change: Callable[[dict[str, Any]], None], code: str
) -> None:
    message = carrier.stream.media(3, 2, 0, TONE)
    change(message)
    with pytest.raises(ProtocolError) as caught:
        carrier.started_app().parse_upstream(json.dumps(message))
    assert caught.value.code == code


@pytest.mark.parametrize("carrier", EACH_CARRIER)
def test_media_for_another_stream_is_refused_on_the_fast_path_too(carrier: CarrierWire) -> None:
    message = carrier.stream.media(3, 2, 0, TONE)
    message[carrier.dialect.stream_key] = "someone-else"
    with pytest.raises(ProtocolError) as caught:
        carrier.started_app().parse_upstream(json.dumps(message))
    assert caught.value.code == "wrong_stream"
