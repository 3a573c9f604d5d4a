"""SDP: vectors both ways, real-world offers negotiated, answers line by line, malformed bodies."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voxgate.bridge.sip.sdp import (
    STATIC_PAYLOAD_TYPES,
    Codec,
    MediaDescription,
    Negotiated,
    SessionDescription,
    accept_answer,
    answer_sdp,
    negotiate,
    offer_sdp,
    parse_sdp,
    serialize_sdp,
)
from voxgate.errors import SdpParseError, UnsupportedFormatError


def sdp(*lines: str) -> bytes:
    return "".join(f"{line}\r\n" for line in lines).encode()


PCMU = Codec("PCMU", 0, 8000)
PCMA = Codec("PCMA", 8, 8000)
TE101 = Codec("telephone-event", 101, 8000, fmtp="0-16")


def audio(
    port: int,
    codecs: tuple[Codec, ...],
    *,
    direction: str = "sendrecv",
    ptime: int | None = 20,
    connection: str | None = None,
) -> MediaDescription:
    return MediaDescription("audio", port, "RTP/AVP", codecs, connection, direction, ptime)


def session(
    *media: MediaDescription, address: str = "192.0.2.10", name: str = "-"
) -> SessionDescription:
    return SessionDescription("-", 42, 1, address, address, media, name)


# --- wire format both ways ----------------------------------------------------------------

# (canonical bytes, value): parse_sdp(bytes) == value and serialize_sdp(value) == bytes
ROUND_TRIP = [
    pytest.param(
        sdp(
            "v=0",
            "o=- 42 1 IN IP4 192.0.2.10",
            "s=-",
            "c=IN IP4 192.0.2.10",
            "t=0 0",
            "m=audio 4000 RTP/AVP 0 8 101",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16",
            "a=ptime:20",
            "a=sendrecv",
        ),
        session(audio(4000, (PCMU, PCMA, TE101))),
        id="g711-and-telephone-event",
    ),
    pytest.param(
        sdp(
            "v=0",
            "o=alice 2890844526 2890844527 IN IP6 2001:db8::1",
            "s=A call",
            "t=0 0",
            "m=audio 49170 RTP/AVP 10 97",
            "c=IN IP6 2001:db8::2",
            "a=rtpmap:10 L16/44100/2",
            "a=rtpmap:97 opus/48000/2",
            "a=fmtp:97 minptime=10;useinbandfec=1",
            "a=rtcp:49171",
            "a=recvonly",
            "m=video 0 RTP/AVP 31",
            "c=IN IP6 2001:db8::2",
            "a=rtpmap:31 H261/90000",
            "a=inactive",
        ),
        SessionDescription(
            "alice",
            2890844526,
            2890844527,
            "2001:db8::1",
            None,
            (
                MediaDescription(
                    "audio",
                    49170,
                    "RTP/AVP",
                    (
                        Codec("L16", 10, 44100, 2),
                        Codec("opus", 97, 48000, 2, "minptime=10;useinbandfec=1"),
                    ),
                    "2001:db8::2",
                    "recvonly",
                    None,
                    rtcp_port=49171,
                ),
                MediaDescription(
                    "video",
                    0,
                    "RTP/AVP",
                    (Codec("H261", 31, 90000),),
                    "2001:db8::2",
                    "inactive",
                    None,
                ),
            ),
            "A call",
        ),
        id="ipv6-media-level-c-stereo-rtcp-rejected-video",
    ),
    pytest.param(
        sdp(
            "v=0",
            "o=- 42 1 IN IP4 192.0.2.10",
            "s=-",
            "c=IN IP4 192.0.2.10",
            "t=0 0",
            "m=audio 4000 RTP/AVP 0",
            "a=rtpmap:0 PCMU/8000",
            "a=sendrecv",
            "m=image 4002 udptl t38",
            "a=sendrecv",
        ),
        session(
            audio(4000, (PCMU,), ptime=None),
            MediaDescription("image", 4002, "udptl", (), None, "sendrecv", None, formats=("t38",)),
        ),
        id="t38-beside-audio",
    ),
    pytest.param(
        sdp("v=0", "o=- 0 0 IN IP4 0.0.0.0", "s=-", "t=0 0"),
        SessionDescription("-", 0, 0, "0.0.0.0", None, ()),
        id="no-media",
    ),
]


@pytest.mark.parametrize(("data", "value"), ROUND_TRIP)
def test_parse_vector(data: bytes, value: SessionDescription) -> None:
    assert parse_sdp(data) == value
    assert parse_sdp(data.decode()) == value


@pytest.mark.parametrize(("data", "value"), ROUND_TRIP)
def test_serialize_vector(data: bytes, value: SessionDescription) -> None:
    assert serialize_sdp(value) == data


# (body as peers write it, what it means): parsing only, serialization writes canonical form
LENIENT = [
    pytest.param(
        b"v=0\no=- 1 2 IN IP4 198.51.100.1\ns=-\nc=IN IP4 198.51.100.1\nt=0 0\n"
        b"m=audio 5004 RTP/AVP 0\n",
        SessionDescription(
            "-", 1, 2, "198.51.100.1", "198.51.100.1", (audio(5004, (PCMU,), ptime=None),)
        ),
        id="lf-line-ends-static-pt-without-rtpmap",
    ),
    pytest.param(
        sdp(
            "v=0",
            "s= ",
            "t=0 0",
            "c=IN IP4 224.2.1.1/127/3",
            "o=- 1 2 IN IP4 198.51.100.1",
            "b=AS:64",
            "a=sendonly",
            "a=tool:foo",
            "m=audio 5004/2 RTP/AVP 8 11 96 13",
            "i=some stream",
            "a=x-unknown:anything at all",
            "a=ptime:twenty",
            "a=rtcp:notaport",
            "a=fmtp:8 ignored=1",
            "a=rtpmap:8  PCMA/8000/1",
            "a=rtpmap:8 PCMU/8000",
            "a=maxptime:40",
            "",
        ),
        SessionDescription(
            "-",
            1,
            2,
            "198.51.100.1",
            "224.2.1.1",
            (
                audio(
                    5004,
                    (
                        Codec("PCMA", 8, 8000, 1, "ignored=1"),
                        Codec("L16", 11, 44100),
                        Codec("", 96, 0),
                        Codec("CN", 13, 8000),
                    ),
                    direction="sendonly",
                    ptime=None,
                ),
            ),
        ),
        id="any-order-unknown-lines-session-direction-multicast-first-rtpmap-wins",
    ),
    pytest.param(
        sdp(
            "v=0",
            "o=- 1 2 IN IP4 198.51.100.1",
            "s=-",
            "c=IN IP4 198.51.100.1",
            "m=audio 5004 RTP/AVP 0",
            "c=IN IP4 198.51.100.7",
            "a=ptime:30",
            "a=inactive",
            "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
            "a=rtpmap:x is not read here",
            "a=fmtp:y nor this",
        ),
        SessionDescription(
            "-",
            1,
            2,
            "198.51.100.1",
            "198.51.100.1",
            (
                audio(5004, (PCMU,), direction="inactive", ptime=30, connection="198.51.100.7"),
                MediaDescription(
                    "application",
                    9,
                    "UDP/DTLS/SCTP",
                    (),
                    None,
                    "sendrecv",
                    None,
                    formats=("webrtc-datachannel",),
                ),
            ),
        ),
        id="media-level-c-and-non-rtp-line",
    ),
]


@pytest.mark.parametrize(("data", "value"), LENIENT)
def test_parse_what_peers_write(data: bytes, value: SessionDescription) -> None:
    assert parse_sdp(data) == value


def test_static_payload_types_follow_rfc_3551() -> None:
    assert STATIC_PAYLOAD_TYPES[0] == ("PCMU", 8000, 1)
    assert STATIC_PAYLOAD_TYPES[8] == ("PCMA", 8000, 1)
    assert STATIC_PAYLOAD_TYPES[10] == ("L16", 44100, 2)
    assert STATIC_PAYLOAD_TYPES[11] == ("L16", 44100, 1)
    assert STATIC_PAYLOAD_TYPES[13] == ("CN", 8000, 1)
    assert 96 not in STATIC_PAYLOAD_TYPES


def test_audio_and_address_for() -> None:
    rejected = audio(0, (PCMU,))
    live = audio(4000, (PCMA,), connection="198.51.100.9")
    described = session(rejected, live)
    assert described.audio() == live
    assert described.address_for(live) == "198.51.100.9"
    assert described.address_for(rejected) == "192.0.2.10"
    assert session(rejected).audio() is None


GOOD = sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0")

MALFORMED = [
    pytest.param(b"", id="empty"),
    pytest.param(b"\r\n\r\n", id="blank-lines"),
    pytest.param(GOOD.replace(b"v=0", b"v=1"), id="version-1"),
    pytest.param(GOOD.replace(b"v=0\r\n", b""), id="no-v"),
    pytest.param(b"s=-\r\n" + GOOD, id="v-not-first"),
    pytest.param(GOOD + b"v=0\r\n", id="second-v"),
    pytest.param(GOOD.replace(b"o=- 1 1 IN IP4 192.0.2.1\r\n", b""), id="no-o"),
    pytest.param(GOOD.replace(b"s=-\r\n", b""), id="no-s"),
    pytest.param(GOOD + b"s=again\r\n", id="second-s"),
    pytest.param(GOOD + b"o=- 1 1 IN IP4 192.0.2.1\r\n", id="second-o"),
    pytest.param(GOOD.replace(b"IN IP4 192.0.2.1\r\ns", b"IN IP4\r\ns"), id="o-five-fields"),
    pytest.param(GOOD.replace(b"o=- 1 1", b"o=- abc 1"), id="o-session-id-not-a-number"),
    pytest.param(GOOD.replace(b"o=- 1 1", b"o=- 1 -1"), id="o-version-negative"),
    pytest.param(GOOD.replace(b"o=- 1 1", "o=- \u0661 1".encode()), id="o-arabic-indic-digit"),
    pytest.param(GOOD.replace(b"c=IN IP4 192.0.2.1", b"c=IN IP4"), id="c-two-fields"),
    pytest.param(GOOD.replace(b"c=IN IP4 192.0.2.1", b"c=IN IP4 /127"), id="c-empty-address"),
    pytest.param(GOOD + b"m=audio 4000 RTP/AVP\r\n", id="m-no-formats"),
    pytest.param(GOOD + b"m=audio four RTP/AVP 0\r\n", id="m-port-not-a-number"),
    pytest.param(GOOD + b"m=audio 1_000 RTP/AVP 0\r\n", id="m-port-underscore"),
    pytest.param(GOOD + b"m=audio 70000 RTP/AVP 0\r\n", id="m-port-too-big"),
    pytest.param(GOOD + b"m=audio 4000/x RTP/AVP 0\r\n", id="m-port-count-bad"),
    pytest.param(GOOD + b"m=audio 4000 RTP/AVP 0 PCMA\r\n", id="m-pt-not-a-number"),
    pytest.param(GOOD + b"m=audio 4000 RTP/SAVP 128\r\n", id="m-pt-too-big"),
    pytest.param(GOOD + b"m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 opus\r\n", id="rtpmap-no-rate"),
    pytest.param(GOOD + b"m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 /8000\r\n", id="rtpmap-no-name"),
    pytest.param(GOOD + b"m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 L16/0\r\n", id="rtpmap-rate-0"),
    pytest.param(
        GOOD + b"m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 L16/8k\r\n", id="rtpmap-rate-text"
    ),
    pytest.param(GOOD + b"m=audio 4000 RTP/AVP 96\r\na=rtpmap:x L16/8000\r\n", id="rtpmap-pt-text"),
    pytest.param(
        GOOD + b"m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 L16/8000/two\r\n", id="rtpmap-channels-text"
    ),
    pytest.param(GOOD + b"m=audio 4000 RTP/AVP 96\r\na=fmtp:x 0-16\r\n", id="fmtp-pt-text"),
    pytest.param(
        GOOD.replace(b"c=IN IP4 192.0.2.1\r\n", b"") + b"m=audio 4000 RTP/AVP 0\r\n",
        id="no-c-for-a-stream",
    ),
    pytest.param(
        GOOD.replace(b"c=IN IP4 192.0.2.1\r\n", b"")
        + b"m=audio 4000 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\nm=audio 0 RTP/AVP 0\r\n",
        id="no-c-for-the-second-stream",
    ),
    pytest.param(GOOD + b"a sendrecv\r\n", id="line-without-equals"),
    pytest.param(GOOD + b"A=sendrecv\r\n", id="upper-case-type"),
    pytest.param(GOOD + b" a=sendrecv\r\n", id="leading-space"),
    pytest.param(GOOD + b"a=send\rrecv\r\n", id="bare-cr-inside"),
    pytest.param(GOOD + b"a=send\x00recv\r\n", id="nul-inside"),
    pytest.param(GOOD + b"s=\xff\xfe\r\n", id="bad-utf8"),
]


@pytest.mark.parametrize("data", MALFORMED)
def test_malformed_sdp_is_refused(data: bytes) -> None:
    with pytest.raises(SdpParseError):
        parse_sdp(data)


def test_good_base_of_the_malformed_table_parses() -> None:
    assert parse_sdp(GOOD) == SessionDescription("-", 1, 1, "192.0.2.1", "192.0.2.1", ())


_SDP_LINE = st.sampled_from(
    [
        "v=0",
        "o=- 1 2 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0 8 96 101",
        "m=image 0 udptl t38",
        "a=rtpmap:96 L16/16000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=rtcp:4001",
        "a=sendonly",
    ]
)
_MUTATED_LINE = st.builds(
    lambda line, at, junk: line[:at] + junk + line[at:],
    _SDP_LINE,
    st.integers(0, 40),
    st.text(max_size=3),
)
_BODY_LINES = st.lists(st.one_of(_SDP_LINE, _MUTATED_LINE, st.text(max_size=30)), max_size=20)
_HEAD = "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n"
_FUZZ_SETTINGS = settings(
    max_examples=5000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@_FUZZ_SETTINGS
@given(
    st.one_of(
        st.text(),
        st.binary(),
        _BODY_LINES.map(lambda lines: "\n".join(["v=0", *lines])),
        _BODY_LINES.map(lambda lines: _HEAD + "\r\n".join(lines)),
        st.lists(_SDP_LINE, max_size=20).map(lambda lines: _HEAD + "\r\n".join(lines)),
        st.builds(
            lambda lines, cut: (_HEAD + "\r\n".join(lines)).encode()[:cut],
            _BODY_LINES,
            st.integers(0, 600),
        ),
    )
)
def test_parse_sdp_raises_nothing_but_sdp_parse_error(data: str | bytes) -> None:
    try:
        parsed = parse_sdp(data)
    except SdpParseError:
        return
    # what parses serializes, and the serialized form means the same
    assert parse_sdp(serialize_sdp(parsed)) == parsed


# --- negotiation (UAS) --------------------------------------------------------------------

TELNYX = sdp(
    "v=0",
    "o=- 7530417346470536339 1 IN IP4 192.76.120.10",
    "s=Telnyx",
    "c=IN IP4 192.76.120.10",
    "t=0 0",
    "m=audio 30504 RTP/AVP 0 8 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=maxptime:20",
    "a=sendrecv",
)
TWILIO = sdp(
    "v=0",
    "o=root 1012356278 1012356278 IN IP4 54.172.60.1",
    "s=Twilio Media Gateway",
    "c=IN IP4 54.172.60.1",
    "t=0 0",
    "m=audio 16310 RTP/AVP 0 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=sendrecv",
    "a=ptime:20",
)
ASTERISK = sdp(
    "v=0",
    "o=- 1580214585 1580214585 IN IP4 10.0.0.5",
    "s=Asterisk",
    "c=IN IP4 10.0.0.5",
    "t=0 0",
    "m=audio 12018 RTP/AVP 107 9 0 8 3 111 101",
    "a=rtpmap:107 opus/48000/2",
    "a=fmtp:107 useinbandfec=1",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:3 GSM/8000",
    "a=rtpmap:111 G726-32/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=maxptime:150",
    "a=sendrecv",
)
FREESWITCH = sdp(
    "v=0",
    "o=FreeSWITCH 1706000000 1706000001 IN IP4 203.0.113.7",
    "s=FreeSWITCH",
    "c=IN IP4 203.0.113.7",
    "t=0 0",
    "m=audio 24576 RTP/AVP 8 0 9 101 13",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=rtpmap:13 CN/8000",
    "a=ptime:20",
    "a=rtcp:24577 IN IP4 203.0.113.7",
)


def offer(m_line: str, *attributes: str, c: str = "c=IN IP4 198.51.100.20") -> bytes:
    return sdp("v=0", "o=- 9 9 IN IP4 198.51.100.20", "s=-", c, "t=0 0", m_line, *attributes)


def negotiated(
    codec: Codec,
    port: int,
    address: str = "198.51.100.20",
    event: Codec | None = None,
    *,
    ptime: int = 20,
    direction: str = "sendrecv",
    remote: str = "sendrecv",
) -> Negotiated:
    return Negotiated(codec, event, address, port, ptime, direction, remote)


OFFERS = [
    pytest.param(
        TELNYX, negotiated(PCMU, 30504, "192.76.120.10", TE101), id="telnyx-pcmu-pcma-te101"
    ),
    pytest.param(TWILIO, negotiated(PCMU, 16310, "54.172.60.1", TE101), id="twilio-pcmu-te101"),
    pytest.param(
        ASTERISK, negotiated(PCMU, 12018, "10.0.0.5", TE101), id="asterisk-opus-g722-first"
    ),
    pytest.param(
        FREESWITCH, negotiated(PCMA, 24576, "203.0.113.7", TE101), id="freeswitch-pcma-first"
    ),
    pytest.param(
        offer("m=audio 4000 RTP/AVP 8 96", "a=rtpmap:96 telephone-event/8000", "a=fmtp:96 0-15"),
        negotiated(PCMA, 4000, event=Codec("telephone-event", 96, 8000, fmtp="0-15")),
        id="pcma-only-te96",
    ),
    pytest.param(
        offer(
            "m=audio 4000 RTP/SAVP 0 8 101",
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
        ),
        None,
        id="savp-only",
    ),
    pytest.param(
        offer(
            "m=video 4002 RTP/AVP 99",
            "a=rtpmap:99 H264/90000",
            "m=audio 4000 RTP/AVP 0",
        ),
        negotiated(PCMU, 4000, ptime=20),
        id="video-before-audio",
    ),
    pytest.param(
        offer("m=audio 4000 RTP/AVP 0 101", "a=rtpmap:101 telephone-event/8000", "a=sendonly"),
        negotiated(
            PCMU,
            4000,
            event=Codec("telephone-event", 101, 8000),
            direction="recvonly",
            remote="sendonly",
        ),
        id="hold-sendonly",
    ),
    pytest.param(
        offer("m=audio 4000 RTP/AVP 0", "a=inactive"),
        negotiated(PCMU, 4000, direction="inactive", remote="inactive"),
        id="hold-inactive",
    ),
    pytest.param(
        offer("m=audio 4000 RTP/AVP 0", "a=recvonly"),
        negotiated(PCMU, 4000, direction="sendonly", remote="recvonly"),
        id="recvonly",
    ),
    pytest.param(
        offer("m=audio 4000 RTP/AVP 0", c="c=IN IP4 0.0.0.0"),
        negotiated(PCMU, 4000, address="0.0.0.0"),
        id="hold-c-0.0.0.0",
    ),
    pytest.param(
        offer("m=audio 4000 RTP/AVP 0", "a=ptime:30"),
        negotiated(PCMU, 4000, ptime=30),
        id="ptime-30",
    ),
    pytest.param(
        offer("m=audio 4000 RTP/AVP 0", "a=ptime:10"),
        negotiated(PCMU, 4000, ptime=20),
        id="ptime-10-becomes-20",
    ),
    pytest.param(
        offer("m=audio 4000 RTP/AVP 18 3 9", "a=rtpmap:18 G729/8000"), None, id="no-common-codec"
    ),
    pytest.param(
        offer(
            "m=audio 4000 RTP/AVP 97 102 101",
            "a=rtpmap:97 L16/16000",
            "a=rtpmap:102 telephone-event/8000",
            "a=rtpmap:101 telephone-event/16000",
        ),
        negotiated(Codec("L16", 97, 16000), 4000, event=Codec("telephone-event", 101, 16000)),
        id="l16-16000-te-at-16000",
    ),
    pytest.param(
        offer("m=audio 4000 RTP/AVP 11 10 97 0", "a=rtpmap:97 L16/8000/2"),
        negotiated(PCMU, 4000),
        id="l16-44100-and-stereo-skipped",
    ),
    pytest.param(
        offer("m=audio 4000 RTP/AVP 96 0", "a=rtpmap:96 PCMA/16000"),
        negotiated(PCMU, 4000),
        id="pcma-at-16000-skipped",
    ),
    pytest.param(
        offer("m=audio 4000 RTP/AVP 101 96", "a=rtpmap:96 pcmu/8000", "a=rtpmap:101 CN/8000"),
        negotiated(Codec("pcmu", 96, 8000), 4000),
        id="lower-case-name-dynamic-pt",
    ),
    pytest.param(
        offer(
            "m=audio 0 RTP/AVP 0",
            "m=audio 4000 RTP/SAVP 0",
            "m=audio 4002 RTP/AVP 18",
            "m=audio 4004 RTP/AVP 8",
            "c=IN IP4 198.51.100.99",
        ),
        negotiated(PCMA, 4004, address="198.51.100.99"),
        id="first-usable-audio-line",
    ),
    pytest.param(offer("m=audio 0 RTP/AVP 0"), None, id="audio-rejected"),
    pytest.param(offer("m=video 4000 RTP/AVP 31"), None, id="no-audio"),
]


@pytest.mark.parametrize(("data", "expected"), OFFERS)
def test_negotiate_real_world_offers(data: bytes, expected: Negotiated | None) -> None:
    assert negotiate(parse_sdp(data)) == expected


def test_negotiate_follows_accept() -> None:
    parsed = parse_sdp(ASTERISK)
    assert negotiate(parsed, accept=("pcma",)) == negotiated(PCMA, 12018, "10.0.0.5", TE101)
    assert negotiate(parsed, accept=("G722", "PCMU")) == negotiated(
        Codec("G722", 9, 8000), 12018, "10.0.0.5", TE101
    )
    assert negotiate(parsed, accept=("telephone-event",)) is None
    assert negotiate(parsed, accept=()) is None


@pytest.mark.parametrize(
    ("direction", "address", "on_hold"),
    [
        ("sendrecv", "192.0.2.1", False),
        ("recvonly", "192.0.2.1", False),
        ("sendonly", "192.0.2.1", True),
        ("inactive", "192.0.2.1", True),
        ("sendrecv", "0.0.0.0", True),
    ],
)
def test_on_hold(direction: str, address: str, on_hold: bool) -> None:
    assert negotiated(PCMU, 4000, address=address, remote=direction).on_hold is on_hold


# --- answers --------------------------------------------------------------------------------

ASTERISK_WITH_VIDEO = ASTERISK + sdp(
    "m=video 12020 RTP/AVP 99 34", "a=rtpmap:99 H264/90000", "a=fmtp:99 profile-level-id=42e01f"
)


def test_answer_text_line_by_line() -> None:
    parsed = parse_sdp(ASTERISK_WITH_VIDEO)
    chosen = negotiate(parsed)
    assert chosen is not None
    answer = answer_sdp(
        parsed, chosen, address="203.0.113.50", port=40000, session_id=77, session_version=78
    )
    assert serialize_sdp(answer).decode().split("\r\n") == [
        "v=0",
        "o=voxgate 77 78 IN IP4 203.0.113.50",
        "s=-",
        "c=IN IP4 203.0.113.50",
        "t=0 0",
        "m=audio 40000 RTP/AVP 0 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendrecv",
        "m=video 0 RTP/AVP 99",
        "a=rtpmap:99 H264/90000",
        "a=fmtp:99 profile-level-id=42e01f",
        "a=inactive",
        "",
    ]


@pytest.mark.parametrize(("data", "expected"), [p for p in OFFERS if p.values[1] is not None])
def test_answer_carries_the_choice(data: bytes, expected: Negotiated) -> None:
    parsed = parse_sdp(data)
    answer = answer_sdp(
        parsed, expected, address="203.0.113.50", port=40000, session_id=1, session_version=2
    )
    assert len(answer.media) == len(parsed.media)
    live = [m for m in answer.media if m.port != 0]
    assert len(live) == 1
    event = expected.telephone_event
    # the events the offer listed (RFC 4733 7.1.1: no more), else all of 0-16
    codecs = (expected.codec,) + ((replace(event, fmtp=event.fmtp or "0-16"),) if event else ())
    assert live[0] == audio(40000, codecs, direction=expected.direction, ptime=expected.ptime)
    assert parse_sdp(serialize_sdp(answer)) == answer


def test_offer_answer_round() -> None:
    """Our offer, answered by our own answerer, read back by our offerer."""
    ours = offer_sdp(address="203.0.113.50", port=40000, session_id=1, session_version=1)
    chosen = negotiate(parse_sdp(serialize_sdp(ours)), accept=("L16", "PCMA"))
    assert chosen == negotiated(PCMA, 40000, "203.0.113.50", TE101)
    answered = answer_sdp(
        ours, chosen, address="198.51.100.30", port=5000, session_id=9, session_version=9
    )
    back = accept_answer(ours, parse_sdp(serialize_sdp(answered)))
    assert back == negotiated(PCMA, 5000, "198.51.100.30", TE101)


def test_answer_rejects_t38_with_its_format() -> None:
    parsed = parse_sdp(offer("m=audio 4000 RTP/AVP 0", "m=image 4002 udptl t38"))
    chosen = negotiate(parsed)
    assert chosen is not None
    answer = answer_sdp(parsed, chosen, address="::1", port=6000, session_id=1, session_version=1)
    assert serialize_sdp(answer).decode().split("\r\n")[-3:] == [
        "m=image 0 udptl t38",
        "a=inactive",
        "",
    ]


def test_answer_to_an_offer_the_choice_does_not_come_from_is_an_error() -> None:
    chosen = negotiate(parse_sdp(TELNYX))
    assert chosen is not None
    with pytest.raises(ValueError, match="not in this offer"):
        answer_sdp(
            parse_sdp(TWILIO), chosen, address="::1", port=6000, session_id=1, session_version=1
        )


# --- offers and what answers mean (UAC) ----------------------------------------------------


def test_offer_text() -> None:
    made = offer_sdp(
        address="203.0.113.50",
        port=40000,
        session_id=5,
        session_version=6,
        codecs=("PCMU", "pcma", "L16"),
        ptime=30,
        direction="sendonly",
    )
    assert serialize_sdp(made) == sdp(
        "v=0",
        "o=voxgate 5 6 IN IP4 203.0.113.50",
        "s=-",
        "c=IN IP4 203.0.113.50",
        "t=0 0",
        "m=audio 40000 RTP/AVP 0 8 96 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:96 L16/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:30",
        "a=sendonly",
    )
    assert parse_sdp(serialize_sdp(made)) == made


def test_offer_defaults_and_refusals() -> None:
    made = offer_sdp(address="2001:db8::5", port=4000, session_id=1, session_version=1)
    media = made.audio()
    assert media is not None
    assert [c.name for c in media.codecs] == ["PCMU", "PCMA", "L16", "telephone-event"]
    assert (media.direction, media.ptime) == ("sendrecv", 20)
    with pytest.raises(UnsupportedFormatError):
        offer_sdp(address="::1", port=4000, session_id=1, session_version=1, codecs=("G729",))
    with pytest.raises(UnsupportedFormatError):
        offer_sdp(address="::1", port=4000, session_id=1, session_version=1, codecs=())
    with pytest.raises(ValueError, match="direction"):
        offer_sdp(address="::1", port=4000, session_id=1, session_version=1, direction="hold")


OUR_OFFER = offer_sdp(
    address="203.0.113.50", port=40000, session_id=1, session_version=1, codecs=("PCMU", "PCMA")
)


def answer(m_line: str, *attributes: str, c: str = "c=IN IP4 198.51.100.30") -> bytes:
    return sdp("v=0", "o=- 3 3 IN IP4 198.51.100.30", "s=-", c, "t=0 0", m_line, *attributes)


ANSWERS = [
    pytest.param(
        answer("m=audio 5000 RTP/AVP 8 101", "a=rtpmap:101 telephone-event/8000"),
        negotiated(PCMA, 5000, "198.51.100.30", Codec("telephone-event", 101, 8000)),
        id="pcma-and-te",
    ),
    pytest.param(
        answer("m=audio 5000 RTP/AVP 0 98", "a=rtpmap:98 telephone-event/8000", "a=ptime:30"),
        negotiated(PCMU, 5000, "198.51.100.30", Codec("telephone-event", 98, 8000), ptime=30),
        id="te-renumbered-ptime-30",
    ),
    pytest.param(
        answer("m=audio 5000 RTP/AVP 97 8", "a=rtpmap:97 pcmu/8000", "a=recvonly"),
        negotiated(
            Codec("pcmu", 97, 8000),
            5000,
            "198.51.100.30",
            direction="sendonly",
            remote="recvonly",
        ),
        id="codec-renumbered-recvonly",
    ),
    pytest.param(
        answer("m=audio 5000 RTP/AVP 0", "a=sendonly", c="c=IN IP4 0.0.0.0"),
        negotiated(PCMU, 5000, "0.0.0.0", direction="recvonly", remote="sendonly"),
        id="answer-holds",
    ),
    pytest.param(answer("m=audio 0 RTP/AVP 0"), None, id="rejected"),
    pytest.param(answer("m=audio 5000 RTP/AVP 18"), None, id="nothing-in-common"),
    pytest.param(answer("m=audio 5000 RTP/SAVP 0"), None, id="other-protocol"),
    pytest.param(answer("m=video 5000 RTP/AVP 0"), None, id="not-audio"),
    pytest.param(sdp("v=0", "o=- 3 3 IN IP4 198.51.100.30", "s=-"), None, id="no-m-lines"),
]


@pytest.mark.parametrize(("data", "expected"), ANSWERS)
def test_accept_answer(data: bytes, expected: Negotiated | None) -> None:
    assert accept_answer(OUR_OFFER, parse_sdp(data)) == expected


def test_accept_answer_with_our_sendonly_offer() -> None:
    held = offer_sdp(
        address="203.0.113.50", port=40000, session_id=1, session_version=2, direction="sendonly"
    )
    result = accept_answer(held, parse_sdp(answer("m=audio 5000 RTP/AVP 0", "a=recvonly")))
    assert result == negotiated(
        PCMU, 5000, "198.51.100.30", direction="sendonly", remote="recvonly"
    )
