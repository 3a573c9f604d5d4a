"""URIs, name-addr and Via values: vectors both ways, lenient forms, refusals."""

from __future__ import annotations

import dataclasses

import pytest

from voxgate.bridge.sip.uri import (
    NameAddr,
    SipUri,
    Via,
    check_uri,
    parse_hostport,
    parse_name_addr,
    parse_uri,
    parse_via,
)
from voxgate.errors import SipParseError

# --- URIs ------------------------------------------------------------------------------------

# (canonical text, value): parse_uri(text) == value and str(value) == text
URIS = [
    ("sip:alice@example.com", SipUri("sip", "alice", "example.com")),
    ("sip:example.com", SipUri("sip", None, "example.com")),
    ("sip:192.0.2.4:5060", SipUri("sip", None, "192.0.2.4", 5060)),
    (
        "sips:alice:secret@example.com:5061;transport=tcp;lr?subject=hi&priority=",
        SipUri(
            "sips",
            "alice",
            "example.com",
            5061,
            {"transport": "tcp", "lr": None},
            {"subject": "hi", "priority": ""},
            "secret",
        ),
    ),
    ("sip:[2001:db8::1]:5070", SipUri("sip", None, "2001:db8::1", 5070)),
    (
        "sip:bob@[::ffff:192.0.2.1];maddr=[2001:db8::2]",
        SipUri("sip", "bob", "::ffff:192.0.2.1", None, {"maddr": "[2001:db8::2]"}),
    ),
    (
        "sip:+15551234567@gw.example.net;user=phone",
        SipUri("sip", "+15551234567", "gw.example.net", None, {"user": "phone"}),
    ),
    (
        "sip:user;par=u%40example.net@example.com",
        SipUri("sip", "user;par=u%40example.net", "example.com"),
    ),
    ("sip:%00%41@h_1.example.com", SipUri("sip", "%00%41", "h_1.example.com")),
    ("sip:a:@b", SipUri("sip", "a", "b", password="")),
    (
        "tel:+1-201-555-0123;phone-context=example.com",
        SipUri("tel", "+1-201-555-0123", "", None, {"phone-context": "example.com"}),
    ),
    ("tel:*67#", SipUri("tel", "*67#", "")),
]


@pytest.mark.parametrize(("text", "uri"), URIS, ids=[text for text, _ in URIS])
def test_uri_both_ways(text: str, uri: SipUri) -> None:
    assert parse_uri(text) == uri
    assert str(uri) == text


# (lenient or non-canonical text, value, canonical text)
LENIENT_URIS = [
    (
        "SIP:Alice@Example.COM;Transport=UDP",
        SipUri("sip", "Alice", "Example.COM", None, {"transport": "UDP"}),
        "sip:Alice@Example.COM;transport=UDP",
    ),
    ("sip:a@b:05060", SipUri("sip", "a", "b", 5060), "sip:a@b:5060"),
    ("sip:a@b;lr;LR=1", SipUri("sip", "a", "b", None, {"lr": None}), "sip:a@b;lr"),
    ("TEL:911", SipUri("tel", "911", ""), "tel:911"),
]


@pytest.mark.parametrize(("text", "uri", "canonical"), LENIENT_URIS)
def test_uri_lenient_forms(text: str, uri: SipUri, canonical: str) -> None:
    assert parse_uri(text) == uri
    assert str(uri) == canonical


BAD_URIS = [
    "",
    "sip",
    "sip:",
    ":a@b",
    "1sip:a@b",
    "http://example.com",
    "urn:service:sos",
    "sip:@example.com",
    "sip:a@",
    "sip:a@b:",
    "sip:a@b:65536",
    "sip:a@b:-1",
    "sip:a@b:x",
    "sip:a b@c",
    "sip:a@b c",
    " sip:a@b",
    "<sip:a@b>",
    "sip:a@b@c",
    "sip:a%zz@b",
    "sip:a@[::1",
    "sip:a@[zz::1]",
    "sip:a@[fe80::1%eth0]",
    "sip:a@::1",
    "sip:a@b;",
    "sip:a@b;x=",
    "sip:a@b;=x",
    "sip:a@b;x=a b",
    "sip:a@b?",
    "sip:a@b?h",
    "sip:a@b?=v",
    "sip:a@b?h=v&",
    "sip:a@exa*mple.com",
    "sip:a\u00e9@b",
    "tel:",
    "tel:xyz",
    "tel:+1;;x",
]


@pytest.mark.parametrize("text", BAD_URIS)
def test_bad_uri_is_refused(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_uri(text)


def test_check_uri_keeps_other_schemes_opaque() -> None:
    assert check_uri("urn:service:sos") is None
    assert check_uri("soap.beep://192.0.2.103:3002") is None
    assert check_uri("sip:a@b") == SipUri("sip", "a", "b")
    for text in ["urn:a b", "urn:", "nocolon", "urn:<x>", 'urn:"x"', "urn:\x00"]:
        with pytest.raises(SipParseError):
            check_uri(text)


@pytest.mark.parametrize(
    ("text", "hostport"),
    [
        ("h", ("h", None)),
        ("h:0", ("h", 0)),
        ("[::1]:65535", ("::1", 65535)),
        ("[::1]", ("::1", None)),
    ],
)
def test_parse_hostport(text: str, hostport: tuple[str, int | None]) -> None:
    assert parse_hostport(text) == hostport


def test_values_are_hashable_and_frozen() -> None:
    uri = parse_uri("sip:a@b;lr?x=1")
    assert {uri, parse_uri("sip:a@b;lr?x=1")} == {uri}
    assert len({NameAddr("sip:a@b", None, {"tag": "1"}), NameAddr("sip:a@b")}) == 2
    assert hash(parse_via("SIP/2.0/UDP h;rport")) == hash(Via("UDP", "h", None, {"rport": None}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        uri.host = "c"  # type: ignore[misc]


# --- name-addr ---------------------------------------------------------------------------------

# (canonical text, value): parse_name_addr(text) == value and str(value) == text
NAME_ADDRS = [
    ('"Bob" <sip:bob@example.com>;tag=1', NameAddr("sip:bob@example.com", "Bob", {"tag": "1"})),
    ("sip:bob@example.com", NameAddr("sip:bob@example.com")),
    ("<sip:bob@example.com;transport=tcp>", NameAddr("sip:bob@example.com;transport=tcp")),
    ("<sip:bob@example.com?Replaces=x>", NameAddr("sip:bob@example.com?Replaces=x")),
    (
        "<sip:bob@192.0.2.4>;expires=3600;q=0.5",
        NameAddr("sip:bob@192.0.2.4", None, {"expires": "3600", "q": "0.5"}),
    ),
    ('"Quote \\" and \\\\" <sip:a@b>', NameAddr("sip:a@b", 'Quote " and \\')),
    ('"" <sip:a@b>', NameAddr("sip:a@b", "")),
    ('"Zoë 山田" <sip:z@b>', NameAddr("sip:z@b", "Zoë 山田")),
    ('"bell\\\x07" <sip:a@b>', NameAddr("sip:a@b", "bell\x07")),
    ("<tel:+15551234567>;tag=x", NameAddr("tel:+15551234567", None, {"tag": "x"})),
    ("urn:service:sos", NameAddr("urn:service:sos")),
    (
        '<sip:a@b>;+sip.instance="<urn:uuid:f81d4fae>"',
        NameAddr("sip:a@b", None, {"+sip.instance": '"<urn:uuid:f81d4fae>"'}),
    ),
]


@pytest.mark.parametrize(("text", "value"), NAME_ADDRS, ids=[text for text, _ in NAME_ADDRS])
def test_name_addr_both_ways(text: str, value: NameAddr) -> None:
    assert parse_name_addr(text) == value
    assert str(value) == text


# (lenient or non-canonical text, value, canonical text)
LENIENT_NAME_ADDRS = [
    ("Bob <sip:b@h>", NameAddr("sip:b@h", "Bob"), '"Bob" <sip:b@h>'),
    ("  Bob   Smith<sip:b@h> ", NameAddr("sip:b@h", "Bob Smith"), '"Bob Smith" <sip:b@h>'),
    ("<sip:b@h>", NameAddr("sip:b@h"), "sip:b@h"),
    ("<sip:b@h> ; TAG = 1", NameAddr("sip:b@h", None, {"tag": "1"}), "<sip:b@h>;tag=1"),
    (
        "sip:b@h ;tag=1;lr",
        NameAddr("sip:b@h", None, {"tag": "1", "lr": None}),
        "<sip:b@h>;tag=1;lr",
    ),
    ('"Bob"<sip:b@h>', NameAddr("sip:b@h", "Bob"), '"Bob" <sip:b@h>'),
    ('sip:b@h;x="<"', NameAddr("sip:b@h", None, {"x": '"<"'}), '<sip:b@h>;x="<"'),
]


@pytest.mark.parametrize(("text", "value", "canonical"), LENIENT_NAME_ADDRS)
def test_name_addr_lenient_forms(text: str, value: NameAddr, canonical: str) -> None:
    assert parse_name_addr(text) == value
    assert str(value) == canonical


BAD_NAME_ADDRS = [
    "",
    "*",
    "<>",
    "<sip:a@b",
    "sip:a@b>",
    '"Bob <sip:a@b>',
    '"Bob" sip:a@b',
    "Bob, Jr <sip:a@b>",
    'Bob "J" <sip:a@b>',
    "< sip:a@b>",
    "<sip:a b@c>",
    "<notauri>",
    "sip:a@b?x=y",
    "sip:a@b,sip:c@d",
    "<sip:a@b>, <sip:c@d>",
    "<sip:a@b> junk",
    "<sip:a@b>;",
    "<sip:a@b>;tag=",
    "<sip:a@b>;;tag=1",
    "<sip:a@>",
    "sip:a@b c",
]


@pytest.mark.parametrize("text", BAD_NAME_ADDRS)
def test_bad_name_addr_is_refused(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_name_addr(text)


def test_tag_and_with_params() -> None:
    to = parse_name_addr("sip:bob@example.com")
    assert to.tag is None
    tagged = to.with_params(tag="a1b2")
    assert (tagged.tag, str(tagged)) == ("a1b2", "<sip:bob@example.com>;tag=a1b2")
    assert to.params == {}  # the original is untouched
    replaced = parse_name_addr('"A" <sip:a@b>;tag=1;x=2').with_params(TAG="9", lr=None)
    assert str(replaced) == '"A" <sip:a@b>;tag=9;x=2;lr'


# --- Via ---------------------------------------------------------------------------------------

# (canonical text, value): parse_via(text) == value and str(value) == text
VIAS = [
    (
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport",
        Via("UDP", "192.0.2.1", 5060, {"branch": "z9hG4bK776asdhds", "rport": None}),
    ),
    (
        "SIP/2.0/TLS [2001:db8::1]:5061;branch=z9hG4bKx;received=2001:db8::9",
        Via("TLS", "2001:db8::1", 5061, {"branch": "z9hG4bKx", "received": "2001:db8::9"}),
    ),
    (
        "SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKx",
        Via("WSS", "df7jal23ls0d.invalid", None, {"branch": "z9hG4bKx"}),
    ),
    (
        "SIP/2.0/UDP h;rport=5070;received=192.0.2.7;branch=z9hG4bKy",
        Via("UDP", "h", None, {"rport": "5070", "received": "192.0.2.7", "branch": "z9hG4bKy"}),
    ),
    ("SIP/2.0/TCP iftgw.example.com", Via("TCP", "iftgw.example.com")),
]


@pytest.mark.parametrize(("text", "via"), VIAS, ids=[text for text, _ in VIAS])
def test_via_both_ways(text: str, via: Via) -> None:
    assert parse_via(text) == via
    assert str(via) == text


# (lenient text, value, canonical text)
LENIENT_VIAS = [
    (
        " sip / 2.0 / udp  host : 5060 ; BRANCH = z9hG4bKx ",
        Via("UDP", "host", 5060, {"branch": "z9hG4bKx"}),
        "SIP/2.0/UDP host:5060;branch=z9hG4bKx",
    ),
    ("SIP/2.0/UDP\thost", Via("UDP", "host"), "SIP/2.0/UDP host"),
]


@pytest.mark.parametrize(("text", "via", "canonical"), LENIENT_VIAS)
def test_via_lenient_forms(text: str, via: Via, canonical: str) -> None:
    assert parse_via(text) == via
    assert str(via) == canonical


def test_via_branch() -> None:
    assert parse_via("SIP/2.0/UDP h;branch=z9hG4bK1").branch == "z9hG4bK1"
    assert parse_via("SIP/2.0/UDP h").branch is None


BAD_VIAS = [
    "",
    "SIP/2.0/UDP",
    "SIP/2.0 host",
    "SIP/2.0/UDPhost",
    "SIP/3.0/UDP h",
    "HTTP/2.0/UDP h",
    "SIP/2.0/UDP h:",
    "SIP/2.0/UDP h:99999",
    "SIP/2.0/UDP h:5060x",
    "SIP/2.0/UDP h;",
    "SIP/2.0/UDP h;branch=",
    "SIP/2.0/UDP h junk",
    "SIP/2.0/UDP [::1;branch=x",
    "SIP/2.0/UDP [zz]",
    "SIP/2.0/UDP h, SIP/2.0/UDP i",
    "SIP/2.0/U@P h",
]


@pytest.mark.parametrize("text", BAD_VIAS)
def test_bad_via_is_refused(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_via(text)
