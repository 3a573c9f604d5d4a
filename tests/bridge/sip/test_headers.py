"""The header multi-map and the shared value helpers: names, list splitting, params, CSeq."""

from __future__ import annotations

import pytest

from voxgate.bridge.sip.headers import (
    COMPACT_FORMS,
    Headers,
    bounded_int,
    canonical_name,
    format_params,
    is_token,
    parse_cseq,
    parse_params,
    split_outside_quotes,
)
from voxgate.errors import SipParseError

# --- Names ------------------------------------------------------------------------------------

# (name as written, name as stored)
NAMES = [
    *[(compact, long) for compact, long in COMPACT_FORMS.items()],
    *[(compact.upper(), long) for compact, long in COMPACT_FORMS.items()],
    ("VIA", "Via"),
    ("call-id", "Call-ID"),
    ("CALL-ID", "Call-ID"),
    ("cseq", "CSeq"),
    ("www-authenticate", "WWW-Authenticate"),
    ("record-route", "Record-Route"),
    ("max-forwards", "Max-Forwards"),
    ("content-type", "Content-Type"),
    ("rack", "RAck"),
    ("mime-version", "MIME-Version"),
    ("X-Custom-Thing", "X-Custom-Thing"),
    ("x-custom-thing", "x-custom-thing"),
    ("C%6Fntact", "C%6Fntact"),
]


@pytest.mark.parametrize(("written", "stored"), NAMES)
def test_canonical_name(written: str, stored: str) -> None:
    assert canonical_name(written) == stored
    assert Headers([(written, "x")]).items() == [(stored, "x")]


def test_the_compact_forms_of_rfc_3261_and_later() -> None:
    assert COMPACT_FORMS == {
        "i": "Call-ID",
        "m": "Contact",
        "e": "Content-Encoding",
        "l": "Content-Length",
        "c": "Content-Type",
        "f": "From",
        "s": "Subject",
        "k": "Supported",
        "t": "To",
        "v": "Via",
        "o": "Event",
        "r": "Refer-To",
        "b": "Referred-By",
        "u": "Allow-Events",
        "x": "Session-Expires",
        "y": "Identity",
        "a": "Accept-Contact",
        "j": "Reject-Contact",
        "d": "Request-Disposition",
        "n": "Identity-Info",
    }


@pytest.mark.parametrize(
    ("text", "token"),
    [("INVITE", True), ("a-b.c!d%e*f_g+h`i'j~k", True), ("", False), ("a b", False)]
    + [(f"a{char}b", False) for char in '@:;,"<>()/[]?={}\\\t\x00é'],
)
def test_is_token(text: str, token: bool) -> None:
    assert is_token(text) is token


# --- Lookups and list splitting --------------------------------------------------------------

# (stored fields, name asked for, get_all)
LOOKUPS: list[tuple[list[tuple[str, str]], str, list[str]]] = [
    (
        [("Via", "SIP/2.0/UDP a, SIP/2.0/UDP b"), ("v", "SIP/2.0/TCP c")],
        "via",
        ["SIP/2.0/UDP a", "SIP/2.0/UDP b", "SIP/2.0/TCP c"],
    ),
    (
        [("Contact", '"Bell, Alexander" <sip:a@b;x=1,2>;q=0.5, <sip:c@d>')],
        "m",
        ['"Bell, Alexander" <sip:a@b;x=1,2>;q=0.5', "<sip:c@d>"],
    ),
    ([("Route", "<sip:p1;lr>,<sip:p2;lr>")], "Route", ["<sip:p1;lr>", "<sip:p2;lr>"]),
    ([("Allow", "INVITE, ACK ,CANCEL,,")], "allow", ["INVITE", "ACK", "CANCEL"]),
    ([("k", "timer, 100rel"), ("Supported", "path")], "Supported", ["timer", "100rel", "path"]),
    ([("Supported", "")], "Supported", []),
    (
        [("Warning", '399 h "a, b", 301 h "c \\" ,"')],
        "Warning",
        ['399 h "a, b"', '301 h "c \\" ,"'],
    ),
    ([("Accept", 'a/b;x="unterminated, c/d')], "Accept", ['a/b;x="unterminated, c/d']),
    # Not lists: the authentication headers (their params hold commas), Date, unknown names.
    (
        [("WWW-Authenticate", 'Digest realm="a", nonce="b", qop="auth,auth-int"')],
        "www-authenticate",
        ['Digest realm="a", nonce="b", qop="auth,auth-int"'],
    ),
    (
        [("Authorization", 'Digest username="u", response="r"')],
        "Authorization",
        ['Digest username="u", response="r"'],
    ),
    ([("Proxy-Authenticate", "Digest a=1, b=2")], "Proxy-Authenticate", ["Digest a=1, b=2"]),
    ([("Proxy-Authorization", "Digest a=1, b=2")], "Proxy-Authorization", ["Digest a=1, b=2"]),
    ([("Date", "Sat, 15 Oct 2005 04:44:56 GMT")], "Date", ["Sat, 15 Oct 2005 04:44:56 GMT"]),
    ([("X-List", "a, b"), ("x-list", "c")], "X-LIST", ["a, b", "c"]),
    ([("Subject", "")], "s", [""]),
    ([("To", "sip:a@b")], "From", []),
]


@pytest.mark.parametrize(("fields", "name", "values"), LOOKUPS)
def test_get_all_splits_list_headers_outside_quotes_and_angles(
    fields: list[tuple[str, str]], name: str, values: list[str]
) -> None:
    headers = Headers(fields)
    assert headers.get_all(name) == values
    assert headers.get(name) == (values[0] if values else None)


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("a,b", ["a", "b"]),
        (' "x,y" ,<u,v>, w', [' "x,y" ', "<u,v>", " w"]),
        ('"a\\",b",c', ['"a\\",b"', "c"]),
        ("a>,b", ["a>", "b"]),
        ("", [""]),
    ],
)
def test_split_outside_quotes(text: str, parts: list[str]) -> None:
    assert split_outside_quotes(text, ",") == parts


# --- Mutators ---------------------------------------------------------------------------------

START = [("Via", "v1"), ("From", "f"), ("Via", "v2"), ("X-A", "1")]


def test_add_appends() -> None:
    headers = Headers(START)
    headers.add("v", "v3")
    assert headers.items() == [*START, ("Via", "v3")]


def test_prepend_goes_before_the_first_of_its_name_or_on_top() -> None:
    headers = Headers(START)
    headers.prepend("VIA", "v0")
    headers.prepend("Route", "<sip:r>")
    assert headers.items() == [
        ("Route", "<sip:r>"),
        ("Via", "v0"),
        ("Via", "v1"),
        ("From", "f"),
        ("Via", "v2"),
        ("X-A", "1"),
    ]


def test_set_replaces_every_field_of_its_name_where_the_first_was() -> None:
    headers = Headers(START)
    headers.set("via", "only")
    headers.set("Max-Forwards", "70")
    assert headers.items() == [("Via", "only"), ("From", "f"), ("X-A", "1"), ("Max-Forwards", "70")]


def test_remove_and_contains() -> None:
    headers = Headers(START)
    assert "v" in headers
    assert "x-a" in headers
    assert 42 not in headers
    headers.remove("V")
    headers.remove("Absent")
    assert "Via" not in headers
    assert headers.items() == [("From", "f"), ("X-A", "1")]
    assert len(headers) == 2


def test_copy_is_independent() -> None:
    headers = Headers(START)
    duplicate = headers.copy()
    duplicate.add("To", "t")
    assert headers.items() == START
    assert duplicate == Headers([*START, ("To", "t")])
    assert headers != duplicate
    assert headers != START


@pytest.mark.parametrize(
    ("name", "value"),
    [("X-A", "a\r\nVia: smuggled"), ("X-A", "a\nb"), ("X-A", "a\rb"), ("Bad Name", "v"), ("", "v")],
)
def test_mutators_refuse_line_breaks_and_bad_names(name: str, value: str) -> None:
    headers = Headers()
    for mutate in (headers.add, headers.prepend, headers.set):
        with pytest.raises(SipParseError):
            mutate(name, value)
    with pytest.raises(SipParseError):
        Headers([(name, value)])
    assert headers.items() == []


# --- Parameters --------------------------------------------------------------------------------

# (canonical text, parameters): parse_params(text) == params and format_params(params) == text
PARAMS: list[tuple[str, dict[str, str | None]]] = [
    ("", {}),
    (";tag=1", {"tag": "1"}),
    (";lr", {"lr": None}),
    (
        ";branch=z9hG4bK776;received=192.0.2.1;rport",
        {"branch": "z9hG4bK776", "received": "192.0.2.1", "rport": None},
    ),
    (
        ';+sip.instance="<urn:uuid:00000000-0000-1000-8000-000a95a0e128>";reg-id=1',
        {"+sip.instance": '"<urn:uuid:00000000-0000-1000-8000-000a95a0e128>"', "reg-id": "1"},
    ),
    (';x="a;b\\"c"', {"x": '"a;b\\"c"'}),
    (
        ";received=2001:db8::9;maddr=[2001:db8::1]",
        {"received": "2001:db8::9", "maddr": "[2001:db8::1]"},
    ),
]


@pytest.mark.parametrize(("text", "params"), PARAMS)
def test_params_both_ways(text: str, params: dict[str, str | None]) -> None:
    assert parse_params(text) == params
    assert format_params(params) == text


# (lenient text, what it parses to)
LENIENT_PARAMS: list[tuple[str, dict[str, str | None]]] = [
    ("  ;  TAG =  1 ; LR ", {"tag": "1", "lr": None}),
    (";tag=1;tag=2", {"tag": "1"}),  # the first wins
    ("   ", {}),
]


@pytest.mark.parametrize(("text", "params"), LENIENT_PARAMS)
def test_params_lenient_forms(text: str, params: dict[str, str | None]) -> None:
    assert parse_params(text) == params


@pytest.mark.parametrize(
    "text",
    [
        ";",
        ";;",
        ";a;;b",
        ";=1",
        ";a=",
        ';a="x',
        ";a b=1",
        ";a=b c",
        ";a=<x>",
        ";a=é",
        ",a=1",
        "tag=1",
    ],
)
def test_bad_params_are_refused(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_params(text)


# --- CSeq and numbers -------------------------------------------------------------------------

# (text, value)
CSEQS = [
    ("1 INVITE", (1, "INVITE")),
    ("  0009   ACK ", (9, "ACK")),
    ("2147483647 BYE", (2**31 - 1, "BYE")),
    ("0 RE%47IST%45R", (0, "RE%47IST%45R")),
    (f"{'0' * 5000}7 OPTIONS", (7, "OPTIONS")),
]


@pytest.mark.parametrize(("text", "value"), CSEQS)
def test_parse_cseq(text: str, value: tuple[int, str]) -> None:
    assert parse_cseq(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        "INVITE",
        "1",
        "1INVITE",
        "-1 INVITE",
        "2147483648 INVITE",
        "1 INV ITE",
        "\u0661 INVITE",
        "1 INVITE;x",
        "99999999999999999999999 INVITE",
        f"{'9' * 5000} INVITE",
    ],
)
def test_bad_cseq_is_refused(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_cseq(text)


@pytest.mark.parametrize("digits", ["", "-1", "+1", "1.0", "²", "\u0663", "1 ", "256", "1000"])
def test_bounded_int_refuses_what_is_not_a_small_ascii_number(digits: str) -> None:
    with pytest.raises(SipParseError):
        bounded_int(digits, 256, "value")


def test_bounded_int_accepts_leading_zeros() -> None:
    assert bounded_int("000255", 256, "value") == 255
