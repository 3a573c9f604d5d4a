"""SIP messages (RFC 3261 section 7): parse one datagram, build and serialize requests/responses.

Theory of operation
-------------------
:func:`parse_message` takes one whole message: a UDP datagram, or one message a stream
transport has framed. It raises nothing but :class:`SipParseError` on any bytes, in steps:

1. Size: more than :data:`MAX_MESSAGE_BYTES` is refused. CRLFs before the start line are
   skipped (RFC 3261 section 7.5; RFC 5626 keep-alives).
2. Header section: the lines up to the first empty one, ending in CRLF or (leniently) a
   bare LF; a CR anywhere else is an error. It must be strict UTF-8.
3. Start line: ``METHOD SP Request-URI SP SIP/2.0`` or ``SIP/2.0 SP code SP reason``
   (section 7.1, 7.2). A well-formed version other than 2.0 raises an error whose text
   starts with :data:`UNSUPPORTED_VERSION`, so a UAS can tell 505 from 400.
4. Header fields: a line starting with SP/HT continues the previous one, joined with one
   space (section 7.3.1); names are tokens, kept by :class:`Headers` under their canonical
   spelling (compact forms expanded).
5. Body: exactly Content-Length bytes after the empty line (section 18.3: bytes beyond are
   dropped, fewer is an error); without Content-Length, the rest of the datagram.
6. Checks a transaction or dialog layer relies on: To, From, CSeq, Call-ID and Via present
   (section 8.1.1; responses carry the same five, section 8.2.6.2), To/From/Call-ID/CSeq/
   Max-Forwards/Content-Length at most once, CSeq well formed and (requests) naming the
   request's method (section 8.1.1.5), every Via, From, To, Contact, Route and
   Record-Route value parseable, the Request-URI a URI without headers (section 19.1.1).

:meth:`Request.serialize` / :meth:`Response.serialize` write the start line, every stored
field as ``Name: value`` with its canonical name, Content-Length computed from the body,
an empty line and the body.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, TypeAlias

from voxgate.bridge.sip.headers import (
    Headers,
    bounded_int,
    clip,
    is_token,
    parse_cseq,
    parse_params,
)
from voxgate.bridge.sip.uri import (
    NameAddr,
    SipUri,
    Via,
    check_uri,
    parse_name_addr,
    parse_uri,
    parse_via,
)
from voxgate.errors import SipParseError

MAX_MESSAGE_BYTES: Final = 65535
UNSUPPORTED_VERSION: Final = "unsupported SIP version"
SIP_VERSION: Final = "SIP/2.0"

_VERSION: Final = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)
_MANDATORY: Final = ("To", "From", "CSeq", "Call-ID", "Via")
_SINGLE: Final = ("To", "From", "Call-ID", "CSeq", "Max-Forwards", "Content-Length")
_NAME_ADDRS: Final = ("From", "To", "Contact", "Route", "Record-Route")

# RFC 3261 section 21 and the RFCs that registered later codes.
REASON_PHRASES: Final[Mapping[int, str]] = MappingProxyType(
    {
        100: "Trying",
        180: "Ringing",
        181: "Call Is Being Forwarded",
        182: "Queued",
        183: "Session Progress",
        199: "Early Dialog Terminated",
        200: "OK",
        202: "Accepted",
        204: "No Notification",
        300: "Multiple Choices",
        301: "Moved Permanently",
        302: "Moved Temporarily",
        305: "Use Proxy",
        380: "Alternative Service",
        400: "Bad Request",
        401: "Unauthorized",
        402: "Payment Required",
        403: "Forbidden",
        404: "Not Found",
        405: "Method Not Allowed",
        406: "Not Acceptable",
        407: "Proxy Authentication Required",
        408: "Request Timeout",
        410: "Gone",
        412: "Conditional Request Failed",
        413: "Request Entity Too Large",
        414: "Request-URI Too Long",
        415: "Unsupported Media Type",
        416: "Unsupported URI Scheme",
        417: "Unknown Resource-Priority",
        420: "Bad Extension",
        421: "Extension Required",
        422: "Session Interval Too Small",
        423: "Interval Too Brief",
        428: "Use Identity Header",
        429: "Provide Referrer Identity",
        433: "Anonymity Disallowed",
        436: "Bad Identity-Info",
        437: "Unsupported Certificate",
        438: "Invalid Identity Header",
        480: "Temporarily Unavailable",
        481: "Call/Transaction Does Not Exist",
        482: "Loop Detected",
        483: "Too Many Hops",
        484: "Address Incomplete",
        485: "Ambiguous",
        486: "Busy Here",
        487: "Request Terminated",
        488: "Not Acceptable Here",
        489: "Bad Event",
        491: "Request Pending",
        493: "Undecipherable",
        494: "Security Agreement Required",
        500: "Server Internal Error",
        501: "Not Implemented",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Server Time-out",
        505: "Version Not Supported",
        513: "Message Too Large",
        580: "Precondition Failure",
        600: "Busy Everywhere",
        603: "Decline",
        604: "Does Not Exist Anywhere",
        606: "Not Acceptable",
        607: "Unwanted",
    }
)
_CLASS_PHRASES: Final = {
    1: "Provisional",
    2: "Success",
    3: "Redirection",
    4: "Client Error",
    5: "Server Error",
    6: "Global Failure",
}


def _serialize(start: str, headers: Headers, body: bytes) -> bytes:
    lines = [start]
    length_written = False
    for name, value in headers.items():
        if name != "Content-Length":
            lines.append(f"{name}: {value}")
        elif not length_written:
            lines.append(f"{name}: {len(body)}")
            length_written = True
    if not length_written:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass(slots=True)
class Request:
    """A SIP request; ``uri`` is the Request-URI as text."""

    method: str
    uri: str
    headers: Headers
    body: bytes = b""
    version: str = SIP_VERSION

    def serialize(self) -> bytes:
        """Start line, headers in order, Content-Length from the body (replacing any), body."""
        return _serialize(f"{self.method} {self.uri} {self.version}", self.headers, self.body)


@dataclass(slots=True)
class Response:
    """A SIP response."""

    status: int
    reason: str
    headers: Headers
    body: bytes = b""
    version: str = SIP_VERSION

    def serialize(self) -> bytes:
        """Status line, headers in order, Content-Length from the body (replacing any), body."""
        start = f"{self.version} {self.status} {self.reason}"
        return _serialize(start, self.headers, self.body)


Message: TypeAlias = Request | Response


def parse_message(data: bytes) -> Message:
    """Parse one whole SIP message; raises :class:`SipParseError` (with the reason) only."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipParseError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    lines, rest = _split_head(data)
    headers = Headers(_header_fields(lines[1:]))
    body = _framed_body(headers, rest)
    message = _start_line(lines[0], headers, body)
    _check(message)
    return message


def _split_head(data: bytes) -> tuple[list[str], bytes]:
    """The header section's lines (start line first) and the bytes after the empty line."""
    position = 0
    while data.startswith(b"\n", position) or data.startswith(b"\r\n", position):
        position = data.index(b"\n", position) + 1
    if position == len(data):
        raise SipParseError("empty message")
    lines: list[bytes] = []
    while True:
        end = data.find(b"\n", position)
        if end < 0:
            raise SipParseError("no empty line ends the header section")
        line = data[position : end - 1 if data[end - 1 : end] == b"\r" else end]
        position = end + 1
        if not line:
            break
        lines.append(line)
    head = b"\n".join(lines)
    if b"\r" in head:
        raise SipParseError("CR without LF in the header section")
    try:
        return head.decode("utf-8").split("\n"), data[position:]
    except UnicodeDecodeError as error:
        raise SipParseError(f"header section is not UTF-8 ({error.reason})") from None


def _header_fields(lines: list[str]) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = []
    for line in lines:
        if line[0] in " \t":  # RFC 3261 section 7.3.1: folding, replaced by one SP
            if not fields:
                raise SipParseError("continuation line before any header field")
            name, value = fields[-1]
            fields[-1] = (name, (value + " " + line.strip(" \t")).strip(" \t"))
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not is_token(name):
            raise SipParseError(f"malformed header line {clip(line)}")
        fields.append((name, value.strip(" \t")))
    return fields


def _framed_body(headers: Headers, rest: bytes) -> bytes:
    lengths = headers.get_all("Content-Length")
    if not lengths:
        return rest  # a datagram: the body is the rest (RFC 3261 section 18.3)
    if len(lengths) > 1:
        raise SipParseError("more than one Content-Length")
    if lengths[0].startswith("-"):
        raise SipParseError(f"negative Content-Length {clip(lengths[0])}")
    length = bounded_int(lengths[0], 2**31, "Content-Length")
    if length > len(rest):
        raise SipParseError(f"truncated body: Content-Length {length}, {len(rest)} bytes present")
    return rest[:length]


def _start_line(line: str, headers: Headers, body: bytes) -> Message:
    if line[:4].upper() == "SIP/":
        version, _, rest = line.partition(" ")
        code, _, reason = rest.partition(" ")
        _check_version(version, "status line")
        if not (len(code) == 3 and code.isascii() and code.isdigit() and "100" <= code <= "699"):
            raise SipParseError(f"malformed status code {clip(code)}")
        return Response(int(code), reason, headers, body)
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise SipParseError("request line is not METHOD SP Request-URI SP SIP/2.0")
    method, uri, version = parts
    if not is_token(method):
        raise SipParseError(f"method {clip(method)} is not a token")
    _check_version(version, "request line")
    parsed = check_uri(uri)
    if parsed is not None and parsed.headers:
        raise SipParseError("Request-URI must not have headers (RFC 3261 section 19.1.1)")
    return Request(method, uri, headers, body)


def _check_version(version: str, where: str) -> None:
    if not _VERSION.fullmatch(version):
        raise SipParseError(f"malformed {where}")
    if version.upper() != SIP_VERSION:
        raise SipParseError(f"{UNSUPPORTED_VERSION} {version[:30]}")


def _check(message: Message) -> None:
    headers = message.headers
    missing = [name for name in _MANDATORY if not headers.get_all(name)]
    if missing:
        raise SipParseError(f"missing mandatory header(s): {', '.join(missing)}")
    for name in _SINGLE:
        if len(headers.get_all(name)) > 1:
            raise SipParseError(f"more than one {name} header")
    call_id = headers.get_all("Call-ID")[0]
    if not call_id or any(char in call_id for char in " \t"):
        raise SipParseError(f"malformed Call-ID {clip(call_id)}")
    _, method = parse_cseq(headers.get_all("CSeq")[0])
    if isinstance(message, Request) and method != message.method:
        raise SipParseError(f"CSeq method {clip(method)} differs from {message.method!r}")
    for max_forwards in headers.get_all("Max-Forwards"):
        bounded_int(max_forwards, 256, "Max-Forwards")  # RFC 3261 section 20.22: 0-255
    for via in headers.get_all("Via"):
        parse_via(via)
    for name in _NAME_ADDRS:
        for value in headers.get_all(name):
            if not (name == "Contact" and value == "*"):  # RFC 3261 section 10.2.2
                parse_name_addr(value)


def response_to(
    request: Request, status: int, reason: str | None = None, *, to_tag: str | None = None
) -> Response:
    """A response to ``request`` (RFC 3261 section 8.2.6.2).

    Copies every Via (in order), From, To (with ``to_tag`` added when the To has no tag),
    Call-ID and CSeq, and for 100 the Timestamp (section 8.2.6.1). ``reason`` defaults to
    the standard phrase. Record-Route (section 12.1.1) and Contact are the dialog layer's.
    """
    if not 100 <= status <= 699:
        raise ValueError(f"status {status} is not 100-699")
    if reason is None:
        reason = REASON_PHRASES.get(status) or _CLASS_PHRASES[status // 100]
    headers = Headers()
    for name, value in request.headers.items():
        if name == "To" and to_tag is not None:
            to = parse_name_addr(value)
            headers.add(name, value if to.tag is not None else str(to.with_params(tag=to_tag)))
        elif name in ("Via", "From", "To", "Call-ID", "CSeq") or (
            name == "Timestamp" and status == 100
        ):
            headers.add(name, value)
    return Response(status, reason, headers)


__all__ = [
    "MAX_MESSAGE_BYTES",
    "REASON_PHRASES",
    "SIP_VERSION",
    "UNSUPPORTED_VERSION",
    "Headers",
    "Message",
    "NameAddr",
    "Request",
    "Response",
    "SipUri",
    "Via",
    "parse_cseq",
    "parse_message",
    "parse_name_addr",
    "parse_params",
    "parse_uri",
    "parse_via",
    "response_to",
]
