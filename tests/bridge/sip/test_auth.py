"""Digest authentication: the RFCs' published vectors, header syntax both ways, a REGISTER
round trip, stateless nonces with stepped time."""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxgate.bridge.sip.auth import (
    Challenge,
    Credentials,
    DigestResponse,
    NonceSource,
    authorization,
    challenge_value,
    choose_challenge,
    parse_authorization,
    parse_challenge,
    verify,
)
from voxgate.errors import SipParseError

# --- the published vectors ----------------------------------------------------------------

ARABIC_INDIC_ONES = "\u0661" * 32  # digits to int(), not to a hex check
RFC2617_REALM = "testrealm@host.com"
RFC2617_NONCE = "dcd98b7102dd2f0e8b11d0f600bfb0c093"
RFC2617_OPAQUE = "5ccc069c403ebaf9f0171e9517f40e41"
RFC7616_REALM = "http-auth@example.org"
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"

# (challenge header, credentials, cnonce, Authorization value as authorization() writes it)
PUBLISHED = [
    pytest.param(
        f'Digest realm="{RFC2617_REALM}", qop="auth,auth-int", nonce="{RFC2617_NONCE}", '
        f'opaque="{RFC2617_OPAQUE}"',
        Credentials("Mufasa", "Circle Of Life"),
        "0a4f113b",
        f'Digest username="Mufasa", realm="{RFC2617_REALM}", nonce="{RFC2617_NONCE}", '
        'uri="/dir/index.html", response="6629fae49393a05397450978507c4ef1", algorithm=MD5, '
        f'qop=auth, nc=00000001, cnonce="0a4f113b", opaque="{RFC2617_OPAQUE}"',
        id="rfc2617-3.5-md5",
    ),
    pytest.param(
        f'Digest realm="{RFC7616_REALM}", qop="auth, auth-int", algorithm=MD5, '
        f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"',
        Credentials("Mufasa", "Circle of Life"),
        RFC7616_CNONCE,
        f'Digest username="Mufasa", realm="{RFC7616_REALM}", nonce="{RFC7616_NONCE}", '
        'uri="/dir/index.html", response="8ca523f5e9506fed4657c9700eebdbec", algorithm=MD5, '
        f'qop=auth, nc=00000001, cnonce="{RFC7616_CNONCE}", opaque="{RFC7616_OPAQUE}"',
        id="rfc7616-3.9.1-md5",
    ),
    pytest.param(
        f'Digest realm="{RFC7616_REALM}", qop="auth, auth-int", algorithm=SHA-256, '
        f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"',
        Credentials("Mufasa", "Circle of Life"),
        RFC7616_CNONCE,
        f'Digest username="Mufasa", realm="{RFC7616_REALM}", nonce="{RFC7616_NONCE}", '
        'uri="/dir/index.html", '
        'response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", '
        f'algorithm=SHA-256, qop=auth, nc=00000001, cnonce="{RFC7616_CNONCE}", '
        f'opaque="{RFC7616_OPAQUE}"',
        id="rfc7616-3.9.1-sha256",
    ),
]


@pytest.mark.parametrize(("header", "credentials", "cnonce", "expected"), PUBLISHED)
def test_published_responses(
    header: str, credentials: Credentials, cnonce: str, expected: str
) -> None:
    challenge = parse_challenge(header)
    value = authorization(
        challenge, credentials, method="GET", uri="/dir/index.html", cnonce=cnonce
    )
    assert value == expected


@pytest.mark.parametrize(("header", "credentials", "cnonce", "expected"), PUBLISHED)
def test_published_responses_verify(
    header: str, credentials: Credentials, cnonce: str, expected: str
) -> None:
    response = parse_authorization(expected)
    realm = parse_challenge(header).realm
    assert verify(response, password=credentials.password, method="GET", realm=realm)
    assert not verify(response, password="circle of life", method="GET", realm=realm)
    assert not verify(response, password=credentials.password, method="POST", realm=realm)


def test_rfc2617_authorization_as_the_rfc_prints_it() -> None:
    """RFC 2617 3.5's own header: other order, qop and nc unquoted, no algorithm."""
    header = (
        'Digest username="Mufasa",\t realm="testrealm@host.com", '
        f'nonce="{RFC2617_NONCE}", uri="/dir/index.html", qop=auth, nc=00000001, '
        'cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
        f'opaque="{RFC2617_OPAQUE}"'
    )
    response = parse_authorization(header)
    assert response == DigestResponse(
        username="Mufasa",
        realm=RFC2617_REALM,
        nonce=RFC2617_NONCE,
        uri="/dir/index.html",
        response="6629fae49393a05397450978507c4ef1",
        algorithm="MD5",
        qop="auth",
        nc="00000001",
        cnonce="0a4f113b",
        opaque=RFC2617_OPAQUE,
    )
    assert verify(response, password="Circle Of Life", method="GET", realm=RFC2617_REALM)
    shouting = replace(response, response=response.response.upper())
    assert verify(shouting, password="Circle Of Life", method="GET", realm=RFC2617_REALM)


# --- the other forms, checked against the formulas written out by hand ---------------------


def md5(text: str | bytes) -> str:
    return hashlib.md5(text.encode() if isinstance(text, str) else text).hexdigest()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


HA1 = md5("bob:sip.example.com:zanzibar")
HA2_REGISTER = md5("REGISTER:sip:sip.example.com")
BODY = b"v=0\r\n"

# (challenge, body, the response by RFC 7616 3.4.1 / RFC 2069, the tail of the header)
FORMS = [
    pytest.param(
        Challenge("sip.example.com", "n1"),
        b"",
        md5(f"{HA1}:n1:{HA2_REGISTER}"),
        "algorithm=MD5",
        id="md5-no-qop-rfc2069",
    ),
    pytest.param(
        Challenge("sip.example.com", "n1", qop=("auth-int",)),
        BODY,
        md5(
            f"{HA1}:n1:0000001f:c0ffee:auth-int:{md5(f'REGISTER:sip:sip.example.com:{md5(BODY)}')}"
        ),
        'algorithm=MD5, qop=auth-int, nc=0000001f, cnonce="c0ffee"',
        id="md5-auth-int-only",
    ),
    pytest.param(
        Challenge("sip.example.com", "n1", qop=("auth-int", "auth")),
        BODY,
        md5(f"{HA1}:n1:0000001f:c0ffee:auth:{HA2_REGISTER}"),
        'algorithm=MD5, qop=auth, nc=0000001f, cnonce="c0ffee"',
        id="auth-preferred-to-auth-int",
    ),
    pytest.param(
        Challenge("sip.example.com", "n1", "MD5-sess", ("auth",)),
        b"",
        md5(f"{md5(f'{HA1}:n1:c0ffee')}:n1:0000001f:c0ffee:auth:{HA2_REGISTER}"),
        'algorithm=MD5-sess, qop=auth, nc=0000001f, cnonce="c0ffee"',
        id="md5-sess",
    ),
    pytest.param(
        Challenge("sip.example.com", "n1", "SHA-256-sess", ("auth",), opaque="o"),
        b"",
        sha256(
            f"{sha256(sha256('bob:sip.example.com:zanzibar') + ':n1:c0ffee')}:n1:0000001f:c0ffee"
            f":auth:{sha256('REGISTER:sip:sip.example.com')}"
        ),
        'algorithm=SHA-256-sess, qop=auth, nc=0000001f, cnonce="c0ffee", opaque="o"',
        id="sha256-sess-opaque",
    ),
]


@pytest.mark.parametrize(("challenge", "body", "response", "tail"), FORMS)
def test_response_forms(challenge: Challenge, body: bytes, response: str, tail: str) -> None:
    value = authorization(
        challenge,
        Credentials("bob", "zanzibar"),
        method="REGISTER",
        uri="sip:sip.example.com",
        cnonce="c0ffee",
        nc=31,
        body=body,
    )
    assert value == (
        'Digest username="bob", realm="sip.example.com", nonce="n1", '
        f'uri="sip:sip.example.com", response="{response}", {tail}'
    )
    parsed = parse_authorization(value)
    assert verify(
        parsed, password="zanzibar", method="REGISTER", realm="sip.example.com", body=body
    )
    if "auth-int" in tail:
        assert not verify(
            parsed, password="zanzibar", method="REGISTER", realm="sip.example.com", body=b"v=1"
        )


def test_authorization_refuses_what_it_cannot_answer() -> None:
    secret = Credentials("bob", "hunter2-secret")
    with pytest.raises(SipParseError) as caught:
        authorization(
            Challenge("r", "n", qop=("auth-conf",)),
            secret,
            method="INVITE",
            uri="sip:a",
            cnonce="c",
        )
    assert "hunter2-secret" not in str(caught.value)
    with pytest.raises(SipParseError):
        authorization(
            Challenge("r", "n", "SHA-512"), secret, method="INVITE", uri="sip:a", cnonce="c"
        )
    with pytest.raises(ValueError, match="nc"):
        authorization(Challenge("r", "n"), secret, method="INVITE", uri="sip:a", cnonce="c", nc=0)


def test_credentials_keep_the_password_out_of_repr() -> None:
    credentials = Credentials("bob", "hunter2-secret")
    assert "hunter2-secret" not in repr(credentials)
    assert "hunter2-secret" not in str(credentials)


# --- challenge headers both ways -----------------------------------------------------------

# (value as challenge_value() writes it, its Challenge, challenge_value's arguments)
CHALLENGE_VECTORS = [
    pytest.param(
        'Digest realm="sip.example.com", nonce="abc", algorithm=MD5, qop="auth"',
        Challenge("sip.example.com", "abc", "MD5", ("auth",)),
        {"realm": "sip.example.com", "nonce": "abc"},
        id="defaults",
    ),
    pytest.param(
        'Digest realm="voxgate", nonce="n", algorithm=SHA-256, qop="auth,auth-int", '
        'opaque="xyz", stale=TRUE',
        Challenge("voxgate", "n", "SHA-256", ("auth", "auth-int"), "xyz", stale=True),
        {
            "realm": "voxgate",
            "nonce": "n",
            "algorithm": "sha-256",
            "qop": "auth,auth-int",
            "opaque": "xyz",
            "stale": True,
        },
        id="everything",
    ),
    pytest.param(
        'Digest realm="say \\"hi\\" \\\\ bye", nonce="n", algorithm=MD5-sess',
        Challenge('say "hi" \\ bye', "n", "MD5-sess"),
        {"realm": 'say "hi" \\ bye', "nonce": "n", "algorithm": "MD5-SESS", "qop": ""},
        id="escapes-no-qop",
    ),
]


@pytest.mark.parametrize(("value", "challenge", "arguments"), CHALLENGE_VECTORS)
def test_challenge_parses(value: str, challenge: Challenge, arguments: dict[str, object]) -> None:
    assert parse_challenge(value) == challenge


@pytest.mark.parametrize(("value", "challenge", "arguments"), CHALLENGE_VECTORS)
def test_challenge_value_writes(
    value: str, challenge: Challenge, arguments: dict[str, object]
) -> None:
    assert challenge_value(**arguments) == value  # type: ignore[arg-type]


def test_challenge_value_refuses_unknown_algorithms() -> None:
    with pytest.raises(ValueError, match="algorithm"):
        challenge_value(realm="r", nonce="n", algorithm="SHA-1")


# (challenge as servers write it, what it means)
CHALLENGES_SEEN = [
    pytest.param(
        'Digest realm="asterisk",nonce="1712345678/0a1b2c3d4e5f"',
        Challenge("asterisk", "1712345678/0a1b2c3d4e5f"),
        id="no-spaces-no-qop",
    ),
    pytest.param(
        '  digest   realm = "sip.telnyx.com" ,  nonce= "abc",algorithm =md5 ,qop = "auth"  ',
        Challenge("sip.telnyx.com", "abc", "MD5", ("auth",)),
        id="odd-spacing-lower-case-scheme-and-algorithm",
    ),
    pytest.param(
        'DIGEST realm="r",\tnonce="n", algorithm=sha-256-SESS, qop="auth,auth-int"',
        Challenge("r", "n", "SHA-256-sess", ("auth", "auth-int")),
        id="tab-and-mixed-case-sess",
    ),
    pytest.param(
        'Digest realm="r", nonce="n", qop=" Auth , auth-conf,auth-int "',
        Challenge("r", "n", qop=("auth", "auth-conf", "auth-int")),
        id="qop-list-with-spaces-and-unknown",
    ),
    pytest.param(
        'Digest realm="r", nonce=abc/def==, qop=auth, stale=true, domain="sip:a sip:b",,',
        Challenge("r", "abc/def==", qop=("auth",), stale=True),
        id="unquoted-values-unknown-param-empty-elements",
    ),
    pytest.param(
        'Digest realm="", nonce="", stale=FALSE, opaque=""',
        Challenge("", "", opaque="", stale=False),
        id="empty-strings",
    ),
    pytest.param(
        'Digest realm="réseau", nonce="n", charset=UTF-8, userhash=false',
        Challenge("réseau", "n"),
        id="utf8-realm-rfc7616-extras",
    ),
]


@pytest.mark.parametrize(("value", "challenge"), CHALLENGES_SEEN)
def test_challenges_as_servers_write_them(value: str, challenge: Challenge) -> None:
    assert parse_challenge(value) == challenge


MALFORMED_CHALLENGES = [
    pytest.param("", id="empty"),
    pytest.param("Digest", id="scheme-only"),
    pytest.param('Basic realm="r"', id="basic"),
    pytest.param('Digestrealm="r", nonce="n"', id="no-space-after-scheme"),
    pytest.param('Digest nonce="n"', id="no-realm"),
    pytest.param('Digest realm="r"', id="no-nonce"),
    pytest.param('Digest realm="r, nonce="n"', id="quote-swallows-the-rest"),
    pytest.param('Digest realm="r", nonce="n\\', id="unterminated-escape"),
    pytest.param('Digest realm="r", nonce', id="name-without-value"),
    pytest.param('Digest realm="r", nonce=', id="equals-at-end"),
    pytest.param('Digest realm="r", nonce=, qop=auth', id="empty-bare-value"),
    pytest.param('Digest realm="r" nonce="n"', id="no-comma"),
    pytest.param('Digest realm="r", realm="s", nonce="n"', id="realm-twice"),
    pytest.param('Digest realm="r", nonce="n", "qop"=auth', id="quoted-name"),
    pytest.param('Digest realm="r", nonce="n", algorithm=SHA-512-256', id="unsupported-algorithm"),
    pytest.param('Digest realm="r", nonce="n", algorithm="MD 5"', id="bogus-algorithm"),
    pytest.param('Digest realm="r", nonce="n", qop="auth-conf"', id="unsupported-qop-only"),
    pytest.param('Digest realm="r\r\nX-Injected: 1", nonce="n"', id="crlf-inside"),
    pytest.param('Digest realm="r\x00", nonce="n"', id="nul-inside"),
]


@pytest.mark.parametrize("value", MALFORMED_CHALLENGES)
def test_malformed_challenges_are_refused(value: str) -> None:
    with pytest.raises(SipParseError):
        parse_challenge(value)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([], None, id="none"),
        pytest.param(['Basic realm="r"'], None, id="only-basic"),
        pytest.param(
            ['Digest realm="a", nonce="1"', 'Digest realm="b", nonce="2", algorithm=SHA-256'],
            Challenge("b", "2", "SHA-256"),
            id="sha256-preferred",
        ),
        pytest.param(
            [
                'Digest realm="a", nonce="1", algorithm=SHA-512-256',
                'Digest realm="b", nonce="2", algorithm=MD5',
                'Digest realm="c", nonce="3", algorithm=MD5-sess',
            ],
            Challenge("b", "2", "MD5"),
            id="unsupported-skipped-first-md5-kept",
        ),
        pytest.param(
            [
                'Digest realm="a", nonce="1", algorithm=SHA-256-sess',
                "Digest garbage",
                'Digest realm="b", nonce="2", algorithm=SHA-256',
            ],
            Challenge("a", "1", "SHA-256-sess"),
            id="first-sha256-family",
        ),
    ],
)
def test_choose_challenge(values: list[str], expected: Challenge | None) -> None:
    assert choose_challenge(values) == expected


MALFORMED_AUTHORIZATIONS = [
    pytest.param("Basic dXNlcjpwYXNz", id="basic"),
    pytest.param('Digest realm="r", nonce="n", uri="sip:a", response="00"', id="no-username"),
    pytest.param('Digest username="u", realm="r", nonce="n", uri="sip:a"', id="no-response"),
    pytest.param(
        'Digest username="u", realm="r", nonce="n", uri="sip:a", response="00", qop=auth, '
        'cnonce="c"',
        id="qop-without-nc",
    ),
    pytest.param(
        'Digest username="u", realm="r", nonce="n", uri="sip:a", response="00", qop=auth, '
        "nc=00000001",
        id="qop-without-cnonce",
    ),
    pytest.param(
        'Digest username="u", realm="r", nonce="n", uri="sip:a", response="00", qop=auth, '
        'nc=1, cnonce="c"',
        id="nc-not-8-hex-digits",
    ),
    pytest.param('Digest username="u, realm="r"', id="unterminated-quote"),
]


@pytest.mark.parametrize("value", MALFORMED_AUTHORIZATIONS)
def test_malformed_authorizations_are_refused(value: str) -> None:
    with pytest.raises(SipParseError):
        parse_authorization(value)


# --- a REGISTER challenged and answered ----------------------------------------------------


def test_register_round_trip() -> None:
    nonces = NonceSource(b"cluster secret")
    now = 1_700_000_000.25
    header = challenge_value(
        realm="voxgate.example", nonce=nonces.issue(now), algorithm="SHA-256", opaque="op"
    )

    # the UAC: a 401 with an MD5 and a SHA-256 challenge
    challenge = choose_challenge(
        [challenge_value(realm="voxgate.example", nonce="md5-nonce"), header]
    )
    assert challenge is not None
    assert challenge.algorithm == "SHA-256"
    value = authorization(
        challenge,
        Credentials("1001", "s3cret"),
        method="REGISTER",
        uri="sip:voxgate.example",
        cnonce="a1b2c3",
    )

    # the registrar
    response = parse_authorization(value)
    assert (response.username, response.opaque, response.qop) == ("1001", "op", "auth")
    assert nonces.check(response.nonce, now + 2.0) == "ok"

    def accepted(digest: DigestResponse, password: str = "s3cret") -> bool:
        return verify(digest, password=password, method="REGISTER", realm="voxgate.example")

    assert accepted(response)
    assert not accepted(response, "s3cret!")
    assert not accepted(replace(response, uri="sip:other.example"))
    assert not accepted(replace(response, username="1002"))
    assert not accepted(replace(response, nc="00000002"))
    assert not accepted(replace(response, cnonce="a1b2c4"))
    assert not accepted(replace(response, nonce="other"))
    assert not verify(response, password="s3cret", method="INVITE", realm="voxgate.example")
    assert not verify(response, password="s3cret", method="REGISTER", realm="other")


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"algorithm": "SHA-512"}, id="unknown-algorithm"),
        pytest.param({"qop": "auth-conf"}, id="unknown-qop"),
        pytest.param({"response": "not hex"}, id="response-not-hex"),
        pytest.param({"response": ARABIC_INDIC_ONES}, id="response-non-ascii"),
        pytest.param({"username": "\ud800"}, id="lone-surrogate"),
    ],
)
def test_verify_says_false_rather_than_raise(changes: dict[str, str]) -> None:
    good = parse_authorization(PUBLISHED[0].values[3])  # type: ignore[arg-type]
    assert verify(good, password="Circle Of Life", method="GET", realm=RFC2617_REALM)
    bad = replace(good, **changes)
    assert not verify(bad, password="Circle Of Life", method="GET", realm=RFC2617_REALM)


# --- stateless nonces ----------------------------------------------------------------------

ISSUED_AT = 1_000_000.0


@pytest.mark.parametrize(
    ("now", "max_age", "verdict"),
    [
        pytest.param(ISSUED_AT, 300.0, "ok", id="at-once"),
        pytest.param(ISSUED_AT + 299.999, 300.0, "ok", id="just-before-max-age"),
        pytest.param(ISSUED_AT + 300.0, 300.0, "ok", id="at-max-age"),
        pytest.param(ISSUED_AT + 300.001, 300.0, "stale", id="just-after-max-age"),
        pytest.param(ISSUED_AT + 3600.0, 300.0, "stale", id="an-hour-later"),
        pytest.param(ISSUED_AT + 3600.0, 7200.0, "ok", id="an-hour-later-long-max-age"),
        pytest.param(ISSUED_AT - 5.0, 300.0, "ok", id="clock-five-seconds-behind"),
        pytest.param(ISSUED_AT - 5.001, 300.0, "stale", id="from-further-in-the-future"),
    ],
)
def test_nonce_age(now: float, max_age: float, verdict: str) -> None:
    source = NonceSource(b"k")
    assert source.check(source.issue(ISSUED_AT), now, max_age) == verdict


def test_nonces_are_checked_by_any_node_with_the_secret() -> None:
    nonce = NonceSource(b"shared").issue(ISSUED_AT)
    assert NonceSource(b"shared").check(nonce, ISSUED_AT + 1) == "ok"
    assert NonceSource(b"other").check(nonce, ISSUED_AT + 1) == "bad"


def test_nonce_tampering_is_bad() -> None:
    source = NonceSource(b"k")
    nonce = source.issue(ISSUED_AT)
    stamp, mac = nonce.split(".")
    later = f"{int(stamp, 16) + 1000:x}"  # claims to be a second younger
    flipped = mac[:-1] + ("0" if mac[-1] != "0" else "1")
    for bad in [
        "",
        ".",
        stamp,
        f"{later}.{mac}",
        f"{stamp}.{flipped}",
        f"{stamp}.{mac.upper()}",
        f"{stamp}.{mac}0",
        f"0x{stamp}.{mac}",
        f"{stamp}.{mac}.{mac}",
        f"{stamp}.{ARABIC_INDIC_ONES}",
    ]:
        assert source.check(bad, ISSUED_AT) == "bad", bad


def test_nonce_source_wants_a_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        NonceSource(b"")


def test_nonces_differ_with_time_and_fit_a_quoted_string() -> None:
    source = NonceSource(b"k")
    first, second = source.issue(ISSUED_AT), source.issue(ISSUED_AT + 0.001)
    assert first != second
    assert parse_challenge(challenge_value(realm="r", nonce=first)).nonce == first


# --- fuzz ----------------------------------------------------------------------------------

_PIECES = st.sampled_from(
    [
        "Digest ",
        'realm="r"',
        "nonce=n",
        ", ",
        ",",
        "=",
        '"',
        "\\",
        " ",
        "qop=auth",
        "nc=00000001",
        'username="u"',
        'uri="sip:a"',
        'response="ab"',
        'cnonce="c"',
        "algorithm=SHA-256",
        "\t",
    ]
)


@settings(max_examples=3000, deadline=None, derandomize=True)
@given(st.one_of(st.text(), st.lists(st.one_of(_PIECES, st.text(max_size=3))).map("".join)))
def test_header_parsers_raise_nothing_but_sip_parse_error(value: str) -> None:
    with contextlib.suppress(SipParseError):
        parse_challenge(value)
    with contextlib.suppress(SipParseError):
        parse_authorization(value)
