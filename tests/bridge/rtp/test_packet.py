from __future__ import annotations

import pytest

from voxgate.bridge.rtp.packet import RtpPacket, looks_like_rtcp, parse_rtp, plain_packet
from voxgate.errors import ParseError, RtpParseError

SSRC = 0x12345678

# Both directions: parse_rtp(wire) == packet and packet.serialize() == wire.
VECTORS = [
    pytest.param(
        bytes.fromhex(
            "80 00 0001"  # V=2, no P/X/CC; M=0 PT=0 (PCMU); sequence 1
            "000000a0"  # timestamp 160
            "12345678"  # SSRC
            "fffe7f"  # payload
        ),
        RtpPacket(0, 1, 160, SSRC, b"\xff\xfe\x7f"),
        id="pcmu",
    ),
    pytest.param(
        bytes.fromhex(
            "80 e5 ffff"  # M=1 PT=101 (telephone-event); sequence 65535
            "ffffffff"  # timestamp 2**32 - 1
            "12345678"
            "010a00a0"  # payload
        ),
        RtpPacket(101, 0xFFFF, 0xFFFFFFFF, SSRC, bytes.fromhex("010a00a0"), marker=True),
        id="marker-pt101-max-sequence-and-timestamp",
    ),
    pytest.param(
        bytes.fromhex("80 08 0002 00000140 12345678"),  # PT 8 (PCMA), no payload
        RtpPacket(8, 2, 320, SSRC, b""),
        id="empty-payload",
    ),
    pytest.param(
        bytes.fromhex(
            "82 08 0003"  # CC=2; PT 8
            "00000000 12345678"
            "00000001"  # CSRC 1
            "deadbeef"  # CSRC 2
            "d5d5"
        ),
        RtpPacket(8, 3, 0, SSRC, b"\xd5\xd5", csrc=(1, 0xDEADBEEF)),
        id="two-csrcs",
    ),
    pytest.param(
        bytes.fromhex(
            "90 00 0004"  # X=1
            "00000000 12345678"
            "bede 0001"  # extension profile 0xBEDE (RFC 8285), 1 word
            "10ff0000"  # extension data
            "ff"
        ),
        RtpPacket(0, 4, 0, SSRC, b"\xff", extension=(0xBEDE, bytes.fromhex("10ff0000"))),
        id="extension",
    ),
    pytest.param(
        bytes.fromhex("90 00 0005 00000000 12345678 1000 0000 ff"),  # extension of 0 words
        RtpPacket(0, 5, 0, SSRC, b"\xff", extension=(0x1000, b"")),
        id="empty-extension",
    ),
    pytest.param(
        bytes.fromhex(
            "a0 00 0006"  # P=1
            "00000000 12345678"
            "ffff"  # payload
            "000003"  # 3 padding bytes, the last one counting them
        ),
        RtpPacket(0, 6, 0, SSRC, b"\xff\xff", padding=3),
        id="padding",
    ),
    pytest.param(
        bytes.fromhex("a0 00 0007 00000000 12345678 01"),  # only the count byte, no payload
        RtpPacket(0, 7, 0, SSRC, b"", padding=1),
        id="padding-of-one",
    ),
    pytest.param(
        bytes.fromhex(
            "b1 80 0008"  # P=1 X=1 CC=1; M=1 PT=0
            "00000010 12345678"
            "0000000a"  # CSRC 10
            "0001 0002 0102030405060708"  # extension: profile 1, 2 words
            "aabb"  # payload
            "0002"  # padding
        ),
        RtpPacket(
            0,
            8,
            16,
            SSRC,
            b"\xaa\xbb",
            marker=True,
            csrc=(10,),
            extension=(1, bytes.fromhex("0102030405060708")),
            padding=2,
        ),
        id="everything",
    ),
]


@pytest.mark.parametrize(("wire", "packet"), VECTORS)
def test_parse(wire: bytes, packet: RtpPacket) -> None:
    assert parse_rtp(wire) == packet


@pytest.mark.parametrize(("wire", "packet"), VECTORS)
def test_serialize(wire: bytes, packet: RtpPacket) -> None:
    assert packet.serialize() == wire


def test_the_payload_is_bytes() -> None:
    packet = parse_rtp(bytes.fromhex("80 00 0001 00000000 12345678 ff"))
    assert type(packet.payload) is bytes


def test_padding_contents_are_ignored() -> None:
    packet = parse_rtp(bytes.fromhex("a0 00 0001 00000000 12345678 ff abcd03"))
    assert packet == RtpPacket(0, 1, 0, SSRC, b"\xff", padding=3)


MALFORMED = [
    pytest.param(b"", id="empty"),
    pytest.param(bytes.fromhex("80 00 0001 00000000 123456"), id="11-bytes"),
    pytest.param(bytes.fromhex("00 00 0001 00000000 12345678"), id="version-0"),
    pytest.param(bytes.fromhex("40 00 0001 00000000 12345678"), id="version-1"),
    pytest.param(bytes.fromhex("c0 00 0001 00000000 12345678"), id="version-3"),
    pytest.param(bytes.fromhex("82 00 0001 00000000 12345678 00000001"), id="csrc-past-end"),
    pytest.param(bytes.fromhex("8f 00 0001 00000000 12345678"), id="15-csrcs-none-there"),
    pytest.param(bytes.fromhex("90 00 0001 00000000 12345678 bede"), id="extension-header-cut"),
    pytest.param(
        bytes.fromhex("90 00 0001 00000000 12345678 bede 0002 00000000"),
        id="extension-data-past-end",
    ),
    pytest.param(bytes.fromhex("a0 00 0001 00000000 12345678 ff00"), id="padding-count-0"),
    pytest.param(bytes.fromhex("a0 00 0001 00000000 12345678 ff03"), id="padding-into-header"),
    pytest.param(bytes.fromhex("a0 00 0001 00000000 123456ff"), id="padding-count-is-header"),
    pytest.param(
        bytes.fromhex("b0 00 0001 00000000 12345678 bede 0001 00000000 02"),
        id="padding-into-extension",
    ),
]


@pytest.mark.parametrize("wire", MALFORMED)
def test_malformed_packets_raise_rtp_parse_error(wire: bytes) -> None:
    with pytest.raises(RtpParseError):
        parse_rtp(wire)


def test_the_parse_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="shorter than the 12-byte header") as caught:
        parse_rtp(b"\x80")
    assert isinstance(caught.value, ParseError)


INVALID = [
    pytest.param(RtpPacket(128, 0, 0, 0, b""), id="payload-type-128"),
    pytest.param(RtpPacket(0, 65536, 0, 0, b""), id="sequence-65536"),
    pytest.param(RtpPacket(0, -1, 0, 0, b""), id="sequence-negative"),
    pytest.param(RtpPacket(0, 0, 2**32, 0, b""), id="timestamp-33-bits"),
    pytest.param(RtpPacket(0, 0, 0, 2**32, b""), id="ssrc-33-bits"),
    pytest.param(RtpPacket(0, 0, 0, 0, b"", csrc=(1,) * 16), id="16-csrcs"),
    pytest.param(RtpPacket(0, 0, 0, 0, b"", csrc=(2**32,)), id="csrc-33-bits"),
    pytest.param(RtpPacket(0, 0, 0, 0, b"", extension=(0, b"abc")), id="extension-3-bytes"),
    pytest.param(RtpPacket(0, 0, 0, 0, b"", extension=(65536, b"")), id="profile-17-bits"),
    pytest.param(RtpPacket(0, 0, 0, 0, b"", padding=256), id="padding-256"),
]


@pytest.mark.parametrize("packet", INVALID)
def test_serializing_out_of_range_fields_raises_value_error(packet: RtpPacket) -> None:
    with pytest.raises(ValueError, match=r"out of range|at most|4n bytes"):
        packet.serialize()


DEMUX = [
    pytest.param(b"\x80\xc8", True, id="sr-200"),
    pytest.param(b"\x81\xc9", True, id="rr-201"),
    pytest.param(b"\x81\xcd", True, id="rtpfb-205"),
    pytest.param(b"\x80\xc0", True, id="192-lowest"),
    pytest.param(b"\x80\xdf", True, id="223-highest"),
    pytest.param(b"\x80\xbf", False, id="rtp-pt63-marker"),
    pytest.param(b"\x80\xe0", False, id="rtp-pt96-marker"),
    pytest.param(b"\x80\xe5", False, id="rtp-pt101-marker"),
    pytest.param(b"\x80\x00", False, id="rtp-pcmu"),
    pytest.param(b"\x80", False, id="one-byte"),
    pytest.param(b"", False, id="empty"),
]


@pytest.mark.parametrize(("wire", "is_rtcp"), DEMUX)
def test_looks_like_rtcp(wire: bytes, is_rtcp: bool) -> None:
    assert looks_like_rtcp(wire) is is_rtcp


@pytest.mark.parametrize("marker", [False, True])
def test_the_plain_packet_fast_form_is_the_serialized_packet(marker: bool) -> None:
    packet = RtpPacket(101, 65535, 0xFFFFFFFF, 0x01020304, b"\x05\x0a\x00\xa0", marker=marker)
    assert plain_packet(101, 65535, 0xFFFFFFFF, 0x01020304, packet.payload, marker=marker) == (
        packet.serialize()
    )
    assert parse_rtp(packet.serialize()) == packet
