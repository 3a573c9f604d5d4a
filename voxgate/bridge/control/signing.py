"""Signing webhook bodies: the ``X-Voxgate-Signature`` header, sans I/O.

Theory of operation
-------------------
The sender signs the exact bytes it sends, at send time (so a retry a day later carries
a fresh timestamp)::

    header = "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}." + body)>"

HMAC is RFC 2104 with SHA-256 (FIPS 180-4); the key is the secret's UTF-8 bytes, whole.
Binding the timestamp into the MAC lets a receiver refuse a replayed request: it
recomputes the MAC over the raw body it received (not a re-serialized parse of it) and
accepts when::

    header parses -> exactly one t, at least one v1 -> |now - t| <= tolerance
        -> some v1 equals the expected MAC (constant-time compare) -> accepted
    anything else -> refused (False; never an exception)

Several ``v1=`` values are allowed so a secret can be rotated: during the change the
sender signs with the old and the new secret, and a receiver holding either accepts.
Unknown schemes (``v0=``, ``v2=``...) are ignored, so a later scheme can be added beside
``v1`` without breaking older receivers.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

HEADER: Final = "X-Voxgate-Signature"
SCHEME: Final = "v1"
TOLERANCE: Final = 300.0  # seconds of clock difference (and replay window) accepted
MAX_HEADER: Final = 4096  # longer headers are refused unread
MAX_SIGNATURES: Final = 8  # v1 values checked in one header


def mac(secret: str, body: bytes, timestamp: int) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}."`` + ``body`` under ``secret``."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The header value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    return f"t={timestamp},{SCHEME}={mac(secret, body, timestamp)}"


def verify(
    header: str, body: bytes, secret: str, *, now: float, tolerance: float = TOLERANCE
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance`` seconds of
    ``now`` (either side). Garbled headers are refused; this never raises."""
    parsed = _parse(header)
    if parsed is None:
        return False
    timestamp, signatures = parsed
    if not abs(now - timestamp) <= tolerance:  # also refuses NaN
        return False
    expected = mac(secret, body, timestamp).encode()
    matched = False
    for signature in signatures:
        # compare_digest takes time independent of where the values differ; every
        # candidate is compared, so the time does not tell which one matched either.
        matched |= hmac.compare_digest(expected, signature.encode())
    return matched


def _parse(header: object) -> tuple[int, list[str]] | None:
    """``(t, [v1 values])``, or None when the header is not one this module could write."""
    if not isinstance(header, str) or len(header) > MAX_HEADER or not header.isascii():
        return None
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        name, equals, value = item.strip().partition("=")
        if not equals:
            return None
        if name == "t":
            if timestamp is not None or not (value.isdigit() and len(value) <= 12):
                return None
            timestamp = int(value)
        elif name == SCHEME:
            if len(value) != 64 or not _is_hex(value):
                continue  # not a SHA-256 MAC: cannot match, but a later value may
            signatures.append(value.lower())
    if timestamp is None or not signatures or len(signatures) > MAX_SIGNATURES:
        return None
    return timestamp, signatures


def _is_hex(text: str) -> bool:
    return all(char in "0123456789abcdefABCDEF" for char in text)
