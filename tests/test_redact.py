"""Redaction: URLs, headers and free text, as tables of vectors."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxgate.redact import (
    describe_headers,
    forget_hidden_values,
    hide_values,
    is_secret_name,
    redact_header_lines,
    redact_headers,
    redact_query,
    redact_url,
    scrub,
)


@pytest.fixture(autouse=True)
def _no_hidden_values() -> Iterator[None]:
    forget_hidden_values()
    yield
    forget_hidden_values()


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("wss://bots.example.com/voice", "wss://bots.example.com/voice"),
        ("wss://bots.example.com:8443/v?lang=en", "wss://bots.example.com:8443/v?lang=en"),
        ("wss://user:S3CRET@bots.example.com/v", "wss://***@bots.example.com/v"),
        ("wss://S3CRET@bots.example.com", "wss://***@bots.example.com"),
        ("ws://u:p@127.0.0.1:9/x?a=1", "ws://***@127.0.0.1:9/x?a=1"),
        ("wss://u:p@ss@host/x", "wss://***@host/x"),  # the last "@" ends the userinfo
        ("wss://u:p?x#y@host/path?q=1", "wss://***@host/path?q=1"),  # unencoded ? and #
        ("wss://host/a@b", "wss://host/a@b"),  # "@" in the path is not userinfo
        ("//u:p@host/x", "//***@host/x"),
        ("wss://h/v?api_key=S3CRET&lang=en", "wss://h/v?api_key=***&lang=en"),
        ("wss://h/v?lang=en&token=S3CRET", "wss://h/v?lang=en&token=***"),
        ("wss://h/v?TOKEN=S3CRET", "wss://h/v?TOKEN=***"),
        ("wss://h/v?apikey=1&key=2&secret=3", "wss://h/v?apikey=***&key=***&secret=***"),
        ("wss://h/v?access_token=1;pwd=2", "wss://h/v?access_token=***;pwd=***"),
        ("wss://h/v?password=1&pass=2&sig=3", "wss://h/v?password=***&pass=***&sig=***"),
        ("wss://h/v?signature=1&jwt=2&auth=3", "wss://h/v?signature=***&jwt=***&auth=***"),
        ("wss://h/v?credentials=1&session=2", "wss://h/v?credentials=***&session=***"),
        ("wss://h/v?X-Amz-Credential=1", "wss://h/v?X-Amz-Credential=***"),
        ("wss://h/v?client_secret=1&my_token_id=2", "wss://h/v?client_secret=***&my_token_id=***"),
        ("wss://h/v?api%5Fkey=S3CRET", "wss://h/v?api%5Fkey=***"),  # percent-encoded name
        ("wss://h/v?token=", "wss://h/v?token=***"),
        ("wss://h/v?token=a=b", "wss://h/v?token=***"),
        ("wss://h/v?S3CRET", "wss://h/v?***"),  # a bare value: hidden whole
        ("wss://h/v?a=1&S3CRET", "wss://h/v?***"),
        ("wss://h/v?a=1&b=S3 CRET", "wss://h/v?***"),  # whitespace: in doubt
        ("wss://h/v?a=1&&b=2", "wss://h/v?a=1&&b=2"),
        ("wss://h/v?", "wss://h/v?"),
        ("wss://h/v#access_token=S3CRET&x=1", "wss://h/v#access_token=***&x=1"),
        ("wss://h/v#section", "wss://h/v#section"),
        ("/v1/streams/telnyx?token=S3CRET", "/v1/streams/telnyx?token=***"),
        ("", ""),
        ("not a url", "not a url"),
        ("wss://[::1]:99/x?token=1", "wss://[::1]:99/x?token=***"),
        ("wss://h:notaport/x?key=1", "wss://h:notaport/x?key=***"),
        ("wss://h/v?lang=en&monkey=1", "wss://h/v?lang=en&monkey=***"),  # over, not under
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


@given(st.text())
def test_redact_url_never_raises(url: str) -> None:
    redact_url(url)


@given(
    st.from_regex(r"[a-z]{1,8}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9._~-]{1,30}", fullmatch=True),
)
def test_userinfo_never_survives(user: str, secret: str) -> None:
    password = f"S3CRET{secret}"
    url = f"wss://{user}:{password}@bots.example.com/voice?lang=en"
    assert redact_url(url) == "wss://***@bots.example.com/voice?lang=en"
    assert password not in scrub(f"bot {url} connected")


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("token", True),
        ("Token", True),
        ("api_key", True),
        ("apikey", True),
        ("x-api-key", True),
        ("access_token", True),
        ("secret", True),
        ("password", True),
        ("pass", True),
        ("pwd", True),
        ("auth", True),
        ("Authorization", True),
        ("x-telnyx-streaming-auth-token", True),
        ("X-Twilio-Signature", True),
        ("sig", True),
        ("jwt", True),
        ("credential", True),
        ("credentials", True),
        ("session", True),
        ("Cookie", True),
        ("lang", False),
        ("call_id", False),
        ("passage", False),
        ("signal", False),
        ("design", False),
        ("code", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


@pytest.mark.parametrize(
    ("query", "redacted"),
    [
        ("", ""),
        ("a=1", "a=1"),
        ("token=1", "token=***"),
        ("a=1&token=2&b=3", "a=1&token=***&b=3"),
        ("a=1;token=2", "a=1;token=***"),
        ("token", "***"),
        ("a=\x00", "***"),
    ],
)
def test_redact_query(query: str, redacted: str) -> None:
    assert redact_query(query) == redacted


def test_redact_headers_hides_every_value_and_keeps_names() -> None:
    headers = [("Authorization", "Bearer S3CRET"), ("X-Tenant", "acme"), ("Host", "h")]
    assert redact_headers(headers) == [
        ("Authorization", "***"),
        ("X-Tenant", "***"),
        ("Host", "***"),
    ]
    assert redact_headers({"A": "1"}) == [("A", "***")]
    assert redact_headers(headers, keep=("host",)) == [
        ("Authorization", "***"),
        ("X-Tenant", "***"),
        ("Host", "h"),
    ]
    assert describe_headers(headers) == "Authorization: ***, X-Tenant: ***, Host: ***"
    assert describe_headers(()) == ""


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("Authorization: Bearer S3CRET", "Authorization: ***"),
        ("Authorization: Bearer S3CRET\nX-Tenant: acme", "Authorization: ***\nX-Tenant: ***"),
        ("Bearer S3CRET", "***"),  # not Name: value: hidden whole
        ("Authorization Bearer S3CRET", "***"),
        ("Bad Name: S3CRET", "***"),  # not a token name: the name may be the secret
        ("\n\nA: 1\r\n", "A: ***"),
        ("", ""),
    ],
)
def test_redact_header_lines(text: str, redacted: str) -> None:
    assert redact_header_lines(text) == redacted


@pytest.mark.parametrize(
    ("line", "scrubbed"),
    [
        # URLs in free text
        (
            "call started: twilio, bot wss://u:S3CRET@h/v?api_key=S3CRET&lang=en (voxgate.v1)",
            "call started: twilio, bot wss://***@h/v?api_key=***&lang=en (voxgate.v1)",
        ),
        ('"WebSocket /v1/streams/telnyx?token=S3CRET" [accepted]', None),
        ("< GET /v1/streams/telnyx?token=S3CRET HTTP/1.1", None),
        ("> GET /bot?api_key=S3CRET HTTP/1.1", "> GET /bot?api_key=*** HTTP/1.1"),
        ("redirect to http://u:S3CRET@10.0.0.1/", "redirect to http://***@10.0.0.1/"),
        # header lines
        ("> Authorization: Bearer S3CRET", "> Authorization: ***"),
        ("< x-telnyx-streaming-auth-token: S3CRET", "< x-telnyx-streaming-auth-token: ***"),
        ("< X-Twilio-Signature: S3CRET=", "< X-Twilio-Signature: ***"),
        ("> Proxy-Authorization: Basic S3CRET", "> Proxy-Authorization: ***"),
        ("> Cookie: sid=S3CRET", "> Cookie: ***"),
        ("> X-Api-Key: S3CRET", "> X-Api-Key: ***"),
        # credentials alone
        ("sent Bearer S3CRET.abc-def to the bot", "sent Bearer *** to the bot"),
        ("basic S3CRETabc==", "basic ***"),
        # JSON and Python reprs (debug frame lines)
        (
            '< TEXT \'{"wss_header":"Authorization: Bearer S3CRET"}\' [40 bytes]',
            '< TEXT \'{"wss_header":"***"}\' [40 bytes]',
        ),
        ("{'authorization': 'Bearer S3CRET', 'x': 1}", "{'authorization': '***', 'x': 1}"),
        ('{"token": "S3CRET"}', '{"token": "***"}'),
        ('"api_key":"S3CRET","lang":"en"', '"api_key":"***","lang":"en"'),
        # free-text key=value
        ("presented token=S3CRET", "presented token=***"),
        ("> X-Tenant-Key: S3CRET", "> X-Tenant-Key: ***"),
        ("key: S3CRET", "key: ***"),
        # nothing to hide: unchanged
        ("voxgate.session: [vx-1] carrier hangup done", None),
        ("session: 3 calls", None),
        ("KeyError: 'frames'", None),
        ("monkey: business", None),
        ("bot connected (attempt 1, text)", None),
        ("carrier closed code=1008 reason=too slow", None),
        ("call ended: caller_hangup after 12.3 s, 600 frames in", None),
        ("wss://bots.example.com/voice?lang=en", None),
        ("mail me at someone@example.com", None),
        ("", None),
        # already masked: unchanged
        ("Authorization: ***", None),
        ("wss://***@h/v?token=***", None),
    ],
)
def test_scrub(line: str, scrubbed: str | None) -> None:
    expected = line if scrubbed is None else scrubbed
    if "S3CRET" in line and scrubbed is None:
        assert "S3CRET" not in scrub(line)
        return
    assert scrub(line) == expected


def test_scrub_is_idempotent() -> None:
    line = "bot wss://u:p@h/v?token=S3CRET, Authorization: Bearer S3CRET"
    assert scrub(scrub(line)) == scrub(line)
    assert "S3CRET" not in scrub(line)


def test_hidden_values_are_masked_wherever_they_appear() -> None:
    hide_values("S3CRET-server-token", "abc", "")
    assert scrub("refused: presented S3CRET-server-token") == "refused: presented ***"
    assert scrub("abc stays: too short to hide") == "abc stays: too short to hide"
    forget_hidden_values()
    assert scrub("presented S3CRET-server-token") == "presented S3CRET-server-token"


def test_scrub_is_cheap_on_ordinary_lines_and_linear_on_long_words() -> None:
    ordinary = "call ended: caller_hangup after 12.3 s, 600 frames in, 590 out, 0 late"
    assert scrub(ordinary) == ordinary
    start = time.perf_counter()
    for _ in range(2_000):
        scrub(ordinary)
    assert time.perf_counter() - start < 1.0  # loose: a few microseconds each
    hostile = "token" + "a" * 200_000 + " key" * 20_000 + ": x" + "=" * 50_000 + " :" * 50_000
    hostile += "a=" * 50_000 + "token=" * 20_000 + "Authorization:" * 20_000
    start = time.perf_counter()
    scrub(hostile)
    assert time.perf_counter() - start < 2.0  # no quadratic backtracking


@given(st.text())
def test_scrub_never_raises(text: str) -> None:
    scrub(text)
