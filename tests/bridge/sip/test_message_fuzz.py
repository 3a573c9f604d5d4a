"""Fuzzing the SIP parsers: nothing but SipParseError, on any input; what parses round-trips.

Over 100,000 generated inputs in all (derandomized, so every run sees the same ones):
random bytes, mutations of valid messages, and random text for each value parser.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from voxgate.bridge.sip.headers import format_params
from voxgate.bridge.sip.message import (
    Request,
    parse_cseq,
    parse_message,
    parse_name_addr,
    parse_params,
    parse_uri,
    parse_via,
)
from voxgate.errors import SipParseError

MESSAGE_EXAMPLES = 50_000
VALUE_EXAMPLES = 2_500


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


SEEDS = [
    crlf(
        "INVITE sip:bob@example.com;transport=udp SIP/2.0\n"
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK74bf9;rport, SIP/2.0/TCP [2001:db8::1]\n"
        "Max-Forwards: 70\n"
        'f: "Al \\"ice\\"" <sip:alice@example.com>;tag=9fxced76sl\n'
        "To: sip:bob@example.com\n"
        "i: 3848276298220188511@192.0.2.1\n"
        "CSeq: 1\n"
        " INVITE\n"
        "Contact: <sip:alice@192.0.2.1:5060>;expires=60, *\n"
        "Route: <sip:p1.example.com;lr>\n"
        "c: application/sdp\n"
        "l: 24\n"
        "\n"
        "v=0\n"
        "o=- 1 1 IN IP4 192.0.2.1\n"
    ),
    crlf(
        "SIP/2.0 183 Session Progress\n"
        "v: SIP/2.0/UDP h;branch=z9hG4bKx;received=192.0.2.7\n"
        "From: <tel:+15551234567>;tag=1\n"
        "To: <sip:b@h?Subject=x>;tag=2\n"
        "Call-ID: c@h\n"
        "CSeq: 7 INVITE\n"
        "Record-Route: <sip:a@b;lr>,<sip:c@d;lr>\n"
        'WWW-Authenticate: Digest realm="a, b", nonce="n"\n'
        "\n"
        "body"
    ),
]

# Bytes a mutation inserts: the characters SIP syntax turns on, line breaks, bad UTF-8.
PIECES = [
    b"\r\n", b"\n", b"\r", b" ", b"\t", b"\r\n ", b";", b",", b":", b"<", b">", b'"', b"\\",
    b"%", b"=", b"@", b"/", b"?", b"[", b"]", b"-", b"0", b"9", b"\x00", b"\xff", b"\xc3",
    b"\xe2\x98\x8e", b"SIP/2.0", b"sip:", b"Via: ", b"l: 99\r\n", b"\r\n\r\n",
]  # fmt: skip


def mutate(data: bytes, program: bytes) -> bytes:
    """Apply the mutations ``program`` spells, 4 bytes each: what, where (2 bytes), with what.

    Mostly bit flips and insertions of SIP's syntax characters; some deletions, few
    truncations (nearly all of which would cut the empty line and stop at the first check).
    """
    for index in range(0, len(program) - 3, 4):
        kind, high, low, choice = program[index : index + 4]
        at = ((high << 8) | low) % (len(data) + 1)
        piece = bytes([choice]) if choice >= 224 else PIECES[choice % len(PIECES)]
        if kind % 16 < 6 and at < len(data):  # flip low bits: ASCII stays ASCII
            data = data[:at] + bytes([data[at] ^ (choice & 0x3F | 1)]) + data[at + 1 :]
        elif kind % 16 < 12:
            data = data[:at] + piece + data[at:]
        elif kind % 16 < 15:
            data = data[:at] + data[at + 1 + choice % 8 :]
        else:
            data = data[:at]
    return data


def assert_parses_or_refuses(data: bytes) -> None:
    """parse_message raises SipParseError only; a parsed message re-serializes to itself."""
    try:
        message = parse_message(data)
    except SipParseError:
        return
    again = parse_message(message.serialize())
    assert type(again) is type(message)
    if isinstance(message, Request):
        assert isinstance(again, Request)
        assert (again.method, again.uri) == (message.method, message.uri)
    else:
        assert not isinstance(again, Request)
        assert (again.status, again.reason) == (message.status, message.reason)
    without_length = [item for item in message.headers.items() if item[0] != "Content-Length"]
    assert [item for item in again.headers.items() if item[0] != "Content-Length"] == without_length
    assert again.body == message.body


def test_the_seeds_parse() -> None:
    for seed in SEEDS:
        parse_message(seed)


# One byte string per example: Hypothesis' own cost per example grows with each draw, and
# here it dwarfs the parser's.
@settings(max_examples=MESSAGE_EXAMPLES, deadline=None, derandomize=True)
@given(st.binary(max_size=100))
def test_random_bytes(data: bytes) -> None:
    """Random bytes; when the first byte is odd, after the start of a real INVITE."""
    if data[:1] and data[0] % 2:
        data = SEEDS[0][:80] + data[1:]
    assert_parses_or_refuses(data)


@settings(max_examples=MESSAGE_EXAMPLES, deadline=None, derandomize=True)
@given(st.binary(min_size=5, max_size=17))
def test_mutated_valid_messages(program: bytes) -> None:
    """A seed (chosen by the first byte) with 1 to 4 mutations (the other bytes)."""
    assert_parses_or_refuses(mutate(SEEDS[program[0] % len(SEEDS)], program[1:]))


SIP_TEXT = st.text(
    st.one_of(
        st.sampled_from(
            list("sip:tel@;=?&<>\"\\, \t[]:/.%0123456789abcdefABCDEF-_+~*!'()#SIP/UDP")
        ),
        st.characters(),
    ),
    max_size=40,
)
PREFIXED = st.one_of(
    SIP_TEXT,
    st.builds(
        lambda prefix, text: prefix + text,
        st.sampled_from(["sip:", '"a" <sip:', "SIP/2.0/"]),
        SIP_TEXT,
    ),
)


def refuses_or_round_trips(parse: Callable[[str], object], text: str) -> None:
    try:
        value = parse(text)
    except SipParseError:
        return
    assert parse(str(value)) == value


@settings(max_examples=VALUE_EXAMPLES, deadline=None, derandomize=True)
@given(PREFIXED)
def test_random_uri_text(text: str) -> None:
    refuses_or_round_trips(parse_uri, text)


@settings(max_examples=VALUE_EXAMPLES, deadline=None, derandomize=True)
@given(PREFIXED)
def test_random_name_addr_text(text: str) -> None:
    refuses_or_round_trips(parse_name_addr, text)


@settings(max_examples=VALUE_EXAMPLES, deadline=None, derandomize=True)
@given(PREFIXED)
def test_random_via_text(text: str) -> None:
    refuses_or_round_trips(parse_via, text)


@settings(max_examples=VALUE_EXAMPLES, deadline=None, derandomize=True)
@given(SIP_TEXT)
def test_random_params_and_cseq_text(text: str) -> None:
    refuses_or_round_trips(lambda text: FormattedParams(parse_params(text)), text)
    refuses_or_round_trips(lambda text: FormattedCSeq(parse_cseq(text)), text)


class FormattedParams(dict[str, str | None]):
    def __str__(self) -> str:
        return format_params(self)


class FormattedCSeq(tuple[int, str]):
    def __str__(self) -> str:
        return f"{self[0]} {self[1]}"
