from __future__ import annotations

import numpy as np
import pytest

from voxgate.bridge.events import DtmfReceived, MediaReceived, UpstreamEvent
from voxgate.bridge.rtp.packet import RtpPacket, parse_rtp
from voxgate.bridge.rtp.rtcp import (
    ReceiverReport,
    ReportBlock,
    SenderReport,
    SourceDescription,
    ntp_middle,
    ntp_timestamp,
    parse_rtcp,
    serialize_rtcp,
)
from voxgate.bridge.rtp.stream import (
    COMFORT_NOISE_PT,
    RELATCH_AFTER,
    MediaSetup,
    RtpStream,
    StreamCounters,
)
from voxgate.bridge.rtp.telephone_event import (
    TelephoneEvent,
    parse_telephone_event,
    serialize_telephone_event,
)
from voxgate.codecs.dtmf import dtmf_sequence, dtmf_tone
from voxgate.codecs.formats import AudioFormat, Encoding
from voxgate.codecs.g711 import alaw_encode, ulaw_encode
from voxgate.codecs.pcm import Pcm

PEER = ("192.0.2.10", 40000)  # the address in the peer's SDP
NAT = ("198.51.100.7", 61000)  # where the peer's packets really come from
STRANGER = ("203.0.113.66", 5004)
AUDIO_PT, EVENT_PT = 0, 101
SSRC, EVENT_SSRC, OTHER_SSRC = 0x11223344, 0x55667788, 0x0BADF00D
FRAME = 0.020
SETUP = MediaSetup(Encoding.PCMU, AUDIO_PT, 8000, EVENT_PT, PEER)
LOUD = ulaw_encode((8000 * np.sin(np.arange(160) * 2 * np.pi * 400 / 8000)).astype(np.int16))


def _payload(n: int) -> bytes:
    """A distinct 20 ms mu-law frame per number."""
    return bytes([n % 256]) + LOUD.tobytes()[1:]


def _rtp(
    sequence: int,
    *,
    ssrc: int = SSRC,
    pt: int = AUDIO_PT,
    payload: bytes | None = None,
    timestamp: int | None = None,
) -> bytes:
    stamp = sequence * 160 if timestamp is None else timestamp
    body = _payload(sequence) if payload is None else payload
    return RtpPacket(pt, sequence & 0xFFFF, stamp & 0xFFFFFFFF, ssrc, body).serialize()


def _event(
    sequence: int, event: int, timestamp: int, duration: int, *, end: bool, ssrc: int = EVENT_SSRC
) -> bytes:
    payload = serialize_telephone_event(TelephoneEvent(event, end, 10, duration))
    return RtpPacket(
        EVENT_PT, sequence, timestamp, ssrc, payload, marker=duration == 160 and not end
    ).serialize()


def _keypress(
    event: int, timestamp: int, first_sequence: int, ssrc: int = EVENT_SSRC
) -> list[bytes]:
    """One 100 ms keypress as a sender puts it on the wire: 4 updates, then the end 3 times."""
    updates = [(160 * (k + 1), False) for k in range(4)] + [(800, True)] * 3
    return [
        _event(first_sequence + k, event, timestamp, duration, end=end, ssrc=ssrc)
        for k, (duration, end) in enumerate(updates)
    ]


def _media(*sequences: int) -> list[UpstreamEvent]:
    return [MediaReceived(_payload(n)) for n in sequences]


def _dtmf(events: list[UpstreamEvent]) -> list[DtmfReceived]:
    return [event for event in events if isinstance(event, DtmfReceived)]


# --- audio in ---------------------------------------------------------------------------------


def test_audio_in_order_becomes_media_received_at_once() -> None:
    stream = RtpStream(SETUP, 0.0)
    for n in range(50):
        assert stream.receive(_rtp(65520 + n), NAT, n * FRAME) == _media(65520 + n)
        assert stream.next_due() is None
    assert stream.counters.packets_in == 50
    assert stream.summary()["rtp_lost"] == 0


def test_a_swapped_pair_is_reordered() -> None:
    stream = RtpStream(SETUP, 0.0)
    out = [stream.receive(_rtp(n), NAT, i * FRAME) for i, n in enumerate([1, 3, 2, 4])]
    assert out == [_media(1), [], _media(2, 3), _media(4)]
    assert stream.summary()["rtp_reordered"] == 1
    assert stream.summary()["rtp_concealed"] == 0


def test_a_lost_packet_is_concealed_once_its_wait_runs_out() -> None:
    stream = RtpStream(SETUP, 0.0)
    assert stream.receive(_rtp(1), NAT, 0.00) == _media(1)
    assert stream.receive(_rtp(2), NAT, 0.02) == _media(2)
    assert stream.receive(_rtp(4), NAT, 0.06) == []
    due = stream.next_due()
    assert due is not None
    assert 0.06 < due <= 0.16
    assert stream.tick(due - 0.001) == []
    out = stream.tick(due)
    assert len(out) == 2
    assert out[1] == MediaReceived(_payload(4))
    concealed = out[0]
    assert isinstance(concealed, MediaReceived)
    assert len(concealed.payload) == 160
    assert concealed.payload not in (_payload(2), _payload(3))
    assert stream.next_due() is None
    assert stream.receive(_rtp(3), NAT, due + 0.01) == []  # too late: its gap was given up
    assert stream.summary()["rtp_concealed"] == 1


def test_a_duplicate_is_dropped_and_counted() -> None:
    stream = RtpStream(SETUP, 0.0)
    assert stream.receive(_rtp(7), NAT, 0.0) == _media(7)
    assert stream.receive(_rtp(7), NAT, 0.001) == []
    assert stream.summary()["rtp_duplicates"] == 1


def test_an_ssrc_change_is_tolerated() -> None:
    stream = RtpStream(SETUP, 0.0)
    for n in range(5):
        assert stream.receive(_rtp(100 + n), NAT, n * FRAME) == _media(100 + n)
    for n in range(5):  # the peer restarted its stream: new SSRC, new numbering
        packet = _rtp(30000 + n, ssrc=OTHER_SSRC, timestamp=777 + 160 * n)
        assert stream.receive(packet, NAT, (5 + n) * FRAME) == _media(30000 + n)
    assert stream.counters.ssrc_changes == 1
    assert stream.summary()["rtp_ssrc_changes"] == 1
    assert stream.summary()["rtp_lost"] == 0
    assert stream.counters.foreign == 0


# --- telephone-events in ----------------------------------------------------------------------


@pytest.mark.parametrize("ssrc", [SSRC, EVENT_SSRC], ids=["audio-ssrc", "own-ssrc"])
def test_one_dtmf_received_per_event_with_its_end_sent_three_times(ssrc: int) -> None:
    stream = RtpStream(SETUP, 0.0)
    events: list[UpstreamEvent] = []
    for k, packet in enumerate(_keypress(5, 8000, 500, ssrc)):
        events += stream.receive(_rtp(k), NAT, k * FRAME)
        events += stream.receive(packet, NAT, k * FRAME + 0.001)
    assert _dtmf(events) == [DtmfReceived("5", duration_ms=None, method="rfc4733")]
    assert [e for e in events if isinstance(e, MediaReceived)] == _media(*range(7))
    assert stream.counters.dtmf_in == 1
    assert stream.counters.ssrc_changes == 0


def test_event_packets_numbered_with_the_audio_hold_no_audio_back() -> None:
    """RFC 3550 5.1: one numbering per source; the key's packets take numbers between the
    audio's, and the audio after them must go at once, none of it made up."""
    stream = RtpStream(SETUP, 0.0)
    events: list[UpstreamEvent] = []
    sequence, keypress = 0, _keypress(5, 8000, 0, SSRC)
    for k in range(10):
        now = k * FRAME
        if 2 <= k < 9:  # a key pressed while audio goes on: event, then audio, each tick
            packet = parse_rtp(keypress[k - 2])
            event = RtpPacket(
                EVENT_PT, sequence, packet.timestamp, SSRC, packet.payload, marker=packet.marker
            )
            events += stream.receive(event.serialize(), NAT, now)
            sequence += 1
        got = stream.receive(_rtp(sequence, timestamp=k * 160), NAT, now + 0.001)
        assert [e for e in got if isinstance(e, MediaReceived)] == [
            MediaReceived(_payload(sequence))
        ]
        events += got
        sequence += 1
    assert _dtmf(events) == [DtmfReceived("5", duration_ms=None, method="rfc4733")]
    assert stream.summary()["rtp_concealed"] == 0


def test_an_event_whose_first_packets_were_lost_reports_its_duration() -> None:
    stream = RtpStream(SETUP, 0.0)
    events: list[UpstreamEvent] = []
    for k, packet in enumerate(_keypress(11, 4000, 9)[4:]):
        events += stream.receive(packet, NAT, k * FRAME)
    assert events == [DtmfReceived("#", duration_ms=100, method="rfc4733")]


def test_two_presses_of_one_key_are_two_events() -> None:
    stream = RtpStream(SETUP, 0.0)
    packets = _keypress(1, 8000, 10) + _keypress(1, 8000 + 1600, 17)
    events = [e for i, p in enumerate(packets) for e in stream.receive(p, NAT, i * FRAME)]
    assert [e.digit for e in _dtmf(events)] == ["1", "1"]
    assert stream.counters.dtmf_in == 2


def test_events_that_are_not_digits_give_nothing() -> None:
    stream = RtpStream(SETUP, 0.0)
    assert stream.receive(_event(1, 16, 8000, 160, end=False), NAT, 0.0) == []  # flash
    assert stream.counters.dtmf_in == 0


def test_a_truncated_event_payload_is_bad() -> None:
    stream = RtpStream(SETUP, 0.0)
    assert stream.receive(_rtp(1, pt=EVENT_PT, payload=b"\x05\x0a\x00"), NAT, 0.0) == []
    assert stream.counters.bad == 1


def test_without_a_negotiated_event_type_events_are_another_type() -> None:
    stream = RtpStream(MediaSetup(Encoding.PCMU, AUDIO_PT, 8000, None, PEER), 0.0)
    assert [stream.receive(p, NAT, 0.0) for p in _keypress(5, 8000, 1)] == [[]] * 7
    assert stream.counters.other_type == 7
    assert stream.counters.dtmf_in == 0


# --- other payload types, garbage ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("pt", "counter"),
    [
        pytest.param(COMFORT_NOISE_PT, "comfort_noise", id="comfort-noise-13"),
        pytest.param(8, "other_type", id="pcma-not-negotiated"),
        pytest.param(96, "other_type", id="dynamic-96"),
        pytest.param(127, "other_type", id="pt-127"),
    ],
)
def test_comfort_noise_and_unknown_types_are_counted_and_dropped(pt: int, counter: str) -> None:
    stream = RtpStream(SETUP, 0.0)
    for n in range(3):
        assert stream.receive(_rtp(n, pt=pt, payload=b"\x40"), STRANGER, n * FRAME) == []
    expected = StreamCounters(packets_in=3, **{counter: 3})
    assert stream.counters == expected
    assert stream.remote == PEER  # only audio latches


HEADER = _rtp(1)[:12]
GARBAGE = [
    pytest.param(b"", id="empty"),
    pytest.param(b"\x80", id="one-byte"),
    pytest.param(HEADER[:11], id="eleven-bytes"),
    pytest.param(b"\x00" + HEADER[1:] + b"\xff" * 160, id="version-0"),
    pytest.param(b"\x40" + HEADER[1:] + b"\xff" * 160, id="version-1"),
    pytest.param(b"\xc0" + HEADER[1:] + b"\xff" * 160, id="version-3"),
    pytest.param(b"\x8f" + HEADER[1:] + bytes(8), id="csrcs-past-the-end"),
    pytest.param(b"\x90" + HEADER[1:] + b"\xbe", id="extension-header-cut"),
    pytest.param(b"\x90" + HEADER[1:] + b"\xbe\xde\x00\x10" + bytes(8), id="extension-too-long"),
    pytest.param(b"\xa0" + HEADER[1:] + b"\xff" * 10 + b"\x00", id="padding-count-0"),
    pytest.param(b"\xa0" + HEADER[1:] + b"\xff" * 3 + b"\x40", id="padding-into-header"),
    pytest.param(b"\x80\xc8", id="rtcp-sr-cut"),
    pytest.param(b"\x80\xc9\xff\xff" + bytes(8), id="rtcp-length-past-the-end"),
    pytest.param(b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12), id="stun-binding-request"),
    pytest.param(b"OPTIONS sip:x SIP/2.0\r\n\r\n", id="sip-text"),
]


@pytest.mark.parametrize("datagram", GARBAGE)
def test_garbage_is_counted_as_bad_and_changes_nothing_else(datagram: bytes) -> None:
    stream = RtpStream(SETUP, 0.0)
    assert stream.receive(datagram, STRANGER, 5.0) == []
    assert stream.counters == StreamCounters(bad=1)
    assert stream.remote == PEER
    assert stream.idle_for(5.0) == 5.0


def test_random_and_mangled_datagrams_never_raise() -> None:
    rng = np.random.default_rng(4733)
    stream = RtpStream(SETUP, 0.0)
    valid = [_rtp(3), _event(4, 1, 80, 160, end=False), serialize_rtcp([ReceiverReport(SSRC)])]
    datagrams = [rng.bytes(int(rng.integers(0, 200))) for _ in range(3000)]
    datagrams += [packet[:cut] for packet in valid for cut in range(len(packet))]
    for packet in valid:
        for _ in range(500):
            mangled = bytearray(packet)
            mangled[int(rng.integers(0, len(packet)))] = int(rng.integers(0, 256))
            datagrams.append(bytes(mangled))
    for i, datagram in enumerate(datagrams):
        for event in stream.receive(datagram, STRANGER, i * 0.001):
            assert isinstance(event, MediaReceived | DtmfReceived)
        stream.tick(i * 0.001)
    counters = stream.counters
    assert counters.packets_in + counters.rtcp_in + counters.bad >= len(datagrams)
    assert counters.bad > 3000


def test_rtcp_reports_are_kept_the_last_four() -> None:
    stream = RtpStream(SETUP, 0.0)
    reports = [
        ReceiverReport(SSRC, (ReportBlock(stream.ssrc, 0, n, 1000 + n, 3, 0, 0),)) for n in range(6)
    ]
    for report in reports:
        assert stream.receive(serialize_rtcp([report]), NAT, 0.0) == []
    assert stream.counters.rtcp_in == 6
    assert stream.counters.packets_in == 0
    assert stream.peer_reports == reports[2:]


# --- symmetric RTP, idle ---------------------------------------------------------------------


def test_the_first_source_of_valid_audio_is_latched() -> None:
    stream = RtpStream(SETUP, 0.0)
    assert stream.remote == PEER
    stream.receive(b"garbage", STRANGER, 0.0)
    stream.receive(_rtp(1, pt=COMFORT_NOISE_PT, payload=b"\x40"), STRANGER, 0.0)
    stream.receive(_event(1, 1, 80, 160, end=False), STRANGER, 0.0)
    assert stream.remote == PEER
    stream.receive(_rtp(1), NAT, 0.0)
    assert stream.remote == NAT
    assert stream.counters.foreign == 0


@pytest.mark.parametrize(
    ("silence", "taken_over"),
    [
        pytest.param(FRAME, False, id="20ms"),
        pytest.param(RELATCH_AFTER - 0.001, False, id="just-under-relatch-after"),
        pytest.param(RELATCH_AFTER, True, id="relatch-after"),
        pytest.param(RELATCH_AFTER + 30, True, id="long-silence"),
    ],
)
def test_a_second_source_takes_over_only_after_relatch_after(
    silence: float, taken_over: bool
) -> None:
    stream = RtpStream(SETUP, 0.0)
    for n in range(5):
        stream.receive(_rtp(n), NAT, n * FRAME)
    last = 4 * FRAME
    packet = _rtp(900, ssrc=OTHER_SSRC)
    heard = stream.receive(packet, STRANGER, last + silence)
    assert heard == (_media(900) if taken_over else [])  # a stranger is never played
    assert stream.remote == (STRANGER if taken_over else NAT)
    assert stream.counters.foreign == (0 if taken_over else 1)
    # The old source is now the stranger, or still the latched one.
    stream.receive(_rtp(5), NAT, last + silence + FRAME)
    assert stream.remote == (STRANGER if taken_over else NAT)
    assert stream.counters.foreign == 1


def test_a_stranger_cannot_steal_a_stream_that_keeps_talking() -> None:
    stream = RtpStream(SETUP, 0.0)
    heard: list[UpstreamEvent] = []
    for n in range(200):  # 4 s of audio, a stranger's packet every 100 ms
        heard += stream.receive(_rtp(n), NAT, n * FRAME)
        if n % 5 == 0:
            injected = _rtp(n, ssrc=OTHER_SSRC, payload=b"\x00" * 160)
            heard += stream.receive(injected, STRANGER, n * FRAME + 0.01)
    assert stream.remote == NAT
    assert stream.counters.foreign == 40
    assert heard == _media(*range(200))  # the caller's audio only, every frame, in order
    assert stream.counters.ssrc_changes == 0


def test_a_strangers_audio_does_not_keep_a_silent_call_alive() -> None:
    stream = RtpStream(SETUP, 0.0)
    stream.receive(_rtp(1), NAT, 0.0)
    for n in range(1, 40):  # 0.8 s of a stranger, within RELATCH_AFTER of each other
        stream.receive(_rtp(n, ssrc=OTHER_SSRC), STRANGER, n * FRAME)
    assert stream.idle_for(0.8) == pytest.approx(0.8)


def test_moved_latches_afresh() -> None:
    stream = RtpStream(SETUP, 0.0)
    stream.receive(_rtp(1), NAT, 0.0)
    moved = MediaSetup(Encoding.PCMU, AUDIO_PT, 8000, EVENT_PT, ("192.0.2.99", 50000))
    stream.moved(moved, 0.1)
    assert stream.remote == ("192.0.2.99", 50000)
    assert stream.idle_for(0.1) == 0.0
    assert stream.receive(_rtp(2), STRANGER, 0.12) == _media(2)
    assert stream.remote == STRANGER
    assert stream.counters.foreign == 0


def test_idle_for_counts_from_the_last_usable_packet() -> None:
    stream = RtpStream(SETUP, 10.0)
    assert stream.idle_for(12.5) == pytest.approx(2.5)
    stream.receive(_rtp(1), NAT, 13.0)
    assert stream.idle_for(14.0) == pytest.approx(1.0)
    stream.receive(_rtp(2, pt=96), NAT, 13.5)  # another type: not usable
    stream.receive(b"\x00garbage", NAT, 13.7)
    assert stream.idle_for(14.0) == pytest.approx(1.0)
    stream.receive(_rtp(3, pt=COMFORT_NOISE_PT, payload=b"\x40"), NAT, 14.0)
    assert stream.idle_for(14.5) == pytest.approx(0.5)
    stream.receive(_event(1, 1, 80, 160, end=False), NAT, 15.0)
    assert stream.idle_for(15.25) == pytest.approx(0.25)


# --- audio out -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "rate", "frame_bytes", "step"),
    [
        pytest.param(Encoding.PCMU, 8000, 160, 160, id="pcmu"),
        pytest.param(Encoding.PCMA, 8000, 160, 160, id="pcma"),
        pytest.param(Encoding.L16, 16000, 640, 320, id="l16-16k"),
    ],
)
def test_audio_packets_are_continuous(
    encoding: Encoding, rate: int, frame_bytes: int, step: int
) -> None:
    setup = MediaSetup(encoding, 96, rate, EVENT_PT, PEER)
    assert setup.format == AudioFormat(encoding, rate)
    stream = RtpStream(setup, 0.0)
    frames = [bytes([n % 256]) * frame_bytes for n in range(3000)]
    packets = []
    for n, frame in enumerate(frames):
        wire = stream.audio(frame, n * FRAME)
        assert wire is not None
        packets.append(parse_rtp(wire))
    first = packets[0]
    for n, packet in enumerate(packets):
        assert packet.sequence == (first.sequence + n) & 0xFFFF
        assert packet.timestamp == (first.timestamp + step * n) & 0xFFFFFFFF
        assert packet.marker == (n == 0)
        assert (packet.payload_type, packet.ssrc, packet.payload) == (96, stream.ssrc, frames[n])
    assert stream.counters.packets_out == 3000


def test_sequence_and_timestamp_wrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("secrets.randbelow", lambda _: 0xFFFE)
    monkeypatch.setattr("secrets.randbits", lambda _: 0xFFFFFF00)
    stream = RtpStream(SETUP, 0.0)
    packets = [parse_rtp(stream.audio(_payload(n), n * FRAME) or b"") for n in range(4)]
    assert [p.sequence for p in packets] == [0xFFFE, 0xFFFF, 0, 1]
    assert [p.timestamp for p in packets] == [0xFFFFFF00, 0xFFFFFFA0, 0x40, 0xE0]


def test_two_streams_pick_their_own_ssrc() -> None:
    assert RtpStream(SETUP, 0.0).ssrc != RtpStream(SETUP, 0.0).ssrc


# --- DTMF out --------------------------------------------------------------------------------


def test_dtmf_packets_go_out_on_time_in_the_audios_numbering() -> None:
    stream = RtpStream(SETUP, 0.0)
    audio = [parse_rtp(stream.audio(_payload(n), n * FRAME) or b"") for n in range(3)]
    start = 0.05
    assert stream.dtmf("7", 100, start) == 1
    assert stream.dtmf_due() == start
    assert stream.dtmf_packets(start - 0.001) == []
    sequence, timestamp = audio[-1].sequence + 1, audio[-1].timestamp + 160
    for k in range(7):  # 5 updates, the last one the end, then the end twice more
        at = start + k * FRAME
        assert stream.audio(_payload(0), at) is None  # the bot's audio would overlap the tone
        assert stream.dtmf_packets(at - 0.001) == []
        [wire] = stream.dtmf_packets(at + 1e-9)
        packet = parse_rtp(wire)
        assert packet.payload_type == EVENT_PT
        assert packet.sequence == (sequence + k) & 0xFFFF
        assert packet.timestamp == timestamp
        assert packet.ssrc == stream.ssrc
        assert packet.marker == (k == 0)
        assert parse_telephone_event(packet.payload) == TelephoneEvent(
            7, k >= 4, 10, min(160 * (k + 1), 800)
        )
    assert stream.dtmf_due() is None
    after = parse_rtp(stream.audio(_payload(1), start + 7 * FRAME) or b"")
    assert after.sequence == (sequence + 7) & 0xFFFF
    assert after.timestamp == (timestamp + 7 * 160) & 0xFFFFFFFF  # the skipped frames count
    assert not after.marker
    assert stream.counters.dtmf_out == 1
    assert stream.counters.packets_out == 3 + 7 + 1


def _send_all(stream: RtpStream, until: float) -> list[RtpPacket]:
    packets = []
    for step in range(round(until / 0.005) + 1):
        packets += [parse_rtp(wire) for wire in stream.dtmf_packets(step * 0.005)]
    return packets


def test_queued_digits_follow_each_other() -> None:
    stream = RtpStream(SETUP, 0.0)
    assert stream.dtmf("12", 100, 0.0) == 2
    assert stream.dtmf("3", 100, 0.0) == 1
    packets = _send_all(stream, 1.0)
    firsts = [p for p in packets if p.marker]
    assert [parse_telephone_event(p.payload).event for p in firsts] == [1, 2, 3]
    ends = [parse_telephone_event(p.payload).end for p in packets]
    assert ends.count(True) == 9
    assert [p.sequence for p in packets] == [(packets[0].sequence + k) & 0xFFFF for k in range(21)]
    assert stream.counters.dtmf_out == 3


@pytest.mark.parametrize("calls", [["12"], ["1", "2"]], ids=["one-call", "two-calls"])
def test_each_queued_digit_has_its_own_timestamp(calls: list[str]) -> None:
    sender, receiver = RtpStream(SETUP, 0.0), RtpStream(SETUP, 0.0)
    for digits in calls:
        sender.dtmf(digits, 100, 0.0)
    packets = _send_all(sender, 1.0)
    assert len({p.timestamp for p in packets}) == 2
    events = [e for p in packets for e in receiver.receive(p.serialize(), NAT, 0.0)]
    assert [e.digit for e in _dtmf(events)] == ["1", "2"]


def test_dtmf_without_telephone_events_queues_nothing() -> None:
    stream = RtpStream(MediaSetup(Encoding.PCMU, AUDIO_PT, 8000, None, PEER), 0.0)
    assert stream.dtmf("123", 100, 0.0) == 0
    assert stream.dtmf_due() is None
    assert stream.dtmf_packets(10.0) == []
    assert stream.audio(_payload(1), 0.0) is not None
    assert stream.counters.dtmf_out == 0


# --- in-band DTMF ----------------------------------------------------------------------------


def _encode(samples: Pcm, encoding: Encoding) -> bytes:
    if encoding is Encoding.PCMU:
        return ulaw_encode(samples).tobytes()
    if encoding is Encoding.PCMA:
        return alaw_encode(samples).tobytes()
    return samples.astype(">i2").tobytes()


def _tones(digits: str, rate: int) -> Pcm:
    silence = np.zeros(rate // 10, dtype=np.int16)
    keys = dtmf_sequence(digits, tone_ms=100, gap_ms=60, sample_rate=rate)
    return np.concatenate([silence, keys, silence, silence])


@pytest.mark.parametrize(
    ("encoding", "rate"),
    [
        pytest.param(Encoding.PCMU, 8000, id="pcmu"),
        pytest.param(Encoding.PCMA, 8000, id="pcma"),
        pytest.param(Encoding.L16, 8000, id="l16"),
        pytest.param(Encoding.L16, 16000, id="l16-16k"),
    ],
)
def test_inband_dtmf_is_detected(encoding: Encoding, rate: int) -> None:
    stream = RtpStream(MediaSetup(encoding, 96, rate, None, PEER), 0.0, inband_dtmf=True)
    audio = _encode(_tones("159#", rate), encoding)
    size = AudioFormat(encoding, rate).bytes_per(20)
    events: list[UpstreamEvent] = []
    for n in range(len(audio) // size):
        payload = audio[n * size : (n + 1) * size]
        events += stream.receive(_rtp(n, pt=96, payload=payload), NAT, n * FRAME)
    keys = _dtmf(events)
    assert [(k.digit, k.method) for k in keys] == [(d, "inband") for d in "159#"]
    for key in keys:
        assert key.duration_ms is not None
        assert 90 <= key.duration_ms <= 115
    assert sum(isinstance(e, MediaReceived) for e in events) == len(audio) // size
    assert stream.counters.dtmf_in == 0  # that counter is for telephone-events


def test_inband_dtmf_is_off_by_default() -> None:
    stream = RtpStream(SETUP, 0.0)
    audio = ulaw_encode(dtmf_tone("5", 200)).tobytes()
    events = [
        e
        for n in range(len(audio) // 160)
        for e in stream.receive(_rtp(n, payload=audio[n * 160 : (n + 1) * 160]), NAT, n * FRAME)
    ]
    assert _dtmf(events) == []


# --- summary ---------------------------------------------------------------------------------


def test_summary() -> None:
    stream = RtpStream(SETUP, 0.0)
    stream.receive(_rtp(1), NAT, 0.00)
    stream.receive(_rtp(3), NAT, 0.04)
    stream.receive(_rtp(4), NAT, 0.06)
    stream.tick(1.0)
    stream.receive(b"junk", NAT, 1.0)
    for packet in _keypress(9, 800, 1):
        stream.receive(packet, NAT, 1.0)
    stream.audio(_payload(0), 1.0)
    summary = stream.summary()
    jitter = summary.pop("rtp_jitter_ms")
    assert isinstance(jitter, float)
    assert jitter >= 0
    assert summary == {
        "rtp_in": 10,
        "rtp_out": 1,
        "rtp_bad": 1,
        "rtp_lost": 1,
        "rtp_reordered": 0,
        "rtp_duplicates": 0,
        "rtp_concealed": 1,
        "rtp_ssrc_changes": 0,
        "dtmf_in": 1,
        "rtcp_in": 0,
        "rtcp_out": 0,
    }


def test_a_receiver_report_before_voxgate_sends_then_a_sender_report_with_the_peers_block() -> None:
    stream = RtpStream(SETUP, 0.0)
    (rr, cname) = parse_rtcp(stream.report(0.0, 1_800_000_000.0))
    assert rr == ReceiverReport(stream.ssrc, ())  # nothing heard yet
    assert isinstance(cname, SourceDescription) and cname.chunks[0][0] == stream.ssrc
    for n in range(10):
        stream.receive(_rtp(n), PEER, n * FRAME)
    peer_sr = SenderReport(SSRC, ntp_timestamp(1_800_000_000.25), 1600, 10, 1600)
    stream.receive(serialize_rtcp([peer_sr]), PEER, 0.25)
    for _ in range(5):
        stream.audio(LOUD.tobytes(), 0.3)
    sr = parse_rtcp(stream.report(0.75, 1_800_000_000.75))[0]
    assert isinstance(sr, SenderReport)
    assert (sr.ssrc, sr.packet_count, sr.octet_count) == (stream.ssrc, 5, 800)
    assert sr.ntp_timestamp == ntp_timestamp(1_800_000_000.75)
    (block,) = sr.reports
    assert (block.ssrc, block.fraction_lost, block.cumulative_lost) == (SSRC, 0, 0)
    assert block.highest_sequence == 9
    assert block.last_sr == ntp_middle(peer_sr.ntp_timestamp)
    assert block.delay_since_last_sr == 32768  # 0.5 s in 1/65536 s
    assert stream.counters.rtcp_out == 2 and stream.counters.rtcp_in == 1


def test_the_sdp_address_wins_over_a_stranger_that_spoke_first() -> None:
    stream = RtpStream(SETUP, 0.0)  # the SDP says PEER
    assert stream.receive(_rtp(1, ssrc=OTHER_SSRC), STRANGER, 0.0) == _media(1)  # latched
    assert stream.receive(_rtp(50), PEER, 0.02) == _media(50)  # the announced address
    assert stream.remote == PEER
    assert stream.receive(_rtp(2, ssrc=OTHER_SSRC), STRANGER, 0.04) == []
    same_host = (PEER[0], PEER[1] + 2)
    assert stream.receive(_rtp(51), same_host, 0.06) == []  # not closer than the exact one
