"""SIP messages: vectors both ways, lenient forms, every refusal, and response_to."""

from __future__ import annotations

import pytest

from voxgate.bridge.sip.message import (
    MAX_MESSAGE_BYTES,
    REASON_PHRASES,
    UNSUPPORTED_VERSION,
    Headers,
    Message,
    Request,
    Response,
    parse_message,
    response_to,
)
from voxgate.errors import ParseError, SipParseError


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


MANDATORY = [
    ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK74bf9"),
    ("From", '"Alice" <sip:alice@example.com>;tag=9fxced76sl'),
    ("To", "<sip:bob@example.com>"),
    ("Call-ID", "3848276298220188511@192.0.2.1"),
]
OFFER = crlf("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n")

# --- Both ways: parse_message(bytes) == value and value.serialize() == bytes ----------------

BOTH_WAYS: list[tuple[str, bytes, Message]] = [
    (
        "invite-with-sdp",
        crlf(
            "INVITE sip:bob@example.com SIP/2.0\n"
            "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK74bf9\n"
            "Max-Forwards: 70\n"
            'From: "Alice" <sip:alice@example.com>;tag=9fxced76sl\n'
            "To: <sip:bob@example.com>\n"
            "Call-ID: 3848276298220188511@192.0.2.1\n"
            "CSeq: 1 INVITE\n"
            "Contact: <sip:alice@192.0.2.1:5060>\n"
            "Content-Type: application/sdp\n"
            f"Content-Length: {len(OFFER)}\n"
            "\n"
        )
        + OFFER,
        Request(
            "INVITE",
            "sip:bob@example.com",
            Headers(
                [
                    MANDATORY[0],
                    ("Max-Forwards", "70"),
                    *MANDATORY[1:],
                    ("CSeq", "1 INVITE"),
                    ("Contact", "<sip:alice@192.0.2.1:5060>"),
                    ("Content-Type", "application/sdp"),
                    ("Content-Length", str(len(OFFER))),
                ]
            ),
            OFFER,
        ),
    ),
    (
        "ack-no-body",
        crlf(
            "ACK sip:bob@192.0.2.4 SIP/2.0\n"
            "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK74bf9\n"
            'From: "Alice" <sip:alice@example.com>;tag=9fxced76sl\n'
            "To: <sip:bob@example.com>\n"
            "Call-ID: 3848276298220188511@192.0.2.1\n"
            "CSeq: 1 ACK\n"
            "Content-Length: 0\n"
            "\n"
        ),
        Request(
            "ACK",
            "sip:bob@192.0.2.4",
            Headers([*MANDATORY, ("CSeq", "1 ACK"), ("Content-Length", "0")]),
        ),
    ),
    (
        "200-ok-two-vias",
        crlf(
            "SIP/2.0 200 OK\n"
            "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bK1, SIP/2.0/UDP 192.0.2.1\n"
            "Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK2\n"
            "From: <sip:alice@example.com>;tag=1\n"
            "To: <sip:bob@example.com>;tag=2\n"
            "Call-ID: c@h\n"
            "CSeq: 7 BYE\n"
            "Content-Length: 0\n"
            "\n"
        ),
        Response(
            200,
            "OK",
            Headers(
                [
                    ("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bK1, SIP/2.0/UDP 192.0.2.1"),
                    ("Via", "SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK2"),
                    ("From", "<sip:alice@example.com>;tag=1"),
                    ("To", "<sip:bob@example.com>;tag=2"),
                    ("Call-ID", "c@h"),
                    ("CSeq", "7 BYE"),
                    ("Content-Length", "0"),
                ]
            ),
        ),
    ),
    (
        "utf8-reason-and-unknown-header",
        crlf(
            "SIP/2.0 486 Occupé, rappelez\n"
            "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK74bf9\n"
            'From: "Alice" <sip:alice@example.com>;tag=9fxced76sl\n'
            "To: <sip:bob@example.com>\n"
            "Call-ID: 3848276298220188511@192.0.2.1\n"
            "CSeq: 1 INVITE\n"
            "x-Vendor-ID: ☎ 42\n"
            "Content-Length: 0\n"
            "\n"
        ),
        Response(
            486,
            "Occupé, rappelez",
            Headers(
                [
                    *MANDATORY,
                    ("CSeq", "1 INVITE"),
                    ("x-Vendor-ID", "☎ 42"),
                    ("Content-Length", "0"),
                ]
            ),
        ),
    ),
    (
        "empty-reason",
        crlf(
            "SIP/2.0 100 \n"
            "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK74bf9\n"
            'From: "Alice" <sip:alice@example.com>;tag=9fxced76sl\n'
            "To: <sip:bob@example.com>\n"
            "Call-ID: 3848276298220188511@192.0.2.1\n"
            "CSeq: 1 INVITE\n"
            "Content-Length: 0\n"
            "\n"
        ),
        Response(100, "", Headers([*MANDATORY, ("CSeq", "1 INVITE"), ("Content-Length", "0")])),
    ),
]


@pytest.mark.parametrize(
    ("data", "message"), [c[1:] for c in BOTH_WAYS], ids=[c[0] for c in BOTH_WAYS]
)
def test_bytes_parse_to_the_message(data: bytes, message: Message) -> None:
    assert parse_message(data) == message


@pytest.mark.parametrize(
    ("data", "message"), [c[1:] for c in BOTH_WAYS], ids=[c[0] for c in BOTH_WAYS]
)
def test_message_serializes_to_the_bytes(data: bytes, message: Message) -> None:
    assert message.serialize() == data


# --- Parse only: lenient or non-canonical input -------------------------------------------------

OPTIONS_HEAD = (
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK74bf9\n"
    'From: "Alice" <sip:alice@example.com>;tag=9fxced76sl\n'
    "To: <sip:bob@example.com>\n"
    "Call-ID: 3848276298220188511@192.0.2.1\n"
    "CSeq: 2 OPTIONS\n"
)
OPTIONS_FIELDS = [*MANDATORY, ("CSeq", "2 OPTIONS")]


def options(*extra: tuple[str, str], body: bytes = b"") -> Request:
    return Request("OPTIONS", "sip:bob@example.com", Headers([*OPTIONS_FIELDS, *extra]), body)


LENIENT: list[tuple[str, bytes, Message]] = [
    (
        "bare-lf-line-ends",
        f"OPTIONS sip:bob@example.com SIP/2.0\n{OPTIONS_HEAD}l: 0\n\n".encode(),
        options(("Content-Length", "0")),
    ),
    (
        "mixed-line-ends",
        f"OPTIONS sip:bob@example.com SIP/2.0\r\n{OPTIONS_HEAD}\r\n".encode(),
        options(),
    ),
    (
        "crlfs-before-the-start-line",
        b"\r\n\r\n\n" + crlf(f"OPTIONS sip:bob@example.com SIP/2.0\n{OPTIONS_HEAD}\n"),
        options(),
    ),
    (
        "compact-forms-and-space-before-colon",
        crlf(
            "OPTIONS sip:bob@example.com SIP/2.0\n"
            "v : SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK74bf9\n"
            'f:"Alice" <sip:alice@example.com>;tag=9fxced76sl\n'
            "t\t:\t<sip:bob@example.com>\n"
            "i:   3848276298220188511@192.0.2.1   \n"
            "cseq: 2 OPTIONS\n"
            "k: timer\n"
            "\n"
        ),
        options(("Supported", "timer")),
    ),
    (
        "folded-values-joined-with-one-space",
        crlf(
            f"OPTIONS sip:bob@example.com SIP/2.0\n{OPTIONS_HEAD}"
            "Subject: lunch\n"
            "   at\n"
            "\tnoon  \n"
            "Allow: INVITE,\n"
            " ACK\n"
            "\n"
        ),
        options(("Subject", "lunch at noon"), ("Allow", "INVITE, ACK")),
    ),
    (
        "no-content-length-body-is-the-rest",
        crlf(f"OPTIONS sip:bob@example.com SIP/2.0\n{OPTIONS_HEAD}\n") + b"rest\r\n\r\nof it",
        options(body=b"rest\r\n\r\nof it"),
    ),
    (
        "body-cut-to-content-length",
        crlf(f"OPTIONS sip:bob@example.com SIP/2.0\n{OPTIONS_HEAD}Content-Length: 004\n\n")
        + b"abcdef",
        options(("Content-Length", "004"), body=b"abcd"),
    ),
    (
        "lower-case-version",
        crlf(f"OPTIONS sip:bob@example.com sip/2.0\n{OPTIONS_HEAD}\n"),
        options(),
    ),
    (
        "contact-wildcard",
        crlf(
            "REGISTER sip:example.com SIP/2.0\n"
            f"{OPTIONS_HEAD.replace('2 OPTIONS', '3 REGISTER')}"
            "Contact: *\n"
            "Expires: 0\n"
            "\n"
        ),
        Request(
            "REGISTER",
            "sip:example.com",
            Headers([*MANDATORY, ("CSeq", "3 REGISTER"), ("Contact", "*"), ("Expires", "0")]),
        ),
    ),
    (
        "status-line-without-reason",
        crlf("SIP/2.0 200\n" + OPTIONS_HEAD + "\n"),
        Response(200, "", Headers(OPTIONS_FIELDS)),
    ),
]


@pytest.mark.parametrize(("data", "message"), [c[1:] for c in LENIENT], ids=[c[0] for c in LENIENT])
def test_lenient_input_parses(data: bytes, message: Message) -> None:
    assert parse_message(data) == message


def test_a_message_of_the_maximum_size_parses() -> None:
    head = crlf(f"OPTIONS sip:bob@example.com SIP/2.0\n{OPTIONS_HEAD}\n")
    data = head + b"x" * (MAX_MESSAGE_BYTES - len(head))
    assert len(parse_message(data).body) == MAX_MESSAGE_BYTES - len(head)
    with pytest.raises(SipParseError, match="exceeds"):
        parse_message(data + b"x")


# --- Serialize only: Content-Length is always the body's ---------------------------------------

SERIALIZE: list[tuple[str, Message, bytes]] = [
    (
        "content-length-added-at-the-end",
        Request(
            "MESSAGE",
            "sip:bob@example.com",
            Headers([("v", "SIP/2.0/UDP h"), ("c", "text/plain")]),
            b"hi",
        ),
        crlf("MESSAGE sip:bob@example.com SIP/2.0\nVia: SIP/2.0/UDP h\nContent-Type: text/plain\n")
        + b"Content-Length: 2\r\n\r\nhi",
    ),
    (
        "wrong-content-length-replaced-in-place-duplicates-dropped",
        Response(
            180,
            "Ringing",
            Headers([("l", "99"), ("To", "<sip:b@h>;tag=1"), ("Content-Length", "5")]),
        ),
        crlf("SIP/2.0 180 Ringing\nContent-Length: 0\nTo: <sip:b@h>;tag=1\n\n"),
    ),
    (
        "no-headers",
        Response(500, "Server Internal Error", Headers()),
        crlf("SIP/2.0 500 Server Internal Error\nContent-Length: 0\n\n"),
    ),
]


@pytest.mark.parametrize(
    ("message", "data"), [c[1:] for c in SERIALIZE], ids=[c[0] for c in SERIALIZE]
)
def test_serialize(message: Message, data: bytes) -> None:
    assert message.serialize() == data


def test_serialize_leaves_the_message_alone() -> None:
    message = Request("BYE", "sip:b@h", Headers([("Content-Length", "9")]), b"")
    message.serialize()
    assert message.headers.items() == [("Content-Length", "9")]


# --- Refusals -----------------------------------------------------------------------------------

REQUEST_LINE = "OPTIONS sip:bob@example.com SIP/2.0\n"


def with_head(start: str = REQUEST_LINE, extra: str = "", head: str = OPTIONS_HEAD) -> bytes:
    return crlf(f"{start}{head}{extra}\n")


# (id, bytes, what the error says)
REFUSED: list[tuple[str, bytes, str]] = [
    ("empty", b"", "empty message"),
    ("only-crlfs", b"\r\n\r\n", "empty message"),
    ("too-large", b"x" * (MAX_MESSAGE_BYTES + 1), "exceeds 65535"),
    ("no-empty-line", crlf(f"{REQUEST_LINE}{OPTIONS_HEAD}").rstrip(b"\n"), "no empty line"),
    ("no-empty-line-at-all", crlf(f"{REQUEST_LINE}{OPTIONS_HEAD}"), "no empty line"),
    ("bare-cr", with_head(extra="Subject: a\rb\n"), "CR without LF"),
    (
        "bad-utf8",
        with_head(extra="Subject: @@\n").replace(b"@@", b"\xc3\x28"),
        "not UTF-8",
    ),
    (
        "latin1",
        with_head(extra="Subject: caf\xe9\n").replace(b"caf\xc3\xa9", b"caf\xe9"),
        "not UTF-8",
    ),
    ("continuation-first", with_head(head=" folded\n" + OPTIONS_HEAD), "continuation line"),
    ("no-colon", with_head(extra="Subject lunch\n"), "malformed header line"),
    ("space-in-name", with_head(extra="Sub ject: lunch\n"), "malformed header line"),
    ("bad-name-char", with_head(extra="Sub@ject: lunch\n"), "malformed header line"),
    ("empty-name", with_head(extra=": lunch\n"), "malformed header line"),
    ("two-parts", with_head(start="OPTIONS sip:bob@example.com\n"), "request line"),
    ("four-parts", with_head(start="OPTIONS sip:bob@example.com SIP/2.0 x\n"), "request line"),
    ("leading-space", with_head(start=" OPTIONS sip:bob@example.com SIP/2.0\n"), "request line"),
    ("tab-separated", with_head(start="OPTIONS\tsip:bob@example.com\tSIP/2.0\n"), "request line"),
    ("method-not-token", with_head(start="OPT@ONS sip:bob@example.com SIP/2.0\n"), "not a token"),
    ("version-2.1", with_head(start="OPTIONS sip:bob@example.com SIP/2.1\n"), UNSUPPORTED_VERSION),
    (
        "version-garbage",
        with_head(start="OPTIONS sip:bob@example.com SIP/2\n"),
        "malformed request",
    ),
    ("http", with_head(start="GET /index.html HTTP/1.1\n"), "malformed request line"),
    ("uri-not-a-uri", with_head(start="OPTIONS bob SIP/2.0\n"), "malformed URI"),
    ("uri-bad-sip", with_head(start="OPTIONS sip:bob@ SIP/2.0\n"), "malformed host"),
    (
        "uri-headers",
        with_head(start="OPTIONS sip:b@h?Subject=x SIP/2.0\n"),
        "must not have headers",
    ),
    ("status-099", with_head(start="SIP/2.0 099 Early\n"), "malformed status code"),
    ("status-700", with_head(start="SIP/2.0 700 Late\n"), "malformed status code"),
    ("status-2-digits", with_head(start="SIP/2.0 20 OK\n"), "malformed status code"),
    ("status-4-digits", with_head(start="SIP/2.0 2000 OK\n"), "malformed status code"),
    ("status-not-digits", with_head(start="SIP/2.0 2x0 OK\n"), "malformed status code"),
    (
        "status-arabic-digits",
        with_head(start="SIP/2.0 \u0662\u0660\u0660 OK\n"),
        "malformed status",
    ),
    ("status-double-space", with_head(start="SIP/2.0  200 OK\n"), "malformed status code"),
    ("status-version-3", with_head(start="SIP/3.0 200 OK\n"), UNSUPPORTED_VERSION),
    ("status-version-garbage", with_head(start="SIP/x 200 OK\n"), "malformed status line"),
    ("content-length-text", with_head(extra="Content-Length: abc\n"), "not a number"),
    ("content-length-empty", with_head(extra="Content-Length:\n"), "not a number"),
    ("content-length-negative", with_head(extra="Content-Length: -1\n"), "negative Content-Length"),
    ("content-length-plus", with_head(extra="Content-Length: +1\n"), "not a number"),
    ("content-length-huge", with_head(extra=f"Content-Length: {'9' * 5000}\n"), "too large"),
    ("content-length-long", with_head(extra="l: 5\n") + b"abc", "truncated body"),
    ("content-length-twice", with_head(extra="l: 0\nContent-Length: 0\n"), "more than one Content"),
    (
        "missing-via",
        with_head(head=OPTIONS_HEAD.split("\n", 1)[1]),
        "missing mandatory header(s): Via",
    ),
    ("empty-via", with_head(head="Via:\n" + OPTIONS_HEAD.split("\n", 1)[1]), "header(s): Via"),
    (
        "missing-cseq",
        with_head(head=OPTIONS_HEAD.replace("CSeq: 2 OPTIONS\n", "")),
        "header(s): CSeq",
    ),
    (
        "response-missing-to",
        crlf("SIP/2.0 200 OK\nVia: SIP/2.0/UDP h\n\n"),
        "To, From, CSeq, Call-ID",
    ),
    ("two-froms", with_head(extra="f: <sip:x@y>;tag=2\n"), "more than one From"),
    ("two-call-ids", with_head(extra="i: other\n"), "more than one Call-ID"),
    (
        "call-id-with-space",
        with_head(head=OPTIONS_HEAD.replace("@192", " @192")),
        "malformed Call-ID",
    ),
    (
        "empty-call-id",
        with_head(head=OPTIONS_HEAD.replace("3848276298220188511@192.0.2.1", "")),
        "Call-ID",
    ),
    ("cseq-no-method", with_head(head=OPTIONS_HEAD.replace("2 OPTIONS", "2")), "malformed CSeq"),
    (
        "cseq-too-big",
        with_head(head=OPTIONS_HEAD.replace("2 OPTIONS", "2147483648 OPTIONS")),
        "too large",
    ),
    ("cseq-mismatch", with_head(head=OPTIONS_HEAD.replace("2 OPTIONS", "2 INVITE")), "CSeq method"),
    (
        "cseq-case-mismatch",
        with_head(head=OPTIONS_HEAD.replace("2 OPTIONS", "2 options")),
        "CSeq method",
    ),
    ("max-forwards-256", with_head(extra="Max-Forwards: 256\n"), "Max-Forwards 256 is too large"),
    ("max-forwards-text", with_head(extra="Max-Forwards: seventy\n"), "Max-Forwards"),
    ("bad-via", with_head(head=OPTIONS_HEAD.replace("SIP/2.0/UDP", "SIP/2.0")), "malformed Via"),
    ("bad-second-via", with_head(extra="Via: SIP/2.0/UDP h;;\n"), "bad parameter name"),
    (
        "bad-to",
        with_head(head=OPTIONS_HEAD.replace("<sip:bob@example.com>", "<sip:bob@")),
        "unterminated",
    ),
    ("bad-contact", with_head(extra="Contact: <sip:a@b>, sip:c@d?x=1\n"), "must be in <>"),
    ("bad-route", with_head(extra="Route: <sip:p1;lr>, <sip:p 2;lr>\n"), "malformed URI"),
    ("bad-record-route", with_head(extra="Record-Route: junk\n"), "malformed URI"),
]


@pytest.mark.parametrize(("data", "reason"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_malformed_message_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(SipParseError) as caught:
        parse_message(data)
    assert reason in str(caught.value)
    assert isinstance(caught.value, ParseError)
    assert isinstance(caught.value, ValueError)


# --- response_to ----------------------------------------------------------------------------------


def parse_request(data: bytes) -> Request:
    request = parse_message(data)
    assert isinstance(request, Request)
    return request


TWO_VIAS = "SIP/2.0/UDP proxy.example.com;branch=z9hG4bK1, SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK0"
INVITE = parse_request(
    crlf(
        "INVITE sip:bob@example.com SIP/2.0\n"
        f"Via: {TWO_VIAS}\n"
        "v: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKx\n"
        "Max-Forwards: 69\n"
        "Record-Route: <sip:proxy.example.com;lr>\n"
        'From: "Alice" <sip:alice@example.com>;tag=9fxced76sl\n'
        "To: sip:bob@example.com\n"
        "Call-ID: 3848276298220188511@192.0.2.1\n"
        "CSeq: 1 INVITE\n"
        "Timestamp: 54\n"
        "Contact: <sip:alice@192.0.2.1>\n"
        "Content-Type: application/sdp\n"
        f"Content-Length: {len(OFFER)}\n"
        "\n"
    )
    + OFFER
)


def test_response_copies_vias_from_to_call_id_cseq_and_tags_the_to() -> None:
    response = response_to(INVITE, 180, to_tag="b7c1")
    assert response.serialize() == crlf(
        "SIP/2.0 180 Ringing\n"
        f"Via: {TWO_VIAS}\n"
        "Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKx\n"
        'From: "Alice" <sip:alice@example.com>;tag=9fxced76sl\n'
        "To: <sip:bob@example.com>;tag=b7c1\n"
        "Call-ID: 3848276298220188511@192.0.2.1\n"
        "CSeq: 1 INVITE\n"
        "Content-Length: 0\n"
        "\n"
    )
    assert INVITE.headers.get("To") == "sip:bob@example.com"  # the request is untouched


def test_response_keeps_an_existing_to_tag() -> None:
    in_dialog = Request("BYE", INVITE.uri, INVITE.headers.copy())
    in_dialog.headers.set("To", "<sip:bob@example.com>;tag=first")
    response = response_to(in_dialog, 200, to_tag="second")
    assert response.headers.get("To") == "<sip:bob@example.com>;tag=first"


def test_trying_copies_the_timestamp_and_has_no_to_tag() -> None:
    trying = response_to(INVITE, 100)
    assert (trying.status, trying.reason) == (100, "Trying")
    assert trying.headers.get("Timestamp") == "54"
    assert trying.headers.get("To") == "sip:bob@example.com"
    assert "Timestamp" not in response_to(INVITE, 200, to_tag="t").headers


def test_response_leaves_out_what_the_dialog_layer_adds() -> None:
    names = {name for name, _ in response_to(INVITE, 200, to_tag="t").headers.items()}
    assert names == {"Via", "From", "To", "Call-ID", "CSeq"}


def test_response_reason_default_and_override() -> None:
    assert response_to(INVITE, 299).reason == "Success"
    assert response_to(INVITE, 699).reason == "Global Failure"
    assert response_to(INVITE, 486, "Gone Fishing").reason == "Gone Fishing"
    assert response_to(INVITE, 200, "").reason == ""


@pytest.mark.parametrize("status", [0, 99, 700, -200])
def test_response_status_out_of_range(status: int) -> None:
    with pytest.raises(ValueError, match="100-699"):
        response_to(INVITE, status)


def test_response_parses_back() -> None:
    response = response_to(INVITE, 486, to_tag="x")
    assert parse_message(response.serialize()) == Response(
        486, "Busy Here", Headers([*response.headers.items(), ("Content-Length", "0")])
    )


# (code, standard phrase): the codes a UA sends or meets most
PHRASES = [
    (100, "Trying"),
    (180, "Ringing"),
    (181, "Call Is Being Forwarded"),
    (182, "Queued"),
    (183, "Session Progress"),
    (200, "OK"),
    (202, "Accepted"),
    (400, "Bad Request"),
    (401, "Unauthorized"),
    (403, "Forbidden"),
    (404, "Not Found"),
    (405, "Method Not Allowed"),
    (406, "Not Acceptable"),
    (407, "Proxy Authentication Required"),
    (408, "Request Timeout"),
    (413, "Request Entity Too Large"),
    (415, "Unsupported Media Type"),
    (416, "Unsupported URI Scheme"),
    (420, "Bad Extension"),
    (421, "Extension Required"),
    (480, "Temporarily Unavailable"),
    (481, "Call/Transaction Does Not Exist"),
    (482, "Loop Detected"),
    (483, "Too Many Hops"),
    (484, "Address Incomplete"),
    (486, "Busy Here"),
    (487, "Request Terminated"),
    (488, "Not Acceptable Here"),
    (491, "Request Pending"),
    (500, "Server Internal Error"),
    (501, "Not Implemented"),
    (502, "Bad Gateway"),
    (503, "Service Unavailable"),
    (504, "Server Time-out"),
    (505, "Version Not Supported"),
    (513, "Message Too Large"),
    (600, "Busy Everywhere"),
    (603, "Decline"),
    (604, "Does Not Exist Anywhere"),
    (606, "Not Acceptable"),
]


@pytest.mark.parametrize(("status", "phrase"), PHRASES)
def test_reason_phrase(status: int, phrase: str) -> None:
    assert REASON_PHRASES[status] == phrase
    assert response_to(INVITE, status).reason == phrase
