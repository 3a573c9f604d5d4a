"""Carrier REST requests as data, and the carriers' request signatures."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
from collections.abc import Callable
from urllib.parse import parse_qs

import pytest

from voxgate.bridge.carriers.rest import (
    HttpRequest,
    plivo_hangup,
    plivo_signature,
    plivo_signature_valid,
    plivo_transfer,
    telnyx_hangup,
    telnyx_transfer,
    twilio_hangup,
    twilio_signature,
    twilio_signature_valid,
    twilio_transfer,
)
from voxgate.errors import ConfigError, ProtocolError

AC = "AC25e16e9a716a4a1786a7c83f58e30482"
CA = "CA2ab4f1b9e0bb5f4c3d8d1f2e6a7c9b01"
TOKEN = "f2b5c1d0e9a84b7c6d5e4f3a2b1c0d9e"
CALL_URL = f"https://api.twilio.com/2010-04-01/Accounts/{AC}/Calls/{CA}.json"
BASIC = "Basic " + base64.b64encode(f"{AC}:{TOKEN}".encode()).decode()
TWILIO_HEADERS = {
    "Authorization": BASIC,
    "Content-Type": "application/x-www-form-urlencoded",
    "Accept": "application/json",
}
KEY = "KEY0180C1DF633BD05E79DB3308230C3C92_example"
CCID = "v3:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ"
TELNYX_HEADERS = {
    "Authorization": f"Bearer {KEY}",
    "Content-Type": "application/json",
    "Accept": "application/json",
}


# --- Twilio -------------------------------------------------------------------------------------


def test_twilio_hangup_request() -> None:
    assert twilio_hangup(AC, TOKEN, CA) == HttpRequest(
        "POST", CALL_URL, TWILIO_HEADERS, b"Status=completed"
    )


def test_twilio_transfer_to_a_number() -> None:
    request = twilio_transfer(AC, TOKEN, CA, "+15550100")
    assert (request.method, request.url, dict(request.headers)) == (
        "POST",
        CALL_URL,
        TWILIO_HEADERS,
    )
    assert request.body == (
        b"Twiml=%3CResponse%3E%3CDial%3E%2B15550100%3C%2FDial%3E%3C%2FResponse%3E"
    )


@pytest.mark.parametrize(
    ("target", "dialled"),
    [
        ("+15550100", "+15550100"),
        (" +15550100 ", "+15550100"),
        ("sip:agent@pbx.example.com", "<Sip>sip:agent@pbx.example.com</Sip>"),
        ("SIPS:agent@pbx.example.com", "<Sip>SIPS:agent@pbx.example.com</Sip>"),
        ("sip:a@b.example?x=1&y=<2>", "<Sip>sip:a@b.example?x=1&amp;y=&lt;2&gt;</Sip>"),
        ("</Dial><Hangup/>", "&lt;/Dial&gt;&lt;Hangup/&gt;"),
    ],
)
def test_twilio_transfer_twiml_escapes_the_target(target: str, dialled: str) -> None:
    body = twilio_transfer(AC, TOKEN, CA, target).body.decode("ascii")
    twiml = f"<Response><Dial>{dialled}</Dial></Response>"
    assert parse_qs(body, strict_parsing=True) == {"Twiml": [twiml]}


def test_twilio_api_base_and_path_segments() -> None:
    request = twilio_hangup(AC, TOKEN, "CA/../x y", api_base="http://127.0.0.1:8099/")
    assert (
        request.url == f"http://127.0.0.1:8099/2010-04-01/Accounts/{AC}/Calls/CA%2F..%2Fx%20y.json"
    )


# --- Telnyx -------------------------------------------------------------------------------------


def test_telnyx_hangup_request() -> None:
    assert telnyx_hangup(KEY, CCID) == HttpRequest(
        "POST",
        f"https://api.telnyx.com/v2/calls/{CCID}/actions/hangup",
        TELNYX_HEADERS,
        b"{}",
    )


@pytest.mark.parametrize("target", ["+15550100", "sip:agent@pbx.example.com"])
def test_telnyx_transfer_request(target: str) -> None:
    request = telnyx_transfer(KEY, CCID, target)
    assert (request.method, dict(request.headers)) == ("POST", TELNYX_HEADERS)
    assert request.url == f"https://api.telnyx.com/v2/calls/{CCID}/actions/transfer"
    assert json.loads(request.body) == {"to": target}


def test_telnyx_api_base_and_path_segments() -> None:
    request = telnyx_hangup(KEY, "v3:a/b?c", api_base="http://127.0.0.1:8099")
    assert request.url == "http://127.0.0.1:8099/v2/calls/v3:a%2Fb%3Fc/actions/hangup"


# --- Plivo --------------------------------------------------------------------------------------

PLIVO_ID = "MAY2RJNZKZNJMWOXXX"
PLIVO_TOKEN = "plivo-auth-token"
PLIVO_CALL = "78737f83-4660-490d-98e1-025dfe4b5c8f"


def test_plivo_hangup_deletes_the_call() -> None:
    basic = base64.b64encode(f"{PLIVO_ID}:{PLIVO_TOKEN}".encode()).decode()
    assert plivo_hangup(PLIVO_ID, PLIVO_TOKEN, PLIVO_CALL) == HttpRequest(
        "DELETE",
        f"https://api.plivo.com/v1/Account/{PLIVO_ID}/Call/{PLIVO_CALL}/",
        {"Authorization": f"Basic {basic}", "Accept": "application/json"},
        b"",
    )


def test_plivo_api_base_and_path_segments() -> None:
    request = plivo_hangup(PLIVO_ID, PLIVO_TOKEN, "a/../b c", api_base="http://127.0.0.1:8099/")
    assert request.url == f"http://127.0.0.1:8099/v1/Account/{PLIVO_ID}/Call/a%2F..%2Fb%20c/"


def test_plivo_transfer_is_unsupported_rather_than_invented() -> None:
    # Plivo's transfer fetches new XML from aleg_url; voxgate serves no such URL.
    with pytest.raises(ProtocolError) as caught:
        plivo_transfer(PLIVO_ID, PLIVO_TOKEN, PLIVO_CALL, "+15550100")
    assert caught.value.code == "unsupported"
    assert "aleg_url" in caught.value.message


# --- bad arguments and the request value ---------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: twilio_hangup("", TOKEN, CA),
        lambda: twilio_hangup(AC, " ", CA),
        lambda: twilio_transfer(AC, TOKEN, "", "+15550100"),
        lambda: telnyx_hangup("", CCID),
        lambda: telnyx_transfer(KEY, "", "+15550100"),
        lambda: plivo_hangup("", PLIVO_TOKEN, PLIVO_CALL),
        lambda: plivo_hangup(PLIVO_ID, "", PLIVO_CALL),
        # without a call uuid, Plivo's DELETE would hang up every call of the account
        lambda: plivo_hangup(PLIVO_ID, PLIVO_TOKEN, ""),
        lambda: plivo_hangup(PLIVO_ID, PLIVO_TOKEN, "  "),
    ],
)
def test_empty_credentials_or_ids_are_config_errors(build: Callable[[], HttpRequest]) -> None:
    with pytest.raises(ConfigError):
        build()


@pytest.mark.parametrize("target", ["", "   "])
def test_empty_transfer_target_is_refused(target: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        twilio_transfer(AC, TOKEN, CA, target)
    assert caught.value.code == "missing_field"
    with pytest.raises(ProtocolError) as caught:
        telnyx_transfer(KEY, CCID, target)
    assert caught.value.code == "missing_field"


def test_http_request_is_immutable() -> None:
    headers = {"A": "1"}
    request = HttpRequest("POST", "https://example.com", headers, b"")
    headers["A"] = "2"
    assert request.headers["A"] == "1"
    with pytest.raises(TypeError):
        request.headers["B"] = "3"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.url = "https://other.example"  # type: ignore[misc]


# --- Twilio signature ----------------------------------------------------------------------------

# The example of Twilio's request-validation documentation (twilio-php docs/usage/validation.rst,
# the same walk-through as Twilio's security page): auth token 12345.
DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOC_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
DOC_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_signature_matches_twilio_documented_vector() -> None:
    assert twilio_signature("12345", DOC_URL, DOC_PARAMS) == DOC_SIGNATURE
    assert twilio_signature_valid("12345", DOC_URL, DOC_SIGNATURE, DOC_PARAMS)


def test_signature_sorts_parameters_whatever_their_order() -> None:
    shuffled = dict(reversed(list(DOC_PARAMS.items())))
    assert twilio_signature("12345", DOC_URL, shuffled) == DOC_SIGNATURE


@pytest.mark.parametrize(
    ("token", "url", "signature", "params"),
    [
        ("12346", DOC_URL, DOC_SIGNATURE, DOC_PARAMS),  # wrong token
        ("12345", DOC_URL + "&baz=3", DOC_SIGNATURE, DOC_PARAMS),  # other URL
        ("12345", DOC_URL, DOC_SIGNATURE, {**DOC_PARAMS, "Digits": "1235"}),  # other body
        ("12345", DOC_URL, DOC_SIGNATURE, None),  # parameters left out
        ("12345", DOC_URL, DOC_SIGNATURE[:-1], DOC_PARAMS),  # truncated
        ("12345", DOC_URL, "", DOC_PARAMS),
        ("12345", DOC_URL, "é€\ud800", DOC_PARAMS),  # not even ASCII: no crash
        ("", DOC_URL, twilio_signature("", DOC_URL, DOC_PARAMS), DOC_PARAMS),  # no token, no trust
    ],
)
def test_signature_mismatches_are_refused(
    token: str, url: str, signature: str, params: dict[str, str] | None
) -> None:
    assert not twilio_signature_valid(token, url, signature, params)


def test_websocket_upgrade_signs_the_wss_url_only() -> None:
    stream_url = "wss://voxgate.example.com/twilio/media"
    signature = twilio_signature(TOKEN, stream_url)
    assert signature == twilio_signature(TOKEN, stream_url, {})
    assert twilio_signature_valid(TOKEN, stream_url, signature)
    # a framework that rebuilds the URL as https:// computes another signature
    assert not twilio_signature_valid(TOKEN, "https://voxgate.example.com/twilio/media", signature)


@pytest.mark.parametrize(
    ("signed", "checked"),
    [
        ("wss://voxgate.example.com/media", "wss://voxgate.example.com:443/media"),
        ("wss://voxgate.example.com:443/media", "wss://voxgate.example.com/media"),
        ("https://h.example/x?a=1", "https://h.example:443/x?a=1"),
        ("http://127.0.0.1/x", "http://127.0.0.1:80/x"),
        ("wss://[::1]:443/m", "wss://[::1]/m"),
    ],
)
def test_default_port_is_optional_as_in_twilio_validators(signed: str, checked: str) -> None:
    assert twilio_signature_valid(TOKEN, checked, twilio_signature(TOKEN, signed))


@pytest.mark.parametrize(
    ("signed", "checked"),
    [
        ("wss://h.example:8443/media", "wss://h.example/media"),
        ("wss://h.example/media", "wss://h.example:8443/media"),
        ("wss://h.example:99999/m", "wss://h.example/m"),
    ],
)
def test_other_ports_are_not_interchangeable(signed: str, checked: str) -> None:
    assert not twilio_signature_valid(TOKEN, checked, twilio_signature(TOKEN, signed))


# --- Plivo signature (V3) ------------------------------------------------------------------------


def reference_v3(token: str, message: str) -> str:
    """HMAC-SHA256 of the message Plivo signs, written out by hand in each case below."""
    digest = hmac.new(token.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@pytest.mark.parametrize(
    ("url", "signed"),
    [
        ("wss://vx.example.com/v1/streams/plivo", "wss://vx.example.com/v1/streams/plivo"),
        (  # query parameters sorted by name, written back decoded
            "wss://vx.example.com/v1/streams/plivo?token=t%2Bk&b=2&a=1",
            "wss://vx.example.com/v1/streams/plivo?a=1&b=2&token=t+k",
        ),
        ("wss://h.example/p?b=2&b=1", "wss://h.example/p?b=1&b=2"),
    ],
)
def test_plivo_signature_signs_the_sorted_url_then_a_dot_and_the_nonce(
    url: str, signed: str
) -> None:
    nonce = "05429567804466091622"
    expected = reference_v3(PLIVO_TOKEN, f"{signed}.{nonce}")
    assert plivo_signature(PLIVO_TOKEN, url, nonce) == expected
    assert plivo_signature_valid(PLIVO_TOKEN, url, nonce, expected)


def test_plivo_signature_header_may_list_several() -> None:
    url, nonce = "wss://vx.example.com/v1/streams/plivo", "123"
    good = plivo_signature(PLIVO_TOKEN, url, nonce)
    other = plivo_signature("another-token", url, nonce)
    assert plivo_signature_valid(PLIVO_TOKEN, url, nonce, f"{other}, {good}")
    assert not plivo_signature_valid(PLIVO_TOKEN, url, nonce, other)


@pytest.mark.parametrize(
    ("token", "url", "nonce", "header"),
    [
        ("wrong", "wss://h.example/p", "1", None),
        (PLIVO_TOKEN, "wss://h.example/other", "1", None),
        (PLIVO_TOKEN, "wss://h.example/p", "2", None),
        (PLIVO_TOKEN, "wss://h.example/p", "", None),  # no nonce, no trust
        (PLIVO_TOKEN, "wss://h.example/p", "1", ""),
        (PLIVO_TOKEN, "wss://h.example/p", "1", "é€\ud800"),
    ],
)
def test_plivo_signature_mismatches_are_refused(
    token: str, url: str, nonce: str, header: str | None
) -> None:
    signed = plivo_signature(PLIVO_TOKEN, "wss://h.example/p", "1")
    assert not plivo_signature_valid(token, url, nonce, signed if header is None else header)


def test_plivo_signature_without_a_token_is_never_valid() -> None:
    url = "wss://h.example/p"
    assert not plivo_signature_valid("", url, "1", plivo_signature("", url, "1"))
