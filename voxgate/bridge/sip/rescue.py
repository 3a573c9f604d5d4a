"""A 400 for a request too malformed to parse, when it can still be addressed.

RFC 3261 8.2.2 wants a malformed request answered with 400, but a response
needs the request's Via, From, To, Call-ID and CSeq (8.2.6.2), which the
strict parser refused to hand over. This module looks for just those header
lines in the raw bytes, leniently (compact forms, any case), and builds the
400 with the parser's reason as the reason phrase. A response, an ACK (never
answered, RFC 3261 17.1.1.3) or a request missing any of the five gets
nothing: the datagram is dropped (and counted by the caller).
"""

from __future__ import annotations

from typing import Final

MAX_REASON: Final = 80  # characters of the parser's reason in the reason phrase
_NEEDED: Final = {
    "via": "Via",
    "v": "Via",
    "from": "From",
    "f": "From",
    "to": "To",
    "t": "To",
    "call-id": "Call-ID",
    "i": "Call-ID",
    "cseq": "CSeq",
}


def bad_request_reply(data: bytes, reason: str) -> bytes | None:
    """The 400 to send back for ``data``, or None when it cannot be addressed."""
    text = data[:65536].decode("utf-8", "replace")
    head = text.replace("\r\n", "\n").split("\n\n", 1)[0].split("\n")
    first = head[0].split(" ")
    if len(first) < 3 or first[0].upper().startswith("SIP/") or first[0].upper() == "ACK":
        return None
    found: dict[str, list[str]] = {}
    for line in head[1:]:
        name, colon, value = line.partition(":")
        canonical = _NEEDED.get(name.strip().lower())
        if colon and canonical is not None and _printable(value):
            found.setdefault(canonical, []).append(value.strip())
    if any(name not in found for name in ("Via", "From", "To", "Call-ID", "CSeq")):
        return None
    phrase = "Bad Request - " + _printable_only(reason)[:MAX_REASON]
    lines = [f"SIP/2.0 400 {phrase}"]
    lines += [f"Via: {value}" for value in found["Via"]]
    lines += [f"{name}: {found[name][0]}" for name in ("From", "To", "Call-ID", "CSeq")]
    lines += ["Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode("utf-8")


def _printable(value: str) -> bool:
    return all(char.isprintable() or char == "\t" for char in value)


def _printable_only(text: str) -> str:
    return "".join(char if char.isprintable() else " " for char in text)
