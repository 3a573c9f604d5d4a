"""The RTP, RTCP and telephone-event parsers on generated input: 100,000 examples in all.

Any bytes raise nothing but RtpParseError; every valid value survives serialize + parse.
"""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voxgate.bridge.rtp.packet import RtpPacket, parse_rtp
from voxgate.bridge.rtp.rtcp import (
    Goodbye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    SenderReport,
    SourceDescription,
    parse_rtcp,
    serialize_rtcp,
)
from voxgate.bridge.rtp.telephone_event import (
    TelephoneEvent,
    parse_telephone_event,
    serialize_telephone_event,
)
from voxgate.errors import RtpParseError

U8 = st.integers(0, 0xFF)
U16 = st.integers(0, 0xFFFF)
U32 = st.integers(0, 0xFFFF_FFFF)


def _fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


rtp_packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 0x7F),
    sequence=U16,
    timestamp=U32,
    ssrc=U32,
    payload=st.binary(max_size=64),
    marker=st.booleans(),
    csrc=st.lists(U32, max_size=15).map(tuple),
    extension=st.none() | st.tuples(U16, st.binary(max_size=16).map(lambda b: b[: len(b) & ~3])),
    padding=U8,
)

report_blocks = st.builds(
    ReportBlock,
    ssrc=U32,
    fraction_lost=U8,
    cumulative_lost=st.integers(-(2**23), 2**23 - 1),
    highest_sequence=U32,
    jitter=U32,
    last_sr=U32,
    delay_since_last_sr=U32,
)
_blocks = st.lists(report_blocks, max_size=3).map(tuple)
_short_text = st.text(max_size=63)  # at most 252 bytes of UTF-8

rtcp_packets: st.SearchStrategy[RtcpPacket] = st.one_of(
    st.builds(
        SenderReport,
        ssrc=U32,
        ntp_timestamp=st.integers(0, 2**64 - 1),
        rtp_timestamp=U32,
        packet_count=U32,
        octet_count=U32,
        reports=_blocks,
    ),
    st.builds(ReceiverReport, ssrc=U32, reports=_blocks),
    st.builds(
        SourceDescription, chunks=st.lists(st.tuples(U32, _short_text), max_size=3).map(tuple)
    ),
    st.builds(Goodbye, ssrcs=st.lists(U32, max_size=4).map(tuple), reason=st.none() | _short_text),
)

telephone_events = st.builds(
    TelephoneEvent, event=U8, end=st.booleans(), volume=st.integers(0, 63), duration=U16
)


def _parse_all(data: bytes) -> None:
    for parse in (parse_rtp, parse_rtcp, parse_telephone_event):
        with contextlib.suppress(RtpParseError):
            parse(data)


@_fuzz(50_000)
@given(st.binary(max_size=120))
def test_random_bytes_raise_only_parse_errors(data: bytes) -> None:
    _parse_all(data)


_BLOCK = ReportBlock(1, 2, -3, 0x10004, 5, 6, 7)
CORPUS = [
    RtpPacket(0, 1, 160, 0x1234, bytes(160)).serialize(),
    RtpPacket(101, 65535, 2**32 - 1, 1, b"\x01\x8a\x03\x20", marker=True).serialize(),
    RtpPacket(8, 2, 3, 4, b"ab", csrc=(5, 6), extension=(0xBEDE, bytes(8)), padding=3).serialize(),
    RtpPacket(0, 0, 0, 0, b"", csrc=(1,) * 15, padding=255).serialize(),
    serialize_rtcp(
        [SenderReport(1, 2**63, 3, 4, 5, (_BLOCK, _BLOCK)), SourceDescription(((1, "a@b"),))]
    ),
    serialize_rtcp([ReceiverReport(9, (_BLOCK,)), Goodbye((9, 10), "hung up")]),
    serialize_rtcp([SourceDescription(((1, ""), (2, "x" * 40), (3, "\u00e9")))]),
    bytes.fromhex("81 ca 0004 00000001 02 03 626f62 01 01 78 00000000"),  # NAME, then CNAME
    bytes.fromhex("80 cc 0002 12345678 6e616d65 a0 c9 0002 12345678 00000004"),  # APP, padded RR
]


@_fuzz(30_000)
@given(st.sampled_from(CORPUS), st.binary(max_size=6), st.integers(0, 300))
def test_damaged_packets_raise_only_parse_errors(wire: bytes, changes: bytes, cut: int) -> None:
    """Up to three bytes of a valid packet changed (index, value), then cut at ``cut``."""
    damaged = bytearray(wire)
    for index, value in zip(changes[::2], changes[1::2], strict=False):
        damaged[index % len(damaged)] = value
    _parse_all(bytes(damaged[:cut]))


@_fuzz(10_000)
@given(rtp_packets)
def test_rtp_round_trip(packet: RtpPacket) -> None:
    assert parse_rtp(packet.serialize()) == packet


@_fuzz(5_000)
@given(st.lists(rtcp_packets, max_size=4))
def test_rtcp_round_trip(packets: list[RtcpPacket]) -> None:
    wire = serialize_rtcp(packets)
    assert len(wire) % 4 == 0
    assert parse_rtcp(wire) == packets if packets else wire == b""


@_fuzz(5_000)
@given(telephone_events)
def test_telephone_event_round_trip(event: TelephoneEvent) -> None:
    assert parse_telephone_event(serialize_telephone_event(event)) == event
