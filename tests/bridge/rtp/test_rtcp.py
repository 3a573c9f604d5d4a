from __future__ import annotations

import pytest

from voxgate.bridge.rtp.rtcp import (
    Goodbye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    SenderReport,
    SourceDescription,
    ntp_middle,
    ntp_timestamp,
    parse_rtcp,
    serialize_rtcp,
)
from voxgate.errors import RtpParseError

BLOCK = ReportBlock(
    ssrc=0x0A0B0C0D,
    fraction_lost=0x40,
    cumulative_lost=5,
    highest_sequence=0x00010010,
    jitter=37,
    last_sr=0x11223344,
    delay_since_last_sr=0x00018000,
)
BLOCK_WIRE = (
    "0a0b0c0d"  # SSRC of the source
    "40 000005"  # fraction lost 64/256, cumulative lost 5
    "00010010"  # extended highest sequence: 1 cycle, 16
    "00000025"  # jitter 37
    "11223344"  # LSR
    "00018000"  # DLSR 1.5 s
)

# Both directions: parse_rtcp(wire) == packets and serialize_rtcp(packets) == wire.
VECTORS = [
    pytest.param(
        "80 c9 0001"  # V=2 RC=0 PT=201 (RR), length 1 (2 words)
        "12345678",  # reporter SSRC
        [ReceiverReport(0x12345678)],
        id="rr-empty",
    ),
    pytest.param(
        "81 c9 0007 12345678" + BLOCK_WIRE,  # RC=1: 7 words after the header
        [ReceiverReport(0x12345678, (BLOCK,))],
        id="rr-one-block",
    ),
    pytest.param(
        "81 c9 0007 12345678"
        "00000001"
        "00 fffffe"  # cumulative lost -2: duplicates outnumber losses
        "0000ffff 00000000 00000000 00000000",
        [ReceiverReport(0x12345678, (ReportBlock(1, 0, -2, 0xFFFF, 0, 0, 0),))],
        id="rr-negative-cumulative-lost",
    ),
    pytest.param(
        "81 c9 0007 12345678"
        "00000001"
        "ff 800000"  # fraction 255, cumulative lost -2**23 (the most negative)
        "ffffffff ffffffff ffffffff ffffffff",
        [ReceiverReport(0x12345678, (ReportBlock(1, 255, -(2**23), *[2**32 - 1] * 4),))],
        id="rr-extremes",
    ),
    pytest.param(
        "80 c8 0006"  # PT=200 (SR), length 6
        "12345678"  # SSRC
        "83aa7e80 80000000"  # NTP: 1970-01-01 + 0.5 s
        "000003e8"  # RTP timestamp 1000
        "00000032"  # 50 packets
        "00001f40",  # 8000 octets
        [SenderReport(0x12345678, (0x83AA7E80 << 32) | 0x80000000, 1000, 50, 8000)],
        id="sr",
    ),
    pytest.param(
        "81 c8 000c 12345678 83aa7e80 80000000 000003e8 00000032 00001f40" + BLOCK_WIRE,
        [SenderReport(0x12345678, (0x83AA7E80 << 32) | 0x80000000, 1000, 50, 8000, (BLOCK,))],
        id="sr-one-block",
    ),
    pytest.param(
        "81 ca 0003"  # SC=1 PT=202 (SDES), length 3
        "12345678"
        "01 02 6162"  # CNAME "ab"
        "00000000",  # end of list + padding to the next word
        [SourceDescription(((0x12345678, "ab"),))],
        id="sdes-cname-2",
    ),
    pytest.param(
        "81 ca 0003 12345678"
        "01 03 616263"  # CNAME "abc"
        "000000",
        [SourceDescription(((0x12345678, "abc"),))],
        id="sdes-cname-3",
    ),
    pytest.param(
        "82 ca 0004"  # SC=2
        "00000001 01 01 78 00"  # CNAME "x", a single null ends the chunk on a word boundary
        "00000002 01 00 0000",  # CNAME ""
        [SourceDescription(((1, "x"), (2, "")))],
        id="sdes-two-chunks",
    ),
    pytest.param(
        "81 ca 0003 00000001 01 04 c3a9c3a9 0000",  # "éé" in UTF-8
        [SourceDescription(((1, "\u00e9\u00e9"),))],
        id="sdes-utf8",
    ),
    pytest.param(
        "81 cb 0001 12345678",  # SC=1 PT=203 (BYE)
        [Goodbye((0x12345678,))],
        id="bye",
    ),
    pytest.param(
        "82 cb 0003 00000001 0000000203 627965",  # reason "bye"
        [Goodbye((1, 2), "bye")],
        id="bye-reason",
    ),
    pytest.param(
        "81 cb 0002 00000001 00 000000",  # empty reason, padded
        [Goodbye((1,), "")],
        id="bye-empty-reason",
    ),
    pytest.param("80 cb 0000", [Goodbye(())], id="bye-no-ssrc"),
    pytest.param(
        "80 c9 0001 12345678 81 ca 0003 12345678 01 02 6162 00000000 81 cb 0001 12345678",
        [
            ReceiverReport(0x12345678),
            SourceDescription(((0x12345678, "ab"),)),
            Goodbye((0x12345678,)),
        ],
        id="compound-rr-sdes-bye",
    ),
]


@pytest.mark.parametrize(("wire", "packets"), VECTORS)
def test_parse(wire: str, packets: list[RtcpPacket]) -> None:
    assert parse_rtcp(bytes.fromhex(wire)) == packets


@pytest.mark.parametrize(("wire", "packets"), VECTORS)
def test_serialize(wire: str, packets: list[RtcpPacket]) -> None:
    assert serialize_rtcp(packets) == bytes.fromhex(wire)


# One direction: what the parser accepts and reads past.
PARSE_ONLY = [
    pytest.param(
        "80 cc 0002 12345678 6e616d65"  # APP (204): skipped
        "80 c9 0001 12345678",
        [ReceiverReport(0x12345678)],
        id="app-skipped",
    ),
    pytest.param(
        "81 cd 0002 12345678 00000001"  # RTPFB (205) generic NACK: skipped
        "81 ce 0002 12345678 00000001",  # PSFB (206) PLI: skipped
        [],
        id="feedback-skipped",
    ),
    pytest.param(
        "80 c9 0002 12345678 abcdef01",  # a profile extension after the blocks
        [ReceiverReport(0x12345678)],
        id="rr-profile-extension-ignored",
    ),
    pytest.param(
        "81 ca 0004 12345678"
        "02 03 626f62"  # NAME "bob": skipped
        "01 01 78"  # CNAME "x"
        "00000000",
        [SourceDescription(((0x12345678, "x"),))],
        id="sdes-other-items-skipped",
    ),
    pytest.param(
        "82 ca 0004 00000001 02 01 78 00 00000002 01 01 79 00",
        [SourceDescription(((2, "y"),))],
        id="sdes-chunk-without-cname-left-out",
    ),
    pytest.param(
        "81 ca 0002 00000001 01 01 ff 00",  # not UTF-8
        [SourceDescription(((1, "\ufffd"),))],
        id="sdes-invalid-utf8-replaced",
    ),
    pytest.param(
        "a0 c9 0002 12345678 00000004",  # P=1: the last word is padding, count 4
        [ReceiverReport(0x12345678)],
        id="padded",
    ),
]


@pytest.mark.parametrize(("wire", "packets"), PARSE_ONLY)
def test_parse_only(wire: str, packets: list[RtcpPacket]) -> None:
    assert parse_rtcp(bytes.fromhex(wire)) == packets


MALFORMED = [
    pytest.param("", id="empty"),
    pytest.param("80c900", id="header-cut"),
    pytest.param("40 c9 0001 12345678", id="version-1"),
    pytest.param("c0 c9 0001 12345678", id="version-3"),
    pytest.param("80 c9 0002 12345678", id="length-past-end"),
    pytest.param("80 c9 0001 12345678 80c9", id="trailing-bytes"),
    pytest.param("80 c9 0000", id="rr-without-ssrc"),
    pytest.param("81 c9 0001 12345678", id="rr-block-missing"),
    pytest.param("80 c8 0005 12345678 00000000 00000000 00000000 00000000", id="sr-info-cut"),
    pytest.param("81 ca 0000", id="sdes-chunk-missing"),
    pytest.param("81 ca 0002 12345678 01 02 6162", id="sdes-unterminated"),
    pytest.param("81 ca 0002 12345678 010a 0000", id="sdes-text-past-end"),
    pytest.param("81 ca 0002 12345678 01 01 78 05", id="sdes-item-type-at-end"),
    pytest.param("82 cb 0001 12345678", id="bye-ssrc-missing"),
    pytest.param("81 cb 0002 12345678 09 616263", id="bye-reason-past-end"),
    pytest.param("a0 c9 0002 12345678 00000000", id="padding-count-0"),
    pytest.param("a0 c9 0002 12345678 00000009", id="padding-past-body"),
]


@pytest.mark.parametrize("wire", MALFORMED)
def test_malformed_packets_raise_rtp_parse_error(wire: str) -> None:
    with pytest.raises(RtpParseError):
        parse_rtcp(bytes.fromhex(wire))


INVALID = [
    pytest.param(ReceiverReport(2**32), id="ssrc-33-bits"),
    pytest.param(ReceiverReport(1, (BLOCK,) * 32), id="32-blocks"),
    pytest.param(ReceiverReport(1, (ReportBlock(1, 256, 0, 0, 0, 0, 0),)), id="fraction-256"),
    pytest.param(ReceiverReport(1, (ReportBlock(1, 0, 2**23, 0, 0, 0, 0),)), id="lost-2**23"),
    pytest.param(ReceiverReport(1, (ReportBlock(1, 0, -(2**23) - 1, 0, 0, 0, 0),)), id="lost-low"),
    pytest.param(SenderReport(1, 2**64, 0, 0, 0), id="ntp-65-bits"),
    pytest.param(SourceDescription(((1, "x" * 256),)), id="cname-256-bytes"),
    pytest.param(Goodbye((1,), "x" * 256), id="reason-256-bytes"),
    pytest.param(Goodbye((-1,)), id="bye-negative-ssrc"),
]


@pytest.mark.parametrize("packet", INVALID)
def test_serializing_out_of_range_fields_raises_value_error(packet: RtcpPacket) -> None:
    with pytest.raises(ValueError, match=r"out of|at most|longer than"):
        serialize_rtcp([packet])


def test_the_most_blocks_and_the_longest_cname_fit() -> None:
    packets: list[RtcpPacket] = [
        ReceiverReport(1, (BLOCK,) * 31),
        SourceDescription(((1, "x" * 255),)),
        Goodbye((1,), "y" * 255),
    ]
    assert parse_rtcp(serialize_rtcp(packets)) == packets


NTP_UNIX_EPOCH = 2_208_988_800 << 32

NTP = [
    pytest.param(0.0, NTP_UNIX_EPOCH, id="unix-epoch"),
    pytest.param(0.5, NTP_UNIX_EPOCH + 2**31, id="half-second"),
    pytest.param(1.25, NTP_UNIX_EPOCH + (1 << 32) + 2**30, id="one-and-a-quarter"),
    pytest.param(-1.0, NTP_UNIX_EPOCH - (1 << 32), id="before-1970"),
    # 2036-02-07T06:28:16Z: NTP era 1 begins, the 64 bits wrap to 0.
    pytest.param(2**32 - 2_208_988_800, 0, id="era-wrap"),
    pytest.param(1_700_000_000.0, (1_700_000_000 + 2_208_988_800) << 32, id="2023"),
]


@pytest.mark.parametrize(("unix", "ntp"), NTP)
def test_ntp_timestamp(unix: float, ntp: int) -> None:
    assert ntp_timestamp(unix) == ntp


def test_ntp_timestamp_keeps_microseconds_at_present_day_times() -> None:
    ntp = ntp_timestamp(1_700_000_000.000001)
    assert ntp >> 32 == 1_700_000_000 + 2_208_988_800
    assert abs((ntp & 0xFFFFFFFF) - 2**32 / 1_000_000) < 2**32 / 10_000_000  # 1 us +- 0.1


def test_ntp_middle_is_the_last_sr_field() -> None:
    assert ntp_middle(0x0123456789ABCDEF) == 0x456789AB
