"""SIP header values with structure: URIs, name-addr (From/To/Contact/Route), Via.

Theory of operation
-------------------
Each parser takes the text of one value (a header field already unfolded and, for list
headers, split on its commas) and returns a frozen value whose ``str()`` serializes it
back. Parsing follows the RFC 3261 grammar (section 25.1) with a few documented leniencies
(host names may hold ``_``; unquoted parameter values may hold URI characters) and raises
nothing but :class:`SipParseError`, on any text.

- :func:`parse_uri`: ``sip:``/``sips:`` URIs (RFC 3261 section 19.1) and ``tel:`` URIs
  (RFC 3966). Escapes (``%41``) are checked but kept as written: comparing URIs (RFC 3261
  section 19.1.4) is the caller's business. A ``tel:`` URI has its number in ``user`` and
  an empty ``host``.
- :func:`parse_name_addr`: ``"Display" <uri>;params`` or a bare addr-spec ``uri;params``,
  where (RFC 3261 section 20.10) parameters after a bare URI belong to the header, and a
  URI holding ``,``, ``;`` or ``?`` must be in angle brackets. URIs of schemes other than
  sip/sips/tel are kept as opaque text (an element may still answer them with 416).
- :func:`parse_via`: ``SIP/2.0/UDP host:port;branch=...`` (RFC 3261 section 20.42), with
  LWS allowed around the slashes and the colon.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from voxgate.bridge.sip.headers import bounded_int, clip, format_params, parse_params
from voxgate.errors import SipParseError

_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_ESCAPED: Final = r"%[0-9A-Fa-f]{2}"
_UNRESERVED: Final = r"A-Za-z0-9\-_.!~*'()"
# RFC 3261 section 25.1: user, password, uri-parameter and header character sets.
_USER: Final = re.compile(rf"(?:[{_UNRESERVED}&=+$,;?/]|{_ESCAPED})+")
_PASSWORD: Final = re.compile(rf"(?:[{_UNRESERVED}&=+$,]|{_ESCAPED})*")
_PARAM_CHARS: Final = re.compile(rf"(?:[{_UNRESERVED}\[\]/:&+$]|{_ESCAPED})+")
_HEADER_CHARS: Final = re.compile(rf"(?:[{_UNRESERVED}\[\]/?:+$]|{_ESCAPED})*")
_HOSTNAME: Final = re.compile(r"[A-Za-z0-9\-._]+")  # '_' is lenient: seen in the wild
# RFC 3966 section 3: global or local number, with visual separators.
_TEL_NUMBER: Final = re.compile(r"\+?[0-9A-Fa-f*#\-.()]+")
_NOT_IN_URI: Final = re.compile(r'[\x00-\x20\x7f<>"]')
_TOKEN_CLASS: Final = r"[A-Za-z0-9\-.!%*_+`'~]+"
_TOKEN_WORDS: Final = re.compile(rf"{_TOKEN_CLASS}(?:[ \t]+{_TOKEN_CLASS})*")
_VIA: Final = re.compile(
    rf"[ \t]*({_TOKEN_CLASS})[ \t]*/[ \t]*({_TOKEN_CLASS})[ \t]*/[ \t]*({_TOKEN_CLASS})"
    r"[ \t]+(\[[^\]]*\]|[^ \t:\[\]]+)(?:[ \t]*:[ \t]*([0-9]*))?[ \t]*"
)
_MAX_PORT: Final = 65536


def _params_hash(params: Mapping[str, str | None]) -> int:
    return hash(tuple(params.items()))


@dataclass(frozen=True, slots=True)
class SipUri:
    """A sip:, sips: or tel: URI; components as written (escapes kept), names lower-cased."""

    scheme: str
    user: str | None
    host: str
    port: int | None = None
    params: Mapping[str, str | None] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    password: str | None = None

    def __str__(self) -> str:
        params = format_params(self.params)
        if self.scheme == "tel":
            return f"tel:{self.user or ''}{params}"
        userinfo = ""
        if self.user is not None:
            secret = "" if self.password is None else f":{self.password}"
            userinfo = f"{self.user}{secret}@"
        port = "" if self.port is None else f":{self.port}"
        headers = "&".join(f"{name}={value}" for name, value in self.headers.items())
        query = f"?{headers}" if headers else ""
        return f"{self.scheme}:{userinfo}{bracketed(self.host)}{port}{params}{query}"

    def __hash__(self) -> int:
        return hash((self.scheme, self.user, self.host, self.port, self.password)) ^ (
            _params_hash(self.params) ^ hash(tuple(self.headers.items()))
        )


def bracketed(host: str) -> str:
    """``host`` as it stands in a URI or a Via: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def parse_hostport(text: str) -> tuple[str, int | None]:
    """``host[:port]`` (IPv6 in brackets) -> (host without brackets, port or None)."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or "%" in host:
            raise SipParseError(f"malformed IPv6 reference {clip(text)}")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise SipParseError(f"malformed IPv6 address {clip(host)}") from None
    else:
        host, colon, port_text = text.partition(":")
        rest = colon + port_text
        if not _HOSTNAME.fullmatch(host):
            raise SipParseError(f"malformed host {clip(host)}")
    if not rest:
        return host, None
    if not rest.startswith(":"):
        raise SipParseError(f"junk after host in {clip(text)}")
    return host, bounded_int(rest[1:], _MAX_PORT, "port")


def _uri_params(text: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for part in text.split(";"):
        name, has_value, value = part.partition("=")
        if not _PARAM_CHARS.fullmatch(name) or (has_value and not _PARAM_CHARS.fullmatch(value)):
            raise SipParseError(f"malformed URI parameter {clip(part)}")
        params.setdefault(name.lower(), value if has_value else None)
    return params


def _uri_headers(text: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for part in text.split("&"):
        name, has_value, value = part.partition("=")
        if not (name and has_value and _HEADER_CHARS.fullmatch(name + value)):
            raise SipParseError(f"malformed URI header {clip(part)}")
        headers.setdefault(name, value)
    return headers


def _parse_tel(rest: str) -> SipUri:
    number, semi, param_text = rest.partition(";")
    if not _TEL_NUMBER.fullmatch(number):
        raise SipParseError(f"malformed tel: number {clip(number)}")
    params = _uri_params(param_text) if semi else {}
    return SipUri("tel", number, "", None, params)


def parse_uri(text: str) -> SipUri:
    """Parse a sip:, sips: or tel: URI (no surrounding whitespace, no angle brackets)."""
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME.fullmatch(scheme):
        raise SipParseError(f"not a URI: {clip(text)}")
    scheme = scheme.lower()
    if scheme == "tel":
        return _parse_tel(rest)
    if scheme not in ("sip", "sips"):
        raise SipParseError(f"unsupported URI scheme {clip(scheme)}")
    user = password = None
    userinfo, at, hostpart = rest.partition("@")  # '@' is escaped everywhere after userinfo
    if at:
        user, has_password, secret = userinfo.partition(":")
        if not _USER.fullmatch(user) or not _PASSWORD.fullmatch(secret):
            raise SipParseError(f"malformed userinfo {clip(userinfo)}")
        password = secret if has_password else None
    else:
        hostpart = userinfo
    hostpart, query, header_text = hostpart.partition("?")
    hostport, semi, param_text = hostpart.partition(";")
    host, port = parse_hostport(hostport)
    params = _uri_params(param_text) if semi else {}
    headers = _uri_headers(header_text) if query else {}
    return SipUri(scheme, user, host, port, params, headers, password)


def check_uri(text: str) -> SipUri | None:
    """Validate an absolute URI; parse it if sip/sips/tel, else return None (opaque)."""
    scheme, colon, rest = text.partition(":")
    if not colon or not rest or not _SCHEME.fullmatch(scheme) or _NOT_IN_URI.search(text):
        raise SipParseError(f"malformed URI {clip(text)}")
    if scheme.lower() in ("sip", "sips", "tel"):
        return parse_uri(text)
    return None


@dataclass(frozen=True, slots=True)
class NameAddr:
    """A From/To/Contact/Route/Record-Route/Refer-To value; display name unescaped."""

    uri: str
    display_name: str | None = None
    params: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def with_params(self, **params: str | None) -> NameAddr:
        """A copy with these header parameters added or replaced (e.g. a To tag)."""
        merged = {**self.params, **{name.lower(): value for name, value in params.items()}}
        return NameAddr(self.uri, self.display_name, merged)

    def __str__(self) -> str:
        params = format_params(self.params)
        if self.display_name is None and not params and not any(c in self.uri for c in ",;?"):
            return self.uri
        if self.display_name is None:
            return f"<{self.uri}>{params}"
        return f"{_quote(self.display_name)} <{self.uri}>{params}"

    def __hash__(self) -> int:
        return hash((self.uri, self.display_name)) ^ _params_hash(self.params)


def _quote(text: str) -> str:
    escaped = re.sub(r'(["\\\x00-\x09\x0b\x0c\x0e-\x1f\x7f])', r"\\\1", text)
    return f'"{escaped}"'


def _unquote(text: str) -> tuple[str, str]:
    """A leading quoted string -> (its unescaped content, the text after it)."""
    chars: list[str] = []
    index = 1
    while index < len(text):
        char = text[index]
        if char == '"':
            return "".join(chars), text[index + 1 :]
        if char == "\\":
            index += 1
            if index == len(text):
                break
            char = text[index]
        chars.append(char)
        index += 1
    raise SipParseError(f"unterminated quoted string in {clip(text)}")


def parse_name_addr(text: str) -> NameAddr:
    """``"Bob" <sip:b@h>;tag=1``, ``Bob <sip:b@h>``, or ``sip:b@h;tag=1`` (RFC 3261 20.10)."""
    text = text.strip(" \t")
    if text.startswith('"'):
        display: str | None
        display, rest = _unquote(text)
        rest = rest.lstrip(" \t")
        if not rest.startswith("<"):
            raise SipParseError(f"display name without <URI> in {clip(text)}")
        return _angle_form(display, rest)
    angle = text.find("<")
    semi = text.find(";")
    if angle >= 0 and (semi < 0 or angle < semi):
        words = text[:angle].strip(" \t")
        # RFC 3261 25.1 display-name = *(token LWS) / quoted-string; no LWS needed before '<'
        # (RFC 4475 section 3.1.1.6 calls that a specification bug).
        if words and not _TOKEN_WORDS.fullmatch(words):
            raise SipParseError(f"unquoted display name {clip(words)} is not tokens")
        display = " ".join(words.split()) if words else None
        return _angle_form(display, text[angle:])
    uri, semi_found, param_text = text.partition(";")
    uri = uri.rstrip(" \t")
    if "," in uri or "?" in uri:
        raise SipParseError(f"a URI holding ',', ';' or '?' must be in <>: {clip(uri)}")
    check_uri(uri)
    return NameAddr(uri, None, parse_params(";" + param_text) if semi_found else {})


def _angle_form(display: str | None, text: str) -> NameAddr:
    uri, closed, rest = text[1:].partition(">")
    if not closed:
        raise SipParseError(f"unterminated <URI> in {clip(text)}")
    check_uri(uri)
    return NameAddr(uri, display, parse_params(rest))


@dataclass(frozen=True, slots=True)
class Via:
    """One Via value (RFC 3261 section 20.42); the protocol is always SIP/2.0."""

    transport: str
    host: str
    port: int | None = None
    params: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        hostport = f"{bracketed(self.host)}{port}"
        return f"SIP/2.0/{self.transport} {hostport}{format_params(self.params)}"

    def __hash__(self) -> int:
        return hash((self.transport, self.host, self.port)) ^ _params_hash(self.params)


def parse_via(text: str) -> Via:
    """``SIP/2.0/UDP host:port;branch=z9hG4bK...;rport`` -> :class:`Via`."""
    head, semi, param_text = text.partition(";")
    match = _VIA.fullmatch(head)
    if match is None:
        raise SipParseError(f"malformed Via {clip(text)}")
    name, version, transport, host_text, port_text = match.groups()
    if name.upper() != "SIP" or version != "2.0":
        raise SipParseError(f"unsupported Via protocol {name}/{version}")
    hostport = host_text if port_text is None else f"{host_text}:{port_text}"
    host, port = parse_hostport(hostport)
    params = parse_params(";" + param_text) if semi else {}
    return Via(transport.upper(), host, port, params)
