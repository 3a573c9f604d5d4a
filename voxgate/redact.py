"""Keeping secrets out of logs and close reasons.

Three tools, from the most to the least precise:

- :func:`redact_url` for a URL voxgate is about to log (a bot's ``wss_url``):
  the userinfo (``user:pass@``) becomes ``***@`` and the value of every query
  or fragment parameter with a secret-looking name (``token``, ``api_key``,
  ``sig``...) becomes ``***``; a query it cannot read as ``name=value`` pairs
  is hidden whole.
- :func:`redact_headers` for header lists: every value is potentially a
  secret (``Authorization``, a vendor's auth token header, a tenant key), so
  values become ``***`` and only the names are kept.
- :func:`scrub`, the last line of defence, run by the log formatters on every
  line: it finds, in free text, URL userinfo, secret query parameters,
  ``Name: value`` pairs whose name looks like a credential header,
  ``Bearer``/``Basic`` credentials, and exact values registered with
  :func:`hide_values` (the configured tokens and keys). It costs a few
  substring tests on a line that holds none of these.

All of them are pure functions on strings that never raise.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import unquote_plus

MASK: Final = "***"

_SECRET_PARTS: Final = (
    "token",
    "secret",
    "key",
    "passw",
    "pwd",
    "auth",
    "credential",
    "signature",
    "session",
    "jwt",
    "cookie",
)
"""A parameter (or a log field) whose name contains one of these holds a secret."""
_SECRET_NAMES: Final = frozenset({"pass", "pw", "sig"})
"""Short names that hold secrets but are too common as parts of other names."""

_HIDDEN_VALUES: set[str] = set()
MIN_HIDDEN_LENGTH: Final = 4


def is_secret_name(name: str) -> bool:
    """Whether a query parameter or header called ``name`` (any case) holds a secret."""
    lowered = name.strip().lower()
    return lowered in _SECRET_NAMES or any(part in lowered for part in _SECRET_PARTS)


# --- URLs -----------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """``url`` without its userinfo and without the values of secret-looking parameters.

    Works on the text itself (RFC 3986 section 3: ``scheme://authority path
    ?query #fragment``) rather than on a parser's view, so a malformed URL is
    redacted too and nothing is normalised. Userinfo ends at the last ``@``
    before the path (RFC 3986 section 3.2.1), even when an unencoded ``?`` or
    ``#`` precedes it, as in a password that holds one.
    """
    head, rest = "", url
    start = _authority_start(url)
    if start is not None:
        slash = url.find("/", start)
        at = url.rfind("@", start, len(url) if slash < 0 else slash)
        if at >= 0:
            head, rest = f"{url[:start]}{MASK}@", url[at + 1 :]
    rest, hash_mark, fragment = rest.partition("#")
    rest, question_mark, query = rest.partition("?")
    if question_mark:
        rest += "?" + redact_query(query)
    if hash_mark:
        rest += "#" + (redact_query(fragment) if "=" in fragment else fragment)
    return head + rest


def redact_query(query: str) -> str:
    """A query string with the values of secret-looking parameters replaced.

    A query that is not ``name=value`` pairs separated by ``&`` or ``;`` (a
    bare word, whitespace, a control character) may hide a secret anywhere:
    it becomes ``***`` whole.
    """
    if not query:
        return query
    if _DOUBTFUL_QUERY.search(query):
        return MASK
    pieces = re.split(r"([&;])", query)
    for index in range(0, len(pieces), 2):
        piece = pieces[index]
        if not piece:
            continue
        name, equals, _ = piece.partition("=")
        if not equals:
            return MASK
        if is_secret_name(unquote_plus(name, errors="replace")):
            pieces[index] = f"{name}={MASK}"
    return "".join(pieces)


_DOUBTFUL_QUERY: Final = re.compile(r"[\s\x00-\x1f\x7f]")


def _authority_start(text: str) -> int | None:
    if text.startswith("//"):
        return 2
    scheme_end = text.find("://")
    if scheme_end > 0 and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]*", text[:scheme_end]):
        return scheme_end + 3
    return None


# --- headers --------------------------------------------------------------------------


def redact_headers(
    headers: Iterable[tuple[str, str]] | Mapping[str, str], *, keep: Iterable[str] = ()
) -> list[tuple[str, str]]:
    """``(name, "***")`` for every header, but those named in ``keep`` (any case)."""
    kept = {name.lower() for name in keep}
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(name, value if name.lower() in kept else MASK) for name, value in items]


def describe_headers(headers: Iterable[tuple[str, str]] | Mapping[str, str]) -> str:
    """Header names for a log line, values hidden: ``"Authorization: ***, X-Tenant: ***"``."""
    return ", ".join(f"{name}: {value}" for name, value in redact_headers(headers))


def redact_header_lines(text: str) -> str:
    """``Name: value`` lines (a ``wss_header`` parameter) with every value hidden.

    A line that is not ``Name: value`` with a plain token name is hidden whole:
    it may be a value on a line of its own.
    """
    lines = []
    for line in text.splitlines():
        name, colon, _ = line.partition(":")
        if colon and _HEADER_NAME.fullmatch(name.strip()):
            lines.append(f"{name.strip()}: {MASK}")
        elif line.strip():
            lines.append(MASK)
    return "\n".join(lines)


_HEADER_NAME: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 section 5.6.2


# --- free text ------------------------------------------------------------------------


def hide_values(*values: str) -> None:
    """Have :func:`scrub` replace these exact values (configured tokens, keys) everywhere.

    Values shorter than :data:`MIN_HIDDEN_LENGTH` characters are ignored: they
    would mask ordinary words and cannot be secrets worth the name.
    """
    _HIDDEN_VALUES.update(v for v in values if len(v) >= MIN_HIDDEN_LENGTH)


def forget_hidden_values() -> None:
    """Stop hiding the values given to :func:`hide_values` (tests)."""
    _HIDDEN_VALUES.clear()


_USERINFO: Final = re.compile(r"//[^\s/?#\"'<>\\]*@")
_PARAMETER_VALUE: Final = re.compile(r"[^&;#\s\"'<>\\,)]+")
_HEADER_VALUE: Final = re.compile(r"[^\r\n\"'\\]+")
_PARAMETER_CHARS: Final = frozenset(string.ascii_letters + string.digits + "_.%-")
_HEADER_CHARS: Final = frozenset(string.ascii_letters + string.digits + "_-")
# "Name: value": "X-Api-Key: ..." and "wss_header: ...", not "session: 3" nor "KeyError: 'x'".
_HEADER_PARTS: Final = (*(p for p in _SECRET_PARTS if p not in ("key", "session")), "header")
_CREDENTIAL: Final = re.compile(r"(?i)(?<![\w-])(bearer|basic)[ \t]++(?!\*\*\*)[\w.~+/=-]+")
_HINTS: Final = (*_SECRET_PARTS, "header", "bearer", "basic", "pass=", "pw=", "sig=")


def _is_secret_header(name: str) -> bool:
    lowered = name.lower()
    return (
        any(part in lowered for part in _HEADER_PARTS)
        or lowered.endswith(("-key", "_key", "apikey"))
        or lowered == "key"
    )


def _is_secret_parameter(name: str) -> bool:
    return is_secret_name(unquote_plus(name, errors="replace"))


def _mask_pairs(text: str, separator: str) -> str:
    """Values of secret ``name=value`` (``separator`` ``=``) or ``Name: value`` (``:``) pairs.

    Found from each separator outwards, in linear time: the name is the run of
    name characters before it (past spaces and a quote for ``:``, as in
    ``"token": "..."``), the value runs from after it to its end.
    """
    header = separator == ":"
    chars, values = (
        (_HEADER_CHARS, _HEADER_VALUE) if header else (_PARAMETER_CHARS, _PARAMETER_VALUE)
    )
    secret = _is_secret_header if header else _is_secret_parameter
    pieces: list[str] = []
    done = 0  # text[:done] is in pieces
    at = text.find(separator)
    while at >= 0:
        end, after = at, at + 1
        if header:
            end = _skip_back(text, end, " \t")
            if end > 0 and text[end - 1] in "\"'":
                end -= 1
            after = _skip(text, after, " \t")
            if after < len(text) and text[after] in "\"'":
                after += 1
        start = end
        while start > 0 and text[start - 1] in chars:
            start -= 1
        if start < end and secret(text[start:end]) and not text.startswith(MASK, after):
            value = values.match(text, after)  # only here: a value may run to the end
            if value:
                pieces += (text[done:after], MASK)
                done = value.end()
        at = text.find(separator, max(at + 1, done))
    return "".join(pieces) + text[done:] if pieces else text


def _skip(text: str, index: int, chars: str) -> int:
    while index < len(text) and text[index] in chars:
        index += 1
    return index


def _skip_back(text: str, index: int, chars: str) -> int:
    while index > 0 and text[index - 1] in chars:
        index -= 1
    return index


def scrub(text: str) -> str:
    """``text`` with anything that looks like a credential replaced by ``***``."""
    for value in _HIDDEN_VALUES:
        if value in text:
            text = text.replace(value, MASK)
    if "@" in text and "//" in text:
        text = _USERINFO.sub(f"//{MASK}@", text)
    lowered = text.lower()
    if not any(hint in lowered for hint in _HINTS):
        return text
    if "=" in text:
        text = _mask_pairs(text, "=")
    if ":" in text:
        text = _mask_pairs(text, ":")
    return _CREDENTIAL.sub(rf"\1 {MASK}", text)
