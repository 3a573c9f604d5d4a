"""SIP header fields: the ordered multi-map and the lexical helpers every value parser shares.

Theory of operation
-------------------
A SIP message carries header fields in order, names case-insensitive, some
names with a compact one-letter form (RFC 3261 section 7.3.3). :class:`Headers`
stores one entry per field as received or added, under a *canonical* name:
compact forms expanded, well-known names in their usual spelling, unknown
names as first spelled. Lookups go through the same canonicalisation, so
``"v"``, ``"VIA"`` and ``"Via"`` find the same fields.

Some headers hold a comma-separated list (RFC 3261 section 7.3.1: allowed only
where the grammar says so); for those :meth:`Headers.get_all` splits each
field into its values, never on a comma inside a quoted string or inside
``<...>``. The authentication headers are not lists (their parameters hold
commas), nor is Date.

The helpers below (token test, quote-aware splitting) are shared with the
URI and message parsers. They raise nothing but :class:`SipParseError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

from voxgate.errors import SipParseError

# RFC 3261 section 25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`"
# / "'" / "~")
_TOKEN: Final = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_LINE_BREAK: Final = re.compile(r"[\r\n]")

# RFC 3261 section 7.3.3 and the RFCs that registered later compact forms.
COMPACT_FORMS: Final = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_WELL_KNOWN: Final = [
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Accept-Resource-Priority",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Diversion",
    "Error-Info",
    "Event",
    "Expires",
    "From",
    "History-Info",
    "Identity",
    "Identity-Info",
    "In-Reply-To",
    "Join",
    "Max-Forwards",
    "MIME-Version",
    "Min-Expires",
    "Min-SE",
    "Organization",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Path",
    "Priority",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "Reason",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Reject-Contact",
    "Replaces",
    "Reply-To",
    "Request-Disposition",
    "Require",
    "Resource-Priority",
    "Retry-After",
    "Route",
    "RSeq",
    "Security-Client",
    "Security-Server",
    "Security-Verify",
    "Server",
    "Service-Route",
    "Session-Expires",
    "SIP-ETag",
    "SIP-If-Match",
    "Subject",
    "Subscription-State",
    "Supported",
    "Target-Dialog",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
]

_CANONICAL: Final = {name.lower(): name for name in _WELL_KNOWN} | COMPACT_FORMS

# Headers whose grammar is a comma-separated list (RFC 3261 section 7.3.1 and 20; RFC 3325,
# 3326, 3327, 3608, 3841, 4244, 4412).
LIST_HEADERS: Final = frozenset(
    [
        "Accept",
        "Accept-Contact",
        "Accept-Encoding",
        "Accept-Language",
        "Accept-Resource-Priority",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Call-Info",
        "Contact",
        "Content-Encoding",
        "Content-Language",
        "Error-Info",
        "History-Info",
        "In-Reply-To",
        "P-Asserted-Identity",
        "P-Preferred-Identity",
        "Path",
        "Proxy-Require",
        "Reason",
        "Record-Route",
        "Reject-Contact",
        "Request-Disposition",
        "Require",
        "Resource-Priority",
        "Route",
        "Security-Client",
        "Security-Server",
        "Security-Verify",
        "Service-Route",
        "Supported",
        "Unsupported",
        "Via",
        "Warning",
    ]
)


def clip(text: str, limit: int = 60) -> str:
    """``repr(text)`` of at most ``limit`` characters of it, so that errors stay short."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}..."


def canonical_name(name: str) -> str:
    """The stored spelling of a header name: compact form expanded, well-known names fixed."""
    return _CANONICAL.get(name.lower(), name)


def is_token(text: str) -> bool:
    """True if ``text`` is a non-empty RFC 3261 token."""
    return _TOKEN.fullmatch(text) is not None


def split_outside_quotes(text: str, separator: str) -> list[str]:
    """Split ``text`` on ``separator`` where it is outside "..." and <...>; parts unstripped.

    A backslash inside quotes escapes the next character (RFC 3261 section 25.1,
    quoted-pair). Never raises: an unterminated quote runs to the end of the text, where
    the value's own parser finds it.
    """
    parts: list[str] = []
    start = 0
    quoted = escaped = False
    angle = 0
    for index, char in enumerate(text):
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == "<":
            angle += 1
        elif char == ">" and angle:
            angle -= 1
        elif char == separator and not angle:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


# An unquoted parameter value: a token, or a host (IPv6 too), or a URI-ish word; lenient, since
# RFC 3261 section 25.1 gen-value = token / host / quoted-string and extensions stray further.
_PARAM_VALUE: Final = re.compile(r"[A-Za-z0-9\-.!%*_+`'~\[\]:/?@&$]+")
_QUOTED_STRING: Final = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_CSEQ: Final = re.compile(r"[ \t]*([0-9]+)[ \t]+([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*")
MAX_CSEQ: Final = 2**31  # RFC 3261 section 8.1.1.5: the sequence number is below 2**31


def parse_params(text: str) -> dict[str, str | None]:
    """``;a=b;c`` (LWS around ``;`` and ``=`` allowed) -> ``{"a": "b", "c": None}``; "" -> {}.

    Names are lower-cased; a quoted value keeps its quotes; a repeated name keeps its first
    value. An empty parameter (``;;``), a name that is not a token, or a bad value is an error.
    """
    body = text.strip(" \t")
    params: dict[str, str | None] = {}
    if not body:
        return params
    if not body.startswith(";"):
        raise SipParseError(f"parameters must start with ';': {clip(text)}")
    for part in split_outside_quotes(body[1:], ";"):
        name, has_value, raw = part.partition("=")
        name = name.strip(" \t")
        if not is_token(name):
            raise SipParseError(f"bad parameter name {clip(name)} in {clip(text)}")
        value = raw.strip(" \t") if has_value else None
        if value is not None and not (
            _PARAM_VALUE.fullmatch(value) or _QUOTED_STRING.fullmatch(value)
        ):
            raise SipParseError(f"bad value {clip(value)} for parameter {clip(name)}")
        params.setdefault(name.lower(), value)
    return params


def format_params(params: Mapping[str, str | None]) -> str:
    """The inverse of :func:`parse_params`: ``;a=b;c``."""
    return "".join(
        f";{name}" if value is None else f";{name}={value}" for name, value in params.items()
    )


def parse_cseq(text: str) -> tuple[int, str]:
    """``"4711 INVITE"`` -> ``(4711, "INVITE")``; the number below 2**31, the method a token."""
    match = _CSEQ.fullmatch(text)
    if match is None:
        raise SipParseError(f"malformed CSeq {clip(text)}")
    digits, method = match.groups()
    return bounded_int(digits, MAX_CSEQ, "CSeq number"), method


def bounded_int(digits: str, bound: int, what: str) -> int:
    """``digits`` (ASCII, leading zeros allowed) as an int below ``bound``; else an error."""
    if not (digits.isascii() and digits.isdigit()):
        raise SipParseError(f"{what} {clip(digits)} is not a number")
    significant = digits.lstrip("0") or "0"
    if len(significant) > len(str(bound)) or int(significant) >= bound:
        raise SipParseError(f"{what} {digits[:30]}{'...' * (len(digits) > 30)} is too large")
    return int(significant)


def _checked(name: str, value: str) -> tuple[str, str]:
    if not is_token(name):
        raise SipParseError(f"header name {clip(name)} is not a token")
    if _LINE_BREAK.search(value):
        raise SipParseError(f"header {name} value holds a line break")
    return canonical_name(name), value


class Headers:
    """Ordered multi-map of header fields; names case-insensitive; compact forms expanded.

    Mutators raise :class:`SipParseError` for a name that is not a token or a value that
    holds CR or LF (which would smuggle extra header fields into the serialized message).
    """

    __slots__ = ("_fields",)
    __hash__ = None  # type: ignore[assignment]  # mutable

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._fields: list[tuple[str, str]] = [_checked(name, value) for name, value in items]

    def get(self, name: str) -> str | None:
        """The first value (after splitting list headers), None if absent."""
        values = self.get_all(name)
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        """Every value in order; list headers' fields split on commas (empty values dropped)."""
        canonical = canonical_name(name)
        key = canonical.lower()
        fields = [value for stored, value in self._fields if stored.lower() == key]
        if canonical not in LIST_HEADERS:
            return fields
        values: list[str] = []
        for field in fields:
            values.extend(part.strip(" \t") for part in split_outside_quotes(field, ","))
        return [value for value in values if value]

    def add(self, name: str, value: str) -> None:
        """Append a field."""
        self._fields.append(_checked(name, value))

    def prepend(self, name: str, value: str) -> None:
        """Insert a field before the first of that name, or at the top if there is none."""
        field = _checked(name, value)
        self._fields.insert(self._first(field[0]) or 0, field)

    def set(self, name: str, value: str) -> None:
        """Replace every field of that name with one, where the first was (else at the end)."""
        field = _checked(name, value)
        first = self._first(field[0])
        self.remove(name)
        self._fields.insert(len(self._fields) if first is None else first, field)

    def remove(self, name: str) -> None:
        """Remove every field of that name (nothing if there is none)."""
        key = canonical_name(name).lower()
        self._fields = [field for field in self._fields if field[0].lower() != key]

    def items(self) -> list[tuple[str, str]]:
        """(canonical name, value) in order, one per field as stored."""
        return list(self._fields)

    def copy(self) -> Headers:
        duplicate = Headers()
        duplicate._fields = list(self._fields)
        return duplicate

    def _first(self, canonical: str) -> int | None:
        key = canonical.lower()
        for index, (stored, _) in enumerate(self._fields):
            if stored.lower() == key:
                return index
        return None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._first(canonical_name(name)) is not None

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._fields == other._fields

    def __repr__(self) -> str:
        return f"Headers({self._fields!r})"
