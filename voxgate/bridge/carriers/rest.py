"""Carrier REST calls as data, and the carriers' request signatures (sans-I/O).

Theory of operation
-------------------
No carrier has a socket message for hangup or transfer: they are REST
calls on the call. This module only *describes* them: each builder returns an
:class:`HttpRequest` (method, URL, headers, body bytes) that an I/O adapter
sends with its HTTP client, and whose status it reports. Nothing here opens a
socket or reads a clock.

- Twilio, "Update a Call resource": ``POST {api}/2010-04-01/Accounts/{AC}/Calls/{CA}.json``,
  form-encoded, HTTP Basic auth ``AccountSid:AuthToken``. ``Status=completed``
  ends the call; ``Twiml=<Response>...</Response>`` replaces what the call is
  doing, here a ``<Dial>`` to the target (``<Sip>`` for a ``sip:``/``sips:``
  URI), which ends the media stream and moves the caller.
- Telnyx, Call Control: ``POST {api}/v2/calls/{call_control_id}/actions/hangup``
  with ``{}`` (every member optional: ``client_state``, ``command_id``...) and
  ``.../actions/transfer`` with ``{"to": target}`` (a number or SIP URI, the one
  required member), JSON, ``Authorization: Bearer <API key>``.
- Plivo, "Hangup a specific call": ``DELETE {api}/v1/Account/{auth_id}/Call/{call_uuid}/``,
  no body, HTTP Basic auth ``auth_id:auth_token``, 204 when done. Without a
  call uuid the same URL hangs up *every* call of the account, so an empty
  id is refused here. "Transfer a call" (``POST .../Call/{call_uuid}/``,
  ``legs=aleg``, ``aleg_url``) makes Plivo fetch new Plivo XML from a URL,
  and voxgate serves none: :func:`plivo_transfer` refuses (``unsupported``)
  instead of inventing one.

Path segments are percent-encoded (``:`` kept: Telnyx ids look like
``v3:...``), so an id cannot change the path.

Twilio request signature (Twilio "Webhooks security"): ``X-Twilio-Signature`` is
``base64(HMAC-SHA1(auth token, URL + key1 + value1 + key2 + value2...))`` with
the parameters sorted by name (case-sensitive). Twilio's own validators also
accept the URL with the scheme's default port added or removed, and so does
:func:`twilio_signature_valid`. A Media Streams WebSocket upgrade is a GET with
no body, so only the URL is signed, and it is the ``wss://`` URL exactly as
written in ``<Stream url>`` (which takes no query string), not the ``https://``
URL a web framework reconstructs (twilio-labs/twilio-aspnet issue 162).

Plivo request signature (Plivo "Validation", X-Plivo-Signature-V3, and its
server SDK's ``validate_v3_signature``): ``base64(HMAC-SHA256(auth token,
URL + "." + nonce))`` with ``X-Plivo-Signature-V3-Nonce`` as the nonce and,
for a GET, the URL's query parameters sorted by name and written back
decoded (``?a=1&b=2``); the header may hold several signatures separated by
commas (one per active auth token), any of which may match. A WebSocket
upgrade is a GET without a body. That Plivo signs the stream's upgrade is
said only in passing ("validating signatures if configured"), so the
registry accepts a valid signature but does not demand one.

Checked with the search tool: Twilio's security page vector (token ``12345``,
``https://mycompany.com/myapp.php?foo=1&bar=2``, five POST fields,
``RSOYDt4T1cUTdK1PDd93/VVr8B8=``) is reproduced by the tests; the Update a
Call fields ``Status`` (``completed``) and ``Twiml``; Telnyx transfer's
required ``to`` and hangup's optional-only body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape as _html_escape
from types import MappingProxyType
from typing import Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from voxgate.errors import ConfigError, ProtocolError

TWILIO_API: Final = "https://api.twilio.com"
TELNYX_API: Final = "https://api.telnyx.com"
PLIVO_API: Final = "https://api.plivo.com"
_DEFAULT_PORTS: Final = {"https": 443, "wss": 443, "http": 80, "ws": 80}


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One HTTP request to send: the adapter passes these fields to its client as they are."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))


# --- Twilio -----------------------------------------------------------------------------


def twilio_hangup(
    account_sid: str, auth_token: str, call_sid: str, api_base: str = TWILIO_API
) -> HttpRequest:
    """End a Twilio call: Update the Call with ``Status=completed``."""
    return _twilio_call_update(account_sid, auth_token, call_sid, api_base, {"Status": "completed"})


def twilio_transfer(
    account_sid: str, auth_token: str, call_sid: str, target: str, api_base: str = TWILIO_API
) -> HttpRequest:
    """Move a Twilio call to ``target`` (a number or a ``sip:`` URI) with new TwiML."""
    twiml = f"<Response><Dial>{_twilio_dial_target(target)}</Dial></Response>"
    return _twilio_call_update(account_sid, auth_token, call_sid, api_base, {"Twiml": twiml})


def _escape(text: str) -> str:
    """XML character data (``&``, ``<``, ``>`` escaped); xml.sax would load urllib.request."""
    return _html_escape(text, quote=False)


def _twilio_dial_target(target: str) -> str:
    target = target.strip()
    if not target:
        raise ProtocolError("missing_field", "the transfer target is empty")
    if target.lower().startswith(("sip:", "sips:")):
        return f"<Sip>{_escape(target)}</Sip>"
    return _escape(target)


def _twilio_call_update(
    account_sid: str, auth_token: str, call_sid: str, api_base: str, form: dict[str, str]
) -> HttpRequest:
    _require(account_sid=account_sid, auth_token=auth_token, call_sid=call_sid)
    url = (
        f"{api_base.rstrip('/')}/2010-04-01/Accounts/{_segment(account_sid)}"
        f"/Calls/{_segment(call_sid)}.json"
    )
    credentials = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode("ascii")
    headers = {
        "Authorization": f"Basic {credentials}",
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
    }
    return HttpRequest("POST", url, headers, urlencode(form).encode("ascii"))


# --- Telnyx -----------------------------------------------------------------------------


def telnyx_hangup(api_key: str, call_control_id: str, api_base: str = TELNYX_API) -> HttpRequest:
    """End a Telnyx call (Call Control ``hangup``)."""
    return _telnyx_action(api_key, call_control_id, "hangup", {}, api_base)


def telnyx_transfer(
    api_key: str, call_control_id: str, target: str, api_base: str = TELNYX_API
) -> HttpRequest:
    """Move a Telnyx call to ``target`` (a number or a SIP URI; Call Control ``transfer``)."""
    target = target.strip()
    if not target:
        raise ProtocolError("missing_field", "the transfer target is empty")
    return _telnyx_action(api_key, call_control_id, "transfer", {"to": target}, api_base)


def _telnyx_action(
    api_key: str, call_control_id: str, action: str, body: dict[str, str], api_base: str
) -> HttpRequest:
    _require(api_key=api_key, call_control_id=call_control_id)
    url = f"{api_base.rstrip('/')}/v2/calls/{_segment(call_control_id)}/actions/{action}"
    headers = {
        "Authorization": f"Bearer {api_key}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    return HttpRequest("POST", url, headers, json.dumps(body).encode("utf-8"))


# --- Plivo ------------------------------------------------------------------------------


def plivo_hangup(
    auth_id: str, auth_token: str, call_uuid: str, api_base: str = PLIVO_API
) -> HttpRequest:
    """End a Plivo call (``DELETE`` the call; 204 when done)."""
    _require(auth_id=auth_id, auth_token=auth_token, call_uuid=call_uuid)
    url = f"{api_base.rstrip('/')}/v1/Account/{_segment(auth_id)}/Call/{_segment(call_uuid)}/"
    credentials = base64.b64encode(f"{auth_id}:{auth_token}".encode()).decode("ascii")
    headers = {"Authorization": f"Basic {credentials}", "Accept": "application/json"}
    return HttpRequest("DELETE", url, headers, b"")


def plivo_transfer(
    auth_id: str, auth_token: str, call_uuid: str, target: str, api_base: str = PLIVO_API
) -> HttpRequest:
    """Always ``unsupported``: a Plivo transfer needs a URL serving Plivo XML (``aleg_url``)."""
    raise ProtocolError(
        "unsupported",
        "Plivo transfers a call by fetching Plivo XML from a URL (aleg_url), "
        "which voxgate does not serve",
    )


def _require(**values: str) -> None:
    for name, value in values.items():
        if not value or not value.strip():
            raise ConfigError(f"{name} must not be empty")


def _segment(value: str) -> str:
    return quote(value, safe=":@")


# --- Twilio request signature -----------------------------------------------------------


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str] | None = None) -> str:
    """The ``X-Twilio-Signature`` Twilio computes for a request to ``url`` with ``params``."""
    fields = params or {}
    data = url + "".join(name + fields[name] for name in sorted(fields))
    digest = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def twilio_signature_valid(
    auth_token: str, url: str, signature: str, params: Mapping[str, str] | None = None
) -> bool:
    """Whether ``signature`` (the header value) signs this request, in constant time."""
    if not auth_token:
        return False
    given = signature.encode("utf-8", "replace")
    return any(
        hmac.compare_digest(twilio_signature(auth_token, candidate, params).encode(), given)
        for candidate in _url_variants(url)
    )


def _url_variants(url: str) -> list[str]:
    """``url`` as given, then with the scheme's default port removed or added."""
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    try:
        port = parts.port
    except ValueError:  # not a valid port: the URL as given is the only candidate
        return [url]
    if default is None or port not in (None, default):
        return [url]
    netloc = f"{parts.netloc}:{default}" if port is None else parts.netloc.rsplit(":", 1)[0]
    return [url, urlunsplit(parts._replace(netloc=netloc))]


# --- Plivo request signature (V3) -------------------------------------------------------


def plivo_signature(auth_token: str, url: str, nonce: str) -> str:
    """The ``X-Plivo-Signature-V3`` Plivo computes for a GET of ``url`` with ``nonce``."""
    parts = urlsplit(url)
    base = urlunsplit(parts._replace(query="", fragment=""))
    pairs = sorted(parse_qsl(parts.query, keep_blank_values=True))
    query = "&".join(f"{name}={value}" for name, value in pairs)
    signed = f"{base}?{query}" if query else base
    digest = hmac.new(
        auth_token.encode("utf-8"), f"{signed}.{nonce}".encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def plivo_signature_valid(auth_token: str, url: str, nonce: str, signatures: str) -> bool:
    """Whether one of ``signatures`` (the header value, comma-separated) signs this GET."""
    if not auth_token or not nonce:
        return False
    expected = plivo_signature(auth_token, url, nonce).encode("ascii")
    return any(
        hmac.compare_digest(expected, given.strip().encode("utf-8", "replace"))
        for given in signatures.split(",")
    )
