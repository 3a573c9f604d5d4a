from __future__ import annotations

import pytest

from voxgate.bridge.rtp.telephone_event import (
    EVENT_DIGITS,
    EventReceiver,
    ScheduledPacket,
    TelephoneEvent,
    event_packets,
    parse_telephone_event,
    serialize_telephone_event,
)
from voxgate.errors import RtpParseError, UnsupportedFormatError

# Both directions: parse(wire) == event and serialize(event) == wire.
VECTORS = [
    pytest.param(
        "01"  # event 1
        "0a"  # E=0 R=0 volume 10
        "00a0",  # duration 160 (20 ms at 8 kHz)
        TelephoneEvent(1, end=False, volume=10, duration=160),
        id="digit-1-start",
    ),
    pytest.param(
        "0b 8a 0320",  # event 11 (#), E=1, volume 10, duration 800
        TelephoneEvent(11, end=True, volume=10, duration=800),
        id="hash-end",
    ),
    pytest.param("10 00 0000", TelephoneEvent(16, False, 0, 0), id="flash-zeros"),
    pytest.param("ff bf ffff", TelephoneEvent(255, True, 63, 65535), id="all-ones-but-r"),
]


@pytest.mark.parametrize(("wire", "event"), VECTORS)
def test_parse(wire: str, event: TelephoneEvent) -> None:
    assert parse_telephone_event(bytes.fromhex(wire)) == event


@pytest.mark.parametrize(("wire", "event"), VECTORS)
def test_serialize(wire: str, event: TelephoneEvent) -> None:
    assert serialize_telephone_event(event) == bytes.fromhex(wire)


PARSE_ONLY = [
    pytest.param("05 4a 0140", TelephoneEvent(5, False, 10, 320), id="reserved-bit-ignored"),
    pytest.param(
        "05 8a 0140 05 8a 00a0",  # a second (redundant) event follows: the first counts
        TelephoneEvent(5, True, 10, 320),
        id="first-of-two",
    ),
]


@pytest.mark.parametrize(("wire", "event"), PARSE_ONLY)
def test_parse_only(wire: str, event: TelephoneEvent) -> None:
    assert parse_telephone_event(bytes.fromhex(wire)) == event


@pytest.mark.parametrize("wire", ["", "01", "010a00"], ids=["empty", "1-byte", "3-bytes"])
def test_short_payloads_raise_rtp_parse_error(wire: str) -> None:
    with pytest.raises(RtpParseError):
        parse_telephone_event(bytes.fromhex(wire))


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(TelephoneEvent(256, False, 0, 0), id="event-256"),
        pytest.param(TelephoneEvent(0, False, 64, 0), id="volume-64"),
        pytest.param(TelephoneEvent(0, False, 0, 65536), id="duration-65536"),
        pytest.param(TelephoneEvent(0, False, -1, 0), id="volume-negative"),
    ],
)
def test_serializing_out_of_range_fields_raises_value_error(event: TelephoneEvent) -> None:
    with pytest.raises(ValueError, match="out of range"):
        serialize_telephone_event(event)


def _one_keypress(receiver: EventReceiver, ssrc: int, timestamp: int, event: int) -> list[str]:
    """The packets of one 100 ms keypress (with three end packets) fed to ``receiver``."""
    digits = []
    for duration in (160, 320, 480, 640):
        digits.append(receiver.feed(ssrc, timestamp, TelephoneEvent(event, False, 10, duration)))
    for _ in range(3):
        digits.append(receiver.feed(ssrc, timestamp, TelephoneEvent(event, True, 10, 800)))
    return [digit for digit in digits if digit is not None]


def test_one_keypress_gives_one_digit() -> None:
    receiver = EventReceiver()
    assert _one_keypress(receiver, 1, 8000, 5) == ["5"]
    assert receiver.last_end_duration == 800


def test_a_keypress_whose_first_packets_were_lost_still_counts_once() -> None:
    receiver = EventReceiver()
    end = TelephoneEvent(9, True, 10, 800)
    assert [receiver.feed(1, 8000, end) for _ in range(3)] == ["9", None, None]


def test_the_same_digit_pressed_again_has_a_new_timestamp() -> None:
    receiver = EventReceiver()
    assert _one_keypress(receiver, 1, 8000, 1) == ["1"]
    assert _one_keypress(receiver, 1, 9600, 1) == ["1"]


def test_another_ssrc_with_the_same_timestamp_is_another_event() -> None:
    receiver = EventReceiver()
    assert _one_keypress(receiver, 1, 8000, 10) == ["*"]
    assert _one_keypress(receiver, 2, 8000, 11) == ["#"]


@pytest.mark.parametrize(("event", "digit"), list(enumerate(EVENT_DIGITS)))
def test_every_digit_event(event: int, digit: str) -> None:
    assert EventReceiver().feed(1, 0, TelephoneEvent(event, False, 10, 160)) == digit


@pytest.mark.parametrize("event", [16, 17, 255], ids=["flash", "17", "255"])
def test_non_digit_events_give_nothing(event: int) -> None:
    assert EventReceiver().feed(1, 0, TelephoneEvent(event, False, 10, 160)) is None


def test_the_receiver_remembers_the_last_32_events() -> None:
    receiver = EventReceiver()
    start = TelephoneEvent(0, False, 10, 160)
    assert receiver.feed(1, 0, start) == "0"
    for timestamp in range(1, 32):
        receiver.feed(1, timestamp, start)
    assert receiver.feed(1, 0, start) is None  # 32 remembered, the first among them
    receiver.feed(1, 32, start)  # the 33rd pushes the first out
    assert receiver.feed(1, 0, start) == "0"


def _packet(at: float, marker: bool, end: bool, duration: int, event: int = 5) -> ScheduledPacket:
    payload = serialize_telephone_event(TelephoneEvent(event, end, 10, duration))
    return ScheduledPacket(at, marker, 0, payload)


def test_a_100_ms_keypress() -> None:
    assert event_packets("5", 100) == [
        _packet(0.00, True, False, 160),  # marker on the first packet only
        _packet(0.02, False, False, 320),
        _packet(0.04, False, False, 480),
        _packet(0.06, False, False, 640),
        _packet(0.08, False, True, 800),  # the end packet, then twice more 20 ms apart
        _packet(0.10, False, True, 800),
        _packet(0.12, False, True, 800),
    ]


def test_a_keypress_not_a_multiple_of_the_packet_time_ends_with_its_true_duration() -> None:
    packets = event_packets("5", 50)
    events = [parse_telephone_event(packet.payload) for packet in packets]
    assert [(e.end, e.duration) for e in events] == [
        (False, 160),
        (False, 320),
        (True, 400),
        (True, 400),
        (True, 400),
    ]


def test_a_keypress_shorter_than_one_packet() -> None:
    assert event_packets("#", 10) == [
        _packet(0.00, True, True, 80, event=11),
        _packet(0.02, False, True, 80, event=11),
        _packet(0.04, False, True, 80, event=11),
    ]


def test_16_khz_and_30_ms_packets() -> None:
    packets = event_packets("d", 60, clock_rate=16000, packet_ms=30, volume=0)
    events = [parse_telephone_event(packet.payload) for packet in packets]
    assert [packet.at for packet in packets] == [0.0, 0.03, 0.06, 0.09]
    assert events == [
        TelephoneEvent(15, False, 0, 480),
        TelephoneEvent(15, True, 0, 960),
        TelephoneEvent(15, True, 0, 960),
        TelephoneEvent(15, True, 0, 960),
    ]


@pytest.mark.parametrize(("digit", "event"), [("a", 12), ("B", 13), ("*", 10), ("0", 0)])
def test_digits_are_case_insensitive(digit: str, event: int) -> None:
    assert parse_telephone_event(event_packets(digit, 40)[0].payload).event == event


@pytest.mark.parametrize("digit", ["", "E", "x", "12", " ", "\u00df"])
def test_unsupported_digits(digit: str) -> None:
    with pytest.raises(UnsupportedFormatError):
        event_packets(digit, 100)


@pytest.mark.parametrize(
    ("duration_ms", "packet_ms", "volume"),
    [(0, 20, 10), (100, 0, 10), (8192, 20, 10), (100, 20, 64), (100, 20, -1)],
    ids=["no-duration", "no-packet-time", "over-16-bits", "volume-64", "volume-negative"],
)
def test_unsupported_schedules(duration_ms: int, packet_ms: int, volume: int) -> None:
    with pytest.raises(UnsupportedFormatError):
        event_packets("1", duration_ms, packet_ms=packet_ms, volume=volume)


def test_the_longest_keypress_fits_16_bits() -> None:
    last = parse_telephone_event(event_packets("1", 8191)[-1].payload)
    assert (last.end, last.duration) == (True, 65528)


def test_sent_packets_make_one_digit_at_the_receiver() -> None:
    receiver = EventReceiver()
    digits = [
        receiver.feed(7, 48000, parse_telephone_event(packet.payload))
        for packet in event_packets("7", 120)
    ]
    assert [digit for digit in digits if digit] == ["7"]
    assert receiver.last_end_duration == 960
